package alert

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vatio-energy/vatio/internal/automation"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// Rule kinds.
const (
	// PowerAbove fires when a meter's readings have stayed above
	// ThresholdW for For, measured on the readings' own times, and
	// resolves when they have stayed below ThresholdW - HysteresisW for
	// For (see Rule.For).
	PowerAbove = "power_above"
	// PowerBelow fires when they have stayed below ThresholdW for For, and
	// resolves when they have stayed above ThresholdW + HysteresisW for For.
	PowerBelow = "power_below"
	// EnergyBudget fires when the energy drawn this day or month (Period)
	// passes BudgetKWh.
	EnergyBudget = "energy_budget"
	// Silent fires when a meter has sent nothing for SilentFor.
	Silent = "silent"
	// OutOfRange fires when a meter's newest reading is outside the range
	// its registry entry expects.
	OutOfRange = "out_of_range"
	// Anomaly fires when a meter's last hour draws Factor times its usual
	// for that hour and weekday (the same hour of the 4 weeks before).
	Anomaly = "anomaly"
	// PhaseImbalance fires when a three-phase meter's phases (the meters
	// <meter>:L1 to :L3, as a Modbus meter's are) draw powers further
	// apart than ThresholdPct: the largest deviation of a phase from the
	// three's mean, in percent of it. It resolves under ThresholdPct -
	// HysteresisPct, or when a phase goes silent.
	PhaseImbalance = "phase_imbalance"
)

// Kinds lists the rule kinds.
var Kinds = []string{PowerAbove, PowerBelow, EnergyBudget, Silent, OutOfRange, Anomaly, PhaseImbalance}

// Duration is a time.Duration written as "5m" in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler: "2h", "1h30m", "30s" (not Go's
// "2h0m0s"), which UnmarshalJSON and config.yaml read back.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(duration(time.Duration(d))) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration is a string such as "5m" or "1h30m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 5m or 1h30m", s)
	}
	*d = Duration(v)
	return nil
}

// Rule is an alert rule: a condition on one meter (or on each meter, with
// Meter "*") that raises an alert when it starts to hold and resolves it
// when it stops.
type Rule struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Meter is a meter id, or "*" for every meter.
	Meter    string `json:"meter"`
	Severity string `json:"severity"`
	Enabled  bool   `json:"enabled"`
	// ThresholdW and For: power_above and power_below. For is measured on
	// reading times, from the first reading past the threshold to the
	// newest, with no gap longer than the meter's silence window between
	// them (a gap starts the count again); the rule fires at the first
	// evaluation after that. Resolving takes the same For back past the
	// hysteresis. With For 0 the newest reading decides both.
	ThresholdW float64  `json:"threshold_w,omitempty"`
	For        Duration `json:"for,omitempty"`
	// BudgetKWh and Period ("day" or "month"): energy_budget.
	BudgetKWh float64 `json:"budget_kwh,omitempty"`
	Period    string  `json:"period,omitempty"`
	// SilentFor: silent.
	SilentFor Duration `json:"silent_for,omitempty"`
	// Factor: anomaly (default 2).
	Factor float64 `json:"factor,omitempty"`
	// ThresholdPct and HysteresisPct: phase_imbalance, in percent.
	ThresholdPct  float64 `json:"threshold_pct,omitempty"`
	HysteresisPct float64 `json:"hysteresis_pct,omitempty"`
	// HysteresisW is how far back past the threshold (or inside the
	// expected range) power must come before an alert resolves, in watts
	// (0: the threshold itself); a power rule also needs it to stay there
	// for For. An anomaly resolves below Factor x 0.8 of the usual.
	HysteresisW float64 `json:"hysteresis_w,omitempty"`
	// Cooldown is the least time between two firings for one meter.
	Cooldown Duration `json:"cooldown,omitempty"`
	// Actions are commands sent when the rule fires (On "fire", the
	// default) or resolves (On "resolve"): switching a plug off, calling
	// a webhook.
	Actions []Action `json:"actions,omitempty"`
	// Source is "config" for a rule of config.yaml (not changeable through
	// the API) and "api" for one made through it.
	Source string `json:"source"`
}

// Action is a command a rule sends when it fires or resolves.
type Action struct {
	On string `json:"on,omitempty"` // fire (default) or resolve
	automation.Command
}

var ruleID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Check reports what is wrong with r as an *InvalidError naming the field.
func (r *Rule) Check() error {
	bad := func(field, format string, args ...any) error {
		return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case !ruleID.MatchString(r.ID):
		return bad("id", "%q is not 1-64 lower-case letters, digits, '-' or '_'", r.ID)
	case len(r.Name) > 200:
		return bad("name", "longer than 200 characters")
	case !slices.Contains(Kinds, r.Kind):
		return bad("kind", "%q is not one of %s", r.Kind, strings.Join(Kinds, ", "))
	case r.Meter != "*" && !meter.ValidID(r.Meter):
		return bad("meter", "%q is not a meter id or *", r.Meter)
	case r.Severity != SeverityInfo && r.Severity != SeverityWarning && r.Severity != SeverityCritical:
		return bad("severity", "must be info, warning or critical")
	case !finite(r.HysteresisW) || r.HysteresisW < 0:
		return bad("hysteresis_w", "must be a number of watts, 0 or more")
	case r.Cooldown < 0 || time.Duration(r.Cooldown) > 30*24*time.Hour:
		return bad("cooldown", "must be from 0 to 720h")
	}
	if len(r.Actions) > 10 {
		return bad("actions", "at most 10")
	}
	for i, a := range r.Actions {
		if a.On != "" && a.On != "fire" && a.On != "resolve" {
			return bad(fmt.Sprintf("actions[%d].on", i), "must be fire or resolve")
		}
		if err := a.Command.Check(); err != nil {
			return bad(fmt.Sprintf("actions[%d]", i), "%v", err)
		}
	}
	switch r.Kind {
	case PowerAbove, PowerBelow:
		if !finite(r.ThresholdW) || math.Abs(r.ThresholdW) > 1e9 {
			return bad("threshold_w", "must be a number of watts")
		}
		if r.For < 0 || time.Duration(r.For) > 24*time.Hour {
			return bad("for", "must be from 0 to 24h")
		}
	case EnergyBudget:
		if !finite(r.BudgetKWh) || r.BudgetKWh <= 0 {
			return bad("budget_kwh", "must be more than 0")
		}
		if r.Period != "day" && r.Period != "month" {
			return bad("period", "must be day or month")
		}
	case Silent:
		if time.Duration(r.SilentFor) < time.Minute || time.Duration(r.SilentFor) > 30*24*time.Hour {
			return bad("silent_for", "must be from 1m to 720h")
		}
	case Anomaly:
		if r.Factor == 0 {
			r.Factor = 2
		}
		if !finite(r.Factor) || r.Factor <= 1 || r.Factor > 100 {
			return bad("factor", "must be more than 1 and at most 100")
		}
	case PhaseImbalance:
		if !finite(r.ThresholdPct) || r.ThresholdPct <= 0 || r.ThresholdPct > 200 {
			return bad("threshold_pct", "must be more than 0 and at most 200 (percent)")
		}
		if !finite(r.HysteresisPct) || r.HysteresisPct < 0 || r.HysteresisPct >= r.ThresholdPct {
			return bad("hysteresis_pct", "must be from 0 to below threshold_pct")
		}
	}
	return nil
}

// Summary describes r in a few words for the audit log: "power_above on
// kitchen, 3000 W for 30s, warning, enabled".
func (r Rule) Summary() string {
	var what string
	switch r.Kind {
	case PowerAbove, PowerBelow:
		what = fmt.Sprintf(", %g W for %s", r.ThresholdW, HumanDuration(time.Duration(r.For)))
	case EnergyBudget:
		what = fmt.Sprintf(", %g kWh a %s", r.BudgetKWh, r.Period)
	case Silent:
		what = fmt.Sprintf(", %s", HumanDuration(time.Duration(r.SilentFor)))
	case Anomaly:
		what = fmt.Sprintf(", x%g", r.Factor)
	case PhaseImbalance:
		what = fmt.Sprintf(", %g %%", r.ThresholdPct)
	}
	state := "disabled"
	if r.Enabled {
		state = "enabled"
	}
	return fmt.Sprintf("%s on %s%s, %s, %s", r.Kind, r.Meter, what, r.Severity, state)
}

// RuleState is what a rule knows of one meter, kept across restarts.
type RuleState struct {
	Firing bool `json:"firing"`
	// Since is when the current state began; AlertID the alert it raised
	// when it fired; LastFired when it last fired (for the cooldown).
	Since     time.Time `json:"since"`
	AlertID   uint64    `json:"alert_id,omitempty"`
	LastFired time.Time `json:"last_fired"`
}

// ErrUnknownRule is returned for a rule id that does not exist.
var ErrUnknownRule = errors.New("alert: unknown rule")

// ErrConfigRule is returned when the API changes a rule of config.yaml.
var ErrConfigRule = errors.New("alert: the rule is in config.yaml: change it there")

// Rules evaluates the alert rules every interval, raising and resolving
// alerts through a Service.
type Rules struct {
	st       *store.Store
	alerts   *Service
	tariffs  *energy.Tariffs
	log      *slog.Logger
	interval time.Duration

	// config are the rules of config.yaml.
	config []Rule

	mu     sync.Mutex
	rules  map[string]Rule
	states map[string]RuleState // by rule id + "|" + meter

	cancel context.CancelFunc // Start's
	done   chan struct{}
	// sender carries out rules' actions; nil drops them.
	sender *automation.Sender
	// actx bounds the actions: Stop cancels it.
	actx    context.Context
	acancel context.CancelFunc
	// pending counts the actions under way (see Wait).
	pending sync.WaitGroup
	// lastActions is closed when the actions queued last are done: each
	// batch waits for the one before, so a load switched off when a rule
	// fires is switched on again after, never before (under actionsMu).
	actionsMu   sync.Mutex
	lastActions chan struct{}
	// evaluations counts the rounds of Evaluate: an operator sees the rule
	// engine run (on the leader), a test waits for rounds to pass.
	evaluations atomic.Uint64
}

var evaluationsDesc = prometheus.NewDesc("vatio_rule_evaluations_total",
	"Rounds of alert rule evaluation run by this instance (the leader runs them).", nil, nil)

// Describe is prometheus.Collector's.
func (r *Rules) Describe(ch chan<- *prometheus.Desc) { ch <- evaluationsDesc }

// Collect is prometheus.Collector's.
func (r *Rules) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(evaluationsDesc, prometheus.CounterValue, float64(r.evaluations.Load()))
}

// SetSender makes the rules' actions be carried out by s.
func (r *Rules) SetSender(s *automation.Sender) { r.sender = s }

// Wait waits for the actions under way.
func (r *Rules) Wait() { r.pending.Wait() }

// runActions sends rule's actions for on ("fire" or "resolve") in the
// background, and records how each went on alert id.
func (r *Rules) runActions(rule Rule, on string, alertID uint64) {
	var todo []automation.Command
	for _, a := range rule.Actions {
		if cmp.Or(a.On, "fire") == on {
			todo = append(todo, a.Command)
		}
	}
	if len(todo) == 0 || r.sender == nil {
		return
	}
	r.pending.Add(1)
	r.actionsMu.Lock()
	prev, done := r.lastActions, make(chan struct{})
	r.lastActions = done
	r.actionsMu.Unlock()
	go func() {
		defer r.pending.Done()
		defer close(done)
		if prev != nil {
			select {
			case <-prev:
			case <-r.actx.Done():
			}
		}
		var results []string
		for _, c := range todo {
			ctx, cancel := context.WithTimeout(r.actx, 10*time.Second)
			err := r.sender.Send(ctx, c)
			cancel()
			target := cmp.Or(c.Topic, c.URL)
			if err != nil {
				r.log.Warn("rule action failed", slog.String("rule", rule.ID), slog.String("to", target), slog.Any("error", err))
				results = append(results, target+": "+err.Error())
			} else {
				results = append(results, target+": sent")
			}
		}
		if alertID != 0 {
			_ = r.st.UpdateAlert(alertID, func(a *store.Alert) { a.Actions = append(a.Actions, results...) })
		}
	}()
}

// NewRules returns the rule engine with the rules of config (read-only)
// and those made through the API before; Start runs it.
func NewRules(st *store.Store, alerts *Service, tr *energy.Tariffs, config []Rule, interval time.Duration, logger *slog.Logger) (*Rules, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Rules{st: st, alerts: alerts, tariffs: tr, log: logger, interval: cmp.Or(interval, 15*time.Second)}
	r.actx, r.acancel = context.WithCancel(context.Background())
	for _, rule := range config {
		rule.Source = "config"
		if err := rule.Check(); err != nil {
			return nil, fmt.Errorf("alert rule %q: %w", rule.ID, err)
		}
		r.config = append(r.config, rule)
	}
	if err := r.refresh(); err != nil {
		return nil, err
	}
	return r, nil
}

// refresh reads the API's rules and every rule's state from the store.
// The store is the truth: instances sharing a PostgreSQL store change
// rules through any of them, and the one that leads evaluates them. r.mu
// is held, or r not yet shared.
func (r *Rules) refresh() error {
	docs, err := r.st.Docs(store.DocRules)
	if err != nil {
		return err
	}
	rules := make(map[string]Rule, len(docs)+len(r.config))
	for id, v := range docs {
		var rule Rule
		if err := json.Unmarshal(v, &rule); err != nil {
			return fmt.Errorf("alert: rule %q: %w", id, err)
		}
		rule.Source = "api"
		rules[id] = rule
	}
	for _, rule := range r.config {
		rules[rule.ID] = rule // config wins over an API rule of the same id
	}
	docs, err = r.st.Docs(store.DocRuleStates)
	if err != nil {
		return err
	}
	states := make(map[string]RuleState, len(docs))
	for k, v := range docs {
		var s RuleState
		if err := json.Unmarshal(v, &s); err == nil {
			states[k] = s
		}
	}
	r.rules, r.states = rules, states
	return nil
}

// fresh refreshes, or keeps what r knows when the store cannot be read.
// r.mu is held.
func (r *Rules) fresh() {
	if err := r.refresh(); err != nil {
		r.log.Warn("alert rules not read; answered as last read", slog.Any("error", err))
	}
}

// Run evaluates the rules every interval until ctx ends, each time from
// the rules and states in the store. Where instances share a store, the
// one that leads runs it (package leader), and so takes over what fires
// from the one that led before.
func (r *Rules) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		r.fresh()
		r.mu.Unlock()
		r.Evaluate(time.Now())
	}
}

// Start runs Run in the background until Stop.
func (r *Rules) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.Run(ctx)
	}()
}

// Stop ends Start's evaluations and cancels the actions under way.
func (r *Rules) Stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
	r.acancel()
}

// List returns every rule, sorted by id.
func (r *Rules) List() []Rule {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fresh()
	out := make([]Rule, 0, len(r.rules))
	for _, rule := range r.rules {
		out = append(out, rule)
	}
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Get returns one rule.
func (r *Rules) Get(id string) (Rule, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fresh()
	rule, ok := r.rules[id]
	if !ok {
		return Rule{}, fmt.Errorf("%w: %q", ErrUnknownRule, id)
	}
	return rule, nil
}

// MaxRules bounds the rules, config.yaml's and the API's: each is
// evaluated for its meters every alerts.evaluate_every, and listed on the
// Settings page.
const MaxRules = 1000

// Put creates or replaces a rule made through the API; a new one past
// MaxRules is refused.
func (r *Rules) Put(rule Rule) (Rule, error) {
	rule.Source = "api"
	if err := rule.Check(); err != nil {
		return Rule{}, err
	}
	for i, a := range rule.Actions {
		if err := r.sender.CheckCommand(a.Command); err != nil {
			return Rule{}, &InvalidError{Field: fmt.Sprintf("actions[%d].url", i), Reason: err.Error()}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refresh(); err != nil {
		return Rule{}, err
	}
	old, ok := r.rules[rule.ID]
	if ok && old.Source == "config" {
		return Rule{}, ErrConfigRule
	}
	if !ok && len(r.rules) >= MaxRules {
		return Rule{}, &InvalidError{Field: "id", Reason: fmt.Sprintf("there are %d rules, the most Vatio keeps: delete one first", len(r.rules))}
	}
	v, err := json.Marshal(rule)
	if err != nil {
		return Rule{}, err
	}
	if err := r.st.PutDoc(store.DocRules, rule.ID, v); err != nil {
		return Rule{}, err
	}
	r.rules[rule.ID] = rule
	return rule, nil
}

// Delete deletes a rule made through the API, resolving what it has firing.
func (r *Rules) Delete(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.refresh(); err != nil {
		return err
	}
	rule, ok := r.rules[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownRule, id)
	}
	if rule.Source == "config" {
		return ErrConfigRule
	}
	if err := r.st.DeleteDoc(store.DocRules, id); err != nil {
		return err
	}
	delete(r.rules, id)
	now := time.Now()
	for k, s := range r.states {
		if ruleOf(k) == id {
			if s.Firing {
				r.resolve(rule, meterOf(k), s, now, msg(MsgRuleDeleted))
				r.runActions(rule, "resolve", s.AlertID)
			}
			delete(r.states, k)
			_ = r.st.DeleteDoc(store.DocRuleStates, k)
		}
	}
	return nil
}

// Warnings says what will keep rule from firing that is no error, since
// it may change: its meter has sent no readings yet (a rule may be made
// before its meter appears, or name it wrong), or an out_of_range rule's
// meter has no expected range.
//
// Warnings gives them in English, for the API; WarningMessages as
// messages, for the dashboard to show in its reader's language.
func (r *Rules) Warnings(rule Rule) []string {
	var out []string
	for _, m := range r.WarningMessages(rule) {
		out = append(out, m.English(nil))
	}
	return out
}

// WarningMessages is Warnings as messages (MsgNoMeterYet, MsgNoRangeYet).
func (r *Rules) WarningMessages(rule Rule) []Message {
	if rule.Meter == "*" {
		return nil
	}
	m, err := r.st.Meter(rule.Meter)
	if err != nil {
		return []Message{msg(MsgNoMeterYet, "meter", rule.Meter)}
	}
	if rule.Kind == OutOfRange && m.Info.ExpectedMinW == nil && m.Info.ExpectedMaxW == nil {
		return []Message{msg(MsgNoRangeYet, "meter", rule.Meter)}
	}
	return nil
}

func stateKey(rule, meterID string) string { return rule + "|" + meterID }
func ruleOf(key string) string             { r, _, _ := strings.Cut(key, "|"); return r }
func meterOf(key string) string            { _, m, _ := strings.Cut(key, "|"); return m }

// Evaluate checks every enabled rule at now, firing and resolving alerts.
func (r *Rules) Evaluate(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.evaluations.Add(1)
	meters := r.st.Meters()
	checked := map[string]bool{}
	for _, rule := range r.rules {
		if !rule.Enabled {
			continue
		}
		for _, m := range meters {
			if rule.Meter != "*" && rule.Meter != m.ID {
				continue
			}
			checked[stateKey(rule.ID, m.ID)] = true
			r.evaluate(rule, m, now)
		}
	}
	// What fires for a rule disabled, removed or pointed elsewhere, or for
	// a meter deleted, can no longer clear by itself: it is resolved.
	for k, s := range r.states {
		if !s.Firing || checked[k] {
			continue
		}
		rule, ok := r.rules[ruleOf(k)]
		if !ok {
			rule = Rule{ID: ruleOf(k)}
		}
		r.resolve(rule, meterOf(k), s, now, msg(MsgRuleNotApplies))
		r.runActions(rule, "resolve", s.AlertID)
		r.save(k, RuleState{Since: now, LastFired: s.LastFired})
	}
}

// evaluate checks one rule on one meter.
func (r *Rules) evaluate(rule Rule, m store.Meter, now time.Time) {
	key := stateKey(rule.ID, m.ID)
	s := r.states[key]
	holds, clears, what, back, err := r.condition(rule, m, now, s.Firing)
	if err != nil {
		r.log.Warn("alert rule not evaluated", slog.String("rule", rule.ID), slog.String("meter", m.ID), slog.Any("error", err))
		return
	}
	switch {
	case !s.Firing && holds:
		if !s.LastFired.IsZero() && now.Sub(s.LastFired) < time.Duration(rule.Cooldown) {
			return // cooling down
		}
		a, err := r.alerts.raise(withMessage(store.Alert{Severity: rule.Severity, Meter: m.ID,
			Source: "rule", Rule: rule.ID, State: store.AlertFiring}, what, r.loc()))
		if err != nil {
			r.log.Error("alert not raised", slog.String("rule", rule.ID), slog.Any("error", err))
			return
		}
		r.save(key, RuleState{Firing: true, Since: now, AlertID: a.ID, LastFired: now})
		r.runActions(rule, "fire", a.ID)
	case s.Firing && clears:
		r.resolve(rule, m.ID, s, now, back)
		r.runActions(rule, "resolve", s.AlertID)
		r.save(key, RuleState{Since: now, LastFired: s.LastFired})
	}
}

// resolve marks a firing alert resolved and tells the notifiers.
func (r *Rules) resolve(rule Rule, meterID string, s RuleState, now time.Time, what Message) {
	at := now.UTC()
	if s.AlertID != 0 {
		if err := r.st.UpdateAlert(s.AlertID, func(a *store.Alert) { a.State, a.ResolvedAt = store.AlertResolved, &at }); err != nil &&
			!errors.Is(err, store.ErrUnknownAlert) {
			r.log.Error("alert not resolved", slog.Uint64("alert", s.AlertID), slog.Any("error", err))
		}
	}
	_, err := r.alerts.raise(withMessage(store.Alert{Severity: SeverityInfo, Meter: meterID,
		Source: "rule", Rule: rule.ID, State: store.AlertResolved, ResolvedAt: &at}, resolved(what), r.loc()))
	if err != nil {
		r.log.Error("resolution not raised", slog.String("rule", rule.ID), slog.Any("error", err))
	}
}

// loc is where alert texts give times: the tariff's zone, or UTC.
func (r *Rules) loc() *time.Location {
	if r.tariffs != nil {
		if tr := r.tariffs.Current(); tr != nil && tr.Location != nil {
			return tr.Location
		}
	}
	return time.UTC
}

func (r *Rules) save(key string, s RuleState) {
	r.states[key] = s
	v, _ := json.Marshal(s)
	if err := r.st.PutDoc(store.DocRuleStates, key, v); err != nil {
		r.log.Error("alert rule state not saved", slog.String("key", key), slog.Any("error", err))
	}
}

// States returns the state of every rule and meter that has one.
func (r *Rules) States() map[string]RuleState {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fresh()
	out := make(map[string]RuleState, len(r.states))
	for k, v := range r.states {
		out[k] = v
	}
	return out
}

// kw writes watts in English as the dashboard does: "800 W", "2.40 kW".
func kw(w float64) string {
	if math.Abs(w) < 999.5 {
		return fmt.Sprintf("%.0f W", w)
	}
	return fmt.Sprintf("%.2f kW", w/1000)
}

// condition evaluates rule on m at now: whether it holds (to fire), whether
// it has cleared (to resolve, past the hysteresis), what holds (the alert's
// message) and what cleared (its resolution's).
func (r *Rules) condition(rule Rule, m store.Meter, now time.Time, firing bool) (holds, clears bool, what, back Message, err error) {
	switch rule.Kind {
	case PowerAbove, PowerBelow:
		above := rule.Kind == PowerAbove
		window := time.Duration(rule.For)
		last := m.LastPowerW
		// Only a meter heard live lately, whose newest reading was taken
		// lately, says how things are now: imported history and readings
		// a meter replays from its buffer start nothing, and a meter gone
		// silent clears what it fired.
		stale := max(window, time.Minute) + 5*time.Minute
		fresh := !m.LastHeard.IsZero() && now.Sub(m.LastHeard) <= stale && now.Sub(m.Last) <= stale
		beyond := func(lo, hi float64) bool { // past the threshold
			if above {
				return lo > rule.ThresholdW
			}
			return hi < rule.ThresholdW
		}
		back := func(lo, hi float64) bool { // back past the hysteresis
			if above {
				return hi < rule.ThresholdW-rule.HysteresisW
			}
			return lo > rule.ThresholdW+rule.HysteresisW
		}
		var held, cleared bool
		switch {
		case fresh && !firing:
			held, err = r.heldFor(m, window, now, beyond)
		case fresh && firing:
			cleared, err = r.heldFor(m, window, now, back)
		}
		if err != nil {
			return false, false, Message{}, Message{}, err
		}
		key, backKey := MsgPowerAbove, MsgPowerBackBelow
		if !above {
			key, backKey = MsgPowerBelow, MsgPowerBackAbove
		}
		args := []string{"meter", m.ID, "power_w", watts(last), "threshold_w", watts(rule.ThresholdW), "for", duration(window)}
		// Back past the hysteresis: the level the resolution checked.
		level := rule.ThresholdW - rule.HysteresisW
		if !above {
			level = rule.ThresholdW + rule.HysteresisW
		}
		backMsg := msg(backKey, "meter", m.ID, "power_w", watts(last), "threshold_w", watts(level), "for", duration(window))
		if !fresh {
			backMsg = msg(MsgNoData) // gone silent: nothing says how things are
		}
		return held, !fresh || cleared, msg(key, args...), backMsg, nil
	case PhaseImbalance:
		return r.phaseImbalance(rule, m, now)
	case EnergyBudget:
		iv := energy.Day
		if rule.Period == "month" {
			iv = energy.Month
		}
		bs, err := energy.Series(r.st, []string{m.ID}, iv, now, now.Add(time.Nanosecond), r.tariffs.Current())
		if err != nil || len(bs) == 0 {
			return false, false, msg(MsgNoData), msg(MsgNoData), err
		}
		used := bs[0].InKWh
		args := []string{"meter", m.ID, "used_kwh", kwh(used), "period", rule.Period, "budget_kwh", kwh(rule.BudgetKWh)}
		return used > rule.BudgetKWh, used <= rule.BudgetKWh, msg(MsgEnergyBudget, args...), msg(MsgWithinBudget, args...), nil
	case Silent:
		if m.LastHeard.IsZero() {
			return false, true, msg(MsgNeverHeard), msg(MsgNeverHeard), nil // only history: nothing went silent
		}
		quiet := now.Sub(m.LastHeard)
		return quiet > time.Duration(rule.SilentFor), quiet <= time.Duration(rule.SilentFor),
			msg(MsgSilent, "meter", m.ID, "quiet", duration(quiet.Round(time.Second))), msg(MsgHeardAgain, "meter", m.ID), nil
	case OutOfRange:
		lo, hi := m.Info.ExpectedMinW, m.Info.ExpectedMaxW
		if lo == nil && hi == nil {
			return false, true, msg(MsgNoRange), msg(MsgNoRange), nil
		}
		w := m.LastPowerW
		out := (lo != nil && w < *lo) || (hi != nil && w > *hi)
		in := (lo == nil || w >= *lo+rule.HysteresisW) && (hi == nil || w <= *hi-rule.HysteresisW)
		return out, in, msg(MsgOutOfRange, "meter", m.ID, "power_w", watts(w)), msg(MsgBackInRange, "meter", m.ID, "power_w", watts(w)), nil
	case Anomaly:
		mean, usual, ok, err := r.hourVsUsual(m.ID, now)
		if err != nil || !ok {
			return false, true, msg(MsgNoData), msg(MsgNoData), err
		}
		what := msg(MsgAnomaly, "meter", m.ID, "mean_w", watts(mean), "factor", strconv.FormatFloat(mean/max(usual, 1), 'f', -1, 64), "usual_w", watts(usual))
		back := msg(MsgAnomalyOver, "meter", m.ID, "mean_w", watts(mean), "usual_w", watts(usual))
		return mean > usual*rule.Factor && mean-usual > max(rule.HysteresisW, 50), mean <= usual*rule.Factor*0.8, what, back, nil
	}
	return false, false, Message{}, Message{}, fmt.Errorf("unknown kind %q", rule.Kind)
}

// heldFor reports whether ok(min, max) has held of m's readings for
// window, measured on the readings' own times: from the first reading of
// an unbroken run to the newest (see runOf). For a window of 0 the newest
// reading decides. Raw readings serve windows under 10 minutes; longer
// ones are measured on 1-minute rollups, from the end of the run's first
// whole minute, so they hold up to a minute late, never early. A run ends
// at now at the latest: readings a device stamps ahead of Vatio's clock
// (up to ingest.max_future) count once their time has come, so a burst of
// them cannot make a window pass early.
func (r *Rules) heldFor(m store.Meter, window time.Duration, now time.Time, ok func(lo, hi float64) bool) (bool, error) {
	if window == 0 {
		return ok(m.LastPowerW, m.LastPowerW), nil
	}
	run, err := r.runOf(m, window, ok)
	if ahead := m.Last.Sub(now); ahead > 0 {
		run -= ahead
	}
	return run >= window, err
}

// runOf returns how long, in reading time, ok has held of m's readings
// up to its newest without a break: from the first reading of the run to
// the newest, 0 when the newest fails. A gap between two readings longer
// than the meter's silence window (store.Meter.SilentAfter), or than three
// times their usual spacing (see readingGap), breaks a run: what the meter
// drew meanwhile is unknown. It looks back window and a silence window at
// most, enough to tell whether the run lasted window.
func (r *Rules) runOf(m store.Meter, window time.Duration, ok func(lo, hi float64) bool) (time.Duration, error) {
	gap := m.SilentAfter()
	newest := m.Last
	from := newest.Add(-window - gap)
	if window < 10*time.Minute {
		recs, _, err := r.st.Range(m.ID, from, newest.Add(time.Nanosecond), 100000)
		if err != nil {
			return 0, err
		}
		gap = min(gap, readingGap(recs))
		start, prev := newest, newest
		for i := len(recs) - 1; i >= 0; i-- {
			rec := recs[i]
			if prev.Sub(rec.Time) > gap || !ok(rec.PowerW, rec.PowerW) {
				break
			}
			start, prev = rec.Time, rec.Time
		}
		if len(recs) == 0 || !recs[len(recs)-1].Time.Equal(newest) {
			return 0, nil // the newest reading is not there (erased meanwhile)
		}
		return newest.Sub(start), nil
	}
	from = from.Add(-time.Minute).Truncate(time.Minute)
	bs, _, err := r.st.Rollups(m.ID, store.TierMinute, from, newest.Add(time.Nanosecond), int(newest.Sub(from)/time.Minute)+2)
	if err != nil {
		return 0, err
	}
	var start, prev time.Time
	for i := len(bs) - 1; i >= 0; i-- {
		b := bs[i]
		if b.N == 0 {
			continue
		}
		if !prev.IsZero() && prev.Sub(b.Start) > gap+time.Minute || !ok(b.MinW, b.MaxW) {
			break
		}
		start, prev = b.Start, b.Start
	}
	if start.IsZero() {
		return 0, nil
	}
	return max(newest.Sub(start.Add(time.Minute)), 0), nil
}

// readingGap returns the gap that breaks a run of recs: three times the
// median time between them, at least minRunGap; a day while there are too
// few to tell.
func readingGap(recs []store.Record) time.Duration {
	if len(recs) < 3 {
		return 24 * time.Hour
	}
	gaps := make([]time.Duration, 0, len(recs)-1)
	for i := 1; i < len(recs); i++ {
		gaps = append(gaps, recs[i].Time.Sub(recs[i-1].Time))
	}
	slices.Sort(gaps)
	return max(3*gaps[len(gaps)/2], minRunGap)
}

// minRunGap is the least gap that breaks a run of readings (see runOf),
// as a meter's silence window is at least 10 s.
const minRunGap = 10 * time.Second

// hourVsUsual returns the mean power of the hour before now and the usual
// mean of the same hour in the 4 weeks before (from 1-minute rollups), and
// whether at least 2 of those weeks had data.
func (r *Rules) hourVsUsual(id string, now time.Time) (mean, usual float64, ok bool, err error) {
	bs, _, err := r.st.Rollups(id, store.TierMinute, now.Add(-time.Hour), now, 61)
	if err != nil {
		return 0, 0, false, err
	}
	var sum, n float64
	for _, b := range bs {
		if b.N > 0 {
			sum += b.MeanW * float64(b.N)
			n += float64(b.N)
		}
	}
	if n == 0 {
		return 0, 0, false, nil
	}
	mean = sum / n
	weeks := 0
	for w := 1; w <= 4; w++ {
		start := now.Add(-time.Duration(w) * 7 * 24 * time.Hour).Add(-time.Hour)
		hs, _, err := r.st.Rollups(id, store.TierMinute, start, start.Add(time.Hour), 61)
		if err != nil {
			return 0, 0, false, err
		}
		var s, c float64
		for _, b := range hs {
			if b.N > 0 {
				s += b.MeanW * float64(b.N)
				c += float64(b.N)
			}
		}
		if c > 0 {
			usual += s / c
			weeks++
		}
	}
	if weeks < 2 {
		return mean, 0, false, nil
	}
	return mean, usual / float64(weeks), true, nil
}

// phaseImbalance is the condition of a phase_imbalance rule on meter m:
// the powers its phases (m:L1 to m:L3) draw now, each counted only while
// it is heard live and fresh (store.Meter.PowerNow). A meter without the
// three, or with one silent, holds nothing and clears what it fired.
func (r *Rules) phaseImbalance(rule Rule, m store.Meter, now time.Time) (holds, clears bool, what, back Message, err error) {
	var ws [3]float64
	for i, ph := range []string{"L1", "L2", "L3"} {
		pm, err := r.st.Meter(m.ID + ":" + ph)
		if err != nil {
			return false, true, msg(MsgNoPhases, "meter", m.ID), msg(MsgNoPhases, "meter", m.ID), nil
		}
		w, ok := pm.PowerNow(now)
		if !ok {
			return false, true, msg(MsgNoData), msg(MsgNoData), nil
		}
		ws[i] = math.Abs(w)
	}
	pct := meter.Imbalance(ws[0], ws[1], ws[2])
	args := []string{"meter", m.ID, "imbalance_pct", strconv.FormatFloat(pct, 'f', 1, 64), "threshold_pct", strconv.FormatFloat(rule.ThresholdPct, 'f', -1, 64),
		"l1_w", watts(ws[0]), "l2_w", watts(ws[1]), "l3_w", watts(ws[2])}
	level := rule.ThresholdPct - rule.HysteresisPct
	backArgs := []string{"meter", m.ID, "imbalance_pct", strconv.FormatFloat(pct, 'f', 1, 64), "threshold_pct", strconv.FormatFloat(level, 'f', -1, 64)}
	return pct > rule.ThresholdPct, pct < level, msg(MsgPhaseImbalance, args...), msg(MsgPhasesBalanced, backArgs...), nil
}
