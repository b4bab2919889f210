package store

import (
	"fmt"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// meterState is what the store keeps per meter beside its readings, updated
// in the same transaction as them.
type meterState struct {
	FirstNs   int64   // timestamp of the oldest reading
	LastNs    int64   // timestamp of the newest reading
	LastW     float64 // power of the newest reading
	LastWh    float64 // energy counter of the newest reading, if LastHasWh
	LastHasWh bool
	SeenNs    int64  // when a live reading was last committed (server clock); imports leave it
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

func (m meterState) last() sample {
	return sample{ns: m.LastNs, w: m.LastW, wh: m.LastWh, hasEnergy: m.LastHasWh}
}

// One commit flow for both engines. A batch's entries are stored by
// applyBatch, whatever the engine: by the rules of rules.go, with the
// meter states, the registry entries of new meters, the imports, edits and
// erasures, and what the commit tells the watchers. The engine's transaction (writeTx)
// stores what that produces: raw readings and rollups in bbolt buckets or
// PostgreSQL tables. Once the engine has committed, applied makes the
// result visible to readers.

// writeTx is an engine's write transaction, as applyBatch drives it.
type writeTx interface {
	// state returns meter id's state as the transaction found it: zero for
	// a meter it does not know, or erased in it.
	state(id string) meterState
	// info returns meter id's registry entry as the transaction found it.
	info(id string) (MeterInfo, bool)
	// appendNewest stores reading r, at ns, as its meter's newest, and
	// returns the id it gave it.
	appendNewest(r meter.Reading, ns int64) (uint64, error)
	// freeNs returns ns, or the first millisecond after it at which
	// meterID has no reading.
	freeNs(meterID string, ns int64) (int64, error)
	// putLate stores reading r at ns, not newer than all its meter's
	// others, and marks for rebuilding the minutes it changes, those at or
	// after floor (none for a negative floor): 1 if r is new, 0 if it
	// replaced the reading at ns.
	putLate(r meter.Reading, ns, floor int64) (int, error)
	// changes returns the rollup changes of what the transaction stored
	// since it began or was last cut.
	changes() *rollups
	// resend reports whether d is a resend of a message stored (see
	// ledger); delivered records that d's message is stored, at nowNs.
	resend(d meter.Delivery, nowNs int64) (bool, error)
	delivered(d meter.Delivery, nowNs int64) error
	// register writes the registry entry of a meter seen for the first
	// time: now, or with the transaction's other new entries at its end.
	register(id string, info MeterInfo) error
	// cut writes what the readings so far changed (blocks, rollups), for
	// a job to see it.
	cut() error
	// job runs a job of the compressor or of retention.
	job(e *entry, res *txResult) error
	// edit applies an edit of the registry (see runEdit).
	edit(job *editJob, res *txResult) error
	// erase erases a meter (see DeleteMeter); applyBatch drops it from res
	// after.
	erase(job *eraseJob, res *txResult) error
}

// txResult is what one transaction changed, applied to the store's cache
// once it has committed (see applied).
type txResult struct {
	start time.Time
	// changed holds the new states of the meters the transaction changed;
	// newInfo the registry entries it created or changed; erased the
	// meters it erased.
	changed map[string]meterState
	newInfo map[string]MeterInfo
	erased  []string
	// resent counts readings of messages sent again, not stored again.
	resent int
	// fresh holds, when watch, the live readings stored as their meters'
	// newest, for the watchers.
	watch bool
	fresh []Record
	// pfs holds the power factor statistics of the readings it added.
	pfs    map[string]pfAgg
	stored int
}

// newTxResult returns an empty result of a transaction begun at start;
// watch asks for the records of fresh readings.
func newTxResult(start time.Time, watch bool) *txResult {
	return &txResult{start: start, changed: map[string]meterState{}, newInfo: map[string]MeterInfo{},
		watch: watch, pfs: map[string]pfAgg{}}
}

// applyBatch stores the entries of batch in tx, recording in res what they
// change. A reading refused by the counter rules, an edit refused or an
// erasure of an unknown meter sets its entry's rejected, and the rest of the
// batch goes on; any other error fails the transaction. Only the writer
// calls it.
func (s *Store) applyBatch(tx writeTx, batch []entry, res *txResult) error {
	nowNs := res.start.UnixNano()
	for i := range batch {
		e := &batch[i]
		switch {
		case e.barrier, e.checkpoint, e.reload:
		case e.compress != nil, e.retire != nil, e.prune != nil:
			if err := tx.cut(); err != nil { // what came before, first
				return err
			}
			if err := tx.job(e, res); err != nil {
				return err
			}
		case e.imp != nil:
			e.imp.added = 0
			for j, r := range e.imp.readings {
				added, err := s.storeReading(tx, res, r, false, nowNs)
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
			res.stored += e.imp.added
		case e.edit != nil, e.erase != nil:
			if err := tx.cut(); err != nil { // what came before, first
				return err
			}
			var err error
			if e.edit != nil {
				err = tx.edit(e.edit, res)
			} else if err = tx.erase(e.erase, res); err == nil {
				delete(res.changed, e.erase.meter)
				delete(res.newInfo, e.erase.meter)
				res.erased = append(res.erased, e.erase.meter)
			}
			if _, ok := err.(*refused); ok {
				e.rejected = err
			} else if err != nil {
				return err
			}
		default:
			added, err := s.storeReading(tx, res, e.r, true, nowNs)
			if meter.ReasonOf(err) != "" {
				e.rejected = err
				continue
			}
			if err != nil {
				return err
			}
			res.stored += added
		}
	}
	return nil
}

// storeReading stores reading r in tx: live, as received at nowNs, or from
// an import. It returns 1 if r is new, 0 if it replaced a reading, and the
// counter rules' refusal, which changes the meter's state all the same.
func (s *Store) storeReading(tx writeTx, res *txResult, r meter.Reading, live bool, nowNs int64) (int, error) {
	id := r.Meter
	st, ok := res.changed[id]
	if !ok {
		st = tx.state(id)
	}
	if r.Delivery.Dup && r.Delivery.Key != 0 {
		if again, err := tx.resend(r.Delivery, nowNs); err != nil || again {
			if again {
				res.resent++
			}
			return 0, err // stored when it first came
		}
	}
	isNew := st.Readings == 0 && st.SeenNs == 0
	var fresh *[]Record
	if live && res.watch {
		fresh = &res.fresh
	}
	maxW := s.maxPowerIn(tx, res.newInfo, id)
	var before meterState // an import's, to store it again without its counter
	if !live {
		before = st
	}
	added, err := put(tx, &st, r, maxW, fresh)
	if !live && meter.ReasonOf(err) == meter.ReasonImplausibleEnergy {
		// History is kept whole: a counter that jumps in it (a meter
		// replaced, a device's glitch) is stored without its counter, its
		// energy integrated from power, as a late reading's that does not
		// fit is. An import is never refused half-way through for it,
		// with part of it stored.
		st, r.HasEnergy = before, false
		added, err = put(tx, &st, r, maxW, fresh)
	}
	if meter.ReasonOf(err) != "" {
		if !isNew {
			res.changed[id] = st // the rejected counter's tracking
		}
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("meter %q: %w", id, err)
	}
	if added > 0 {
		notePF(res.pfs, r)
	}
	if r.Delivery.Key != 0 && !r.Stamped {
		if err := tx.delivered(r.Delivery, nowNs); err != nil {
			return 0, err
		}
	}
	if live {
		// Only a live reading says the meter is there now: imported
		// history leaves when it was last heard from as it was.
		s.noteInterval(id, &st, nowNs)
		st.SeenNs = nowNs
	}
	res.changed[id] = st
	if _, known := tx.info(id); !known {
		if _, ok := res.newInfo[id]; !ok {
			info := MeterInfo{Source: r.Source, Created: time.Unix(0, nowNs).UTC()}
			res.newInfo[id] = info
			if err := tx.register(id, info); err != nil {
				return 0, err
			}
		}
	}
	return added, nil
}

// applied makes what a committed transaction changed visible to readers
// and watchers, and counts it; entries is the size of its batch.
func (s *Store) applied(res *txResult, entries int) {
	s.resent.Add(float64(res.resent))
	s.metersMu.Lock()
	for _, id := range res.erased {
		delete(s.meters, id)
		delete(s.info, id)
		delete(s.gaps, id)
	}
	for id, st := range res.changed { // a meter erased then read again, anew
		s.meters[id] = st
	}
	for id, info := range res.newInfo {
		s.info[id] = info
	}
	s.metersMu.Unlock()
	if len(res.fresh) > 0 {
		s.watchers.send(res.fresh)
	}
	s.commitSeconds.Observe(time.Since(res.start).Seconds())
	s.batchSize.Observe(float64(entries))
	s.stored.Add(float64(res.stored))
}
