package meter

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
)

// NewEmonhub returns the Source of OpenEnergyMonitor's emonhub MQTT output
// under prefix ("emon" when empty). Two forms are read:
//
//   - emon/<node>/<key>, a plain number: P<n> or power<n> is the power of
//     channel n in W, a reading of meter <node>:<n>. E<n> and energy<n>
//     counters (Wh) carry no power and give no reading: a stateless decoder
//     cannot join them to the power of another publish. Other keys (Vrms,
//     T1, pulse, rssi) are ignored.
//   - emon/<node>, a JSON object of the same keys: one reading per P<n> or
//     power<n>, with the counter E<n> or energy<n> of the same channel as
//     its EnergyWh, and emonhub's "time" (Unix seconds) as its time.
//
// A publish is decoded whole: one invalid channel rejects all of them.
func NewEmonhub(prefix string, limits Limits) Source {
	if prefix == "" {
		prefix = "emon"
	}
	return &emonhub{prefix: prefix, d: Decoder{Limits: limits}}
}

type emonhub struct {
	prefix string
	d      Decoder
}

func (e *emonhub) Name() string { return "emonhub" }

func (e *emonhub) Match(topic string) bool {
	return strings.HasPrefix(topic, e.prefix+"/")
}

func (e *emonhub) Decode(topic string, payload []byte, now time.Time) ([]Reading, error) {
	if !e.Match(topic) {
		return nil, reject(ReasonBadTopic, "topic %q is not below %s/", truncate(topic), e.prefix)
	}
	levels := strings.Split(topic[len(e.prefix)+1:], "/")
	if len(levels) > 2 || levels[0] == "" {
		return nil, nil // not a shape emonhub publishes
	}
	node := levels[0]
	if len(levels) == 2 {
		kind, channel := emonKey(levels[1])
		if kind != 'P' {
			return nil, nil
		}
		return e.single(node, channel, payload, now)
	}
	return e.object(node, payload, now)
}

// single decodes emon/<node>/P<n>: one number, in W.
func (e *emonhub) single(node, channel string, payload []byte, now time.Time) ([]Reading, error) {
	if err := e.d.Limits.checkSize(payload); err != nil {
		return nil, err
	}
	w, err := plainNumber(payload)
	if err != nil {
		return nil, err
	}
	id := SubMeterID(node, channel)
	if id == "" {
		return nil, reject(ReasonBadMeterID, "node %q gives no usable meter id", truncate(node))
	}
	r := Reading{Meter: id, Time: now.UTC(), PowerW: w}
	if err := e.d.Validate(r, now); err != nil {
		return nil, err
	}
	return []Reading{r}, nil
}

// object decodes emon/<node>: a JSON object of every key of the node.
func (e *emonhub) object(node string, payload []byte, now time.Time) ([]Reading, error) {
	if err := e.d.Limits.checkSize(payload); err != nil {
		return nil, err
	}
	body := bytes.TrimSpace(payload)
	if len(body) == 0 {
		return nil, reject(ReasonEmpty, "no value")
	}
	var fields map[string]json.RawMessage
	if body[0] != '{' {
		return nil, reject(ReasonBadJSON, "emon/<node> carries a JSON object, got %s", truncate(string(body)))
	}
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, reject(ReasonBadJSON, "%v", err)
	}
	power := map[string]float64{}
	energy := map[string]float64{}
	keyOf := map[string]string{} // "P1" -> the key that set it, to refuse P1 with power1
	for key, raw := range fields {
		kind, channel := emonKey(key)
		if kind == 0 || !present(raw) {
			continue
		}
		v, err := jsonNumber(key, raw)
		if err != nil {
			return nil, err
		}
		slot := string(kind) + channel
		if prev, dup := keyOf[slot]; dup {
			return nil, reject(ReasonAmbiguous, "both %q and %q are channel %s: send one", prev, key, channel)
		}
		keyOf[slot] = key
		if kind == 'P' {
			power[channel] = v
		} else {
			energy[channel] = v
		}
	}
	if len(power) == 0 {
		return nil, nil
	}
	t, stamped := now.UTC(), false
	if raw, ok := fields["time"]; ok && present(raw) {
		ts, err := parseTimestamp(raw)
		if err != nil {
			return nil, err
		}
		t, stamped = ts.UTC(), true
	}
	channels := make([]string, 0, len(power))
	for c := range power {
		channels = append(channels, c)
	}
	sort.Slice(channels, func(i, j int) bool { return emonChannelLess(channels[i], channels[j]) })
	out := make([]Reading, 0, len(channels))
	for _, c := range channels {
		id := SubMeterID(node, c)
		if id == "" {
			return nil, reject(ReasonBadMeterID, "node %q gives no usable meter id", truncate(node))
		}
		r := Reading{Meter: id, Time: t, PowerW: power[c], Stamped: stamped}
		if wh, ok := energy[c]; ok {
			r.EnergyWh, r.HasEnergy = wh, true
		}
		if err := e.d.Validate(r, now); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// emonKey classifies an emonhub key: 'P' and the channel for P<n> and
// power<n>, 'E' and the channel for E<n> and energy<n>, 0 for any other key.
// Channels are 1 to 999, written without leading zeros.
func emonKey(key string) (kind byte, channel string) {
	lower := strings.ToLower(key)
	var digits string
	switch {
	case strings.HasPrefix(lower, "power"):
		kind, digits = 'P', lower[len("power"):]
	case strings.HasPrefix(lower, "energy"):
		kind, digits = 'E', lower[len("energy"):]
	case strings.HasPrefix(lower, "p"):
		kind, digits = 'P', lower[1:]
	case strings.HasPrefix(lower, "e"):
		kind, digits = 'E', lower[1:]
	default:
		return 0, ""
	}
	if len(digits) == 0 || len(digits) > 3 || strings.Trim(digits, "0123456789") != "" {
		return 0, ""
	}
	n, _ := strconv.Atoi(digits)
	if n < 1 {
		return 0, ""
	}
	return kind, strconv.Itoa(n)
}

func emonChannelLess(a, b string) bool {
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return x < y
}
