package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/meter"
)

// entry is one item of the writer's queue: a reading to store, an import
// (many readings, all or none), a job of the compressor or of retention, or
// (with barrier set) only a callback that runs in order after what came
// before.
type entry struct {
	r        meter.Reading
	imp      *importJob
	compress *compressJob
	retire   *retireJob
	prune    *pruneJob
	done     func(error)
	barrier  bool
}

// alone reports whether e is committed in a transaction of its own.
func (e *entry) alone() bool {
	return e.imp != nil || e.compress != nil || e.retire != nil || e.prune != nil
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
	// CompactedNs is where the compactor stopped: readings before it are in
	// compressed blocks, readings at or after it are raw.
	CompactedNs int64
	// ArchivedNs is where retention stopped: the readings before it were
	// written to archive files and deleted (see ApplyRetention), and the
	// rollups before it are history that readings arriving late no longer
	// change. 0 when retention never deleted any.
	ArchivedNs int64
}

// A meter state is encoded as version 1 (without ArchivedNs) until
// retention first deletes readings of the meter, so that a database
// retention never touched stays readable by a Vatio from before it.
const (
	meterStateSize   = 1 + 7*8 + 1
	meterStateSizeV2 = meterStateSize + 8
)

func (m meterState) encode() []byte {
	b := make([]byte, 1, meterStateSizeV2)
	b[0] = 1 // encoding version
	if m.ArchivedNs != 0 {
		b[0] = 2
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.FirstNs))
	b = binary.BigEndian.AppendUint64(b, uint64(m.LastNs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.LastW))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.LastWh))
	b = binary.BigEndian.AppendUint64(b, uint64(m.SeenNs))
	b = binary.BigEndian.AppendUint64(b, m.Readings)
	b = binary.BigEndian.AppendUint64(b, uint64(m.CompactedNs))
	if m.LastHasWh {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	if m.ArchivedNs != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(m.ArchivedNs))
	}
	return b
}

func decodeMeterState(b []byte) (meterState, error) {
	if !(len(b) == meterStateSize && b[0] == 1) && !(len(b) == meterStateSizeV2 && b[0] == 2) {
		return meterState{}, fmt.Errorf("bad meter state (%d bytes)", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	st := meterState{
		FirstNs: int64(u(0)), LastNs: int64(u(1)), LastW: math.Float64frombits(u(2)),
		LastWh: math.Float64frombits(u(3)), SeenNs: int64(u(4)), Readings: u(5), CompactedNs: int64(u(6)),
		LastHasWh: b[meterStateSize-1] == 1,
	}
	if b[0] == 2 {
		st.ArchivedNs = int64(binary.BigEndian.Uint64(b[meterStateSize:]))
	}
	return st, nil
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
		for len(batch) < s.maxBatch && !e.alone() { // imports and jobs are batches of their own
			select {
			case e, ok := <-s.queue:
				if !ok {
					break drain
				}
				batch = append(batch, e)
				if e.alone() {
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

// commit writes batch in one transaction, with the rollups it changes, and
// once it is durable makes the new meter states visible to readers.
func (s *Store) commit(batch []entry) error {
	start := time.Now()
	nowNs := start.UnixNano()
	changed := map[string]meterState{}
	seq := s.seq
	stored := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		w := newTxWriter(tx, s.maxGap, seq)
		store := func(r meter.Reading) (int, error) {
			id := r.Meter
			st, ok := changed[id]
			if !ok {
				st = s.meters[id] // only this goroutine writes s.meters
			}
			added, err := w.put(&st, r)
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
			case e.compress != nil:
				if err := w.finish(); err != nil { // what came before, first
					return err
				}
				w = newTxWriter(tx, s.maxGap, w.seq)
				if err := compress(tx, e.compress, s.meters, changed); err != nil {
					return err
				}
			case e.retire != nil, e.prune != nil:
				if err := w.finish(); err != nil { // what came before, first
					return err
				}
				w = newTxWriter(tx, s.maxGap, w.seq)
				var err error
				if e.retire != nil {
					err = retire(tx, e.retire, s.meters, changed)
				} else {
					err = prune(tx, e.prune, s.meters, changed)
				}
				if err != nil {
					return err
				}
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
		if err := w.finish(); err != nil {
			return err
		}
		seq = w.seq
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

// txWriter stores readings in one write transaction: raw keys, blocks
// changed by late readings, and the rollup changes, applied by finish.
type txWriter struct {
	tx     *bolt.Tx
	seq    uint64
	rolls  *rollups
	raw    map[string]*bolt.Bucket
	blocks map[blockKey]*openBlock
}

// blockKey names one meter's block of one hour.
type blockKey struct {
	meter string
	start int64
}

// openBlock is a block decoded for changing; finish encodes it back.
type openBlock struct {
	pts   []point
	dirty bool
}

func newTxWriter(tx *bolt.Tx, maxGap time.Duration, seq uint64) *txWriter {
	return &txWriter{tx: tx, seq: seq, rolls: newRollups(maxGap), raw: map[string]*bolt.Bucket{}, blocks: map[blockKey]*openBlock{}}
}

func (w *txWriter) rawBucket(meterID string) (*bolt.Bucket, error) {
	if b := w.raw[meterID]; b != nil {
		return b, nil
	}
	b, err := w.tx.Bucket(bucketSeries).CreateBucketIfNotExists([]byte(meterID))
	if err != nil {
		return nil, err
	}
	b.FillPercent = 0.95 // readings mostly append
	w.raw[meterID] = b
	return b, nil
}

// block returns the decoded block of meter holding ns, or nil if that hour
// has none.
func (w *txWriter) block(meterID string, ns int64) (*openBlock, error) {
	k := blockKey{meterID, blockSpan.start(ns)}
	if ob, ok := w.blocks[k]; ok {
		return ob, nil
	}
	bb := w.tx.Bucket(bucketBlocks).Bucket([]byte(meterID))
	if bb == nil {
		return nil, nil
	}
	v := bb.Get(timeKey(k.start))
	if v == nil {
		return nil, nil
	}
	pts, err := decodeBlock(v)
	if err != nil {
		return nil, fmt.Errorf("block at %d: %w", k.start, err)
	}
	ob := &openBlock{pts: pts}
	w.blocks[k] = ob
	return ob, nil
}

// put stores reading r, updating its meter's state st and the rollups, and
// returns 1 if r is a new reading, 0 if it replaced one (a device resending
// a reading it stamped).
//
// The common case, a reading newer than the meter's newest, appends a raw
// key and adds to the rollups. A reading stamped on receipt is always that
// case: it is kept in arrival order, a millisecond after the newest if the
// clock says otherwise. A device-stamped reading older than the newest, or
// one that replaces another, goes where its hour is (raw, or a compressed
// block) and marks the minutes around it for rebuilding. One older than the
// meter's archive boundary (st.ArchivedNs) is stored the same way but
// changes no rollup: the readings around it are archived, so rebuilding
// would lose them; the next retention run adds it to its month's archive.
func (w *txWriter) put(st *meterState, r meter.Reading) (int, error) {
	ns := r.Time.UnixNano()
	if !r.Stamped {
		ns -= ns % int64(time.Millisecond) // receive times: milliseconds are plenty, and compress
		if st.Readings > 0 && ns <= st.LastNs {
			ns = st.LastNs - st.LastNs%int64(time.Millisecond) + int64(time.Millisecond)
		}
	}
	s := sample{ns: ns, w: r.PowerW, wh: r.EnergyWh, hasEnergy: r.HasEnergy}
	archived := ns < st.ArchivedNs
	if !archived && (st.Readings == 0 || (ns > st.LastNs && ns >= st.CompactedNs)) {
		raw, err := w.rawBucket(r.Meter)
		if err != nil {
			return 0, err
		}
		w.seq++
		if err := raw.Put(timeKey(ns), encodeValue(w.seq, r)); err != nil {
			return 0, err
		}
		var prev *sample
		if st.Readings > 0 {
			p := st.last()
			prev = &p
		} else {
			st.FirstNs = ns
		}
		w.rolls.appended(r.Meter, s, prev)
		st.Readings++
		st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
		return 1, nil
	}

	floor := st.ArchivedNs
	if archived {
		floor = -1 // no rollups to change
	}
	added, err := w.putLate(r, ns, floor)
	if err != nil {
		return 0, err
	}
	if st.Readings == 0 || ns < st.FirstNs {
		st.FirstNs = ns
	}
	st.Readings += uint64(added)
	if ns >= st.LastNs {
		st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
	}
	return added, nil
}

// putLate stores a device-stamped reading that is not newer than all its
// meter's others: in its hour's block if the hour is compacted, else raw. It
// marks for rebuilding the minutes the reading changes, those at or after
// floor; a negative floor marks none.
func (w *txWriter) putLate(r meter.Reading, ns, floor int64) (int, error) {
	ob, err := w.block(r.Meter, ns)
	if err != nil {
		return 0, err
	}
	p := point{ns: ns, powerW: r.PowerW, energyWh: r.EnergyWh, hasEnergy: r.HasEnergy}
	if ob != nil {
		i, found := slices.BinarySearchFunc(ob.pts, ns, cmpPointNs)
		if found {
			old := ob.pts[i]
			if old.powerW == p.powerW && old.hasEnergy == p.hasEnergy && old.energyWh == p.energyWh {
				return 0, nil // a resend: nothing changes
			}
			p.id = old.id
			ob.pts[i] = p
		} else {
			w.seq++
			p.id = w.seq
			ob.pts = slices.Insert(ob.pts, i, p)
		}
		ob.dirty = true
		if floor >= 0 {
			w.markAround(r.Meter, ns, floor)
		}
		if found {
			return 0, nil
		}
		return 1, nil
	}
	raw, err := w.rawBucket(r.Meter)
	if err != nil {
		return 0, err
	}
	key := timeKey(ns)
	added := 1
	if v := raw.Get(key); v != nil {
		old, ok := decodeValue(v)
		if !ok {
			return 0, fmt.Errorf("corrupt reading at %d", ns)
		}
		if old.powerW == r.PowerW && old.hasEnergy == r.HasEnergy && old.energyWh == r.EnergyWh {
			return 0, nil // a resend: nothing changes
		}
		p.id, added = old.id, 0
	} else {
		w.seq++
		p.id = w.seq
	}
	if err := raw.Put(key, encodeValue(p.id, r)); err != nil {
		return 0, err
	}
	if floor >= 0 {
		w.markAround(r.Meter, ns, floor)
	}
	return added, nil
}

// markAround marks for rebuilding the minutes whose rollups a reading at ns
// changes: those within the maximum gap of it and the next reading's, but
// none before floor, whose readings may be archived.
func (w *txWriter) markAround(meterID string, ns, floor int64) {
	next, hasNext := int64(0), false
	from := ns + 1
	if ob, _ := w.block(meterID, ns); ob != nil { // the hour's block, as changed so far
		if i, _ := slices.BinarySearchFunc(ob.pts, ns+1, cmpPointNs); i < len(ob.pts) {
			next, hasNext = ob.pts[i].ns, true
		}
		from = blockSpan.start(ns) + blockSpan.stepNs() // its stored copy is stale
	}
	if ser, ok := openSeries(w.tx, meterID); ok && !hasNext {
		for p, err := range ser.forward(from) {
			if err == nil {
				next, hasNext = p.ns, true
			}
			break
		}
	}
	w.rolls.changedAt(meterID, ns, next, hasNext, floor)
}

func cmpPointNs(q point, ns int64) int { return cmp.Compare(q.ns, ns) }

// finish writes back the blocks that changed, then the rollups, which may
// rebuild minutes from those blocks.
func (w *txWriter) finish() error {
	for k, ob := range w.blocks {
		if !ob.dirty {
			continue
		}
		bb, err := w.tx.Bucket(bucketBlocks).CreateBucketIfNotExists([]byte(k.meter))
		if err != nil {
			return err
		}
		bb.FillPercent = 0.95
		if err := bb.Put(timeKey(k.start), encodeBlock(ob.pts)); err != nil {
			return err
		}
	}
	return w.rolls.apply(w.tx)
}

func keyNs(k []byte) int64 {
	if len(k) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(k))
}
