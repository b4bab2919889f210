package store

import (
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// backup is Backup on bbolt: the head is checkpointed, then the file
// copied from one read transaction.
func (eng *boltEngine) backup(w io.Writer) (int64, error) {
	// The copy holds what the head held too: it is checkpointed first.
	if err := eng.checkpoint(); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	var n int64
	err := eng.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// backups is nil: Vatio backs a bbolt file up itself.
func (eng *boltEngine) backups() error { return nil }
