package store

import (
	"bytes"
	"cmp"
	"fmt"
	"iter"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// blockSpan is the time a compressed block covers: one hour, aligned.
const blockSpan = TierHour

// series reads one meter's readings in time order wherever they are: raw
// readings (series/<meter>, one key each) or compressed blocks
// (blocks/<meter>, one per compacted hour). An hour's readings are all in
// one place or all in the other, never split, so merging the two by time is
// a matter of taking the earlier head.
//
// A reader's series also has the meter's readings in the head (see
// bolt_head.go), all newer than those in bbolt: they come last.
type series struct {
	meter  string
	raw    *bolt.Bucket // nil when the meter has no raw readings bucket
	blocks *bolt.Bucket // nil when the meter has no blocks
	head   []headPoint
}

// openSeries returns the series of meter in tx, and false if the meter has
// never had a reading.
func openSeries(tx *bolt.Tx, meter string) (series, bool) {
	s := series{meter: meter, raw: tx.Bucket(bucketSeries).Bucket([]byte(meter))}
	if bb := tx.Bucket(bucketBlocks); bb != nil {
		s.blocks = bb.Bucket([]byte(meter))
	}
	return s, s.raw != nil || s.blocks != nil
}

func rawPoint(k, v []byte) (point, error) {
	val, ok := decodeValue(v)
	if !ok || len(k) != 8 {
		return point{}, fmt.Errorf("store: corrupt reading (key %x)", k)
	}
	return point{ns: keyNs(k), id: val.id, powerW: val.powerW, energyWh: val.energyWh, hasEnergy: val.hasEnergy}, nil
}

func (s series) block(k, v []byte) ([]point, error) {
	pts, err := decodeBlock(v)
	if err != nil {
		return nil, fmt.Errorf("meter %q: block at %x: %w", s.meter, k, err)
	}
	return pts, nil
}

// forward yields the readings with ns >= from, oldest first.
func (s series) forward(from int64) iter.Seq2[point, error] {
	return func(yield func(point, error) bool) {
		for p, err := range s.storedForward(from) {
			if !yield(p, err) || err != nil {
				return
			}
		}
		i, _ := slices.BinarySearchFunc(s.head, from, func(p headPoint, ns int64) int { return cmp.Compare(p.ns, ns) })
		for _, p := range s.head[i:] {
			if !yield(p.point, nil) {
				return
			}
		}
	}
}

// backward yields the readings with ns < before, newest first.
func (s series) backward(before int64) iter.Seq2[point, error] {
	return func(yield func(point, error) bool) {
		i, _ := slices.BinarySearchFunc(s.head, before, func(p headPoint, ns int64) int { return cmp.Compare(p.ns, ns) })
		for j := i - 1; j >= 0; j-- {
			if !yield(s.head[j].point, nil) {
				return
			}
		}
		for p, err := range s.storedBackward(before) {
			if !yield(p, err) || err != nil {
				return
			}
		}
	}
}

// storedForward is forward over bbolt alone.
func (s series) storedForward(from int64) iter.Seq2[point, error] {
	return func(yield func(point, error) bool) {
		var rc, bc *bolt.Cursor
		var rk, rv, bk, bv []byte
		if s.raw != nil {
			rc = s.raw.Cursor()
			rk, rv = rc.Seek(timeKey(from))
		}
		var pts []point
		i := 0
		if s.blocks != nil {
			bc = s.blocks.Cursor()
			if bk, bv = bc.Seek(timeKey(blockSpan.start(from))); bk != nil {
				var err error
				if pts, err = s.block(bk, bv); err != nil {
					yield(point{}, err)
					return
				}
				for i < len(pts) && pts[i].ns < from {
					i++
				}
			}
		}
		for {
			for i >= len(pts) && bk != nil {
				if bk, bv = bc.Next(); bk != nil {
					var err error
					if pts, err = s.block(bk, bv); err != nil {
						yield(point{}, err)
						return
					}
					i = 0
				}
			}
			haveBlock := i < len(pts)
			switch {
			case rk != nil && (!haveBlock || keyNs(rk) < pts[i].ns):
				p, err := rawPoint(rk, rv)
				if !yield(p, err) || err != nil {
					return
				}
				rk, rv = rc.Next()
			case haveBlock:
				if !yield(pts[i], nil) {
					return
				}
				i++
			default:
				return
			}
		}
	}
}

// storedBackward is backward over bbolt alone.
func (s series) storedBackward(before int64) iter.Seq2[point, error] {
	return func(yield func(point, error) bool) {
		var rc, bc *bolt.Cursor
		var rk, rv, bk, bv []byte
		if s.raw != nil {
			rc = s.raw.Cursor()
			if rk, _ = rc.Seek(timeKey(before)); rk == nil {
				rk, rv = rc.Last()
			} else {
				rk, rv = rc.Prev()
			}
		}
		var pts []point
		i := -1
		if s.blocks != nil {
			bc = s.blocks.Cursor()
			start := timeKey(blockSpan.start(before - 1))
			bk, bv = bc.Seek(start)
			if bk == nil {
				bk, bv = bc.Last()
			} else if !bytes.Equal(bk, start) {
				bk, bv = bc.Prev()
			}
			if bk != nil {
				var err error
				if pts, err = s.block(bk, bv); err != nil {
					yield(point{}, err)
					return
				}
				i = len(pts) - 1
				for i >= 0 && pts[i].ns >= before {
					i--
				}
			}
		}
		for {
			for i < 0 && bk != nil {
				if bk, bv = bc.Prev(); bk != nil {
					var err error
					if pts, err = s.block(bk, bv); err != nil {
						yield(point{}, err)
						return
					}
					i = len(pts) - 1
				}
			}
			haveBlock := i >= 0
			switch {
			case rk != nil && (!haveBlock || keyNs(rk) > pts[i].ns):
				p, err := rawPoint(rk, rv)
				if !yield(p, err) || err != nil {
					return
				}
				rk, rv = rc.Prev()
			case haveBlock:
				if !yield(pts[i], nil) {
					return
				}
				i--
			default:
				return
			}
		}
	}
}

func (p point) sample() sample {
	return sample{ns: p.ns, w: p.powerW, wh: p.energyWh, hasEnergy: p.hasEnergy}
}

func (p point) record(meter string) Record {
	return Record{ID: p.id, Meter: meter, Time: time.Unix(0, p.ns).UTC(), PowerW: p.powerW, EnergyWh: p.energyWh, HasEnergy: p.hasEnergy}
}
