package store

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
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

// testEngine is what the shared tests ask of an engine beyond the Store's
// methods, to look behind its back: bolt_engine_test.go and
// pg_engine_test.go answer for each engine.
type testEngine interface {
	// leftovers lists where the engine still holds something of meter id:
	// bbolt buckets, or PostgreSQL tables.
	leftovers(t testing.TB, id string) []string
	// damageRollup stores agg a as meterID's bucket of tier at start, as a
	// bug would.
	damageRollup(t testing.TB, meterID string, tier Tier, start int64, a agg)
	// archive returns meterID's archive of month as stored (an archive
	// file, or its row), nil if there is none.
	archive(t testing.TB, meterID string, month time.Time) []byte
	// retireInParts has retention delete an archived month in parts of
	// about n readings, where the engine deletes it in parts.
	retireInParts(n int)
}

// behind returns the test view of s's engine.
func behind(s *Store) testEngine { return s.eng.(testEngine) }

// boltOf returns s's bbolt engine, for a test of what only bbolt has.
func boltOf(t testing.TB, s *Store) *boltEngine {
	t.Helper()
	eng, ok := s.eng.(*boltEngine)
	if !ok {
		t.Fatalf("a %T, not a bbolt store", s.eng)
	}
	return eng
}
