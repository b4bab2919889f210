package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// exportPage is how many readings one read transaction of an export takes,
// so that no transaction stays open for the whole of a long export.
const exportPage = 10000

// Export calls fn with every reading of meterID, oldest first: those in the
// database and those retention moved to its archive files, each once (where
// a month is in both, the database's reading wins at an equal time).
// Readings from archives have ID 0: archives do not keep ids. Retention
// waits meanwhile, so no reading moves from the database to an archive
// under the export. fn's error, or ctx's, ends the export.
func (s *Store) Export(ctx context.Context, meterID string, fn func(Record) error) error {
	if _, err := s.Meter(meterID); err != nil {
		return err
	}
	s.retentionMu.Lock()
	defer s.retentionMu.Unlock()

	months, open, err := s.eng.archives(ctx, meterID)
	if err != nil {
		return fmt.Errorf("store: export %q: %w", meterID, err)
	}
	from := time.Unix(0, 0) // no reading is older (see meter.Limits)
	for _, m := range months {
		if err := s.exportRange(ctx, meterID, from, m, nil, fn); err != nil {
			return err
		}
		ar, err := open(m)
		if err != nil {
			return err
		}
		end := m.AddDate(0, 1, 0)
		err = s.exportRange(ctx, meterID, m, end, ar, fn)
		ar.close()
		if err != nil {
			return err
		}
		from = end
	}
	return s.exportRange(ctx, meterID, from, time.Unix(0, math.MaxInt64), nil, fn)
}

// exportRange passes the readings of [from, to) in the database, merged by
// time with those of the archive ar (when not nil), to fn.
func (s *Store) exportRange(ctx context.Context, meterID string, from, to time.Time, ar *archiveReader, fn func(Record) error) error {
	fromArchive := func(before int64) error {
		for ar != nil && ar.ok && ar.p.ns < before {
			rec := ar.p.record(meterID)
			rec.ID = 0
			if err := fn(rec); err != nil {
				return err
			}
			if err := ar.next(); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		recs, more, err := s.Range(meterID, from, to, exportPage)
		if errors.Is(err, ErrUnknownMeter) { // every reading archived
			recs, more, err = nil, false, nil
		}
		if err != nil {
			return err
		}
		for _, rec := range recs {
			ns := rec.Time.UnixNano()
			if err := fromArchive(ns); err != nil {
				return err
			}
			if ar != nil && ar.ok && ar.p.ns == ns {
				if err := ar.next(); err != nil {
					return err
				}
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if !more {
			break
		}
		from = recs[len(recs)-1].Time.Add(time.Nanosecond)
	}
	return fromArchive(math.MaxInt64)
}
