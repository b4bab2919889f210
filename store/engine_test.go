package store

import (
	"context"
	"os"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/internal/pgtest"
)

// The store's tests are one suite for both engines: `go test ./store` runs
// it on bbolt, and with VATIO_TEST_STORE=postgres on PostgreSQL (make test
// runs both). A test of what only one engine has says so with boltOnly.

func TestMain(m *testing.M) { pgtest.Main(m) }

// onPostgres reports whether the suite runs on PostgreSQL.
func onPostgres() bool { return os.Getenv("VATIO_TEST_STORE") == "postgres" }

// boltOnly skips a test of what only the bbolt engine has (its file, its
// compressed blocks, its backups) when the suite runs on PostgreSQL.
func boltOnly(t testing.TB) {
	t.Helper()
	if onPostgres() {
		t.Skip("bbolt engine only")
	}
}

var (
	databasesMu sync.Mutex
	databases   = map[string]string{} // data dir -> its test database
)

// testOpen opens the store of data dir dir on the suite's engine: the same
// dir opens the same database again.
func testOpen(t testing.TB, dir string, opts Options) (*Store, error) {
	t.Helper()
	if !onPostgres() {
		return Open(dir, opts)
	}
	databasesMu.Lock()
	dsn, ok := databases[dir]
	databasesMu.Unlock()
	if !ok {
		dsn = pgtest.Database(t)
		databasesMu.Lock()
		databases[dir] = dsn
		databasesMu.Unlock()
	}
	return OpenPostgres(dsn, dir, opts)
}

// leftovers lists where the store still holds something of meter id: the
// bbolt buckets, or the PostgreSQL tables.
func leftovers(t testing.TB, s *Store, id string) []string {
	t.Helper()
	var out []string
	if s.pg != nil {
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
			if err := s.pg.pool.QueryRow(context.Background(), q, id).Scan(&name, &n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				out = append(out, name)
			}
		}
		return out
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSeries, bucketBlocks, bucketMeters, bucketInfo,
			TierMinute.bucket(), TierHour.bucket(), TierDay.bucket()} {
			if b := tx.Bucket(name); b.Get([]byte(id)) != nil || b.Bucket([]byte(id)) != nil {
				out = append(out, string(name))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
