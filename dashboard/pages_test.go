package dashboard_test

import (
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
