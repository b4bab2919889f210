package meter

import (
	"strings"
	"time"
)

// Source decodes the publishes of one family of devices (the plain energy
// topic, Tasmota, Shelly, ...) into readings. The meter id comes from the
// topic, units are converted on the way in, and every reading it returns
// has passed Validate. A Source is safe for concurrent use. Most are
// stateless; the few that join separate publishes of a meter (Shelly's
// counters, counter-only inputs) remember a little of each meter, for at
// most 10000 meters, and so want its publishes in the order received.
type Source interface {
	// Name names the family in logs, metrics and the meter registry:
	// "vatio", "tasmota", "shelly", "emonhub", "zigbee2mqtt", "dsmr".
	Name() string
	// Match reports, cheaply, whether topic belongs to this family. A
	// matching topic may still carry no reading (a status message): Decode
	// then returns no readings and no error.
	Match(topic string) bool
	// Decode returns the readings of one publish received at now: none for
	// a message that carries no power (ignored, not rejected), several for a
	// multi-channel device (one meter per channel). Errors are *RejectError.
	Decode(topic string, payload []byte, now time.Time) ([]Reading, error)
}

// AsSource returns the decoder of the plain energy topic as a Source.
func (d *Decoder) AsSource() Source { return plainSource{d} }

// plainSource is the Source of the plain energy topic: one reading a publish.
type plainSource struct{ d *Decoder }

func (p plainSource) Name() string                         { return "vatio" }
func (p plainSource) MeterID(topic string) (string, error) { return p.d.MeterID(topic) }
func (p plainSource) Match(topic string) bool              { return p.d.Match(topic) }
func (p plainSource) Decode(topic string, payload []byte, now time.Time) ([]Reading, error) {
	r, err := p.d.Decode(topic, payload, now)
	if err != nil {
		return nil, err
	}
	return []Reading{r}, nil
}

// SubMeterID joins a device id and a channel into a meter id ("plug-1:2"),
// replacing characters a meter id cannot hold with '_'. It returns "" when
// nothing usable is left.
func SubMeterID(device string, channel string) string {
	id := sanitizeID(device)
	if channel != "" {
		id += ":" + sanitizeID(channel)
	}
	if !ValidID(id) {
		return ""
	}
	return id
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == ':':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return strings.TrimLeft(b.String(), "._:-")
}

// AvailabilitySource is implemented by a Source whose devices announce
// whether they are online: Tasmota's LWT, Shelly's online topic,
// Zigbee2MQTT's availability. Such a Source's Match takes its availability
// topics too, and Decode returns no readings for them.
type AvailabilitySource interface {
	// Availability decodes a message announcing a device's availability.
	// device is the meter id of the device's meter, or, for a device with
	// several channels, what its meter ids have before the last ':' (the
	// device part of SubMeterID). ok is false when the message is not an
	// availability message or its payload is not understood.
	Availability(topic string, payload []byte) (device string, online bool, ok bool)
}
