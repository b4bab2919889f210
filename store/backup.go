package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/internal/crypt"
)

// A backup is a whole bbolt database file, copied from one read transaction
// while the writer keeps committing: it holds exactly the transactions
// committed before the copy began. Scheduled backups are named by their UTC
// time, vatio-20261125T101500Z.db, so that names sort by age.

// backupTimeLayout is the time in a backup's name.
const backupTimeLayout = "20060102T150405Z"

// Scheduled backups keep this many files when Options.BackupKeep is 0.
const defaultBackupKeep = 7

// EncryptedSuffix ends the name of an encrypted backup.
const EncryptedSuffix = ".enc"

// BackupName returns the file name of a backup taken at t; encrypted, it
// ends in EncryptedSuffix.
func BackupName(t time.Time, encrypted bool) string {
	name := "vatio-" + t.UTC().Format(backupTimeLayout) + ".db"
	if encrypted {
		name += EncryptedSuffix
	}
	return name
}

// backupTime parses a name made by BackupName.
func backupTime(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, "vatio-")
	if !ok {
		return time.Time{}, false
	}
	s = strings.TrimSuffix(s, EncryptedSuffix)
	if s, ok = strings.CutSuffix(s, ".db"); !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(backupTimeLayout, s)
	return t, err == nil
}

// Encrypted reports whether the store encrypts its backups and archives.
func (s *Store) Encrypted() bool { return s.key != nil }

// sealedBackup writes a backup to w, encrypted when the store has a key.
func (s *Store) sealedBackup(w io.Writer) (int64, error) {
	if s.key == nil {
		return s.Backup(w)
	}
	cw, err := crypt.NewWriter(w, s.key)
	if err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	n, err := s.Backup(cw)
	if err == nil {
		err = cw.Close()
	}
	return n, err
}

// Backup writes a consistent copy of the whole database to w and returns the
// bytes written. The copy comes from one read transaction, so commits go on
// meanwhile; it is a database file that Open and Verify accept as it is.
//
// The read transaction lasts as long as w takes. A commit that has to grow
// the file's memory map waits for it, so give Backup a fast w (a local file);
// Snapshot is the way to feed a slow one such as a network client.
func (s *Store) Backup(w io.Writer) (int64, error) {
	return s.eng.backup(w)
}

// Snapshot writes a consistent copy of the database (see Backup) to a
// temporary file in the data directory and returns it, read from its start,
// with its size; encrypted when the store has a key. Closing it deletes the file. The read transaction has ended
// when Snapshot returns, so however slowly the copy is then read, it never
// holds up the writer; the price is disk space for one copy meanwhile.
func (s *Store) Snapshot() (io.ReadCloser, int64, error) {
	if err := s.eng.backups(); err != nil {
		return nil, 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(s.path), ".vatio-snapshot-*.tmp")
	if err != nil {
		return nil, 0, fmt.Errorf("store: snapshot: %w", err)
	}
	t := &tempFile{File: f}
	// On Unix the file disappears from the directory at once and its space
	// is freed on Close, even if Vatio dies first.
	t.removed = os.Remove(f.Name()) == nil
	_, err = s.sealedBackup(f)
	var n int64
	if err == nil {
		n, err = f.Seek(0, io.SeekCurrent)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		t.Close()
		return nil, 0, fmt.Errorf("store: snapshot: %w", err)
	}
	return t, n, nil
}

// tempFile is a file that Close removes.
type tempFile struct {
	*os.File
	removed bool
}

func (t *tempFile) Close() error {
	err := t.File.Close()
	if !t.removed {
		if rerr := os.Remove(t.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
		t.removed = true
	}
	return err
}

// BackupTo writes a backup named BackupName(now) into dir (created mode 0700)
// and returns its path. The file, mode 0600, appears complete or not at all:
// it is written under a temporary name, synced, renamed, and the directory
// synced. Then the oldest backups in dir beyond keep (at least 1) are
// deleted; the new one is always kept, even if the clock went back. When only
// the pruning fails, BackupTo returns the path with the error.
func (s *Store) BackupTo(dir string, keep int, now time.Time) (string, error) {
	if err := s.eng.backups(); err != nil {
		return "", err
	}
	path, _, err := s.backupTo(context.Background(), dir, keep, now)
	return path, err
}

func (s *Store) backupTo(ctx context.Context, dir string, keep int, now time.Time) (string, int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, fmt.Errorf("store: backup: %w", err)
	}
	name := BackupName(now, s.key != nil)
	path := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, ".vatio-backup-*.tmp") // mode 0600
	if err != nil {
		return "", 0, fmt.Errorf("store: backup: %w", err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	buf := bufio.NewWriterSize(ctxWriter{ctx, tmp}, 64<<10)
	n, err := s.sealedBackup(buf)
	if err == nil {
		err = buf.Flush()
	}
	if err != nil {
		return "", 0, fmt.Errorf("store: backup to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("store: backup to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("store: backup to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", 0, fmt.Errorf("store: backup to %s: %w", path, err)
	}
	tmp = nil
	if err := syncDir(dir); err != nil {
		return "", 0, fmt.Errorf("store: backup to %s: %w", path, err)
	}
	if err := pruneBackups(dir, keep, name); err != nil {
		return path, n, fmt.Errorf("store: prune backups in %s: %w", dir, err)
	}
	return path, n, nil
}

// pruneBackups deletes the oldest backups in dir beyond keep, never keepName.
// Files not named by BackupName are left alone.
func pruneBackups(dir string, keep int, keepName string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var older []string
	for _, e := range entries {
		if _, ok := backupTime(e.Name()); ok && e.Type().IsRegular() && e.Name() != keepName {
			older = append(older, e.Name())
		}
	}
	slices.Sort(older) // by time: the names start with it
	var errs []error
	for i := 0; i < len(older)-(keep-1); i++ {
		if err := os.Remove(filepath.Join(dir, older[i])); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newestBackup returns the time of the newest backup in dir, zero if none.
func newestBackup(dir string) (time.Time, bool) {
	entries, _ := os.ReadDir(dir)
	var newest time.Time
	for _, e := range entries {
		if t, ok := backupTime(e.Name()); ok && t.After(newest) {
			newest = t
		}
	}
	return newest, !newest.IsZero()
}

// ctxWriter fails its writes once ctx ends, to abandon a backup on Close.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// startBackups starts the scheduled backups that opts ask for; stopBackups
// ends them. Open calls it.
func (s *Store) startBackups(dir string, opts Options) error {
	s.stopBackups = func() {}
	if opts.BackupInterval <= 0 {
		return nil
	}
	if opts.BackupDir == "" {
		opts.BackupDir = filepath.Join(dir, "backups")
	}
	if opts.BackupKeep <= 0 {
		opts.BackupKeep = defaultBackupKeep
	}
	if err := os.MkdirAll(opts.BackupDir, 0o700); err != nil {
		return fmt.Errorf("store: create backup dir: %w", err)
	}
	s.log.Info("backups scheduled", slog.String("dir", opts.BackupDir),
		slog.Duration("every", opts.BackupInterval), slog.Int("keep", opts.BackupKeep))
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBackups = cancel
	s.wg.Add(1)
	go s.backupLoop(ctx, opts.BackupDir, opts.BackupInterval, opts.BackupKeep)
	return nil
}

// firstBackup returns when the first scheduled backup is due, for a store
// started at start whose newest backup was taken at newest (zero if none):
// one interval after newest, so that restarts more frequent than interval do
// not postpone backups forever, but never at start: no sooner than one
// interval or a minute after it, whichever is shorter, and no later than one
// interval after it.
func firstBackup(start, newest time.Time, interval time.Duration) time.Time {
	next := start.Add(interval)
	if newest.IsZero() {
		return next
	}
	if due := newest.Add(interval); due.Before(next) {
		next = due
	}
	if earliest := start.Add(min(interval, time.Minute)); next.Before(earliest) {
		next = earliest
	}
	return next
}

// backupLoop writes a backup into dir at firstBackup, then every interval,
// until ctx ends.
func (s *Store) backupLoop(ctx context.Context, dir string, interval time.Duration, keep int) {
	defer s.wg.Done()
	newest, _ := newestBackup(dir)
	repeat(ctx, firstBackup(time.Now(), newest, interval), interval, func(began time.Time) bool {
		path, n, err := s.backupTo(ctx, dir, keep, began)
		switch {
		case path == "" && ctx.Err() != nil:
			s.log.Info("backup abandoned: the store is closing")
			return false
		case path == "":
			s.log.Error("backup failed", slog.String("dir", dir), slog.Any("error", err))
		default:
			s.log.Info("backup written", slog.String("path", path), slog.Int64("bytes", n),
				slog.Duration("took", time.Since(began)))
			if err != nil {
				s.log.Warn("old backups not deleted", slog.Any("error", err))
			}
		}
		return true
	})
}

// ParseBackupName returns the time in a name made by BackupName.
func ParseBackupName(name string) (time.Time, bool) { return backupTime(name) }
