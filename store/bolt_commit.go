package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/internal/meter"
)

// commit stores batch in one transaction of the commit flow (see
// applyBatch), and once it is durable makes the new meter states visible
// to readers. A nil batch is a checkpoint alone. A batch of late readings
// takes the head of their meters along (see lateMeters); anything else runs
// after a checkpoint of the whole head.
func (eng *boltEngine) commit(batch []entry) error {
	s := eng.s
	// One write transaction at a time, and this one starts from the
	// head the running checkpoint leaves.
	eng.awaitCheckpoint()
	// Pruning old rollups alone neither reads nor writes what the head
	// changes: it leaves the head where it is.
	withHead := !(len(batch) == 1 && batch[0].prune != nil)
	var part *head // the part of the head that goes with batch
	if withHead && len(batch) > 0 {
		if ids, late := eng.lateMeters(batch); late {
			part, withHead = eng.head.split(ids), false
		}
	}
	if len(batch) > 0 && !eng.head.empty() && withHead {
		// The head first, in a transaction of its own: a job iterates and
		// deletes what it moves, which bbolt's cursors do not survive over
		// pages changed earlier in the same transaction.
		start := time.Now()
		if err := eng.commit(nil); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		eng.checkpointSeconds.Observe(time.Since(start).Seconds())
	}
	res := newTxResult(time.Now(), s.watchers.count.Load() > 0)
	tx, err := eng.db.Begin(true)
	if err != nil {
		return err
	}
	t := &boltTx{eng: eng, tx: tx, w: newTxWriter(tx, s.maxGap, eng.seq), erased: map[string]bool{}}
	if err := t.write(batch, withHead, part, res); err != nil {
		tx.Rollback()
		return err
	}
	if len(batch) == 0 {
		eng.crash("checkpoint-tx")
	} else {
		eng.crash("commit-tx")
	}
	// Readers see bbolt and the head as of one instant (see view): what
	// of the head the transaction holds is frozen while the commit lands,
	// which readers need not wait for, and goes once it has.
	var frozen *head
	switch {
	case part != nil && !part.empty():
		frozen = part
	case withHead && !eng.head.empty():
		frozen = eng.head
	}
	if frozen != nil {
		eng.headMu.Lock()
		eng.frozen, eng.frozenTx = frozen, tx.ID()
		if frozen == eng.head {
			eng.head = newHead()
		} else {
			eng.head.remove(frozen)
		}
		eng.headMu.Unlock()
	}
	err = tx.Commit()
	if frozen != nil {
		eng.headMu.Lock()
		if err != nil {
			eng.frozenTx = math.MaxInt // see writeCheckpoint
		}
		if err != nil {
			eng.head = frozen.merge(eng.head) // it stays, for the next checkpoint
		}
		eng.frozen = nil
		eng.headMu.Unlock()
	}
	if err != nil {
		return err
	}
	eng.seq = t.w.seq
	for k, e := range t.deliveries {
		eng.ledger.note(meter.Delivery{Key: k}, e.atNs)
	}
	s.applied(res, len(batch))
	return nil
}

// boltTx is a bbolt transaction of the commit flow (see writeTx). Only
// the writer changes the store's cache of meter states and registry, so it
// reads them there.
type boltTx struct {
	eng *boltEngine
	tx  *bolt.Tx
	w   *txWriter
	// erased holds the meters erased in the transaction: a reading after
	// its meter's erasure starts it anew.
	erased map[string]bool
	// deliveries are the ledger entries of the messages the transaction
	// stores: the writer's ledger takes them once it commits.
	deliveries map[uint64]ledgerEntry
}

// write stores the head, when withHead, or part of it, then batch (see
// applyBatch), then what they changed: rollups, power factor statistics,
// meter states and the last reading id.
func (t *boltTx) write(batch []entry, withHead bool, part *head, res *txResult) error {
	eng := t.eng
	switch {
	case withHead:
		if err := eng.checkpointInto(t.tx, eng.head, eng.nextLSN-1, eng.ledger.encode(time.Now().Add(-ledgerKeep).UnixNano()), eng.s.meters, res.changed, res.newInfo); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	case part != nil:
		if err := eng.writeHead(t.tx, part, eng.s.meters, res.changed, res.newInfo); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		if err := putMeterPositions(t.tx, part); err != nil {
			return err
		}
	}
	if err := t.eng.s.applyBatch(t, batch, res); err != nil {
		return err
	}
	if len(t.deliveries) > 0 {
		// Late readings stamped on receipt: their entries go with them
		// (the log does not have them), with the ledger's last seconds.
		l := &ledger{m: t.deliveries}
		b := append(eng.ledger.encode(time.Now().Add(-ledgerKeep).UnixNano()), l.encode(0)...)
		if err := t.tx.Bucket(bucketMeta).Put(keyLedger, b); err != nil {
			return err
		}
	}
	if err := t.w.finish(); err != nil {
		return err
	}
	if err := writePF(t.tx, res.pfs); err != nil {
		return err
	}
	meters := t.tx.Bucket(bucketMeters)
	for id, st := range res.changed {
		if err := meters.Put([]byte(id), st.encode()); err != nil {
			return err
		}
	}
	return t.tx.Bucket(bucketMeta).Put(keySeq, binary.BigEndian.AppendUint64(nil, t.w.seq))
}

func (t *boltTx) state(id string) meterState {
	if t.erased[id] {
		return meterState{}
	}
	return t.eng.s.meters[id]
}

func (t *boltTx) info(id string) (MeterInfo, bool) {
	if t.erased[id] {
		return MeterInfo{}, false
	}
	info, ok := t.eng.s.info[id]
	return info, ok
}

func (t *boltTx) appendNewest(r meter.Reading, ns int64) (uint64, error) {
	return t.w.appendNewest(r, ns)
}

func (t *boltTx) freeNs(meterID string, ns int64) (int64, error) { return t.w.freeNs(meterID, ns) }

func (t *boltTx) resend(d meter.Delivery, nowNs int64) (bool, error) {
	if _, ok := t.deliveries[d.Key]; ok {
		return true, nil
	}
	return t.eng.ledger.resend(d, nowNs), nil
}

func (t *boltTx) delivered(d meter.Delivery, nowNs int64) error {
	if t.deliveries == nil {
		t.deliveries = map[uint64]ledgerEntry{}
	}
	t.deliveries[d.Key] = ledgerEntry{atNs: nowNs}
	return nil
}

func (t *boltTx) putLate(r meter.Reading, ns, floor int64) (int, error) {
	return t.w.putLate(r, ns, floor)
}

func (t *boltTx) changes() *rollups { return t.w.rolls }

func (t *boltTx) register(id string, info MeterInfo) error { return putInfo(t.tx, id, info) }

func (t *boltTx) cut() error {
	if err := t.w.finish(); err != nil {
		return err
	}
	t.w = newTxWriter(t.tx, t.eng.s.maxGap, t.w.seq)
	return nil
}

func (t *boltTx) job(e *entry, res *txResult) error {
	meters := t.eng.s.meters
	switch {
	case e.compress != nil:
		return compress(t.tx, e.compress, meters, res.changed)
	case e.retire != nil:
		return retire(t.tx, e.retire, meters, res.changed)
	default:
		return prune(t.tx, e.prune, meters, res.changed)
	}
}

func (t *boltTx) edit(job *editJob, res *txResult) error {
	return t.eng.s.runEdit(func(id string, info MeterInfo) error { return putInfo(t.tx, id, info) }, job, res.newInfo)
}

func (t *boltTx) erase(job *eraseJob, res *txResult) error {
	if err := t.eng.runErase(t.tx, job, res.newInfo); err != nil {
		return err
	}
	t.erased[job.meter] = true
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

// appendNewest stores reading r, at ns, as its meter's newest: a raw key.
func (w *txWriter) appendNewest(r meter.Reading, ns int64) (uint64, error) {
	raw, err := w.rawBucket(r.Meter)
	if err != nil {
		return 0, err
	}
	w.seq++
	if err := raw.Put(timeKey(ns), encodeValue(w.seq, r)); err != nil {
		return 0, err
	}
	return w.seq, nil
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
