package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// compactTxBytes is how much data one transaction of a compaction copies.
const compactTxBytes = 64 << 20

// CompactFile rewrites the database in dataDir without its free pages, for a
// Vatio that is stopped, and returns the file's size before and after.
//
// bbolt never shrinks its file: pages freed by deletions (retention,
// compression) are reused by later writes, so the file stops growing, but
// stays at its largest size. CompactFile copies every bucket into
// vatio.db.compacting, checks the copy with Verify, and renames it over
// vatio.db; the database it replaces is linked as vatio.db.before-compact
// until then, so that vatio.db exists, whole, at every instant. The
// database stays locked throughout: a running Vatio gives ErrLocked, and
// none can start meanwhile. It needs free disk space for the copy.
func CompactFile(dataDir string) (before, after int64, err error) {
	path := filepath.Join(dataDir, FileName)
	if err := Verify(path); err != nil { // ErrLocked when Vatio runs
		return 0, 0, err
	}
	// Open for writing, as Vatio does, to hold its lock; with the store's
	// options, opening writes nothing.
	src, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("%w: %s (stop the vatio running on this data dir first)", ErrLocked, path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	defer src.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err)
	}
	before = fi.Size()

	tmp := path + ".compacting"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) { // left by an interrupted compaction
		return before, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := compactTo(tmp, src); err != nil {
		os.Remove(tmp)
		return before, 0, fmt.Errorf("store: compact %s: %w", path, err)
	}
	if err := Verify(tmp); err != nil {
		os.Remove(tmp)
		return before, 0, fmt.Errorf("store: compact %s: the copy failed its check, the database is unchanged: %w", path, err)
	}
	if err := ownLikeDir(tmp, dataDir); err != nil { // run as root: still the service user's
		os.Remove(tmp)
		return before, 0, fmt.Errorf("store: compact: %w", err)
	}
	fi, err = os.Stat(tmp)
	if err != nil {
		os.Remove(tmp)
		return before, 0, fmt.Errorf("store: compact: %w", err)
	}
	after = fi.Size()

	old := path + ".before-compact"
	if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.Remove(tmp)
		return before, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := os.Link(path, old); err != nil {
		os.Remove(tmp)
		return before, 0, fmt.Errorf("store: compact: keep the database as %s: %w", old, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		os.Remove(old)
		return before, 0, fmt.Errorf("store: compact: %w", err)
	}
	if err := syncDir(dataDir); err != nil {
		return before, after, fmt.Errorf("store: compact: the database is compacted, but %s is kept: %w", old, err)
	}
	if err := os.Remove(old); err != nil {
		return before, after, fmt.Errorf("store: compact: the database is compacted, but %s is kept: %w", old, err)
	}
	return before, after, nil
}

// compactTo copies src into a new database file at path, synced.
func compactTo(path string, src *bolt.DB) error {
	dst, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second, NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, src, compactTxBytes); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
