package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/meter"
)

// Log first, checkpoint later (bbolt engine).
//
// A live reading that is newer than all its meter's others (nearly all of
// them) is not written into bbolt when it arrives. The writer puts it in the
// head, in memory, and appends it to the write-ahead log (bolt_wal.go); a QoS 1
// reading's acknowledgement waits for the log's fdatasync, which one group
// of readings shares. Every store.checkpoint_interval, or once the head holds
// store.head_max_mb, a checkpoint writes the head into bbolt in one
// transaction (raw readings, rollups, meter states, power factor
// statistics, and the log position it covers) and empties it; the log's
// segments before that position are then reused. Opening the store replays
// the log past the last checkpoint.
//
// A bbolt commit rewrites a dozen pages per meter it touches; a checkpoint
// pays that once per meter per interval instead of once per reading, and
// the log costs one page per group. Readers see the head at once: they read
// bbolt and the head as of one instant (see view), and a meter's readings
// in the head are all newer than its readings in bbolt.
//
// Anything else the writer takes (a reading older than its meter's newest,
// an import, an edit, a job of the compressor or of retention) runs, as
// before the log existed, in a transaction of its own, which checkpoints
// the head first.

// headPoint is a reading in the head.
type headPoint struct {
	point
	pf    float64
	hasPF bool
}

// headPointSize is what a reading costs the head, for its bound.
const headPointSize = 64

// meterHead is one meter's part of the head.
type meterHead struct {
	// base is the meter's newest reading in bbolt when its head began, the
	// start of the first interval to integrate; hasBase false: none.
	base    sample
	hasBase bool
	// pts only grows (under the store's headMu): a reader's copy of the
	// slice header stays valid.
	pts []headPoint
}

// head holds what the log has and bbolt does not yet.
type head struct {
	// meters and the slices in it are guarded against readers by the
	// store's headMu: the writer changes them holding it.
	meters map[string]*meterHead
	// The rest is the writer's alone.
	n       int             // readings
	dirty   map[string]bool // meters whose state changed
	newInfo map[string]MeterInfo
}

func newHead() *head {
	return &head{meters: map[string]*meterHead{}, dirty: map[string]bool{}, newInfo: map[string]MeterInfo{}}
}

// bytes estimates the head's memory.
func (h *head) bytes() int { return h.n*headPointSize + len(h.meters)*256 }

// empty reports whether a checkpoint has nothing to write.
func (h *head) empty() bool { return h.n == 0 && len(h.dirty) == 0 && len(h.newInfo) == 0 }

// headView is the head as of one instant, for one read.
type headView map[string]meterHead

// view runs fn with a read transaction and the head as of the same
// instant, the head of the meters in ids (nil: of all). While a
// checkpoint commits, its head is frozen (see commit): a transaction begun
// before the commit landed reads it too; one begun after, which holds its
// readings already, does not.
func (s *Store) view(ids []string, fn func(tx *bolt.Tx, hv headView) error) error {
	s.headMu.RLock()
	tx, err := s.db.Begin(false)
	if err != nil {
		s.headMu.RUnlock()
		return err
	}
	hv := headView{}
	add := func(h *head) {
		take := func(id string, mh *meterHead) {
			if prev, ok := hv[id]; ok { // frozen first, then the live head
				prev.pts = append(slices.Clip(prev.pts), mh.pts...)
				hv[id] = prev
				return
			}
			hv[id] = *mh
		}
		if ids == nil {
			for id, mh := range h.meters {
				take(id, mh)
			}
			return
		}
		for _, id := range ids {
			if mh := h.meters[id]; mh != nil {
				take(id, mh)
			}
		}
	}
	if s.frozen != nil && tx.ID() < s.frozenTx {
		add(s.frozen)
	}
	add(s.head)
	s.headMu.RUnlock()
	defer tx.Rollback()
	return fn(tx, hv)
}

// series returns meterID's readings in bbolt and in the head.
func (hv headView) series(tx *bolt.Tx, meterID string) (series, bool) {
	ser, ok := openSeries(tx, meterID)
	if mh, in := hv[meterID]; in && len(mh.pts) > 0 {
		ser.head = mh.pts
		ok = true
	}
	return ser, ok
}

// rollups returns the head's additions to meterID's buckets of tier t,
// oldest first.
func (hv headView) rollups(meterID string, t Tier, maxGap time.Duration) []keyedAgg {
	mh, ok := hv[meterID]
	if !ok || len(mh.pts) == 0 {
		return nil
	}
	r := newRollups(maxGap)
	mh.addTo(r, meterID)
	out := make([]keyedAgg, 0, len(r.add)/len(Tiers)+1)
	for k, a := range r.add {
		if k.tier == t {
			out = append(out, keyedAgg{k.start, *a})
		}
	}
	slices.SortFunc(out, func(a, b keyedAgg) int { return cmp.Compare(a.start, b.start) })
	return out
}

// addTo adds the meter's head readings to r, as appending them one by one
// would have.
func (mh meterHead) addTo(r *rollups, meterID string) {
	prev, hasPrev := mh.base, mh.hasBase
	for _, p := range mh.pts {
		s := p.sample()
		if hasPrev {
			r.appended(meterID, s, &prev)
		} else {
			r.appended(meterID, s, nil)
		}
		prev, hasPrev = s, true
	}
}

// pfs adds the head's power factor statistics of meterID to pfs.
func (hv headView) pfs(meterID string, pfs map[string]pfAgg) {
	for _, p := range hv[meterID].pts {
		if p.hasPF {
			notePF(pfs, meter.Reading{Meter: meterID, Time: time.Unix(0, p.ns), PowerW: p.powerW, PowerFactor: p.pf, HasPF: true})
		}
	}
}

// headBefore reports whether the head holds a reading older than ns.
func (s *Store) headBefore(ns int64) bool {
	s.headMu.RLock()
	defer s.headMu.RUnlock()
	for _, h := range []*head{s.head, s.frozen} {
		if h == nil {
			continue
		}
		for _, mh := range h.meters {
			if len(mh.pts) > 0 && mh.pts[0].ns < ns {
				return true
			}
		}
	}
	return false
}

// keyedAgg is a rollup bucket's aggregate and start.
type keyedAgg struct {
	start int64
	a     agg
}

// Meta keys of the log: the run (epoch) whose log is live, and the last LSN
// a checkpoint holds.
var (
	keyEpoch  = []byte("wal_epoch")
	keyWALLSN = []byte("wal_lsn")
)

// headApply is what applying a group of live readings to the head leaves
// for the writer: the records for the watchers.
type headApply struct {
	fresh []Record
}

// appendable reports whether a live reading r of a meter in state st goes
// to the head: it is newer than all the meter's others, past its archive
// boundary and its compressed hours.
func appendable(st *meterState, r meter.Reading) bool {
	ns := readingNs(st, r)
	return ns >= st.ArchivedNs && (st.Readings == 0 || (ns > st.LastNs && ns >= st.CompactedNs))
}

// headPut puts live reading r, received at nowNs, in the head, as put in a
// transaction would store it; the caller checked appendable and holds
// metersMu and headMu. It returns the reading's refusal (an implausible
// counter), which changes the meter's state all the same.
func (s *Store) headPut(r meter.Reading, nowNs int64, out *headApply) error {
	id := r.Meter
	st := s.meters[id]
	ns := readingNs(&st, r)
	isNew := st.Readings == 0 && st.SeenNs == 0
	if err := checkCounter(&st, &r, ns, true, s.maxPowerW(id)); err != nil {
		if !isNew {
			s.meters[id] = st
			s.head.dirty[id] = true
		}
		return err
	}
	mh := s.head.meters[id]
	if mh == nil {
		mh = &meterHead{}
		if st.Readings > 0 {
			mh.base, mh.hasBase = st.last(), true
		}
		s.head.meters[id] = mh
	}
	s.seq++
	p := headPoint{point: point{ns: ns, id: s.seq, powerW: r.PowerW, energyWh: r.EnergyWh, hasEnergy: r.HasEnergy},
		pf: r.PowerFactor, hasPF: r.HasPF}
	mh.pts = append(mh.pts, p)
	s.head.n++
	if st.Readings == 0 {
		st.FirstNs = ns
	}
	st.Readings++
	st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
	s.noteInterval(id, &st, nowNs)
	st.SeenNs = nowNs
	s.meters[id] = st
	s.head.dirty[id] = true
	if isNew {
		if _, ok := s.info[id]; !ok {
			info := MeterInfo{Source: r.Source, Created: time.Unix(0, nowNs).UTC()}
			s.info[id] = info
			s.head.newInfo[id] = info
		}
	}
	if out != nil && s.watchers.count.Load() > 0 {
		out.fresh = append(out.fresh, p.record(id))
	}
	s.stored.Inc()
	return nil
}

// checkpointInto writes the head into tx: its readings, the rollups and
// power factor statistics they add, the meter states and registry entries
// it changed (into changed and newInfo, which the caller writes), and the
// log position it covers.
func (s *Store) checkpointInto(tx *bolt.Tx, changed map[string]meterState, newInfo map[string]MeterInfo) error {
	h := s.head
	if err := putMeta(tx, keyWALLSN, s.nextLSN-1); err != nil {
		return err
	}
	if err := putMeta(tx, keyEpoch, s.epoch); err != nil {
		return err
	}
	if h.empty() {
		return nil
	}
	ids := make([]string, 0, len(h.meters))
	for id := range h.meters {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	rolls := newRollups(s.maxGap)
	pfs := map[string]pfAgg{}
	for _, id := range ids {
		mh := h.meters[id]
		raw, err := tx.Bucket(bucketSeries).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		raw.FillPercent = 0.95
		for _, p := range mh.pts {
			if err := raw.Put(timeKey(p.ns), encodePoint(p.point)); err != nil {
				return fmt.Errorf("meter %q: %w", id, err)
			}
		}
		mh.addTo(rolls, id)
		headView{id: *mh}.pfs(id, pfs)
	}
	if err := rolls.apply(tx); err != nil {
		return err
	}
	if err := writePF(tx, pfs); err != nil {
		return err
	}
	for id := range h.dirty {
		if st, ok := s.meters[id]; ok {
			changed[id] = st
		}
	}
	for id, info := range h.newInfo {
		if err := putInfo(tx, id, info); err != nil {
			return err
		}
		newInfo[id] = info
	}
	return nil
}

func putMeta(tx *bolt.Tx, key []byte, v uint64) error {
	return tx.Bucket(bucketMeta).Put(key, binary.BigEndian.AppendUint64(nil, v))
}

func getMeta(tx *bolt.Tx, key []byte) uint64 {
	if v := tx.Bucket(bucketMeta).Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// encodePoint is encodeValue for a point.
func encodePoint(p point) []byte {
	return encodeValue(p.id, meter.Reading{PowerW: p.powerW, EnergyWh: p.energyWh, HasEnergy: p.hasEnergy})
}

// pending is an entry whose callback waits for its reading to be safe.
type pending struct {
	e entry
	// sync is set when it waits for the log's fdatasync (a QoS 1 reading,
	// a barrier), clear when the log's write will do (a QoS 0 reading).
	sync bool
}

// logWriter is the bbolt engine's writer state; only the writer goroutine
// uses it.
type logWriter struct {
	wal   *walWriter
	frame []meter.Reading // applied to the head, not yet written to the log
	// frameFirst is the LSN of frame[0]; frameNs the group's clock.
	frameFirst uint64
	frameNs    int64
	waiting    []pending
	// cpFailedAt is when a checkpoint last failed, with cpErr: the head is
	// not checkpointed again for a second.
	cpFailedAt time.Time
	cpErr      error
	// logErr is set when the log failed and no checkpoint has covered
	// the head since: readings are refused meanwhile.
	logErr error
}

// ErrHeadFull refuses readings while the head is full and cannot be
// checkpointed; it wraps why (bbolt's errors.ErrMaxSizeReached for a
// database at its maximum size, a disk error).
var ErrHeadFull = errors.New("store: the readings in memory reached store.head_max_mb and the database cannot take them")

// openLog replays the log past the last checkpoint into the head,
// checkpoints it, and starts the log of this run.
func (s *Store) openLog(dir string) error {
	walDir := filepath.Join(dir, walDirName)
	var epoch, after uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		epoch, after = getMeta(tx, keyEpoch), getMeta(tx, keyWALLSN)
		return nil
	}); err != nil {
		return err
	}
	s.epoch, s.nextLSN = epoch, after+1
	replayed := 0
	next, err := replayLog(walDir, epoch, after, func(f walFrame) error {
		s.nextLSN = f.first
		replayed += len(f.readings)
		batch := make([]entry, len(f.readings))
		for i, r := range f.readings {
			batch[i] = entry{r: r}
		}
		return s.applyBatch(batch, f.nowNs, nil)
	})
	if err != nil {
		return fmt.Errorf("store: replay the log in %s: %w", walDir, err)
	}
	s.nextLSN = max(s.nextLSN, next)
	if replayed > 0 {
		s.log.Info("log replayed", slog.Int("readings", replayed))
	}
	// This run's log starts afresh, in a new epoch, once a checkpoint
	// holds what was replayed. If it cannot (a full database), the run
	// carries on the old log, in new segments after it, and the head
	// keeps what was replayed until a checkpoint succeeds.
	s.epoch = epoch + 1
	cpErr := s.commit(nil)
	if cpErr != nil {
		s.epoch = epoch
		s.log.Error("checkpoint after replaying the log failed; the readings stay in memory and in the log", slog.Any("error", cpErr))
	}
	w, err := openWALWriter(walDir, s.epoch, s.nextLSN, s.segSize, cpErr != nil)
	if err != nil {
		return fmt.Errorf("store: open the log in %s: %w", walDir, err)
	}
	// The first segment now: its zeros are written once, before any
	// reading waits for them.
	if err := w.startSegment(s.nextLSN); err != nil {
		return fmt.Errorf("store: open the log in %s: %w", walDir, err)
	}
	s.lw = &logWriter{wal: w}
	if cpErr != nil {
		s.lw.cpFailedAt, s.lw.cpErr = time.Now(), cpErr
	}
	return nil
}

// applyBatch applies batch, taken at nowNs: readings that append go to the
// head (and to lw's frame, when lw is not nil: nil while replaying);
// from the first that does not on, the rest of the batch is committed in a
// transaction, after a checkpoint. Callbacks wait in lw.waiting.
func (s *Store) applyBatch(batch []entry, nowNs int64, lw *logWriter) error {
	var out headApply
	var refuse error
	switch {
	case lw == nil:
	case lw.logErr != nil:
		refuse = fmt.Errorf("%w (the log failed: %w): reading not stored", ErrHeadFull, lw.logErr)
	case s.head.bytes() >= s.headMax && !lw.cpFailedAt.IsZero():
		refuse = fmt.Errorf("%w (%w): reading not stored", ErrHeadFull, lw.cpErr)
	}
	s.metersMu.Lock()
	s.headMu.Lock()
	rest := len(batch)
	for i := range batch {
		e := &batch[i]
		if e.barrier {
			if lw != nil {
				lw.waiting = append(lw.waiting, pending{e: *e, sync: true})
			}
			continue
		}
		st := s.meters[e.r.Meter]
		if e.alone() || !appendable(&st, e.r) {
			rest = i
			break
		}
		if refuse != nil {
			e.rejected = refuse
		} else {
			e.rejected = s.headPut(e.r, nowNs, &out)
			if lw != nil {
				if len(lw.frame) == 0 {
					lw.frameFirst, lw.frameNs = s.nextLSN, nowNs
				}
				lw.frame = append(lw.frame, e.r)
			}
			s.nextLSN++
		}
		if lw != nil && e.done != nil {
			lw.waiting = append(lw.waiting, pending{e: *e, sync: !e.volatile})
		}
	}
	s.headMu.Unlock()
	s.metersMu.Unlock()
	if lw != nil {
		if err := s.writeFrame(lw); err != nil {
			return err
		}
	}
	if len(out.fresh) > 0 {
		s.watchers.send(out.fresh)
	}
	if rest == len(batch) {
		return nil
	}
	// A reading older than its meter's newest, or a job: in a transaction
	// of its own, as before the log, with the head checkpointed first.
	tail := batch[rest:]
	if lw != nil {
		s.settle(lw, false)
	}
	err := s.commit(tail)
	if err != nil {
		s.commitErrors.Inc()
		s.log.Error("commit failed; its readings are not acknowledged", slog.Int("readings", len(tail)), slog.Any("error", err))
	}
	if lw == nil {
		return err
	}
	if err == nil {
		lw.cpFailedAt, lw.cpErr, lw.logErr = time.Time{}, nil, nil
		lw.wal.covered(keepFreeSegments)
	} else if !s.head.empty() { // its checkpoint failed
		lw.cpFailedAt, lw.cpErr = time.Now(), err
	}
	for i := range tail {
		if tail[i].done != nil {
			s.acks <- committed{tail, err}
			break
		}
	}
	return nil
}

// writeFrame writes lw's frame to the log and hands on the callbacks that
// wait for no fdatasync.
func (s *Store) writeFrame(lw *logWriter) error {
	if len(lw.frame) > 0 {
		err := lw.wal.append(lw.frameFirst, lw.frameNs, lw.frame)
		clear(lw.frame)
		lw.frame = lw.frame[:0]
		if err != nil {
			s.logFailed(lw, err)
			return nil
		}
	}
	s.release(lw, false)
	return nil
}

// release hands the callbacks that are due to the acknowledgement
// goroutine, in order: all of them once the log is synced, else those
// before the first that waits for a sync.
func (s *Store) release(lw *logWriter, synced bool) {
	n := len(lw.waiting)
	if !synced {
		n = slices.IndexFunc(lw.waiting, func(p pending) bool { return p.sync })
		if n < 0 {
			n = len(lw.waiting)
		}
	}
	if n == 0 {
		return
	}
	out := make([]entry, n)
	for i := range n {
		out[i] = lw.waiting[i].e
	}
	lw.waiting = slices.Delete(lw.waiting, 0, n)
	s.acks <- committed{out, nil}
}

// fail answers every waiting callback with err: their readings are not
// safe, and their senders resend.
func (s *Store) fail(lw *logWriter, err error) {
	if len(lw.waiting) == 0 {
		return
	}
	out := make([]entry, len(lw.waiting))
	for i, p := range lw.waiting {
		out[i] = p.e
	}
	lw.waiting = lw.waiting[:0]
	s.acks <- committed{out, err}
}

// logFailed handles a failed write or sync of the log. The head holds the
// readings, but the log has a hole (their LSNs), past which a replay would
// not go: a checkpoint covers it, and then everything waiting is safe. If
// the checkpoint fails too, the waiting callbacks fail (their senders
// resend), and readings are refused until a checkpoint succeeds.
func (s *Store) logFailed(lw *logWriter, err error) {
	s.commitErrors.Inc()
	lw.wal.abandon()
	if s.checkpoint(lw) == nil {
		s.log.Warn("log write failed; the readings were checkpointed into the database instead", slog.Any("error", err))
		s.release(lw, true)
		return
	}
	s.log.Error("log write failed and the database cannot take a checkpoint; readings are refused until it can", slog.Any("error", err))
	lw.logErr = err
	s.fail(lw, err)
}

// settle makes everything waiting safe: with checkpoint, by a checkpoint
// (falling back on the log's fdatasync when it fails), else by the
// fdatasync alone.
func (s *Store) settle(lw *logWriter, checkpoint bool) {
	if checkpoint && !s.head.empty() {
		if err := s.checkpoint(lw); err == nil {
			s.release(lw, true)
			return
		}
	}
	if len(lw.waiting) == 0 && !lw.wal.unsynced {
		return
	}
	start := time.Now()
	if err := lw.wal.sync(); err != nil {
		s.logFailed(lw, err)
		return
	}
	s.syncSeconds.Observe(time.Since(start).Seconds())
	s.release(lw, true)
}

// crashHook, when set (by crash tests alone), is called at the named
// instants of a checkpoint: "checkpoint-tx", its transaction written and
// not committed, and "checkpoint-done", committed with the log not yet
// freed.
var crashHook func(at string)

// checkpoint writes the head into bbolt and frees the log it covers.
func (s *Store) checkpoint(lw *logWriter) error {
	if s.head.empty() {
		return nil
	}
	start := time.Now()
	err := s.commit(nil)
	if crashHook != nil && err == nil {
		crashHook("checkpoint-done")
	}
	if err != nil {
		lw.cpFailedAt, lw.cpErr = start, err
		s.commitErrors.Inc()
		s.log.Error("checkpoint failed; the head stays in memory and in the log", slog.Any("error", err))
		return err
	}
	lw.cpFailedAt, lw.cpErr, lw.logErr = time.Time{}, nil, nil
	lw.wal.covered(keepFreeSegments)
	s.checkpointSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// logLoop is the bbolt engine's single writer: it applies what is queued
// to the head and the log, syncs the log for the callbacks that wait for
// it (a group per store.sync_delay), flushes it every
// store.flush_interval, and checkpoints.
func (s *Store) logLoop() {
	defer s.wg.Done()
	defer close(s.acks)
	lw := s.lw
	syncT := time.NewTimer(time.Hour)
	syncT.Stop()
	armed := false
	flushT := time.NewTicker(s.flushInterval)
	defer flushT.Stop()
	cpT := time.NewTicker(s.checkpointInterval)
	defer cpT.Stop()
	var held *entry
	for {
		var e entry
		if held != nil {
			e, held = *held, nil
		} else {
			select {
			case next, ok := <-s.queue:
				if !ok {
					s.settle(lw, true)
					if err := lw.wal.close(); err != nil {
						s.log.Error("log close failed", slog.Any("error", err))
					}
					return
				}
				e = next
			case <-syncT.C:
				armed = false
				s.settle(lw, false)
				continue
			case <-flushT.C:
				if lw.wal.unsynced {
					s.settle(lw, false)
				}
				continue
			case <-cpT.C:
				s.settle(lw, true)
				continue
			}
		}
		var batch []entry
		batch, held = s.drain(e)
		if err := s.applyBatch(batch, time.Now().UnixNano(), lw); err != nil {
			s.log.Error("readings not stored", slog.Any("error", err))
		}
		s.headReadings.Set(float64(s.head.n))
		s.headBytes.Set(float64(s.head.bytes()))
		s.logBytes.Set(float64(lw.wal.size()))
		if (s.head.bytes() >= s.headMax || lw.logErr != nil) && time.Since(lw.cpFailedAt) > time.Second {
			s.settle(lw, true)
		}
		if slices.ContainsFunc(lw.waiting, func(p pending) bool { return p.sync }) && !armed {
			if !lw.wal.unsynced || s.syncDelay <= 0 || lw.wal.pendingBytes() >= syncEarlyBytes {
				s.settle(lw, false)
			} else {
				syncT.Reset(s.syncDelay)
				armed = true
			}
		}
	}
}

// keepFreeSegments is how many covered log segments are kept for reuse.
const keepFreeSegments = 2

// syncEarlyBytes is how much unsynced log makes a group sync at once:
// waiting longer would not put more readings in a page.
const syncEarlyBytes = 16 << 10

// Checkpoint writes the head into bbolt now (a backup, a check of the
// rollups, a test) and returns once it is durable.
func (s *Store) Checkpoint() error {
	if s.pg != nil {
		return s.Flush()
	}
	ch := make(chan error, 1)
	if err := s.enqueue(entry{checkpoint: true, done: func(err error) { ch <- err }}); err != nil {
		return err
	}
	return <-ch
}
