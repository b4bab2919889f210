package store

import (
	"cmp"
	"iter"
	"math"
	"slices"
	"strings"
	"time"
)

// Tier is a resolution of stored data: raw readings or one of the rollups.
type Tier int

// The tiers, finest first.
const (
	TierRaw Tier = iota
	TierMinute
	TierHour
	TierDay
)

// Tiers lists the rollup tiers, finest first.
var Tiers = []Tier{TierMinute, TierHour, TierDay}

// String returns the tier's name as the API spells it: raw, 1m, 1h, 1d.
func (t Tier) String() string {
	return [...]string{"raw", "1m", "1h", "1d"}[t]
}

// Step returns the length of a tier's buckets (0 for raw).
func (t Tier) Step() time.Duration {
	return [...]time.Duration{0, time.Minute, time.Hour, 24 * time.Hour}[t]
}

// ParseTier parses raw, 1m, 1h or 1d.
func ParseTier(s string) (Tier, bool) {
	for t := TierRaw; t <= TierDay; t++ {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

// stepNs is the tier's bucket length in nanoseconds.
func (t Tier) stepNs() int64 { return int64(t.Step()) }

// start returns the start of the tier's bucket holding ns (UTC buckets).
func (t Tier) start(ns int64) int64 {
	step := t.stepNs()
	s := ns - ns%step
	if ns%step < 0 {
		s -= step
	}
	return s
}

// Bucket is the aggregate of one meter over one rollup bucket.
type Bucket struct {
	// Start is the bucket's start; it lasts the tier's Step.
	Start time.Time
	// N counts the readings in the bucket.
	N uint64
	// MeanW, MinW and MaxW summarise the readings' power, in watts.
	MeanW, MinW, MaxW float64
	// EnergyWh is the energy drawn from the grid during the bucket and
	// ExportWh the energy sent to it, in watt-hours: integrated from power
	// (trapezoids, never across a gap longer than the store's MaxGap) or,
	// where the meter sends an energy counter, taken from the counter.
	EnergyWh, ExportWh float64
}

// PowerW returns the power to draw for the bucket, which lasts step, in
// watts, and whether there is one. With readings in it, their mean (MeanW).
// Without, the energy spread over it divided by step: energy reaches a
// minute without a reading only from an interval between two readings on
// either side, so the interval covers the whole minute and this is its
// mean power (imported 15-minute or hourly energy, or a meter reporting
// less often than each minute). With neither, the meter was silent and
// the bucket is a gap, not 0 W.
func (b Bucket) PowerW(step time.Duration) (float64, bool) {
	if b.N > 0 {
		return b.MeanW, true
	}
	if (b.EnergyWh == 0 && b.ExportWh == 0) || step <= 0 {
		return 0, false
	}
	return (b.EnergyWh - b.ExportWh) / step.Hours(), true
}

// agg is a bucket's stored aggregate.
type agg struct {
	N                uint64
	SumW, MinW, MaxW float64
	InWh, OutWh      float64
}

func (a *agg) addPower(w float64) {
	if a.N == 0 || w < a.MinW {
		a.MinW = w
	}
	if a.N == 0 || w > a.MaxW {
		a.MaxW = w
	}
	a.N++
	a.SumW += w
}

func (a *agg) merge(b agg) {
	if b.N > 0 {
		if a.N == 0 || b.MinW < a.MinW {
			a.MinW = b.MinW
		}
		if a.N == 0 || b.MaxW > a.MaxW {
			a.MaxW = b.MaxW
		}
	}
	a.N += b.N
	a.SumW += b.SumW
	a.InWh += b.InWh
	a.OutWh += b.OutWh
}

func (a agg) bucket(start int64) Bucket {
	b := Bucket{Start: time.Unix(0, start).UTC(), N: a.N, MinW: a.MinW, MaxW: a.MaxW, EnergyWh: a.InWh, ExportWh: a.OutWh}
	if a.N > 0 {
		b.MeanW = a.SumW / float64(a.N)
	}
	return b
}

// sample is what energy integration needs of a reading.
type sample struct {
	ns        int64
	w         float64
	wh        float64
	hasEnergy bool
}

// nsPerHour converts W·ns to Wh.
const nsPerHour = float64(time.Hour)

// integrate spreads the energy of the interval between consecutive readings
// a and b over the minute buckets it covers, calling fn(minuteStart, inWh,
// outWh) for each piece.
//
// With an energy counter on both readings, the counter's increase is the
// energy (a decrease is a reset: the new value counts from zero); it is
// spread over the interval in proportion to time, or, across a gap longer
// than maxGap, given to b's minute, when it was observed. Without counters,
// power is integrated by trapezoids, with power interpolated linearly at the
// minute boundaries, and nothing is integrated across a gap longer than
// maxGap: the meter was silent and nobody knows what it drew.
func integrate(a, b sample, maxGap int64, fn func(minute int64, inWh, outWh float64)) {
	dt := b.ns - a.ns
	if dt <= 0 {
		return
	}
	if a.hasEnergy && b.hasEnergy {
		e := b.wh - a.wh
		if e < 0 {
			e = b.wh
		}
		if e == 0 {
			return
		}
		if dt > maxGap {
			fn(TierMinute.start(b.ns), e, 0)
			return
		}
		forMinutes(a.ns, b.ns, func(m, t0, t1 int64) {
			fn(m, e*float64(t1-t0)/float64(dt), 0)
		})
		return
	}
	if dt > maxGap {
		return
	}
	slope := (b.w - a.w) / float64(dt)
	forMinutes(a.ns, b.ns, func(m, t0, t1 int64) {
		w0 := a.w + slope*float64(t0-a.ns)
		w1 := a.w + slope*float64(t1-a.ns)
		in, out := trapezoid(w0, w1, float64(t1-t0))
		fn(m, in, out)
	})
}

// forMinutes splits [from, to) at minute boundaries.
func forMinutes(from, to int64, fn func(minute, t0, t1 int64)) {
	step := TierMinute.stepNs()
	for t0 := from; t0 < to; {
		m := TierMinute.start(t0)
		t1 := min(m+step, to)
		fn(m, t0, t1)
		t0 = t1
	}
}

// trapezoid returns the energy drawn (in) and exported (out), in Wh, of a
// power moving linearly from w0 to w1 over dt nanoseconds, splitting the
// area where the power crosses zero.
func trapezoid(w0, w1, dt float64) (in, out float64) {
	area := func(x, y, d float64) float64 { return (x + y) / 2 * d / nsPerHour }
	switch {
	case w0 >= 0 && w1 >= 0:
		return area(w0, w1, dt), 0
	case w0 <= 0 && w1 <= 0:
		return 0, -area(w0, w1, dt)
	}
	f := w0 / (w0 - w1) // where the line crosses zero, as a fraction of dt
	a0, a1 := area(w0, 0, f*dt), area(0, w1, (1-f)*dt)
	if w0 > 0 {
		return a0, -a1
	}
	return a1, -a0
}

// rollupKey names one rollup bucket of one meter.
type rollupKey struct {
	meter string
	tier  Tier
	start int64
}

// rollups collects the changes one commit makes to the rollups: additions
// from readings appended after a meter's newest, and buckets to rebuild from
// the raw readings where a reading arrived out of order or was replaced.
type rollups struct {
	maxGap int64
	add    map[rollupKey]*agg
	// rebuild holds minute buckets (per meter) to recompute from raw data.
	rebuild map[rollupKey]bool
}

func newRollups(maxGap time.Duration) *rollups {
	return &rollups{maxGap: int64(maxGap), add: map[rollupKey]*agg{}, rebuild: map[rollupKey]bool{}}
}

func (r *rollups) at(meter string, t Tier, start int64) *agg {
	k := rollupKey{meter, t, start}
	a := r.add[k]
	if a == nil {
		a = &agg{}
		r.add[k] = a
	}
	return a
}

// appended records a reading s of meter that is newer than all its others;
// prev is the newest before it, if any.
func (r *rollups) appended(meter string, s sample, prev *sample) {
	for _, t := range Tiers {
		r.at(meter, t, t.start(s.ns)).addPower(s.w)
	}
	if prev != nil {
		integrate(*prev, s, r.maxGap, func(m int64, in, out float64) {
			for _, t := range Tiers {
				a := r.at(meter, t, t.start(m))
				a.InWh += in
				a.OutWh += out
			}
		})
	}
}

// changedAt marks for rebuilding every minute whose rollup a reading at ns
// (inserted out of order, or replaced) can change: its own, those its
// intervals to its neighbours cover, and the next reading's; but none that
// starts before floor (the meter's archive boundary, a whole hour: the
// readings before it are archived, the rollups there are history).
func (r *rollups) changedAt(meter string, ns int64, next int64, hasNext bool, floor int64) {
	first := max(TierMinute.start(ns-r.maxGap), TierMinute.start(floor+TierMinute.stepNs()-1))
	for m := first; m <= TierMinute.start(ns+r.maxGap); m += TierMinute.stepNs() {
		r.rebuild[rollupKey{meter, TierMinute, m}] = true
	}
	if hasNext { // across a long gap, a counter's jump goes to the next reading's minute
		r.rebuild[rollupKey{meter, TierMinute, TierMinute.start(next)}] = true
	}
}

// sortedKeys returns the keys of m in (meter, tier, start) order. bbolt
// keeps a page's keys in a slice until the commit, so keys put in order
// append to it, while keys in a map's random order make each put shift the
// slice: quadratic on a large import.
func sortedKeys[V any](m map[rollupKey]V) []rollupKey {
	keys := make([]rollupKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rollupKey) int {
		if c := strings.Compare(a.meter, b.meter); c != 0 {
			return c
		}
		if a.tier != b.tier {
			return int(a.tier) - int(b.tier)
		}
		return cmp.Compare(a.start, b.start)
	})
	return keys
}

// Rollups returns the buckets of one meter and tier with from <= start < to,
// oldest first, at most limit, and whether more remain.
func (s *Store) Rollups(meterID string, t Tier, from, to time.Time, limit int) ([]Bucket, bool, error) {
	return s.eng.rollups(meterID, t, from, to, limit)
}

// Count returns how many entries of tier t meter has with from <= time < to,
// counting no further than limit+1: enough to choose a tier for a chart.
func (s *Store) Count(meterID string, t Tier, from, to time.Time, limit int) (int, error) {
	return s.eng.count(meterID, t, from, to, limit)
}

// CheckRollups recomputes the rollups of meterID from its raw readings and
// reports the first bucket that differs from the stored one: after any
// crash, the two must agree.
//
// Where retention has archived and deleted readings (see ApplyRetention),
// the rollups keep counting them while the raw data no longer has them, so
// CheckRollups then compares only the buckets that start after the one
// holding the meter's first reading at or after its archive boundary: the
// energy of the interval that crosses the boundary lands in that bucket.
func (s *Store) CheckRollups(meterID string) error {
	return s.eng.checkRollups(meterID)
}

func nearlyZero(f float64) bool { return math.Abs(f) < 1e-6 }

// aggEqual compares aggregates, allowing for the rounding of sums that were
// built in another order.
func aggEqual(a, b agg) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-6*math.Max(1, math.Max(math.Abs(x), math.Abs(y))) }
	return a.N == b.N && near(a.SumW, b.SumW) && (a.N == 0 || (a.MinW == b.MinW && a.MaxW == b.MaxW)) &&
		near(a.InWh, b.InWh) && near(a.OutWh, b.OutWh)
}

// minuteOf computes the rollup of the minute at start from one meter's
// readings: prev, the reading before the window of maxGap before the
// minute, if any, and from, its readings from that window on, oldest
// first. It takes those in the minute, and the energy of the intervals
// that reach into it.
func minuteOf(prev *sample, from iter.Seq2[sample, error], start, maxGap int64) (agg, error) {
	end := start + TierMinute.stepNs()
	var a agg
	for s, err := range from {
		if err != nil {
			return agg{}, err
		}
		if prev != nil && prev.ns >= end {
			break
		}
		if s.ns >= start && s.ns < end {
			a.addPower(s.w)
		}
		if prev != nil {
			integrate(*prev, s, maxGap, func(m int64, in, out float64) {
				if m == start {
					a.InWh += in
					a.OutWh += out
				}
			})
		}
		prev = &s
	}
	return a, nil
}
