// Package automation acts on what Vatio measures: it sends commands (an
// MQTT publish, such as Tasmota's cmnd/<device>/POWER OFF, or a webhook)
// and sheds load: when a site's power passes a cap, it switches off
// non-critical loads in a set order, and switches them back on, last off
// first, once power is back under the cap by a margin and each has been off
// a minimum time. Every action is recorded; a dry run records without
// acting.
package automation

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vatio-energy/vatio/store"
)

// Command is one action on a device: an MQTT publish (Topic, Payload) or
// an HTTP POST (URL, Payload).
type Command struct {
	Topic   string `json:"topic,omitempty"`
	URL     string `json:"url,omitempty"`
	Payload string `json:"payload"`
}

// Check reports what is wrong with c.
func (c Command) Check() error {
	switch {
	case (c.Topic == "") == (c.URL == ""):
		return errors.New("give a topic (MQTT) or a url (webhook), not both")
	case c.Topic != "" && !validTopic(c.Topic):
		return fmt.Errorf("topic %q has wildcards, starts with $ or is empty", c.Topic)
	case c.URL != "":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("url: an http:// or https:// address with a host")
		}
	}
	return nil
}

func validTopic(t string) bool {
	if t == "" || t[0] == '$' {
		return false
	}
	for _, r := range t {
		if r == '+' || r == '#' || r == 0 {
			return false
		}
	}
	return true
}

// Sender carries out commands.
type Sender struct {
	// Publish sends an MQTT message through the embedded broker.
	Publish func(topic string, payload []byte) error
	Client  *http.Client
	// Egress, when set, decides where webhooks may go (rule actions come
	// from the API): they are checked against it and sent through its
	// client, not Client.
	Egress *Egress
	// OnSend, if set, is told of every command carried out or failed (the
	// audit log).
	OnSend func(c Command, err error)

	egressOnce   sync.Once
	egressClient *http.Client
}

// CheckCommand reports what is wrong with c's destination for this sender
// (see Egress), as far as can be told before sending it.
func (s *Sender) CheckCommand(c Command) error {
	if c.URL == "" || s == nil || s.Egress == nil {
		return nil
	}
	return s.Egress.CheckURL(c.URL)
}

// Send carries out c.
func (s *Sender) Send(ctx context.Context, c Command) error {
	err := s.send(ctx, c)
	if s.OnSend != nil {
		s.OnSend(c, err)
	}
	return err
}

func (s *Sender) send(ctx context.Context, c Command) error {
	if c.Topic != "" {
		if err := s.Publish(c.Topic, []byte(c.Payload)); err != nil {
			return fmt.Errorf("publish on %s: %w", c.Topic, err)
		}
		return nil
	}
	client := cmp.Or(s.Client, &http.Client{Timeout: 10 * time.Second})
	if s.Egress != nil {
		if err := s.Egress.CheckURL(c.URL); err != nil {
			return err
		}
		s.egressOnce.Do(func() { s.egressClient = s.Egress.Client(10 * time.Second) })
		client = s.egressClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader([]byte(c.Payload)))
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "vatio")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", req.URL.Host, resp.Status)
	}
	return nil
}

// Load is a load that may be shed: its meter, and the commands that switch
// it off and on.
type Load struct {
	Name  string  `json:"name"`
	Meter string  `json:"meter"`
	Off   Command `json:"off"`
	On    Command `json:"on"`
}

// Shedding configures load shedding at a site.
type Shedding struct {
	// Site whose main meters' power is watched.
	Site string
	// CapW is the power past which loads are shed; power must fall under
	// CapW - HysteresisW before they come back.
	CapW, HysteresisW float64
	// MinOff is the least time a shed load stays off.
	MinOff time.Duration
	// Loads in the order they are shed; restored last first.
	Loads []Load
	// DryRun records what would be done without sending commands.
	DryRun bool
}

// Action is a recorded shedding action.
type Action struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"` // shed, restore, skip
	Load   string    `json:"load"`
	Meter  string    `json:"meter"`
	// SiteW is the site's power that decided it.
	SiteW  float64 `json:"site_power_w"`
	DryRun bool    `json:"dry_run"`
	Error  string  `json:"error,omitempty"`
	Reason string  `json:"reason,omitempty"`
}

// state is what the shedder keeps across restarts.
type state struct {
	// Shed lists the loads switched off, in the order they were, with when.
	Shed []shedLoad `json:"shed"`
}

type shedLoad struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// Shedder sheds and restores loads; it is safe for concurrent use.
type Shedder struct {
	// OnAction, if set before Run, is told of every action (the audit log).
	OnAction func(Action)
	// evaluations counts the rounds of Evaluate.
	evaluations atomic.Uint64

	cfg    Shedding
	st     *store.Store
	send   *Sender
	log    *slog.Logger
	mu     sync.Mutex
	state  state
	seq    uint64
	byName map[string]Load
	// lastAction is when a command was last sent (server clock).
	lastAction time.Time
}

const (
	docState   = "shedding_state"
	docActions = "shedding_actions"
	// maxActions is how many actions are kept.
	maxActions = 1000
)

// NewShedder returns a shedder of cfg, with the loads it had shed before a
// restart.
func NewShedder(cfg Shedding, st *store.Store, send *Sender, logger *slog.Logger) (*Shedder, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Shedder{cfg: cfg, st: st, send: send, log: logger, byName: map[string]Load{}}
	for _, l := range cfg.Loads {
		s.byName[l.Name] = l
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the loads shed from the store, where the instance that led
// before (this one before a restart, or another sharing a PostgreSQL
// store) left them. s.mu is held or s not yet shared.
func (s *Shedder) load() error {
	docs, err := s.st.Docs(docState)
	if err != nil {
		return err
	}
	var st state
	if v, ok := docs[s.cfg.Site]; ok {
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("shedding state: %w", err)
		}
	}
	// Loads no longer configured are forgotten (and were restored by hand).
	st.Shed = slices.DeleteFunc(st.Shed, func(l shedLoad) bool { _, ok := s.byName[l.Name]; return !ok })
	s.state = st
	return nil
}

// SitePower returns the power now of the site's main meters online.
func (s *Shedder) SitePower(now time.Time) float64 {
	w, _, _ := s.site(now)
	return w
}

// site returns the power now of the site's main meters (see
// store.Meter.PowerNow), how many have one, and whether each has reported
// since the last action.
func (s *Shedder) site(now time.Time) (w float64, online int, settled bool) {
	settled = true
	for _, m := range s.st.Meters() {
		if m.Site == s.cfg.Site && m.Info.Parent == "" {
			if pw, ok := m.PowerNow(now); ok {
				w += pw
				online++
				if !m.LastHeard.After(s.lastAction) {
					settled = false
				}
			}
		}
	}
	return w, online, settled
}

// Evaluate decides at now: one load shed when the site is over the cap, or
// one restored when it is back under it by the margin. Critical meters are
// never shed. It holds while no main meter is online (the power is
// unknown) and, after an action, until every main meter has reported
// since (the power has taken the action in). A command that fails leaves
// its load as it was: it is tried again.
func (s *Shedder) Evaluate(ctx context.Context, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.evaluations.Add(1)
	w, online, settled := s.site(now)
	if online == 0 || !settled {
		return
	}
	switch {
	case w > s.cfg.CapW:
		for _, l := range s.cfg.Loads {
			if s.isShed(l.Name) {
				continue
			}
			if m, err := s.st.Meter(l.Meter); err == nil && m.Info.Critical {
				continue // marked critical since it was configured
			}
			if s.act(ctx, now, "shed", l, l.Off, w) {
				s.state.Shed = append(s.state.Shed, shedLoad{Name: l.Name, Since: now})
				s.save()
			}
			return
		}
	case w < s.cfg.CapW-s.cfg.HysteresisW && len(s.state.Shed) > 0:
		last := s.state.Shed[len(s.state.Shed)-1]
		if now.Sub(last.Since) < s.cfg.MinOff {
			return
		}
		l := s.byName[last.Name]
		if s.act(ctx, now, "restore", l, l.On, w) {
			s.state.Shed = s.state.Shed[:len(s.state.Shed)-1]
			s.save()
		}
	}
}

func (s *Shedder) isShed(name string) bool {
	return slices.ContainsFunc(s.state.Shed, func(l shedLoad) bool { return l.Name == name })
}

// act carries out (or, in a dry run, only records) a command, and reports
// whether it went.
func (s *Shedder) act(ctx context.Context, now time.Time, what string, l Load, c Command, siteW float64) bool {
	a := Action{Time: now.UTC(), Action: what, Load: l.Name, Meter: l.Meter, SiteW: siteW, DryRun: s.cfg.DryRun}
	if !s.cfg.DryRun {
		if err := s.send.Send(ctx, c); err != nil {
			a.Error = err.Error()
		}
	}
	s.lastAction = time.Now()
	s.log.Info("load "+what, slog.String("load", l.Name), slog.Float64("site_power_w", siteW), slog.Bool("dry_run", s.cfg.DryRun), slog.String("error", a.Error))
	if s.OnAction != nil {
		s.OnAction(a)
	}
	v, _ := json.Marshal(a)
	s.seq++
	key := fmt.Sprintf("%020d-%06d", now.UnixNano(), s.seq%1000000)
	if err := s.st.PutDoc(docActions, key, v); err != nil {
		s.log.Error("shedding action not recorded", slog.Any("error", err))
	}
	return a.Error == ""
}

func (s *Shedder) save() {
	v, _ := json.Marshal(s.state)
	if err := s.st.PutDoc(docState, s.cfg.Site, v); err != nil {
		s.log.Error("shedding state not saved", slog.Any("error", err))
	}
}

// Status is the shedder's state for the API.
type Status struct {
	Site    string   `json:"site"`
	CapW    float64  `json:"cap_w"`
	SiteW   float64  `json:"site_power_w"`
	DryRun  bool     `json:"dry_run"`
	Shed    []string `json:"shed"`
	Actions []Action `json:"actions"`
	Loads   []Load   `json:"loads"`
}

// Status returns the loads shed now and the latest actions, newest first.
func (s *Shedder) Status(now time.Time, limit int) (Status, error) {
	s.mu.Lock()
	// The store's state is the truth: the shedding may run on another
	// instance.
	if err := s.load(); err != nil {
		s.mu.Unlock()
		return Status{}, err
	}
	out := Status{Site: s.cfg.Site, CapW: s.cfg.CapW, DryRun: s.cfg.DryRun, Shed: []string{}, Loads: s.cfg.Loads}
	for _, l := range s.state.Shed {
		out.Shed = append(out.Shed, l.Name)
	}
	s.mu.Unlock()
	out.SiteW = s.SitePower(now)
	docs, err := s.st.Docs(docActions)
	if err != nil {
		return out, err
	}
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	out.Actions = []Action{}
	for i, k := range keys {
		if i >= limit {
			if i >= maxActions {
				_ = s.st.DeleteDoc(docActions, k) // keep the history bounded
			}
			continue
		}
		var a Action
		if json.Unmarshal(docs[k], &a) == nil {
			out.Actions = append(out.Actions, a)
		}
	}
	return out, nil
}

// Run evaluates every interval until ctx ends, from the loads shed as the
// store has them: where instances share a store, the one that leads runs
// it, and takes over what the one before it shed.
func (s *Shedder) Run(ctx context.Context, every time.Duration) {
	s.mu.Lock()
	err := s.load()
	s.mu.Unlock()
	if err != nil {
		s.log.Error("shedding state not read; loads shed before are not known", slog.Any("error", err))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Evaluate(ctx, time.Now())
		}
	}
}

var sheddingEvaluationsDesc = prometheus.NewDesc("vatio_shedding_evaluations_total",
	"Rounds of load shedding's check of the site's power run by this instance (the leader runs them).", nil, nil)

// Describe is prometheus.Collector's.
func (s *Shedder) Describe(ch chan<- *prometheus.Desc) { ch <- sheddingEvaluationsDesc }

// Collect is prometheus.Collector's.
func (s *Shedder) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(sheddingEvaluationsDesc, prometheus.CounterValue, float64(s.evaluations.Load()))
}
