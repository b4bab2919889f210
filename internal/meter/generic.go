package meter

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// counterMaxAge is how long a counter-only input remembers the last counter
// of a silent meter once it remembers maxRemembered meters.
const counterMaxAge = time.Hour

// Input describes a device family by configuration: an industrial gateway
// or any device whose topics and payloads no built-in Source knows.
type Input struct {
	// Name names the input in logs and the meter registry.
	Name string
	// Topic is an MQTT topic filter; + matches one level, # the rest.
	Topic string
	// Format is "plain" (the payload is a number) or "json".
	Format string
	// Field is the path of the power in a JSON payload, dot-separated
	// ("data.active_power"). A json input without Field is counter-only:
	// it reads EnergyField, and a meter's power is the mean power between
	// its last two counters (see NewGeneric).
	Field string
	// Unit is the power's unit: "W" or "kW". A counter-only input has none.
	Unit string
	// EnergyField is the path of an energy counter in a JSON payload, in
	// EnergyUnit ("Wh" or "kWh"): optional with Field, required without.
	EnergyField string
	EnergyUnit  string
	// PFField, optional, is the path of the power factor (-1 to 1) in a
	// JSON payload.
	PFField string
	// Meter makes the meter id from the topic's levels: {1} is the first
	// level, {2} the second, and so on ("plant-{2}").
	Meter string
	// Scale multiplies the values before their units are converted (a
	// gateway sending tenths of a watt has 0.1). Zero means 1.
	Scale float64
}

var meterLevel = regexp.MustCompile(`\{(\d+)\}`)

// Check reports what is wrong with an input's description, if anything.
func (in Input) Check() error {
	switch {
	case strings.TrimSpace(in.Name) == "":
		return fmt.Errorf("name: must not be empty")
	case !validFilter(in.Topic):
		return fmt.Errorf("topic: %q is not an MQTT topic filter (# only as the last level)", in.Topic)
	case in.Format != "plain" && in.Format != "json":
		return fmt.Errorf("format: %q is not plain or json", in.Format)
	case in.Format == "json" && in.Field == "" && in.EnergyField == "":
		return fmt.Errorf("field: a json input needs the path of its power, or energy_field to derive power from a counter")
	case in.hasPower() && in.Unit != "W" && in.Unit != "kW":
		return fmt.Errorf("unit: %q is not W or kW", in.Unit)
	case !in.hasPower() && in.Unit != "":
		return fmt.Errorf("unit: a counter-only input (energy_field without field) has no power unit: remove %q", in.Unit)
	case in.EnergyField != "" && in.EnergyUnit != "Wh" && in.EnergyUnit != "kWh":
		return fmt.Errorf("energy_unit: %q is not Wh or kWh", in.EnergyUnit)
	case in.PFField != "" && in.Format != "json":
		return fmt.Errorf("pf_field: only a json input has one")
	case in.EnergyField != "" && in.Format != "json":
		return fmt.Errorf("energy_field: only a json input has one")
	case in.Meter == "":
		return fmt.Errorf("meter: must say how the meter id is made, e.g. {2}")
	case math.IsNaN(in.Scale) || math.IsInf(in.Scale, 0):
		return fmt.Errorf("scale: %v is not a finite number", in.Scale)
	}
	for _, m := range meterLevel.FindAllStringSubmatch(in.Meter, -1) {
		if n, _ := strconv.Atoi(m[1]); n < 1 {
			return fmt.Errorf("meter: {%s}: topic levels count from 1", m[1])
		}
	}
	return nil
}

// hasPower reports whether the input reads a power, rather than deriving it
// from counters.
func (in Input) hasPower() bool { return in.Format == "plain" || in.Field != "" }

func validFilter(f string) bool {
	if f == "" || strings.HasPrefix(f, "$") {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if (strings.Contains(l, "#") && (l != "#" || i != len(levels)-1)) || (strings.Contains(l, "+") && l != "+") {
			return false
		}
	}
	return true
}

// matchFilter reports whether topic matches an MQTT topic filter.
func matchFilter(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || (f != "+" && f != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// NewGeneric returns the Source of a configured input; in must Check.
//
// A counter-only input remembers the last counter of each meter and when
// it came: a counter then gives one reading, whose power is the mean power
// since the last one, (Δ Wh)/(Δ hours), and whose counter is the counter.
// A meter's first counter gives no reading, nor does a decrease (a counter
// reset) or a counter received no later than the last; each is remembered
// for the next. The input remembers at most 10000 meters: past that, a new
// meter gives no readings until meters silent for an hour are forgotten.
func NewGeneric(in Input, limits Limits) Source {
	if in.Scale == 0 {
		in.Scale = 1
	}
	g := &generic{in: in, check: &Decoder{Limits: limits}}
	if !in.hasPower() {
		g.counters = newMemory[counterSample](maxRemembered, counterMaxAge)
	}
	return g
}

type generic struct {
	in    Input
	check *Decoder
	// counters remembers the last counter of each meter of a counter-only
	// input; nil for an input that reads power.
	counters *memory[counterSample]
}

// counterSample is a counter as a counter-only input remembers it.
type counterSample struct {
	wh float64
	at time.Time // when it was received
}

func (g *generic) Name() string            { return g.in.Name }
func (g *generic) Match(topic string) bool { return matchFilter(g.in.Topic, topic) }

func (g *generic) Decode(topic string, payload []byte, now time.Time) ([]Reading, error) {
	if err := g.check.Limits.checkSize(payload); err != nil {
		return nil, err
	}
	id := g.meterID(topic)
	if !ValidID(id) {
		return nil, reject(ReasonBadMeterID, "input %s makes meter id %q from topic %q", g.in.Name, truncate(id), truncate(topic))
	}
	r := Reading{Meter: id, Time: now.UTC()}
	var power string
	if g.in.Format == "plain" {
		power = strings.TrimSpace(string(payload))
	} else {
		var doc any
		if err := json.Unmarshal(payload, &doc); err != nil {
			return nil, reject(ReasonBadJSON, "%v", err)
		}
		if g.counters != nil {
			return g.fromCounter(doc, r, now)
		}
		v, ok := jsonPath(doc, g.in.Field)
		if !ok {
			return nil, nil // no power in this message
		}
		power = v
		if g.in.PFField != "" {
			if v, ok := jsonPath(doc, g.in.PFField); ok {
				pf, err := parseNumber([]byte(v))
				if err != nil {
					return nil, reject(ReasonNotANumber, "power factor %q: %v", truncate(v), err)
				}
				r.PowerFactor, r.HasPF = pf, true
			}
		}
		if g.in.EnergyField != "" {
			if e, ok := jsonPath(doc, g.in.EnergyField); ok {
				wh, err := g.value("energy", e, g.in.EnergyUnit == "kWh")
				if err != nil {
					return nil, err
				}
				r.EnergyWh, r.HasEnergy = wh, true
			}
		}
	}
	w, err := g.value("power", power, g.in.Unit == "kW")
	if err != nil {
		return nil, err
	}
	r.PowerW = w
	if err := g.check.Validate(r, now); err != nil {
		return nil, err
	}
	return []Reading{r}, nil
}

// fromCounter completes r, of a counter-only input, from the counter in doc
// and the meter's last counter.
func (g *generic) fromCounter(doc any, r Reading, now time.Time) ([]Reading, error) {
	e, ok := jsonPath(doc, g.in.EnergyField)
	if !ok {
		return nil, nil // no counter in this message
	}
	wh, err := g.value("energy", e, g.in.EnergyUnit == "kWh")
	if err != nil {
		return nil, err
	}
	if err := checkEnergy(wh); err != nil {
		return nil, err
	}
	var last counterSample
	known := false
	g.counters.update(r.Meter, now, func(old counterSample, ok bool) counterSample {
		last, known = old, ok
		return counterSample{wh: wh, at: now}
	})
	hours := now.Sub(last.at).Hours()
	if !known || wh < last.wh || hours <= 0 {
		return nil, nil
	}
	r.PowerW = (wh - last.wh) / hours
	r.EnergyWh, r.HasEnergy = wh, true
	if err := g.check.Validate(r, now); err != nil {
		return nil, err
	}
	return []Reading{r}, nil
}

// value parses a number as text, scales it and converts kilo units.
func (g *generic) value(what, s string, kilo bool) (float64, error) {
	v, err := parseNumber([]byte(s))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	v *= g.in.Scale
	if kilo {
		v *= 1000
	}
	return v, nil
}

// meterID fills the input's meter template from topic's levels.
func (g *generic) meterID(topic string) string {
	levels := strings.Split(topic, "/")
	id := meterLevel.ReplaceAllStringFunc(g.in.Meter, func(m string) string {
		n, _ := strconv.Atoi(m[1 : len(m)-1])
		if n < 1 || n > len(levels) {
			return ""
		}
		return levels[n-1]
	})
	return SubMeterID(id, "")
}

// jsonPath returns the value at a dot-separated path as text: a number's
// digits, or a string's contents (gateways often send numbers as strings).
func jsonPath(doc any, path string) (string, bool) {
	for _, key := range strings.Split(path, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return "", false
		}
		if doc, ok = m[key]; !ok {
			return "", false
		}
	}
	switch v := doc.(type) {
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case string:
		return strings.TrimSpace(v), true
	}
	return "", doc != nil // an object or array where a number belongs: rejected as not a number
}
