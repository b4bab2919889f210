package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// leftovers lists the tables that still hold rows of meter id.
func (pg *pgEngine) leftovers(t testing.TB, id string) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT 'readings', count(*) FROM readings WHERE meter = $1`,
		`SELECT 'rollups', count(*) FROM rollups WHERE meter = $1`,
		`SELECT 'power_factor', count(*) FROM power_factor WHERE meter = $1`,
		`SELECT 'archives', count(*) FROM archives WHERE meter = $1`,
		`SELECT 'meters', count(*) FROM meters WHERE id = $1`,
		`SELECT 'alerts', count(*) FROM alerts WHERE meter = $1`,
	} {
		var name string
		var n int
		if err := pg.pool.QueryRow(context.Background(), q, id).Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out = append(out, name)
		}
	}
	return out
}

// damageRollup writes a over meterID's rollup row of tier.
func (pg *pgEngine) damageRollup(t testing.TB, meterID string, tier Tier, start int64, a agg) {
	t.Helper()
	tag, err := pg.pool.Exec(context.Background(), `UPDATE rollups SET n = $4, sum_w = $5, min_w = $6, max_w = $7, in_wh = $8, out_wh = $9
		WHERE meter = $1 AND tier = $2 AND start = $3`, meterID, int16(tier), start, int64(a.N), a.SumW, a.MinW, a.MaxW, a.InWh, a.OutWh)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("damage %s rollup of %q at %d: %v, %d rows", tier, meterID, start, err, tag.RowsAffected())
	}
}

// archive reads the archives row.
func (pg *pgEngine) archive(t testing.TB, meterID string, month time.Time) []byte {
	t.Helper()
	var b []byte
	err := pg.pool.QueryRow(context.Background(), `SELECT data FROM archives WHERE meter = $1 AND month = $2`, meterID, month.UnixNano()).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// retireInParts does nothing: a month is archived in one transaction.
func (pg *pgEngine) retireInParts(int) {}
