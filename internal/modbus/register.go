// Package modbus polls electricity meters over Modbus (TCP, RTU on a
// serial line, RTU over TCP) and turns their registers into readings: a
// total and, for a three-phase meter, one per phase. It knows the register
// maps of the meters people buy (profiles) and reads any other from a list
// of registers. It knows nothing of MQTT, storage or HTTP: readings leave
// through a callback, into the same pipeline as an MQTT reading's.
package modbus

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Function is the Modbus function a register is read with.
type Function string

// The functions.
const (
	Holding Function = "holding" // read holding registers, 0x03
	Input   Function = "input"   // read input registers, 0x04
)

// Type is how a value is encoded in its registers.
type Type string

// The types.
const (
	Int16   Type = "int16"
	Uint16  Type = "uint16"
	Int32   Type = "int32"
	Uint32  Type = "uint32"
	Int64   Type = "int64"
	Uint64  Type = "uint64"
	Float32 Type = "float32"
	Float64 Type = "float64"
)

// Words returns how many 16-bit registers a value of t takes, 0 for no
// type.
func (t Type) Words() int {
	switch t {
	case Int16, Uint16:
		return 1
	case Int32, Uint32, Float32:
		return 2
	case Int64, Uint64, Float64:
		return 4
	}
	return 0
}

// Order is the order of a value's words (of a value of more than one
// register) or of the bytes within each word.
type Order string

// The orders. Modbus itself is big-endian (high first) within a word;
// meters differ in the order of a long value's words.
const (
	HighFirst Order = "high_first" // big-endian
	LowFirst  Order = "low_first"  // little-endian
)

// Quantity is what a register measures, and so where its value goes.
type Quantity string

// The quantities, in SI units once scaled.
const (
	PowerW      Quantity = "power_w"      // active power, W; negative is export
	ImportWh    Quantity = "import_wh"    // active energy drawn, Wh, cumulative
	ExportWh    Quantity = "export_wh"    // active energy sent, Wh, cumulative
	VoltageV    Quantity = "voltage_v"    // line to neutral, V
	CurrentA    Quantity = "current_a"    // A
	PowerFactor Quantity = "power_factor" // -1 to 1
	FrequencyHz Quantity = "frequency_hz" // Hz
)

var quantities = []Quantity{PowerW, ImportWh, ExportWh, VoltageV, CurrentA, PowerFactor, FrequencyHz}

// Phase names the phase a register is of: "" for the total (or a
// single-phase meter), L1, L2 or L3.
type Phase string

// The phases.
const (
	Total Phase = ""
	L1    Phase = "L1"
	L2    Phase = "L2"
	L3    Phase = "L3"
)

// Phases are a three-phase meter's phases.
var Phases = []Phase{L1, L2, L3}

// Register is one value a meter gives.
type Register struct {
	Function Function `yaml:"function" json:"function"`
	// Address is the first register's address as sent on the wire
	// (0-based: a manual's register 30001 or 40001 is address 0).
	Address uint16 `yaml:"address" json:"address"`
	Type    Type   `yaml:"type" json:"type"`
	// WordOrder is the order of a long value's registers; ByteOrder the
	// order of the bytes within each. Both default to high first.
	WordOrder Order `yaml:"word_order,omitempty" json:"word_order,omitempty"`
	ByteOrder Order `yaml:"byte_order,omitempty" json:"byte_order,omitempty"`
	// Scale multiplies the value read into Quantity's unit (0.1 for a
	// value in tenths of a volt, 1000 for kW or kWh); 0 is 1.
	Scale    float64  `yaml:"scale,omitempty" json:"scale,omitempty"`
	Quantity Quantity `yaml:"quantity" json:"quantity"`
	Phase    Phase    `yaml:"phase,omitempty" json:"phase,omitempty"`
}

// MaxScale bounds a register's scale (1e6 turns MWh into Wh).
const MaxScale = 1e6

// maxAddress keeps a register's last word within Modbus's 65536.
const maxAddress = 0xFFFF

// Check says what is wrong with r, nil when nothing is.
func (r Register) Check() error {
	switch r.Function {
	case Holding, Input:
	default:
		return problemf("function %q: use holding or input", r.Function)
	}
	if r.Type.Words() == 0 {
		return problemf("type %q: use int16, uint16, int32, uint32, int64, uint64, float32 or float64", r.Type)
	}
	if int(r.Address)+r.Type.Words()-1 > maxAddress {
		return problemf("address %d: a %s there runs past register 65535", r.Address, r.Type)
	}
	for name, o := range map[string]Order{"word_order": r.WordOrder, "byte_order": r.ByteOrder} {
		if o != "" && o != HighFirst && o != LowFirst {
			return problemf("%s %q: use high_first or low_first", name, o)
		}
	}
	if math.IsNaN(r.Scale) || r.Scale < 0 || r.Scale > MaxScale {
		return problemf("scale %v: use a positive number up to %g (1000 for kW or kWh), or leave it out for 1", r.Scale, MaxScale)
	}
	known := false
	for _, q := range quantities {
		known = known || q == r.Quantity
	}
	if !known {
		return problemf("quantity %q: use one of %s", r.Quantity, strings.Join(quantityNames(), ", "))
	}
	switch r.Phase {
	case Total, L1, L2, L3:
	default:
		return problemf("phase %q: use L1, L2 or L3, or leave it out for the total", r.Phase)
	}
	if r.Phase != Total && (r.Quantity == ImportWh || r.Quantity == ExportWh || r.Quantity == FrequencyHz) {
		return problemf("%s is read for the meter, not per phase", r.Quantity)
	}
	return nil
}

func quantityNames() []string {
	names := make([]string, len(quantities))
	for i, q := range quantities {
		names[i] = string(q)
	}
	return names
}

// Decode returns the value of r in raw, its registers as read (2 bytes
// each, in the order of their addresses), scaled. It fails only when raw
// is not r's length; a value that is not finite (a float's NaN, which
// meters give for a value they do not measure) is returned as it is, for
// the reading's validation to refuse.
func (r Register) Decode(raw []byte) (float64, error) {
	v, _, err := r.decode(raw)
	return v, err
}

// decode is Decode, and whether the value is one that meters give for
// "not available": an unsigned integer with all its bits set, or a signed
// one at its largest (ABB's export on an import-only model, a power factor
// not measured).
func (r Register) decode(raw []byte) (v float64, missing bool, err error) {
	n := r.Type.Words()
	if n == 0 || len(raw) != 2*n {
		return 0, false, fmt.Errorf("%d bytes for a %s, want %d", len(raw), r.Type, 2*n)
	}
	// Put the words in big-endian order, high word first.
	var b [8]byte
	for i := range n {
		w := raw[2*i : 2*i+2]
		j := i
		if r.WordOrder == LowFirst {
			j = n - 1 - i
		}
		if r.ByteOrder == LowFirst {
			b[2*j], b[2*j+1] = w[1], w[0]
		} else {
			b[2*j], b[2*j+1] = w[0], w[1]
		}
	}
	switch r.Type {
	case Int16:
		x := int16(binary.BigEndian.Uint16(b[:]))
		v, missing = float64(x), x == math.MaxInt16
	case Uint16:
		x := binary.BigEndian.Uint16(b[:])
		v, missing = float64(x), x == math.MaxUint16
	case Int32:
		x := int32(binary.BigEndian.Uint32(b[:]))
		v, missing = float64(x), x == math.MaxInt32
	case Uint32:
		x := binary.BigEndian.Uint32(b[:])
		v, missing = float64(x), x == math.MaxUint32
	case Int64:
		x := int64(binary.BigEndian.Uint64(b[:]))
		v, missing = float64(x), x == math.MaxInt64
	case Uint64:
		x := binary.BigEndian.Uint64(b[:])
		v, missing = float64(x), x == math.MaxUint64
	case Float32:
		v = float64(math.Float32frombits(binary.BigEndian.Uint32(b[:])))
	case Float64:
		v = math.Float64frombits(binary.BigEndian.Uint64(b[:]))
	}
	if r.Scale != 0 {
		v *= r.Scale
	}
	return v, missing, nil
}
