package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/meter"
)

func testKey(t *testing.T, b byte) *crypt.Key {
	t.Helper()
	k, err := crypt.NewKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// decryptFile decrypts path with k into a file of the test's, and returns
// its path.
func decryptFile(t *testing.T, path string, k *crypt.Key) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := crypt.NewReader(f, k)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := filepath.Join(t.TempDir(), "plain")
	o, _ := os.Create(out)
	defer o.Close()
	if _, err := io.Copy(o, r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func isEncrypted(t *testing.T, path string) bool {
	t.Helper()
	return sealed(readFile(t, path))
}

// sealed reports whether b is encrypted.
func sealed(b []byte) bool { return crypt.IsEncrypted(bufio.NewReader(bytes.NewReader(b))) }

// With a key, archives are written encrypted and read back; archives
// written plain before the key was set are still read, and are encrypted
// when next rewritten.
func TestEncryptedArchives(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	rs := every("m", jan, apr, time.Minute)
	mustImport(t, s, rs)
	// January is archived plain...
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err != nil {
		t.Fatal(err)
	}
	if sealed(behind(s).archive(t, "m", jan)) {
		t.Fatal("an archive was encrypted with no key")
	}
	// ...then the key is set, and February archived (a month later).
	s.key = testKey(t, 3)
	if _, err := s.ApplyRetention(context.Background(), lifeNow.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	febArchive := behind(s).archive(t, "m", feb)
	if !sealed(febArchive) {
		t.Fatal("an archive written with a key is not encrypted")
	}
	if bytes.Contains(febArchive, []byte("timestamp")) {
		t.Error("the archive's text shows through")
	}
	sameReadings(t, "export of plain and encrypted archives", exportAll(t, s, "m"), rs)

	// A late January reading makes January's (plain) archive be rewritten:
	// encrypted now, with every reading.
	late := meter.Reading{Meter: "m", Time: jan.Add(3*day + 10*time.Second), PowerW: 1234, Stamped: true}
	mustAppend(t, s, late)
	if _, err := s.ApplyRetention(context.Background(), lifeNow.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if !sealed(behind(s).archive(t, "m", jan)) {
		t.Error("a plain archive rewritten with a key stayed plain")
	}
	if got := exportAll(t, s, "m"); len(got) != len(rs)+1 {
		t.Errorf("export after the rewrite: %d readings, want %d", len(got), len(rs)+1)
	}
}

// With a key, backups are written encrypted: named .db.enc, a sound
// database once decrypted; snapshots too.
func TestEncryptedBackups(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	key := testKey(t, 3)
	s := openTest(t, dir)
	s.key = key
	mustAppend(t, s, reading("m", 0, 1), reading("m", 10, 2))
	path, err := s.BackupTo(filepath.Join(dir, "backups"), 3, lifeNow)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, ".db.enc") || !isEncrypted(t, path) {
		t.Fatalf("backup %s is not encrypted", path)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v", st.Mode().Perm())
	}
	if err := Verify(decryptFile(t, path, key)); err != nil {
		t.Errorf("the decrypted backup: %v", err)
	}
	if got, ok := newestBackup(filepath.Join(dir, "backups")); !ok || !got.Equal(lifeNow.Truncate(time.Second)) {
		t.Errorf("newest backup = %v, %v", got, ok)
	}
	snap, n, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(snap)
	snap.Close()
	if int64(len(b)) != n || !sealed(b) {
		t.Errorf("snapshot: %d bytes of %d, encrypted %v", len(b), n, sealed(b))
	}
}

// Without the key, an encrypted archive is never rewritten: retention
// stops with a clear error, and the archive and the database are left as
// they were.
func TestEncryptedArchiveWithoutTheKey(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	s.key = testKey(t, 3)
	mustImport(t, s, every("m", jan, apr, time.Minute))
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err != nil {
		t.Fatal(err)
	}
	before := behind(s).archive(t, "m", jan)

	for _, key := range []*crypt.Key{nil, testKey(t, 4)} {
		s.key = key
		late := meter.Reading{Meter: "m", Time: jan.Add(3*day + 10*time.Second), PowerW: 1234, Stamped: true}
		mustAppend(t, s, late)
		_, err := s.ApplyRetention(context.Background(), lifeNow)
		if err == nil {
			t.Fatalf("key %v: an encrypted archive was merged without its key", key)
		}
		if key == nil && !strings.Contains(err.Error(), "encryption.key") {
			t.Errorf("no key: the error does not say what to do: %v", err)
		}
		if key != nil && !errors.Is(err, crypt.ErrWrongKey) {
			t.Errorf("wrong key: %v", err)
		}
		if !bytes.Equal(behind(s).archive(t, "m", jan), before) {
			t.Fatal("the archive changed")
		}
		if got := rangeOf(t, s, "m", jan, feb); len(got) != 1 || got[0].PowerW != 1234 {
			t.Errorf("the late reading: %v", got)
		}
		if err := s.Export(context.Background(), "m", func(Record) error { return nil }); err == nil {
			t.Error("an export read an encrypted archive without its key")
		}
	}
}
