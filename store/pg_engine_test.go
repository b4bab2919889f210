package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
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

// TestPostgresTwoWritersStampOnReceipt runs two stores on one database, as
// two instances, each storing a burst of readings of one meter stamped on
// receipt: bursts faster than one a millisecond push the meter's newest
// ahead of the clock, so one writer's readings land behind the other's and
// look for a free millisecond among them. Every reading is stored once;
// the free millisecond used to be sought in a span of stored readings that
// ended before it, and the commit failed on a duplicate key.
func TestPostgresTwoWritersStampOnReceipt(t *testing.T) {
	dsn := pgtest.Database(t)
	const each = 2000
	var wg sync.WaitGroup
	var failed atomic.Int64
	var first atomic.Value
	for i := range 2 {
		s, err := OpenPostgres(dsn, t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		wg.Go(func() {
			var acks sync.WaitGroup
			for j := range each {
				acks.Add(1)
				err := s.Append(meter.Reading{Meter: "r", Time: time.Now(), PowerW: float64(i*each + j)}, func(err error) {
					defer acks.Done()
					if err != nil {
						failed.Add(1)
						first.CompareAndSwap(nil, err)
					}
				})
				if err != nil {
					t.Error(err)
					acks.Done()
				}
			}
			acks.Wait()
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d readings not stored, first: %v", n, first.Load())
	}
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var rows, distinct, readings int
	if err := db.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT power_w), (SELECT readings FROM meters WHERE id = 'r') FROM readings WHERE meter = 'r'`).Scan(&rows, &distinct, &readings); err != nil {
		t.Fatal(err)
	}
	if rows != 2*each || distinct != 2*each || readings != 2*each {
		t.Errorf("%d rows, %d distinct, meter state %d; want %d of each", rows, distinct, readings, 2*each)
	}
}

// TestPostgresMigratesDocsToByteOrder: a database of schema 2, whose docs
// keys sort by the database's collation, is migrated on open; documents
// are kept and then come newest first in byte order, as on bbolt.
func TestPostgresMigratesDocsToByteOrder(t *testing.T) {
	dsn := pgtest.Database(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE vatio_schema (version int PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for v, m := range pgMigrations[:2] {
		if _, err := conn.Exec(ctx, m.sql); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO vatio_schema (version, name) VALUES ($1, $2)`, v+1, m.name); err != nil {
			t.Fatal(err)
		}
	}
	// A database made with a language's collation (the default on most
	// servers), whatever this test cluster's is: ICU's root locale orders
	// "a" before "B" and ignores the "-" of "a-b".
	if _, err := conn.Exec(ctx, `ALTER TABLE docs ALTER COLUMN key TYPE text COLLATE "und-x-icu"`); err != nil {
		t.Fatalf("a language collation for the old schema: %v (Debian's PostgreSQL has ICU)", err)
	}
	keys := []string{"b", "B", "a-b", "ab", "_x", "a"}
	for _, k := range keys {
		if _, err := conn.Exec(ctx, `INSERT INTO docs (kind, key, value) VALUES ('log', $1, $2)`, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)

	s, err := OpenPostgres(dsn, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	if err := s.NewestDocs("log", func(k string, v []byte) bool {
		if string(v) != k {
			t.Errorf("%s = %q after the migration", k, v)
		}
		got = append(got, k)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Errorf("NewestDocs after the migration = %q, want %q", got, want)
	}
	var version int
	if err := s.eng.(*pgEngine).pool.QueryRow(ctx, `SELECT max(version) FROM vatio_schema`).Scan(&version); err != nil || version != pgSchemaVersion {
		t.Errorf("schema version %d (%v), want %d", version, err, pgSchemaVersion)
	}
}

// TestPostgresSharedLastHeard: instances sharing a database agree on when
// a meter was last heard: a live reading stored by one is seen by the
// other, and an import through the other leaves it as it was.
func TestPostgresSharedLastHeard(t *testing.T) {
	dsn := pgtest.Database(t)
	a, err := OpenPostgres(dsn, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenPostgres(dsn, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustAppend(t, a, meter.Reading{Meter: "m", Time: time.Now(), PowerW: 700})
	ma, _ := a.Meter("m")
	if _, err := b.Import([]meter.Reading{{Source: "import", Meter: "m", Time: time.Now().Add(-48 * time.Hour), PowerW: 1, Stamped: true}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		var m Meter
		deadline := time.Now().Add(10 * time.Second)
		for {
			m, err = s.Meter("m")
			if err == nil && m.Readings == 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // polls the other instance's commit
		}
		if m.Readings != 2 || !m.LastHeard.Equal(ma.LastHeard) {
			t.Errorf("an instance sees %d readings, last heard %s; want 2, %s", m.Readings, m.LastHeard, ma.LastHeard)
		}
		if w, ok := m.PowerNow(time.Now()); !ok || w != 700 {
			t.Errorf("power now %g %v, want 700 W", w, ok)
		}
	}
}
