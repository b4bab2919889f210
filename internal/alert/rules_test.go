package alert_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/automation"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

var utcTariff = energy.FixedTariff(&tariff.Tariff{Currency: "EUR", PriceKWh: 0.2, Location: time.UTC})

// series returns readings of m every 10 s over [from, to) at w watts.
func series(m string, from, to time.Time, w float64) []meter.Reading {
	var rs []meter.Reading
	for ts := from; ts.Before(to); ts = ts.Add(10 * time.Second) {
		rs = append(rs, meter.Reading{Meter: m, Time: ts, PowerW: w, Stamped: true})
	}
	return rs
}

func add(t *testing.T, st *store.Store, rs ...meter.Reading) {
	t.Helper()
	for _, r := range rs {
		if err := st.Append(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
}

// ruleAlerts returns the alerts a rule raised, oldest first.
func ruleAlerts(t *testing.T, st *store.Store, rule string) []store.Alert {
	t.Helper()
	as, err := st.Alerts(1000, func(a *store.Alert) bool { return a.Rule == rule })
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(as)-1; i < j; i, j = i+1, j-1 {
		as[i], as[j] = as[j], as[i]
	}
	return as
}

func newRules(t *testing.T, st *store.Store, config ...alert.Rule) (*alert.Rules, *alert.Service) {
	t.Helper()
	svc := alert.New(st, nil, alert.Options{})
	t.Cleanup(svc.Close)
	r, err := alert.NewRules(st, svc, utcTariff, config, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, svc
}

func TestPowerAboveFiresResolvesAndCoolsDown(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	add(t, st, series("oven", t0, t0.Add(4*time.Minute), 5000)...)
	rules, _ := newRules(t, st)
	if _, err := rules.Put(alert.Rule{ID: "hot", Kind: alert.PowerAbove, Meter: "oven", Severity: "warning", Enabled: true,
		ThresholdW: 3000, For: alert.Duration(5 * time.Minute), HysteresisW: 500, Cooldown: alert.Duration(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rules.Evaluate(t0.Add(4 * time.Minute)) // not yet 5 minutes of readings
	if as := ruleAlerts(t, st, "hot"); len(as) != 0 {
		t.Fatalf("fired before 5 minutes: %+v", as)
	}
	now := t0.Add(6 * time.Minute)
	add(t, st, series("oven", t0.Add(4*time.Minute), now, 5000)...)
	rules.Evaluate(now)
	rules.Evaluate(now.Add(time.Second)) // still firing: once only
	as := ruleAlerts(t, st, "hot")
	if len(as) != 1 || as[0].State != store.AlertFiring || as[0].Meter != "oven" || as[0].Severity != "warning" ||
		!strings.Contains(as[0].Message, "above 3.00 kW") {
		t.Fatalf("alerts = %+v", as)
	}
	// A restart keeps the state: no second alert.
	st.Close()
	st = openStore(t, dir)
	rules, _ = newRules(t, st)
	rules.Evaluate(now.Add(2 * time.Second))
	if as := ruleAlerts(t, st, "hot"); len(as) != 1 {
		t.Fatalf("after a restart: %d alerts", len(as))
	}
	// 2.8 kW is below the threshold but within the hysteresis: still firing.
	add(t, st, series("oven", now, now.Add(time.Minute), 2800)...)
	rules.Evaluate(now.Add(time.Minute))
	if as := ruleAlerts(t, st, "hot"); len(as) != 1 {
		t.Fatalf("resolved within the hysteresis: %+v", as)
	}
	// Resolving takes the rule's 5 minutes below 2.5 kW too.
	add(t, st, series("oven", now.Add(time.Minute), now.Add(5*time.Minute), 1000)...)
	rules.Evaluate(now.Add(5 * time.Minute))
	if as := ruleAlerts(t, st, "hot"); len(as) != 1 {
		t.Fatalf("resolved after 4 minutes below: %+v", as)
	}
	add(t, st, series("oven", now.Add(5*time.Minute), now.Add(7*time.Minute), 1000)...)
	rules.Evaluate(now.Add(7 * time.Minute))
	as = ruleAlerts(t, st, "hot")
	if len(as) != 2 || as[0].State != store.AlertResolved || as[0].ResolvedAt == nil || as[1].State != store.AlertResolved ||
		!strings.Contains(as[1].Message, "resolved") {
		t.Fatalf("after the power fell: %+v", as)
	}
	// Hot again at once: the cooldown holds it back.
	later := now.Add(7 * time.Minute)
	add(t, st, series("oven", later, later.Add(7*time.Minute), 6000)...)
	rules.Evaluate(later.Add(7 * time.Minute))
	if as := ruleAlerts(t, st, "hot"); len(as) != 2 {
		t.Errorf("fired within the cooldown: %d alerts", len(as))
	}
}

func TestSilentOutOfRangeAnomaly(t *testing.T) {
	st := openStore(t, t.TempDir())
	now := time.Now().Truncate(time.Minute)
	// plug: 2 kW for the last 2 hours, over its expected 1.5 kW.
	add(t, st, series("plug", now.Add(-2*time.Hour), now, 2000)...)
	max := 1500.0
	if _, err := st.EditMeter("plug", func(m *store.MeterInfo) error { m.ExpectedMaxW = &max; return nil }); err != nil {
		t.Fatal(err)
	}
	// fridge: 100 W at this hour on each of the last 4 weeks, 600 W now.
	for w := 1; w <= 4; w++ {
		at := now.Add(-time.Duration(w) * 7 * 24 * time.Hour)
		add(t, st, series("fridge", at.Add(-time.Hour), at, 100)...)
	}
	add(t, st, series("fridge", now.Add(-time.Hour), now, 600)...)
	rules, _ := newRules(t, st,
		alert.Rule{ID: "quiet", Kind: alert.Silent, Meter: "*", Severity: "critical", Enabled: true, SilentFor: alert.Duration(10 * time.Minute)},
		alert.Rule{ID: "range", Kind: alert.OutOfRange, Meter: "*", Severity: "warning", Enabled: true, HysteresisW: 100},
		alert.Rule{ID: "odd", Kind: alert.Anomaly, Meter: "fridge", Severity: "warning", Enabled: true, Factor: 3},
		alert.Rule{ID: "off", Kind: alert.Silent, Meter: "*", Severity: "critical", Enabled: false, SilentFor: alert.Duration(time.Minute)},
	)
	rules.Evaluate(time.Now())
	if as := ruleAlerts(t, st, "range"); len(as) != 1 || as[0].Meter != "plug" {
		t.Errorf("out of range: %+v", as)
	}
	if as := ruleAlerts(t, st, "odd"); len(as) != 1 || !strings.Contains(as[0].Message, "6.0 times the usual") {
		t.Errorf("anomaly: %+v", as)
	}
	if as := ruleAlerts(t, st, "quiet"); len(as) != 0 {
		t.Errorf("silent while both report: %+v", as)
	}
	rules.Evaluate(time.Now().Add(11 * time.Minute))
	if as := ruleAlerts(t, st, "quiet"); len(as) != 2 {
		t.Errorf("silent after 11 minutes: %d alerts, want one per meter", len(as))
	}
	if as := ruleAlerts(t, st, "off"); len(as) != 0 {
		t.Errorf("a disabled rule fired: %+v", as)
	}
	// plug reports again, inside its range: silence and range resolve.
	add(t, st, meter.Reading{Meter: "plug", Time: time.Now(), PowerW: 1000})
	rules.Evaluate(time.Now())
	if s := rules.States()["quiet|plug"]; s.Firing {
		t.Errorf("plug still silent: %+v", s)
	}
	if s := rules.States()["range|plug"]; s.Firing {
		t.Errorf("plug still out of range: %+v", s)
	}
	if as := ruleAlerts(t, st, "quiet"); len(as) < 3 || as[len(as)-1].State != store.AlertResolved {
		t.Errorf("the resolution is an alert too: %+v", as)
	}
}

// An energy budget is of the day (or month) so far, so this test runs at a
// fixed noon: at the real time, just after midnight, the day would hold too
// little energy for it.
func TestEnergyBudget(t *testing.T) {
	st := openStore(t, t.TempDir())
	noon := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	// 2 kW from 10:00 to noon: 4 kWh today. The 4 kWh of 22:00 to
	// midnight the day before are not today's.
	add(t, st, series("plug", noon.Add(-14*time.Hour), noon.Add(-12*time.Hour), 2000)...)
	add(t, st, series("plug", noon.Add(-2*time.Hour), noon, 2000)...)
	rules, _ := newRules(t, st,
		alert.Rule{ID: "day", Kind: alert.EnergyBudget, Meter: "plug", Severity: "info", Enabled: true, BudgetKWh: 3.5, Period: "day"},
		alert.Rule{ID: "roomy", Kind: alert.EnergyBudget, Meter: "plug", Severity: "info", Enabled: true, BudgetKWh: 4.5, Period: "day"},
	)
	rules.Evaluate(noon)
	if as := ruleAlerts(t, st, "day"); len(as) != 1 || !strings.Contains(as[0].Message, "budget of 3.50 kWh") {
		t.Errorf("budget: %+v", as)
	}
	if as := ruleAlerts(t, st, "roomy"); len(as) != 0 {
		t.Errorf("fired within its budget: %+v", as)
	}
}

func TestRuleCRUD(t *testing.T) {
	st := openStore(t, t.TempDir())
	add(t, st, meter.Reading{Meter: "m", Time: time.Now(), PowerW: 1})
	cfg := alert.Rule{ID: "from-config", Kind: alert.Silent, Meter: "*", Severity: "warning", Enabled: true, SilentFor: alert.Duration(time.Hour)}
	rules, _ := newRules(t, st, cfg)
	for _, c := range []struct {
		rule  alert.Rule
		field string
	}{
		{alert.Rule{ID: "Bad ID", Kind: alert.Silent, Meter: "*", Severity: "info", SilentFor: alert.Duration(time.Hour)}, "id"},
		{alert.Rule{ID: "k", Kind: "weird", Meter: "*", Severity: "info"}, "kind"},
		{alert.Rule{ID: "k", Kind: alert.Silent, Meter: "../x", Severity: "info", SilentFor: alert.Duration(time.Hour)}, "meter"},
		{alert.Rule{ID: "k", Kind: alert.Silent, Meter: "*", Severity: "loud", SilentFor: alert.Duration(time.Hour)}, "severity"},
		{alert.Rule{ID: "k", Kind: alert.Silent, Meter: "*", Severity: "info", SilentFor: alert.Duration(time.Second)}, "silent_for"},
		{alert.Rule{ID: "k", Kind: alert.EnergyBudget, Meter: "*", Severity: "info", BudgetKWh: 1, Period: "week"}, "period"},
		{alert.Rule{ID: "k", Kind: alert.EnergyBudget, Meter: "*", Severity: "info", BudgetKWh: -1, Period: "day"}, "budget_kwh"},
		{alert.Rule{ID: "k", Kind: alert.Anomaly, Meter: "*", Severity: "info", Factor: 0.5}, "factor"},
		{alert.Rule{ID: "k", Kind: alert.PowerAbove, Meter: "*", Severity: "info", For: alert.Duration(-time.Second)}, "for"},
	} {
		var ie *alert.InvalidError
		if _, err := rules.Put(c.rule); !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("Put(%+v) = %v, want invalid %s", c.rule, err, c.field)
		}
	}
	if _, err := rules.Put(alert.Rule{ID: "from-config", Kind: alert.Silent, Meter: "*", Severity: "info", SilentFor: alert.Duration(time.Hour)}); !errors.Is(err, alert.ErrConfigRule) {
		t.Errorf("replacing a config rule: %v", err)
	}
	if err := rules.Delete("from-config"); !errors.Is(err, alert.ErrConfigRule) {
		t.Errorf("deleting a config rule: %v", err)
	}
	good := alert.Rule{ID: "mine", Kind: alert.Silent, Meter: "m", Severity: "info", Enabled: true, SilentFor: alert.Duration(time.Minute)}
	if _, err := rules.Put(good); err != nil {
		t.Fatal(err)
	}
	rules.Evaluate(time.Now().Add(time.Hour)) // fires
	if err := rules.Delete("mine"); err != nil {
		t.Fatal(err)
	}
	if as := ruleAlerts(t, st, "mine"); len(as) != 2 || as[0].State != store.AlertResolved {
		t.Errorf("deleting a firing rule resolves it: %+v", as)
	}
	if _, err := rules.Get("mine"); !errors.Is(err, alert.ErrUnknownRule) {
		t.Errorf("Get after Delete: %v", err)
	}
	if list := rules.List(); len(list) != 1 || list[0].Source != "config" {
		t.Errorf("List = %+v", list)
	}
	b, _ := json.Marshal(good)
	if !strings.Contains(string(b), `"silent_for":"1m"`) {
		t.Errorf("JSON = %s", b)
	}
	var back alert.Rule
	if err := json.Unmarshal([]byte(`{"silent_for": "5"}`), &back); err == nil {
		t.Error(`"5" accepted as a duration`)
	}
}

func TestRuleActions(t *testing.T) {
	st := openStore(t, t.TempDir())
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	add(t, st, series("heater", t0, t0.Add(time.Minute), 3000)...)
	rules, _ := newRules(t, st)
	var mu sync.Mutex
	var sent []string
	rules.SetSender(&automation.Sender{Publish: func(topic string, payload []byte) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, topic+" "+string(payload))
		return nil
	}})
	_, err := rules.Put(alert.Rule{ID: "cut", Kind: alert.PowerAbove, Meter: "heater", Severity: "warning", Enabled: true, ThresholdW: 2500,
		Actions: []alert.Action{
			{Command: automation.Command{Topic: "cmnd/heater/POWER", Payload: "OFF"}},
			{On: "resolve", Command: automation.Command{Topic: "cmnd/heater/POWER", Payload: "ON"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	rules.Evaluate(t0.Add(time.Minute))
	rules.Wait()
	add(t, st, series("heater", t0.Add(time.Minute), t0.Add(2*time.Minute), 100)...)
	rules.Evaluate(t0.Add(2 * time.Minute))
	rules.Wait()
	mu.Lock()
	if len(sent) != 2 || sent[0] != "cmnd/heater/POWER OFF" || sent[1] != "cmnd/heater/POWER ON" {
		t.Errorf("sent %v", sent)
	}
	mu.Unlock()
	if as := ruleAlerts(t, st, "cut"); len(as) == 0 || len(as[0].Actions) != 2 || as[0].Actions[0] != "cmnd/heater/POWER: sent" {
		t.Errorf("actions recorded on the alert: %+v", as)
	}
	for _, bad := range []alert.Action{{On: "later", Command: automation.Command{Topic: "a", Payload: "b"}}, {Command: automation.Command{Topic: "a/#"}}} {
		if _, err := rules.Put(alert.Rule{ID: "x", Kind: alert.Silent, Meter: "*", Severity: "info", SilentFor: alert.Duration(time.Hour), Actions: []alert.Action{bad}}); err == nil {
			t.Errorf("action %+v accepted", bad)
		}
	}
}

func TestDisabledRuleResolvesWhatItFired(t *testing.T) {
	st := openStore(t, t.TempDir())
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	add(t, st, series("oven", t0, t0.Add(time.Minute), 5000)...)
	rules, _ := newRules(t, st)
	var mu sync.Mutex
	var sent []string
	rules.SetSender(&automation.Sender{Publish: func(topic string, payload []byte) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, string(payload))
		return nil
	}})
	rule := alert.Rule{ID: "hot", Kind: alert.PowerAbove, Meter: "oven", Severity: "warning", Enabled: true, ThresholdW: 3000,
		Actions: []alert.Action{{Command: automation.Command{Topic: "cmnd/oven/POWER", Payload: "OFF"}}, {On: "resolve", Command: automation.Command{Topic: "cmnd/oven/POWER", Payload: "ON"}}}}
	if _, err := rules.Put(rule); err != nil {
		t.Fatal(err)
	}
	rules.Evaluate(t0.Add(time.Minute))
	rule.Enabled = false
	if _, err := rules.Put(rule); err != nil {
		t.Fatal(err)
	}
	rules.Evaluate(t0.Add(2 * time.Minute))
	rules.Wait()
	if s := rules.States()["hot|oven"]; s.Firing {
		t.Errorf("still firing after the rule was disabled: %+v", s)
	}
	if as := ruleAlerts(t, st, "hot"); len(as) != 2 || as[0].State != store.AlertResolved {
		t.Errorf("alerts = %+v", as)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 2 || sent[1] != "ON" {
		t.Errorf("actions sent %v, want OFF then ON", sent)
	}
}

// TestPowerRuleWaitsForReadingsStampedAhead: a device may stamp readings
// up to ingest.max_future ahead of Vatio's clock; a burst of them spanning
// a rule's window must not fire it before that time has come.
func TestPowerRuleWaitsForReadingsStampedAhead(t *testing.T) {
	st := openStore(t, t.TempDir())
	rules, _ := newRules(t, st)
	if _, err := rules.Put(alert.Rule{ID: "hot", Kind: alert.PowerAbove, Meter: "fr2", Severity: "warning", Enabled: true,
		ThresholdW: 1000, For: alert.Duration(4 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Second)
	for i := range 26 { // t0 .. t0+250s, sent at once
		add(t, st, meter.Reading{Meter: "fr2", Time: t0.Add(time.Duration(i) * 10 * time.Second), PowerW: 5000, Stamped: true})
	}
	firing := func() bool { return rules.States()["hot|fr2"].Firing }
	for _, at := range []time.Duration{2 * time.Second, time.Minute, 3*time.Minute + 59*time.Second} {
		if rules.Evaluate(t0.Add(at)); firing() {
			t.Fatalf("fired at t0+%s on readings stamped up to t0+250s: the 4m window has not passed", at)
		}
	}
	if rules.Evaluate(t0.Add(4*time.Minute + time.Second)); !firing() {
		t.Fatal("not fired at t0+4m1s, after 4 minutes above the threshold")
	}
}

// TestPowerRuleWaitsForItsDurationOnReadingTimes feeds a meter a reading
// every 2 s, evaluating after each at the reading's time: a for: 30s rule
// fires at the reading 30 s after the first one above the threshold, not
// before, whatever the meter sent long ago; it resolves only after 30 s
// below the threshold less the hysteresis, and a reading back inside the
// hysteresis, or a gap longer than the meter's silence, starts a count
// again.
func TestPowerRuleWaitsForItsDurationOnReadingTimes(t *testing.T) {
	st := openStore(t, t.TempDir())
	rules, _ := newRules(t, st)
	if _, err := rules.Put(alert.Rule{ID: "hot", Kind: alert.PowerAbove, Meter: "kettle", Severity: "warning", Enabled: true,
		ThresholdW: 2000, For: alert.Duration(30 * time.Second), HysteresisW: 200}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	// One reading below, an hour before (the guide's first mosquitto_pub).
	add(t, st, meter.Reading{Meter: "kettle", Time: t0.Add(-time.Hour), PowerW: 100, Stamped: true})
	at := t0
	step := func(w float64) {
		t.Helper()
		add(t, st, meter.Reading{Meter: "kettle", Time: at, PowerW: w, Stamped: true})
		rules.Evaluate(at.Add(500 * time.Millisecond))
		at = at.Add(2 * time.Second)
	}
	firing := func() bool { return rules.States()["hot|kettle"].Firing }
	// Readings every 2 s, all above the threshold and seconds apart from a
	// reading an hour old: the run starts at t0.
	for i := 0; i < 15; i++ { // t0 .. t0+28s
		step(2500)
		if firing() {
			t.Fatalf("fired %s after the first reading above the threshold", at.Add(-2*time.Second).Sub(t0))
		}
	}
	step(2500) // t0+30s
	if !firing() {
		t.Fatalf("not firing 30 s after the first reading above the threshold")
	}
	as := ruleAlerts(t, st, "hot")
	if len(as) != 1 || as[0].State != store.AlertFiring {
		t.Fatalf("alerts = %+v", as)
	}
	// Its message: a key and values for the dashboard's languages, and the
	// English text for notifiers.
	if a := as[0]; a.Key != alert.MsgPowerAbove || a.Args["power_w"] != "2500" || a.Args["threshold_w"] != "2000" ||
		a.Args["for"] != "30s" || a.Message != "kettle: power 2.50 kW above 2.00 kW for 30 s" {
		t.Errorf("message = %q, key %q, args %v", a.Message, a.Key, a.Args)
	}
	// Below the threshold but inside the hysteresis (1.9 kW > 1.8 kW): firing.
	for i := 0; i < 20; i++ {
		step(1900)
	}
	if !firing() {
		t.Fatal("resolved inside the hysteresis")
	}
	// Back under 1.8 kW for 20 s, then one reading inside the hysteresis
	// again: the 30 s start over.
	for i := 0; i < 10; i++ {
		step(500)
	}
	step(1900)
	below := at
	for i := 0; i < 15; i++ { // 28 s below
		step(500)
		if !firing() {
			t.Fatalf("resolved %s after the power fell back, before 30 s", at.Add(-2*time.Second).Sub(below))
		}
	}
	step(500) // 30 s below
	if firing() {
		t.Fatal("still firing after 30 s below the threshold less the hysteresis")
	}
	as = ruleAlerts(t, st, "hot")
	if len(as) != 2 || as[0].State != store.AlertResolved || as[1].State != store.AlertResolved {
		t.Fatalf("after the power fell: %+v", as)
	}
	// The resolution says what cleared, not what fired: below the
	// threshold less the hysteresis.
	if a := as[1]; a.Key != alert.MsgResolved || a.Args["what"] != alert.MsgPowerBackBelow || a.Message != "kettle: resolved: power back below 1.80 kW (500 W) for 30 s" {
		t.Errorf("resolution = %q, key %q, args %v", a.Message, a.Key, a.Args)
	}
	// Above again for 20 s, a silence of 2 minutes (longer than the
	// meter's 10 s silence window), then above again: the count restarts
	// after the gap, and fires 30 s after it.
	for i := 0; i < 10; i++ {
		step(2600)
	}
	at = at.Add(2 * time.Minute)
	resumed := at
	for i := 0; i < 15; i++ {
		step(2600)
		if firing() {
			t.Fatalf("fired %s after a gap, counting the readings before it", at.Add(-2*time.Second).Sub(resumed))
		}
	}
	step(2600)
	if !firing() {
		t.Fatal("not firing 30 s after the readings resumed above the threshold")
	}
}

// TestPowerBelowAndLongWindowsWait checks power_below, and a window of 10
// minutes or more (measured on 1-minute rollups), wait for their duration
// of reading time too.
func TestPowerBelowAndLongWindowsWait(t *testing.T) {
	st := openStore(t, t.TempDir())
	rules, _ := newRules(t, st)
	for _, r := range []alert.Rule{
		{ID: "idle", Kind: alert.PowerBelow, Meter: "pump", Severity: "info", Enabled: true, ThresholdW: 50, For: alert.Duration(30 * time.Second)},
		{ID: "long", Kind: alert.PowerBelow, Meter: "pump", Severity: "info", Enabled: true, ThresholdW: 50, For: alert.Duration(15 * time.Minute)},
	} {
		if _, err := rules.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	add(t, st, meter.Reading{Meter: "pump", Time: t0.Add(-2 * time.Hour), PowerW: 900, Stamped: true})
	var fired = map[string]time.Duration{}
	for at := t0; at.Before(t0.Add(20 * time.Minute)); at = at.Add(2 * time.Second) {
		add(t, st, meter.Reading{Meter: "pump", Time: at, PowerW: 10, Stamped: true})
		rules.Evaluate(at.Add(time.Second))
		for _, id := range []string{"idle", "long"} {
			if _, ok := fired[id]; !ok && rules.States()[id+"|pump"].Firing {
				fired[id] = at.Sub(t0)
			}
		}
	}
	if got := fired["idle"]; got != 30*time.Second {
		t.Errorf("power_below for 30s fired at %s of reading time, want 30s", got)
	}
	if got := fired["long"]; got < 15*time.Minute || got > 16*time.Minute {
		t.Errorf("power_below for 15m fired at %s of reading time, want 15m to 16m", got)
	}
}

// TestHumanDuration: durations read as people write them, in either
// language, not as Go does (2h0m0s).
func TestHumanDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"}, {30 * time.Second, "30 s"}, {5 * time.Minute, "5 min"}, {2 * time.Hour, "2 h"},
		{90 * time.Minute, "1 h 30 min"}, {65 * time.Second, "1 min 5 s"}, {720 * time.Hour, "720 h"},
		{1500 * time.Millisecond, "1 s"}, {-30 * time.Second, "-30 s"},
	} {
		if got := alert.HumanDuration(c.d); got != c.want {
			t.Errorf("HumanDuration(%s) = %q, want %q", c.d, got, c.want)
		}
	}
}

// TestMessageDurations: durations in alert texts read as people write them.
func TestMessageDurations(t *testing.T) {
	st := openStore(t, t.TempDir())
	rules, _ := newRules(t, st)
	if _, err := rules.Put(alert.Rule{ID: "long", Kind: alert.PowerAbove, Meter: "boiler", Severity: "info", Enabled: true,
		ThresholdW: 100, For: alert.Duration(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	add(t, st, series("boiler", t0, t0.Add(6*time.Minute), 500)...)
	rules.Evaluate(t0.Add(6 * time.Minute))
	if as := ruleAlerts(t, st, "long"); len(as) != 1 || as[0].Args["for"] != "5m" || !strings.HasSuffix(as[0].Message, "for 5 min") {
		t.Errorf("alerts = %+v, want one saying for 5 min", as)
	}
}

// TestRulesAreBounded: past MaxRules a new rule is refused, saying why;
// one already there may still be changed.
func TestRulesAreBounded(t *testing.T) {
	st := openStore(t, t.TempDir())
	rules, _ := newRules(t, st, alert.Rule{ID: "from-config", Kind: alert.Silent, Meter: "*", Severity: "warning", Enabled: true, SilentFor: alert.Duration(time.Hour)})
	rule := func(i int) alert.Rule {
		return alert.Rule{ID: fmt.Sprintf("r%04d", i), Kind: alert.PowerAbove, Meter: "oven", Severity: "warning", Enabled: true, ThresholdW: float64(1000 + i)}
	}
	for i := range alert.MaxRules - 1 {
		if _, err := rules.Put(rule(i)); err != nil {
			t.Fatalf("rule %d: %v", i, err)
		}
	}
	_, err := rules.Put(rule(alert.MaxRules))
	var ie *alert.InvalidError
	if !errors.As(err, &ie) || !strings.Contains(ie.Reason, "delete one first") {
		t.Fatalf("rule %d: %v, want refused", alert.MaxRules+1, err)
	}
	if _, err := rules.Put(rule(3)); err != nil {
		t.Errorf("changing a rule at the bound: %v", err)
	}
	if n := len(rules.List()); n != alert.MaxRules {
		t.Errorf("%d rules, want %d", n, alert.MaxRules)
	}
}

// TestPhaseImbalance: a three-phase meter's phases (m:L1 to m:L3) drawing
// powers 50 % apart fire a phase_imbalance rule of 20 %; they resolve
// once under 20 - 5 %, not before; a rule on every meter leaves meters
// without phases alone.
func TestPhaseImbalance(t *testing.T) {
	st := openStore(t, t.TempDir())
	rules, _ := newRules(t, st)
	for _, id := range []string{"plant", "all"} {
		r := alert.Rule{ID: id, Kind: alert.PhaseImbalance, Meter: "plant", Severity: "warning", Enabled: true, ThresholdPct: 20, HysteresisPct: 5}
		if id == "all" {
			r.Meter = "*"
		}
		if _, err := rules.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	phases := func(l1, l2, l3 float64) time.Time {
		now := time.Now()
		add(t, st, meter.Reading{Meter: "plant", Time: now, PowerW: l1 + l2 + l3},
			meter.Reading{Meter: "plant:L1", Time: now, PowerW: l1}, meter.Reading{Meter: "plant:L2", Time: now, PowerW: l2},
			meter.Reading{Meter: "plant:L3", Time: now, PowerW: l3}, meter.Reading{Meter: "single", Time: now, PowerW: 5000})
		return now
	}
	rules.Evaluate(phases(1000, 1500, 500))
	fired := ruleAlerts(t, st, "plant")
	if len(fired) != 1 || fired[0].State != store.AlertFiring || fired[0].Meter != "plant" ||
		fired[0].Message != "plant: phases 50 % apart in power (L1 1.00 kW, L2 1.50 kW, L3 500 W), over 20 %" {
		t.Fatalf("alerts of rule plant: %+v", fired)
	}
	if all := ruleAlerts(t, st, "all"); len(all) != 1 || all[0].Meter != "plant" {
		t.Errorf("the rule on every meter fired %+v, want plant's alone", all)
	}
	rules.Evaluate(phases(1000, 1200, 850)) // 18 %: under 20, not under 15
	if n := len(ruleAlerts(t, st, "plant")); n != 1 {
		t.Errorf("%d alerts at 18 %% imbalance inside the hysteresis, want still the one", n)
	}
	rules.Evaluate(phases(1000, 1000, 1000))
	as := ruleAlerts(t, st, "plant")
	if len(as) != 2 || as[1].State != store.AlertResolved || !strings.HasSuffix(as[1].Message, "resolved: phases back within 15 % (0 %)") {
		t.Errorf("after balancing: %+v, want resolved", as)
	}
	if err := (&alert.Rule{ID: "x", Kind: alert.PhaseImbalance, Meter: "plant", Severity: "warning", ThresholdPct: 10, HysteresisPct: 10}).Check(); err == nil {
		t.Error("a hysteresis as large as the threshold passed")
	}
}
