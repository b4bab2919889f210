package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/dashboard"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/modbus"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/internal/testutil/modbustest"
	"github.com/vatio-energy/vatio/store"
)

// site is Vatio's HTTP side as it runs: the API with authentication and
// the audit log, the dashboard on its router, over real HTTP, on a real
// store, with a config.yaml tariff of 0.20 EUR/kWh and one rule from
// config.yaml.
type site struct {
	url     string
	st      *store.Store
	tariffs *energy.Tariffs
	rules   *alert.Rules
	audit   *audit.Log
	// poller polls the Modbus devices (config.yaml's plant-main, at an
	// address where nothing answers) once a test runs it.
	poller  *modbus.Poller
	devices *modbus.Devices
	tenants *statement.Tenants
	// schedules mail through mail: config.yaml's server is not there.
	schedules *statement.Schedules
	mail      *alert.Mail
}

func startSite(t *testing.T, tweak ...func(*api.Options)) *site {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	users, err := auth.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range auth.Roles {
		if _, err := users.AddUser(role, "a long password for "+role, role); err != nil {
			t.Fatal(err)
		}
	}
	config, err := tariff.Spec{Currency: "EUR", PriceKWh: 0.2, CO2GramsKWh: 250}.Build(madrid)
	if err != nil {
		t.Fatal(err)
	}
	tariffs, err := energy.NewTariffs(st, config, nil)
	if err != nil {
		t.Fatal(err)
	}
	alerts := alert.New(st, nil, alert.Options{})
	t.Cleanup(alerts.Close)
	rules, err := alert.NewRules(st, alerts, tariffs, []alert.Rule{
		{ID: "quiet", Kind: alert.Silent, Meter: "*", Severity: "warning", Enabled: true, SilentFor: alert.Duration(time.Hour)},
	}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(st, nil)
	poller, err := modbus.New(nil, func(string, []meter.Reading) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	devices, err := modbus.NewDevices(st, []modbus.Spec{{Name: "plant-main", URL: "tcp://127.0.0.1:9", Profile: "sdm630"}}, poller, nil)
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := statement.NewTenants(st)
	if err != nil {
		t.Fatal(err)
	}
	mailer, err := alert.NewMail(st, alert.MailSpec{Addr: "127.0.0.1:1", From: "vatio@example.org", TLS: "none", Timeout: alert.Duration(time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	schedules := statement.NewSchedules(statement.Source{Store: st, Tariffs: tariffs, Tenants: tenants}, mailer, nil)
	opts := api.Options{BodyLimitBytes: 1 << 16, Auth: users, Audit: log, Tariff: tariffs, Rules: rules, Modbus: poller, ModbusDevices: devices, Tenants: tenants,
		Schedules: schedules, Mail: mailer}
	for _, f := range tweak {
		f(&opts)
	}
	srv := api.New(st, alerts, opts)
	dashboard.New(st, dashboard.Options{Location: madrid, Tariff: tariffs, Auth: users, Audit: log, Rules: rules,
		ImportForm: srv.ImportForm, Modbus: poller, ModbusDevices: devices, Tenants: tenants, Schedules: schedules, Mail: mailer}).Register(srv.Router())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	if err := st.Append(reading("kitchen", 0, 1500), nil); err != nil {
		t.Fatal(err)
	}
	st.Flush()
	return &site{url: "http://" + ln.Addr().String(), st: st, tariffs: tariffs, rules: rules, audit: log, poller: poller, devices: devices, tenants: tenants, schedules: schedules, mail: mailer}
}

// browser is a logged-in user's session: its cookie and CSRF token.
type browser struct {
	t      *testing.T
	s      *site
	cookie string
	csrf   string
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// login logs role's user in through the login form and reads the CSRF
// token from the settings page.
func (s *site) login(t *testing.T, role string) *browser {
	t.Helper()
	b := &browser{t: t, s: s}
	res, _ := b.send("POST", "/login", url.Values{"user": {role}, "password": {"a long password for " + role}, "next": {"/settings"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("log in as %s: %d", role, res.StatusCode)
	}
	for _, c := range res.Cookies() {
		if c.Name == auth.SessionCookie {
			b.cookie = c.Name + "=" + c.Value
		}
	}
	_, page := b.get("/settings")
	m := csrfMeta.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the settings page:\n%s", page)
	}
	b.csrf = m[1]
	return b
}

// send makes a request (a form post when form is not nil), following no
// redirect, and returns the response and its body.
func (b *browser) send(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.s.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.cookie != "" {
		req.Header.Set("Cookie", b.cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, string(out)
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	return b.send("GET", path, nil)
}

// post posts form with the session's CSRF token.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	form.Set("csrf", b.csrf)
	return b.send("POST", path, form)
}

// tariffForm is the tariff form as a user fills it in: 2.0TD-like periods.
func tariffForm() url.Values {
	return url.Values{
		"currency": {"EUR"}, "price_kwh": {"0.08"}, "export_price_kwh": {"0.05"}, "daily_charge": {"0.3"},
		"demand_charge_kw": {"4"}, "co2_g_kwh": {"180"}, "reactive_price_kvarh": {""},
		"period_name":      {"punta", "llano", ""},
		"period_price_kwh": {"0.25", "0,15", ""},
		"period_days":      {"weekdays", "mon, tue, wed, thu, fri", ""},
		"period_from":      {"10:00", "08:00", ""},
		"period_to":        {"14:00", "10:00", ""},
		"holidays":         {"2026-12-08, 2026-12-25"},
	}
}

// TestSettingsTariffForm: the settings page says which tariff is in force
// and why; an admin's form post saves a tariff that prices from the next
// request, a wrong one comes back with each field's error and what was
// typed, and nothing saved changes; going back to config.yaml's works;
// viewers and operators see the form but may not post it; a post without
// the CSRF token is refused; each change is audited.
func TestSettingsTariffForm(t *testing.T) {
	s := startSite(t)
	viewer, operator, admin := s.login(t, auth.Viewer), s.login(t, auth.Operator), s.login(t, auth.Admin)

	_, page := viewer.get("/settings")
	for _, want := range []string{`id="tariff-source" data-source="config"`, `the tariff section of config.yaml`, `id="tariff-admins"`,
		`id="tariff-view"`, `<dt>Price per kWh (outside every period)</dt><dd>0.2</dd>`, `href="/settings" aria-current="page"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the viewer's settings page lacks %s", want)
		}
	}
	// A viewer reads the tariff: no form of disabled inputs that look
	// editable, no empty rows.
	for _, not := range []string{`id="tariff-save"`, `id="tariff-form"`, `name="price_kwh"`, `disabled`} {
		if strings.Contains(page, not) {
			t.Errorf("the viewer's settings page has %s", not)
		}
	}
	for role, b := range map[string]*browser{auth.Viewer: viewer, auth.Operator: operator} {
		if res, _ := b.post("/settings/tariff", tariffForm()); res.StatusCode != http.StatusForbidden {
			t.Errorf("a tariff posted by a %s: %d, want 403", role, res.StatusCode)
		}
	}
	if res, _ := admin.send("POST", "/settings/tariff", tariffForm()); res.StatusCode != http.StatusForbidden {
		t.Errorf("a tariff posted without the CSRF token: %d, want 403", res.StatusCode)
	}
	if s.tariffs.State().Source != energy.FromConfig {
		t.Fatal("a refused post saved a tariff")
	}

	_, page = admin.get("/settings")
	if !strings.Contains(page, `id="tariff-save"`) || strings.Contains(page, `<fieldset disabled>`) {
		t.Error("the admin's tariff form is not open to change")
	}
	wednesday11 := time.Date(2026, 11, 25, 11, 0, 0, 0, madrid)
	if p := s.tariffs.Current().Price(wednesday11); p != 0.2 {
		t.Fatalf("price before the post = %g", p)
	}
	res, _ := admin.post("/settings/tariff", tariffForm())
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/settings?done=tariff_saved#tariff" {
		t.Fatalf("the admin's tariff post: %d to %q, want 303 to the settings page", res.StatusCode, res.Header.Get("Location"))
	}
	if p := s.tariffs.Current().Price(wednesday11); p != 0.25 {
		t.Errorf("Wednesday 11:00 after the post = %g, want the posted peak's 0.25", p)
	}
	if p := s.tariffs.Current().Price(time.Date(2026, 11, 25, 9, 0, 0, 0, madrid)); p != 0.15 {
		t.Errorf("Wednesday 09:00 after the post = %g, want 0.15 (typed 0,15)", p)
	}
	if st := s.tariffs.State(); len(st.Tariff.Periods) != 2 || len(st.Tariff.Holidays) != 2 || st.Tariff.DemandChargeKW != 4 || st.Saved.SavedBy != "admin" {
		t.Errorf("saved = %+v", st)
	}
	_, page = admin.get("/settings?done=tariff_saved")
	for _, want := range []string{`id="settings-done"`, `Tariff saved: every cost shown, past ones included`, `data-confirm="Remove the saved tariff?`, `data-source="database"`, `saved by admin`,
		`id="period-1-name" name="period_name" value="llano"`, `id="period-1-days" name="period_days" value="mon, tue, wed, thu, fri"`,
		`id="period-3-name" name="period_name" value=""`, `id="tariff-remove"`, `id="tariff-config"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page after saving lacks %s", want)
		}
	}

	// A viewer reads the saved periods in a table, in their language.
	viewerES := *viewer
	viewerES.cookie += "; vatio_lang=es"
	_, page = viewerES.get("/settings")
	for _, want := range []string{`id="tariff-periods-view"`, `<td data-label="Nombre">punta</td>`, `<td data-label="Días">laborables</td>`,
		`<td data-label="Días">lun, mar, mié, jue, vie</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the Spanish viewer's settings page lacks %s", want)
		}
	}

	bad := tariffForm()
	bad.Set("currency", "euro")
	bad.Set("price_kwh", "cheap")
	bad["period_days"] = []string{"weekdays", "funday", ""}
	bad["period_to"] = []string{"14:00", "25:00", ""}
	res, page = admin.post("/settings/tariff", bad)
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a wrong tariff: %d, want 400", res.StatusCode)
	}
	for _, want := range []string{`id="settings-failed"`, `id="tariff-errors"`, `<code>tariff.price_kwh</code>: &#34;cheap&#34; is not a number`,
		`id="tariff-price_kwh" name="price_kwh" value="cheap" inputmode="decimal" aria-invalid="true"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page refusing a wrong tariff lacks %s", want)
		}
	}
	bad.Set("price_kwh", "0.1")
	bad.Set("holidays", "2026-12-25 2026-13-01")
	_, page = admin.post("/settings/tariff", bad)
	for _, want := range []string{"<code>tariff.currency</code>", "<code>tariff.periods[1].days</code>", "<code>tariff.periods[1].to</code>",
		"<code>tariff.holidays[1]</code>", `id="tariff-holidays" name="holidays" rows="2" placeholder="2026-12-25 2027-01-01" aria-invalid="true"`,
		`id="period-1-days" name="period_days" value="funday"`, `id="tariff-currency" name="currency" value="euro"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page refusing a wrong tariff lacks %s", want)
		}
	}
	if p := s.tariffs.Current().Price(wednesday11); p != 0.25 {
		t.Errorf("after refused posts the price = %g, want the saved 0.25", p)
	}

	// In Spanish: the form shows and takes Spanish day names, and says
	// what is wrong in Spanish.
	adminES := *admin
	adminES.cookie += "; vatio_lang=es"
	_, page = adminES.get("/settings")
	if !strings.Contains(page, `id="period-1-days" name="period_days" value="lun, mar, mié, jue, vie"`) {
		t.Error("the Spanish tariff form does not show the days in Spanish")
	}
	spanish := tariffForm()
	spanish["period_days"] = []string{"laborables", "Sáb, dom", ""}
	if res, _ := adminES.post("/settings/tariff", spanish); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a tariff with Spanish days: %d, want 303", res.StatusCode)
	}
	saturday9 := time.Date(2026, 11, 28, 9, 0, 0, 0, madrid)
	if days := s.tariffs.State().Tariff.Periods[1].Days; len(days) != 2 || days[0] != "sat" || days[1] != "sun" {
		t.Errorf("days typed Sáb, dom saved as %v", days)
	}
	if p := s.tariffs.Current().Price(saturday9); p != 0.15 {
		t.Errorf("Saturday 09:00 = %g, want 0.15", p)
	}
	spanish["period_days"] = []string{"fin de semana", "lunes", ""}
	if res, _ := adminES.post("/settings/tariff", spanish); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a tariff with days fin de semana, lunes: %d, want 303", res.StatusCode)
	}
	if days := s.tariffs.State().Tariff.Periods[0].Days; len(days) != 1 || days[0] != "weekend" {
		t.Errorf("fin de semana saved as %v", days)
	}
	spanish.Set("price_kwh", "mil")
	_, page = adminES.post("/settings/tariff", spanish)
	if !strings.Contains(page, `<code>tariff.price_kwh</code>: &#34;mil&#34; no es un número`) || strings.Contains(page, "is not") {
		t.Error("the Spanish page refusing a price that is no number does not say so in Spanish")
	}
	spanish.Set("price_kwh", "0.1")
	spanish.Set("currency", "euro")
	spanish["period_to"] = []string{"14:00", "25:00", ""}
	_, page = adminES.post("/settings/tariff", spanish)
	for _, want := range []string{`<code>tariff.currency</code>: un código de moneda de tres letras`, `<code>tariff.periods[1].to</code>: una hora HH:MM`} {
		if !strings.Contains(page, want) {
			t.Errorf("the Spanish page refusing a wrong tariff lacks %s", want)
		}
	}
	spanish.Set("currency", "EUR")
	spanish["period_to"] = []string{"14:00", "10:00", ""}
	spanish["period_days"] = []string{"laborables", "festivo", ""}
	_, page = adminES.post("/settings/tariff", spanish)
	if !strings.Contains(page, `<code>tariff.periods[1].days</code>: escribe los días como lun a dom`) || strings.Contains(page, "is not") {
		t.Error("the Spanish page refusing days it does not know does not say so in Spanish")
	}

	if res, _ := operator.post("/settings/tariff/remove", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("an operator removing the tariff: %d, want 403", res.StatusCode)
	}
	if res, _ := admin.post("/settings/tariff/remove", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the admin removing the tariff: %d, want 303", res.StatusCode)
	}
	if st := s.tariffs.State(); st.Source != energy.FromConfig || s.tariffs.Current().Price(wednesday11) != 0.2 {
		t.Errorf("after removing, the state = %+v", st)
	}
	es, err := s.audit.List(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var saved, removed bool
	for _, e := range es {
		saved = saved || (e.Target == "POST /settings/tariff" && e.Who == "admin" && e.Status == http.StatusSeeOther &&
			strings.HasPrefix(e.Detail, "tariff saved: EUR 0.08/kWh, 2 periods"))
		removed = removed || (e.Target == "POST /settings/tariff/remove" && e.Who == "admin" && strings.Contains(e.Detail, "config.yaml's is in force"))
	}
	if !saved || !removed {
		t.Errorf("audit log: saved %v, removed %v: %+v", saved, removed, es)
	}
}

// TestSettingsRuleForms: operators add a rule with the form (a meter that
// has sent nothing is accepted and shown with a warning), edit it, disable
// and enable it and delete it; a wrong rule comes back with its errors; a
// rule of config.yaml is listed read-only; viewers may not post.
func TestSettingsRuleForms(t *testing.T) {
	s := startSite(t)
	viewer, operator := s.login(t, auth.Viewer), s.login(t, auth.Operator)
	_, page := operator.get("/settings")
	for _, want := range []string{`id="rule-quiet" data-rule="quiet" data-source="config"`, `from config.yaml`, `id="rule-form"`, `<option value="kitchen">`,
		`<span class="sub">1 h</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the operator's settings page lacks %s", want)
		}
	}
	if strings.Contains(page, `id="rule-quiet-delete"`) || strings.Contains(page, `id="rule-quiet-edit"`) {
		t.Error("a rule of config.yaml is offered for change")
	}
	_, page = viewer.get("/settings")
	if strings.Contains(page, `id="rule-form"`) || !strings.Contains(page, `id="rules-operators"`) {
		t.Error("a viewer is offered the rule form")
	}
	rule := url.Values{"id": {"oven-left-on"}, "name": {"Oven left on"}, "kind": {"power_above"}, "meter": {"main"},
		"severity": {"warning"}, "enabled": {"true"}, "threshold_w": {"1500"}, "for": {"30s"}, "hysteresis_w": {"100"}}
	if res, _ := viewer.post("/settings/rules", rule); res.StatusCode != http.StatusForbidden {
		t.Errorf("a rule posted by a viewer: %d, want 403", res.StatusCode)
	}
	res, _ := operator.post("/settings/rules", rule)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/settings?done=rule_saved&rule=oven-left-on#rule-oven-left-on" {
		t.Fatalf("the operator's rule: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	_, page = operator.get("/settings?done=rule_saved&rule=oven-left-on")
	for _, want := range []string{`id="rule-oven-left-on" data-rule="oven-left-on" data-source="api" data-enabled="true"`,
		`meter &#34;main&#34; has sent no readings yet`, `1.50 kW · 30 s`, `data-confirm="Delete this rule?`, `id="rule-oven-left-on-edit"`, `id="rule-oven-left-on-toggle">Disable`, `Rule saved: <code>oven-left-on</code>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page after adding a rule lacks %s", want)
		}
	}
	if strings.Contains(page, `href="/meters/main"`) {
		t.Error("the rule links to the page of a meter that has none yet")
	}
	if res, page := operator.post("/settings/rules", rule); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "a rule oven-left-on exists") {
		t.Errorf("a rule of an id taken: %d, want 400 saying so", res.StatusCode)
	}
	// In Spanish, the warning and the form's own errors are Spanish.
	operatorES := *operator
	operatorES.cookie += "; vatio_lang=es"
	_, page = operatorES.get("/settings")
	if !strings.Contains(page, `el medidor «main» aún no ha enviado lecturas`) || strings.Contains(page, "has sent no readings") {
		t.Error("the Spanish page's rule warning is not in Spanish")
	}
	wrongES := url.Values{"id": {"x"}, "kind": {"power_above"}, "meter": {"*"}, "severity": {"info"}, "threshold_w": {"mil"}, "for": {"30 segundos"}}
	if _, page := operatorES.post("/settings/rules", wrongES); !strings.Contains(page, `<code>for</code>: &#34;30 segundos&#34; no es una duración`) ||
		!strings.Contains(page, `<code>threshold_w</code>: &#34;mil&#34; no es un número`) {
		t.Errorf("the Spanish rule form's errors are not in Spanish:\n%s", page)
	}
	long := url.Values{"id": {"long"}, "kind": {"power_above"}, "meter": {"*"}, "severity": {"info"}, "threshold_w": {"100"}, "for": {"25 h"}}
	if _, page := operatorES.post("/settings/rules", long); !strings.Contains(page, `<code>for</code>: de 0 a 24 h`) {
		t.Error("the Spanish page refusing a For of 25 h does not say so in Spanish")
	}
	// A phase_imbalance rule, from the form, and one refused in Spanish.
	unbalanced := url.Values{"id": {"unbalanced"}, "kind": {"phase_imbalance"}, "meter": {"kitchen"}, "severity": {"warning"},
		"enabled": {"true"}, "threshold_pct": {"20"}, "hysteresis_pct": {"5"}}
	if res, _ := operator.post("/settings/rules", unbalanced); res.StatusCode != http.StatusSeeOther {
		t.Errorf("a phase_imbalance rule from the form: %d", res.StatusCode)
	}
	if r, err := s.rules.Get("unbalanced"); err != nil || r.Kind != "phase_imbalance" || r.ThresholdPct != 20 || r.HysteresisPct != 5 {
		t.Errorf("the phase_imbalance rule saved: %+v %v", r, err)
	}
	unbalanced.Set("id", "too-far")
	unbalanced.Set("threshold_pct", "500")
	if _, page := operatorES.post("/settings/rules", unbalanced); !strings.Contains(page, `<code>threshold_pct</code>: más de 0 y como mucho 200 %`) {
		t.Error("the Spanish page refusing an imbalance of 500 % does not say so in Spanish")
	}
	if _, page := operatorES.post("/settings/rules", rule); !strings.Contains(page, "ya hay una regla oven-left-on") {
		t.Error("the Spanish page refusing an id taken does not say so in Spanish")
	}
	// Blank For and Cooldown are 0, as their placeholders say; durations
	// are typed as the page writes them, too.
	blank := url.Values{"id": {"at-once"}, "kind": {"power_above"}, "meter": {"*"}, "severity": {"info"}, "threshold_w": {"100"}, "for": {""}, "cooldown": {"1 h 30 min"}}
	if res, _ := operator.post("/settings/rules", blank); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("a rule with a blank For: %d", res.StatusCode)
	}
	if r, err := s.rules.Get("at-once"); err != nil || r.For != 0 || time.Duration(r.Cooldown) != 90*time.Minute {
		t.Errorf("saved %+v, %v: want For 0 and a cooldown of 1h30m", r, err)
	}
	_, page = operator.get("/settings?edit=at-once")
	for _, want := range []string{`name="for" value="" placeholder="0 = at once"`, `name="cooldown" value="1 h 30 min" placeholder="0 = none"`,
		`<label data-kinds="power_above power_below out_of_range anomaly">Hysteresis, W (power, out-of-range and anomaly rules only)`} {
		if !strings.Contains(page, want) {
			t.Errorf("the edit form lacks %s", want)
		}
	}

	wrong := url.Values{"id": {"Bad Id"}, "kind": {"silent"}, "meter": {"*"}, "severity": {"info"}, "silent_for": {"soon"}}
	if res, page := operator.post("/settings/rules", wrong); res.StatusCode != http.StatusBadRequest ||
		!strings.Contains(page, `<code>silent_for</code>: &#34;soon&#34; is not a duration`) || !strings.Contains(page, `value="Bad Id"`) {
		t.Errorf("a rule with a wrong duration: %d\n%s", res.StatusCode, page)
	}
	wrong.Set("silent_for", "5s")
	if res, page := operator.post("/settings/rules", wrong); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, `<code>id</code>`) {
		t.Errorf("a rule with a wrong id: %d", res.StatusCode)
	}

	_, page = operator.get("/settings?edit=oven-left-on")
	if !strings.Contains(page, `name="editing" value="oven-left-on"`) || !strings.Contains(page, `id="rule-threshold_w" name="threshold_w" value="1500"`) {
		t.Error("the edit form is not filled with the rule")
	}
	edit := url.Values{"editing": {"oven-left-on"}, "id": {"ignored"}, "name": {"Oven left on"}, "kind": {"power_above"}, "meter": {"kitchen"},
		"severity": {"critical"}, "enabled": {"true"}, "threshold_w": {"2000"}, "for": {"1m"}}
	if res, _ := operator.post("/settings/rules", edit); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the edit: %d", res.StatusCode)
	}
	_, page = operator.get("/settings")
	if !strings.Contains(page, `data-rule="oven-left-on"`) || strings.Contains(page, `data-rule="ignored"`) || strings.Contains(page, "has sent no readings yet") {
		t.Errorf("after the edit the rules are wrong:\n%s", page)
	}
	if res, _ := operator.post("/settings/rules/oven-left-on/enabled", url.Values{"enabled": {"false"}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("disable: %d", res.StatusCode)
	}
	_, page = operator.get("/settings")
	if !strings.Contains(page, `data-rule="oven-left-on" data-source="api" data-enabled="false"`) || !strings.Contains(page, `id="rule-oven-left-on-toggle">Enable`) {
		t.Error("the rule is not shown disabled")
	}
	if res, _ := operator.post("/settings/rules/quiet/delete", url.Values{}); res.StatusCode != http.StatusConflict {
		t.Errorf("deleting config.yaml's rule: %d, want 409", res.StatusCode)
	}
	if res, _ := operator.post("/settings/rules/oven-left-on/delete", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("delete: %d", res.StatusCode)
	}
	_, page = operator.get("/settings")
	if strings.Contains(page, `data-rule="oven-left-on"`) {
		t.Error("the deleted rule is still listed")
	}
	es, err := s.audit.List(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	notes := map[string]bool{}
	for _, e := range es {
		if e.Who == "operator" {
			notes[e.Detail] = true
		}
	}
	for _, want := range []string{"rule oven-left-on created: power_above on main, 1500 W for 30 s, warning, enabled",
		"rule oven-left-on saved: power_above on kitchen, 2000 W for 1 min, critical, enabled", "rule oven-left-on disabled", "rule oven-left-on deleted"} {
		if !notes[want] {
			t.Errorf("no audit entry %q", want)
		}
	}
}

// TestSettingsSpanish: the settings page speaks Spanish.
func TestSettingsSpanish(t *testing.T) {
	s := startSite(t)
	b := s.login(t, auth.Admin)
	b.cookie += "; vatio_lang=es"
	_, page := b.get("/settings")
	for _, want := range []string{"Ajustes", "la sección tariff de config.yaml", "Guardar la tarifa", "Reglas de alerta", "de config.yaml", "Medidor en silencio"} {
		if !strings.Contains(page, want) {
			t.Errorf("the Spanish settings page lacks %q", want)
		}
	}
}

// TestAccessPageShowsTheAuditLog: the admin's Access page lists the audit
// log's newest entries (a refused log-in, a log-in, a change), escaped,
// in the reader's language; other roles cannot open the page.
func TestAccessPageShowsTheAuditLog(t *testing.T) {
	s := startSite(t)
	// A refused log-in with a name that is markup.
	b := &browser{t: t, s: s}
	if res, _ := b.send("POST", "/login", url.Values{"user": {"<b>mallory</b>"}, "password": {"wrong password!"}}); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %d", res.StatusCode)
	}
	admin := s.login(t, "admin")
	if res, _ := admin.post("/settings/tariff", tariffForm()); res.StatusCode >= 400 {
		t.Fatalf("save the tariff: %d", res.StatusCode)
	}
	res, page := admin.get("/access")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /access: %d", res.StatusCode)
	}
	i := strings.Index(page, `id="audit"`)
	if i < 0 {
		t.Fatalf("the Access page has no audit table:\n%s", page)
	}
	table := page[i:]
	for _, want := range []string{"login_failed", "&lt;b&gt;mallory&lt;/b&gt;", "<code>login</code>", "tariff saved"} {
		if !strings.Contains(table, want) {
			t.Errorf("the audit table lacks %q", want)
		}
	}
	if strings.Contains(page, "<b>mallory</b>") {
		t.Error("a user name typed is markup on the page")
	}
	spanish := *admin
	spanish.cookie += "; vatio_lang=es"
	if _, es := spanish.get("/access"); !strings.Contains(es, "Registro de auditoría") || !strings.Contains(es, "Quién") {
		t.Error("the Spanish Access page does not name the audit log")
	}
	if res, _ := s.login(t, "operator").get("/access"); res.StatusCode != http.StatusForbidden {
		t.Errorf("an operator's GET /access: %d, want 403", res.StatusCode)
	}
}

// TestMetersPageGrowsWithTheMeters: the Meters page lists each meter's
// possible parents once for all its forms, so a site of many meters gets a
// page that grows with them, not with their square; a form names its
// meter's parent, and the list offers every meter.
func TestMetersPageGrowsWithTheMeters(t *testing.T) {
	s := startSite(t)
	const n = 300
	for i := range n {
		if err := s.st.Append(reading(fmt.Sprintf("m%03d", i), 0, 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	s.st.Flush()
	if _, err := s.st.EditMeter("m001", func(in *store.MeterInfo) error { in.Parent = "m000"; return nil }); err != nil {
		t.Fatal(err)
	}
	_, page := s.login(t, "viewer").get("/meters")
	if got := strings.Count(page, "<option value="); got > n+1+20 {
		t.Errorf("the Meters page of %d meters has %d options: a list per form", n+1, got)
	}
	if got := strings.Count(page, `<datalist id="parent-choices">`); got != 1 {
		t.Errorf("%d parent lists, want 1", got)
	}
	if !strings.Contains(page, `<option value="m299">`) || !strings.Contains(page, `name="parent" list="parent-choices" maxlength="64" autocomplete="off" value="m000"`) {
		t.Error("the list lacks a meter, or m001's form does not name its parent m000")
	}
}

// TestSettingsModbusForms lists the Modbus meters on the settings page,
// config.yaml's read-only, and lets an admin (only) add one with the form,
// polled at once and shown answering, change it, be refused in the
// reader's language, and delete it.
func TestSettingsModbusForms(t *testing.T) {
	s := startSite(t)
	var sdm120 []modbustest.Value // an SDM120's registers: 230 V, 3.3 A, 750 W...
	for addr, v := range map[uint16]float64{0x00: 230, 0x06: 3.3, 0x0C: 750, 0x1E: 0.99, 0x46: 50, 0x48: 10.5, 0x4A: 0} {
		sdm120 = append(sdm120, modbustest.Value{Function: "input", Address: addr, Type: "float32", Value: v})
	}
	sim := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{4: sdm120})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.poller.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	admin, operator := s.login(t, auth.Admin), s.login(t, auth.Operator)

	_, page := operator.get("/settings")
	for _, want := range []string{`id="modbus-plant-main" data-device="plant-main" data-source="config"`, `tcp://127.0.0.1:9`, `id="modbus-admins"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the operator's settings page lacks %s", want)
		}
	}
	if strings.Contains(page, `id="modbus-form"`) {
		t.Error("an operator is offered the Modbus form")
	}
	form := url.Values{"name": {"press"}, "url": {"tcp://" + sim.Addr}, "unit": {"4"}, "profile": {"sdm120"}, "interval": {"200 ms"}, "timeout": {"500ms"}}
	if res, _ := operator.post("/settings/modbus", form); res.StatusCode != http.StatusForbidden {
		t.Errorf("a Modbus meter posted by an operator: %d, want 403", res.StatusCode)
	}
	_, page = admin.get("/settings")
	if !strings.Contains(page, `id="modbus-form"`) || strings.Contains(page, `id="modbus-plant-main-delete"`) || !strings.Contains(page, `<option value="sdm630">`) {
		t.Error("the admin's page lacks the Modbus form, or offers to delete config.yaml's device")
	}
	res, _ := admin.post("/settings/modbus", form)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/settings?device=press&done=modbus_saved#modbus" {
		t.Fatalf("the admin's Modbus meter: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, page = admin.get("/settings?done=modbus_saved&device=press")
		if strings.Contains(page, `data-device="press" data-source="database" data-answering="true"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("press is not shown answering:\n%s", page)
		}
	}
	for _, want := range []string{`Modbus meter saved, and polled from now on: <code>press</code>`, `id="modbus-press-edit"`, `id="modbus-press-delete"`, `>sdm120<`, `200 ms`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page after adding press lacks %s", want)
		}
	}
	// Its edit form holds what was saved; a change is polled at once.
	_, page = admin.get("/settings?modbus=press")
	if !strings.Contains(page, `<input type="hidden" name="editing" value="press">`) || !strings.Contains(page, `<option value="sdm120" selected>`) {
		t.Error("the edit form of press does not hold it")
	}
	change := url.Values{"editing": {"press"}, "url": {"tcp://" + sim.Addr}, "unit": {"4"}, "profile": {"sdm120"}, "interval": {"1 s"}}
	if res, _ := admin.post("/settings/modbus", change); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("changing press: %d", res.StatusCode)
	}
	if st := s.poller.Status(); len(st) != 2 || st[1].Name != "press" || st[1].Interval != time.Second {
		t.Errorf("the poller after the change: %+v", st)
	}
	// Refusals, in the reader's language.
	adminES := *admin
	adminES.cookie += "; vatio_lang=es"
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"name": {"press"}, "url": {"tcp://h:502"}, "profile": {"sdm630"}}, "ya existe un medidor Modbus llamado press"},
		{url.Values{"name": {"plant-main"}, "url": {"tcp://h:502"}, "profile": {"sdm630"}}, "este medidor está en config.yaml: cámbialo allí"},
		{url.Values{"name": {"x"}, "url": {"tcp://h:502"}, "profile": {"sdm630"}, "interval": {"5 segundos"}}, "interval: &#34;5 segundos&#34; no es una duración"},
		{url.Values{"name": {"x"}, "url": {"tcp://h:502"}, "unit": {"uno"}, "profile": {"sdm630"}}, "unit: &#34;uno&#34; no es un número"},
		{url.Values{"name": {"x"}, "url": {"tcp://h:502"}, "registers": {"[{nope"}}, "registers: no es una lista de registros"},
		{url.Values{"name": {"x"}, "url": {"tcp://h:502"}, "registers": {"- {function: input, address: 0x28, colour: red}"}}, "registers: no es una lista de registros"},
		{url.Values{"name": {"x"}, "url": {"tcp://" + sim.Addr}, "unit": {"4"}, "profile": {"sdm630"}}, `la unidad 4 de tcp://` + sim.Addr + ` es la del dispositivo &#34;press&#34;`},
		{url.Values{"name": {"x"}, "url": {"http://h"}, "profile": {"sdm630"}}, `url &#34;http://h&#34;: usa tcp://host:puerto`},
		{url.Values{"name": {"x"}, "url": {"tcp://h:502"}, "registers": {"- {function: input, address: 1, type: int16, quantity: volts}"}}, `registros[0]: quantity &#34;volts&#34;: usa una de`},
		{url.Values{"editing": {"gone"}, "url": {"tcp://h:502"}, "profile": {"sdm630"}}, "el medidor Modbus editado ya no existe"},
	} {
		res, page := adminES.post("/settings/modbus", c.form)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, c.want) {
			t.Errorf("the form %v: %d, want 400 saying %s", c.form, res.StatusCode, c.want)
		}
		if strings.Contains(page, `id="modbus-error"`) && !strings.Contains(page, `value="`+c.form.Get("url")+`"`) {
			t.Errorf("the form %v refused does not come back as typed", c.form)
		}
	}
	// A meter without a profile, by its registers.
	regs := url.Values{"name": {"boiler"}, "url": {"tcp://" + sim.Addr}, "unit": {"4"}, "registers": {
		`[{"function": "input", "address": 12, "type": "float32", "quantity": "power_w"}]`}, "editing": {""}}
	regs.Set("url", "tcp://127.0.0.1:9")
	if res, page := admin.post("/settings/modbus", regs); res.StatusCode != http.StatusSeeOther {
		t.Errorf("a meter by its registers: %d\n%s", res.StatusCode, page)
	}
	_, page = admin.get("/settings")
	if !strings.Contains(page, `1 registers of its own`) {
		t.Error("the page does not say boiler reads its own registers")
	}
	// The user guide's YAML, hex addresses and all, with its registers key.
	guide := url.Values{"name": {"compressor"}, "url": {"rtu:///dev/ttyUSB0"}, "unit": {"2"}, "speed": {"9600"}, "parity": {"none"}, "stop_bits": {"1"}, "registers": {`registers:
  - {function: input, address: 0x28, type: int32, word_order: low_first, scale: 0.1, quantity: power_w}
  - {function: input, address: 0x34, type: int32, word_order: low_first, scale: 100, quantity: import_wh}
  - {function: input, address: 0x00, type: int32, word_order: low_first, scale: 0.1, quantity: voltage_v, phase: L1}`}}
	if res, page := admin.post("/settings/modbus", guide); res.StatusCode != http.StatusSeeOther {
		t.Errorf("the guide's register map: %d\n%s", res.StatusCode, page)
	}
	if e, err := s.devices.Get("compressor"); err != nil || len(e.Registers) != 3 || e.Registers[0].Address != 0x28 || e.Registers[2].Phase != "L1" {
		t.Errorf("compressor as saved: %+v %v", e, err)
	}
	if res, _ := admin.post("/settings/modbus/plant-main/delete", url.Values{}); res.StatusCode != http.StatusConflict {
		t.Errorf("deleting config.yaml's device: %d, want 409", res.StatusCode)
	}
	if res, _ := admin.post("/settings/modbus/press/delete", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("deleting press: %d", res.StatusCode)
	}
	if st := s.poller.Status(); len(st) != 3 || st[0].Name != "boiler" {
		t.Errorf("polled after deleting press: %+v", st)
	}
	es, err := s.audit.List(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	notes := map[string]bool{}
	for _, e := range es {
		notes[e.Detail] = true
	}
	for _, want := range []string{"modbus device press created: tcp://" + sim.Addr + " unit 4, sdm120", "modbus device press saved: tcp://" + sim.Addr + " unit 4, sdm120",
		"modbus device press deleted"} {
		if !notes[want] {
			t.Errorf("no audit entry %q", want)
		}
	}
}

// TestStatementsPage previews a statement on the Statements page with its
// PDF and CSV links, and lets an admin (only) add, change and delete a
// tenant with the form, refused in the reader's language.
func TestStatementsPage(t *testing.T) {
	s := startSite(t)
	var rs []meter.Reading
	for _, id := range []string{"office", "office-2a"} {
		for at := time.Date(2026, 11, 2, 0, 0, 0, 0, madrid); at.Before(time.Date(2026, 11, 4, 0, 0, 0, 0, madrid)); at = at.Add(5 * time.Minute) {
			w := 2000.0
			if id == "office-2a" {
				w = 500
			}
			rs = append(rs, meter.Reading{Meter: id, Time: at, PowerW: w, Stamped: true, Source: "import"})
		}
	}
	if _, err := s.st.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.EditMeter("office", func(i *store.MeterInfo) error { i.Site = "hq"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.EditMeter("office-2a", func(i *store.MeterInfo) error { i.Parent = "office"; return nil }); err != nil {
		t.Fatal(err)
	}
	admin, operator := s.login(t, auth.Admin), s.login(t, auth.Operator)
	_, page := operator.get("/statements?subject=site:hq&period=2026-11")
	for _, want := range []string{`id="statement-summary"`, `<option value="site:hq" selected>hq</option>`, `href="/api/v1/statements?format=pdf&amp;lang=en&amp;period=2026-11&amp;subject=site%3Ahq"`,
		"November 2026", `data-meter="office-2a"`, "office: not sub-metered", `id="tenants-admins"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the statement page lacks %s:\n%s", want, page)
		}
	}
	// 47 h 55 min at 2 kW, priced at 0.20.
	if !strings.Contains(page, ">95.83<") || !strings.Contains(page, "19.17 EUR") {
		t.Errorf("the statement's figures are not on the page:\n%s", page)
	}
	if strings.Contains(page, `id="tenant-form"`) {
		t.Error("an operator is offered the tenant form")
	}
	// A range of days, from the form's day fields, over the month.
	_, page = operator.get("/statements?subject=site:hq&period=2026-11&from=2026-11-01&to=2026-11-01")
	if !strings.Contains(page, `id="statement-from" name="from" type="date" value="2026-11-01"`) || !strings.Contains(page, "period=2026-11-01%2F2026-11-01") {
		t.Error("a range of days from the form is not the statement's period")
	}
	form := url.Values{"id": {"acme"}, "name": {"Acmé S.L."}, "meters": {"office-2a"}, "fixed_share": {"percent"}, "fixed_percent": {"40"}, "address": {"Calle Mayor 1\nMadrid"}}
	if res, _ := operator.post("/statements/tenants", form); res.StatusCode != http.StatusForbidden {
		t.Errorf("a tenant posted by an operator: %d, want 403", res.StatusCode)
	}
	res, _ := admin.post("/statements/tenants", form)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/statements?done=tenant_saved&subject=tenant%3Aacme#tenants" {
		t.Fatalf("the admin's tenant: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	_, page = admin.get("/statements?done=tenant_saved&subject=tenant:acme&period=2026-11")
	for _, want := range []string{"Tenant saved.", `id="tenant-acme" data-tenant="acme"`, "Acmé S.L.", "Calle Mayor 1", "40.0 %", `id="tenant-acme-delete"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page after adding acme lacks %s", want)
		}
	}
	adminES := *admin
	adminES.cookie += "; vatio_lang=es"
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"id": {"beta"}, "name": {"Beta"}, "meters": {"office-2a"}}, "office-2a pertenece al inquilino acme"},
		{url.Values{"id": {"beta"}, "name": {"Beta"}, "meters": {"nada"}}, "Medidores 1: no existe el medidor nada"},
		{url.Values{"id": {"Beta!"}, "name": {"Beta"}}, "empezando por una letra o cifra"},
		{url.Values{"id": {"beta"}, "name": {"Beta"}, "fixed_share": {"percent"}, "fixed_percent": {"mucho"}}, "no es un número"},
		{url.Values{"id": {"acme"}, "name": {"Acme"}}, "ya existe un inquilino acme"},
	} {
		res, page := adminES.post("/statements/tenants", c.form)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, c.want) {
			t.Errorf("the tenant form %v: %d, want 400 saying %q", c.form, res.StatusCode, c.want)
		}
	}
	if res, _ := admin.post("/statements/tenants/acme/delete", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("deleting acme: %d", res.StatusCode)
	}
	if _, err := s.tenants.Get("acme"); err == nil {
		t.Error("acme is still there")
	}
	// A period to come, a subject that is not.
	if _, page := admin.get("/statements?subject=site:hq&period=2027-05"); !strings.Contains(page, "That period has not begun.") {
		t.Error("a period to come is not refused on the page")
	}
	if _, page := admin.get("/statements?subject=site:nowhere&period=2026-11"); !strings.Contains(page, "There is no such site") {
		t.Error("an unknown site is not refused on the page")
	}
}

// TestStatementSchedulesPage: an admin schedules a statement on the
// Statements page, is refused in the reader's language, sends one now
// (to a server that is not there: recorded failed, shown with why) and
// deletes the schedule; others do not see schedules.
func TestStatementSchedulesPage(t *testing.T) {
	s := startSite(t)
	admin, operator := s.login(t, auth.Admin), s.login(t, auth.Operator)
	if _, page := operator.get("/statements"); strings.Contains(page, `id="schedules"`) {
		t.Error("an operator sees the schedules")
	}
	form := url.Values{"id": {"monthly"}, "subject": {"meter:kitchen"}, "every": {"month"}, "day": {"2"}, "lang": {"es"}, "to": {"Ana <ana@example.org>\nowner@example.org"}}
	if res, _ := operator.post("/statements/schedules", form); res.StatusCode != http.StatusForbidden {
		t.Errorf("a schedule posted by an operator: %d", res.StatusCode)
	}
	if res, page := admin.post("/statements/schedules", form); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the admin's schedule: %d\n%s", res.StatusCode, page)
	}
	x, err := s.schedules.Get("monthly")
	if err != nil || len(x.To) != 2 || x.To[0] != "Ana <ana@example.org>" || x.Day != 2 || x.Lang != "es" {
		t.Fatalf("saved: %+v %v", x, err)
	}
	_, page := admin.get("/statements?done=schedule_saved")
	if !regexp.MustCompile(`id="schedule-monthly-send">Send (January|February|March|April|May|June|July|August|September|October|November|December) 20\d\d now<`).MatchString(page) {
		t.Error("send now does not name its month")
	}
	for _, want := range []string{"Schedule saved.", `id="schedule-monthly" data-schedule="monthly"`, "every month · day 2", "nothing sent yet"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page after scheduling lacks %s", want)
		}
	}
	adminES := *admin
	adminES.cookie += "; vatio_lang=es"
	for _, c := range []struct {
		change func(url.Values)
		want   string
	}{
		{func(v url.Values) { v.Set("id", "other"); v.Set("day", "30") }, "Día: el día del mes en que se envía, de 1 a 28"},
		{func(v url.Values) { v.Set("id", "other"); v.Set("to", "nadie") }, "Destinatarios 1: &#34;nadie&#34; no es una dirección de correo"},
		{func(v url.Values) { v.Set("id", "other"); v.Set("day", "uno") }, "no es un número"},
		{func(v url.Values) {}, "ya existe un envío programado monthly"},
	} {
		f := url.Values{}
		for k, v := range form {
			f[k] = append([]string(nil), v...)
		}
		c.change(f)
		if res, page := adminES.post("/statements/schedules", f); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, c.want) {
			t.Errorf("the schedule form %v: %d, want 400 saying %q", f, res.StatusCode, c.want)
		}
	}
	res, _ := admin.post("/statements/schedules/monthly/send", url.Values{"period": {"2026-11"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/statements?done=schedule_failed&sent=2026-11#schedules" {
		t.Fatalf("send now: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	_, page = admin.get(res.Header.Get("Location"))
	if !strings.Contains(page, "see its last sending below. (November 2026)") {
		t.Error("the page does not say which period failed")
	}
	if !strings.Contains(page, `data-state="failed">2026-11: <span class="badge state-offline">failed</span>`) || !strings.Contains(page, "connection refused") {
		t.Errorf("the failed sending is not shown with why:\n%s", page)
	}
	if res, _ := admin.post("/statements/schedules/monthly/delete", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("delete: %d", res.StatusCode)
	}
	if _, err := s.schedules.Get("monthly"); err == nil {
		t.Error("the schedule is still there")
	}
}
