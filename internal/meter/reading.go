// Package meter describes what a meter reports and turns MQTT payloads into
// validated readings. It knows nothing of brokers, storage or HTTP: every other
// package depends on it, it depends on none of them.
package meter

import (
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"time"
)

// DefaultID is the meter id of readings published on the bare ingest topic
// (energy/consumption), the topic of the original design.
const DefaultID = "default"

// MaxIDLength is the longest meter id accepted, in bytes.
const MaxIDLength = 64

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// ValidID reports whether id can name a meter: 1 to 64 letters, digits,
// '.', '_', ':' or '-', starting with a letter or digit. Such ids are safe in
// URLs, file names and MQTT topics.
func ValidID(id string) bool {
	return len(id) > 0 && len(id) <= MaxIDLength && idPattern.MatchString(id)
}

// Reading is one validated power measurement of one meter.
type Reading struct {
	// Meter is the id of the meter that measured it (see ValidID).
	Meter string
	// Time is when the power was measured: the device's timestamp when it
	// sent one, otherwise when Vatio received the reading.
	Time time.Time
	// PowerW is the active power in watts; negative is export to the grid.
	PowerW float64
	// EnergyWh is the device's cumulative energy counter in watt-hours, when
	// HasEnergy is set. Where a meter sends one, energy is taken from the
	// counter rather than integrated from power; a decrease is a counter
	// reset.
	EnergyWh  float64
	HasEnergy bool
	// Stamped is true when Time came from the device. A device-stamped
	// reading sent twice (an MQTT resend) is stored once; a reading stamped
	// on receipt is always stored as a new reading.
	Stamped bool
	// Source names the device family that sent the reading (see
	// Source.Name), or "import"; the meter registry records the first.
	Source string
	// PowerFactor is the power factor (-1 to 1) when HasPF: industrial
	// meters and some plugs send it. It is kept as statistics per meter and
	// day, not with each reading.
	PowerFactor float64
	HasPF       bool
	// Delivery is the message a reading stamped on receipt came in, when
	// it came in one at QoS 1 or 2 (see Delivery).
	Delivery Delivery
}

// String returns a short human form of r, for logs.
func (r Reading) String() string {
	return fmt.Sprintf("%s %.3f W at %s", r.Meter, r.PowerW, r.Time.UTC().Format(time.RFC3339Nano))
}

// Delivery identifies the MQTT message a reading came in, so that a resend
// of a message already stored (a broker's or a client's redelivery, with
// the DUP flag) is recognised although the reading carries no time of its
// own: stamped on receipt, a resend would otherwise be a new reading.
type Delivery struct {
	// Key names the message: a hash of its session's client id, its
	// packet id, topic and payload; 0 for none (QoS 0, an import).
	Key uint64
	// Dup is the message's DUP flag: the sender says it may have sent it
	// before.
	Dup bool
}

// NewDelivery returns the Delivery of a QoS 1 or 2 message with packetID
// in the session of clientID (none for packet id 0).
func NewDelivery(clientID string, packetID uint16, topic string, payload []byte, dup bool) Delivery {
	if packetID == 0 {
		return Delivery{}
	}
	h := fnv.New64a()
	h.Write([]byte(clientID))
	h.Write([]byte{0, byte(packetID >> 8), byte(packetID)})
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	return Delivery{Key: max(h.Sum64(), 1), Dup: dup}
}

// Part returns the Delivery of the i-th reading of d's message: the
// message's for the first, and a key of its own for each other.
func (d Delivery) Part(i int) Delivery {
	if i == 0 || d.Key == 0 {
		return d
	}
	k := d.Key ^ (uint64(i) * 0x9e3779b97f4a7c15) // a reading's index, spread over the bits
	d.Key = max(k, 1)
	return d
}

// Imbalance is three phases' imbalance: the largest deviation of one from
// their mean, in percent of the mean (NEMA's definition), of their
// magnitudes; 0 when they are all 0.
func Imbalance(l1, l2, l3 float64) float64 {
	a, b, c := math.Abs(l1), math.Abs(l2), math.Abs(l3)
	mean := (a + b + c) / 3
	if mean == 0 {
		return 0
	}
	return 100 * max(math.Abs(a-mean), math.Abs(b-mean), math.Abs(c-mean)) / mean
}
