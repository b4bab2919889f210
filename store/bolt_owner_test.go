//go:build !windows && !plan9 && !solaris && !aix

package store

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// `sudo vatio restore` on a data directory the service user owns leaves a
// database that user can open: the restored file takes the directory's
// owner.
func TestRestoreAndCompactKeepTheDirectorysOwner(t *testing.T) {
	boltOnly(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root, as sudo vatio restore runs")
	}
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("a", 0, 100))
	backup, err := s.BackupTo(t.TempDir(), 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	const uid, gid = 65534, 65534 // nobody, as a service user
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(backup, dir); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, FileName), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("the restored database is owned by %d:%d, want the directory's %d:%d", st.Uid, st.Gid, uid, gid)
	}
	// So does `sudo vatio compact`, which writes the database anew.
	if _, _, err := CompactFile(dir); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(dir, FileName), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("the compacted database is owned by %d:%d, want the directory's %d:%d", st.Uid, st.Gid, uid, gid)
	}
}
