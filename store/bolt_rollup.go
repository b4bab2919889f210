package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

func (t Tier) bucket() []byte {
	return [...][]byte{nil, []byte("rollup_1m"), []byte("rollup_1h"), []byte("rollup_1d")}[t]
}

const aggSize = 8 * 6

func (a agg) encode() []byte {
	b := make([]byte, 0, aggSize)
	b = binary.BigEndian.AppendUint64(b, a.N)
	for _, f := range [...]float64{a.SumW, a.MinW, a.MaxW, a.InWh, a.OutWh} {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

func decodeAgg(v []byte) (agg, error) {
	if len(v) != aggSize {
		return agg{}, fmt.Errorf("store: corrupt rollup (%d bytes)", len(v))
	}
	f := func(i int) float64 { return math.Float64frombits(binary.BigEndian.Uint64(v[8*i:])) }
	return agg{N: binary.BigEndian.Uint64(v), SumW: f(1), MinW: f(2), MaxW: f(3), InWh: f(4), OutWh: f(5)}, nil
}

func rollupBucket(tx *bolt.Tx, meter string, t Tier) (*bolt.Bucket, error) {
	b, err := tx.Bucket(t.bucket()).CreateBucketIfNotExists([]byte(meter))
	if err != nil {
		return nil, fmt.Errorf("store: rollup %s of %q: %w", t, meter, err)
	}
	b.FillPercent = 0.95 // rollups mostly append; the setting lasts one transaction
	return b, nil
}

// putAgg stores a, or deletes the bucket's entry when a holds nothing.
func putAgg(b *bolt.Bucket, start int64, a agg) error {
	if a.N == 0 && a.InWh == 0 && a.OutWh == 0 {
		return b.Delete(timeKey(start))
	}
	return b.Put(timeKey(start), a.encode())
}

// apply writes the collected changes into the rollup buckets of tx.
func (r *rollups) apply(tx *bolt.Tx) error {
	for _, k := range sortedKeys(r.add) {
		a := r.add[k]
		if r.rebuild[rollupKey{k.meter, TierMinute, TierMinute.start(k.start)}] && k.tier == TierMinute {
			continue // rebuilt from raw below
		}
		b, err := rollupBucket(tx, k.meter, k.tier)
		if err != nil {
			return err
		}
		key := timeKey(k.start)
		cur := agg{}
		if v := b.Get(key); v != nil {
			if cur, err = decodeAgg(v); err != nil {
				return err
			}
		}
		cur.merge(*a)
		if err := b.Put(key, cur.encode()); err != nil {
			return err
		}
	}
	if len(r.rebuild) == 0 {
		return nil
	}
	hours := map[rollupKey]bool{}
	for _, k := range sortedKeys(r.rebuild) {
		if err := rebuildMinute(tx, k.meter, k.start, r.maxGap); err != nil {
			return err
		}
		hours[rollupKey{k.meter, TierHour, TierHour.start(k.start)}] = true
	}
	days := map[rollupKey]bool{}
	for _, k := range sortedKeys(hours) {
		if err := rebuildFrom(tx, k.meter, TierHour, TierMinute, k.start); err != nil {
			return err
		}
		days[rollupKey{k.meter, TierDay, TierDay.start(k.start)}] = true
	}
	for _, k := range sortedKeys(days) {
		if err := rebuildFrom(tx, k.meter, TierDay, TierHour, k.start); err != nil {
			return err
		}
	}
	return nil
}

// rebuildMinute recomputes one minute's rollup from the readings around it.
func rebuildMinute(tx *bolt.Tx, meter string, start, maxGap int64) error {
	ser, ok := openSeries(tx, meter)
	if !ok {
		return nil
	}
	a, err := minuteFromReadings(ser, start, maxGap)
	if err != nil {
		return fmt.Errorf("meter %q: %w", meter, err)
	}
	b, err := rollupBucket(tx, meter, TierMinute)
	if err != nil {
		return err
	}
	return putAgg(b, start, a)
}

// minuteFromReadings computes the rollup of the minute at start from one
// meter's readings: those in the minute, and those within maxGap of it (and
// one before) for the energy of the intervals that reach into it.
func minuteFromReadings(ser series, start, maxGap int64) (agg, error) {
	var prev *sample
	for p, err := range ser.backward(start - maxGap) { // the reading before the window, for a counter's jump
		if err != nil {
			return agg{}, err
		}
		s := p.sample()
		prev = &s
		break
	}
	return minuteOf(prev, func(yield func(sample, error) bool) {
		for p, err := range ser.forward(start - maxGap) {
			if !yield(p.sample(), err) || err != nil {
				return
			}
		}
	}, start, maxGap)
}

// rebuildFrom recomputes the bucket of tier t at start from the buckets of
// the finer tier below it.
func rebuildFrom(tx *bolt.Tx, meter string, t, below Tier, start int64) error {
	src, err := rollupBucket(tx, meter, below)
	if err != nil {
		return err
	}
	var a agg
	end := timeKey(start + t.stepNs())
	c := src.Cursor()
	for k, v := c.Seek(timeKey(start)); k != nil && string(k) < string(end); k, v = c.Next() {
		b, err := decodeAgg(v)
		if err != nil {
			return err
		}
		a.merge(b)
	}
	dst, err := rollupBucket(tx, meter, t)
	if err != nil {
		return err
	}
	return putAgg(dst, start, a)
}

// rollups is Rollups on bbolt: the stored buckets with what the head adds
// to them.
func (eng *boltEngine) rollups(meterID string, t Tier, from, to time.Time, limit int) ([]Bucket, bool, error) {
	s := eng.s
	var out []Bucket
	more := false
	err := eng.view([]string{meterID}, func(tx *bolt.Tx, hv headView) error {
		fromNs, toNs := t.start(from.UnixNano()), to.UnixNano()
		var stored []keyedAgg
		bk := tx.Bucket(t.bucket()).Bucket([]byte(meterID))
		if bk == nil {
			if _, ok := hv.series(tx, meterID); !ok {
				return fmt.Errorf("%w: %q", ErrUnknownMeter, meterID)
			}
		} else {
			end := timeKey(toNs)
			c := bk.Cursor()
			for k, v := c.Seek(timeKey(fromNs)); k != nil && string(k) < string(end); k, v = c.Next() {
				if len(stored) == limit {
					more = true
					break
				}
				a, err := decodeAgg(v)
				if err != nil {
					return err
				}
				stored = append(stored, keyedAgg{keyNs(k), a})
			}
		}
		for _, ka := range mergeAggs(stored, hv.rollups(meterID, t, s.maxGap), fromNs, toNs, more) {
			if len(out) == limit {
				more = true
				break
			}
			out = append(out, ka.a.bucket(ka.start))
		}
		return nil
	})
	return out, more, err
}

// count is Count on bbolt.
func (eng *boltEngine) count(meterID string, t Tier, from, to time.Time, limit int) (int, error) {
	s := eng.s
	n := 0
	err := eng.view([]string{meterID}, func(tx *bolt.Tx, hv headView) error {
		end := to.UnixNano()
		if t == TierRaw {
			ser, ok := hv.series(tx, meterID)
			if !ok {
				return nil
			}
			for p, err := range ser.forward(from.UnixNano()) {
				if err != nil || p.ns >= end || n > limit {
					return err
				}
				n++
			}
			return nil
		}
		fromNs := t.start(from.UnixNano())
		head := hv.rollups(meterID, t, s.maxGap)
		seen := map[int64]bool{}
		if bk := tx.Bucket(t.bucket()).Bucket([]byte(meterID)); bk != nil {
			c := bk.Cursor()
			for k, _ := c.Seek(timeKey(fromNs)); k != nil && keyNs(k) < end && n <= limit; k, _ = c.Next() {
				n++
				if len(head) > 0 {
					seen[keyNs(k)] = true
				}
			}
		}
		for _, h := range head {
			if h.start >= fromNs && h.start < end && !seen[h.start] && n <= limit {
				n++
			}
		}
		return nil
	})
	return n, err
}

// checkRollups is CheckRollups on bbolt.
func (eng *boltEngine) checkRollups(meterID string) error {
	s := eng.s
	return eng.view([]string{meterID}, func(tx *bolt.Tx, hv headView) error {
		ser, ok := hv.series(tx, meterID)
		if !ok {
			return fmt.Errorf("%w: %q", ErrUnknownMeter, meterID)
		}
		from := map[Tier]int64{TierMinute: math.MinInt64, TierHour: math.MinInt64, TierDay: math.MinInt64}
		if v := tx.Bucket(bucketMeters).Get([]byte(meterID)); v != nil {
			st, err := decodeMeterState(v)
			if err != nil {
				return fmt.Errorf("store: meter %q: %w", meterID, err)
			}
			if st.ArchivedNs != 0 {
				for _, t := range Tiers {
					from[t] = math.MaxInt64 // no reading after the boundary: nothing to compare
				}
				for p, err := range ser.forward(st.ArchivedNs) {
					if err != nil {
						return err
					}
					for _, t := range Tiers {
						from[t] = t.start(p.ns) + t.stepNs()
					}
					break
				}
			}
		}
		want := newRollups(s.maxGap)
		var prev *sample
		for p, err := range ser.forward(0) {
			if err != nil {
				return err
			}
			cur := p.sample()
			want.appended(meterID, cur, prev)
			prev = &cur
		}
		for _, t := range Tiers {
			got := map[int64]agg{}
			if bk := tx.Bucket(t.bucket()).Bucket([]byte(meterID)); bk != nil {
				c := bk.Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					if keyNs(k) < from[t] {
						continue
					}
					a, err := decodeAgg(v)
					if err != nil {
						return err
					}
					got[keyNs(k)] = a
				}
			}
			for _, h := range hv.rollups(meterID, t, s.maxGap) { // what the head adds
				if h.start >= from[t] {
					g := got[h.start]
					g.merge(h.a)
					got[h.start] = g
				}
			}
			for k, w := range want.add {
				if k.tier != t || k.start < from[t] {
					continue
				}
				g, ok := got[k.start]
				if !ok && (w.N > 0 || !nearlyZero(w.InWh) || !nearlyZero(w.OutWh)) {
					return fmt.Errorf("store: meter %q: %s rollup at %s is missing", meterID, t, time.Unix(0, k.start).UTC())
				}
				if !aggEqual(g, *w) {
					return fmt.Errorf("store: meter %q: %s rollup at %s is %+v, raw data gives %+v", meterID, t, time.Unix(0, k.start).UTC(), g, *w)
				}
				delete(got, k.start)
			}
			for start, g := range got {
				if g.N > 0 || !nearlyZero(g.InWh) || !nearlyZero(g.OutWh) {
					return fmt.Errorf("store: meter %q: %s rollup at %s has no raw data behind it: %+v", meterID, t, time.Unix(0, start).UTC(), g)
				}
			}
		}
		return nil
	})
}

// mergeAggs adds the head's additions to a tier's stored buckets (those
// read, oldest first), keeping the head's buckets in [from, to). When the
// stored ones were cut short (truncated), a head bucket past the last of
// them is left out: the next page reads it.
func mergeAggs(stored, head []keyedAgg, from, to int64, truncated bool) []keyedAgg {
	if len(head) == 0 {
		return stored
	}
	out := stored
	for _, h := range head {
		if h.start < from || h.start >= to {
			continue
		}
		i, found := slices.BinarySearchFunc(out, h.start, func(k keyedAgg, start int64) int { return cmp.Compare(k.start, start) })
		switch {
		case found:
			out[i].a.merge(h.a)
		case truncated && i == len(out):
		default:
			out = slices.Insert(out, i, h)
		}
	}
	return out
}
