package meter

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// tasmota is the Source of Tasmota devices with an energy monitor.
type tasmota struct {
	base string // prefix + "/"
	d    Decoder
}

// NewTasmota returns the Source of Tasmota devices that publish telemetry
// under prefix ("tele" when empty), as Tasmota's default full topic
// %prefix%/%topic%/ does. Only prefix/<device>/SENSOR carries readings: the
// ENERGY object's Power (W) and Total (kWh, kept as the energy counter). A
// single-channel device is meter <device>; a multi-channel device, which
// sends one value a channel in arrays, is meters <device>:1, <device>:2, ...
// Other telemetry (LWT, STATE, a SENSOR message without ENERGY) carries no
// reading and is not an error. The Source is an AvailabilitySource:
// prefix/<device>/LWT, Online or Offline, announces the device, whose meter
// ids are <device> or <device>:<n>.
//
// Tasmota's Time has no offset unless SetOption52 is on, and is 1970 while
// the clock is unset: a reading is device-stamped only when Time carries an
// offset and passes the clock checks of Validate, otherwise it is stamped on
// receipt.
func NewTasmota(prefix string, limits Limits) Source {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		prefix = "tele"
	}
	return &tasmota{base: prefix + "/", d: Decoder{Limits: limits}}
}

func (t *tasmota) Name() string { return "tasmota" }

// Match reports whether topic is prefix/<device>/<kind>.
func (t *tasmota) Match(topic string) bool {
	_, _, ok := t.split(topic)
	return ok
}

// split returns the device and message kind (SENSOR, LWT, STATE, ...) of
// topic. A device holding '/' (a custom full topic) is kept whole.
func (t *tasmota) split(topic string) (device, kind string, ok bool) {
	rest, ok := strings.CutPrefix(topic, t.base)
	i := strings.LastIndexByte(rest, '/')
	if !ok || i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// Availability decodes prefix/<device>/LWT: Online or Offline, in any case.
// device is SubMeterID(<device>, ""), the meter id of a single-channel
// device and what the meter ids of a multi-channel one have before ':'.
func (t *tasmota) Availability(topic string, payload []byte) (device string, online bool, ok bool) {
	name, kind, ok := t.split(topic)
	if !ok || kind != "LWT" || t.d.Limits.checkSize(payload) != nil {
		return "", false, false
	}
	if device = SubMeterID(name, ""); device == "" {
		return "", false, false
	}
	switch word := strings.TrimSpace(string(payload)); {
	case strings.EqualFold(word, "Online"):
		return device, true, true
	case strings.EqualFold(word, "Offline"):
		return device, false, true
	}
	return "", false, false
}

type tasmotaSensor struct {
	Time   json.RawMessage `json:"Time"`
	Energy json.RawMessage `json:"ENERGY"`
}

type tasmotaEnergy struct {
	Power  json.RawMessage `json:"Power"`
	Total  json.RawMessage `json:"Total"`
	Factor json.RawMessage `json:"Factor"`
}

func (t *tasmota) Decode(topic string, payload []byte, now time.Time) ([]Reading, error) {
	device, kind, ok := t.split(topic)
	if !ok {
		return nil, reject(ReasonBadTopic, "topic %q is not %s<device>/SENSOR", truncate(topic), t.base)
	}
	if kind != "SENSOR" {
		return nil, nil
	}
	if err := t.d.Limits.checkSize(payload); err != nil {
		return nil, err
	}
	var msg tasmotaSensor
	if err := json.Unmarshal(payload, &msg); err != nil {
		return nil, reject(ReasonBadJSON, "%v", err)
	}
	if !present(msg.Energy) {
		return nil, nil // a sensor without an energy monitor
	}
	var e tasmotaEnergy
	if err := json.Unmarshal(msg.Energy, &e); err != nil {
		return nil, reject(ReasonBadJSON, "ENERGY: %v", err)
	}
	if !present(e.Power) {
		return nil, nil
	}
	powers, multi, err := tasmotaValues("Power", e.Power)
	if err != nil {
		return nil, err
	}
	var totals []string
	totalsMulti := false
	if present(e.Total) {
		if totals, totalsMulti, err = tasmotaValues("Total", e.Total); err != nil {
			return nil, err
		}
	}
	// A counter is kept only when it is one a channel: a multi-channel
	// device with one Total (SetOption129 off) has no counter per channel.
	hasEnergy := len(totals) == len(powers) && totalsMulti == multi
	var factors []string
	if present(e.Factor) {
		fs, fMulti, err := tasmotaValues("Factor", e.Factor)
		if err != nil {
			return nil, err
		}
		if len(fs) == len(powers) && fMulti == multi {
			factors = fs
		}
	}

	stamp, stamped := now.UTC(), false
	if ts, ok := tasmotaTime(msg.Time); ok && saneDeviceTime(t.d.Limits, ts, now) {
		stamp, stamped = ts.UTC(), true
	}
	readings := make([]Reading, 0, len(powers))
	for i, p := range powers {
		channel := ""
		if multi {
			channel = strconv.Itoa(i + 1)
		}
		id := SubMeterID(device, channel)
		if id == "" {
			return nil, reject(ReasonBadMeterID, "device %q gives no usable meter id", truncate(device))
		}
		r := Reading{Meter: id, Time: stamp, Stamped: stamped}
		r.PowerW, _ = strconv.ParseFloat(p, 64) // checked by tasmotaValues
		if hasEnergy {
			r.EnergyWh, r.HasEnergy = kilo(totals[i]), true
		}
		if factors != nil {
			r.PowerFactor, _ = strconv.ParseFloat(factors[i], 64) // checked by tasmotaValues
			r.HasPF = true
		}
		if err := t.d.Validate(r, now); err != nil {
			return nil, err
		}
		readings = append(readings, r)
	}
	return readings, nil
}

// tasmotaValues returns the numbers of an ENERGY field, a JSON number or an
// array of them (one a channel), as checked decimal text; multi is true for
// an array.
func tasmotaValues(field string, raw json.RawMessage) (values []string, multi bool, err error) {
	if raw[0] != '[' {
		if _, err := jsonNumber(field, raw); err != nil {
			return nil, false, err
		}
		return []string{string(raw)}, false, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, true, reject(ReasonBadJSON, "%s: %v", field, err)
	}
	values = make([]string, len(items))
	for i, item := range items {
		if _, err := jsonNumber(field, item); err != nil {
			return nil, true, err
		}
		values[i] = string(item)
	}
	return values, true, nil
}

// tasmotaTime parses Tasmota's Time when it carries an offset (SetOption52).
func tasmotaTime(raw json.RawMessage) (time.Time, bool) {
	var s string
	if !present(raw) || json.Unmarshal(raw, &s) != nil {
		return time.Time{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	return ts, err == nil
}

// saneDeviceTime reports whether a device timestamp passes the clock checks
// of Validate at now. Sources use it to fall back to the receive time for a
// device whose clock is unset or skewed, rather than reject its readings.
func saneDeviceTime(l Limits, ts, now time.Time) bool {
	return !ts.Before(Oldest) && !ts.After(now.Add(l.MaxFuture))
}
