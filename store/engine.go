package store

import (
	"context"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// engine is where the two databases a Store can keep its data in differ:
// how the writer makes a batch durable, and how stored data is read, kept
// and removed. The Store has the rest once, whatever the engine: the queue
// and its batches, the acknowledgements, the meters' cache and registry,
// the watchers, the counter rules and the rollup arithmetic.
//
// boltEngine (bolt*.go) keeps a store in one bbolt file, with a log and an
// in-memory head in front of it; pgEngine (pg*.go) keeps it in PostgreSQL,
// whose own WAL is the log. A feature one engine lacks is a method that
// says so (a no-op, or an error), never a test of which engine a Store
// has.
type engine interface {
	// next returns the next queued entry, doing the engine's timed work
	// while it waits (bbolt syncs its log and checkpoints), and false once
	// the queue is closed and everything taken from it is durable. Only
	// the writer goroutine calls next and write.
	next() (entry, bool)
	// write makes a batch (see drain) durable and hands its callbacks to
	// the acknowledgement goroutine, in order.
	write(batch []entry)
	// checkpoint returns once everything appended before it is in the
	// database proper: on bbolt, once the head is written into the file.
	checkpoint() error
	// refresh brings the meters' cache up to date before a reader uses it:
	// on PostgreSQL, other instances may have changed the meters.
	refresh()

	// The readers of Range, Latest, Rollups, Count, PowerFactor and
	// CheckRollups.
	readings(meterID string, from, to time.Time, limit int) ([]Record, bool, error)
	latest(meterID string, limit int) ([]Record, error)
	rollups(meterID string, t Tier, from, to time.Time, limit int) ([]Bucket, bool, error)
	count(meterID string, t Tier, from, to time.Time, limit int) (int, error)
	powerFactor(meterID string, from, to time.Time) (PowerFactorStats, error)
	checkRollups(meterID string) error

	// Documents and alerts (see PutDoc and AddAlert).
	putDoc(kind, key string, v []byte) error
	deleteDoc(kind, key string) error
	docs(kind string) (map[string][]byte, error)
	newestDocs(kind string, fn func(key string, v []byte) bool) error
	deleteDocs(kind string, keys []string) error
	trimDocs(kind string, keep int) (int, error)
	doc(kind, key string) ([]byte, bool, error)
	updateDoc(kind, key string, v []byte) (bool, error)
	addAlert(a *Alert) error
	updateAlert(id uint64, fn func(*Alert)) error
	alerts(limit int, keep func(*Alert) bool) ([]Alert, error)

	// applyRetention is ApplyRetention, which holds retentionMu.
	applyRetention(ctx context.Context, now time.Time) (Stats, error)
	// archives returns the months of meterID's archives, oldest first,
	// and a function that opens one.
	archives(ctx context.Context, meterID string) ([]time.Time, func(time.Time) (*archiveReader, error), error)
	// compress moves old raw readings into compressed blocks (see
	// Compress) and returns how many it moved.
	compress(ctx context.Context, before time.Time) (int, error)
	// shared reports whether several instances may share the database:
	// then one of them applies retention (see RunRetention), not each.
	shared() bool
	// backups returns nil when Vatio backs the database up itself, else
	// the error that says why not; backup writes a consistent copy of it
	// to w.
	backups() error
	backup(w io.Writer) (int64, error)

	// size returns the database's size in bytes; collect adds the
	// engine's own metrics; close closes the database once the writer has
	// stopped.
	size() int64
	// health is why readings are being refused (a full disk), nil when
	// they are not.
	health() error
	collect(ch chan<- prometheus.Metric)
	close() error
}
