package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/meter"
)

// entry is one item of the writer's queue: a reading to store, an import
// (many readings, all or none), or (with barrier set) only a callback that
// runs in order after what came before.
type entry struct {
	r       meter.Reading
	imp     *importJob
	done    func(error)
	barrier bool
}

// importJob is a history import: its readings are stored in the same
// transaction, so all of them or none.
type importJob struct {
	readings []meter.Reading
	progress func(stored int)
	added    int // set by the writer: readings that were new
}

// meterState is what the store keeps per meter beside its readings, updated
// in the same transaction as them.
type meterState struct {
	FirstNs   int64   // timestamp of the oldest reading
	LastNs    int64   // timestamp of the newest reading
	LastW     float64 // power of the newest reading
	LastWh    float64 // energy counter of the newest reading, if LastHasWh
	LastHasWh bool
	SeenNs    int64  // when a reading was last committed (server clock)
	Readings  uint64 // readings stored
}

const meterStateSize = 1 + 6*8 + 1

func (m meterState) encode() []byte {
	b := make([]byte, 1, meterStateSize)
	b[0] = 1 // encoding version
	b = binary.BigEndian.AppendUint64(b, uint64(m.FirstNs))
	b = binary.BigEndian.AppendUint64(b, uint64(m.LastNs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.LastW))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.LastWh))
	b = binary.BigEndian.AppendUint64(b, uint64(m.SeenNs))
	b = binary.BigEndian.AppendUint64(b, m.Readings)
	if m.LastHasWh {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeMeterState(b []byte) (meterState, error) {
	if len(b) != meterStateSize || b[0] != 1 {
		return meterState{}, fmt.Errorf("bad meter state (%d bytes)", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	return meterState{
		FirstNs: int64(u(0)), LastNs: int64(u(1)), LastW: math.Float64frombits(u(2)),
		LastWh: math.Float64frombits(u(3)), SeenNs: int64(u(4)), Readings: u(5), LastHasWh: b[len(b)-1] == 1,
	}, nil
}

func (m meterState) last() sample {
	return sample{ns: m.LastNs, w: m.LastW, wh: m.LastWh, hasEnergy: m.LastHasWh}
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

func sampleOf(k, v []byte) (sample, error) {
	val, ok := decodeValue(v)
	if !ok || len(k) != 8 {
		return sample{}, fmt.Errorf("store: corrupt reading (key %x)", k)
	}
	return sample{ns: int64(binary.BigEndian.Uint64(k)), w: val.powerW, wh: val.energyWh, hasEnergy: val.hasEnergy}, nil
}

// Append queues r to be stored by the next group commit. done, if not nil,
// runs on the store's acknowledgement goroutine once r is committed (err nil)
// or its transaction failed; callbacks run in the order readings were
// appended, and must not block for long. Append blocks while the queue is full.
// r must already be valid (see meter.Decoder).
func (s *Store) Append(r meter.Reading, done func(error)) error {
	return s.enqueue(entry{r: r, done: done})
}

// Import stores readings (already valid, see meter.Decoder) in one
// transaction: all of them or, on error, none. It goes through the same
// path as live readings, rollups included, and returns how many were new
// (the others replaced readings at the same instants). progress, if not nil,
// is called on the store's writer every 100,000 readings: keep it quick.
// Live readings wait while an import is written.
//
// Import sorts readings by time (keeping the file's order for equal times,
// so the last of them wins): bbolt inserts each key into an in-memory page
// until the commit, and keys arriving in order keep that cheap.
func (s *Store) Import(readings []meter.Reading, progress func(stored int)) (int, error) {
	slices.SortStableFunc(readings, func(a, b meter.Reading) int { return a.Time.Compare(b.Time) })
	job := &importJob{readings: readings, progress: progress}
	ch := make(chan error, 1)
	if err := s.enqueue(entry{imp: job, done: func(err error) { ch <- err }}); err != nil {
		return 0, err
	}
	if err := <-ch; err != nil {
		return 0, fmt.Errorf("store: import: %w", err)
	}
	return job.added, nil
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
		for len(batch) < s.maxBatch && e.imp == nil { // an import is a batch of its own size
			select {
			case e, ok := <-s.queue:
				if !ok {
					break drain
				}
				batch = append(batch, e)
				if e.imp != nil {
					break drain
				}
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

// commit writes batch in one transaction, with the rollups it changes, and
// once it is durable makes the new meter states visible to readers.
func (s *Store) commit(batch []entry) error {
	start := time.Now()
	nowNs := start.UnixNano()
	changed := map[string]meterState{}
	seq := s.seq
	stored := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		series := tx.Bucket(bucketSeries)
		buckets := map[string]*bolt.Bucket{}
		rolls := newRollups(s.maxGap)
		store := func(r meter.Reading) (int, error) {
			id := r.Meter
			b := buckets[id]
			if b == nil {
				var err error
				if b, err = series.CreateBucketIfNotExists([]byte(id)); err != nil {
					return 0, fmt.Errorf("meter %q: %w", id, err)
				}
				b.FillPercent = 0.95 // readings mostly append
				buckets[id] = b
			}
			st, ok := changed[id]
			if !ok {
				st = s.meters[id] // only this goroutine writes s.meters
			}
			added, err := put(b, &st, r, &seq, rolls)
			if err != nil {
				return 0, fmt.Errorf("meter %q: %w", id, err)
			}
			st.SeenNs = nowNs
			changed[id] = st
			return added, nil
		}
		for i := range batch {
			e := &batch[i]
			switch {
			case e.barrier:
			case e.imp != nil:
				e.imp.added = 0
				for j, r := range e.imp.readings {
					added, err := store(r)
					if err != nil {
						return err
					}
					e.imp.added += added
					if e.imp.progress != nil && (j+1)%100000 == 0 {
						e.imp.progress(j + 1)
					}
				}
				stored += e.imp.added
			default:
				added, err := store(e.r)
				if err != nil {
					return err
				}
				stored += added
			}
		}
		if err := rolls.apply(tx); err != nil {
			return err
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

// put stores reading r in its meter's bucket b, updating the meter's state
// st and the rollups, and returns 1 if r is a new reading, 0 if it replaced
// one (a device resending a reading it stamped).
//
// The common case, a reading newer than the meter's newest, appends and adds
// to the rollups. A reading older than the newest, or one that replaces
// another, marks the minutes around it for rebuilding from raw data.
func put(b *bolt.Bucket, st *meterState, r meter.Reading, seq *uint64, rolls *rollups) (int, error) {
	ns := r.Time.UnixNano()
	s := sample{ns: ns, w: r.PowerW, wh: r.EnergyWh, hasEnergy: r.HasEnergy}
	if st.Readings == 0 || ns > st.LastNs {
		*seq++
		if err := b.Put(timeKey(ns), encodeValue(*seq, r)); err != nil {
			return 0, err
		}
		var prev *sample
		if st.Readings > 0 {
			p := st.last()
			prev = &p
		} else {
			st.FirstNs = ns
		}
		rolls.appended(r.Meter, s, prev)
		st.Readings++
		st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
		return 1, nil
	}

	c := b.Cursor()
	k, v := c.Seek(timeKey(ns))
	for tries := 0; k != nil && !r.Stamped && string(k) == string(timeKey(ns)); tries++ {
		// A reading stamped on receipt is always a new reading: move it
		// past any reading at the same instant.
		if tries == 1000 {
			return 0, fmt.Errorf("at %d: %w", ns, errBumpLimit)
		}
		ns++
		k, v = c.Seek(timeKey(ns))
	}
	s.ns = ns
	if k != nil && string(k) == string(timeKey(ns)) {
		old, ok := decodeValue(v)
		if !ok {
			return 0, fmt.Errorf("corrupt reading at %d", ns)
		}
		if old.powerW == r.PowerW && old.hasEnergy == r.HasEnergy && old.energyWh == r.EnergyWh {
			return 0, nil // a resend: nothing changes
		}
		if err := b.Put(timeKey(ns), encodeValue(old.id, r)); err != nil {
			return 0, err
		}
		nk, _ := c.Next()
		rolls.changedAt(r.Meter, ns, keyNs(nk), nk != nil)
		if ns == st.LastNs {
			st.LastW, st.LastWh, st.LastHasWh = r.PowerW, r.EnergyWh, r.HasEnergy
		}
		return 0, nil
	}
	*seq++
	if err := b.Put(timeKey(ns), encodeValue(*seq, r)); err != nil {
		return 0, err
	}
	// k is the first reading after ns (the cursor may have moved: seek again).
	nk, _ := b.Cursor().Seek(timeKey(ns + 1))
	rolls.changedAt(r.Meter, ns, keyNs(nk), nk != nil)
	st.Readings++
	if ns < st.FirstNs {
		st.FirstNs = ns
	}
	return 1, nil
}

func keyNs(k []byte) int64 {
	if len(k) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(k))
}
