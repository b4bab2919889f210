package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/internal/meter"
)

// countReadings returns each meter's readings as Meters reports them and as
// Range finds them.
func countReadings(t *testing.T, s *Store) (summary, found map[string]int) {
	t.Helper()
	summary, found = map[string]int{}, map[string]int{}
	for _, m := range s.Meters() {
		summary[m.ID] = int(m.Readings)
		recs, more, err := s.Range(m.ID, t0, t0.Add(1000*24*time.Hour), 1<<30)
		if err != nil || more {
			t.Fatalf("Range(%s) = %d records, more %v, %v", m.ID, len(recs), more, err)
		}
		found[m.ID] = len(recs)
	}
	return summary, found
}

func TestHotBackupWhileIngesting(t *testing.T) {
	boltOnly(t)
	s := openTest(t, t.TempDir())
	var first []meter.Reading
	for i := range 20000 {
		first = append(first, reading(fmt.Sprint("m", i%2), i, float64(i%5000)))
	}
	mustAppend(t, s, first...)

	// Ingest goes on, in both meters, through the backup.
	stop := make(chan struct{})
	var appended atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 20000; i < 60000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Append(reading(fmt.Sprint("m", i%2), i, float64(i%5000)), nil); err != nil {
				t.Error(err)
				return
			}
			appended.Add(1)
		}
	}()
	waitFor(t, "2000 readings appended", func() bool { return appended.Load() >= 2000 })
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	before, _ := countReadings(t, s) // all committed before the backup starts

	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(f)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, "4000 readings appended", func() bool { return appended.Load() >= 4000 })
	close(stop)
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	after, _ := countReadings(t, s)

	if fi, _ := os.Stat(path); fi.Size() != n {
		t.Errorf("Backup returned %d bytes, the file has %d", n, fi.Size())
	}
	if err := Verify(path); err != nil {
		t.Fatalf("Verify(hot backup) = %v", err)
	}
	dir := t.TempDir()
	if err := os.Rename(path, filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, dir)
	summary, found := countReadings(t, b)
	for _, m := range []string{"m0", "m1"} {
		// Consistent: the summaries and the readings come from one
		// transaction, which holds all that was committed before it.
		if summary[m] != found[m] || found[m] < before[m] || found[m] > after[m] {
			t.Errorf("backup has %d readings of %s (summary says %d); want between %d (before the backup) and %d (after)",
				found[m], m, summary[m], before[m], after[m])
		}
	}
	if err := b.CheckRollups("m0"); err != nil {
		t.Errorf("backup's rollups: %v", err)
	}
}

// waitFor waits until cond holds, failing the test after 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestBackupToKeepsTheNewest(t *testing.T) {
	boltOnly(t)
	s := openTest(t, t.TempDir())
	mustAppend(t, s, reading("a", 0, 1), reading("a", 1, 2))
	dir := filepath.Join(t.TempDir(), "backups")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"vatio-notes.db", "notes.txt"} { // not backups: left alone
		if err := os.WriteFile(filepath.Join(dir, other), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		path, err := s.BackupTo(dir, 3, t0.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, fmt.Sprintf("vatio-20261125T1%d0000Z.db", i)); path != want {
			t.Errorf("BackupTo #%d = %s, want %s", i, path, want)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("backup %s mode %v (%v), want 0600", path, fi.Mode().Perm(), err)
		}
	}
	want := []string{"notes.txt", "vatio-20261125T120000Z.db", "vatio-20261125T130000Z.db", "vatio-20261125T140000Z.db", "vatio-notes.db"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("after 5 backups keeping 3, the dir holds %v, want %v", got, want)
	}
	for _, name := range want[1:4] {
		if err := Verify(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}

	// The clock went back: the new backup is the oldest by name, but it is
	// the one kept, with the two newest of the others.
	if _, err := s.BackupTo(dir, 3, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	want = []string{"notes.txt", "vatio-20261125T090000Z.db", "vatio-20261125T130000Z.db", "vatio-20261125T140000Z.db", "vatio-notes.db"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("after a backup dated before the others, the dir holds %v, want %v", got, want)
	}

	// A new directory is created 0700.
	sub := filepath.Join(t.TempDir(), "new")
	if _, err := s.BackupTo(sub, 1, t0); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sub); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("backup dir mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}

// goodBackup returns the bytes of a backup holding readings of meter "a"
// over several pages.
func goodBackup(t *testing.T) []byte {
	t.Helper()
	s := openTest(t, t.TempDir())
	var rs []meter.Reading
	for i := range 5000 {
		rs = append(rs, reading("a", i, float64(i)))
	}
	mustAppend(t, s, rs...)
	var buf bytes.Buffer
	if _, err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// editBolt changes a copy of db with bbolt and returns its bytes.
func editBolt(t *testing.T, db []byte, fn func(tx *bolt.Tx) error) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edit.db")
	if err := os.WriteFile(path, db, 0o600); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerify(t *testing.T) {
	boltOnly(t)
	good := goodBackup(t)
	pageSize := 4096
	if p := binary.LittleEndian.Uint32(good[16+8:]); p >= 512 { // meta: magic, version, page size
		pageSize = int(p)
	}
	random := make([]byte, len(good))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	// The root page of meter a's readings, overwritten with noise.
	var root int
	editBolt(t, good, func(tx *bolt.Tx) error {
		root = int(tx.Bucket(bucketSeries).Bucket([]byte("a")).Root())
		return nil
	})
	damaged := slices.Clone(good)
	copy(damaged[root*pageSize:(root+1)*pageSize], random)
	// That root page is a branch page (header: id, flags, count, overflow;
	// then elements of pos, ksize, child page id): its first child now lies
	// far outside the file, where reading faults.
	farChild := slices.Clone(good)
	if flags := binary.LittleEndian.Uint16(farChild[root*pageSize+8:]); flags != 0x01 {
		t.Fatalf("page %d has flags %#x, not a branch page's", root, flags)
	}
	binary.LittleEndian.PutUint64(farChild[root*pageSize+16+8:], 1<<30)

	tests := []struct {
		name string
		file []byte
		want error // nil: Verify passes
	}{
		{"good", good, nil},
		{"truncated to half", good[:len(good)/2], ErrCorrupt},
		{"truncated to one page", good[:pageSize], ErrCorrupt},
		{"truncated by one byte", good[:len(good)-1], ErrCorrupt},
		{"random bytes", random, ErrCorrupt},
		{"empty", nil, ErrCorrupt},
		{"a page of readings overwritten", damaged, ErrCorrupt},
		{"a page pointing outside the file", farChild, ErrCorrupt},
		{"newer schema", editBolt(t, good, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
		}), ErrNewerSchema},
		{"not a vatio database", editBolt(t, good, func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketMeta)
		}), ErrCorrupt},
		{"no alerts bucket", editBolt(t, good, func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketAlerts)
		}), ErrCorrupt},
		{"a reading with a short key", editBolt(t, good, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketSeries).Bucket([]byte("a")).Put([]byte{1, 2, 3}, make([]byte, 16))
		}), ErrCorrupt},
		{"a meter summary that does not decode", editBolt(t, good, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeters).Put([]byte("a"), []byte{9})
		}), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vatio.db")
			if err := os.WriteFile(path, tt.file, 0o600); err != nil {
				t.Fatal(err)
			}
			err := Verify(path)
			t.Logf("Verify(%s) = %v", tt.name, err)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Verify(%s) = %v, want %v", tt.name, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("Verify(%s) = %q, want it to name the file", tt.name, err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tt.file) {
				t.Errorf("Verify(%s) changed the file", tt.name)
			}
		})
	}
}

func TestVerifyRefusesALiveDatabase(t *testing.T) {
	boltOnly(t)
	s := openTest(t, t.TempDir())
	if err := Verify(s.Path()); !errors.Is(err, ErrLocked) {
		t.Errorf("Verify(database held by an open store) = %v, want ErrLocked", err)
	}
}

// dirState is every file in dir and its bytes.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	for _, name := range listDir(t, dir) {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.IsDir() {
			for k, v := range dirState(t, filepath.Join(dir, name)) {
				state[name+"/"+k] = v
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		state[name] = string(b)
	}
	return state
}

func sameState(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRestoreRefusedWhileTheStoreIsOpen(t *testing.T) {
	boltOnly(t)
	backup := writeFile(t, goodBackup(t))
	dir := t.TempDir()
	s := openTest(t, dir)
	mustAppend(t, s, reading("live", 0, 1))
	before := dirState(t, dir)
	_, err := Restore(backup, dir)
	if !errors.Is(err, ErrLocked) {
		t.Errorf("Restore into the data dir of an open store = %v, want ErrLocked", err)
	}
	if after := dirState(t, dir); !sameState(before, after) {
		t.Errorf("a refused Restore changed the data dir: files %v, were %v", listDir(t, dir), before)
	}
	if m, err := s.Meter("live"); err != nil || m.Readings != 1 {
		t.Errorf("the open store after a refused Restore: %+v, %v", m, err)
	}
}

func TestRestoreOfABadFileLeavesTheDatabase(t *testing.T) {
	boltOnly(t)
	good := goodBackup(t)
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("mine", 0, 1))
	s.Close()
	before := dirState(t, dir)
	for name, file := range map[string][]byte{"truncated": good[:len(good)/2], "empty": nil} {
		_, err := Restore(writeFile(t, file), dir)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Restore(%s) = %v, want ErrCorrupt", name, err)
		}
		if after := dirState(t, dir); !sameState(before, after) {
			t.Errorf("Restore(%s) changed the data dir: files %v", name, listDir(t, dir))
		}
	}
	if _, err := Restore(filepath.Join(dir, "missing.db"), dir); err == nil {
		t.Error("Restore(missing file) = nil")
	}
}

// backedUp returns a data directory whose meter a had one reading, 100 W,
// when backup was taken, and got more after it (a second reading, and
// meter after-backup).
func backedUp(t *testing.T) (dir, backup string) {
	t.Helper()
	dir = t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("a", 0, 100))
	backup, err = s.BackupTo(t.TempDir(), 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("a", 1, 200), reading("after-backup", 0, 1))
	s.Close()
	return dir, backup
}

func TestRestoreReplacesAndKeepsThePrevious(t *testing.T) {
	boltOnly(t)
	dir, backup := backedUp(t)

	previous, err := Restore(backup, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(previous, filepath.Join(dir, FileName+".before-restore-")) {
		t.Errorf("Restore kept the previous database as %q", previous)
	}
	if names := listDir(t, dir); len(names) != 2 { // vatio.db and the previous one
		t.Errorf("after Restore the data dir holds %v", names)
	}
	if fi, err := os.Stat(filepath.Join(dir, FileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored database mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	r := openTest(t, dir)
	if m, err := r.Meter("a"); err != nil || m.Readings != 1 || m.LastPowerW != 100 {
		t.Errorf("restored meter a = %+v, %v; want the one reading of the backup", m, err)
	}
	if _, err := r.Meter("after-backup"); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("restored database has a meter written after the backup (%v)", err)
	}
	r.Close()

	// The previous database is whole: undoing the restore gets it back.
	undo := t.TempDir()
	if _, err := Restore(previous, undo); err != nil {
		t.Fatal(err)
	}
	u := openTest(t, undo)
	if m, err := u.Meter("a"); err != nil || m.Readings != 2 {
		t.Errorf("previous database's meter a = %+v, %v; want 2 readings", m, err)
	}
	if _, err := u.Meter("after-backup"); err != nil {
		t.Errorf("previous database lost a meter: %v", err)
	}

	// Into an empty data directory there is nothing to keep.
	fresh := filepath.Join(t.TempDir(), "data")
	if previous, err := Restore(backup, fresh); err != nil || previous != "" {
		t.Errorf("Restore into a new dir = %q, %v; want \"\", nil", previous, err)
	}
}

// logBuffer collects a store's logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestScheduledBackups(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	backups := filepath.Join(t.TempDir(), "backups")
	logs := &logBuffer{}
	s, err := Open(dir, Options{BackupInterval: 50 * time.Millisecond, BackupDir: backups, BackupKeep: 2,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustAppend(t, s, reading("a", 0, 1))

	// Backups are named by the second: two names take a second at least.
	i := 0
	waitFor(t, "two scheduled backups", func() bool {
		i++
		mustAppend(t, s, reading("a", i, 1))
		n := 0
		for _, name := range listDir(t, backups) {
			if _, ok := backupTime(name); ok {
				n++
			}
		}
		return n >= 2
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	names := listDir(t, backups)
	if len(names) != 2 {
		t.Errorf("scheduled backups every 50ms, keeping 2: after Close the dir holds %v\n%s", names, logs)
	}
	for _, n := range names {
		if err := Verify(filepath.Join(backups, n)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(logs.String(), `msg="backup written" path=`+backups) {
		t.Errorf("no backup logged:\n%s", logs)
	}
}

func TestFirstBackup(t *testing.T) {
	boltOnly(t)
	start := t0
	tests := []struct {
		newest   time.Time
		interval time.Duration
		want     time.Time
	}{
		{time.Time{}, 24 * time.Hour, start.Add(24 * time.Hour)},                         // no backup yet
		{start.Add(-2 * time.Hour), 24 * time.Hour, start.Add(22 * time.Hour)},           // restarted since the last one
		{start.Add(-48 * time.Hour), 24 * time.Hour, start.Add(time.Minute)},             // overdue: soon, not at start
		{start.Add(-time.Hour), 30 * time.Second, start.Add(30 * time.Second)},           // overdue, short interval
		{start.Add(time.Hour), 24 * time.Hour, start.Add(24 * time.Hour)},                // clock went back
		{start.Add(-90 * time.Second), 2 * time.Minute, start.Add(1 * time.Minute)},      // due in 30s: a minute
		{start.Add(-10 * time.Minute), time.Hour, start.Add(50 * time.Minute)},           // due in 50m
		{start.Add(-59 * time.Minute), time.Hour, start.Add(time.Minute)},                // due in 1m
		{start.Add(-30 * time.Minute), 10 * time.Minute, start.Add(1 * time.Minute)},     // overdue
		{start.Add(-5 * time.Minute), 10 * time.Minute, start.Add(5 * time.Minute)},      // due in 5m
		{start.Add(-12 * time.Hour), 24 * time.Hour, start.Add(12 * time.Hour)},          // due in 12h
		{start.Add(-24 * time.Hour), 24 * time.Hour, start.Add(time.Minute)},             // due now
		{start.Add(-time.Second), 24 * time.Hour, start.Add(24*time.Hour - time.Second)}, // just taken
	}
	for _, tt := range tests {
		if got := firstBackup(start, tt.newest, tt.interval); !got.Equal(tt.want) {
			t.Errorf("firstBackup(start, newest start%+v, every %s) = start%+v, want start%+v",
				tt.newest.Sub(start), tt.interval, got.Sub(start), tt.want.Sub(start))
		}
	}
}

// The Snapshot's file is gone once it is closed, and it reads as a backup.
func TestSnapshot(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	s := openTest(t, dir)
	mustAppend(t, s, reading("a", 0, 1))
	snap, n, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(snap)
	if err != nil || int64(len(b)) != n {
		t.Errorf("Snapshot read %d bytes (%v), size %d", len(b), err, n)
	}
	if err := snap.Close(); err != nil {
		t.Error(err)
	}
	if names := listDir(t, dir); !slices.Equal(names, []string{FileName, walDirName}) {
		t.Errorf("after the snapshot is closed, the data dir of the open store holds %v, want the database and its log", names)
	}
	if err := Verify(writeFile(t, b)); err != nil {
		t.Error(err)
	}
}

// Restores in quick succession (a script, the docs test) each keep the
// database they replace, under names of their own.
func TestRestoresInOneSecondKeepEachPrevious(t *testing.T) {
	boltOnly(t)
	dir, backup := backedUp(t)
	seen := map[string]bool{}
	for range 3 {
		previous, err := Restore(backup, dir)
		if err != nil {
			t.Fatal(err)
		}
		if seen[previous] {
			t.Fatalf("two restores kept their previous database as %s", previous)
		}
		seen[previous] = true
	}
	if names := listDir(t, dir); len(names) != 4 { // vatio.db and three previous ones
		t.Errorf("after three restores the data dir holds %v", names)
	}
}

// TestUndoingARestoreBringsBackTheLog restores a backup over a database
// that a crash left with readings in its log only, then restores the
// database it set aside, as the operator guide says to undo a restore: the
// readings of its log come back with it, once each.
func TestUndoingARestoreBringsBackTheLog(t *testing.T) {
	boltOnly(t)
	backup := writeFile(t, goodBackup(t))
	live := t.TempDir()
	s := openTest(t, live)
	for i := range 20 {
		mustAppend(t, s, reading("logged", i, float64(i)))
	}
	// A crash's image: the database and its log as they are, still open.
	dir := t.TempDir()
	if err := copyFile(filepath.Join(live, FileName), filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if err := copyDir(filepath.Join(live, walDirName), filepath.Join(dir, walDirName)); err != nil {
		t.Fatal(err)
	}
	previous, err := Restore(backup, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(previous + ".wal"); err != nil {
		t.Fatalf("the crashed database's log was not kept beside it: %v", err)
	}
	if _, err := Restore(previous, dir); err != nil {
		t.Fatal(err)
	}
	undone, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer undone.Close()
	if m, err := undone.Meter("logged"); err != nil || m.Readings != 20 {
		t.Errorf("after undoing the restore: %+v, %v; want the 20 readings of the log", m, err)
	}
}
