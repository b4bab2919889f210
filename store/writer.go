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
	edit     *editJob
	erase    *eraseJob
	done     func(error)
	barrier  bool
	// checkpoint asks for the head to be checkpointed (see Checkpoint).
	checkpoint bool
	// reload asks a PostgreSQL store's writer to reload its copy of the
	// meters (see pgFresh).
	reload bool
	// volatile marks a reading whose callback need not wait for the log's
	// fdatasync (see AppendVolatile).
	volatile bool
	// rejected is set by the writer when it refused r (an implausible
	// counter) or edit; done receives it.
	rejected error
}

// alone reports whether e is committed in a transaction of its own.
func (e *entry) alone() bool {
	return e.imp != nil || e.compress != nil || e.retire != nil || e.prune != nil || e.edit != nil || e.erase != nil ||
		e.checkpoint || e.reload
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
	// RefWh and RefNs are the newest non-zero energy counter taken and its
	// reading's time (RefNs 0: none yet): the reference a new counter is
	// checked against (see checkCounter).
	RefWh float64
	RefNs int64
	// PendWh, PendNs and PendN track counters rejected as implausible jumps:
	// the newest one, its time, and how many in a row agreed with each
	// other. After rebaseAfter of them the meter's counter is taken to have
	// moved for good (a replaced device).
	PendWh float64
	PendNs int64
	PendN  uint64
	// IntervalNs is the meter's usual time between readings, as received
	// (see noteInterval); 0 while unknown.
	IntervalNs int64
}

// Meter states are encoded in one of three versions: 1 (without
// ArchivedNs), 2 (with it), and 3, written since schema 2, with every field.
const (
	meterStateSize   = 1 + 7*8 + 1
	meterStateSizeV2 = meterStateSize + 8
	meterStateSizeV3 = meterStateSizeV2 + 6*8
)

func (m meterState) encode() []byte {
	b := make([]byte, 1, meterStateSizeV3)
	b[0] = 3 // encoding version
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
	b = binary.BigEndian.AppendUint64(b, uint64(m.ArchivedNs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.RefWh))
	b = binary.BigEndian.AppendUint64(b, uint64(m.RefNs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.PendWh))
	b = binary.BigEndian.AppendUint64(b, uint64(m.PendNs))
	b = binary.BigEndian.AppendUint64(b, m.PendN)
	b = binary.BigEndian.AppendUint64(b, uint64(m.IntervalNs))
	return b
}

func decodeMeterState(b []byte) (meterState, error) {
	ok := len(b) > 0 && (len(b) == meterStateSize && b[0] == 1 ||
		len(b) == meterStateSizeV2 && b[0] == 2 || len(b) == meterStateSizeV3 && b[0] == 3)
	if !ok {
		return meterState{}, fmt.Errorf("bad meter state (%d bytes)", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[1+8*i:]) }
	st := meterState{
		FirstNs: int64(u(0)), LastNs: int64(u(1)), LastW: math.Float64frombits(u(2)),
		LastWh: math.Float64frombits(u(3)), SeenNs: int64(u(4)), Readings: u(5), CompactedNs: int64(u(6)),
		LastHasWh: b[meterStateSize-1] == 1,
	}
	if b[0] >= 2 {
		st.ArchivedNs = int64(binary.BigEndian.Uint64(b[meterStateSize:]))
	}
	if b[0] == 3 {
		v := func(i int) uint64 { return binary.BigEndian.Uint64(b[meterStateSizeV2+8*i:]) }
		st.RefWh, st.RefNs = math.Float64frombits(v(0)), int64(v(1))
		st.PendWh, st.PendNs, st.PendN = math.Float64frombits(v(2)), int64(v(3)), v(4)
		st.IntervalNs = int64(v(5))
	}
	if b[0] < 3 && st.LastHasWh && st.LastWh != 0 {
		st.RefWh, st.RefNs = st.LastWh, st.LastNs // an older state: its newest counter
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

// Append queues r to be stored. done, if not nil, runs on the store's
// acknowledgement goroutine once r is durable (err nil: on a bbolt store,
// in the log once its group is synced, see bolt_head.go; on PostgreSQL,
// committed) or could not be stored; callbacks run in the order readings
// were appended, and must not block for long. Append blocks while the queue
// is full. r must already be valid (see meter.Decoder).
func (s *Store) Append(r meter.Reading, done func(error)) error {
	return s.enqueue(entry{r: r, done: done})
}

// AppendVolatile is Append for a reading nobody was promised durability
// of (an MQTT QoS 0 publish): on a bbolt store, done runs once r is written
// to the log, safe from the process's crash, before the log's fdatasync,
// which comes within store.flush_interval. A crash of the machine may lose
// what that interval received.
func (s *Store) AppendVolatile(r meter.Reading, done func(error)) error {
	return s.enqueue(entry{r: r, done: done, volatile: true})
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
	// held is an entry that must start a batch of its own (an import or a
	// job: see alone), taken from the queue while draining a batch of
	// readings: its failure must not fail the readings before it.
	var held *entry
	for {
		var e entry
		if held != nil {
			e, held = *held, nil
		} else {
			var ok bool
			if e, ok = <-s.queue; !ok {
				return
			}
		}
		var batch []entry
		batch, held = s.drain(e)
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

// drain returns a batch starting with e: what else is queued, up to
// maxBatch, unless e must be alone; and an entry that must be alone taken
// from the queue meanwhile (held), to start the next batch: its failure
// must not fail the readings before it.
func (s *Store) drain(e entry) (batch []entry, held *entry) {
	batch = make([]entry, 1, min(s.maxBatch, 1+len(s.queue)))
	batch[0] = e
	for len(batch) < s.maxBatch && !e.alone() {
		select {
		case next, ok := <-s.queue:
			if !ok {
				return batch, nil
			}
			if next.alone() {
				return batch, &next
			}
			batch = append(batch, next)
		default:
			return batch, nil
		}
	}
	return batch, nil
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
				e.done(cmp.Or(c.err, e.rejected))
			}
		}
	}
}

// commit writes batch in one transaction, with the rollups it changes, and
// once it is durable makes the new meter states visible to readers.
func (s *Store) commit(batch []entry) error {
	if s.pg != nil {
		return s.pgCommit(batch)
	}
	// Pruning old rollups alone neither reads nor writes what the head
	// changes: it leaves the head where it is.
	withHead := !(len(batch) == 1 && batch[0].prune != nil)
	if len(batch) > 0 && !s.head.empty() && withHead {
		// The head first, in a transaction of its own: a job iterates and
		// deletes what it moves, which bbolt's cursors do not survive over
		// pages changed earlier in the same transaction.
		if err := s.commit(nil); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	start := time.Now()
	nowNs := start.UnixNano()
	changed := map[string]meterState{}
	newInfo := map[string]MeterInfo{} // meters seen for the first time, and meters a job changed
	var erased []string
	// fresh collects the live readings committed as their meters' newest,
	// for the watchers (see Watch), when there are any.
	watching := s.watchers.count.Load() > 0
	var fresh []Record
	pfs := map[string]pfAgg{} // power factor statistics of the commit
	seq := s.seq
	stored := 0
	body := func(tx *bolt.Tx) error {
		if withHead {
			if err := s.checkpointInto(tx, changed, newInfo); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
		w := newTxWriter(tx, s.maxGap, seq)
		maxW := map[string]float64{}   // each meter's maximum power, looked up once a commit
		erasedNow := map[string]bool{} // a reading after its meter's erasure starts it anew
		store := func(r meter.Reading, live bool) (int, error) {
			id := r.Meter
			st, ok := changed[id]
			if !ok && !erasedNow[id] {
				st = s.meters[id] // only this goroutine writes s.meters
			}
			mw, ok := maxW[id]
			if !ok {
				mw = s.maxPowerW(id)
				maxW[id] = mw
			}
			isNew := st.Readings == 0 && st.SeenNs == 0
			added, err := w.put(&st, r, mw)
			if meter.ReasonOf(err) != "" {
				if !isNew {
					changed[id] = st // the rejected counter's tracking
				}
				return 0, err
			}
			if err != nil {
				return 0, fmt.Errorf("meter %q: %w", id, err)
			}
			if added > 0 {
				notePF(pfs, r)
			}
			if live {
				s.noteInterval(id, &st, nowNs)
				if w.isFresh && watching {
					fresh = append(fresh, w.fresh)
				}
			}
			st.SeenNs = nowNs
			changed[id] = st
			if isNew {
				if err := s.registerMeter(tx, id, r.Source, nowNs, newInfo, erasedNow[id]); err != nil {
					return 0, err
				}
			}
			return added, nil
		}
		for i := range batch {
			e := &batch[i]
			switch {
			case e.barrier, e.checkpoint, e.reload:
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
					added, err := store(r, false)
					if meter.ReasonOf(err) != "" {
						return fmt.Errorf("reading %d of %d (%s): %w", j+1, len(e.imp.readings), r, err)
					}
					if err != nil {
						return err
					}
					e.imp.added += added
					if e.imp.progress != nil && (j+1)%100000 == 0 {
						e.imp.progress(j + 1)
					}
				}
				stored += e.imp.added
			case e.edit != nil:
				if err := w.finish(); err != nil { // what came before, first
					return err
				}
				w = newTxWriter(tx, s.maxGap, w.seq)
				if err := s.runEdit(func(id string, info MeterInfo) error { return putInfo(tx, id, info) }, e.edit, newInfo); err != nil {
					if _, ok := err.(*refused); ok {
						e.rejected = err
						continue
					}
					return err
				}
			case e.erase != nil:
				if err := w.finish(); err != nil { // what came before, first
					return err
				}
				w = newTxWriter(tx, s.maxGap, w.seq)
				if err := s.runErase(tx, e.erase, changed, newInfo); err != nil {
					if _, ok := err.(*refused); ok {
						e.rejected = err
						continue
					}
					return err
				}
				erased = append(erased, e.erase.meter)
				erasedNow[e.erase.meter] = true
			default:
				added, err := store(e.r, true)
				if meter.ReasonOf(err) != "" {
					e.rejected = err
					continue
				}
				if err != nil {
					return err
				}
				stored += added
			}
		}
		if err := w.finish(); err != nil {
			return err
		}
		if err := writePF(tx, pfs); err != nil {
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
	}
	tx, err := s.db.Begin(true)
	if err != nil {
		return err
	}
	if err := body(tx); err != nil {
		tx.Rollback()
		return err
	}
	if crashHook != nil && len(batch) == 0 {
		crashHook("checkpoint-tx")
	}
	// Readers see bbolt and the head as of one instant (see view): the
	// head is frozen while the commit lands, which readers need not wait
	// for, and goes once it has.
	freeze := withHead && !s.head.empty()
	if freeze {
		s.headMu.Lock()
		s.frozen, s.frozenTx = s.head, tx.ID()
		s.head = newHead()
		s.headMu.Unlock()
	}
	err = tx.Commit()
	if freeze {
		s.headMu.Lock()
		if err != nil {
			s.head = s.frozen // it stays, for the next checkpoint
		}
		s.frozen = nil
		s.headMu.Unlock()
	}
	if err != nil {
		return err
	}
	s.seq = seq
	s.metersMu.Lock()
	for _, id := range erased {
		delete(s.meters, id)
		delete(s.info, id)
		delete(s.gaps, id)
	}
	for id, st := range changed { // a meter erased then read again, anew
		s.meters[id] = st
	}
	for id, info := range newInfo {
		s.info[id] = info
	}
	s.metersMu.Unlock()
	if len(fresh) > 0 {
		s.watchers.send(fresh)
	}
	s.commitSeconds.Observe(time.Since(start).Seconds())
	s.batchSize.Observe(float64(len(batch)))
	s.stored.Add(float64(stored))
	return nil
}

// txWriter stores readings in one write transaction: raw keys, blocks
// changed by late readings, and the rollup changes, applied by finish.
type txWriter struct {
	tx  *bolt.Tx
	seq uint64
	// fresh is the reading the last put appended as its meter's newest,
	// when isFresh.
	fresh   Record
	isFresh bool
	rolls   *rollups
	raw     map[string]*bolt.Bucket
	blocks  map[blockKey]*openBlock
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

// The counter checks of checkCounter.
const (
	// plausibleFloor is the least time a counter's rise is judged over:
	// readings stamped on receipt can arrive bunched after a network outage.
	plausibleFloor = int64(time.Minute)
	// plausibleFactor and plausibleSlackWh allow for clock jitter and the
	// counter's own rounding (kWh with three decimals moves in 1 Wh steps).
	plausibleFactor  = 1.5
	plausibleSlackWh = 1.0
	// rebaseAfter is how many implausible counters in a row, agreeing with
	// each other, move a meter's counter for good.
	rebaseAfter = 3
)

// plausibleWh is the most energy a meter of maximum power maxW (watts) can
// draw in dt nanoseconds, with the allowances above.
func plausibleWh(maxW float64, dt int64) float64 {
	return maxW*float64(max(dt, plausibleFloor))/nsPerHour*plausibleFactor + plausibleSlackWh
}

// checkCounter applies the energy counter rules to reading r, at ns, of a
// meter in state st whose maximum power is maxW, before r is stored. It may
// drop r's counter, and it updates st's counter reference: the newest
// non-zero counter taken.
//
//   - A counter of 0 once the meter has sent a non-zero one is a device
//     restarting before it restored its total, or a reset: r is stored
//     without its counter, so that the total's return is not counted again.
//     The intervals around it are integrated from power; after a reset, the
//     next non-zero counter is below the reference and counts from zero.
//   - For the newest reading of the meter, a counter that rose (or, after a
//     reset, starts) by more energy than maxW can draw since the reference
//     is rejected with meter.ReasonImplausibleEnergy. rebaseAfter such
//     readings in a row that agree with each other mean the counter moved
//     for good (a replaced device): the last is stored without its counter,
//     and later counters count from it.
//   - A reading arriving late (not the newest) whose counter does not fit
//     the reference so (counters only rise, within maxW) is stored without
//     its counter: history is kept, and cannot throw the rollups off.
func checkCounter(st *meterState, r *meter.Reading, ns int64, newest bool, maxW float64) error {
	if !r.HasEnergy {
		return nil
	}
	if r.EnergyWh == 0 {
		if st.RefNs != 0 && st.RefWh != 0 {
			r.HasEnergy = false
		}
		return nil
	}
	if st.RefNs == 0 {
		if newest {
			st.RefWh, st.RefNs = r.EnergyWh, ns
		}
		return nil
	}
	if !newest {
		fits := r.EnergyWh <= st.RefWh && st.RefWh-r.EnergyWh <= plausibleWh(maxW, st.RefNs-ns)
		if ns > st.RefNs {
			fits = r.EnergyWh >= st.RefWh && r.EnergyWh-st.RefWh <= plausibleWh(maxW, ns-st.RefNs)
		}
		if !fits {
			r.HasEnergy = false
		}
		return nil
	}
	rise := r.EnergyWh - st.RefWh
	if rise < 0 {
		rise = r.EnergyWh // a reset: the new value counts from zero
	}
	if limit := plausibleWh(maxW, ns-st.RefNs); rise > limit {
		agrees := st.PendN > 0 && r.EnergyWh >= st.PendWh && ns > st.PendNs &&
			r.EnergyWh-st.PendWh <= plausibleWh(maxW, ns-st.PendNs)
		if agrees {
			st.PendN++
		} else {
			st.PendN = 1
		}
		st.PendWh, st.PendNs = r.EnergyWh, ns
		if st.PendN < rebaseAfter {
			return &meter.RejectError{Reason: meter.ReasonImplausibleEnergy, Detail: fmt.Sprintf(
				"meter %s: energy counter %.3f Wh rose %.3f Wh in %s since %.3f Wh, more than %.0f W can draw",
				r.Meter, r.EnergyWh, rise, time.Duration(ns-st.RefNs), st.RefWh, maxW)}
		}
		r.HasEnergy = false // the counter moved: count from here
	}
	st.PendN = 0
	st.RefWh, st.RefNs = r.EnergyWh, ns
	return nil
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
func (w *txWriter) put(st *meterState, r meter.Reading, maxW float64) (int, error) {
	ns := readingNs(st, r)
	w.isFresh = false
	newest := st.Readings == 0 || ns > st.LastNs
	if err := checkCounter(st, &r, ns, newest, maxW); err != nil {
		return 0, err
	}
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
		w.fresh = Record{ID: w.seq, Meter: r.Meter, Time: time.Unix(0, ns).UTC(), PowerW: r.PowerW, EnergyWh: r.EnergyWh, HasEnergy: r.HasEnergy}
		w.isFresh = true
		appendedTo(st, w.rolls, r, ns)
		return 1, nil
	}

	floor := st.ArchivedNs
	if archived {
		floor = -1 // no rollups to change
	}
	if !r.Stamped {
		// Received behind a reading stamped ahead: a new reading, never a
		// resend, so it takes the next free millisecond.
		var err error
		if ns, err = w.freeNs(r.Meter, ns); err != nil {
			return 0, err
		}
	}
	added, err := w.putLate(r, ns, floor)
	if err != nil {
		return 0, err
	}
	storedLate(st, r, ns, added)
	return added, nil
}

// freeNs returns ns, or the first millisecond after it at which meterID
// has no reading.
func (w *txWriter) freeNs(meterID string, ns int64) (int64, error) {
	for {
		ob, err := w.block(meterID, ns)
		if err != nil {
			return 0, err
		}
		taken := false
		if ob != nil {
			_, taken = slices.BinarySearchFunc(ob.pts, ns, cmpPointNs)
		} else {
			raw, err := w.rawBucket(meterID)
			if err != nil {
				return 0, err
			}
			taken = raw.Get(timeKey(ns)) != nil
		}
		if !taken {
			return ns, nil
		}
		ns += int64(time.Millisecond)
	}
}

// arrivalSlack is how far ahead of a receive-stamped reading the meter's
// newest may be for the reading still to be put right after it: two
// readings received in the same millisecond, or a clock stepped back a
// little. A newest further ahead was stamped by a device whose clock runs
// ahead; the readings received after it keep their own times.
const arrivalSlack = time.Second

// readingNs returns the time reading r is stored at in a meter of state
// st: its own when the device stamped it, else its receive time in
// milliseconds, a millisecond after the newest if that is less than
// arrivalSlack ahead.
func readingNs(st *meterState, r meter.Reading) int64 {
	ns := r.Time.UnixNano()
	if !r.Stamped {
		ns -= ns % int64(time.Millisecond) // receive times: milliseconds are plenty, and compress
		if st.Readings > 0 && ns <= st.LastNs && st.LastNs-ns < int64(arrivalSlack) {
			ns = st.LastNs - st.LastNs%int64(time.Millisecond) + int64(time.Millisecond)
		}
	}
	return ns
}

// appendedTo updates st for reading r appended at ns as the meter's newest,
// adding it to rolls.
func appendedTo(st *meterState, rolls *rollups, r meter.Reading, ns int64) {
	var prev *sample
	if st.Readings > 0 {
		p := st.last()
		prev = &p
	} else {
		st.FirstNs = ns
	}
	rolls.appended(r.Meter, sample{ns: ns, w: r.PowerW, wh: r.EnergyWh, hasEnergy: r.HasEnergy}, prev)
	st.Readings++
	st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
}

// storedLate updates st for reading r stored at ns out of order; added is
// 1 if it was new, 0 if it replaced one.
func storedLate(st *meterState, r meter.Reading, ns int64, added int) {
	if st.Readings == 0 || ns < st.FirstNs {
		st.FirstNs = ns
	}
	st.Readings += uint64(added)
	if ns >= st.LastNs {
		st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
	}
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
			if resend(old.powerW, old.energyWh, old.hasEnergy, r) {
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
		if resend(old.powerW, old.energyWh, old.hasEnergy, r) {
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

// resend reports whether r repeats the stored reading (powerW, energyWh,
// hasEnergy) at its instant: the same power and counter, or the same power
// with a counter the store dropped (see checkCounter), which a resend must
// not bring back.
func resend(powerW, energyWh float64, hasEnergy bool, r meter.Reading) bool {
	return powerW == r.PowerW && (hasEnergy == r.HasEnergy && energyWh == r.EnergyWh || !hasEnergy && r.HasEnergy)
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
