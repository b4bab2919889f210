package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync writes f's data, and its size only if it changed: a log
// segment written in place costs its data pages alone.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// dropCache drops f's clean pages from the page cache. The kernel caches a
// file in folios of up to 2 MiB (large folios); a small write dirties its
// whole folio, and the next fdatasync writes all of it: a log segment read
// or written in large pieces would cost 2 MiB a sync. Dropped, the pages
// come back one small folio a write.
func dropCache(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) }

// freeBytes returns the bytes an unprivileged process may still write on
// the filesystem of dir, false if unknown.
func freeBytes(dir string) (int64, bool) {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
