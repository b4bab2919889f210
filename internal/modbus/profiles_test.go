package modbus

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/vatio-energy/vatio/internal/testutil/modbustest"
)

// trueValue is the value, in SI units, a test meter measures of q on
// phase ph.
func trueValue(q Quantity, ph Phase) float64 {
	i := float64(slices.Index(Phases, ph) + 1) // 0 for the total
	switch q {
	case VoltageV:
		return 229.5 + i
	case CurrentA:
		return 4.125 * i
	case PowerW:
		if ph == Total {
			return 2250.5
		}
		return []float64{1000.5, 1500.5, -250.5}[int(i)-1]
	case PowerFactor:
		return 0.95 - 0.01*i
	case FrequencyHz:
		return 50.02
	case ImportWh:
		return 123456.7e3
	case ExportWh:
		return 789.1e3
	}
	return 0
}

// served returns what a meter of r's encoding serves to say x, and what
// Vatio should read back: x as the register's type and scale hold it.
func served(r Register, x float64) (raw, read float64) {
	scale := r.Scale
	if scale == 0 {
		scale = 1
	}
	raw = x / scale
	switch r.Type {
	case Float32:
		raw = float64(float32(raw))
	case Float64:
	default:
		raw = math.Round(raw)
	}
	return raw, raw * scale
}

// TestProfiles serves every profile's registers (through pymodbus, which
// encodes them itself) with a known three-phase state, each profile a
// unit behind one gateway, and reads every value back.
func TestProfiles(t *testing.T) {
	units := map[int][]modbustest.Value{}
	var devices []Device
	want := map[string]Values{}
	for i, name := range ProfileNames() {
		p := Profiles[name]
		unit := i + 1
		w := Values{}
		for _, r := range p.Registers {
			x := trueValue(r.Quantity, r.Phase)
			if p.Phases == 1 && r.Phase == Total && r.Quantity == PowerW {
				x = trueValue(PowerW, L1)
			}
			raw, read := served(r, x)
			units[unit] = append(units[unit], modbustest.Value{Function: string(r.Function), Address: r.Address, Type: string(r.Type), WordOrder: string(r.WordOrder), ByteOrder: string(r.ByteOrder), Value: raw})
			w.set(r.Phase, r.Quantity, read)
		}
		want[name] = w
		devices = append(devices, tcpDevice(name, "", uint8(unit), name))
	}
	s := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, units)
	for i := range devices {
		devices[i].URL = "tcp://" + s.Addr
	}
	p, c := run(t, devices...)
	for _, name := range ProfileNames() {
		c.wait(t, name, 1, 1)
	}
	for _, st := range p.Status() {
		w := want[st.Name]
		if fmt.Sprint(st.Values) != fmt.Sprint(w) {
			t.Errorf("%s read %v, want %v", st.Name, st.Values, w)
		}
		if prof := Profiles[st.Name]; prof.Document == "" || prof.Model == "" || prof.Phases != 1 && prof.Phases != 3 {
			t.Errorf("%s: model %q, document %q, %d phases", st.Name, prof.Model, prof.Document, prof.Phases)
		}
	}
	if len(want) < 9 {
		t.Errorf("%d profiles, want at least the 9 of the issue's meters", len(want))
	}
	// A profile's requests stay within what its meter answers.
	for name, prof := range Profiles {
		for _, gap := range []int{gap, 0} {
			for _, r := range plan(prof.Registers, gap, prof.MaxWords) {
				if prof.MaxWords > 0 && int(r.words) > prof.MaxWords {
					t.Errorf("%s: a request of %d registers, the meter answers %d", name, r.words, prof.MaxWords)
				}
			}
		}
		for i, r := range prof.Registers {
			if err := r.Check(); err != nil {
				t.Errorf("%s: registers[%d]: %v", name, i, err)
			}
		}
	}
}

// TestNotAvailable: an integer register at its "not available" value
// (all bits set, or the largest signed value) is left out, not read as a
// huge number.
func TestNotAvailable(t *testing.T) {
	for _, tc := range []struct {
		typ Type
		raw []byte
	}{
		{Uint64, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		{Int16, []byte{0x7F, 0xFF}},
		{Uint32, []byte{0xFF, 0xFF, 0xFF, 0xFF}},
		{Int32, []byte{0x7F, 0xFF, 0xFF, 0xFF}},
	} {
		req := request{function: Holding, address: 0, words: uint16(tc.typ.Words()), regs: []Register{{Function: Holding, Type: tc.typ, Quantity: ExportWh}}}
		v := Values{}
		if err := req.decode(tc.raw, v); err != nil || len(v) != 0 {
			t.Errorf("%s % x: %v, %v; want nothing read", tc.typ, tc.raw, v, err)
		}
	}
}
