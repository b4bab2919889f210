//go:build windows || plan9 || solaris || aix

package store

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// lockFile checks, within timeout, that no running Vatio holds the database
// at path by opening it as bbolt does. Unlike on Unix, the lock is not held
// afterwards.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (stop the vatio running on this data dir first)", ErrLocked, path)
	}
	if err == nil {
		db.Close()
	}
	return func() {}, nil
}

// ownLikeDir does nothing where owners are not Unix ones.
func ownLikeDir(path, dir string) error { return nil }
