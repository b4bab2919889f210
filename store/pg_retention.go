package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Retention on PostgreSQL moves a meter's month of raw readings into the
// archives table, as the archive file the bbolt store would write (gzip
// CSV, sealed when a key is set), and deletes them from readings, in one
// transaction that holds the meter's row: nothing can change the month
// meanwhile, and a crash leaves the month either wholly in readings or
// wholly archived.

func (pg *pgEngine) applyRetention(ctx context.Context, now time.Time) (Stats, error) {
	s := pg.s
	var st Stats
	var errs []error
	if s.retention.Raw > 0 {
		rows, err := pg.pool.Query(ctx, `SELECT id FROM meters WHERE info IS NOT NULL ORDER BY id`)
		if err != nil {
			return st, fmt.Errorf("store: retention: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return st, fmt.Errorf("store: retention: %w", err)
		}
		cutoff := now.Add(-s.retention.Raw)
		for _, id := range ids {
			if err := pg.archiveMeter(ctx, id, cutoff, &st); err != nil {
				if ctx.Err() != nil {
					return st, ctx.Err()
				}
				errs = append(errs, fmt.Errorf("meter %q: %w", id, err))
			}
		}
	}
	for _, t := range Tiers {
		keep := s.retention.of(t)
		if keep == 0 {
			continue
		}
		before := now.Add(-keep).UnixNano()
		for {
			// Only before the meter's archive boundary, whole days (see prune).
			tag, err := pg.pool.Exec(ctx, `DELETE FROM rollups WHERE ctid IN (
				SELECT r.ctid FROM rollups r JOIN meters m ON m.id = r.meter
				WHERE r.tier = $1 AND m.archived_ns <> 0
				AND r.start < (least($2, m.archived_ns) / 86400000000000) * 86400000000000 LIMIT $3)`,
				int16(t), before, maxPrune)
			if err != nil {
				errs = append(errs, err)
				break
			}
			st.RollupsDeleted += int(tag.RowsAffected())
			if tag.RowsAffected() < maxPrune {
				break
			}
		}
	}
	if s.archiveKeep > 0 {
		// An archive goes once the end of its month is archiveKeep old.
		cut, _ := pgMonth(now.Add(-s.archiveKeep).UnixNano())
		tag, err := pg.pool.Exec(ctx, `DELETE FROM archives WHERE month < $1`, cut)
		if err != nil {
			errs = append(errs, err)
		} else {
			st.ArchivesRemoved = int(tag.RowsAffected())
		}
	}
	pg.stale.Store(true) // meter states changed under the copy
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("store: retention: %w", err)
	}
	return st, nil
}

// archiveMeter archives, oldest first, the months of meterID that ended
// by cutoff.
func (pg *pgEngine) archiveMeter(ctx context.Context, meterID string, cutoff time.Time, st *Stats) (err error) {
	defer wrapErr(&err, "archive %q", meterID)
	s := pg.s
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var oldest *int64
		if err := pg.pool.QueryRow(ctx, `SELECT min(ts) FROM readings WHERE meter = $1`, meterID).Scan(&oldest); err != nil {
			return err
		}
		if oldest == nil {
			return nil
		}
		from, to := pgMonth(*oldest)
		if time.Unix(0, to).After(cutoff) {
			return nil
		}
		n, err := pg.archiveMonth(ctx, meterID, from, to)
		if err != nil {
			return err
		}
		st.Files++
		st.Archived += n
		st.Deleted += n
		s.log.Info("raw readings archived", slog.String("meter", meterID),
			slog.String("month", time.Unix(0, from).UTC().Format(archiveMonthLayout)), slog.Int("readings", n))
	}
}

// archiveMonth moves meterID's readings with from <= ts < to into the
// month's archive, merged with what it holds (the readings win at equal
// times), and returns how many moved.
func (pg *pgEngine) archiveMonth(ctx context.Context, meterID string, from, to int64) (int, error) {
	s := pg.s
	month := time.Unix(0, from).UTC()
	name := ArchiveName(meterID, month)
	n := 0
	err := pgx.BeginFunc(ctx, pg.pool, func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `SELECT `+pgMeterCols+` FROM meters WHERE id = $1 FOR UPDATE`, meterID)
		_, st, _, err := scanMeter(row)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // erased meanwhile
		}
		if err != nil {
			return err
		}
		var blob []byte
		err = tx.QueryRow(ctx, `SELECT data FROM archives WHERE meter = $1 AND month = $2`, meterID, from).Scan(&blob)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		old := &archiveReader{path: name}
		if blob != nil {
			if old, err = readArchive(name, bytes.NewReader(blob), s.key); err != nil {
				return err
			}
		}
		var out bytes.Buffer
		aw, err := newArchiveWriter(&out, s.key)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT ts, power_w, energy_wh FROM readings WHERE meter = $1 AND ts >= $2 AND ts < $3 ORDER BY ts`, meterID, from, to)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p point
			var wh *float64
			if err := rows.Scan(&p.ns, &p.powerW, &wh); err != nil {
				rows.Close()
				return err
			}
			p.energyWh, p.hasEnergy = derefOr(wh), wh != nil
			for old.ok && old.p.ns <= p.ns {
				if old.p.ns < p.ns {
					aw.write(old.p)
				}
				if err := old.next(); err != nil {
					rows.Close()
					return err
				}
			}
			aw.write(p)
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for old.ok {
			aw.write(old.p)
			if err := old.next(); err != nil {
				return err
			}
		}
		if err := aw.close(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO archives (meter, month, name, data) VALUES ($1, $2, $3, $4)
			ON CONFLICT (meter, month) DO UPDATE SET name = excluded.name, data = excluded.data`,
			meterID, from, name, out.Bytes()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM readings WHERE meter = $1 AND ts >= $2 AND ts < $3`, meterID, from, to); err != nil {
			return err
		}
		st.Readings -= min(st.Readings, uint64(n))
		st.ArchivedNs = max(st.ArchivedNs, to)
		var first *int64
		if err := tx.QueryRow(ctx, `SELECT min(ts) FROM readings WHERE meter = $1`, meterID).Scan(&first); err != nil {
			return err
		}
		st.FirstNs = st.LastNs // with no reading left, First is Last (see Meter)
		if first != nil {
			st.FirstNs = *first
		}
		return pgWriteStates(ctx, tx, map[string]meterState{meterID: st})
	})
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", name, err)
	}
	return n, nil
}

// archives returns the months of meterID's archives, oldest first, and
// a function that opens one.
func (pg *pgEngine) archives(ctx context.Context, meterID string) ([]time.Time, func(time.Time) (*archiveReader, error), error) {
	s := pg.s
	rows, err := pg.pool.Query(ctx, `SELECT month FROM archives WHERE meter = $1 ORDER BY month`, meterID)
	if err != nil {
		return nil, nil, fmt.Errorf("store: pg: list the archives of %q: %w", meterID, err)
	}
	starts, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, fmt.Errorf("store: pg: list the archives of %q: %w", meterID, err)
	}
	months := make([]time.Time, len(starts))
	for i, m := range starts {
		months[i] = time.Unix(0, m).UTC()
	}
	open := func(m time.Time) (*archiveReader, error) {
		var blob []byte
		err := pg.pool.QueryRow(ctx, `SELECT data FROM archives WHERE meter = $1 AND month = $2`, meterID, m.UnixNano()).Scan(&blob)
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", ArchiveName(meterID, m), err)
		}
		return readArchive(ArchiveName(meterID, m), bytes.NewReader(blob), s.key)
	}
	return months, open, nil
}
