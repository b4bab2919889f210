package dashboard

import (
	"cmp"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/modbus"
	"github.com/vatio-energy/vatio/internal/tariff"
)

// The settings page (GET /settings) shows the tariff in force and where it
// comes from, and the alert rules; admins change the tariff and operators
// the rules with plain HTML forms that work without JavaScript (posted
// with the session's CSRF token, answered with a redirect back, or with
// the page and its errors beside the fields). What comes from config.yaml
// is shown read-only, saying so.

// tariffForm is the tariff form as typed, so that a refused one comes back
// as it was, with Errors by key (price_kwh, periods[0].days).
type tariffForm struct {
	Currency, PriceKWh, ExportPriceKWh, DailyCharge, DemandChargeKW, CO2GramsKWh, ReactivePriceKVArh string
	Periods                                                                                          []periodForm
	Holidays                                                                                         string
	Errors                                                                                           map[string]string
}

// HolidaysError is the first error of the holidays, "" when none.
func (f *tariffForm) HolidaysError() string {
	for i := range tariff.MaxHolidays + 1 {
		if e, ok := f.Errors[fmt.Sprintf("holidays[%d]", i)]; ok {
			return e
		}
	}
	return f.Errors["holidays"]
}

// periodForm is one row of the periods table.
type periodForm struct {
	Name, PriceKWh, Days, From, To string
}

// tariffField is what the tariff-field template renders: one input of
// the tariff form, with its label key, value, kind and error.
func tariffField(f *tariffForm, name, label, value, kind string) map[string]string {
	return map[string]string{"Name": name, "Label": label, "Value": value, "Type": kind, "Error": f.Errors[name]}
}

// blankPeriods is how many empty period rows the form offers, to fill in
// without JavaScript.
const blankPeriods = 2

func number(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// tariffFormOf is spec in the form, its days as l writes them, with
// blank rows to add periods.
func tariffFormOf(spec tariff.Spec, l *language) *tariffForm {
	f := &tariffForm{Currency: spec.Currency, PriceKWh: number(spec.PriceKWh), ExportPriceKWh: number(spec.ExportPriceKWh),
		DailyCharge: number(spec.DailyCharge), DemandChargeKW: number(spec.DemandChargeKW), CO2GramsKWh: number(spec.CO2GramsKWh),
		ReactivePriceKVArh: number(spec.ReactivePriceKVArh), Holidays: strings.Join(spec.Holidays, " ")}
	for _, p := range spec.Periods {
		f.Periods = append(f.Periods, periodForm{Name: p.Name, PriceKWh: number(p.PriceKWh), Days: dayNames(p.Days, l), From: p.From, To: p.To})
	}
	for range blankPeriods {
		f.Periods = append(f.Periods, periodForm{})
	}
	return f
}

// dayNames writes a period's days as l does.
func dayNames(days []string, l *language) string {
	out := make([]string, len(days))
	for i, d := range days {
		out[i] = l.dayName(d)
	}
	return strings.Join(out, ", ")
}

// tariffDays are the Spanish words the tariff form takes for a period's
// days besides the keywords of config.yaml (mon..sun, weekdays, weekend,
// all), whatever the page's language: a day is no word to parse by
// language, and the form shows a Spanish reader the Spanish ones.
var tariffDays = map[string]string{
	"lun": "mon", "lunes": "mon", "mar": "tue", "martes": "tue", "mié": "wed", "mie": "wed", "miércoles": "wed", "miercoles": "wed",
	"jue": "thu", "jueves": "thu", "vie": "fri", "viernes": "fri", "sáb": "sat", "sab": "sat", "sábado": "sat", "sabado": "sat",
	"dom": "sun", "domingo": "sun", "laborables": "weekdays", "finde": "weekend", "todos": "all", "todas": "all",
}

// tariffDaysOf reads the days typed in the tariff form: config.yaml's
// keywords or their Spanish words ("fin de semana" too).
func tariffDaysOf(s string) []string {
	s = strings.ToLower(s)
	s = strings.ReplaceAll(s, "fin de semana", "finde")
	days := words(s)
	for i, d := range days {
		if k, ok := tariffDays[d]; ok {
			days[i] = k
		}
	}
	return days
}

// words splits a list typed with commas, spaces or new lines.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// postedTariff reads the tariff form of c: the form as typed, and the Spec
// it says, or the fields that are no numbers.
func postedTariff(c *fiber.Ctx, l *language) (*tariffForm, tariff.Spec, map[string]string) {
	args := c.Request().PostArgs()
	field := func(name string) string { return strings.TrimSpace(string(args.Peek(name))) }
	f := &tariffForm{Currency: field("currency"), PriceKWh: field("price_kwh"), ExportPriceKWh: field("export_price_kwh"),
		DailyCharge: field("daily_charge"), DemandChargeKW: field("demand_charge_kw"), CO2GramsKWh: field("co2_g_kwh"),
		ReactivePriceKVArh: field("reactive_price_kvarh"), Holidays: field("holidays")}
	column := func(name string) []string {
		var out []string
		for _, v := range args.PeekMulti(name) {
			out = append(out, strings.TrimSpace(string(v)))
		}
		return out
	}
	names, prices, days, froms, tos := column("period_name"), column("period_price_kwh"), column("period_days"), column("period_from"), column("period_to")
	at := func(col []string, i int) string {
		if i < len(col) {
			return col[i]
		}
		return ""
	}
	rows := max(len(names), len(prices), len(days), len(froms), len(tos))
	for i := range min(rows, tariff.MaxPeriods+blankPeriods) {
		p := periodForm{Name: at(names, i), PriceKWh: at(prices, i), Days: at(days, i), From: at(froms, i), To: at(tos, i)}
		if p != (periodForm{}) { // an empty row adds no period
			f.Periods = append(f.Periods, p)
		}
	}
	bad := map[string]string{}
	num := func(key, s string) float64 {
		if s == "" {
			return 0
		}
		v, err := strconv.ParseFloat(strings.Replace(s, ",", ".", 1), 64)
		if err != nil {
			bad[key] = fmt.Sprintf(l.T("form.not_number"), s)
		}
		return v
	}
	spec := tariff.Spec{Currency: strings.ToUpper(f.Currency), PriceKWh: num("price_kwh", f.PriceKWh), ExportPriceKWh: num("export_price_kwh", f.ExportPriceKWh),
		DailyCharge: num("daily_charge", f.DailyCharge), DemandChargeKW: num("demand_charge_kw", f.DemandChargeKW),
		CO2GramsKWh: num("co2_g_kwh", f.CO2GramsKWh), ReactivePriceKVArh: num("reactive_price_kvarh", f.ReactivePriceKVArh),
		Holidays: words(f.Holidays)}
	for i, p := range f.Periods {
		spec.Periods = append(spec.Periods, tariff.PeriodSpec{Name: p.Name, PriceKWh: num(fmt.Sprintf("periods[%d].price_kwh", i), p.PriceKWh),
			Days: tariffDaysOf(p.Days), From: p.From, To: p.To})
	}
	return f, spec, bad
}

// ruleForm is the rule form as typed, with Errors by field.
type ruleForm struct {
	// Editing is the id of the rule changed, "" for a new one.
	Editing                                               string
	ID, Name, Kind, Meter, Severity                       string
	Enabled                                               bool
	ThresholdW, For, BudgetKWh, Period, SilentFor, Factor string
	HysteresisW, Cooldown, ThresholdPct, HysteresisPct    string
	Actions                                               int
	Errors                                                map[string]string
}

// duration writes d in the rule form as the page shows durations
// ("1 h 30 min"); blank for 0, which the form reads back as 0.
func duration(d alert.Duration) string {
	if d == 0 {
		return ""
	}
	return alert.HumanDuration(time.Duration(d))
}

// parseDuration reads a duration of the rule form: as the page writes
// them ("1 h 30 min", "30 s") or as config.yaml and the API do ("1h30m").
func parseDuration(s string) (time.Duration, error) {
	s = strings.ReplaceAll(strings.ToLower(s), " ", "")
	s = strings.ReplaceAll(s, "min", "m")
	return time.ParseDuration(s)
}

func optional(v float64) string {
	if v == 0 {
		return ""
	}
	return number(v)
}

// ruleFormOf is r in the form.
func ruleFormOf(r alert.Rule) *ruleForm {
	return &ruleForm{Editing: r.ID, ID: r.ID, Name: r.Name, Kind: r.Kind, Meter: r.Meter, Severity: r.Severity, Enabled: r.Enabled,
		ThresholdW: optional(r.ThresholdW), For: duration(r.For), BudgetKWh: optional(r.BudgetKWh), Period: r.Period,
		SilentFor: duration(r.SilentFor), Factor: optional(r.Factor), HysteresisW: optional(r.HysteresisW), Cooldown: duration(r.Cooldown),
		ThresholdPct: optional(r.ThresholdPct), HysteresisPct: optional(r.HysteresisPct), Actions: len(r.Actions)}
}

// postedRule reads the rule form of c: the form as typed, and the rule it
// says, or the fields that are no numbers or durations.
func postedRule(c *fiber.Ctx, l *language) (*ruleForm, alert.Rule, map[string]string) {
	args := c.Request().PostArgs()
	field := func(name string) string { return strings.TrimSpace(string(args.Peek(name))) }
	f := &ruleForm{Editing: field("editing"), ID: field("id"), Name: field("name"), Kind: field("kind"), Meter: field("meter"),
		Severity: field("severity"), Enabled: field("enabled") != "", ThresholdW: field("threshold_w"), For: field("for"),
		BudgetKWh: field("budget_kwh"), Period: field("period"), SilentFor: field("silent_for"), Factor: field("factor"),
		HysteresisW: field("hysteresis_w"), Cooldown: field("cooldown"), ThresholdPct: field("threshold_pct"), HysteresisPct: field("hysteresis_pct")}
	if f.Editing != "" {
		f.ID = f.Editing // a rule's id is not changed
	}
	bad := map[string]string{}
	num := func(key, s string) float64 {
		if s == "" {
			return 0
		}
		v, err := strconv.ParseFloat(strings.Replace(s, ",", ".", 1), 64)
		if err != nil {
			bad[key] = fmt.Sprintf(l.T("form.not_number"), s)
		}
		return v
	}
	dur := func(key, s string) alert.Duration {
		if s == "" {
			return 0
		}
		v, err := parseDuration(s)
		if err != nil {
			bad[key] = fmt.Sprintf(l.T("form.not_duration"), s)
		}
		return alert.Duration(v)
	}
	r := alert.Rule{ID: f.ID, Name: f.Name, Kind: f.Kind, Meter: f.Meter, Severity: f.Severity, Enabled: f.Enabled,
		ThresholdW: num("threshold_w", f.ThresholdW), For: dur("for", f.For), BudgetKWh: num("budget_kwh", f.BudgetKWh),
		Period: f.Period, SilentFor: dur("silent_for", f.SilentFor), Factor: num("factor", f.Factor),
		HysteresisW: num("hysteresis_w", f.HysteresisW), Cooldown: dur("cooldown", f.Cooldown),
		ThresholdPct: num("threshold_pct", f.ThresholdPct), HysteresisPct: num("hysteresis_pct", f.HysteresisPct)}
	return f, r, bad
}

// ruleView is a rule as the page lists it.
type ruleView struct {
	alert.Rule
	Condition string
	Firing    []string
	Warnings  []string
	// MeterKnown is whether its meter has a page: a rule may wait for a
	// meter that has sent nothing yet.
	MeterKnown bool
}

// configureData is what configure.html renders.
type configureData struct {
	*base
	Tariff energy.TariffState
	// TariffForm is the form, filled with the tariff in force or with
	// what was refused.
	TariffForm *tariffForm
	// CanTariff and CanRules are whether the user may change them.
	CanTariff, CanRules bool
	// RulesOn is whether there is a rule engine; Rules are its rules.
	RulesOn bool
	Rules   []ruleView
	// RuleForm is the form to add a rule, or to change one (?edit=id).
	RuleForm *ruleForm
	Meters   []string
	Kinds    []string
	// ModbusOn is whether Modbus devices are shown; Modbus are they,
	// ModbusForm the form to add or change one (?modbus=name), CanModbus
	// whether the user may, and Profiles the profiles to choose from.
	ModbusOn, CanModbus bool
	Modbus              []modbusView
	ModbusForm          *modbusForm
	Profiles            []string
	// MailOn is whether SMTP settings are shown; CanMail whether the user
	// may see and change them (admins); Mail are they, MailForm their form.
	MailOn, CanMail bool
	Mail            alert.MailState
	MailForm        *mailForm
	// MailTestedTo is whom the test mail went to.
	MailTestedTo string
	// Done says what the last change did (after its redirect), Rule which
	// rule or device it was; Failed is set when a form was refused.
	Done, DoneRule string
	Failed         bool
}

// condition describes a rule's condition in the page's language.
func (l *language) condition(r alert.Rule) string {
	switch r.Kind {
	case alert.PowerAbove, alert.PowerBelow:
		s := l.Power(r.ThresholdW)
		if r.For > 0 {
			s += " · " + alert.HumanDuration(time.Duration(r.For))
		}
		return s
	case alert.EnergyBudget:
		return l.Energy(r.BudgetKWh) + " / " + l.T("rules.period_"+r.Period)
	case alert.Silent:
		return alert.HumanDuration(time.Duration(r.SilentFor))
	case alert.Anomaly:
		return "×" + l.Number(r.Factor, 1)
	case alert.PhaseImbalance:
		return l.Number(r.ThresholdPct, 1) + " %"
	}
	return ""
}

// settingsPage serves GET /settings: the tariff and the alert rules.
func (d *Dashboard) settingsPage(c *fiber.Ctx) error {
	b := d.newBase(c, "configure", "configure.title")
	data := d.configureData(c, b)
	data.Done, data.DoneRule = c.Query("done"), cmp.Or(c.Query("rule"), c.Query("device"))
	if !slices.Contains([]string{"", "tariff_saved", "tariff_removed", "rule_saved", "rule_deleted", "rule_enabled", "rule_disabled",
		"modbus_saved", "modbus_deleted", "mail_saved", "mail_removed", "mail_tested"}, data.Done) {
		data.Done = ""
	}
	if data.Done == "mail_tested" {
		// Said only when it is addresses: the link is anyone's to forge.
		if to, err := mail.ParseAddressList(c.Query("to")); err == nil && len(to) <= alert.MaxMailRecipients {
			data.MailTestedTo = c.Query("to")
		}
	}
	if id := c.Query("edit"); id != "" && d.rules != nil {
		if r, err := d.rules.Get(id); err == nil && r.Source != "config" {
			data.RuleForm = ruleFormOf(r)
		}
	}
	if name := c.Query("modbus"); name != "" && d.modbusDevices != nil && data.CanModbus {
		if e, err := d.modbusDevices.Get(name); err == nil && e.Source != modbus.FromConfig {
			data.ModbusForm = modbusFormOf(e)
		}
	}
	return d.render(c, "configure", b, data)
}

// configureData is the page's data, its forms filled with what is saved.
func (d *Dashboard) configureData(c *fiber.Ctx, b *base) *configureData {
	role := auth.WhoFrom(c.UserContext()).Role
	open := d.auth == nil // no auth: every route open (handlers' own tests)
	data := &configureData{base: b, Tariff: d.tariff.State(), RulesOn: d.rules != nil, Kinds: alert.Kinds,
		CanTariff: open || auth.Allows(role, auth.Admin), CanRules: open || auth.Allows(role, auth.Operator),
		CanModbus: open || auth.Allows(role, auth.Admin)}
	data.TariffForm = tariffFormOf(data.Tariff.Tariff, b.Lang)
	data.RuleForm = &ruleForm{Kind: alert.PowerAbove, Severity: alert.SeverityWarning, Enabled: true}
	for _, m := range d.st.Meters() {
		data.Meters = append(data.Meters, m.ID)
	}
	if d.rules != nil {
		states := d.rules.States()
		for _, r := range d.rules.List() {
			v := ruleView{Rule: r, Condition: b.Lang.condition(r), MeterKnown: slices.Contains(data.Meters, r.Meter)}
			for _, w := range d.rules.WarningMessages(r) {
				v.Warnings = append(v.Warnings, b.Lang.message(w, d.loc))
			}
			for k, st := range states {
				if rule, m, _ := strings.Cut(k, "|"); rule == r.ID && st.Firing {
					v.Firing = append(v.Firing, m)
				}
			}
			slices.Sort(v.Firing)
			data.Rules = append(data.Rules, v)
		}
	}
	d.modbusSection(data, data.Meters)
	d.mailSection(c, data)
	return data
}

// refused renders the settings page again with status 400 and a form's
// errors beside its fields.
func (d *Dashboard) refused(c *fiber.Ctx, b *base, data *configureData) error {
	data.Failed = true
	c.Status(fiber.StatusBadRequest)
	return d.render(c, "configure", b, data)
}

// back redirects to the settings page, saying what was done (and to which
// rule or Modbus meter: what).
func back(c *fiber.Ctx, done, what, anchor string) error {
	q := url.Values{"done": {done}}
	if what != "" {
		key := "rule"
		if strings.HasPrefix(done, "modbus_") {
			key = "device"
		}
		q.Set(key, what)
	}
	return c.Redirect("/settings?"+q.Encode()+"#"+anchor, fiber.StatusSeeOther)
}

// fieldIndex is the index in a field's key: periods[1].to, holidays[0].
var fieldIndex = regexp.MustCompile(`\[\d+\]`)

// saveTariff serves POST /settings/tariff (admin): the tariff form, checked
// as config.yaml's tariff is; saved, it is in force at once.
func (d *Dashboard) saveTariff(c *fiber.Ctx) error {
	b := d.newBase(c, "configure", "configure.title")
	form, spec, bad := postedTariff(c, b.Lang)
	if len(bad) == 0 {
		_, err := d.tariff.Save(spec, auth.WhoFrom(c.UserContext()).User, d.now())
		if err == nil {
			audit.Note(c.UserContext(), "tariff saved: "+spec.Summary())
			return back(c, "tariff_saved", "", "tariff")
		}
		fes := tariff.FieldErrors(err)
		if len(fes) == 0 {
			return err
		}
		for _, fe := range fes {
			bad[fe.Field] = fe.Reason
			if strings.HasSuffix(fe.Field, ".days") { // the one field whose words are a language's
				bad[fe.Field] = b.Lang.T("form.bad_days")
			} else if text, ok := b.Lang.texts["terr."+fieldIndex.ReplaceAllString(fe.Field, "")]; ok {
				bad[fe.Field] = text // what the field takes, in the reader's language (the API keeps its English)
			}
		}
	}
	data := d.configureData(c, b)
	form.Errors = bad
	for range blankPeriods {
		form.Periods = append(form.Periods, periodForm{})
	}
	data.TariffForm = form
	return d.refused(c, b, data)
}

// removeTariff serves POST /settings/tariff/remove (admin): config.yaml's
// tariff is in force again.
func (d *Dashboard) removeTariff(c *fiber.Ctx) error {
	if _, err := d.tariff.Remove(); err != nil {
		return err
	}
	audit.Note(c.UserContext(), "saved tariff removed: config.yaml's is in force")
	return back(c, "tariff_removed", "", "tariff")
}

// saveRule serves POST /settings/rules (operator): the rule form makes a
// rule, or changes the one it edits (keeping its actions, which only the
// API changes).
func (d *Dashboard) saveRule(c *fiber.Ctx) error {
	b := d.newBase(c, "configure", "configure.title")
	form, r, bad := postedRule(c, b.Lang)
	if len(bad) == 0 {
		old, err := d.rules.Get(r.ID)
		switch {
		case err == nil && form.Editing == "":
			bad["id"] = fmt.Sprintf(b.Lang.T("form.rule_exists"), r.ID)
		case err == nil && old.Source == "config":
			bad["id"] = b.Lang.T("form.rule_in_config")
		case err != nil && form.Editing != "":
			bad["id"] = b.Lang.T("form.rule_gone")
		default:
			r.Actions = old.Actions
			saved, err := d.rules.Put(r)
			if err == nil {
				verb := "created"
				if form.Editing != "" {
					verb = "saved"
				}
				audit.Note(c.UserContext(), "rule "+saved.ID+" "+verb+": "+saved.Summary())
				return back(c, "rule_saved", saved.ID, "rule-"+saved.ID)
			}
			var ie *alert.InvalidError
			if !errors.As(err, &ie) {
				return err
			}
			bad[ie.Field] = ie.Reason
			if text, ok := b.Lang.texts["ruleerr."+ie.Field]; ok { // what the field takes, in the reader's language
				bad[ie.Field] = text
			}
		}
	}
	data := d.configureData(c, b)
	form.Errors = bad
	data.RuleForm = form
	return d.refused(c, b, data)
}

// enableRule serves POST /settings/rules/{id}/enabled (operator): field
// enabled, true or false.
func (d *Dashboard) enableRule(c *fiber.Ctx) error {
	r, err := d.rules.Get(c.Params("id"))
	if err != nil {
		return fiber.NewError(fiber.StatusNotFound, err.Error())
	}
	if r.Source == "config" {
		return fiber.NewError(fiber.StatusConflict, alert.ErrConfigRule.Error())
	}
	r.Enabled = string(c.Request().PostArgs().Peek("enabled")) == "true"
	if _, err := d.rules.Put(r); err != nil {
		return err
	}
	done := "rule_disabled"
	if r.Enabled {
		done = "rule_enabled"
	}
	audit.Note(c.UserContext(), "rule "+r.ID+" "+strings.TrimPrefix(done, "rule_"))
	return back(c, done, r.ID, "rule-"+r.ID)
}

// deleteRule serves POST /settings/rules/{id}/delete (operator).
func (d *Dashboard) deleteRule(c *fiber.Ctx) error {
	id := c.Params("id")
	if err := d.rules.Delete(id); err != nil {
		switch {
		case errors.Is(err, alert.ErrUnknownRule):
			return fiber.NewError(fiber.StatusNotFound, err.Error())
		case errors.Is(err, alert.ErrConfigRule):
			return fiber.NewError(fiber.StatusConflict, err.Error())
		}
		return err
	}
	audit.Note(c.UserContext(), "rule "+id+" deleted")
	return back(c, "rule_deleted", id, "rules")
}
