package store

import (
	"container/heap"
	"errors"
	"fmt"
	"iter"
	"math"
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
	// First and Last are the timestamps of the oldest and newest readings
	// stored. Once retention has archived all of a meter's readings, the
	// meter stays, with its rollups, Readings 0 and First equal to Last, the
	// time of its newest reading ever.
	First, Last time.Time
	// LastPowerW is the power of the newest reading, in watts.
	LastPowerW float64
	// LastSeen is when a reading of this meter was last stored.
	LastSeen time.Time
	// Readings counts the raw readings stored, not those archived.
	Readings uint64
	// ArchivedBefore is the meter's archive boundary: its readings before it
	// have been written to archive files and deleted (see ApplyRetention),
	// and readings arriving for that time are archived at the next run
	// without changing the rollups. Zero when none were archived.
	ArchivedBefore time.Time
	// Info is the meter's registry entry.
	Info MeterInfo
	// Site is the meter's site: its own, or its main meter's.
	Site string
	// Children are the meters whose parent it is, sorted.
	Children []string
	// Interval is the meter's usual time between readings; 0 while unknown.
	Interval time.Duration
	// Availability is what its device last announced, if anything.
	Availability *Availability
	// silentAfter is the silence that makes it offline (see Status).
	silentAfter time.Duration
}

// meter returns meter id's summary; metersMu must be held.
func (s *Store) meter(id string, st meterState, children map[string][]string) Meter {
	m := Meter{
		ID:         id,
		First:      time.Unix(0, st.FirstNs).UTC(),
		Last:       time.Unix(0, st.LastNs).UTC(),
		LastPowerW: st.LastW,
		LastSeen:   time.Unix(0, st.SeenNs).UTC(),
		Readings:   st.Readings,
		Interval:   time.Duration(st.IntervalNs),
		Info:       s.info[id].clone(),
		Site:       s.siteOf(id, nil),
		Children:   children[id],
	}
	if st.ArchivedNs != 0 {
		m.ArchivedBefore = time.Unix(0, st.ArchivedNs).UTC()
	}
	m.silentAfter = max(3*m.Interval, minSilence)
	if m.Interval == 0 {
		m.silentAfter = 3 * s.maxGap
	}
	m.Availability = s.availabilityOf(id)
	return m
}

// childIndex returns the children of every meter with some, sorted;
// metersMu must be held.
func (s *Store) childIndex() map[string][]string {
	out := map[string][]string{}
	for id, info := range s.info {
		if info.Parent != "" {
			out[info.Parent] = append(out[info.Parent], id)
		}
	}
	for _, c := range out {
		slices.Sort(c)
	}
	return out
}

// Meters returns every meter with readings, sorted by id. It reads memory
// only: the states are kept up to date by each commit.
func (s *Store) Meters() []Meter {
	s.pgFresh()
	s.metersMu.RLock()
	out := make([]Meter, 0, len(s.meters))
	children := s.childIndex()
	for id, st := range s.meters {
		out = append(out, s.meter(id, st, children))
	}
	s.metersMu.RUnlock()
	slices.SortFunc(out, func(a, b Meter) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Meter returns one meter's summary, or ErrUnknownMeter.
func (s *Store) Meter(id string) (Meter, error) {
	s.pgFresh()
	s.metersMu.RLock()
	defer s.metersMu.RUnlock()
	st, ok := s.meters[id]
	if !ok {
		return Meter{}, fmt.Errorf("%w: %q", ErrUnknownMeter, id)
	}
	return s.meter(id, st, map[string][]string{id: s.childrenOf(id, nil)}), nil
}

// Range returns the readings of meter with from <= Time < to, oldest first,
// at most limit of them (the oldest ones), and whether more remain in the range.
func (s *Store) Range(meterID string, from, to time.Time, limit int) ([]Record, bool, error) {
	if s.pg != nil {
		return s.pgRange(meterID, from, to, limit)
	}
	var out []Record
	more := false
	err := s.view([]string{meterID}, func(tx *bolt.Tx, hv headView) error {
		ser, ok := hv.series(tx, meterID)
		if !ok {
			return fmt.Errorf("%w: %q", ErrUnknownMeter, meterID)
		}
		end := to.UnixNano()
		for p, err := range ser.forward(from.UnixNano()) {
			if err != nil {
				return err
			}
			if p.ns >= end {
				break
			}
			if len(out) == limit {
				more = true
				break
			}
			out = append(out, p.record(meterID))
		}
		return nil
	})
	return out, more, err
}

// Latest returns the limit newest readings, newest first, of one meter or,
// with meterID "", of all meters merged by time (equal times by meter id).
func (s *Store) Latest(meterID string, limit int) ([]Record, error) {
	if s.pg != nil {
		return s.pgLatest(meterID, limit)
	}
	out := make([]Record, 0, min(limit, 1024))
	var only []string
	if meterID != "" {
		only = []string{meterID}
	}
	err := s.view(only, func(tx *bolt.Tx, hv headView) error {
		var ids []string
		if meterID != "" {
			if _, ok := hv.series(tx, meterID); !ok {
				return fmt.Errorf("%w: %q", ErrUnknownMeter, meterID)
			}
			ids = []string{meterID}
		} else {
			s.metersMu.RLock()
			for id := range s.meters {
				ids = append(ids, id)
			}
			s.metersMu.RUnlock()
		}
		// Merge the meters' newest-first iterators with a heap on time.
		h := make(cursorHeap, 0, len(ids))
		defer func() {
			for _, c := range h {
				c.stop()
			}
		}()
		for _, id := range ids {
			ser, ok := hv.series(tx, id)
			if !ok {
				continue
			}
			next, stop := iter.Pull2(ser.backward(math.MaxInt64))
			c := &meterCursor{id: id, next: next, stop: stop}
			if ok, err := c.advance(); err != nil {
				stop()
				return err
			} else if ok {
				h = append(h, c)
			} else {
				stop()
			}
		}
		heap.Init(&h)
		for len(out) < limit && len(h) > 0 {
			top := h[0]
			out = append(out, top.cur.record(top.id))
			ok, err := top.advance()
			if err != nil {
				return err
			}
			if ok {
				heap.Fix(&h, 0)
			} else {
				top.stop()
				heap.Pop(&h)
			}
		}
		return nil
	})
	return out, err
}

// meterCursor is one meter's position in Latest's merge.
type meterCursor struct {
	id   string
	next func() (point, error, bool)
	stop func()
	cur  point
}

func (c *meterCursor) advance() (bool, error) {
	p, err, ok := c.next()
	if !ok {
		return false, nil
	}
	c.cur = p
	return true, err
}

// cursorHeap is a max-heap on the cursors' current times; equal times order
// by meter id so the merge is deterministic.
type cursorHeap []*meterCursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	if h[i].cur.ns != h[j].cur.ns {
		return h[i].cur.ns > h[j].cur.ns
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
