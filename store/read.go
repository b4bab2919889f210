package store

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrUnknownMeter is returned for a meter that has no readings.
var ErrUnknownMeter = errors.New("store: unknown meter")

// Record is a stored reading.
type Record struct {
	// ID numbers readings in the order they were first stored, across meters.
	ID     uint64
	Meter  string
	Time   time.Time
	PowerW float64
	// EnergyWh is the device's energy counter, when HasEnergy.
	EnergyWh  float64
	HasEnergy bool
}

// Meter summarises one meter's stored readings.
type Meter struct {
	ID string
	// First and Last are the timestamps of the oldest and newest readings.
	First, Last time.Time
	// LastPowerW is the power of the newest reading, in watts.
	LastPowerW float64
	// LastSeen is when a reading of this meter was last stored.
	LastSeen time.Time
	// Readings counts the stored readings.
	Readings uint64
}

func (st meterState) meter(id string) Meter {
	return Meter{
		ID:         id,
		First:      time.Unix(0, st.FirstNs).UTC(),
		Last:       time.Unix(0, st.LastNs).UTC(),
		LastPowerW: st.LastW,
		LastSeen:   time.Unix(0, st.SeenNs).UTC(),
		Readings:   st.Readings,
	}
}

// Meters returns every meter with readings, sorted by id. It reads memory
// only: the states are kept up to date by each commit.
func (s *Store) Meters() []Meter {
	s.metersMu.RLock()
	out := make([]Meter, 0, len(s.meters))
	for id, st := range s.meters {
		out = append(out, st.meter(id))
	}
	s.metersMu.RUnlock()
	slices.SortFunc(out, func(a, b Meter) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Meter returns one meter's summary, or ErrUnknownMeter.
func (s *Store) Meter(id string) (Meter, error) {
	s.metersMu.RLock()
	st, ok := s.meters[id]
	s.metersMu.RUnlock()
	if !ok {
		return Meter{}, fmt.Errorf("%w: %q", ErrUnknownMeter, id)
	}
	return st.meter(id), nil
}

// Range returns the readings of meter with from <= Time < to, oldest first,
// at most limit of them (the oldest ones), and whether more remain in the range.
func (s *Store) Range(meterID string, from, to time.Time, limit int) ([]Record, bool, error) {
	var out []Record
	more := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSeries).Bucket([]byte(meterID))
		if b == nil {
			return fmt.Errorf("%w: %q", ErrUnknownMeter, meterID)
		}
		end := timeKey(to.UnixNano())
		c := b.Cursor()
		for k, v := c.Seek(timeKey(from.UnixNano())); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			if len(out) == limit {
				more = true
				break
			}
			r, err := record(meterID, k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, more, err
}

func record(meterID string, k, v []byte) (Record, error) {
	val, ok := decodeValue(v)
	if !ok || len(k) != 8 {
		return Record{}, fmt.Errorf("store: corrupt reading of meter %q (key %x)", meterID, k)
	}
	return Record{ID: val.id, Meter: meterID, Time: time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC(),
		PowerW: val.powerW, EnergyWh: val.energyWh, HasEnergy: val.hasEnergy}, nil
}

// Latest returns the limit newest readings, newest first, of one meter or,
// with meterID "", of all meters merged by time.
func (s *Store) Latest(meterID string, limit int) ([]Record, error) {
	out := make([]Record, 0, min(limit, 1024))
	err := s.db.View(func(tx *bolt.Tx) error {
		series := tx.Bucket(bucketSeries)
		var ids []string
		if meterID != "" {
			if series.Bucket([]byte(meterID)) == nil {
				return fmt.Errorf("%w: %q", ErrUnknownMeter, meterID)
			}
			ids = []string{meterID}
		} else {
			err := series.ForEachBucket(func(k []byte) error {
				ids = append(ids, string(k))
				return nil
			})
			if err != nil {
				return err
			}
		}
		// Merge the meters' newest-first cursors with a heap on time.
		h := make(cursorHeap, 0, len(ids))
		for _, id := range ids {
			c := series.Bucket([]byte(id)).Cursor()
			if k, v := c.Last(); k != nil {
				h = append(h, &meterCursor{id: id, c: c, k: k, v: v})
			}
		}
		heap.Init(&h)
		for len(out) < limit && len(h) > 0 {
			top := h[0]
			r, err := record(top.id, top.k, top.v)
			if err != nil {
				return err
			}
			out = append(out, r)
			if top.k, top.v = top.c.Prev(); top.k == nil {
				heap.Pop(&h)
			} else {
				heap.Fix(&h, 0)
			}
		}
		return nil
	})
	return out, err
}

type meterCursor struct {
	id   string
	c    *bolt.Cursor
	k, v []byte
}

// cursorHeap is a max-heap on the cursors' current keys (times); equal times
// order by meter id so the merge is deterministic.
type cursorHeap []*meterCursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].k, h[j].k); c != 0 {
		return c > 0
	}
	return h[i].id < h[j].id
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*meterCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
