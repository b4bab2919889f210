package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/vatio-energy/vatio/internal/meter"
)

// The bbolt engine's writer: what it takes goes to the head and the log,
// the log is synced a group at a time, and checkpoints write the head into
// the file (see bolt_head.go).

// Meta keys of the log: the run (epoch) whose log is live, and the last LSN
// a checkpoint holds.
var (
	keyEpoch  = []byte("wal_epoch")
	keyWALLSN = []byte("wal_lsn")
	// keyLedger holds the ledger's last seconds at the last checkpoint.
	keyLedger = []byte("ledger")
)

func putMeta(tx *bolt.Tx, key []byte, v uint64) error {
	return tx.Bucket(bucketMeta).Put(key, binary.BigEndian.AppendUint64(nil, v))
}

func getMeta(tx *bolt.Tx, key []byte) uint64 {
	if v := tx.Bucket(bucketMeta).Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
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
	// warnedAt is when a failed log write was last logged; refusedAt,
	// readings refused for it.
	warnedAt, refusedAt time.Time
	// directErr is why the last group the log could not take could not
	// be stored directly either, at directFailedAt (see frameFailed).
	directErr      error
	directFailedAt time.Time
	// logErr is set when the log failed and no checkpoint has covered
	// the head since: readings are refused meanwhile.
	logErr error
	// syncT ends a group's store.sync_delay, when armed; flushT ticks
	// every store.flush_interval, cpT every store.checkpoint_interval.
	syncT  *time.Timer
	armed  bool
	flushT *time.Ticker
	cpT    *time.Ticker
}

// ErrHeadFull refuses readings while the head is full and cannot be
// checkpointed; it wraps why (bbolt's errors.ErrMaxSizeReached for a
// database at its maximum size, a disk error).
var ErrHeadFull = errors.New("store: the readings in memory reached store.head_max_mb and the database cannot take them")

// newEpoch returns a random epoch other than old and 0: a segment copied in
// from another data directory, or left from an earlier run, never passes
// for this run's.
func newEpoch(old uint64) uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		if e := binary.LittleEndian.Uint64(b[:]); e != 0 && e != old {
			return e
		}
	}
}

// keepDamaged copies the segment of d, when it has one to copy, into
// wal-damaged in dir, out of the log's way (a clean stop removes the log),
// and returns where, or why not.
func keepDamaged(dir string, d walDamage) string {
	if d.offset < 0 {
		return "nothing: the segments are missing"
	}
	to := filepath.Join(dir, "wal-damaged", filepath.Base(d.path))
	err := os.MkdirAll(filepath.Dir(to), 0o700)
	if err == nil {
		err = copyFile(d.path, to)
	}
	if err != nil {
		return "not kept: " + err.Error()
	}
	return to
}

// openLog replays the log past the last checkpoint into the head,
// checkpoints it, and starts the log of this run.
func (eng *boltEngine) openLog(dir string) error {
	s := eng.s
	walDir := filepath.Join(dir, walDirName)
	var epoch, after uint64
	var done map[string]uint64 // meters whose records the database holds up to an LSN
	if err := eng.db.View(func(tx *bolt.Tx) error {
		epoch, after = getMeta(tx, keyEpoch), getMeta(tx, keyWALLSN)
		done = meterPositions(tx)
		eng.ledger.load(tx.Bucket(bucketMeta).Get(keyLedger))
		return nil
	}); err != nil {
		return err
	}
	eng.epoch, eng.nextLSN = epoch, after+1
	next, damage, err := replayLog(walDir, epoch, after, func(f walFrame) error {
		// Runs of records the database does not hold yet, each at its
		// own LSNs: a late reading took the others in (see lateMeters).
		var batch []entry
		first := f.first
		for i, r := range f.readings {
			lsn := f.first + uint64(i)
			if last, ok := done[r.Meter]; ok && lsn <= last {
				if err := eng.replayRun(first, f.nowNs, batch); err != nil {
					return err
				}
				batch, first = batch[:0], lsn+1
				continue
			}
			batch = append(batch, entry{r: r})
		}
		return eng.replayRun(first, f.nowNs, batch)
	})
	if err != nil {
		return fmt.Errorf("store: replay the log in %s: %w", walDir, err)
	}
	eng.nextLSN = max(eng.nextLSN, next)
	if eng.replayed > 0 {
		s.log.Info("log replayed", slog.Int("readings", eng.replayed))
	}
	for _, d := range damage {
		kept := keepDamaged(dir, d)
		s.log.Error("the log is damaged; acknowledged readings in it are lost", slog.String("damage", d.String()), slog.String("kept", kept))
	}
	// This run's log starts afresh, in a new epoch, once a checkpoint
	// holds what was replayed. If it cannot (a full database), the run
	// carries on the old log, in new segments after it, and the head
	// keeps what was replayed until a checkpoint succeeds.
	eng.epoch = newEpoch(epoch)
	cpErr := eng.commit(nil)
	if cpErr != nil {
		eng.epoch = epoch
		s.log.Error("checkpoint after replaying the log failed; the readings stay in memory and in the log", slog.Any("error", cpErr))
	}
	w, err := openWALWriter(walDir, eng.epoch, eng.nextLSN, eng.segSize, cpErr != nil)
	if err != nil {
		return fmt.Errorf("store: open the log in %s: %w", walDir, err)
	}
	// The first segment now: its zeros are written once, before any
	// reading waits for them. Without room for it (a full disk), the
	// store opens all the same: each group of readings then tries the
	// log again and, failing, goes into the database at once (see
	// frameFailed), as readings did before the log existed.
	if err := w.startSegment(eng.nextLSN); err != nil {
		s.log.Error("no room for the log; readings go into the database directly until there is", slog.String("dir", walDir), slog.Any("error", err))
	}
	eng.lw = &logWriter{wal: w, syncT: time.NewTimer(time.Hour), flushT: time.NewTicker(eng.flushInterval),
		cpT: time.NewTicker(eng.checkpointInterval)}
	eng.lw.syncT.Stop()
	if cpErr != nil {
		eng.lw.cpFailedAt, eng.lw.cpErr = time.Now(), cpErr
	}
	return nil
}

// replayRun applies batch, records of the log from LSN first on, while
// replaying it.
func (eng *boltEngine) replayRun(first uint64, nowNs int64, batch []entry) error {
	if len(batch) == 0 {
		return nil
	}
	eng.nextLSN = first
	eng.replayed += len(batch)
	return eng.applyBatch(batch, nowNs, nil)
}

// applyBatch applies batch, taken at nowNs: readings that append go to the
// head (and to lw's frame, when lw is not nil: nil while replaying);
// from the first that does not on, the rest of the batch is committed in a
// transaction, after a checkpoint. Callbacks wait in lw.waiting.
func (eng *boltEngine) applyBatch(batch []entry, nowNs int64, lw *logWriter) error {
	s := eng.s
	var out headApply
	var refuse error
	switch {
	case lw == nil:
	case lw.logErr != nil:
		refuse = fmt.Errorf("%w (the log's sync failed, and a checkpoint since: %w)", ErrNotStored, lw.logErr)
	case eng.head.bytes() >= eng.headMax && !lw.cpFailedAt.IsZero():
		refuse = fmt.Errorf("%w (%w): reading not stored", ErrHeadFull, lw.cpErr)
	}
	if refuse != nil {
		eng.refusing.Store(&refuse)
	}
	s.metersMu.Lock()
	eng.headMu.Lock()
	rest := len(batch)
	// What the readings change, to undo if the log cannot take them (see
	// frameFailed); and where their callbacks start in lw.waiting. The
	// undo's map is the engine's, cleared: this is every batch's path.
	clear(eng.undoMeters)
	undo := headUndo{n: eng.head.n, nextLSN: eng.nextLSN, seq: eng.seq, meters: eng.undoMeters, ledger: eng.undoLedger[:0]}
	from := 0
	if lw != nil {
		from = len(lw.waiting)
	}
	put := 0
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
		if refuse == nil && eng.ledger.resend(e.r.Delivery, nowNs) {
			// Stored when it first came: acknowledged once the log holds
			// what came before it.
			s.resent.Inc()
			if lw != nil && e.done != nil {
				lw.waiting = append(lw.waiting, pending{e: *e, sync: true})
			}
			continue
		}
		if refuse != nil {
			e.rejected = refuse
		} else {
			if lw != nil {
				undo.note(eng, e.r.Meter)
			}
			e.rejected = eng.headPut(e.r, nowNs, &out)
			if e.rejected == nil {
				put++
				if d := e.r.Delivery; d.Key != 0 && !e.r.Stamped {
					prev, had := eng.ledger.note(d, nowNs)
					if lw != nil {
						undo.ledger = append(undo.ledger, ledgerUndo{key: d.Key, prev: prev, had: had})
					}
				}
			}
			if lw != nil {
				if len(lw.frame) == 0 {
					lw.frameFirst, lw.frameNs = eng.nextLSN, nowNs
				}
				lw.frame = append(lw.frame, e.r)
			}
			eng.nextLSN++
		}
		if lw != nil && e.done != nil {
			lw.waiting = append(lw.waiting, pending{e: *e, sync: !e.volatile})
		}
	}
	eng.headMu.Unlock()
	s.metersMu.Unlock()
	if lw != nil {
		if !eng.writeFrame(lw, &undo, from, batch[:rest]) {
			out.fresh, put = nil, 0 // undone, and stored otherwise or refused
		}
		s.stored.Add(float64(put)) // a replay's readings were counted when they came
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
		eng.settle(lw, false)
	}
	// Late readings alone take their meters' part of the head along; the
	// rest of it stays, in the log too (see lateMeters).
	_, late := eng.lateMeters(tail)
	err := eng.commit(tail)
	switch {
	case lw == nil: // replaying: the error is Open's
		s.finished(tail, err)
		return err
	case err == nil && !late: // the whole head was checkpointed first
		lw.cpFailedAt, lw.cpErr, lw.logErr = time.Time{}, nil, nil
		lw.wal.covered(keepFreeSegments)
	case err == nil:
	case !late && !eng.head.empty(): // its checkpoint failed
		lw.cpFailedAt, lw.cpErr = time.Now(), err
	}
	s.finished(tail, err)
	return nil
}

// writeFrame writes lw's frame to the log and hands on the callbacks that
// wait for no fdatasync. If the log cannot take it, it undoes the frame's
// readings, those of group, whose callbacks wait from lw.waiting[from] on,
// with undo, has them stored otherwise (see frameFailed), and returns false.
func (eng *boltEngine) writeFrame(lw *logWriter, undo *headUndo, from int, group []entry) bool {
	if len(lw.frame) > 0 {
		err := lw.wal.append(lw.frameFirst, lw.frameNs, lw.frame)
		clear(lw.frame)
		lw.frame = lw.frame[:0]
		if err != nil {
			return eng.frameFailed(lw, err, undo, from, group)
		}
		eng.taking("the log takes readings again")
	}
	eng.release(lw, false)
	return true
}

// taking clears the store's refusal, if any, saying why in the log.
func (eng *boltEngine) taking(why string) {
	if eng.refusing.Load() != nil && eng.refusing.Swap(nil) != nil { // a load alone on every frame
		eng.s.log.Info(why)
	}
}

// health is why readings are being refused, nil when they are not; it
// names the cause, not the files (/healthz answers anyone).
func (eng *boltEngine) health() error {
	p := eng.refusing.Load()
	if p == nil {
		return nil
	}
	cause := "see the log"
	var pe *fs.PathError
	switch err := *p; {
	case errors.Is(err, bolterrors.ErrMaxSizeReached):
		cause = "the database is at its maximum size"
	case errors.Is(err, syscall.ENOSPC):
		cause = syscall.ENOSPC.Error()
	case errors.As(err, &pe):
		cause = pe.Err.Error()
	}
	return fmt.Errorf("store: readings are refused: %s", cause)
}

// ErrNotStored refuses readings that neither the log nor the database
// could take (a full disk); it wraps why.
var ErrNotStored = errors.New("store: neither the log nor the database can take the reading")

// frameFailed handles a frame the log could not take (no room for a new
// segment, a write error): its group of readings, group, is undone from
// the head at once, as if never received (nobody saw them: the watchers
// get them only once stored), and stored instead in a transaction of its
// own, as before the log existed, with their meters' part of the head (see
// lateMeters); the log's segment is left and a new one starts with the
// next frame, at the group's LSN, with no hole. If that transaction fails
// too (tried at most once a second), the group's callbacks fail with
// ErrNotStored, so their senders resend. The frames before the group are
// synced first; their callbacks go first.
func (eng *boltEngine) frameFailed(lw *logWriter, err error, undo *headUndo, from int, group []entry) bool {
	s := eng.s
	s.metersMu.Lock()
	eng.headMu.Lock()
	undo.apply(eng)
	eng.headMu.Unlock()
	s.metersMu.Unlock()
	lw.waiting = lw.waiting[:from] // their callbacks go with the group's commit
	if serr := lw.wal.sync(); serr != nil {
		eng.logFailed(lw, serr)
	} else {
		eng.release(lw, true)
	}
	lw.wal.abandon()
	for i := range group {
		group[i].rejected = nil // the commit judges them again, from the same states
	}
	cerr := lw.directErr
	if cerr == nil || time.Since(lw.directFailedAt) > time.Second {
		cerr = eng.commit(group)
	}
	if cerr == nil {
		if time.Since(lw.warnedAt) > time.Minute { // on a full disk, every group comes here
			lw.warnedAt = time.Now()
			s.log.Warn("log write failed; the readings went into the database directly", slog.Any("error", err))
		}
		lw.directErr = nil
		eng.taking("readings are taken again")
		s.finished(group, nil)
		return false
	}
	if lw.directErr == nil || time.Since(lw.directFailedAt) > time.Second {
		lw.directErr, lw.directFailedAt = cerr, time.Now()
	}
	s.commitErrors.Inc()
	if time.Since(lw.refusedAt) > time.Minute {
		lw.refusedAt = time.Now()
		s.log.Error("neither the log nor the database can take readings; they are refused until one can",
			slog.Any("log_error", err), slog.Any("database_error", cerr))
	}
	cause := fmt.Errorf("%w: %w", ErrNotStored, cerr)
	eng.refusing.Store(&cause)
	for i := range group {
		if group[i].done != nil {
			s.acks <- committed{group, cause}
			break
		}
	}
	return false
}

// probe checks, while readings are refused and none comes to try, whether
// the log and the database take writes again, and if so clears the
// refusal: a health check must not stay failed until a reading arrives.
func (eng *boltEngine) probe(lw *logWriter) {
	if eng.refusing.Load() == nil || !eng.head.empty() {
		return
	}
	w := lw.wal
	if w.f == nil && (w.startErr == nil || time.Since(w.startFailed) > segmentRetry) {
		if w.startSegment(eng.nextLSN) != nil {
			return
		}
	}
	if w.f == nil {
		return
	}
	err := eng.db.Update(func(tx *bolt.Tx) error { return putMeta(tx, keyEpoch, getMeta(tx, keyEpoch)) })
	if err == nil {
		lw.cpErr, lw.cpFailedAt, lw.directErr = nil, time.Time{}, nil
		eng.taking("readings are taken again")
	}
}

// release hands the callbacks that are due to the acknowledgement
// goroutine, in order: all of them once the log is synced, else those
// before the first that waits for a sync.
func (eng *boltEngine) release(lw *logWriter, synced bool) {
	s := eng.s
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
func (eng *boltEngine) fail(lw *logWriter, err error) {
	s := eng.s
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
func (eng *boltEngine) logFailed(lw *logWriter, err error) {
	s := eng.s
	s.commitErrors.Inc()
	lw.wal.abandon()
	if eng.checkpointHead(lw) == nil {
		// Once a minute at most: on a full disk, every group comes here.
		if time.Since(lw.warnedAt) > time.Minute {
			lw.warnedAt = time.Now()
			s.log.Warn("log write failed; the readings were checkpointed into the database instead", slog.Any("error", err))
		}
		eng.release(lw, true)
		return
	}
	s.log.Error("log write failed and the database cannot take a checkpoint; readings are refused until it can", slog.Any("error", err))
	lw.logErr = err
	eng.fail(lw, err)
}

// settle makes everything waiting safe: with checkpoint, by a checkpoint
// (falling back on the log's fdatasync when it fails), else by the
// fdatasync alone.
func (eng *boltEngine) settle(lw *logWriter, checkpoint bool) {
	if checkpoint && !eng.head.empty() {
		if err := eng.checkpointHead(lw); err == nil {
			eng.release(lw, true)
			return
		}
	}
	if len(lw.waiting) == 0 && !lw.wal.unsynced {
		return
	}
	start := time.Now()
	if err := lw.wal.sync(); err != nil {
		eng.logFailed(lw, err)
		return
	}
	eng.syncSeconds.Observe(time.Since(start).Seconds())
	eng.release(lw, true)
}

// crash calls Options.crashAt, when a test set it, at the named instants
// of a checkpoint: "checkpoint-tx", its transaction written and not
// committed, and "checkpoint-done", committed with the log not yet freed;
// at "commit-tx", any other transaction of the writer written and not
// committed; and at "await-checkpoint", the writer about to wait for a
// checkpoint running beside it.
func (eng *boltEngine) crash(at string) {
	if eng.crashAt != nil {
		eng.crashAt(at)
	}
}

// checkpointHead writes the head into bbolt and frees the log it covers.
func (eng *boltEngine) checkpointHead(lw *logWriter) error {
	s := eng.s
	eng.awaitCheckpoint()
	if eng.head.empty() {
		return nil
	}
	start := time.Now()
	err := eng.commit(nil)
	if err == nil {
		eng.crash("checkpoint-done")
	}
	if err != nil {
		lw.cpFailedAt, lw.cpErr = start, err
		s.commitErrors.Inc()
		s.log.Error("checkpoint failed; the head stays in memory and in the log", slog.Any("error", err))
		return err
	}
	if lw.cpErr != nil {
		s.log.Info("checkpoint succeeded after failing", slog.Any("failed_with", lw.cpErr))
	}
	lw.cpFailedAt, lw.cpErr, lw.logErr = time.Time{}, nil, nil
	lw.wal.covered(keepFreeSegments)
	eng.checkpointSeconds.Observe(time.Since(start).Seconds())
	eng.taking("readings are taken again")
	return nil
}

// next returns the next queued entry. While it waits, it syncs the log for
// the callbacks that wait for it (a group per store.sync_delay), flushes it
// every store.flush_interval, and checkpoints; once the queue is closed, it
// checkpoints what is left and closes the log.
func (eng *boltEngine) next() (entry, bool) {
	s, lw := eng.s, eng.lw
	for {
		select {
		case e, ok := <-s.queue:
			if ok {
				return e, true
			}
			lw.flushT.Stop()
			lw.cpT.Stop()
			eng.awaitCheckpoint()
			eng.settle(lw, true)
			if err := lw.wal.close(); err != nil {
				s.log.Error("log close failed", slog.Any("error", err))
			}
			return entry{}, false
		case <-lw.syncT.C:
			lw.armed = false
			eng.settle(lw, false)
		case <-lw.flushT.C:
			switch {
			case (lw.cpErr != nil || lw.logErr != nil) && time.Since(lw.cpFailedAt) > time.Second:
				// A failed checkpoint is tried again here when no
				// reading comes to try it (see write): readings are
				// refused until it succeeds.
				eng.settle(lw, true)
			case lw.wal.unsynced:
				eng.settle(lw, false)
			}
			eng.probe(lw)
			eng.gauges()
		case err := <-eng.cpDone():
			eng.finishCheckpoint(err)
		case <-lw.cpT.C:
			eng.startCheckpoint(lw)
			eng.gauges()
		}
	}
}

// gauges sets the head's and the log's metrics.
func (eng *boltEngine) gauges() {
	eng.headReadings.Set(float64(eng.head.n))
	eng.headBytes.Set(float64(eng.head.bytes()))
	eng.logBytes.Set(float64(eng.lw.wal.size()))
}

// write applies batch to the head and the log (see applyBatch), then
// checkpoints a full head, and syncs the log for the callbacks that wait
// for it, at once or after store.sync_delay for others to share the sync.
func (eng *boltEngine) write(batch []entry) {
	s, lw := eng.s, eng.lw
	if err := eng.applyBatch(batch, time.Now().UnixNano(), lw); err != nil {
		s.log.Error("readings not stored", slog.Any("error", err))
	}
	select {
	case err := <-eng.cpDone():
		eng.finishCheckpoint(err)
	default:
	}
	switch {
	case time.Since(lw.cpFailedAt) <= time.Second:
	case lw.logErr != nil:
		// The callbacks wait for this checkpoint: it covers the log's
		// hole (see logFailed).
		eng.settle(lw, true)
	case eng.head.bytes() >= eng.headMax && eng.cp == nil:
		eng.startCheckpoint(lw)
	case eng.head.bytes() >= 2*eng.headMax:
		// A checkpoint runs, and the head has filled again meanwhile:
		// the writer waits for it rather than grow the head further.
		eng.settle(lw, false)
		eng.awaitCheckpoint()
		eng.startCheckpoint(lw)
	}
	eng.gauges()
	if slices.ContainsFunc(lw.waiting, func(p pending) bool { return p.sync }) && !lw.armed {
		if !lw.wal.unsynced || eng.syncDelay <= 0 || lw.wal.pendingBytes() >= syncEarlyBytes {
			eng.settle(lw, false)
		} else {
			lw.syncT.Reset(eng.syncDelay)
			lw.armed = true
		}
	}
}

// keepFreeSegments is how many covered log segments are kept for reuse.
const keepFreeSegments = 2

// syncEarlyBytes is how much unsynced log makes a group sync at once:
// waiting longer would not put more readings in a page.
const syncEarlyBytes = 16 << 10

// checkpoint has the writer write the head into bbolt now (a backup, a
// check of the rollups, a test) and returns once it is durable.
func (eng *boltEngine) checkpoint() error {
	ch := make(chan error, 1)
	if err := eng.s.enqueue(entry{checkpoint: true, done: func(err error) { ch <- err }}); err != nil {
		return err
	}
	return <-ch
}
