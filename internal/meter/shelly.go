package meter

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// shellyPowerMaxAge is how long a remembered power may be paired with a
// counter: Gen1 devices send both every 30 s, the Pro3EM em and emdata
// every minute or so.
const shellyPowerMaxAge = 5 * time.Minute

// shelly is the Source of Shelly devices, Gen1 and Gen2/Gen3.
type shelly struct {
	d Decoder
	// powers remembers the last power of the meters whose counter comes in
	// a publish of its own (Gen1 relays, the Pro3EM), to pair the two.
	powers *memory[shellyPower]
}

// shellyPower is what a shelly Source remembers of a meter whose counter
// comes apart from its power.
type shellyPower struct {
	powerW   float64
	at       time.Time // when powerW was received; zero when none was
	counting bool      // the meter sent a counter: a power alone is no reading
}

// NewShelly returns the Source of Shelly devices. Readings come from:
//
//   - Gen2/Gen3 <prefix>/status/switch:<n> and <prefix>/status/pm1:<n>:
//     apower (W) and aenergy.total (Wh, the energy counter);
//   - <prefix>/status/em:<n> of the three-phase energy meters: one reading of
//     total_act_power (W) for the whole meter, its counter from emdata (see
//     below). Per-phase power is not stored as meters of its own, so that a
//     device is never counted twice in a sum over meters;
//   - <prefix>/events/rpc NotifyStatus (and NotifyFullStatus): each switch,
//     pm1 or em component in params that carries power, stamped with
//     params.ts (Unix seconds) when it is sane. Partial updates without
//     power carry no reading;
//   - Gen1 shellies/<id>/relay/<n>/power: a plain number in W.
//
// The meter id is <prefix>:<n> (Gen1: <id>:<n>), so a status topic and an
// events/rpc update of the same component name the same meter. Status
// topics are stamped on receipt: their minute_ts marks the minute of
// by_minute, not the measurement.
//
// Two counters come in publishes of their own, without power: Gen1
// shellies/<id>/relay/<n>/energy (watt-minutes since the device started)
// and the Pro3EM's <prefix>/status/emdata:<n>, whose total_act is the
// energy imported in Wh (total_act_ret, exported, is not read). The Source
// pairs each with the last power of the same meter (relay/<n>/power; em:<n>
// from its status topic or events/rpc) received within the last 5 minutes:
// one reading of that power and the counter, stamped on receipt of the
// counter. A counter with no such power gives no reading. Once a meter has sent a counter, its power updates the
// remembered power and gives no reading of its own, so that its readings
// all carry the counter; until then each power is a reading. The Source
// remembers at most 10000 meters: past that, the powers of a new meter are
// readings and its counters give none, until meters silent for 5 minutes
// are forgotten.
//
// The Source is an AvailabilitySource: Gen2/Gen3 <prefix>/online and Gen1
// shellies/<id>/online, which Match takes and Decode passes through,
// announce the device <prefix> or <id>, whose meter ids are <device>:<n>.
func NewShelly(limits Limits) Source {
	return &shelly{d: Decoder{Limits: limits}, powers: newMemory[shellyPower](maxRemembered, shellyPowerMaxAge)}
}

func (s *shelly) Name() string { return "shelly" }

func (s *shelly) Match(topic string) bool {
	_, ok := parseShellyTopic(topic)
	return ok
}

// shellyTopic is what a Shelly topic names.
type shellyTopic struct {
	kind    string // switch, pm1, em, emdata, rpc, online, power (Gen1), energy (Gen1)
	device  string // the topic prefix (Gen2) or the device id (Gen1)
	channel string // the component id, "" for rpc and online
	gen1    bool
}

func parseShellyTopic(topic string) (shellyTopic, bool) {
	if rest, ok := strings.CutPrefix(topic, "shellies/"); ok {
		id, rest, _ := strings.Cut(rest, "/")
		if id != "" && rest == "online" {
			return shellyTopic{kind: "online", device: id, gen1: true}, true
		}
		if rest, ok := strings.CutPrefix(rest, "relay/"); ok && id != "" {
			n, what, _ := strings.Cut(rest, "/")
			if isChannel(n) && (what == "power" || what == "energy") {
				return shellyTopic{kind: what, device: id, channel: n, gen1: true}, true
			}
		}
	}
	if prefix, ok := strings.CutSuffix(topic, "/events/rpc"); ok && prefix != "" {
		return shellyTopic{kind: "rpc", device: prefix}, true
	}
	if prefix, ok := strings.CutSuffix(topic, "/online"); ok && prefix != "" {
		return shellyTopic{kind: "online", device: prefix}, true
	}
	i := strings.LastIndex(topic, "/status/")
	if i <= 0 {
		return shellyTopic{}, false
	}
	comp, n, ok := strings.Cut(topic[i+len("/status/"):], ":")
	if !ok || !isChannel(n) {
		return shellyTopic{}, false
	}
	switch comp {
	case "switch", "pm1", "em", "emdata":
		return shellyTopic{kind: comp, device: topic[:i], channel: n}, true
	}
	return shellyTopic{}, false
}

// isChannel reports whether n is a Shelly component id: a few digits.
func isChannel(n string) bool {
	return n != "" && len(n) <= 3 && allDigits(n)
}

// allDigits reports whether n holds only ASCII digits.
func allDigits(n string) bool {
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// shellyComponent holds the fields of a switch, pm1 or em status that carry
// a reading.
type shellyComponent struct {
	APower  json.RawMessage `json:"apower"`
	AEnergy *struct {
		Total json.RawMessage `json:"total"`
	} `json:"aenergy"`
	TotalActPower json.RawMessage `json:"total_act_power"`
	// PF (switch, pm1) and TotalAprtPower (em, apparent power in VA) give
	// the power factor.
	PF             json.RawMessage `json:"pf"`
	TotalAprtPower json.RawMessage `json:"total_aprt_power"`
}

// shellyEMData holds the counter of an emdata status.
type shellyEMData struct {
	TotalAct json.RawMessage `json:"total_act"`
}

type shellyRPC struct {
	Method string                     `json:"method"`
	Params map[string]json.RawMessage `json:"params"`
}

func (s *shelly) Decode(topic string, payload []byte, now time.Time) ([]Reading, error) {
	t, ok := parseShellyTopic(topic)
	if !ok {
		return nil, reject(ReasonBadTopic, "topic %q is not a Shelly status, events/rpc, online or Gen1 relay topic", truncate(topic))
	}
	if t.kind == "online" {
		return nil, nil // see Availability
	}
	if err := s.d.Limits.checkSize(payload); err != nil {
		return nil, err
	}
	meter := SubMeterID(t.device, t.channel)
	switch t.kind {
	case "energy":
		wattMinutes, err := plainNumber(payload)
		if err != nil {
			return nil, err
		}
		return s.counter(meter, wattMinutes/60, now)
	case "power":
		w, err := plainNumber(payload)
		if err != nil {
			return nil, err
		}
		rs, err := s.readings(Reading{Meter: meter, Time: now.UTC(), PowerW: w}, now)
		if err != nil || !s.power(rs[0], now) {
			return nil, err
		}
		return rs, nil
	case "emdata":
		var e shellyEMData
		if err := json.Unmarshal(payload, &e); err != nil {
			return nil, reject(ReasonBadJSON, "emdata: %v", err)
		}
		if !present(e.TotalAct) {
			return nil, nil
		}
		wh, err := jsonNumber("total_act", e.TotalAct)
		if err != nil {
			return nil, err
		}
		return s.counter(meter, wh, now)
	case "rpc":
		return s.decodeRPC(t.device, payload, now)
	}
	base := Reading{Meter: meter, Time: now.UTC()}
	r, ok, err := decodeShellyComponent(t.kind, payload, base)
	if err != nil || !ok {
		return nil, err
	}
	rs, err := s.readings(r, now)
	if err != nil || (t.kind == "em" && !s.power(rs[0], now)) {
		return nil, err
	}
	return rs, nil
}

// Availability decodes Gen2/Gen3 <prefix>/online, true or false, and Gen1
// shellies/<id>/online, true or false, 1 or 0. device is
// SubMeterID(<prefix>, "") or SubMeterID(<id>, ""): what the device's meter
// ids have before ':'.
func (s *shelly) Availability(topic string, payload []byte) (device string, online bool, ok bool) {
	t, ok := parseShellyTopic(topic)
	if !ok || t.kind != "online" || s.d.Limits.checkSize(payload) != nil {
		return "", false, false
	}
	if device = SubMeterID(t.device, ""); device == "" {
		return "", false, false
	}
	switch word := strings.TrimSpace(string(payload)); {
	case strings.EqualFold(word, "true"), t.gen1 && word == "1":
		return device, true, true
	case strings.EqualFold(word, "false"), t.gen1 && word == "0":
		return device, false, true
	}
	return "", false, false
}

// power remembers the validated power reading r of a meter whose counter
// may come apart, and reports whether r is a reading of its own: not once
// the meter has sent a counter, whose readings then carry the power.
func (s *shelly) power(r Reading, now time.Time) bool {
	counting := false
	s.powers.update(r.Meter, now, func(old shellyPower, _ bool) shellyPower {
		counting = old.counting
		return shellyPower{powerW: r.PowerW, at: now, counting: old.counting}
	})
	return !counting
}

// counter pairs the counter wh of meter with the meter's last power: one
// reading, or none when no power was received in the last
// shellyPowerMaxAge.
func (s *shelly) counter(meter string, wh float64, now time.Time) ([]Reading, error) {
	if meter == "" {
		return nil, reject(ReasonBadMeterID, "the topic gives no usable meter id")
	}
	if err := checkEnergy(wh); err != nil {
		return nil, err
	}
	var last shellyPower
	s.powers.update(meter, now, func(old shellyPower, _ bool) shellyPower {
		last = old
		old.counting = true
		return old
	})
	if last.at.IsZero() || now.Sub(last.at) > shellyPowerMaxAge {
		return nil, nil
	}
	return s.readings(Reading{Meter: meter, Time: now.UTC(), PowerW: last.powerW, EnergyWh: wh, HasEnergy: true}, now)
}

// readings validates the one reading r.
func (s *shelly) readings(r Reading, now time.Time) ([]Reading, error) {
	if r.Meter == "" {
		return nil, reject(ReasonBadMeterID, "the topic gives no usable meter id")
	}
	if err := s.d.Validate(r, now); err != nil {
		return nil, err
	}
	return []Reading{r}, nil
}

// decodeRPC decodes a notification on <prefix>/events/rpc.
func (s *shelly) decodeRPC(prefix string, payload []byte, now time.Time) ([]Reading, error) {
	var msg shellyRPC
	if err := json.Unmarshal(payload, &msg); err != nil {
		return nil, reject(ReasonBadJSON, "%v", err)
	}
	if msg.Method != "NotifyStatus" && msg.Method != "NotifyFullStatus" {
		return nil, nil
	}
	base := Reading{Time: now.UTC()}
	if raw := msg.Params["ts"]; present(raw) {
		if ts, ok := shellyTime(raw); ok && saneDeviceTime(s.d.Limits, ts, now) {
			base.Time, base.Stamped = ts.UTC(), true
		}
	}
	keys := make([]string, 0, len(msg.Params))
	for k := range msg.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var readings []Reading
	var fromEM []bool
	for _, k := range keys {
		comp, n, ok := strings.Cut(k, ":")
		if !ok || !isChannel(n) || (comp != "switch" && comp != "pm1" && comp != "em") {
			continue
		}
		base.Meter = SubMeterID(prefix, n)
		r, ok, err := decodeShellyComponent(comp, msg.Params[k], base)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		rs, err := s.readings(r, now)
		if err != nil {
			return nil, err
		}
		readings = append(readings, rs...)
		fromEM = append(fromEM, comp == "em")
	}
	// Only a publish decoded whole updates the remembered powers.
	var kept []Reading
	for i, r := range readings {
		if !fromEM[i] || s.power(r, now) {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// shellyTime parses params.ts, Unix seconds with a fraction (1631266595.43),
// from its decimal text, so that 0.43 s is 430 ms exactly rather than the
// nearest float64.
func shellyTime(raw json.RawMessage) (time.Time, bool) {
	whole, frac, _ := strings.Cut(string(raw), ".")
	if len(whole) == 0 || len(whole) > 12 || len(frac) > 9 || !allDigits(whole) || !allDigits(frac) {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var ns int64
	if frac != "" {
		ns, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return time.Unix(sec, ns), true
}

// decodeShellyComponent fills base with the power (and counter) of one
// switch, pm1 or em status; ok is false when it carries no power.
func decodeShellyComponent(comp string, raw []byte, base Reading) (r Reading, ok bool, err error) {
	var c shellyComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return r, false, reject(ReasonBadJSON, "%s: %v", comp, err)
	}
	field, power := "apower", c.APower
	if comp == "em" {
		field, power = "total_act_power", c.TotalActPower
	}
	if !present(power) {
		return r, false, nil
	}
	r = base
	if r.PowerW, err = jsonNumber(field, power); err != nil {
		return r, false, err
	}
	if comp != "em" && c.AEnergy != nil && present(c.AEnergy.Total) {
		if r.EnergyWh, err = jsonNumber("aenergy.total", c.AEnergy.Total); err != nil {
			return r, false, err
		}
		r.HasEnergy = true
	}
	switch {
	case comp != "em" && present(c.PF):
		if r.PowerFactor, err = jsonNumber("pf", c.PF); err != nil {
			return r, false, err
		}
		r.HasPF = true
	case comp == "em" && present(c.TotalAprtPower):
		va, err := jsonNumber("total_aprt_power", c.TotalAprtPower)
		if err != nil {
			return r, false, err
		}
		if va > 0 && math.Abs(r.PowerW) <= va*1.01 { // active over apparent power
			r.PowerFactor, r.HasPF = min(math.Abs(r.PowerW)/va, 1), true
		}
	}
	return r, true, nil
}
