package modbus

import (
	"encoding/binary"
	"math"
	"testing"
)

var (
	fuzzTypes  = []Type{Int16, Uint16, Int32, Uint32, Int64, Uint64, Float32, Float64}
	fuzzOrders = []Order{HighFirst, LowFirst}
)

// FuzzDecode decodes any bytes as any register: it never panics, refuses
// only a length that is not the type's, and a float32 or int32 read high
// word first, big-endian, is what encoding/binary makes of the bytes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x43, 0x66, 0x19, 0x9a}, uint8(6), uint8(0), uint8(0), 1.0)
	f.Add([]byte{0xff, 0xff}, uint8(1), uint8(1), uint8(1), 0.1)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0xf0, 0x7f}, uint8(7), uint8(1), uint8(1), 1000.0)
	f.Fuzz(func(t *testing.T, raw []byte, typ, wo, bo uint8, scale float64) {
		r := Register{Function: Input, Type: fuzzTypes[int(typ)%len(fuzzTypes)], WordOrder: fuzzOrders[wo%2],
			ByteOrder: fuzzOrders[bo%2], Scale: scale, Quantity: PowerW}
		v, err := r.Decode(raw)
		if (err != nil) != (len(raw) != 2*r.Type.Words()) {
			t.Fatalf("%s of %d bytes: %v", r.Type, len(raw), err)
		}
		if err != nil || r.WordOrder != HighFirst || r.ByteOrder != HighFirst || scale != 1 {
			return
		}
		switch r.Type {
		case Float32:
			want := float64(math.Float32frombits(binary.BigEndian.Uint32(raw)))
			if v != want && !(math.IsNaN(v) && math.IsNaN(want)) {
				t.Fatalf("float32 % x = %v, want %v", raw, v, want)
			}
		case Int32:
			if want := float64(int32(binary.BigEndian.Uint32(raw))); v != want {
				t.Fatalf("int32 % x = %v, want %v", raw, v, want)
			}
		}
	})
}

// FuzzRequest decodes any answer of any length for a profile's requests:
// an answer of the wrong length is refused, none panics.
func FuzzRequest(f *testing.F) {
	f.Add(uint8(0), []byte{1, 2, 3, 4})
	f.Add(uint8(3), make([]byte, 22))
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		names := ProfileNames()
		p := Profiles[names[int(which)%len(names)]]
		for _, req := range plan(p.Registers, gap, p.MaxWords) {
			err := req.decode(raw, Values{})
			if (err != nil) != (len(raw) != 2*int(req.words)) {
				t.Fatalf("a request of %d registers, an answer of %d bytes: %v", req.words, len(raw), err)
			}
		}
	})
}
