package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// compressJob asks the writer to move raw readings older than before into
// compressed blocks, at most limit readings in one transaction.
type compressJob struct {
	before int64
	limit  int
	moved  int  // set by the writer
	more   bool // set by the writer: readings before before are left
}

// maxCompress bounds the readings one compression transaction moves, so that
// live readings never wait long behind it.
const maxCompress = 200000

// compress is Compress on bbolt: jobs for the writer, each a transaction
// of at most maxCompress readings.
func (eng *boltEngine) compress(ctx context.Context, before time.Time) (int, error) {
	s := eng.s
	total := 0
	for ctx.Err() == nil {
		job := &compressJob{before: blockSpan.start(before.UnixNano()), limit: maxCompress}
		ch := make(chan error, 1)
		if err := s.enqueue(entry{compress: job, done: func(err error) { ch <- err }}); err != nil {
			return total, err
		}
		if err := <-ch; err != nil {
			return total, fmt.Errorf("store: compress: %w", err)
		}
		total += job.moved
		if !job.more {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// compress runs a compressJob in tx, for the meters in states (changed
// there as their compacted boundary moves).
func compress(tx *bolt.Tx, job *compressJob, states map[string]meterState, changed map[string]meterState) error {
	ids := slices.Sorted(maps.Keys(states))
	for _, id := range ids {
		st, ok := changed[id]
		if !ok {
			st = states[id]
		}
		raw := tx.Bucket(bucketSeries).Bucket([]byte(id))
		if raw == nil {
			continue
		}
		blocks, err := tx.Bucket(bucketBlocks).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		blocks.FillPercent = 0.95 // blocks mostly append
		var keys [][]byte
		var pts []point
		hour := int64(-1)
		flush := func() error {
			if len(pts) == 0 {
				return nil
			}
			if v := blocks.Get(timeKey(hour)); v != nil { // readings that came late into a compressed hour
				old, err := decodeBlock(v)
				if err != nil {
					return fmt.Errorf("meter %q: block at %d: %w", id, hour, err)
				}
				pts = mergePoints(old, pts)
			}
			if err := blocks.Put(timeKey(hour), encodeBlock(pts)); err != nil {
				return err
			}
			for _, k := range keys {
				if err := raw.Delete(k); err != nil {
					return err
				}
			}
			job.moved += len(keys)
			keys, pts = keys[:0], pts[:0]
			return nil
		}
		c := raw.Cursor()
		for k, v := c.First(); k != nil && keyNs(k) < job.before; k, v = c.Next() {
			p, err := rawPoint(k, v)
			if err != nil {
				return fmt.Errorf("meter %q: %w", id, err)
			}
			if h := blockSpan.start(p.ns); h != hour {
				if err := flush(); err != nil {
					return err
				}
				if job.moved >= job.limit {
					job.more = true
					break
				}
				hour = h
			}
			keys = append(keys, slices.Clone(k))
			pts = append(pts, p)
		}
		if err := flush(); err != nil {
			return err
		}
		if job.more {
			if hour > st.CompactedNs {
				st.CompactedNs = hour
				changed[id] = st
			}
			return nil
		}
		if job.before > st.CompactedNs {
			st.CompactedNs = job.before
			changed[id] = st
		}
	}
	return nil
}

// mergePoints merges two time-sorted point lists; on equal times b wins.
func mergePoints(a, b []point) []point {
	out := make([]point, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].ns < b[j].ns):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].ns < a[i].ns:
			out = append(out, b[j])
			j++
		default:
			out = append(out, b[j])
			i, j = i+1, j+1
		}
	}
	return out
}
