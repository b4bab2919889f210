package dashboard_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// hourOf returns an hour of readings of m every 10 s at w watts, ending at
// t0.
func hourOf(m string, w float64) []meter.Reading {
	var rs []meter.Reading
	for sec := -3600; sec <= 0; sec += 10 {
		rs = append(rs, reading(m, sec, w))
	}
	return rs
}

func TestMeterPage(t *testing.T) {
	app, _ := newApp(t, hourOf("kitchen:1", 1500)...)
	requireECharts(t, app)
	res, page := get(t, app, "/meters/kitchen%3A1")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d; page:\n%s", res.StatusCode, page)
	}
	for _, want := range []string{
		`<title>kitchen:1 · Vatio</title>`,
		`<a href="/meters" aria-current="page">Meters</a>`,
		`data-meter="kitchen:1"`,
		`id="meter-power" value="1500">1.50 kW</data>`,
		`let goecharts_history = echarts.init(document.getElementById('history')`,
		`"dataZoom":`,
		`let goecharts_daily = echarts.init(document.getElementById('daily')`,
		`"type":"bar"`,
		`let goecharts_profile = echarts.init(document.getElementById('profile')`,
		`"type":"heatmap"`,
		`let goecharts_year = echarts.init(document.getElementById('year')`,
		`"coordinateSystem":"calendar"`,
		`"range":["2026"]`,
		`<form class="meter-settings" data-meter="kitchen:1">`,
		`<input name="name" maxlength="100" value=""`,
		`<form class="delete-meter" data-meter="kitchen:1">`,
		// An hour at 1.5 kW ending 10:00 UTC (11:00 in Madrid): 1.5 kWh.
		`>1.50 kWh</p>`,
		`"Wed 25 Nov"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("meter page lacks %q", want)
		}
	}
	for _, path := range []string{"/meters/nope", "/meters/..%2Fetc", "/meters/a%2520b"} {
		if res, page := get(t, app, path); res.StatusCode != http.StatusNotFound || !strings.Contains(page, "There is no such page or meter.") {
			t.Errorf("GET %s = %d, want the 404 page", path, res.StatusCode)
		}
	}
}

// TestUnknownPath checks that a browser asking for a path nothing serves
// gets the Not found page, and the API and other clients no HTML.
func TestUnknownPath(t *testing.T) {
	app, _ := newApp(t, reading("main", 0, 3000))
	const html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	for _, tc := range []struct {
		path, accept string
		page         bool
	}{
		{"/nonexistent", html, true},
		{"/meters/main/extra", html, true},
		{"/nonexistent", "application/json", false},
		{"/nonexistent", "*/*", false},
		{"/api/v1/nonexistent", html, false},
		{"/assets/nope.js", html, false},
	} {
		res, page := get(t, app, tc.path, "Accept", tc.accept)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s (Accept %s) = %d, want 404", tc.path, tc.accept, res.StatusCode)
		}
		if got := strings.Contains(page, "There is no such page or meter."); got != tc.page {
			t.Errorf("GET %s (Accept %s): Not found page = %v, want %v; body:\n%s", tc.path, tc.accept, got, tc.page, page)
		}
	}
}

func TestMetersAndAlertsPages(t *testing.T) {
	app, _ := newApp(t, reading("main", 0, 3000), reading("plug", 0, 40))
	res, page := get(t, app, "/meters")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", res.StatusCode)
	}
	for _, want := range []string{`<tr data-meter="main">`, `<a href="/meters/plug">plug</a>`, `>3.00 kW</data>`, `data-label="Power"`, `<span class="badge online">online</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("meters page lacks %q", want)
		}
	}
	res, page = get(t, app, "/alerts")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", res.StatusCode)
	}
	for _, want := range []string{`<h2 id="active-heading">Active</h2>`, "Nothing needs attention.", "No alerts."} {
		if !strings.Contains(page, want) {
			t.Errorf("alerts page lacks %q", want)
		}
	}
}

func TestSpanish(t *testing.T) {
	app, _ := newApp(t, hourOf("m1", 1234567)...)
	_, page := get(t, app, "/", "Accept-Language", "es-ES,es;q=0.9,en;q=0.8")
	for _, want := range []string{`<html lang="es"`, "<title>Resumen · Vatio</title>", "Potencia ahora", ">1,23 MW</data>", "1.234,6 kWh", `"js.saved":"Guardado."`} {
		if !strings.Contains(page, want) {
			t.Errorf("Spanish page lacks %q", want)
		}
	}
	// The switch: a cookie, then back to the page; only to this site.
	res, _ := get(t, app, "/lang/en?back=/meters")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/meters" || !strings.Contains(res.Header.Get("Set-Cookie"), "vatio_lang=en") {
		t.Errorf("switch = %d %v", res.StatusCode, res.Header)
	}
	for _, back := range []string{"//evil.example/", "https://evil.example/", "/\\evil"} {
		if res, _ := get(t, app, "/lang/es?back="+back); res.Header.Get("Location") != "/" {
			t.Errorf("back=%s went to %q", back, res.Header.Get("Location"))
		}
	}
	if res, _ := get(t, app, "/lang/xx"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown language = %d", res.StatusCode)
	}
	_, page = get(t, app, "/", "Accept-Language", "es", "Cookie", "vatio_lang=en")
	if !strings.Contains(page, `<html lang="en"`) {
		t.Error("the chosen language does not win over Accept-Language")
	}
}

var _ = time.Second

func TestCostsAndSavingsPages(t *testing.T) {
	// Two weeks of a house at 300 W from 01:00 to 05:00 and 1 kW otherwise
	// (Madrid time), ending at t0.
	var rs []meter.Reading
	for sec := -14 * 24 * 3600; sec <= 0; sec += 300 {
		r := reading("house", sec, 1000)
		if h := r.Time.In(madrid).Hour(); h >= 1 && h < 5 {
			r.PowerW = 300
		}
		rs = append(rs, r)
	}
	app, _ := newApp(t, rs...)
	requireECharts(t, app)
	res, page := get(t, app, "/costs")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("costs = %d", res.StatusCode)
	}
	for _, want := range []string{`<title>Costs · Vatio</title>`, `<a href="/costs" aria-current="page">Costs</a>`, " EUR</p>",
		"let goecharts_daycost", "let goecharts_months", "of which fixed charges", `"Dec 25","Jan 26"`, `"Nov 26"]`} {
		if !strings.Contains(page, want) {
			t.Errorf("costs page lacks %q", want)
		}
	}
	// The daily charge (0.50) counts from the day the data begins, the
	// 11th: 15 days of November, not 25.
	if !strings.Contains(page, "of which fixed charges 7.50 EUR") || !strings.Contains(page, "of which fixed charge 0.50 EUR</p>") {
		t.Errorf("costs page does not book 15 days of fixed charge:\n%s", page)
	}
	_, page = get(t, app, "/savings")
	for _, want := range []string{`<title>Savings · Vatio</title>`, "house draws 300 W even at night", `data-kind="baseload"`, " EUR</strong> a year"} {
		if !strings.Contains(page, want) {
			t.Errorf("savings page lacks %q", want)
		}
	}
	_, page = get(t, app, "/savings", "Accept-Language", "es")
	if !strings.Contains(page, "house consume 300 W incluso de noche") || !strings.Contains(page, "2.628 kWh al año") {
		t.Errorf("Spanish savings page:\n%s", page)
	}
	// The overview draws the site's last day and the next, forecast.
	if _, page := get(t, app, "/"); !strings.Contains(page, "let goecharts_day = ") || !strings.Contains(page, `"id":"forecast"`) {
		t.Error("overview lacks the day chart with its forecast")
	}
	// The meter page draws the forecast beside the history.
	_, page = get(t, app, "/meters/house")
	if !strings.Contains(page, `"id":"forecast"`) || !strings.Contains(page, `"type":"dashed"`) {
		t.Error("meter page lacks the dashed forecast")
	}
}

func TestRedirectsStayOnTheSite(t *testing.T) {
	app, _ := newApp(t)
	for _, c := range []struct{ back, want string }{
		{"/meters", "/meters"}, {"/meters/a%3Ab%3Fx%3D1", "/meters/a:b?x=1"},
		{"//evil.example/", "/"}, {"https://evil.example/", "/"}, {"/%09/evil.example", "/"},
		{"/\\evil", "/"}, {"/%0B", "/"}, {"evil", "/"}, {"/%2F/evil.example", "/"}, {"/%5Cevil", "/"},
	} {
		res, _ := get(t, app, "/lang/es?back="+c.back)
		if got := res.Header.Get("Location"); got != c.want {
			t.Errorf("back=%s went to %q, want %q", c.back, got, c.want)
		}
	}
}

// chartOption returns the option of the chart id that page renders.
func chartOption(t *testing.T, page, id string) map[string]any {
	t.Helper()
	_, rest, ok := strings.Cut(page, "let option_"+id+" = ")
	if !ok {
		t.Fatalf("the page has no chart %q", id)
	}
	js, _, _ := strings.Cut(rest, "\n")
	var opt map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimSpace(js), ";")), &opt); err != nil {
		t.Fatalf("chart %s: %v\n%s", id, err, js)
	}
	return opt
}

// axisRange returns a chart's x axis min and max.
func axisRange(opt map[string]any) (float64, float64) {
	x := opt["xAxis"].([]any)[0].(map[string]any)
	lo, _ := x["min"].(float64)
	hi, _ := x["max"].(float64)
	return lo, hi
}

// seriesData returns the data of a chart's series id as JSON.
func seriesData(t *testing.T, opt map[string]any, id string) string {
	t.Helper()
	for _, s := range opt["series"].([]any) {
		if s := s.(map[string]any); s["id"] == id {
			b, _ := json.Marshal(s["data"])
			return string(b)
		}
	}
	t.Fatalf("no series %q", id)
	return ""
}

// TestLastHourChart checks the overview's chart of the last hour: its axis
// spans exactly the hour however little data it holds, a silence longer
// than the meter's interval (here unknown: the store's max_gap of 10
// minutes) breaks the line, and a lone reading is a dot.
func TestLastHourChart(t *testing.T) {
	now := t0.Add(10 * time.Second) // newApp's clock
	var rs []meter.Reading
	for sec := -50 * 60; sec <= -35*60; sec += 10 {
		rs = append(rs, reading("gappy", sec, 1000))
	}
	for sec := -10 * 60; sec <= 0; sec += 10 {
		rs = append(rs, reading("gappy", sec, 2000))
	}
	// Two days ago, and once in the hour.
	rs = append(rs, reading("lone", -48*3600, 500), reading("lone", -30*60, 700))
	app, _ := newApp(t, rs...)
	requireECharts(t, app)
	_, page := get(t, app, "/")
	opt := chartOption(t, page, "live")
	if lo, hi := axisRange(opt); lo != float64(now.Add(-time.Hour).UnixMilli()) || hi != float64(now.UnixMilli()) {
		t.Errorf("the last hour's axis is %s to %s, want %s to %s", time.UnixMilli(int64(lo)).UTC(), time.UnixMilli(int64(hi)).UTC(), now.Add(-time.Hour), now)
	}
	gappy := seriesData(t, opt, "gappy")
	ms := func(sec int) int64 { return t0.Add(time.Duration(sec) * time.Second).UnixMilli() }
	// The break: halfway between the last reading before the silence and
	// the first after it.
	if want := fmt.Sprintf(`[%d,1],[%d,null],[%d,2]`, ms(-35*60), (ms(-35*60)+ms(-10*60))/2, ms(-10*60)); !strings.Contains(gappy, want) {
		t.Errorf("gappy's line lacks the break %s:\n%s", want, gappy)
	}
	if n := strings.Count(gappy, "null"); n != 1 {
		t.Errorf("gappy's line has %d breaks, want 1", n)
	}
	if lone, want := seriesData(t, opt, "lone"), fmt.Sprintf(`[{"symbol":"circle","value":[%d,0.7]}]`, ms(-30*60)); lone != want {
		t.Errorf("the lone reading is %s, want %s", lone, want)
	}
	if want := `data-breaks="{&#34;gappy&#34;:600000,&#34;lone&#34;:600000}"`; !strings.Contains(page, want) {
		t.Errorf("the page does not hand app.js the breaks %s", want)
	}
	// The day chart: the 24 hours before this hour and the 24 after it.
	day := chartOption(t, page, "day")
	if lo, hi := axisRange(day); lo != float64(t0.Add(-24*time.Hour).UnixMilli()) || hi != float64(t0.Add(25*time.Hour).UnixMilli()) {
		t.Errorf("the day chart's axis is %s to %s, want %s to %s", time.UnixMilli(int64(lo)).UTC(), time.UnixMilli(int64(hi)).UTC(), t0.Add(-24*time.Hour), t0.Add(25*time.Hour))
	}
}

// TestMeterPageZoomsToData checks that a meter's history opens on its data
// when it covers a small part of the week, and that a meter known only from
// older history gets the week up to its newest reading.
func TestMeterPageZoomsToData(t *testing.T) {
	now := t0.Add(10 * time.Second)
	var rs []meter.Reading
	for sec := -7 * 60; sec <= 0; sec += 10 {
		rs = append(rs, reading("new", sec, 1000))
	}
	old := t0.Add(-30 * 24 * time.Hour)
	for h := range 24 {
		rs = append(rs, meter.Reading{Meter: "old", Time: old.Add(time.Duration(h) * time.Hour), PowerW: 300, Stamped: true})
	}
	app, _ := newApp(t, rs...)
	requireECharts(t, app)

	_, page := get(t, app, "/meters/new")
	opt := chartOption(t, page, "history")
	to := now.Add(time.Minute)
	from := to.Add(-7 * 24 * time.Hour)
	if lo, hi := axisRange(opt); lo != float64(from.UnixMilli()) || hi != float64(to.UnixMilli()) {
		t.Errorf("the history's axis is %v to %v, want the week to %s", lo, hi, to)
	}
	// The 7 minutes, 5 more before, to the end of the window.
	week := to.Sub(from).Seconds()
	wantStart := 100 * (week - to.Sub(t0.Add(-12*time.Minute)).Seconds()) / week
	for i, dz := range opt["dataZoom"].([]any) {
		dz := dz.(map[string]any)
		start, _ := dz["start"].(float64)
		end, _ := dz["end"].(float64)
		if math.Abs(start-wantStart) > 1e-4 || end != 100 {
			t.Errorf("dataZoom %d: %g%%-%g%%, want %g%%-100%%", i, start, end, wantStart)
		}
	}
	if !strings.Contains(page, `data-break-ms="600000" data-reading-break-ms="600000"`) {
		t.Error("the page does not hand app.js the history's breaks")
	}

	_, page = get(t, app, "/meters/old")
	opt = chartOption(t, page, "history")
	last := old.Add(23 * time.Hour)
	if _, hi := axisRange(opt); hi != float64(last.Add(time.Minute).UnixMilli()) {
		t.Errorf("an old meter's history ends at %s, want a minute after its newest reading, %s", time.UnixMilli(int64(hi)).UTC(), last)
	}
	// Its hourly readings are one line, not 24 dots: their spacing is what
	// the line is measured by.
	if d := seriesData(t, opt, "old"); strings.Contains(d, "null") || strings.Contains(d, "symbol") {
		t.Errorf("hourly history is broken: %s", d)
	}
}

// TestLastHourOfAFastMeter checks that a meter reporting every second
// fills the last hour with its minute means, where the chart showed its
// first 720 readings: the hour's first 12 minutes.
func TestLastHourOfAFastMeter(t *testing.T) {
	var rs []meter.Reading
	for sec := -3600; sec <= 0; sec++ {
		rs = append(rs, reading("fast", sec, 1000))
	}
	app, _ := newApp(t, rs...)
	requireECharts(t, app)
	_, page := get(t, app, "/")
	var pts [][2]any
	if err := json.Unmarshal([]byte(seriesData(t, chartOption(t, page, "live"), "fast")), &pts); err != nil {
		t.Fatal(err)
	}
	if len(pts) < 60 || len(pts) > 62 {
		t.Fatalf("fast's hour has %d points, want its 61 minutes", len(pts))
	}
	first, last := time.UnixMilli(int64(pts[0][0].(float64))).UTC(), time.UnixMilli(int64(pts[len(pts)-1][0].(float64))).UTC()
	if first.After(t0.Add(-59*time.Minute)) || last.Before(t0.Add(-time.Minute)) {
		t.Errorf("fast's points run from %s to %s, want the hour to %s", first, last, t0)
	}
	for _, p := range pts {
		if p[1] != 1.0 {
			t.Errorf("point %v: want 1 kW, no break", p)
			break
		}
	}
}

// TestDayChartHourInProgress checks that the day chart draws the hour in
// progress as its mean power so far: at 10:05, 400 W drawn since 07:00
// read 0.033 kW, the hour's energy so far over a whole hour.
func TestDayChartHourInProgress(t *testing.T) {
	appNow = t0.Add(5 * time.Minute)
	t.Cleanup(func() { appNow = t0.Add(10 * time.Second) })
	var rs []meter.Reading
	for sec := -3 * 3600; sec <= 5*60; sec += 10 {
		rs = append(rs, reading("house", sec, 400))
	}
	app, _ := newApp(t, rs...)
	requireECharts(t, app)
	_, page := get(t, app, "/")
	actual := seriesData(t, chartOption(t, page, "day"), "actual")
	if want := fmt.Sprintf("[%d,0.4]]", t0.UnixMilli()); !strings.HasSuffix(actual, want) {
		t.Errorf("the day chart's hour in progress: %s, want it to end with %s", actual, want)
	}
}
