package store

import (
	"bytes"
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

// newestDocs is NewestDocs on bbolt: a cursor from the last key back, a
// page at a time, fn called between transactions, so that fn may write
// to the store (a write that grows the file waits for every reader).
func (eng *boltEngine) newestDocs(kind string, fn func(key string, v []byte) bool) error {
	const page = 500
	type doc struct {
		k string
		v []byte
	}
	var before []byte // nil: from the last key
	for {
		var got []doc
		err := eng.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("doc_" + kind))
			if b == nil {
				return nil
			}
			c := b.Cursor()
			k, v := c.Last()
			if before != nil {
				if k, v = c.Seek(before); k == nil {
					k, v = c.Last()
				}
				for k != nil && bytes.Compare(k, before) >= 0 {
					k, v = c.Prev()
				}
			}
			for ; k != nil && len(got) < page; k, v = c.Prev() {
				got = append(got, doc{string(k), slices.Clone(v)}) // bbolt's memory is the transaction's
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: read %s: %w", kind, err)
		}
		for _, d := range got {
			if !fn(d.k, d.v) {
				return nil
			}
		}
		if len(got) < page {
			return nil
		}
		before = []byte(got[len(got)-1].k)
	}
}

// deleteDocs is DeleteDocs on bbolt.
func (eng *boltEngine) deleteDocs(kind string, keys []string) error {
	err := eng.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("doc_" + kind))
		if b == nil {
			return nil
		}
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: delete %d %s: %w", len(keys), kind, err)
	}
	return nil
}

// trimDocs is TrimDocs on bbolt: it walks back keep keys from the last,
// and deletes everything before, in one transaction.
func (eng *boltEngine) trimDocs(kind string, keep int) (left int, err error) {
	err = eng.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("doc_" + kind))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, _ := c.Last()
		for ; k != nil && left < keep; k, _ = c.Prev() {
			left++
		}
		if k == nil {
			return nil // keep or fewer
		}
		// k is the newest to delete; deleting from the first key up to
		// it leaves the cursor on the next key each time.
		last := slices.Clone(k)
		for k, _ := c.First(); k != nil && bytes.Compare(k, last) <= 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: trim %s to %d: %w", kind, keep, err)
	}
	return left, nil
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
