//go:build !windows && !plan9 && !solaris && !aix

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// lockFile takes, within timeout, the exclusive lock that bbolt takes on a
// database it opens for writing, and returns its release. A file that does
// not exist needs no lock. A running Vatio holding path gives ErrLocked.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("store: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: %s (stop the vatio running on this data dir first)", ErrLocked, path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ownLikeDir gives path the owner of dir when they differ and this
// process may change owners (root): a database written by `sudo vatio
// restore` must stay the service user's.
func ownLikeDir(path, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	var d, f syscall.Stat_t
	if err := syscall.Stat(dir, &d); err != nil {
		return err
	}
	if err := syscall.Stat(path, &f); err != nil {
		return err
	}
	if d.Uid == f.Uid && d.Gid == f.Gid {
		return nil
	}
	return os.Chown(path, int(d.Uid), int(d.Gid))
}
