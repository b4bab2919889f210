// Package homeassistant announces Vatio's meters to Home Assistant by MQTT
// discovery, so that its Energy dashboard picks them up with no YAML: per
// meter, a power sensor (device_class power, state_class measurement, W)
// and an energy sensor (device_class energy, state_class total_increasing,
// kWh), both read from a state topic Vatio keeps current.
//
// Each sensor is available only while Vatio is (its status topic, online
// while it runs, offline when it stops or, on an external broker, through
// its will) and its meter is (offline once the meter has been silent as
// store.Meter.Status says). The configurations are published again when
// Home Assistant says it is back (online on <prefix>/status) and when
// anyone clears one of them, at most once per Options.RepublishEvery
// (per configuration, for clears). It publishes; it never stores.
package homeassistant

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// Publish sends payload on topic through the broker, retained or not,
// giving up when ctx ends (a broker out of reach must not hold a stop).
type Publish func(ctx context.Context, topic string, payload []byte, retain bool) error

// Subscribe calls fn with each message published on a topic matching
// filter from now on (retained ones too, if the broker sends them) until
// stop is called. fn runs on the broker's goroutine, possibly inside a
// call of Publish: it must not block.
type Subscribe func(filter string, fn func(topic string, payload []byte)) (stop func(), err error)

// Availability payloads, Home Assistant's defaults.
const (
	Online  = "online"
	Offline = "offline"
)

// stopWait bounds the wait for the offline status when Run ends.
const stopWait = 2 * time.Second

// Options configure a Publisher.
type Options struct {
	// Prefix is Home Assistant's discovery prefix. Default homeassistant.
	Prefix string
	// StateTopic is the root of the topics Vatio publishes for Home
	// Assistant: <StateTopic>/<meter>/state, <StateTopic>/<meter>/availability
	// and Vatio's own <StateTopic>/status. Default vatio/meters.
	StateTopic string
	// Every is the least time between two states of a meter. Default 10s.
	Every time.Duration
	// CheckEvery is how often the meters' silence is looked at, to turn
	// their availability offline. Default 5s.
	CheckEvery time.Duration
	// Subscribe, when set, lets the Publisher hear Home Assistant's birth
	// message and cleared configurations, and publish again. Nil: it
	// publishes at start, and for new or renamed meters, only.
	Subscribe Subscribe
	// RepublishEvery is the least time between two republications for
	// Home Assistant's birth, and between two of one cleared
	// configuration: a birth or a clear in the quiet time after one is
	// acted on once at its end, however many came. Default 30s.
	RepublishEvery time.Duration
	// Version is Vatio's, for the origin of the configurations.
	Version string
	Logger  *slog.Logger
}

// Publisher keeps Home Assistant informed of the meters.
type Publisher struct {
	st      *store.Store
	publish Publish
	opts    Options

	// wake is signalled (never blocking) by the subscriptions' handlers.
	wake chan struct{}

	mu        sync.Mutex
	announced map[string]string // meter -> the label announced
	// configs maps each configuration topic announced to its meter.
	configs map[string]string
	// cleared are the configuration topics someone cleared, with their
	// meter, and
	// reborn says Home Assistant came back; reassert that Vatio's status
	// was set offline while it runs (another instance's will). Run acts on
	// them.
	cleared map[string]string
	// retained are configuration topics of Vatio's heard from the broker
	// (a run before this one's) that this run has not announced, with
	// their meter: those of a meter deleted since are cleared.
	retained map[string]string
	reborn   bool
	reassert bool
	// available is the availability last published per meter.
	available map[string]bool
	lastState map[string]time.Time
	// energy caches each meter's lifetime kWh from its daily rollups,
	// refreshed every minute.
	energy   map[string]float64
	energyAt map[string]time.Time
}

// New returns a Publisher; Run runs it.
func New(st *store.Store, publish Publish, opts Options) *Publisher {
	opts.Prefix = cmp.Or(opts.Prefix, "homeassistant")
	opts.StateTopic = cmp.Or(opts.StateTopic, "vatio/meters")
	opts.Every = cmp.Or(opts.Every, 10*time.Second)
	opts.CheckEvery = cmp.Or(opts.CheckEvery, 5*time.Second)
	opts.RepublishEvery = cmp.Or(opts.RepublishEvery, 30*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{st: st, publish: publish, opts: opts, wake: make(chan struct{}, 1),
		announced: map[string]string{}, configs: map[string]string{}, cleared: map[string]string{}, retained: map[string]string{},
		available: map[string]bool{}, lastState: map[string]time.Time{},
		energy: map[string]float64{}, energyAt: map[string]time.Time{}}
}

// StatusTopic is where Vatio says whether it runs: online (retained) while
// it does, offline once it stops.
func (p *Publisher) StatusTopic() string { return StatusTopic(p.opts.StateTopic) }

// StatusTopic is Vatio's status topic under stateTopic (see Options).
func StatusTopic(stateTopic string) string { return stateTopic + "/status" }

// AvailabilityTopic is where Vatio says whether meter is online.
func (p *Publisher) AvailabilityTopic(meterID string) string {
	return p.opts.StateTopic + "/" + meterID + "/availability"
}

// StateTopic is where Vatio publishes meter's power and energy.
func (p *Publisher) StateTopic(meterID string) string {
	return p.opts.StateTopic + "/" + meterID + "/state"
}

// ObjectID is a meter id as Home Assistant ids want it: letters, digits,
// '_' and '-'.
//
// Ids that had to change get a short hash of the original, so that
// "a.b", "a:b" and "a_b" stay three devices.
func ObjectID(meterID string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, meterID)
	if clean != meterID {
		sum := sha256.Sum256([]byte(meterID))
		clean += "_" + hex.EncodeToString(sum[:3])
	}
	return "vatio_" + clean
}

// EntityID is the entity id Home Assistant is asked to give a sensor of
// the meter whose ObjectID is oid: "sensor.<oid>_<kind>", in the form
// Home Assistant accepts (lower case letters, digits and single '_', none
// first or last). An oid that had to change for it gets a short hash of
// itself, so that "Kitchen" and "kitchen", or "a-b" and "a_b", stay two.
func EntityID(oid, kind string) string {
	var b strings.Builder
	under := true // no '_' first, none doubled
	for _, r := range oid {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			under = false
		} else if r >= 'A' && r <= 'Z' {
			b.WriteRune(r - 'A' + 'a')
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	slug := strings.TrimSuffix(b.String(), "_")
	if slug != oid {
		sum := sha256.Sum256([]byte(oid))
		slug = strings.TrimPrefix(slug+"_"+hex.EncodeToString(sum[:3]), "_")
	}
	return "sensor." + slug + "_" + kind
}

// Run publishes Vatio's status online and announces every meter, then
// follows new readings until ctx ends: announcing new or renamed meters,
// publishing states and availabilities, and announcing again when Home
// Assistant comes back or a configuration is cleared. When ctx ends it
// publishes Vatio's status offline.
func (p *Publisher) Run(ctx context.Context) {
	watch, stop := p.st.Watch(256)
	defer stop()
	var unsubs []func()
	if p.opts.Subscribe != nil {
		for _, s := range []struct {
			filter string
			fn     func(topic string, payload []byte)
		}{
			{p.opts.Prefix + "/status", p.onHomeAssistant},
			{p.opts.Prefix + "/+/+/+/config", p.onConfig},
			{p.StatusTopic(), p.onStatus},
		} {
			unsub, err := p.opts.Subscribe(s.filter, s.fn)
			if err != nil {
				p.opts.Logger.Warn("home assistant: cannot subscribe; discovery is published again only at start",
					slog.String("topic", s.filter), slog.Any("error", err))
				continue
			}
			unsubs = append(unsubs, unsub)
		}
	}
	defer func() {
		for _, unsub := range unsubs {
			unsub() // first: Vatio's own offline is not one to correct
		}
		// A stop does not wait long for a broker out of reach: the
		// status stays as the broker last had it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopWait)
		defer cancel()
		p.setStatus(sctx, Offline)
	}()
	p.setStatus(ctx, Online)
	p.announceAll(ctx, false)
	for _, m := range p.st.Meters() {
		if ctx.Err() != nil {
			return
		}
		p.state(ctx, m.ID, m.LastPowerW, time.Now())
	}
	announce := time.NewTicker(time.Minute)
	defer announce.Stop()
	check := time.NewTicker(p.opts.CheckEvery)
	defer check.Stop()
	q := &quiet{clearedAt: map[string]time.Time{}, cleared: map[string]string{}}
	later := time.NewTimer(time.Hour)
	later.Stop()
	defer later.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-announce.C: // renamed meters
			p.announceAll(ctx, false)
		case <-check.C:
			meters := p.st.Meters()
			p.forgetGone(ctx, meters)
			p.checkAvailability(ctx, meters)
		case <-p.wake:
			p.take(ctx, q)
			p.act(ctx, q, later)
		case <-later.C:
			p.act(ctx, q, later)
		case recs, ok := <-watch:
			if !ok {
				return
			}
			for _, r := range recs {
				if ctx.Err() != nil {
					break
				}
				if m, err := p.st.Meter(r.Meter); err == nil {
					p.announce(ctx, m, false)
					p.checkAvailability(ctx, []store.Meter{m})
				}
				p.state(ctx, r.Meter, r.PowerW, time.Now())
			}
		}
	}
}

// signal wakes Run without blocking.
func (p *Publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// onHomeAssistant hears Home Assistant's status: online is its birth,
// after which it wants the configurations again.
func (p *Publisher) onHomeAssistant(_ string, payload []byte) {
	if string(payload) != Online {
		return
	}
	p.mu.Lock()
	p.reborn = true
	p.mu.Unlock()
	p.signal()
}

// onConfig hears the configuration topics: one of Vatio's cleared (an
// empty retained message) is published again.
func (p *Publisher) onConfig(topic string, payload []byte) {
	if len(payload) != 0 {
		p.onRetained(topic, payload)
		return
	}
	p.mu.Lock()
	id, ours := p.configs[topic]
	if ours {
		p.cleared[topic] = id
	}
	p.mu.Unlock()
	if ours {
		p.signal()
	}
}

// onRetained hears a configuration published: one of Vatio's (its
// origin Vatio, its state topic under Vatio's) that this run did not
// announce is remembered, and cleared if its meter is gone.
func (p *Publisher) onRetained(topic string, payload []byte) {
	var c struct {
		StateTopic string `json:"state_topic"`
		Origin     struct {
			Name string `json:"name"`
		} `json:"origin"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Origin.Name != "Vatio" {
		return
	}
	id, under := strings.CutPrefix(c.StateTopic, p.opts.StateTopic+"/")
	id, state := strings.CutSuffix(id, "/state")
	if !under || !state || id == "" {
		return
	}
	p.mu.Lock()
	_, ours := p.configs[topic]
	if !ours {
		p.retained[topic] = id
	}
	p.mu.Unlock()
	if !ours {
		p.signal()
	}
}

// onStatus hears Vatio's own status topic: offline while Run runs is
// another instance's will (or anyone's), and is corrected.
func (p *Publisher) onStatus(_ string, payload []byte) {
	if string(payload) == Online {
		return
	}
	p.mu.Lock()
	p.reassert = true
	p.mu.Unlock()
	p.signal()
}

// quiet is what Run has yet to republish, and when it last did: births
// and clears are acted on at most once per Options.RepublishEvery (per
// topic for clears), so that a client repeating them cannot make Vatio
// publish without end. Only Run's goroutine uses it.
type quiet struct {
	bornAt time.Time // last republication for a birth
	born   bool      // a birth waits for the end of the quiet time
	// clearedAt is the last republication of each configuration topic
	// (Vatio's own, so as many as its meters have), cleared those waiting,
	// with their meter.
	clearedAt map[string]time.Time
	cleared   map[string]string
}

// take moves what the handlers asked for into q; Vatio's status set
// offline is corrected at once (one publish for one message).
func (p *Publisher) take(ctx context.Context, q *quiet) {
	p.mu.Lock()
	reborn, reassert, cleared, retained := p.reborn, p.reassert, p.cleared, p.retained
	p.reborn, p.reassert, p.cleared, p.retained = false, false, map[string]string{}, map[string]string{}
	p.mu.Unlock()
	if reassert {
		p.setStatus(ctx, Online)
	}
	for topic, id := range retained {
		if _, err := p.st.Meter(id); errors.Is(err, store.ErrUnknownMeter) {
			p.erase(ctx, id, []string{topic})
		}
	}
	q.born = q.born || reborn
	for topic, id := range cleared {
		q.cleared[topic] = id
	}
}

// act republishes what q holds whose quiet time is over, and sets later
// to fire when the rest's is.
func (p *Publisher) act(ctx context.Context, q *quiet, later *time.Timer) {
	now := time.Now()
	every := p.opts.RepublishEvery
	var next time.Duration // 0: nothing waits
	wait := func(since time.Time) bool {
		d := every - now.Sub(since)
		if d <= 0 {
			return false
		}
		if next == 0 || d < next {
			next = d
		}
		return true
	}
	if q.born && !wait(q.bornAt) {
		q.born, q.bornAt = false, now
		p.setStatus(ctx, Online)
		p.opts.Logger.Info("home assistant came online: discovery published again")
		p.announceAll(ctx, true)
		for topic := range q.cleared {
			q.clearedAt[topic] = now // just published again with the rest
		}
		clear(q.cleared)
	}
	for topic, id := range q.cleared {
		if wait(q.clearedAt[topic]) {
			continue
		}
		delete(q.cleared, topic)
		q.clearedAt[topic] = now
		p.republish(ctx, topic, id)
	}
	later.Stop()
	if next > 0 {
		later.Reset(next)
	}
}

// republish publishes again the configuration on topic of meter id.
func (p *Publisher) republish(ctx context.Context, topic, id string) {
	m, err := p.st.Meter(id)
	if err != nil {
		return // gone since
	}
	for _, c := range p.configsOf(m) {
		if c.topic != topic {
			continue
		}
		p.opts.Logger.Info("home assistant discovery was cleared: published again", slog.String("meter", id), slog.String("topic", topic))
		if err := p.publish(ctx, c.topic, c.payload, true); err != nil {
			p.opts.Logger.Warn("home assistant discovery not published", slog.String("meter", id), slog.Any("error", err))
		}
	}
}

// forgetGone erases what was published of the meters announced that are
// no longer among meters (deleted).
func (p *Publisher) forgetGone(ctx context.Context, meters []store.Meter) {
	now := make(map[string]bool, len(meters))
	for _, m := range meters {
		now[m.ID] = true
	}
	p.mu.Lock()
	gone := map[string][]string{}
	for id := range p.announced {
		if !now[id] {
			gone[id] = nil
		}
	}
	for topic, id := range p.configs {
		if _, ok := gone[id]; ok {
			gone[id] = append(gone[id], topic)
		}
	}
	p.mu.Unlock()
	for id, topics := range gone {
		p.erase(ctx, id, topics)
	}
}

// erase clears (an empty retained message each) the configuration topics
// of meter id, gone from the store, and its availability and state, so
// that neither the broker nor Home Assistant keeps what a deletion
// removed; and forgets them.
func (p *Publisher) erase(ctx context.Context, id string, topics []string) {
	p.mu.Lock()
	for _, topic := range topics {
		delete(p.configs, topic) // first: its clear is not one to correct
	}
	delete(p.announced, id)
	delete(p.available, id)
	delete(p.lastState, id)
	p.mu.Unlock()
	for _, topic := range append(topics, p.AvailabilityTopic(id), p.StateTopic(id)) {
		if err := p.publish(ctx, topic, nil, true); err != nil {
			p.opts.Logger.Warn("home assistant: a deleted meter's topic not cleared", slog.String("meter", id), slog.String("topic", topic), slog.Any("error", err))
			return
		}
	}
	p.opts.Logger.Info("home assistant: a deleted meter's discovery, availability and state cleared", slog.String("meter", id))
}

// setStatus publishes Vatio's status, retained.
func (p *Publisher) setStatus(ctx context.Context, status string) {
	if err := p.publish(ctx, p.StatusTopic(), []byte(status), true); err != nil {
		p.opts.Logger.Warn("home assistant: status not published", slog.String("status", status), slog.Any("error", err))
	}
}

// announceAll announces every meter (again, with force) and publishes
// their availability.
func (p *Publisher) announceAll(ctx context.Context, force bool) {
	meters := p.st.Meters()
	if force {
		p.mu.Lock()
		clear(p.available)
		p.mu.Unlock()
	}
	for _, m := range meters {
		if ctx.Err() != nil {
			return
		}
		p.announce(ctx, m, force)
	}
	p.checkAvailability(ctx, meters)
}

// announce publishes m's discovery configs (retained) when it was not
// announced yet, was under another name, or force says so; then its
// availability.
func (p *Publisher) announce(ctx context.Context, m store.Meter, force bool) {
	label := cmp.Or(m.Info.Name, m.ID)
	p.mu.Lock()
	same := p.announced[m.ID] == label
	p.mu.Unlock()
	if same && !force {
		return
	}
	for _, c := range p.configsOf(m) {
		if err := p.publish(ctx, c.topic, c.payload, true); err != nil {
			p.opts.Logger.Warn("home assistant discovery not published", slog.String("meter", m.ID), slog.Any("error", err))
			return
		}
		p.mu.Lock()
		p.configs[c.topic] = m.ID
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.announced[m.ID] = label
	delete(p.available, m.ID) // published again with the configs
	p.mu.Unlock()
	p.checkAvailability(ctx, []store.Meter{m})
}

// checkAvailability publishes the availability of each of meters whose
// status changed since it was last published (or never was).
func (p *Publisher) checkAvailability(ctx context.Context, meters []store.Meter) {
	now := time.Now()
	for _, m := range meters {
		if ctx.Err() != nil {
			return
		}
		status, _ := m.Status(now)
		online := status == store.StatusOnline
		p.mu.Lock()
		was, known := p.available[m.ID]
		_, announced := p.announced[m.ID]
		p.mu.Unlock()
		if !announced || known && was == online {
			continue
		}
		payload := Offline
		if online {
			payload = Online
		}
		if err := p.publish(ctx, p.AvailabilityTopic(m.ID), []byte(payload), true); err != nil {
			p.opts.Logger.Warn("home assistant availability not published", slog.String("meter", m.ID), slog.Any("error", err))
			continue
		}
		p.mu.Lock()
		p.available[m.ID] = online
		p.mu.Unlock()
	}
}

// state publishes a meter's power and lifetime energy, at most every
// Options.Every.
func (p *Publisher) state(ctx context.Context, id string, powerW float64, now time.Time) {
	p.mu.Lock()
	if now.Sub(p.lastState[id]) < p.opts.Every {
		p.mu.Unlock()
		return
	}
	p.lastState[id] = now
	kwh, fresh := p.energy[id], now.Sub(p.energyAt[id]) < time.Minute
	p.mu.Unlock()
	if !fresh {
		v, err := p.lifetimeKWh(id)
		if err != nil {
			return // a total_increasing sensor must not drop: publish nothing
		}
		p.mu.Lock()
		// Never below what was published: Home Assistant takes a drop
		// (rollups pruned) for a meter reset and counts everything again.
		kwh = max(v, p.energy[id])
		p.energy[id], p.energyAt[id] = kwh, now
		p.mu.Unlock()
	}
	payload := statePayload(powerW, kwh)
	if err := p.publish(ctx, p.StateTopic(id), payload, true); err != nil {
		p.opts.Logger.Warn("home assistant state not published", slog.String("meter", id), slog.Any("error", err))
	}
}

// lifetimeKWh sums a meter's daily rollups: the energy it drew since its
// first reading, which only grows.
func (p *Publisher) lifetimeKWh(id string) (float64, error) {
	bs, _, err := p.st.Rollups(id, store.TierDay, time.Unix(0, 0), time.Now().Add(48*time.Hour), 1<<20)
	if err != nil {
		return 0, err
	}
	sum := 0.0
	for _, b := range bs {
		sum += b.EnergyWh
	}
	return sum / 1000, nil
}
