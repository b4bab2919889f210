package dashboard

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/store"
)

// TestCatalogues fails on a text missing from either language, and on a
// key the templates or app.js use that no catalogue has.
func TestCatalogues(t *testing.T) {
	en, es := english.textKeys(), spanish.textKeys()
	for _, k := range en {
		if _, ok := spanish.texts[k]; !ok {
			t.Errorf("%q is in English, not in Spanish", k)
		}
	}
	for _, k := range es {
		if _, ok := english.texts[k]; !ok {
			t.Errorf("%q is in Spanish, not in English", k)
		}
	}
	for _, l := range languages {
		for k, v := range l.texts {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s: %q is empty", l.Code, k)
			}
		}
	}
	// Keys the templates and app.js name, and those they compose.
	used := map[string]bool{}
	tmpl := regexp.MustCompile(`\{\{-?\s*t\s+"([^"]+)"`)
	err := fs.WalkDir(templateFiles, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templateFiles.ReadFile(p)
		for _, m := range tmpl.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\bt\("([^"]+)"\)`).FindAllStringSubmatch(string(js), -1) {
		used[m[1]] = true
	}
	goSrc := ""
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		goSrc += string(b)
	}
	for _, m := range regexp.MustCompile(`\.T\("([^"]+)"\)|"([a-z]+\.title)"`).FindAllStringSubmatch(goSrc, -1) {
		used[m[1]+m[2]] = true
	}
	composed := []string{ // (print "status." .Status) and the like
		"status.online", "status.offline", "why.announced", "why.silent", "why.history",
		"severity.info", "severity.warning", "severity.critical",
		"delivery.pending", "delivery.delivered", "delivery.failed",
		"state.firing", "state.resolved",
		"role.admin", "role.operator", "role.viewer",
		"costs.charges",                                                                        // through the charges function
		"rec.baseload.title", "rec.baseload.detail", "rec.standby.title", "rec.standby.detail", // rec.<kind>.<part>
		"rec.time_shift.title", "rec.time_shift.detail", "rec.peak_demand.title", "rec.peak_demand.detail",
		"rec.increase.title", "rec.increase.detail", "rec.power_factor.title", "rec.power_factor.detail",
		"js.live", "js.offline", "js.reconnecting", // t("js." + state)
		"js.online", "js.offline_meter", // t(online ? "js.online" : "js.offline_meter")
		"js.step_raw", "js.step_1m", "js.step_1h", "js.step_1d", // t("js.step_" + step)
		"done.tariff_saved", "done.tariff_removed", "done.rule_saved", "done.rule_deleted", // (print "done." .Done)
		"done.rule_enabled", "done.rule_disabled", "done.modbus_saved", "done.modbus_deleted",
		"done.mail_saved", "done.mail_removed",
		"mail.tls_starttls", "mail.tls_tls", "mail.tls_none", // (print "mail.tls_" $v)
		"mail.field_addr", "mail.field_from", "mail.field_to", "mail.field_username", "mail.field_password", "mail.field_tls", "mail.field_timeout", // (print "mail.field_" ...)
		"mailerr.addr", "mailerr.from", "mailerr.username", "mailerr.password", "mailerr.tls", // "mailerr." + field
		"modbus.parity_none", "modbus.parity_even", "modbus.parity_odd", // (print "modbus.parity_" $v)
		"kind.power_above", "kind.power_below", "kind.energy_budget", "kind.silent", "kind.out_of_range", "kind.anomaly", "kind.phase_imbalance", // (print "kind." .Kind)
		"import.format_auto", "import.format_csv", "import.format_datadis", "import.format_greenbutton", // "import.format_" + format
		"import.error_meter", "import.error_format", "import.error_interval", "import.error_time", "import.error_zone", // "import.error_" + field
	}
	for _, k := range composed {
		used[k] = true
	}
	// A tenant refused: "tenanterr." + the key package statement names,
	// with the verbs of its English format in both catalogues.
	var src []byte
	for _, f := range []string{"../internal/statement/tenants.go", "../internal/statement/schedule.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	verbs := regexp.MustCompile(`%[a-z]`)
	for _, m := range regexp.MustCompile(`invalid\((?:fmt\.Sprintf\([^)]*\)|"[^"]*"), "([a-z_]+)", "((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(string(src), -1) {
		key := "tenanterr." + m[1]
		used[key] = true
		for _, l := range []*language{english, spanish} {
			if got, want := strings.Join(verbs.FindAllString(l.texts[key], -1), " "), strings.Join(verbs.FindAllString(m[2], -1), " "); got != want {
				t.Errorf("%s in %s takes %q, the package's message %q", key, l.Code, got, want)
			}
		}
	}
	for _, k := range []string{"statements.kind_site", "statements.kind_tenant", "statements.kind_meter", // (print "statements.kind_" .Subject.Kind)
		"statements.tariff_config", "statements.tariff_database", "done.tenant_saved", "done.tenant_deleted",
		"done.schedule_saved", "done.schedule_deleted", "done.schedule_sent", "done.schedule_failed", "done.schedule_sending",
		"schedules.state_sent", "schedules.state_failed", "schedules.state_sending", "schedules.send_period", "schedules.send_again", "schedules.confirm_again", "schedules.sent_times"} {
		used[k] = true
	}
	// Alert messages: every key alert raises, its English text the same as
	// the one notifiers send, so the dashboard says what they say.
	used["alert.period.day"], used["alert.period.month"] = true, true // (print "alert.period." period)
	for _, f := range []string{"id", "name", "kind", "meter", "severity", "hysteresis_w", "cooldown", "threshold_w", "for", "budget_kwh", "period", "silent_for", "factor", "threshold_pct", "hysteresis_pct"} {
		used["ruleerr."+f] = true // saveRule: "ruleerr." + the field alert.Rule.Check names
	}
	for _, f := range []string{"currency", "price_kwh", "export_price_kwh", "daily_charge", "demand_charge_kw", "co2_g_kwh", "reactive_price_kvarh",
		"periods", "periods.name", "periods.price_kwh", "periods.from", "periods.to", "holidays"} {
		used["terr."+f] = true // saveTariff: "terr." + the field tariff.FieldErrors names, less its index
	}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun", "weekdays", "weekend", "all"} {
		used["day."+d] = true // l.dayName: "day." + keyword
	}
	for k, v := range alert.English {
		used[k] = true
		if english.texts[k] != v {
			t.Errorf("%q is %q in English on the dashboard, %q in the alert's message", k, english.texts[k], v)
		}
	}
	for k := range used {
		if _, ok := english.texts[k]; !ok {
			t.Errorf("%q is used but in no catalogue", k)
		}
	}
	for _, k := range en {
		if !used[k] {
			t.Errorf("%q is in the catalogues but never used", k)
		}
	}
}

func TestPickLanguage(t *testing.T) {
	for _, c := range []struct{ cookie, accept, want string }{
		{"", "", "en"},
		{"", "es-ES,es;q=0.9,en;q=0.8", "es"},
		{"", "fr-FR, es;q=0.5, en;q=0.4", "es"},
		{"", "en-US,en;q=0.9,es;q=0.8", "en"},
		{"", "de, fr;q=0.5", "en"},
		{"", "es;q=0, en", "en"},
		{"", "es;q=abc", "en"},
		{"", "ES-mx", "es"},
		{"es", "en-US", "es"},
		{"xx", "es", "es"},
	} {
		if got := pickLanguage(c.cookie, c.accept).Code; got != c.want {
			t.Errorf("pickLanguage(%q, %q) = %s, want %s", c.cookie, c.accept, got, c.want)
		}
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct {
		l    *language
		got  string
		want string
	}{
		{english, english.Number(1234.5, 1), "1,234.5"},
		{spanish, spanish.Number(1234.5, 1), "1.234,5"},
		{spanish, spanish.Energy(1234.5), "1.234,5 kWh"},
		{spanish, spanish.Energy(12.345), "12,35 kWh"},
		{english, english.Energy(12345), "12.35 MWh"},
		{english, english.Power(0.2), "0 W"},
		{english, english.Power(-0.2), "0 W"},
		{english, english.Power(999.4), "999 W"},
		{english, english.Power(999.5), "1.00 kW"},
		{english, english.Power(-3210), "-3.21 kW"},
		{spanish, spanish.Power(2500), "2,50 kW"},
		{english, english.Power(1_250_000), "1.25 MW"},
		{spanish, spanish.Number(-1234567.891, 2), "-1.234.567,89"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.l.Code, c.got, c.want)
		}
	}
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	// Daylight saving time: 01:30 UTC is 02:30 in winter, 03:30 in summer.
	winter := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	summer := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	if got := english.DateTime(winter, madrid); got != "29 Mar 2026, 01:30" {
		t.Errorf("before the change: %s", got)
	}
	if got := spanish.DateTime(summer, madrid); got != "29 mar 2026, 03:30" {
		t.Errorf("after the change: %s", got)
	}
	if got := spanish.Day(summer, madrid); got != "dom 29 mar" {
		t.Errorf("Day = %s", got)
	}
	// An imported hour's last reading, a nanosecond before it ends, shows
	// the hour's end.
	if got := english.DateTime(time.Date(2026, 10, 1, 3, 0, 0, 0, time.UTC).Add(-time.Nanosecond), madrid); got != "1 Oct 2026, 05:00" {
		t.Errorf("a nanosecond before 05:00: %s", got)
	}
	if got := english.DateTime(time.Time{}, madrid); got != "–" {
		t.Errorf("zero time = %s", got)
	}
	if !slices.Equal(english.calendarDays().([]string), []string{"S", "M", "T", "W", "T", "F", "S"}) {
		t.Errorf("calendar days = %v", english.calendarDays())
	}
}

// TestAlertTextInTheReadersLanguage: an alert stored with a message key
// shows in the reader's language, its values formatted as the language
// writes them; a resolution names what cleared; an alert without a key
// (from the API, or stored before keys) shows its text as stored.
func TestAlertTextInTheReadersLanguage(t *testing.T) {
	fire := store.Alert{Meter: "oven", Message: "oven: power 3.50 kW above 3.00 kW for 30s", Key: alert.MsgPowerAbove,
		Args: map[string]string{"meter": "oven", "power_w": "3500", "threshold_w": "3000", "for": "30s"}}
	done := store.Alert{Meter: "oven", Key: alert.MsgResolved,
		Args: map[string]string{"what": alert.MsgEnergyBudget, "used_kwh": "12.5", "period": "month", "budget_kwh": "10"}}
	back := store.Alert{Meter: "oven", Key: alert.MsgResolved, Args: map[string]string{"what": alert.MsgPowerBackBelow,
		"meter": "oven", "power_w": "800", "threshold_w": "1000", "for": "1h30m0s"}}
	within := store.Alert{Meter: "oven", Key: alert.MsgResolved,
		Args: map[string]string{"what": alert.MsgWithinBudget, "used_kwh": "9.5", "period": "day", "budget_kwh": "10"}}
	lock := store.Alert{Key: alert.MsgLockout, Args: map[string]string{"addr": "192.0.2.1", "user": "ana", "until_at": "2026-11-25T10:15:00Z"}}
	old := store.Alert{Message: "oven: power 3.50 kW above 3.00 kW for 30s"}
	unknown := store.Alert{Message: "from a newer version", Key: "alert.not_yet", Args: map[string]string{"x": "1"}}
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		l    *language
		a    store.Alert
		want string
	}{
		{english, fire, "power 3.50 kW above 3.00 kW for 30 s"},
		{spanish, fire, "potencia de 3,50 kW por encima de 3,00 kW durante 30 s"},
		{english, back, "resolved: power back below 1.00 kW (800 W) for 1 h 30 min"},
		{spanish, back, "resuelta: potencia de nuevo por debajo de 1,00 kW (800 W) durante 1 h 30 min"},
		{english, within, "resolved: 9.50 kWh this day, within the budget of 10.00 kWh"},
		{spanish, within, "resuelta: 9,50 kWh este día, dentro del presupuesto de 10,00 kWh"},
		{english, done, "resolved: 12.50 kWh this month, over the budget of 10.00 kWh"},
		{spanish, done, "resuelta: 12,50 kWh este mes, por encima del presupuesto de 10,00 kWh"},
		{spanish, lock, "inicios de sesión fallidos repetidos desde 192.0.2.1 (usuario «ana»): bloqueado hasta 25 nov 2026, 11:15"},
		{spanish, old, "oven: power 3.50 kW above 3.00 kW for 30s"},
		{spanish, unknown, "from a newer version"},
	} {
		if got := c.l.alertText(c.a, madrid); got != c.want {
			t.Errorf("%s %s: got %q, want %q", c.l.Code, c.a.Key, got, c.want)
		}
	}
}

// TestSpanishSpeaksTu checks that the Spanish texts address the user as
// tú, as most of them do, and call MQTT topics "temas": the catalogue
// mixed "amplíe", "envíe" with "mira", "corrige", and "tópicos" with
// "temas". ("importe" is left out: it is also the noun, an amount.)
func TestSpanishSpeaksTu(t *testing.T) {
	usted := regexp.MustCompile(`(?i)(?:^|[^\pL])(usted|amplíe|envíe|apunte|añada|copie|escriba|espere|vuelva|cree|péguelo|ejecute|indique|edite|ábralo|déjelo|elija|tópicos?)(?:$|[^\pL])`)
	if usted.FindStringSubmatch("un medidor; ábralo.") == nil || usted.FindStringSubmatch("crees") != nil {
		t.Fatal("the pattern of usted forms does not tell words apart")
	}
	for k, v := range spanish.texts {
		if m := usted.FindStringSubmatch(v); m != nil {
			t.Errorf("%q says %q in Spanish (%q): use tú, and \"temas\" for topics", k, m[1], v)
		}
	}
}
