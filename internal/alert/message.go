package alert

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// Message is an alert's text as a key of the dashboard's catalogues and the
// values it shows, so that each reader sees the alert in their language;
// English renders it for notifiers and for the API's message field.
//
// A value's name says how it is shown: ending in _w, watts ("2.50 kW");
// _kwh, kilowatt-hours; _pct, a percentage; _at, an RFC 3339 time;
// factor, a number with one decimal; period, "day" or "month", translated; for and quiet, a
// duration stored as Go writes it ("30s", "1h30m") and shown as people
// write it ("30 s", "1 h 30 min", see HumanDuration). Others show as they
// are (meter ids).
type Message struct {
	Key  string
	Args map[string]string
}

// Message keys: the texts of alerts raised by rules and by Vatio itself.
// Every key has an English text in English and one in each of the
// dashboard's catalogues (dashboard/texts.go).
const (
	MsgPowerAbove     = "alert.power_above"
	MsgPowerBelow     = "alert.power_below"
	MsgEnergyBudget   = "alert.energy_budget"
	MsgSilent         = "alert.silent"
	MsgNeverHeard     = "alert.never_heard"
	MsgOutOfRange     = "alert.out_of_range"
	MsgNoRange        = "alert.no_range"
	MsgAnomaly        = "alert.anomaly"
	MsgPhaseImbalance = "alert.phase_imbalance"
	MsgNoPhases       = "alert.no_phases"
	MsgNoData         = "alert.no_data"
	MsgRuleDeleted    = "alert.rule_deleted"
	MsgRuleNotApplies = "alert.rule_not_applies"
	// What a rule's resolution says cleared: the opposite of what fired.
	MsgPowerBackBelow = "alert.power_back_below"
	MsgPowerBackAbove = "alert.power_back_above"
	MsgWithinBudget   = "alert.within_budget"
	MsgHeardAgain     = "alert.heard_again"
	MsgBackInRange    = "alert.back_in_range"
	MsgAnomalyOver    = "alert.anomaly_over"
	MsgPhasesBalanced = "alert.phases_balanced"
	// MsgNoMeterYet is a rule's warning: its meter has sent no reading.
	// MsgNoRangeYet: an out_of_range rule's meter has no expected range.
	MsgNoMeterYet = "alert.no_meter_yet"
	MsgNoRangeYet = "alert.no_range_yet"
	// MsgResolved wraps the message of what cleared: its Args hold that
	// message's key as "what", and its values.
	MsgResolved = "alert.resolved"
	// MsgLockout and MsgOffsite are Vatio's own alerts: repeated failed
	// log-ins, and off-site copies that keep failing.
	MsgLockout = "alert.lockout"
	MsgOffsite = "alert.offsite"
)

// English holds the English text of every message key, with its values'
// names in braces.
var English = map[string]string{
	MsgPowerAbove:     "power {power_w} above {threshold_w} for {for}",
	MsgPowerBelow:     "power {power_w} below {threshold_w} for {for}",
	MsgEnergyBudget:   "{used_kwh} this {period}, over the budget of {budget_kwh}",
	MsgSilent:         "no reading for {quiet}",
	MsgNeverHeard:     "never heard live",
	MsgOutOfRange:     "power {power_w} outside its expected range",
	MsgNoRange:        "no expected range",
	MsgAnomaly:        "the last hour drew {mean_w} on average, {factor} times the usual {usual_w} for this hour and weekday",
	MsgNoData:         "no data to judge by",
	MsgPhaseImbalance: "phases {imbalance_pct} apart in power (L1 {l1_w}, L2 {l2_w}, L3 {l3_w}), over {threshold_pct}",
	MsgNoPhases:       "no phases {meter}:L1 to {meter}:L3 to compare",
	MsgPhasesBalanced: "phases back within {threshold_pct} ({imbalance_pct})",
	MsgRuleDeleted:    "the rule was deleted",
	MsgRuleNotApplies: "the rule no longer applies",
	MsgPowerBackBelow: "power back below {threshold_w} ({power_w}) for {for}",
	MsgPowerBackAbove: "power back above {threshold_w} ({power_w}) for {for}",
	MsgWithinBudget:   "{used_kwh} this {period}, within the budget of {budget_kwh}",
	MsgHeardAgain:     "readings again",
	MsgBackInRange:    "power {power_w} back inside its expected range",
	MsgAnomalyOver:    "the last hour drew {mean_w} on average, back near the usual {usual_w}",
	MsgNoMeterYet:     `meter "{meter}" has sent no readings yet: the rule applies once it does`,
	MsgNoRangeYet:     `meter "{meter}" has no expected range (expected_min_w, expected_max_w): the rule cannot fire`,
	MsgResolved:       "resolved: {what}",
	MsgLockout:        `repeated failed logins from {addr} (user "{user}"): locked out until {until_at}`,
	MsgOffsite:        "off-site copies failed three times in a row: {error}",
}

// msg returns the message of key with args given as name, value pairs.
func msg(key string, args ...string) Message {
	m := Message{Key: key, Args: make(map[string]string, len(args)/2)}
	for i := 0; i+1 < len(args); i += 2 {
		m.Args[args[i]] = args[i+1]
	}
	return m
}

// watts and kwh write values for a Message.
func watts(w float64) string { return strconv.FormatFloat(w, 'f', -1, 64) }
func kwh(v float64) string   { return strconv.FormatFloat(v, 'f', -1, 64) }

// duration writes d for a Message as people write it: 30s, 5m, 1h30m
// (time.Duration's String says 5m0s).
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// HumanDuration writes d as people read it, the same in English and
// Spanish: "30 s", "5 min", "2 h", "1 h 30 min", "1 min 5 s" (time.Duration's
// String says 2h0m0s). Parts under a second are dropped.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		return "-" + HumanDuration(-d)
	}
	d = d.Truncate(time.Second)
	if d == 0 {
		return "0 s"
	}
	h, m, sec := int64(d/time.Hour), int64(d%time.Hour/time.Minute), int64(d%time.Minute/time.Second)
	var parts []string
	if h > 0 {
		parts = append(parts, strconv.FormatInt(h, 10)+" h")
	}
	if m > 0 {
		parts = append(parts, strconv.FormatInt(m, 10)+" min")
	}
	if sec > 0 {
		parts = append(parts, strconv.FormatInt(sec, 10)+" s")
	}
	return strings.Join(parts, " ")
}

// IsDuration reports whether the value of name is a duration (see Message).
func IsDuration(name string) bool { return name == "for" || name == "quiet" }

// resolved returns the message of a resolution by what cleared.
func resolved(what Message) Message {
	m := Message{Key: MsgResolved, Args: maps.Clone(what.Args)}
	if m.Args == nil {
		m.Args = map[string]string{}
	}
	m.Args["what"] = what.Key
	return m
}

// English renders m in English, times in loc (UTC when nil). A key it
// does not know renders as the key.
func (m Message) English(loc *time.Location) string {
	return Render(m, loc, func(key string) (string, bool) { s, ok := English[key]; return s, ok },
		func(name, v string) string { return englishValue(name, v, loc) })
}

// Render renders m with the texts of a language (text returns a key's
// text, if it has one) and format, which shows a value by its name. The
// dashboard renders in the reader's language with it.
func Render(m Message, loc *time.Location, text func(key string) (string, bool), format func(name, value string) string) string {
	t, ok := text(m.Key)
	if !ok {
		return m.Key
	}
	var pairs []string
	for _, name := range slices.Sorted(maps.Keys(m.Args)) {
		v := m.Args[name]
		if m.Key == MsgResolved && name == "what" && v != MsgResolved {
			v = Render(Message{Key: v, Args: m.Args}, loc, text, format)
		} else {
			v = format(name, v)
		}
		pairs = append(pairs, "{"+name+"}", v)
	}
	return strings.NewReplacer(pairs...).Replace(t)
}

// englishValue formats value name v in English (see Message).
func englishValue(name, v string, loc *time.Location) string {
	f, err := strconv.ParseFloat(v, 64)
	switch {
	case strings.HasSuffix(name, "_w") && err == nil:
		return kw(f)
	case strings.HasSuffix(name, "_kwh") && err == nil:
		return fmt.Sprintf("%.2f kWh", f)
	case name == "factor" && err == nil:
		return fmt.Sprintf("%.1f", f)
	case strings.HasSuffix(name, "_pct") && err == nil:
		return strconv.FormatFloat(f, 'f', -1, 64) + " %"
	case IsDuration(name):
		if d, err := time.ParseDuration(v); err == nil {
			return HumanDuration(d)
		}
	case strings.HasSuffix(name, "_at"):
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			if loc == nil {
				loc = time.UTC
			}
			return t.In(loc).Format(time.DateTime)
		}
	}
	return v
}

// withMessage returns a with m stored as its message: the key and values,
// and the English text (after the meter's id, when it has one).
func withMessage(a store.Alert, m Message, loc *time.Location) store.Alert {
	a.Key, a.Args = m.Key, m.Args
	a.Message = m.English(loc)
	if a.Meter != "" {
		a.Message = a.Meter + ": " + a.Message
	}
	return a
}

// RaiseMessage raises an alert of Vatio's own (see MsgLockout) with
// message m, which the dashboard shows in its reader's language; times
// in the English text are in loc.
func (s *Service) RaiseMessage(severity string, m Message, loc *time.Location, meterID, source string) (store.Alert, error) {
	if _, ok := English[m.Key]; !ok {
		return store.Alert{}, &InvalidError{"message", fmt.Sprintf("unknown message key %q", m.Key)}
	}
	return s.raise(withMessage(store.Alert{Severity: severity, Meter: meterID, Source: source}, m, loc))
}

// Lockout returns the message of a lockout after repeated failed log-ins
// of user from addr, until until.
func Lockout(addr, user string, until time.Time) Message {
	return msg(MsgLockout, "addr", addr, "user", user, "until_at", until.UTC().Format(time.RFC3339))
}

// Offsite returns the message of off-site copies that failed three times
// in a row, the last with err.
func Offsite(err error) Message {
	text := err.Error()
	if r := []rune(text); len(r) > 500 {
		text = string(r[:500]) + "…"
	}
	return msg(MsgOffsite, "error", text)
}
