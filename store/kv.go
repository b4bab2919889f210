package store

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Documents are small values other packages keep by key, each kind in a
// bucket of its own, created on first write: alert rules and their states.
// The store does not read them.
const (
	// DocRules holds alert rules by id.
	DocRules = "rules"
	// DocRuleStates holds the state of each rule for each meter.
	DocRuleStates = "rule_states"
)

// PutDoc stores v under key in the documents of kind.
func (s *Store) PutDoc(kind, key string, v []byte) error {
	if s.pg != nil {
		return s.pgPutDoc(kind, key, v)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
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

// DeleteDoc deletes key from the documents of kind; deleting nothing is no
// error.
func (s *Store) DeleteDoc(kind, key string) error {
	if s.pg != nil {
		return s.pgDeleteDoc(kind, key)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
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

// Docs returns the documents of kind by key.
func (s *Store) Docs(kind string) (map[string][]byte, error) {
	if s.pg != nil {
		return s.pgDocs(kind)
	}
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
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
