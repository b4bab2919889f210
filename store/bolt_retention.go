package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// applyRetention is ApplyRetention on bbolt: archive files first, then
// the writer deletes what they hold, a transaction of whole hours at a
// time.
func (eng *boltEngine) applyRetention(ctx context.Context, now time.Time) (Stats, error) {
	s := eng.s
	var st Stats
	var errs []error
	// Retention plans from the database: a head that holds readings it
	// may archive goes into it first. Nearly always the head holds only
	// recent readings, and a run writes nothing.
	if s.retention.Raw > 0 && eng.headBefore(now.Add(-s.retention.Raw).UnixNano()) {
		if err := eng.checkpoint(); err != nil {
			return st, fmt.Errorf("store: retention: %w", err)
		}
	}
	if s.retention.Raw > 0 {
		s.metersMu.RLock()
		ids := make([]string, 0, len(s.meters))
		for id := range s.meters {
			ids = append(ids, id)
		}
		s.metersMu.RUnlock()
		slices.Sort(ids)
		cutoff := now.Add(-s.retention.Raw)
		for _, id := range ids {
			if err := eng.archiveMeter(ctx, id, cutoff, &st); err != nil {
				if ctx.Err() != nil {
					return st, ctx.Err()
				}
				errs = append(errs, fmt.Errorf("meter %q: %w", id, err))
			}
		}
	}
	job := &pruneJob{limit: maxPrune}
	for _, t := range Tiers {
		if keep := s.retention.of(t); keep > 0 {
			job.before[t] = now.Add(-keep).UnixNano()
		}
	}
	if job.before != [len(job.before)]int64{} {
		for {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			job.deleted, job.more = 0, false
			if err := s.run(entry{prune: job}); err != nil {
				errs = append(errs, err)
				break
			}
			st.RollupsDeleted += job.deleted
			if !job.more {
				break
			}
		}
	}
	n, err := pruneArchives(s.archiveDir, s.archiveKeep, now)
	st.ArchivesRemoved = n
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("store: retention: %w", err)
	}
	return st, nil
}

// archiveMeter archives and deletes, oldest first, the months of meterID
// that ended by cutoff.
func (eng *boltEngine) archiveMeter(ctx context.Context, meterID string, cutoff time.Time, st *Stats) error {
	s := eng.s
	from := int64(0)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		month, ok, err := eng.oldestMonth(meterID, from)
		if err != nil || !ok || month.AddDate(0, 1, 0).After(cutoff) {
			return err
		}
		a, err := eng.archiveMonth(ctx, meterID, month)
		if err != nil {
			return err
		}
		st.Files++
		st.Archived += a.readings
		deleted, deferred, err := eng.retireMonth(ctx, a)
		st.Deleted += deleted
		st.Deferred += deferred
		if err != nil {
			return err
		}
		s.log.Info("raw readings archived", slog.String("meter", meterID), slog.String("month", month.Format("2006-01")),
			slog.String("file", a.path), slog.Int("readings", a.readings), slog.Int("deleted", deleted))
		if deferred > 0 {
			s.log.Info("readings changed while their month was archived; it is archived again at the next run",
				slog.String("meter", meterID), slog.String("month", month.Format("2006-01")))
		}
		from = month.AddDate(0, 1, 0).UnixNano()
	}
}

// oldestMonth returns the calendar month (UTC) of meterID's oldest reading
// at or after from, and false if there is none.
func (eng *boltEngine) oldestMonth(meterID string, from int64) (time.Time, bool, error) {
	var month time.Time
	found := false
	err := eng.db.View(func(tx *bolt.Tx) error {
		ser, ok := openSeries(tx, meterID)
		if !ok {
			return nil
		}
		for p, err := range ser.forward(from) {
			if err != nil {
				return err
			}
			t := time.Unix(0, p.ns).UTC()
			month, found = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC), true
			break
		}
		return nil
	})
	return month, found, err
}

// retireMonth has the writer delete the parts of an archived month, and
// returns the readings deleted and the parts deferred.
func (eng *boltEngine) retireMonth(ctx context.Context, a *archived) (deleted, deferred int, err error) {
	s := eng.s
	for _, job := range a.parts {
		if err := ctx.Err(); err != nil {
			return deleted, deferred, err
		}
		if err := s.run(entry{retire: job}); err != nil {
			return deleted, deferred, err
		}
		deleted += job.deleted
		if job.deferred {
			deferred++
		}
	}
	return deleted, deferred, nil
}

// retireJob asks the writer to delete one meter's readings with from <= ns
// < to (whole hours), which were archived: only if they are still n
// readings with the digest sum (see digest), that is, exactly as archived.
type retireJob struct {
	meter    string
	from, to int64
	n        int
	sum      []byte
	deleted  int  // set by the writer
	deferred bool // set by the writer: the readings changed, none deleted
}

// retire runs a retireJob in tx, updating the meter's state in changed: its
// reading count, its first reading, its archive boundary.
func retire(tx *bolt.Tx, job *retireJob, states map[string]meterState, changed map[string]meterState) error {
	ser, ok := openSeries(tx, job.meter)
	if !ok {
		job.deferred = true
		return nil
	}
	var d digest
	var rawKeys []int64
	for p, err := range ser.forward(job.from) {
		if err != nil {
			return fmt.Errorf("meter %q: %w", job.meter, err)
		}
		if p.ns >= job.to {
			break
		}
		d.add(p)
	}
	if d.n != job.n || !bytes.Equal(d.sum(), job.sum) {
		job.deferred = true
		return nil
	}
	if ser.raw != nil {
		c := ser.raw.Cursor()
		for k, _ := c.Seek(timeKey(job.from)); k != nil && keyNs(k) < job.to; k, _ = c.Next() {
			rawKeys = append(rawKeys, keyNs(k))
		}
		for _, ns := range rawKeys {
			if err := ser.raw.Delete(timeKey(ns)); err != nil {
				return err
			}
		}
	}
	if ser.blocks != nil { // job.from and job.to are whole hours: the blocks are wholly inside
		var blockKeys []int64
		c := ser.blocks.Cursor()
		for k, _ := c.Seek(timeKey(job.from)); k != nil && keyNs(k) < job.to; k, _ = c.Next() {
			blockKeys = append(blockKeys, keyNs(k))
		}
		for _, ns := range blockKeys {
			if err := ser.blocks.Delete(timeKey(ns)); err != nil {
				return err
			}
		}
	}
	st, ok := changed[job.meter]
	if !ok {
		st = states[job.meter]
	}
	st.Readings -= min(st.Readings, uint64(job.n))
	st.ArchivedNs = max(st.ArchivedNs, job.to)
	st.FirstNs = st.LastNs // with no reading left, First is Last (see Meter)
	ser, _ = openSeries(tx, job.meter)
	for p, err := range ser.forward(0) {
		if err != nil {
			return fmt.Errorf("meter %q: %w", job.meter, err)
		}
		st.FirstNs = p.ns
		break
	}
	changed[job.meter] = st
	job.deleted = job.n
	return nil
}

// pruneJob asks the writer to delete the rollup buckets of each tier that
// start before before[tier] (0: none), at most limit in one transaction.
// Only buckets older than the meter's archive boundary go, whole UTC days.
type pruneJob struct {
	before  [TierDay + 1]int64
	limit   int
	deleted int  // set by the writer
	more    bool // set by the writer: buckets to delete are left
}

// prune runs a pruneJob in tx for the meters in states.
//
// Rollups are deleted only before the meter's archive boundary because
// readings arriving late after it rebuild the minutes around them, and
// the hours and days holding those minutes from their minutes: all of
// those must still be there. Days are the coarsest such unit, so the cut
// is the start of the boundary's day.
func prune(tx *bolt.Tx, job *pruneJob, states map[string]meterState, changed map[string]meterState) error {
	ids := slices.Sorted(maps.Keys(states))
	for _, t := range Tiers {
		if job.before[t] == 0 {
			continue
		}
		top := tx.Bucket(t.bucket())
		for _, id := range ids {
			st, ok := changed[id]
			if !ok {
				st = states[id]
			}
			b := top.Bucket([]byte(id))
			if b == nil || st.ArchivedNs == 0 {
				continue
			}
			cut := TierDay.start(min(job.before[t], st.ArchivedNs))
			var keys []int64
			c := b.Cursor()
			for k, _ := c.First(); k != nil && keyNs(k) < cut; k, _ = c.Next() {
				if job.deleted+len(keys) >= job.limit {
					job.more = true
					break
				}
				keys = append(keys, keyNs(k))
			}
			for _, ns := range keys {
				if err := b.Delete(timeKey(ns)); err != nil {
					return err
				}
			}
			job.deleted += len(keys)
			if job.more {
				return nil
			}
		}
	}
	return nil
}
