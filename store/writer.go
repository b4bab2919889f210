package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/meter"
)

// entry is one item of the writer's queue: a reading to store, or (with
// barrier set) only a callback that runs in order after what came before.
type entry struct {
	r       meter.Reading
	done    func(error)
	barrier bool
}

// meterState is what the store keeps per meter beside its readings, updated
// in the same transaction as them.
type meterState struct {
	FirstNs  int64   // timestamp of the oldest reading
	LastNs   int64   // timestamp of the newest reading
	LastW    float64 // power of the newest reading
	SeenNs   int64   // when a reading was last committed (server clock)
	Readings uint64  // readings stored
}

const meterStateSize = 1 + 5*8

func (m meterState) encode() []byte {
	b := make([]byte, 1, meterStateSize)
	b[0] = 1 // encoding version
	b = binary.BigEndian.AppendUint64(b, uint64(m.FirstNs))
	b = binary.BigEndian.AppendUint64(b, uint64(m.LastNs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.LastW))
	b = binary.BigEndian.AppendUint64(b, uint64(m.SeenNs))
	return binary.BigEndian.AppendUint64(b, m.Readings)
}

func decodeMeterState(b []byte) (meterState, error) {
	if len(b) != meterStateSize || b[0] != 1 {
		return meterState{}, fmt.Errorf("bad meter state (%d bytes)", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	return meterState{
		FirstNs: int64(u(0)), LastNs: int64(u(1)), LastW: math.Float64frombits(u(2)),
		SeenNs: int64(u(3)), Readings: u(4),
	}, nil
}

// A stored reading's key is its Unix time in nanoseconds, big-endian, so keys
// sort by time and new readings append. Its value is the reading's id and its
// power in watts.
const valueSize = 16

func timeKey(ns int64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(ns)) }

func encodeValue(id uint64, powerW float64) []byte {
	b := make([]byte, 0, valueSize)
	b = binary.BigEndian.AppendUint64(b, id)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(powerW))
}

func decodeValue(v []byte) (id uint64, powerW float64, ok bool) {
	if len(v) != valueSize {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v), math.Float64frombits(binary.BigEndian.Uint64(v[8:])), true
}

// Append queues r to be stored by the next group commit. done, if not nil,
// runs on the store's acknowledgement goroutine once r is committed (err nil)
// or its transaction failed; callbacks run in the order readings were
// appended, and must not block for long. Append blocks while the queue is full.
// r must already be valid (see meter.Decoder).
func (s *Store) Append(r meter.Reading, done func(error)) error {
	return s.enqueue(entry{r: r, done: done})
}

// Sync queues done to run after everything appended before it has been
// committed (err nil) or has failed.
func (s *Store) Sync(done func(error)) error {
	return s.enqueue(entry{done: done, barrier: true})
}

// Flush waits until everything appended before it is committed.
func (s *Store) Flush() error {
	ch := make(chan error, 1)
	if err := s.Sync(func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

func (s *Store) enqueue(e entry) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.queue <- e
	return nil
}

// writeLoop is the single writer: it takes what is queued, up to maxBatch,
// commits it in one transaction, and hands the batch to ackLoop so the next
// commit can start while callbacks run.
func (s *Store) writeLoop() {
	defer s.wg.Done()
	defer close(s.acks)
	for e := range s.queue {
		batch := make([]entry, 1, min(s.maxBatch, 1+len(s.queue)))
		batch[0] = e
	drain:
		for len(batch) < s.maxBatch {
			select {
			case e, ok := <-s.queue:
				if !ok {
					break drain
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		err := s.commit(batch)
		if err != nil {
			s.commitErrors.Inc()
			s.log.Error("commit failed; its readings are not acknowledged", slog.Int("readings", len(batch)), slog.Any("error", err))
		}
		for i := range batch {
			if batch[i].done != nil {
				s.acks <- committed{batch, err}
				break
			}
		}
	}
}

// committed is a batch whose transaction has ended, with its error.
type committed struct {
	batch []entry
	err   error
}

// ackLoop runs the callbacks of ended batches, in order.
func (s *Store) ackLoop() {
	defer s.wg.Done()
	for c := range s.acks {
		for _, e := range c.batch {
			if e.done != nil {
				e.done(c.err)
			}
		}
	}
}

var errBumpLimit = errors.New("no free timestamp near the reading's")

// commit writes batch in one transaction and, once it is durable, makes the
// new meter states visible to readers.
func (s *Store) commit(batch []entry) error {
	start := time.Now()
	nowNs := start.UnixNano()
	changed := map[string]meterState{}
	seq := s.seq
	stored := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		series := tx.Bucket(bucketSeries)
		buckets := map[string]*bolt.Bucket{}
		for i := range batch {
			e := &batch[i]
			if e.barrier {
				continue
			}
			id := e.r.Meter
			b := buckets[id]
			if b == nil {
				var err error
				if b, err = series.CreateBucketIfNotExists([]byte(id)); err != nil {
					return fmt.Errorf("meter %q: %w", id, err)
				}
				b.FillPercent = 0.95 // readings mostly append
				buckets[id] = b
			}
			st, ok := changed[id]
			if !ok {
				st = s.meters[id] // only this goroutine writes s.meters
			}
			ns := e.r.Time.UnixNano()
			isNew := true
			if st.Readings > 0 && ns <= st.LastNs {
				for tries := 0; b.Get(timeKey(ns)) != nil; tries++ {
					if e.r.Stamped {
						// The device sent this instant before: a resend or a
						// correction. Keep one reading, with the new power.
						isNew = false
						break
					}
					if tries == 1000 {
						return fmt.Errorf("meter %q at %d: %w", id, ns, errBumpLimit)
					}
					ns++ // a receive-stamped reading is always new
				}
			}
			var value []byte
			if isNew {
				seq++
				value = encodeValue(seq, e.r.PowerW)
			} else {
				oldID, _, _ := decodeValue(b.Get(timeKey(ns)))
				value = encodeValue(oldID, e.r.PowerW)
			}
			if err := b.Put(timeKey(ns), value); err != nil {
				return err
			}
			if isNew {
				st.Readings++
				stored++
				if st.Readings == 1 || ns < st.FirstNs {
					st.FirstNs = ns
				}
			}
			if ns >= st.LastNs {
				st.LastNs, st.LastW = ns, e.r.PowerW
			}
			st.SeenNs = nowNs
			changed[id] = st
		}
		meters := tx.Bucket(bucketMeters)
		for id, st := range changed {
			if err := meters.Put([]byte(id), st.encode()); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySeq, binary.BigEndian.AppendUint64(nil, seq))
	})
	if err != nil {
		return err
	}
	s.seq = seq
	s.metersMu.Lock()
	for id, st := range changed {
		s.meters[id] = st
	}
	s.metersMu.Unlock()
	s.commitSeconds.Observe(time.Since(start).Seconds())
	s.batchSize.Observe(float64(len(batch)))
	s.stored.Add(float64(stored))
	return nil
}
