package meter

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// NewZigbee2MQTT returns the Source of Zigbee2MQTT device state under prefix
// ("zigbee2mqtt" when empty). The topic <prefix>/<friendly name> carries a
// JSON object; its "power" (W) gives a reading of the meter named after the
// friendly name ('/', spaces and other characters a meter id cannot hold
// become '_'), its "energy" (kWh) the reading's counter. A device state
// without "power", or with "power": null, gives no reading and no error.
// Bridge topics (<prefix>/bridge/...), the command topics .../set and .../get
// and .../availability carry no readings. An empty payload, which clears a
// retained state, gives no reading. Readings are stamped on receipt:
// Zigbee2MQTT republishes cached values, so "last_seen" does not date the
// power. Multi-endpoint fields (power_l1, power_left) are not read.
//
// The Source is an AvailabilitySource: <prefix>/<friendly name>/availability
// announces the device whose meter is named after the friendly name. As the
// topic also reads as the state of a device whose friendly name ends in
// "/availability", such a device gives no readings.
func NewZigbee2MQTT(prefix string, limits Limits) Source {
	if prefix == "" {
		prefix = "zigbee2mqtt"
	}
	return &zigbee2mqtt{prefix: prefix, d: Decoder{Limits: limits}}
}

type zigbee2mqtt struct {
	prefix string
	d      Decoder
}

func (z *zigbee2mqtt) Name() string { return "zigbee2mqtt" }

func (z *zigbee2mqtt) Match(topic string) bool {
	return strings.HasPrefix(topic, z.prefix+"/")
}

type z2mState struct {
	Power  json.RawMessage `json:"power"`
	Energy json.RawMessage `json:"energy"`
}

func (z *zigbee2mqtt) Decode(topic string, payload []byte, now time.Time) ([]Reading, error) {
	if !z.Match(topic) {
		return nil, reject(ReasonBadTopic, "topic %q is not below %s/", truncate(topic), z.prefix)
	}
	name := topic[len(z.prefix)+1:]
	if !z2mDeviceTopic(name) {
		return nil, nil
	}
	if err := z.d.Limits.checkSize(payload); err != nil {
		return nil, err
	}
	body := bytes.TrimSpace(payload)
	if len(body) == 0 {
		return nil, nil
	}
	if body[0] != '{' {
		return nil, reject(ReasonBadJSON, "device state is a JSON object, got %s", truncate(string(body)))
	}
	var s z2mState
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, reject(ReasonBadJSON, "%v", err)
	}
	if !present(s.Power) {
		return nil, nil
	}
	w, err := jsonNumber("power", s.Power)
	if err != nil {
		return nil, err
	}
	id := z2mMeterID(name)
	if id == "" {
		return nil, reject(ReasonBadMeterID, "friendly name %q gives no usable meter id of at most %d characters", truncate(name), MaxIDLength)
	}
	r := Reading{Meter: id, Time: now.UTC(), PowerW: w}
	if present(s.Energy) {
		if _, err := jsonNumber("energy", s.Energy); err != nil {
			return nil, err
		}
		r.EnergyWh, r.HasEnergy = kilo(string(s.Energy)), true
	}
	if err := z.d.Validate(r, now); err != nil {
		return nil, err
	}
	return []Reading{r}, nil
}

// Availability decodes <prefix>/<friendly name>/availability: a JSON
// object whose "state" is "online" or "offline", or, with Zigbee2MQTT's
// legacy availability payload, the bare word. device is the meter id of the
// device's readings.
func (z *zigbee2mqtt) Availability(topic string, payload []byte) (device string, online bool, ok bool) {
	rest, ok := strings.CutPrefix(topic, z.prefix+"/")
	if !ok || z.d.Limits.checkSize(payload) != nil {
		return "", false, false
	}
	name, ok := strings.CutSuffix(rest, "/availability")
	if !ok || !z2mDeviceTopic(name) {
		return "", false, false
	}
	if device = z2mMeterID(name); device == "" {
		return "", false, false
	}
	word := string(bytes.TrimSpace(payload))
	if strings.HasPrefix(word, "{") {
		var a struct {
			State string `json:"state"`
		}
		if json.Unmarshal(payload, &a) != nil {
			return "", false, false
		}
		word = a.State
	}
	switch word {
	case "online":
		return device, true, true
	case "offline":
		return device, false, true
	}
	return "", false, false
}

// z2mMeterID returns the meter id of the device of friendly name name, or
// "" when it gives none.
func z2mMeterID(name string) string {
	return SubMeterID(strings.ReplaceAll(name, "/", "_"), "")
}

// z2mDeviceTopic reports whether name, the topic below the prefix, is the
// state of a device rather than a bridge, command or availability topic.
func z2mDeviceTopic(name string) bool {
	levels := strings.Split(name, "/")
	if levels[0] == "" || levels[0] == "bridge" {
		return false
	}
	for _, l := range levels[1:] {
		if l == "set" || l == "get" {
			return false
		}
	}
	return levels[len(levels)-1] != "availability"
}
