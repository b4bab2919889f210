package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Documents and alerts on bbolt: a bucket doc_<kind> for each kind of
// documents, and the alerts bucket.

// putDoc is PutDoc on bbolt: each kind of documents is a bucket, doc_<kind>.
func (eng *boltEngine) putDoc(kind, key string, v []byte) error {
	err := eng.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("doc_" + kind))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
	if err != nil {
		return fmt.Errorf("store: put %s %q: %w", kind, key, err)
	}
	return nil
}

// deleteDoc is DeleteDoc on bbolt.
func (eng *boltEngine) deleteDoc(kind, key string) error {
	err := eng.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("doc_" + kind)); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete %s %q: %w", kind, key, err)
	}
	return nil
}

// docs is Docs on bbolt.
func (eng *boltEngine) docs(kind string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := eng.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("doc_" + kind))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = slices.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", kind, err)
	}
	return out, nil
}

// updateDoc is UpdateDoc on bbolt.
func (eng *boltEngine) updateDoc(kind, key string, v []byte) (ok bool, err error) {
	err = eng.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("doc_" + kind))
		if b == nil || b.Get([]byte(key)) == nil {
			return nil
		}
		ok = true
		return b.Put([]byte(key), v)
	})
	if err != nil {
		return false, fmt.Errorf("store: update %s %q: %w", kind, key, err)
	}
	return ok, nil
}

// doc is Doc on bbolt.
func (eng *boltEngine) doc(kind, key string) (v []byte, ok bool, err error) {
	err = eng.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("doc_" + kind)); b != nil {
			if got := b.Get([]byte(key)); got != nil {
				v, ok = slices.Clone(got), true
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: read %s %q: %w", kind, key, err)
	}
	return v, ok, nil
}

// addAlert is AddAlert on bbolt: the bucket's sequence numbers alerts.
func (eng *boltEngine) addAlert(a *Alert) error {
	err := eng.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		a.ID = id
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint64(nil, id), v)
	})
	if err != nil {
		return fmt.Errorf("store: add alert: %w", err)
	}
	return nil
}

// updateAlert is UpdateAlert on bbolt.
func (eng *boltEngine) updateAlert(id uint64, fn func(*Alert)) error {
	err := eng.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		key := binary.BigEndian.AppendUint64(nil, id)
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("%w: %d", ErrUnknownAlert, id)
		}
		_, nv, err := changeAlert(id, v, fn)
		if err != nil {
			return err
		}
		return b.Put(key, nv)
	})
	if err != nil {
		return fmt.Errorf("store: update alert: %w", err)
	}
	return nil
}

// alerts is Alerts on bbolt.
func (eng *boltEngine) alerts(limit int, keep func(*Alert) bool) ([]Alert, error) {
	var out []Alert
	err := eng.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var a Alert
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("alert %x: %w", k, err)
			}
			if keep == nil || keep(&a) {
				out = append(out, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	return out, nil
}
