package store

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/vatio-energy/vatio/internal/meter"
)

// Meter states are encoded in one of three versions: 1 (without
// ArchivedNs), 2 (with it), and 3, written since schema 2, with every field.
const (
	meterStateSize   = 1 + 7*8 + 1
	meterStateSizeV2 = meterStateSize + 8
	meterStateSizeV3 = meterStateSizeV2 + 6*8
)

func (m meterState) encode() []byte {
	b := make([]byte, 1, meterStateSizeV3)
	b[0] = 3 // encoding version
	b = binary.BigEndian.AppendUint64(b, uint64(m.FirstNs))
	b = binary.BigEndian.AppendUint64(b, uint64(m.LastNs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.LastW))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.LastWh))
	b = binary.BigEndian.AppendUint64(b, uint64(m.SeenNs))
	b = binary.BigEndian.AppendUint64(b, m.Readings)
	b = binary.BigEndian.AppendUint64(b, uint64(m.CompactedNs))
	if m.LastHasWh {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.ArchivedNs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.RefWh))
	b = binary.BigEndian.AppendUint64(b, uint64(m.RefNs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.PendWh))
	b = binary.BigEndian.AppendUint64(b, uint64(m.PendNs))
	b = binary.BigEndian.AppendUint64(b, m.PendN)
	b = binary.BigEndian.AppendUint64(b, uint64(m.IntervalNs))
	return b
}

func decodeMeterState(b []byte) (meterState, error) {
	ok := len(b) > 0 && (len(b) == meterStateSize && b[0] == 1 ||
		len(b) == meterStateSizeV2 && b[0] == 2 || len(b) == meterStateSizeV3 && b[0] == 3)
	if !ok {
		return meterState{}, fmt.Errorf("bad meter state (%d bytes)", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	st := meterState{
		FirstNs: int64(u(0)), LastNs: int64(u(1)), LastW: math.Float64frombits(u(2)),
		LastWh: math.Float64frombits(u(3)), SeenNs: int64(u(4)), Readings: u(5), CompactedNs: int64(u(6)),
		LastHasWh: b[meterStateSize-1] == 1,
	}
	if b[0] >= 2 {
		st.ArchivedNs = int64(binary.BigEndian.Uint64(b[meterStateSize:]))
	}
	if b[0] == 3 {
		v := func(i int) uint64 { return binary.BigEndian.Uint64(b[meterStateSizeV2+8*i:]) }
		st.RefWh, st.RefNs = math.Float64frombits(v(0)), int64(v(1))
		st.PendWh, st.PendNs, st.PendN = math.Float64frombits(v(2)), int64(v(3)), v(4)
		st.IntervalNs = int64(v(5))
	}
	if b[0] < 3 && st.LastHasWh && st.LastWh != 0 {
		st.RefWh, st.RefNs = st.LastWh, st.LastNs // an older state: its newest counter
	}
	return st, nil
}

// A stored reading's key is its Unix time in nanoseconds, big-endian, so keys
// sort by time and new readings append. Its value is the reading's id and its
// power in watts, then its energy counter in Wh when it has one.
const valueSize = 16

func timeKey(ns int64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(ns)) }

func encodeValue(id uint64, r meter.Reading) []byte {
	b := make([]byte, 0, valueSize+8)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.PowerW))
	if r.HasEnergy {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.EnergyWh))
	}
	return b
}

// value is a decoded stored value.
type value struct {
	id        uint64
	powerW    float64
	energyWh  float64
	hasEnergy bool
}

func decodeValue(v []byte) (value, bool) {
	if len(v) != valueSize && len(v) != valueSize+8 {
		return value{}, false
	}
	out := value{id: binary.BigEndian.Uint64(v), powerW: math.Float64frombits(binary.BigEndian.Uint64(v[8:]))}
	if len(v) == valueSize+8 {
		out.energyWh, out.hasEnergy = math.Float64frombits(binary.BigEndian.Uint64(v[16:])), true
	}
	return out, true
}

func keyNs(k []byte) int64 {
	if len(k) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(k))
}
