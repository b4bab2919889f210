package store

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/internal/meter"
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
// The periodic checkpoints and those of a full head run beside the writer
// (bolt_checkpoint.go). A reading older than its meter's newest goes into
// bbolt at once, with its meter's part of the head (see lateMeters).
// Anything else the writer takes (an import, an edit, a job of the
// compressor or of retention) runs, as before the log existed, in a
// transaction of its own, which checkpoints the head first.

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
	// lsn is the log position of the meter's newest record in the head.
	lsn uint64
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
func (eng *boltEngine) view(ids []string, fn func(tx *bolt.Tx, hv headView) error) error {
	eng.headMu.RLock()
	tx, err := eng.db.Begin(false)
	if err != nil {
		eng.headMu.RUnlock()
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
	if eng.frozen != nil && tx.ID() < eng.frozenTx {
		add(eng.frozen)
	}
	add(eng.head)
	eng.headMu.RUnlock()
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
func (eng *boltEngine) headBefore(ns int64) bool {
	eng.headMu.RLock()
	defer eng.headMu.RUnlock()
	for _, h := range []*head{eng.head, eng.frozen} {
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
func (eng *boltEngine) headPut(r meter.Reading, nowNs int64, out *headApply) error {
	s := eng.s
	id := r.Meter
	st := s.meters[id]
	ns := readingNs(&st, r)
	isNew := st.Readings == 0 && st.SeenNs == 0
	if err := checkCounter(&st, &r, ns, true, s.maxPowerW(id)); err != nil {
		if !isNew {
			s.meters[id] = st
			eng.head.dirty[id] = true
		}
		return err
	}
	mh := eng.head.meters[id]
	if mh == nil {
		mh = &meterHead{}
		if st.Readings > 0 {
			mh.base, mh.hasBase = st.last(), true
		}
		eng.head.meters[id] = mh
	}
	mh.lsn = eng.nextLSN
	eng.seq++
	p := headPoint{point: point{ns: ns, id: eng.seq, powerW: r.PowerW, energyWh: r.EnergyWh, hasEnergy: r.HasEnergy},
		pf: r.PowerFactor, hasPF: r.HasPF}
	mh.pts = append(mh.pts, p)
	eng.head.n++
	if st.Readings == 0 {
		st.FirstNs = ns
	}
	st.Readings++
	st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
	s.noteInterval(id, &st, nowNs)
	st.SeenNs = nowNs
	s.meters[id] = st
	eng.head.dirty[id] = true
	if isNew {
		if _, ok := s.info[id]; !ok {
			info := MeterInfo{Source: r.Source, Created: time.Unix(0, nowNs).UTC()}
			s.info[id] = info
			eng.head.newInfo[id] = info
		}
	}
	if out != nil && s.watchers.count.Load() > 0 {
		out.fresh = append(out.fresh, p.record(id))
	}
	return nil
}

// headUndo is what putting a group of readings in the head changed, to
// undo when they cannot be stored (see frameFailed).
type headUndo struct {
	n            int
	nextLSN, seq uint64
	meters       map[string]undoMeter
	// ledger are the ledger's entries the group replaced.
	ledger []ledgerUndo
}

// ledgerUndo is a ledger entry as it was before the group.
type ledgerUndo struct {
	key  uint64
	prev ledgerEntry
	had  bool
}

// undoMeter is a meter as it was before the group.
type undoMeter struct {
	st                         meterState
	hadState, hadInfo, hadHead bool
	dirty, hadNewInfo          bool
	pts                        int
	lsn                        uint64
}

// note records meter id as it is, the first time the group touches it; the
// caller holds metersMu and headMu.
func (u *headUndo) note(eng *boltEngine, id string) {
	if _, ok := u.meters[id]; ok {
		return
	}
	m := undoMeter{dirty: eng.head.dirty[id]}
	m.st, m.hadState = eng.s.meters[id]
	_, m.hadInfo = eng.s.info[id]
	_, m.hadNewInfo = eng.head.newInfo[id]
	if mh := eng.head.meters[id]; mh != nil {
		m.hadHead, m.pts, m.lsn = true, len(mh.pts), mh.lsn
	}
	u.meters[id] = m
}

// apply puts back what the group changed (but a meter's usual interval,
// a sample of which the group may have added); the caller holds metersMu
// and headMu. A meter's readings are cut back with their capacity: a
// reader's copy of them stays as it was.
func (u *headUndo) apply(eng *boltEngine) {
	s, h := eng.s, eng.head
	for id, m := range u.meters {
		if m.hadState {
			s.meters[id] = m.st
		} else {
			delete(s.meters, id)
		}
		if !m.hadInfo {
			delete(s.info, id)
		}
		if !m.hadNewInfo {
			delete(h.newInfo, id)
		}
		if !m.dirty {
			delete(h.dirty, id)
		}
		if mh := h.meters[id]; mh != nil {
			if m.hadHead {
				mh.pts, mh.lsn = slices.Clip(mh.pts[:m.pts]), m.lsn
			} else {
				delete(h.meters, id)
			}
		}
	}
	h.n, eng.nextLSN, eng.seq = u.n, u.nextLSN, u.seq
	for i := len(u.ledger) - 1; i >= 0; i-- {
		if l := u.ledger[i]; l.had {
			eng.ledger.m[l.key] = l.prev
		} else {
			delete(eng.ledger.m, l.key)
		}
	}
	eng.undoLedger = u.ledger[:0]
}

// checkpointInto writes head h into tx: its readings, the rollups and
// power factor statistics they add, the meter states and registry entries
// it changed (into changed and newInfo, which the caller writes; states
// holds the states of the meters it changed), and the log position it
// covers, lsn.
func (eng *boltEngine) checkpointInto(tx *bolt.Tx, h *head, lsn uint64, ledger []byte, states map[string]meterState, changed map[string]meterState, newInfo map[string]MeterInfo) error {
	if err := putLogPosition(tx, lsn, eng.epoch); err != nil {
		return err
	}
	if err := tx.Bucket(bucketMeta).Put(keyLedger, ledger); err != nil {
		return err
	}
	return eng.writeHead(tx, h, states, changed, newInfo)
}

// writeHead writes what head h holds into tx, as checkpointInto does, but
// not the log position: for a part of the head (see splitHead).
func (eng *boltEngine) writeHead(tx *bolt.Tx, h *head, states map[string]meterState, changed map[string]meterState, newInfo map[string]MeterInfo) error {
	s := eng.s
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
		if st, ok := states[id]; ok {
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

// encodePoint is encodeValue for a point.
func encodePoint(p point) []byte {
	return encodeValue(p.id, meter.Reading{PowerW: p.powerW, EnergyWh: p.energyWh, HasEnergy: p.hasEnergy})
}
