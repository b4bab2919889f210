package store

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// pfAgg is one meter's power factor statistics over one day.
type pfAgg struct{ sumW, sumWPF, n float64 }

func pfKey(meterID string, ns int64) []byte {
	day := TierDay.start(ns)
	k := append([]byte(meterID), 0)
	return binary.BigEndian.AppendUint64(k, uint64(day))
}

// notePF adds reading r's power factor to the commit's statistics.
func notePF(pfs map[string]pfAgg, r meter.Reading) {
	if !r.HasPF {
		return
	}
	k := string(pfKey(r.Meter, r.Time.UnixNano()))
	a := pfs[k]
	w := math.Abs(r.PowerW)
	a.sumW += w
	a.sumWPF += w * math.Abs(r.PowerFactor)
	a.n++
	pfs[k] = a
}

// PowerFactorStats summarises a meter's power factor over some days.
type PowerFactorStats struct {
	// Mean is the power factor weighted by power (as the energy sees it);
	// Readings counts the readings that carried one, over Days days.
	Mean     float64
	Readings int
	Days     int
}

// PowerFactor returns meter id's power factor statistics of the UTC days
// from the one holding from to the one before to. A meter whose readings
// never carried a power factor has Readings 0.
func (s *Store) PowerFactor(id string, from, to time.Time) (PowerFactorStats, error) {
	return s.eng.powerFactor(id, from, to)
}
