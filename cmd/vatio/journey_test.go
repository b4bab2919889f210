package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// TestFirstHourInBrowser is a new user's first hour, in headless Chromium
// and with a real MQTT client, from a fresh start: the setup of the admin,
// logging out and in again through the form, a token and a device made on
// the Access page, the device publishing with paho and its meter showing
// (with when its newest reading was taken and when Vatio last heard it), a
// tariff and a power rule set on the Settings page, the rule not firing
// before its for: in reading time and firing after, the Costs page pricing
// the day with the tariff typed, the Alerts page in Spanish, and a Datadis
// file brought in on the Meters page with its days on the meter's chart. Every step
// a user takes is taken on the pages; the API and /metrics only check what
// the pages did. It leaves screenshots of the way in testdata/screenshots
// (journey-*).
func TestFirstHourInBrowser(t *testing.T) {
	ctx, blog := browser(t)
	// The user's config.yaml: their time zone, and rules checked every
	// second rather than every 15 s, so the test waits less.
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(cfgPath, []byte("dashboard:\n  timezone: Europe/Madrid\nalerts:\n  evaluate_every: 1s\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	v := startVatioWith(t, t.TempDir(), cfgPath)
	origin := "http://" + v.http
	type_ := func(sel, text string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(chromedp.Clear(sel), chromedp.SendKeys(sel, text))
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(expr string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return s
	}

	// 1. The first visit leads to the setup of the admin, with the admin
	// token the instance was started with.
	do("setup",
		chromedp.Navigate(origin+"/"), chromedp.WaitVisible(`input[name="confirm"]`),
		chromedp.SendKeys(`input[name="password"]`, "a long enough password"),
		chromedp.SendKeys(`input[name="confirm"]`, "a long enough password"),
		chromedp.SendKeys(`input[name="token"]`, testAdminToken),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible("#empty"))
	screenshot(t, ctx, "journey-1-empty", 1280, 900, "#empty")

	// 2. Log out, and in again through the form.
	do("log out", chromedp.Click(`form.who button[type="submit"]`), chromedp.WaitVisible(`input[name="user"]`))
	if got := text(`location.pathname`); got != "/login" {
		t.Errorf("after logging out the browser is on %s, want /login", got)
	}
	do("log in",
		chromedp.SendKeys(`input[name="user"]`, "admin"),
		chromedp.SendKeys(`input[name="password"]`, "a long enough password"),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible("#empty"))

	// 3. On the Access page: a token for scripts, which the test then uses
	// to check results, and a device for the heater's MQTT client.
	do("make a token",
		chromedp.Click(`nav a[href="/access"]`), chromedp.WaitVisible("#tokens-heading"),
		chromedp.SendKeys(`form[data-kind="token"] input[name="name"]`, "my scripts"),
		chromedp.SetValue(`form[data-kind="token"] select[name="role"]`, "viewer"),
		chromedp.Click(`form[data-kind="token"] button[type="submit"]`),
		chromedp.WaitVisible(`form[data-kind="token"] .secret code`))
	token := text(`document.querySelector('form[data-kind="token"] .secret code').textContent`)
	do("token copied", chromedp.Click(`form[data-kind="token"] .secret-done`),
		chromedp.WaitVisible(`//table[@id="tokens"]//tr[td[contains(., "my scripts")]]`))
	// api GETs path with the token made on the page.
	api := func(path string, into any) int {
		t.Helper()
		req, _ := http.NewRequest("GET", origin+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if into != nil && resp.StatusCode == 200 {
			if err := json.Unmarshal(b, into); err != nil {
				t.Fatalf("GET %s: %s: %v", path, b, err)
			}
		}
		return resp.StatusCode
	}
	var me struct{ Role string }
	if code := api("/api/v1/me", &me); code != 200 || me.Role != "viewer" {
		t.Fatalf("the token made on the page: GET /api/v1/me = %d %+v, want 200 viewer", code, me)
	}
	do("add a device",
		chromedp.SendKeys(`form[data-kind="device"] input[name="name"]`, "heater"),
		chromedp.Click(`form[data-kind="device"] button[type="submit"]`),
		chromedp.WaitVisible(`form[data-kind="device"] .secret dl dd`))
	creds, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(function () {
		var out = {};
		document.querySelectorAll('form[data-kind="device"] .secret dt').forEach(function (dt) { out[dt.textContent] = dt.nextElementSibling.textContent; });
		return out;
	})()`))
	if err != nil || creds["user"] != "heater" || creds["password"] == "" {
		t.Fatalf("the device's settings on the page: %v, %v", creds, err)
	}
	screenshot(t, ctx, "journey-3-access", 1280, 900, "#tokens-heading")

	// 4. The heater logs in to the broker with what the page gave and
	// publishes; its meter appears on the overview by itself. Its readings
	// carry their times (a device that buffers): the first was taken a
	// minute before it reached Vatio.
	heater := paho3.NewClient(paho3.NewClientOptions().AddBroker("tcp://" + v.mqtt).SetClientID("heater").
		SetUsername(creds["user"]).SetPassword(creds["password"]).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := heater.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("the device made on the page cannot log in: %v", tok.Error())
	}
	t.Cleanup(func() { heater.Disconnect(100) })
	base := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	publish := func(at time.Time, powerW float64) {
		t.Helper()
		mqtttest.Publish3(t, heater, "energy/consumption/heater", 1, false, fmt.Sprintf(`{"power_w": %g, "ts": %q}`, powerW, at.Format(time.RFC3339)))
	}
	do("overview", chromedp.Click(`a.brand`), chromedp.WaitVisible("#empty"))
	sent := time.Now()
	publish(base, 500)
	waitEval(t, ctx, "the heater's card", cardPower("heater"), func(s string) bool { return s == "500 W" })
	screenshot(t, ctx, "journey-4-overview", 1280, 900, "#live")

	// The meters page tells when the newest reading was taken from when
	// Vatio last heard the meter.
	do("meters page", chromedp.Click(`nav a[href="/meters"]`), chromedp.WaitVisible(`tr[data-meter="heater"]`))
	times, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('tr[data-meter="heater"] time')).map(function (e) { return e.getAttribute("datetime"); })`))
	if err != nil || len(times) != 2 {
		t.Fatalf("the heater's row has times %q, %v; want its newest reading and when it was last heard", times, err)
	}
	newest, err1 := time.Parse(time.RFC3339, times[0])
	heard, err2 := time.Parse(time.RFC3339, times[1])
	if err1 != nil || err2 != nil || !newest.Equal(base) || heard.Before(sent.Add(-time.Second)) || heard.After(time.Now()) {
		t.Errorf("meters page: newest reading %s, last heard %s; want %s (the reading's own time) and about %s (when it came)", times[0], times[1], base.Format(time.RFC3339), sent.UTC().Format(time.RFC3339))
	}
	heads := text(`Array.from(document.querySelectorAll("table.meters thead th")).map(function (e) { return e.textContent; }).join("|")`)
	if !strings.Contains(heads, "Newest reading") || !strings.Contains(heads, "Last heard") {
		t.Errorf("meters page headings %q, want Newest reading and Last heard", heads)
	}
	screenshot(t, ctx, "journey-4-meters", 1280, 900, "table.meters")

	// 5. The tariff, on the Settings page: euros, 0.25 a kWh outside its
	// periods, 0.20 in its one period, 0.50 a day.
	do("tariff",
		chromedp.Click(`nav a[href="/settings"]`), chromedp.WaitVisible("#tariff-form"),
		type_("#tariff-currency", "eur"),
		type_("#tariff-price_kwh", "0.25"),
		type_("#tariff-daily_charge", "0.5"),
		// A period that covers every hour: it, not the flat price, prices
		// the day.
		chromedp.SendKeys("#period-0-name", "todo el día"),
		chromedp.SendKeys("#period-0-price_kwh", "0.2"),
		chromedp.SendKeys("#period-0-days", "all"),
		chromedp.SendKeys("#period-0-from", "00:00"),
		chromedp.SendKeys("#period-0-to", "24:00"),
		chromedp.Click("#tariff-save"),
		chromedp.WaitVisible("#settings-done, #settings-failed"))
	if errs := text(`Array.from(document.querySelectorAll("#settings-failed, .errors li")).map(function (e) { return e.textContent; }).join("; ")`); errs != "" {
		t.Fatalf("the tariff form refused what was typed: %s", errs)
	}
	if src := text(`document.getElementById("tariff-source").dataset.source`); src != "database" {
		t.Errorf("after saving, the tariff in force comes from %q, want database", src)
	}
	var tariff struct {
		Source string `json:"source"`
		Tariff struct {
			Currency    string  `json:"currency"`
			PriceKWh    float64 `json:"price_kwh"`
			DailyCharge float64 `json:"daily_charge"`
			Periods     []struct {
				Name     string   `json:"name"`
				PriceKWh float64  `json:"price_kwh"`
				Days     []string `json:"days"`
				From     string   `json:"from"`
				To       string   `json:"to"`
			} `json:"periods"`
		} `json:"tariff"`
		Saved struct {
			SavedBy string `json:"saved_by"`
		} `json:"saved"`
	}
	api("/api/v1/tariff", &tariff)
	if tr := tariff.Tariff; tariff.Source != "database" || tariff.Saved.SavedBy != "admin" || tr.Currency != "EUR" || tr.PriceKWh != 0.25 || tr.DailyCharge != 0.5 ||
		len(tr.Periods) != 1 || tr.Periods[0].Name != "todo el día" || tr.Periods[0].PriceKWh != 0.2 || tr.Periods[0].From != "00:00" || tr.Periods[0].To != "24:00" {
		t.Errorf("the tariff saved on the page: %+v", tariff)
	}

	// 6. A rule on the same page: the heater above 2 kW for 30 s.
	do("rule",
		chromedp.WaitVisible("#rule-form"),
		chromedp.SendKeys("#rule-id", "heater-on"),
		chromedp.SetValue("#rule-kind", "power_above"),
		type_("#rule-meter", "heater"),
		chromedp.SetValue("#rule-severity", "warning"),
		type_("#rule-threshold_w", "2000"),
		type_("#rule-for", "30s"),
	)
	if on := text(`String(document.getElementById("rule-enabled").checked)`); on != "true" {
		do("enable the rule", chromedp.Click("#rule-enabled"))
	}
	do("save the rule", chromedp.Click("#rule-save"), chromedp.WaitVisible("#settings-done, #settings-failed"))
	if errs := text(`Array.from(document.querySelectorAll("#settings-failed, .errors li")).map(function (e) { return e.textContent; }).join("; ")`); errs != "" {
		t.Fatalf("the rule form refused what was typed: %s", errs)
	}
	do("the rule listed", chromedp.WaitVisible(`tr#rule-heater-on[data-enabled="true"]`))
	var rule struct {
		Kind       string  `json:"kind"`
		Meter      string  `json:"meter"`
		ThresholdW float64 `json:"threshold_w"`
		For        string  `json:"for"`
		Enabled    bool    `json:"enabled"`
	}
	if code := getJSON(t, origin+"/api/v1/rules/heater-on", &rule); code != 200 || rule.Kind != "power_above" || rule.Meter != "heater" ||
		rule.ThresholdW != 2000 || rule.For != "30s" || !rule.Enabled {
		t.Errorf("the rule saved on the page: %d %+v", code, rule)
	}
	screenshot(t, ctx, "journey-6-settings", 1280, 900, "#rule-form")
	// At 1280 px the rules table keeps its state on one line ("Enabl/ed"
	// broke there once); the form shows Hysteresis only for the kinds that
	// use it; deleting a rule asks first, and a no keeps it.
	// A rule on a mistyped meter, whose long warning squeezes the table
	// (made with the API, deleted after).
	typo := `{"id": "typo", "kind": "power_above", "meter": "kitchn", "threshold_w": 1000, "severity": "info", "enabled": true}`
	if res, err := apiClient.Post(origin+"/api/v1/rules", "application/json", strings.NewReader(typo)); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("a rule on a mistyped meter: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	do("the settings page with a warning", chromedp.Navigate(origin+"/settings"), chromedp.WaitVisible("tr#rule-typo .rule-warning"))
	for _, id := range []string{"heater-on", "typo"} {
		if lines := text(`(function () { var r = document.createRange(); r.selectNodeContents(document.querySelector("tr#rule-` + id + ` td:nth-child(5)").firstChild); return String(r.getClientRects().length); })()`); lines != "1" {
			t.Errorf("rule %s's state takes %s lines at 1280 px, want 1", id, lines)
		}
	}
	screenshot(t, ctx, "journey-6-settings-phone", 360, 800, "tr#rule-typo .rule-warning")
	do("back to 1280 px", chromedp.EmulateViewport(1280, 900))
	if req, err := http.NewRequest(http.MethodDelete, origin+"/api/v1/rules/typo", nil); err != nil {
		t.Fatal(err)
	} else if res, err := apiClient.Do(req); err != nil || res.StatusCode/100 != 2 {
		t.Fatalf("deleting the typo rule: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	hysteresis := func(kind string) string {
		return text(`(function () { var k = document.getElementById("rule-kind"); k.value = "` + kind + `"; k.dispatchEvent(new Event("change")); return String(document.getElementById("rule-hysteresis_w").closest("label").hidden); })()`)
	}
	for kind, hidden := range map[string]string{"silent": "true", "energy_budget": "true", "out_of_range": "false", "power_above": "false"} {
		if got := hysteresis(kind); got != hidden {
			t.Errorf("Hysteresis hidden for %s: %s, want %s", kind, got, hidden)
		}
	}
	text(`window.asked = ""; window.confirm = function (q) { window.asked = q; return false; }; ""`)
	do("delete the rule, then say no", chromedp.Click("#rule-heater-on-delete"))
	waitEval(t, ctx, "the question before deleting a rule", `window.asked`, func(s string) bool { return strings.HasPrefix(s, "Delete this rule?") })
	if code := getJSON(t, origin+"/api/v1/rules/heater-on", &rule); code != 200 || text(`location.pathname`) != "/settings" {
		t.Fatalf("after saying no to deleting it, the rule: %d, page %s", code, text(`location.pathname`))
	}

	// 7. The heater goes above 2 kW, reading every 2 s. 28 s of it, however
	// many rounds of the rules pass, fire nothing; the reading taken 30 s
	// after the first above does.
	for i := 1; i <= 15; i++ { // base+2s .. base+30s: 28 s above
		publish(base.Add(time.Duration(2*i)*time.Second), 2400)
	}
	var m struct {
		Readings int `json:"readings"`
	}
	waitCheck(t, "16 readings stored", func() bool { return api("/api/v1/meters/heater", &m) == 200 && m.Readings == 16 })
	after := evaluationRounds(t, origin)
	waitCheck(t, "two rounds of the rules", func() bool { return evaluationRounds(t, origin) >= after+2 })
	do("alerts page", chromedp.Click(`nav a[href="/alerts"]`), chromedp.WaitVisible("#active-heading"))
	if body := text(`document.querySelector("main").innerText`); strings.Contains(body, "above 2.00 kW") {
		t.Fatalf("the rule fired on 28 s above its threshold; the alerts page says:\n%s", body)
	}
	var alerts struct {
		Alerts []struct{ Rule, State string }
	}
	if api("/api/v1/alerts", &alerts); len(alerts.Alerts) != 0 {
		t.Fatalf("the rule fired on 28 s above its threshold: %+v", alerts.Alerts)
	}
	publish(base.Add(32*time.Second), 2400) // 30 s above
	firing := func() bool {
		api("/api/v1/alerts", &alerts)
		return len(alerts.Alerts) == 1 && alerts.Alerts[0].Rule == "heater-on" && alerts.Alerts[0].State == "firing"
	}
	deadline := time.Now().Add(15 * time.Second)
	for !firing() {
		if time.Now().After(deadline) {
			var heater map[string]any
			api("/api/v1/meters/heater", &heater)
			t.Fatalf("the rule has not fired 15 s after the reading 30 s above its threshold: alerts %+v, %d rounds of the rules since the 28 s, meter %v",
				alerts.Alerts, evaluationRounds(t, origin)-after, heater)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// fired is the firing alert's line on the alerts page, "" without one.
	fired := `(function () {
			var li = Array.from(document.querySelectorAll("ul.alerts li.alert.warning")).filter(function (li) { return li.querySelector(".badge.state-firing"); })[0];
			return li ? li.textContent.replace(/\s+/g, " ").trim() : "";
		})()`
	do("alerts page again", chromedp.Reload(), chromedp.WaitVisible("#active-heading"))
	got := text(fired)
	if !strings.Contains(got, "heater: power 2.40 kW above 2.00 kW for 30 s") {
		t.Errorf("the firing alert reads %q", got)
	}
	screenshot(t, ctx, "journey-7-alerts", 1280, 900, "#active-heading")

	// 8. The Costs page prices today with the tariff typed: the energy
	// at the period's 0.20 EUR a kWh and the day's 0.50 EUR.
	var day struct {
		Points []struct {
			EnergyKWh float64 `json:"energy_kwh"`
			Cost      float64 `json:"cost"`
		} `json:"points"`
	}
	madrid, _ := time.LoadLocation("Europe/Madrid")
	now := time.Now().In(madrid)
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, madrid)
	api("/api/v1/meters/heater/energy?interval=day&from="+neturl.QueryEscape(midnight.Format(time.RFC3339)), &day)
	if len(day.Points) != 1 || day.Points[0].EnergyKWh <= 0.02 || math.Abs(day.Points[0].Cost-day.Points[0].EnergyKWh*0.2) > 1e-4 {
		t.Fatalf("today's energy = %+v, want more than the 20 Wh of 30 s at 2.4 kW, priced at 0.20 a kWh (to the API's 4 decimals)", day.Points)
	}
	do("costs page", chromedp.Click(`nav a[href="/costs"]`), chromedp.WaitVisible("#daycost"))
	wantToday := strconv.FormatFloat(day.Points[0].Cost+0.5, 'f', 2, 64) + " EUR"
	if got := text(`document.querySelector(".summary .figure .big").textContent`); got != wantToday {
		t.Errorf("the Costs page's today: %q, want %q", got, wantToday)
	}
	// A few cents a month still get an axis that reads: no two ticks
	// written the same.
	for _, id := range []string{"daycost", "months"} {
		distinctTicks(t, ctx, id)
	}
	screenshot(t, ctx, "journey-8-costs", 1280, 900, "#daycost")

	// 9. In Spanish, chosen with the switch: the alert too.
	do("español", chromedp.Click(`nav a[href="/alerts"]`), chromedp.WaitVisible("#active-heading"),
		chromedp.Click(`a[hreflang="es"]`), chromedp.WaitVisible(`//h1[text()="Alertas"]`))
	got = text(fired)
	if !strings.Contains(got, "heater: potencia de 2,40 kW por encima de 2,00 kW durante 30 s") {
		t.Errorf("the firing alert in Spanish reads %q", got)
	}
	screenshot(t, ctx, "journey-9-alerts-es", 1280, 900, "#active-heading")
	do("costs in Spanish", chromedp.Click(`nav a[href="/costs"]`), chromedp.WaitVisible(`//h1[text()="Costes"]`))
	if got, want := text(`document.querySelector(".summary .figure .big").textContent`), strings.Replace(wantToday, ".", ",", 1); got != want {
		t.Errorf("the Costs page's today in Spanish: %q, want %q", got, want)
	}

	// 10. Last, the history the utility gives: a Datadis file, brought in
	// on the Medidores page with the meter left empty (its CUPS names it).
	// Its days show on the meter's daily chart, to the file's kWh.
	file, err := filepath.Abs("../../internal/meter/testdata/history/datadis-dst.csv")
	if err != nil {
		t.Fatal(err)
	}
	datadis := utilityFiles[0]
	do("import a Datadis file",
		chromedp.Click(`nav a[href="/meters"]`), chromedp.WaitVisible("#import-form"),
		chromedp.SetUploadFiles("#import-file", []string{file}),
		chromedp.Click("#import-submit"),
		chromedp.WaitVisible("#import-result, #import-errors"))
	if errs := text(`Array.from(document.querySelectorAll("#import-errors li")).map(function (e) { return e.textContent; }).join("; ")`); errs != "" {
		t.Fatalf("the import form refused the Datadis file: %s", errs)
	}
	result, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.assign({text: document.getElementById("import-result").textContent.replace(/\s+/g, " ").trim()}, document.getElementById("import-result").dataset)`))
	if err != nil {
		t.Fatal(err)
	}
	if result["meter"] != datadis.meter || result["format"] != "datadis" || result["readings"] != "672" || result["first"] != "2026-03-28" || result["last"] != "2026-10-26" {
		// 96 hours, each stored as 7 readings no further apart than
		// store.max_gap (10 min), so that the store integrates the hour.
		t.Errorf("the import's result: %v, want 672 readings of meter %s from 2026-03-28 to 2026-10-26", result, datadis.meter)
	}
	screenshot(t, ctx, "journey-10-import-es", 1280, 900, "#import-result")
	do("open the imported meter", chromedp.Click("#import-meter-link"), chromedp.WaitVisible("#daily"))
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function () {
		var chart = echarts.getInstanceByDom(document.getElementById("daily"));
		if (!chart) return "";
		var o = chart.getOption();
		return o.xAxis[0].data.map(function (l, i) { var d = o.series[0].data[i]; return l + "=" + (d && typeof d === "object" ? d.value : d); }).join("|");
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	// The chart's 30 days end on the file's last day: 25 and 26 October,
	// the day of 25 hours and the one after, as the file adds them up.
	days := strings.Split(bars, "|")
	if len(days) != 30 || days[28] != "dom 25 oct=22.332" || days[29] != "lun 26 oct=17.622" {
		t.Errorf("the imported meter's daily chart: %q; want its last two days dom 25 oct=22.332 and lun 26 oct=17.622", days)
	}
	for _, d := range days[:28] {
		if !strings.HasSuffix(d, "=0") {
			t.Errorf("the imported meter's daily chart has %s, a day the file does not have", d)
		}
	}
	// The API, with the token made on the page, agrees to the file's kWh,
	// priced by the period typed on the Settings page.
	from := time.Date(2026, 10, 25, 0, 0, 0, 0, madrid)
	var oct struct {
		Points []struct {
			EnergyKWh float64 `json:"energy_kwh"`
			Cost      float64 `json:"cost"`
		} `json:"points"`
	}
	api(fmt.Sprintf("/api/v1/meters/%s/energy?interval=day&from=%s&to=%s", datadis.meter,
		neturl.QueryEscape(from.Format(time.RFC3339)), neturl.QueryEscape(from.AddDate(0, 0, 2).Format(time.RFC3339))), &oct)
	if len(oct.Points) != 2 {
		t.Fatalf("the imported meter's 25 and 26 October: %+v", oct.Points)
	}
	for i, want := range datadis.days[2:] {
		got := oct.Points[i]
		if math.Abs(got.EnergyKWh-want.in) > 1e-6 || math.Abs(got.Cost-want.in*0.2) > 1e-4 {
			t.Errorf("%s: %g kWh for %g, want the file's %g kWh at 0.20", want.date, got.EnergyKWh, got.Cost, want.in)
		}
	}
	screenshot(t, ctx, "journey-10-meter-es", 1280, 900, "#daily")
	blog.check(t, origin)
}

// waitCheck waits until ok holds, 15 s at most.
func waitCheck(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 15 s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var evaluationsLine = regexp.MustCompile(`(?m)^vatio_rule_evaluations_total (\d+)`)

// evaluationRounds is how many rounds of the alert rules have run.
func evaluationRounds(t *testing.T, origin string) int {
	t.Helper()
	resp, err := apiClient.Get(origin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := evaluationsLine.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no vatio_rule_evaluations_total in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// distinctTicks fails when two ticks of the value axis of chart id are
// written the same (0, 0, 0.01, 0.01), as its labels show them.
func distinctTicks(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	got := waitEval(t, ctx, id+"'s axis", fmt.Sprintf(`(function () {
		var el = document.getElementById(%q);
		var chart = el && window.echarts && echarts.getInstanceByDom(el);
		if (!chart) return "";
		var f = chart.getOption().yAxis[0].axisLabel.formatter;
		if (typeof f !== "function") return "";
		return chart.getModel().getComponent("yAxis", 0).axis.scale.getTicks().map(function (t) { return f(t.value); }).join("|");
	})()`, id), func(s string) bool { return s != "" })
	seen := map[string]bool{}
	for _, l := range strings.Split(got, "|") {
		if seen[l] {
			t.Errorf("%s: the value axis reads %s", id, got)
			return
		}
		seen[l] = true
	}
}
