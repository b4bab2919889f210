// Package homeassistant announces Vatio's meters to Home Assistant by MQTT
// discovery, so that its Energy dashboard picks them up with no YAML: per
// meter, a power sensor (device_class power, state_class measurement, W)
// and an energy sensor (device_class energy, state_class total_increasing,
// kWh), both read from a state topic Vatio keeps current.
package homeassistant

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// Publish sends payload on topic through the broker, retained or not.
type Publish func(topic string, payload []byte, retain bool) error

// Options configure a Publisher.
type Options struct {
	// Prefix is Home Assistant's discovery prefix. Default homeassistant.
	Prefix string
	// StateTopic is the prefix of the meters' state topics:
	// <StateTopic>/<meter>/state. Default vatio/meters.
	StateTopic string
	// Every is the least time between two states of a meter. Default 10s.
	Every  time.Duration
	Logger *slog.Logger
}

// Publisher keeps Home Assistant informed of the meters.
type Publisher struct {
	st      *store.Store
	publish Publish
	opts    Options

	mu        sync.Mutex
	announced map[string]string // meter -> the label announced
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
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{st: st, publish: publish, opts: opts, announced: map[string]string{},
		lastState: map[string]time.Time{}, energy: map[string]float64{}, energyAt: map[string]time.Time{}}
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

// Run announces every meter, then follows new readings until ctx ends:
// announcing new or renamed meters and publishing states.
func (p *Publisher) Run(ctx context.Context) {
	watch, stop := p.st.Watch(256)
	defer stop()
	for _, m := range p.st.Meters() {
		p.announce(m)
		p.state(m.ID, m.LastPowerW, time.Now())
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C: // renamed meters, and a state for quiet ones
			for _, m := range p.st.Meters() {
				p.announce(m)
			}
		case recs, ok := <-watch:
			if !ok {
				return
			}
			for _, r := range recs {
				if m, err := p.st.Meter(r.Meter); err == nil {
					p.announce(m)
				}
				p.state(r.Meter, r.PowerW, time.Now())
			}
		}
	}
}

type device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model,omitempty"`
}

type sensorConfig struct {
	Name              string `json:"name"`
	UniqueID          string `json:"unique_id"`
	ObjectID          string `json:"object_id"`
	StateTopic        string `json:"state_topic"`
	ValueTemplate     string `json:"value_template"`
	UnitOfMeasurement string `json:"unit_of_measurement"`
	DeviceClass       string `json:"device_class"`
	StateClass        string `json:"state_class"`
	Device            device `json:"device"`
}

// announce publishes m's discovery configs (retained) when it was not
// announced yet, or was under another name.
func (p *Publisher) announce(m store.Meter) {
	label := cmp.Or(m.Info.Name, m.ID)
	p.mu.Lock()
	same := p.announced[m.ID] == label
	p.mu.Unlock()
	if same {
		return
	}
	oid := ObjectID(m.ID)
	dev := device{Identifiers: []string{oid}, Name: label, Manufacturer: "Vatio", Model: m.Info.Source}
	state := p.opts.StateTopic + "/" + m.ID + "/state"
	for _, c := range []sensorConfig{
		{Name: "Power", UniqueID: oid + "_power", ObjectID: oid + "_power", StateTopic: state, ValueTemplate: "{{ value_json.power_w }}",
			UnitOfMeasurement: "W", DeviceClass: "power", StateClass: "measurement", Device: dev},
		{Name: "Energy", UniqueID: oid + "_energy", ObjectID: oid + "_energy", StateTopic: state, ValueTemplate: "{{ value_json.energy_kwh }}",
			UnitOfMeasurement: "kWh", DeviceClass: "energy", StateClass: "total_increasing", Device: dev},
	} {
		payload, _ := json.Marshal(c)
		kind := strings.TrimPrefix(c.UniqueID, oid+"_")
		topic := p.opts.Prefix + "/sensor/" + oid + "/" + kind + "/config"
		if err := p.publish(topic, payload, true); err != nil {
			p.opts.Logger.Warn("home assistant discovery not published", slog.String("meter", m.ID), slog.Any("error", err))
			return
		}
	}
	p.mu.Lock()
	p.announced[m.ID] = label
	p.mu.Unlock()
}

// state publishes a meter's power and lifetime energy, at most every
// Options.Every.
func (p *Publisher) state(id string, powerW float64, now time.Time) {
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
	payload, _ := json.Marshal(map[string]float64{"power_w": powerW, "energy_kwh": kwh})
	if err := p.publish(p.opts.StateTopic+"/"+id+"/state", payload, true); err != nil {
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
