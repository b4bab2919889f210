package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// The readers of a PostgreSQL store: each answers as its bbolt twin does.

// pgCtx bounds one read.
func pgCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// meterExists returns ErrUnknownMeter unless meter id is registered.
func (pg *pgEngine) meterExists(ctx context.Context, id string) error {
	var ok bool
	if err := pg.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM meters WHERE id = $1 AND info IS NOT NULL)`, id).Scan(&ok); err != nil {
		return fmt.Errorf("look up meter %q: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownMeter, id)
	}
	return nil
}

func scanRecord(rows pgx.CollectableRow) (Record, error) {
	var r Record
	var ns, id int64
	var wh *float64
	if err := rows.Scan(&r.Meter, &ns, &id, &r.PowerW, &wh); err != nil {
		return r, err
	}
	r.Time, r.ID = time.Unix(0, ns).UTC(), uint64(id)
	r.EnergyWh, r.HasEnergy = derefOr(wh), wh != nil
	return r, nil
}

func (pg *pgEngine) readings(meterID string, from, to time.Time, limit int) (_ []Record, _ bool, err error) {
	defer pgFailed(&err, "read the readings of %q", meterID)
	ctx, cancel := pgCtx()
	defer cancel()
	if err := pg.meterExists(ctx, meterID); err != nil {
		return nil, false, err
	}
	rows, err := pg.pool.Query(ctx, `SELECT meter, ts, id, power_w, energy_wh FROM readings
		WHERE meter = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4`, meterID, from.UnixNano(), to.UnixNano(), int64(limit)+1)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, scanRecord)
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

func (pg *pgEngine) latest(meterID string, limit int) (_ []Record, err error) {
	defer pgFailed(&err, "read the latest readings")
	ctx, cancel := pgCtx()
	defer cancel()
	var rows pgx.Rows
	if meterID != "" {
		if err := pg.meterExists(ctx, meterID); err != nil {
			return nil, err
		}
		rows, err = pg.pool.Query(ctx, `SELECT meter, ts, id, power_w, energy_wh FROM readings
			WHERE meter = $1 ORDER BY ts DESC LIMIT $2`, meterID, int64(limit))
	} else {
		// Each meter's newest, merged: the primary key serves every meter
		// from its end, whatever the number of meters.
		rows, err = pg.pool.Query(ctx, `SELECT r.meter, r.ts, r.id, r.power_w, r.energy_wh FROM meters m
			CROSS JOIN LATERAL (SELECT * FROM readings WHERE meter = m.id ORDER BY ts DESC LIMIT $1) r
			ORDER BY r.ts DESC, r.meter LIMIT $1`, int64(limit))
	}
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, scanRecord)
	if out == nil {
		out = []Record{}
	}
	return out, err
}

func (pg *pgEngine) rollups(meterID string, t Tier, from, to time.Time, limit int) (_ []Bucket, _ bool, err error) {
	defer pgFailed(&err, "read the %s rollups of %q", t, meterID)
	ctx, cancel := pgCtx()
	defer cancel()
	if err := pg.meterExists(ctx, meterID); err != nil {
		return nil, false, err
	}
	rows, err := pg.pool.Query(ctx, `SELECT start, n, sum_w, min_w, max_w, in_wh, out_wh FROM rollups
		WHERE meter = $1 AND tier = $2 AND start >= $3 AND start < $4 ORDER BY start LIMIT $5`,
		meterID, int16(t), t.start(from.UnixNano()), to.UnixNano(), int64(limit)+1)
	if err != nil {
		return nil, false, err
	}
	var out []Bucket
	for rows.Next() {
		var start int64
		var a agg
		var n int64
		if err := rows.Scan(&start, &n, &a.SumW, &a.MinW, &a.MaxW, &a.InWh, &a.OutWh); err != nil {
			rows.Close()
			return nil, false, err
		}
		a.N = uint64(n)
		out = append(out, a.bucket(start))
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

func (pg *pgEngine) count(meterID string, t Tier, from, to time.Time, limit int) (_ int, err error) {
	defer pgFailed(&err, "count the %s buckets of %q", t, meterID)
	ctx, cancel := pgCtx()
	defer cancel()
	var n int64
	if t == TierRaw {
		err = pg.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM readings WHERE meter = $1 AND ts >= $2 AND ts < $3 LIMIT $4) x`,
			meterID, from.UnixNano(), to.UnixNano(), int64(limit)+1).Scan(&n)
	} else {
		err = pg.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM rollups WHERE meter = $1 AND tier = $2 AND start >= $3 AND start < $4 LIMIT $5) x`,
			meterID, int16(t), t.start(from.UnixNano()), to.UnixNano(), int64(limit)+1).Scan(&n)
	}
	return int(n), err
}

func (pg *pgEngine) powerFactor(id string, from, to time.Time) (PowerFactorStats, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var out PowerFactorStats
	var sumW, sumWPF, n float64
	var days int64
	err := pg.pool.QueryRow(ctx, `SELECT coalesce(sum(sum_w), 0), coalesce(sum(sum_w_pf), 0), coalesce(sum(n), 0), count(*)
		FROM power_factor WHERE meter = $1 AND day >= $2 AND day < $3`,
		id, TierDay.start(from.UnixNano()), TierDay.start(to.UnixNano())).Scan(&sumW, &sumWPF, &n, &days)
	if err != nil {
		return out, fmt.Errorf("store: power factor of %q: %w", id, err)
	}
	out.Readings, out.Days = int(n), int(days)
	if sumW > 0 {
		out.Mean = sumWPF / sumW
	}
	return out, nil
}

// checkRollups is CheckRollups for PostgreSQL: every rollup of the meter
// recomputed from its readings, as appending them in order would.
func (pg *pgEngine) checkRollups(meterID string) (err error) {
	defer pgFailed(&err, "check the rollups of %q", meterID)
	s := pg.s
	ctx, cancel := pgCtx()
	defer cancel()
	if err := pg.meterExists(ctx, meterID); err != nil {
		return err
	}
	var archivedNs int64
	if err := pg.pool.QueryRow(ctx, `SELECT archived_ns FROM meters WHERE id = $1`, meterID).Scan(&archivedNs); err != nil {
		return err
	}
	rows, err := pg.pool.Query(ctx, `SELECT ts, power_w, energy_wh FROM readings WHERE meter = $1 ORDER BY ts`, meterID)
	if err != nil {
		return err
	}
	want := newRollups(s.maxGap)
	var prev *sample
	firstAfter := int64(math.MinInt64)
	for rows.Next() {
		var sm sample
		var wh *float64
		if err := rows.Scan(&sm.ns, &sm.w, &wh); err != nil {
			rows.Close()
			return err
		}
		sm.wh, sm.hasEnergy = derefOr(wh), wh != nil
		if archivedNs != 0 && firstAfter == math.MinInt64 && sm.ns >= archivedNs {
			firstAfter = sm.ns
		}
		want.appended(meterID, sm, prev)
		p := sm
		prev = &p
	}
	if err := rows.Err(); err != nil {
		return err
	}
	from := map[Tier]int64{TierMinute: math.MinInt64, TierHour: math.MinInt64, TierDay: math.MinInt64}
	if archivedNs != 0 {
		for _, t := range Tiers {
			from[t] = math.MaxInt64 // no reading since: nothing to compare
			if firstAfter != math.MinInt64 {
				from[t] = t.start(firstAfter) + t.stepNs()
			}
		}
	}
	for _, t := range Tiers {
		got := map[int64]agg{}
		rows, err := pg.pool.Query(ctx, `SELECT start, n, sum_w, min_w, max_w, in_wh, out_wh FROM rollups WHERE meter = $1 AND tier = $2`, meterID, int16(t))
		if err != nil {
			return err
		}
		for rows.Next() {
			var start, n int64
			var a agg
			if err := rows.Scan(&start, &n, &a.SumW, &a.MinW, &a.MaxW, &a.InWh, &a.OutWh); err != nil {
				rows.Close()
				return err
			}
			a.N = uint64(n)
			got[start] = a
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for k, a := range want.add {
			if k.tier != t || k.start < from[t] {
				continue
			}
			if g := got[k.start]; !aggEqual(g, *a) {
				return fmt.Errorf("store: meter %q: %s rollup at %s is %+v, the readings give %+v",
					meterID, t, time.Unix(0, k.start).UTC().Format(time.RFC3339), g, *a)
			}
			delete(got, k.start)
		}
		for start, a := range got {
			if start >= from[t] && (a.N != 0 || !nearlyZero(a.InWh) || !nearlyZero(a.OutWh)) {
				return fmt.Errorf("store: meter %q: %s rollup at %s has no readings but is %+v",
					meterID, t, time.Unix(0, start).UTC().Format(time.RFC3339), a)
			}
		}
	}
	return nil
}
