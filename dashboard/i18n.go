package dashboard

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/insight"
	"github.com/vatio-energy/vatio/store"
)

// A language of the dashboard: its code, its texts and how it writes
// numbers and dates.
type language struct {
	Code string
	// Name is the language's name in itself, for the switch.
	Name string
	// decimal and group are its decimal and thousands separators.
	decimal, group string
	months         [12]string
	weekdays       [7]string // Monday first
	texts          map[string]string
	// problems says internal/meter's problems (why a file was refused)
	// in the language: meter.Say's formats; nil says them in English.
	problems map[string]string
}

// languages are the dashboard's languages; the first is the default.
var languages = []*language{english, spanish}

// langCookie remembers the language a user chose.
const langCookie = "vatio_lang"

// languageByCode returns the language with code, or nil.
func languageByCode(code string) *language {
	for _, l := range languages {
		if l.Code == code {
			return l
		}
	}
	return nil
}

// pickLanguage returns the language a user chose (cookie), else the best
// of the browser's Accept-Language that the dashboard speaks, else English.
func pickLanguage(cookie, acceptLanguage string) *language {
	if l := languageByCode(cookie); l != nil {
		return l
	}
	type choice struct {
		code string
		q    float64
		i    int
	}
	var choices []choice
	for i, part := range strings.Split(acceptLanguage, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
		if q > 0 && primary != "" {
			choices = append(choices, choice{primary, q, i})
		}
	}
	sort.SliceStable(choices, func(a, b int) bool { return choices[a].q > choices[b].q })
	for _, c := range choices {
		if l := languageByCode(c.code); l != nil {
			return l
		}
	}
	return languages[0]
}

// T returns the text of key. A key missing from the catalogue shows as
// itself (a test keeps every key in both catalogues).
func (l *language) T(key string) string {
	if s, ok := l.texts[key]; ok {
		return s
	}
	return key
}

// Number formats v with decimals digits after the separator and thousands
// grouped, as the language writes it: 1,234.5 or 1.234,5.
func (l *language) Number(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := strconv.FormatFloat(math.Abs(v), 'f', decimals, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 && strings.Trim(s, "0.") != "" {
		b.WriteString("-")
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(l.group)
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString(l.decimal)
		b.WriteString(frac)
	}
	return b.String()
}

// Power formats watts, scaled to W, kW or MW.
func (l *language) Power(w float64) string {
	switch a := math.Abs(w); {
	case a < 999.5:
		return l.Number(w, 0) + " W"
	case a < 999_995:
		return l.Number(w/1e3, 2) + " kW"
	default:
		return l.Number(w/1e6, 2) + " MW"
	}
}

// Energy formats kilowatt-hours, scaled to kWh or MWh.
func (l *language) Energy(kwh float64) string {
	switch a := math.Abs(kwh); {
	case a < 99.995:
		return l.Number(kwh, 2) + " kWh"
	case a < 9999.95:
		return l.Number(kwh, 1) + " kWh"
	default:
		return l.Number(kwh/1e3, 2) + " MWh"
	}
}

// DateTime formats t in loc: "25 Nov 2026, 14:05" ("25 nov 2026, 14:05").
func (l *language) DateTime(t time.Time, loc *time.Location) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "–"
	}
	// To the second first: an imported interval's last reading, a
	// nanosecond before its end (see meter.HistoryReader), shows the end.
	t = t.Round(time.Second).In(loc)
	return strconv.Itoa(t.Day()) + " " + l.months[t.Month()-1] + " " + strconv.Itoa(t.Year()) + ", " + t.Format("15:04")
}

// Day formats the date of t in loc: "Wed 25 Nov".
func (l *language) Day(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	return l.weekdays[(int(t.Weekday())+6)%7] + " " + strconv.Itoa(t.Day()) + " " + l.months[t.Month()-1]
}

// textKeys returns the catalogue's keys, sorted.
func (l *language) textKeys() []string {
	keys := make([]string, 0, len(l.texts))
	for k := range l.texts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// recommendation writes part ("title" or "detail") of r from its evidence,
// in the language.
func (l *language) recommendation(r insight.Recommendation, part, currency string) string {
	e := r.Evidence
	n := l.Number
	repl := strings.NewReplacer(
		"{meter}", r.Meter,
		"{currency}", currency,
		"{w}", n(e["baseload_w"]+e["standby_w"], 0),
		"{standby_w}", n(e["standby_w"], 1),
		"{kwh}", n(e["kwh_per_year"]+e["dear_kwh_per_year"], 0),
		"{cost}", n(e["cost_per_year"], 0),
		"{share}", n(e["standby_share"]*100, 0),
		"{dear}", n(e["dearest_price"], 3),
		"{cheap}", n(e["cheapest_price"], 3),
		"{peak}", n(e["peak_kw"], 1),
		"{p95}", n(e["p95_kw"], 1),
		"{charge}", n(e["demand_charge_kw"], 2),
		"{up}", n(e["increase"]*100, 0),
		"{last}", n(e["last_week_kwh"], 1),
		"{usual}", n(e["usual_week_kwh"], 1),
		"{pf}", n(e["power_factor"], 2),
		"{kvarh}", n(e["excess_kvarh_per_year"], 0),
		"{price}", n(e["reactive_price_kvarh"], 3),
	)
	return repl.Replace(l.T("rec." + r.Kind + "." + part))
}

// alertText returns alert a's message in l: its key's text with its
// values (see alert.Message), times in loc. An alert without a key (raised
// through the API, or stored before keys) or with a key this version does
// not know shows its Message as stored.
func (l *language) alertText(a store.Alert, loc *time.Location) string {
	if _, ok := l.texts[a.Key]; a.Key == "" || !ok {
		return a.Message
	}
	text := func(key string) (string, bool) { s, ok := l.texts[key]; return s, ok }
	return alert.Render(alert.Message{Key: a.Key, Args: a.Args}, loc, text, func(name, v string) string { return l.alertValue(name, v, loc) })
}

// message renders m, an alert's or a rule's message, in l.
func (l *language) message(m alert.Message, loc *time.Location) string {
	text := func(key string) (string, bool) { s, ok := l.texts[key]; return s, ok }
	return alert.Render(m, loc, text, func(name, v string) string { return l.alertValue(name, v, loc) })
}

// dayName is a tariff period's day keyword (mon, weekdays...) as l writes
// it; the tariff form reads it back (see tariffDay).
func (l *language) dayName(day string) string {
	if s, ok := l.texts["day."+day]; ok {
		return s
	}
	return day
}

// alertValue formats an alert's value by its name, as alert.Message says.
func (l *language) alertValue(name, v string, loc *time.Location) string {
	f, err := strconv.ParseFloat(v, 64)
	switch {
	case strings.HasSuffix(name, "_w") && err == nil:
		return l.Power(f)
	case strings.HasSuffix(name, "_kwh") && err == nil:
		return l.Energy(f)
	case name == "factor" && err == nil:
		return l.Number(f, 1)
	case strings.HasSuffix(name, "_pct") && err == nil:
		return l.Number(f, 1) + " %"
	case name == "period":
		if s, ok := l.texts["alert.period."+v]; ok {
			return s
		}
	case alert.IsDuration(name):
		if d, err := time.ParseDuration(v); err == nil {
			return alert.HumanDuration(d)
		}
	case strings.HasSuffix(name, "_at"):
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return l.DateTime(t, loc)
		}
	}
	return v
}
