package store

import (
	"encoding/binary"
	"log/slog"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A checkpoint on store.checkpoint_interval, or of a full head, runs beside
// the writer, which goes on putting readings in a new head and the log while
// the old one (frozen) is written into bbolt: a checkpoint of 2,000 meters'
// few minutes takes about a second, and acknowledgements do not wait for
// it. Anything else that needs a bbolt transaction of the writer (a late
// reading, a job, a checkpoint something waits for) first waits for the
// running checkpoint to end (see commit).

// cpRun is a checkpoint whose transaction runs beside the writer.
type cpRun struct {
	done  chan error
	start time.Time
	// old is how many of the log's old segments it covers: those before
	// the segment that was current when its head was frozen.
	old int
}

// cpDone returns the channel the running checkpoint ends on, nil (never
// ready) when none runs.
func (eng *boltEngine) cpDone() <-chan error {
	if eng.cp == nil {
		return nil
	}
	return eng.cp.done
}

// startCheckpoint freezes the head and writes it into bbolt on a goroutine
// of its own; the writer goes on with a new head. Only the writer calls it,
// and only with no checkpoint running.
func (eng *boltEngine) startCheckpoint(lw *logWriter) {
	if eng.cp != nil || eng.head.empty() {
		return
	}
	s, h := eng.s, eng.head
	// What the checkpoint writes is the head's, and the meter states and
	// log position as of now: the writer changes them from here on.
	lsn, seq := eng.nextLSN-1, eng.seq
	ledger := eng.ledger.encode(time.Now().Add(-ledgerKeep).UnixNano())
	states := make(map[string]meterState, len(h.dirty))
	for id := range h.dirty {
		if st, ok := s.meters[id]; ok {
			states[id] = st
		}
	}
	eng.headMu.Lock()
	// Every reader now reads the frozen head, until the checkpoint's
	// transaction id is known and its commit lands (see view).
	eng.frozen, eng.frozenTx = h, math.MaxInt
	eng.head = newHead()
	eng.headMu.Unlock()
	run := &cpRun{done: make(chan error, 1), start: time.Now(), old: len(lw.wal.old)}
	eng.cp = run
	go func() { run.done <- eng.writeCheckpoint(h, lsn, seq, ledger, states) }()
}

// writeCheckpoint writes head h, which covers the log up to lsn and the
// reading ids up to seq, and the ledger's last seconds, into bbolt in one
// transaction.
func (eng *boltEngine) writeCheckpoint(h *head, lsn, seq uint64, ledger []byte, states map[string]meterState) (err error) {
	tx, err := eng.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// A transaction that failed does not use up its id: the next
			// one to commit (a document's) takes it, and must not pass
			// for this one with readers (see view).
			eng.headMu.Lock()
			eng.frozenTx = math.MaxInt
			eng.headMu.Unlock()
		}
	}()
	eng.headMu.Lock()
	eng.frozenTx = tx.ID()
	eng.headMu.Unlock()
	changed, newInfo := map[string]meterState{}, map[string]MeterInfo{}
	err = eng.checkpointInto(tx, h, lsn, ledger, states, changed, newInfo)
	if err == nil {
		meters := tx.Bucket(bucketMeters)
		for id, st := range changed {
			if err = meters.Put([]byte(id), st.encode()); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = tx.Bucket(bucketMeta).Put(keySeq, binary.BigEndian.AppendUint64(nil, seq))
	}
	if err != nil {
		tx.Rollback()
		return err
	}
	eng.crash("checkpoint-tx")
	return tx.Commit()
}

// awaitCheckpoint waits for the running checkpoint, if any, to end, and
// finishes it.
func (eng *boltEngine) awaitCheckpoint() {
	if eng.cp != nil {
		eng.crash("await-checkpoint")
		eng.finishCheckpoint(<-eng.cp.done)
	}
}

// finishCheckpoint ends the running checkpoint, which returned err: on
// success the frozen head goes and the log it covers is freed; on failure
// the frozen head goes back in front of the new one, for the next
// checkpoint.
func (eng *boltEngine) finishCheckpoint(err error) {
	s, lw, run := eng.s, eng.lw, eng.cp
	eng.cp = nil
	eng.headMu.Lock()
	if err != nil {
		eng.head = eng.frozen.merge(eng.head)
	}
	eng.frozen = nil
	eng.headMu.Unlock()
	if err != nil {
		lw.cpFailedAt, lw.cpErr = run.start, err
		s.commitErrors.Inc()
		s.log.Error("checkpoint failed; the head stays in memory and in the log", slog.Any("error", err))
		return
	}
	eng.crash("checkpoint-done")
	if lw.cpErr != nil {
		s.log.Info("checkpoint succeeded after failing", slog.Any("failed_with", lw.cpErr))
	}
	lw.cpFailedAt, lw.cpErr = time.Time{}, nil
	lw.wal.coveredFirst(run.old, keepFreeSegments)
	if eng.head.bytes() < eng.headMax {
		eng.taking("readings are taken again")
	}
	eng.checkpointSeconds.Observe(time.Since(run.start).Seconds())
	eng.gauges()
}

// merge returns h with later's readings after its own, for a checkpoint of
// h that failed while later took the new readings. The caller holds headMu.
// Readers' copies of h's slices stay valid: they only grow.
func (h *head) merge(later *head) *head {
	for id, lm := range later.meters {
		if mh := h.meters[id]; mh != nil {
			mh.pts, mh.lsn = append(mh.pts, lm.pts...), lm.lsn
		} else {
			h.meters[id] = lm
		}
	}
	h.n += later.n
	for id := range later.dirty {
		h.dirty[id] = true
	}
	for id, info := range later.newInfo {
		if _, ok := h.newInfo[id]; !ok {
			h.newInfo[id] = info
		}
	}
	return h
}

// Late readings and the head.
//
// A reading older than its meter's newest goes into bbolt in a transaction
// of the writer (see put), and so does, first, what the head holds of its
// meter: the late reading changes the rollups around it, which bbolt must
// then hold whole. The rest of the head stays where it is. Such a part of
// the head does not move the log position a checkpoint records (the other
// meters' records past it are still only in the log), so the transaction
// records, per meter, the log position of the newest record it wrote
// (bucketLogMeters); replaying the log skips a meter's records up to it.
// The next checkpoint of the whole head covers them all and empties the
// bucket.

// bucketLogMeters holds, for meters whose part of the head a late reading
// took into bbolt since the last checkpoint: <meter> -> uint64 LSN of its
// newest record in bbolt.
var bucketLogMeters = []byte("wal_meters")

// putLogPosition records that the database holds every record of the log
// of epoch up to lsn, which supersedes bucketLogMeters.
func putLogPosition(tx *bolt.Tx, lsn, epoch uint64) error {
	if err := putMeta(tx, keyWALLSN, lsn); err != nil {
		return err
	}
	if err := putMeta(tx, keyEpoch, epoch); err != nil {
		return err
	}
	if b := tx.Bucket(bucketLogMeters); b != nil {
		if k, _ := b.Cursor().First(); k != nil {
			return tx.DeleteBucket(bucketLogMeters)
		}
	}
	return nil
}

// putMeterPositions records the log position of each meter of part, a part
// of the head written into tx.
func putMeterPositions(tx *bolt.Tx, part *head) error {
	if len(part.meters) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketLogMeters)
	if err != nil {
		return err
	}
	for id, mh := range part.meters {
		if err := b.Put([]byte(id), binary.BigEndian.AppendUint64(nil, mh.lsn)); err != nil {
			return err
		}
	}
	return nil
}

// meterPositions returns what bucketLogMeters holds.
func meterPositions(tx *bolt.Tx) map[string]uint64 {
	b := tx.Bucket(bucketLogMeters)
	if b == nil {
		return nil
	}
	pos := map[string]uint64{}
	_ = b.ForEach(func(k, v []byte) error {
		if len(v) == 8 {
			pos[string(k)] = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return pos
}

// lateMeters returns the meters whose part of the head goes into bbolt with
// tail, the rest of a batch that does not append (see applyBatch), and
// true, when tail holds late readings and barriers alone; false when the
// whole head must be checkpointed first (a job, an import, an edit...).
func (eng *boltEngine) lateMeters(tail []entry) ([]string, bool) {
	var ids []string
	for i := range tail {
		e := &tail[i]
		switch {
		case e.barrier:
		case e.alone():
			return nil, false
		case eng.head.meters[e.r.Meter] != nil && !slices.Contains(ids, e.r.Meter):
			ids = append(ids, e.r.Meter)
		}
	}
	return ids, true
}

// split returns the part of h that holds the meters ids.
func (h *head) split(ids []string) *head {
	part := newHead()
	for _, id := range ids {
		mh := h.meters[id]
		if mh == nil {
			continue
		}
		part.meters[id] = mh
		part.n += len(mh.pts)
		if h.dirty[id] {
			part.dirty[id] = true
		}
		if info, ok := h.newInfo[id]; ok {
			part.newInfo[id] = info
		}
	}
	return part
}

// remove takes part (see split) out of h. The caller holds headMu.
func (h *head) remove(part *head) {
	for id := range part.meters {
		delete(h.meters, id)
		delete(h.dirty, id)
		delete(h.newInfo, id)
	}
	h.n -= part.n
}
