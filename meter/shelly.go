package meter

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
)

// shelly is the Source of Shelly devices, Gen1 and Gen2/Gen3.
type shelly struct{ d Decoder }

// NewShelly returns the Source of Shelly devices. Readings come from:
//
//   - Gen2/Gen3 <prefix>/status/switch:<n> and <prefix>/status/pm1:<n>:
//     apower (W) and aenergy.total (Wh, the energy counter);
//   - <prefix>/status/em:<n> of the three-phase energy meters: one reading of
//     total_act_power (W) for the whole meter, no counter. Per-phase power is
//     not stored as meters of its own, so that a device is never counted
//     twice in a sum over meters;
//   - <prefix>/events/rpc NotifyStatus (and NotifyFullStatus): each switch,
//     pm1 or em component in params that carries power, stamped with
//     params.ts (Unix seconds) when it is sane. Partial updates without
//     power carry no reading;
//   - Gen1 shellies/<id>/relay/<n>/power: a plain number in W.
//
// The meter id is <prefix>:<n> (Gen1: <id>:<n>), so a status topic and an
// events/rpc update of the same component name the same meter. Topics
// <prefix>/status/emdata:<n> and shellies/<id>/relay/<n>/energy carry only
// counters (watt-minutes for Gen1) and no power: they match, but give no
// readings yet. Status topics are stamped on receipt: their minute_ts marks
// the minute of by_minute, not the measurement.
func NewShelly(limits Limits) Source {
	return &shelly{d: Decoder{Limits: limits}}
}

func (s *shelly) Name() string { return "shelly" }

func (s *shelly) Match(topic string) bool {
	_, ok := parseShellyTopic(topic)
	return ok
}

// shellyTopic is what a Shelly topic names.
type shellyTopic struct {
	kind    string // switch, pm1, em, emdata, rpc, power (Gen1), energy (Gen1)
	device  string // the topic prefix (Gen2) or the device id (Gen1)
	channel string // the component id, "" for rpc
}

func parseShellyTopic(topic string) (shellyTopic, bool) {
	if rest, ok := strings.CutPrefix(topic, "shellies/"); ok {
		id, rest, _ := strings.Cut(rest, "/")
		if rest, ok := strings.CutPrefix(rest, "relay/"); ok && id != "" {
			n, what, _ := strings.Cut(rest, "/")
			if isChannel(n) && (what == "power" || what == "energy") {
				return shellyTopic{kind: what, device: id, channel: n}, true
			}
		}
	}
	if prefix, ok := strings.CutSuffix(topic, "/events/rpc"); ok && prefix != "" {
		return shellyTopic{kind: "rpc", device: prefix}, true
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
}

type shellyRPC struct {
	Method string                     `json:"method"`
	Params map[string]json.RawMessage `json:"params"`
}

func (s *shelly) Decode(topic string, payload []byte, now time.Time) ([]Reading, error) {
	t, ok := parseShellyTopic(topic)
	if !ok {
		return nil, reject(ReasonBadTopic, "topic %q is not a Shelly status, events/rpc or Gen1 relay topic", truncate(topic))
	}
	if err := s.d.Limits.checkSize(payload); err != nil {
		return nil, err
	}
	switch t.kind {
	case "energy":
		return nil, nil // watt-minutes, no power
	case "power":
		w, err := plainNumber(payload)
		if err != nil {
			return nil, err
		}
		return s.readings(Reading{Meter: SubMeterID(t.device, t.channel), Time: now.UTC(), PowerW: w}, now)
	case "emdata":
		if !json.Valid(payload) {
			return nil, reject(ReasonBadJSON, "emdata is not JSON")
		}
		return nil, nil // counters only, no power
	case "rpc":
		return s.decodeRPC(t.device, payload, now)
	}
	base := Reading{Meter: SubMeterID(t.device, t.channel), Time: now.UTC()}
	r, ok, err := decodeShellyComponent(t.kind, payload, base)
	if err != nil || !ok {
		return nil, err
	}
	return s.readings(r, now)
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
	}
	return readings, nil
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
	return r, true, nil
}
