package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrCorrupt is returned by Verify, and by Restore, for a file that is not a
// sound Vatio database.
var ErrCorrupt = errors.New("store: not a sound Vatio database")

// Verify checks, without changing it, that the database file at path is one
// this Vatio can open: a complete bbolt file whose pages pass bbolt's
// consistency check, with a schema version this Vatio reads, the buckets
// that version has, readings keyed by 8-byte times and meter summaries that
// decode. It opens the file read-only; a database held by a running Vatio
// is refused with ErrLocked.
func Verify(path string) error {
	err := verify(path)
	var ce *corruptError
	switch {
	case err == nil, errors.Is(err, ErrLocked), errors.Is(err, ErrNewerSchema):
		return err
	case errors.As(err, &ce):
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, path, ce.reason)
	default:
		return fmt.Errorf("store: verify %s: %w", path, err)
	}
}

// corruptError is a reason why a file is not a sound database.
type corruptError struct{ reason string }

func (e *corruptError) Error() string { return e.reason }

func corrupt(format string, args ...any) error {
	return &corruptError{fmt.Sprintf(format, args...)}
}

func verify(path string) (err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return corrupt("not a regular file")
	}
	if fi.Size() == 0 {
		return corrupt("the file is empty")
	}
	// A damaged file can make bbolt read past the end of its memory map or
	// of the file (SIGBUS) or index out of range: turn those into an error
	// rather than a crash. Everything that touches pages runs on this
	// goroutine before tx.Check, whose own goroutines are not covered.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			err = corrupt("reading it failed: %v", r)
		}
		if db != nil {
			db.Close()
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("%w: %s (is a vatio running with it?)", ErrLocked, path)
	case errors.As(err, new(*fs.PathError)):
		return err
	case errors.Is(err, bolterrors.ErrInvalid):
		return corrupt("no valid bbolt meta page: %v", err)
	case err != nil: // a file too small, a bad version or checksum
		return corrupt("%v", err)
	}
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return corrupt("truncated: the file has %d bytes, its pages need %d", fi.Size(), tx.Size())
		}
		if err := checkLayout(tx, path); err != nil {
			return err
		}
		var errs []error
		for err := range tx.Check() {
			if len(errs) < 10 { // keep draining so the check ends
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return corrupt("bbolt check: %v", errors.Join(errs...))
		}
		return nil
	})
}

// checkLayout checks what Open relies on: the schema version (see migrate),
// the buckets of that version, 8-byte time keys under every meter, and the
// meter summaries that load reads. Walking every bucket also
// touches every page before tx.Check does.
func checkLayout(tx *bolt.Tx, path string) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return corrupt("no %q bucket: not a Vatio database", bucketMeta)
	}
	v := meta.Get(keySchema)
	if len(v) != 4 {
		return corrupt("no schema version: not a Vatio database")
	}
	version := binary.BigEndian.Uint32(v)
	switch {
	case version > SchemaVersion:
		return fmt.Errorf("%w: %s has schema version %d, this Vatio reads up to %d; upgrade Vatio", ErrNewerSchema, path, version, SchemaVersion)
	case version < 1:
		return corrupt("schema version %d", version)
	}
	if v := meta.Get(keySeq); v != nil && len(v) != 8 {
		return corrupt("last reading id is %d bytes, not 8", len(v))
	}
	perMeter := [][]byte{bucketSeries, bucketBlocks}
	for _, t := range Tiers {
		perMeter = append(perMeter, t.bucket())
	}
	for _, name := range append([][]byte{bucketMeters, bucketAlerts}, perMeter...) {
		if tx.Bucket(name) == nil {
			return corrupt("no %q bucket", name)
		}
	}
	// Readings and rollups: a bucket per meter, keyed by 8-byte times.
	for _, name := range perMeter {
		top := tx.Bucket(name)
		err := top.ForEach(func(id, _ []byte) error {
			b := top.Bucket(id)
			if b == nil {
				return corrupt("%s entry %q is not a bucket", name, id)
			}
			return b.ForEach(func(k, v []byte) error {
				if len(k) != 8 {
					return corrupt("%s of meter %q has a %d-byte key %x, not an 8-byte time", name, id, len(k), k)
				}
				if string(name) == string(bucketBlocks) {
					if _, err := decodeBlock(v); err != nil {
						return corrupt("meter %q: block at %x: %v", id, k, err)
					}
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	series := tx.Bucket(bucketSeries)
	err := tx.Bucket(bucketMeters).ForEach(func(id, v []byte) error {
		if _, err := decodeMeterState(v); err != nil {
			return corrupt("meter %q: %v", id, err)
		}
		if series.Bucket(id) == nil {
			return corrupt("meter %q has a summary but no readings bucket", id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if version >= 2 {
		if tx.Bucket(bucketInfo) == nil {
			return corrupt("no %q bucket", bucketInfo)
		}
		if err := loadInfo(tx, map[string]MeterInfo{}); err != nil {
			return corrupt("%v", err)
		}
	}
	return tx.Bucket(bucketAlerts).ForEach(func(k, _ []byte) error {
		if len(k) != 8 {
			return corrupt("alert key %x is not 8 bytes", k)
		}
		return nil
	})
}

// Restore replaces the database in dataDir with the backup src, for a Vatio
// that is stopped. src must pass Verify first; if it does not, or if a
// running Vatio holds the database (ErrLocked), dataDir is left untouched.
// The backup is copied beside the database, verified again, and renamed over
// it; the database it replaces is kept as vatio.db.before-restore-<UTC time>,
// whose path Restore returns ("" when dataDir had no database), so that a
// mistaken restore can be undone; its write-ahead log, when a crash left
// one, is kept beside it with ".wal" added, and restoring that database
// brings its log back.
func Restore(src, dataDir string) (previous string, err error) {
	if err := Verify(src); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("store: restore: %w", err)
	}
	dst := filepath.Join(dataDir, FileName)
	// Hold the database's lock to the end, so no Vatio starts on it meanwhile.
	unlock, err := lockFile(dst, time.Second)
	if err != nil {
		return "", err
	}
	defer unlock()

	tmp := dst + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("store: restore: copy %s to %s: %w", src, tmp, err)
	}
	// Run as root (sudo) on a data directory a service user owns, the
	// copy would be root's, and the service could not open it.
	if err := ownLikeDir(tmp, dataDir); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("store: restore: %w", err)
	}
	if err := Verify(tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("store: restore: the copy of %s failed its check: %w", src, err)
	}
	if _, err := os.Lstat(dst); err == nil {
		// A second name for the current database: vatio.db exists at every
		// instant, the old database or the restored one. Two restores in
		// one second keep both databases they replaced: -2, -3 ...
		stamp := dst + ".before-restore-" + time.Now().UTC().Format(backupTimeLayout)
		previous = stamp
		for n := 2; ; n++ {
			err := os.Link(dst, previous)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) || n > 100 {
				os.Remove(tmp)
				return "", fmt.Errorf("store: restore: keep the current database as %s: %w", previous, err)
			}
			previous = fmt.Sprintf("%s-%d", stamp, n)
		}
	}
	// The log belongs to the database being replaced (Close empties it,
	// a crash may not have): it goes with it, never into the backup.
	walDir := filepath.Join(dataDir, walDirName)
	if _, err := os.Lstat(walDir); err == nil {
		keep := previous
		if keep == "" {
			keep = dst + ".before-restore-" + time.Now().UTC().Format(backupTimeLayout)
		}
		if err := os.Rename(walDir, keep+".wal"); err != nil {
			os.Remove(tmp)
			if previous != "" {
				os.Remove(previous)
			}
			return "", fmt.Errorf("store: restore: set the log of the current database aside: %w", err)
		}
	}
	// A database restore set aside with its log (src.wal, as above) gets
	// it back, copied: restoring vatio.db.before-restore-... undoes a
	// restore whole, the readings only its log held included.
	if fi, err := os.Stat(src + ".wal"); err == nil && fi.IsDir() {
		if err := copyDir(src+".wal", walDir); err != nil {
			os.RemoveAll(walDir)
			os.Remove(tmp)
			return "", fmt.Errorf("store: restore: copy the log of %s: %w", src, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		if previous != "" {
			os.Remove(previous)
		}
		return "", fmt.Errorf("store: restore: %w", err)
	}
	if err := syncDir(dataDir); err != nil {
		return previous, fmt.Errorf("store: restore: %w", err)
	}
	return previous, nil
}

// copyDir copies the regular files of directory src into a new directory
// dst, synced.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	return syncDir(dst)
}

// copyFile copies src to a new file dst, mode 0600, synced.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o600); err != nil { // in case dst was left with another mode
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
