package store

import (
	"container/heap"
	"fmt"
	"iter"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// readings is Range on bbolt: the file and the head as of one instant.
func (eng *boltEngine) readings(meterID string, from, to time.Time, limit int) ([]Record, bool, error) {
	var out []Record
	more := false
	err := eng.view([]string{meterID}, func(tx *bolt.Tx, hv headView) error {
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

// latest is Latest on bbolt: each meter's readings newest first, from the
// head then the file, merged by time.
func (eng *boltEngine) latest(meterID string, limit int) ([]Record, error) {
	s := eng.s
	out := make([]Record, 0, min(limit, 1024))
	var only []string
	if meterID != "" {
		only = []string{meterID}
	}
	err := eng.view(only, func(tx *bolt.Tx, hv headView) error {
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

func (h *cursorHeap) Push(x any) { *h = append(*h, x.(*meterCursor)) }

func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
