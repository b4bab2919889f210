package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/meter"
)

// commit writes batch in one transaction, with the rollups it changes, and
// once it is durable makes the new meter states visible to readers.
func (eng *boltEngine) commit(batch []entry) error {
	s := eng.s
	// Pruning old rollups alone neither reads nor writes what the head
	// changes: it leaves the head where it is.
	withHead := !(len(batch) == 1 && batch[0].prune != nil)
	if len(batch) > 0 && !eng.head.empty() && withHead {
		// The head first, in a transaction of its own: a job iterates and
		// deletes what it moves, which bbolt's cursors do not survive over
		// pages changed earlier in the same transaction.
		if err := eng.commit(nil); err != nil {
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
	seq := eng.seq
	stored := 0
	body := func(tx *bolt.Tx) error {
		if withHead {
			if err := eng.checkpointInto(tx, changed, newInfo); err != nil {
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
				if err := eng.runErase(tx, e.erase, changed, newInfo); err != nil {
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
	tx, err := eng.db.Begin(true)
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
	freeze := withHead && !eng.head.empty()
	if freeze {
		eng.headMu.Lock()
		eng.frozen, eng.frozenTx = eng.head, tx.ID()
		eng.head = newHead()
		eng.headMu.Unlock()
	}
	err = tx.Commit()
	if freeze {
		eng.headMu.Lock()
		if err != nil {
			eng.head = eng.frozen // it stays, for the next checkpoint
		}
		eng.frozen = nil
		eng.headMu.Unlock()
	}
	if err != nil {
		return err
	}
	eng.seq = seq
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
