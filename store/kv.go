package store

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
	if v == nil {
		v = []byte{} // an empty document, on either engine
	}
	return s.eng.putDoc(kind, key, v)
}

// DeleteDoc deletes key from the documents of kind; deleting nothing is no
// error.
func (s *Store) DeleteDoc(kind, key string) error {
	return s.eng.deleteDoc(kind, key)
}

// Docs returns the documents of kind by key.
func (s *Store) Docs(kind string) (map[string][]byte, error) {
	return s.eng.docs(kind)
}

// NewestDocs calls fn with the documents of kind from the greatest key
// down (newest first, for keys that sort by time, such as the audit log's)
// until fn returns false: listing the newest few reads only those. v is
// fn's to keep.
func (s *Store) NewestDocs(kind string, fn func(key string, v []byte) bool) error {
	return s.eng.newestDocs(kind, fn)
}

// DeleteDocs deletes keys from the documents of kind in one transaction;
// keys that are not there are no error.
func (s *Store) DeleteDocs(kind string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	return s.eng.deleteDocs(kind, keys)
}

// TrimDocs keeps the newest keep documents of kind (those of the greatest
// keys), deletes the others in one transaction, and returns how many are
// left.
func (s *Store) TrimDocs(kind string, keep int) (int, error) {
	return s.eng.trimDocs(kind, max(keep, 0))
}

// Doc returns the document of kind under key; ok is false when there is
// none.
func (s *Store) Doc(kind, key string) (v []byte, ok bool, err error) {
	return s.eng.doc(kind, key)
}

// Shared reports whether other processes may change the store while this
// one runs (PostgreSQL: instances side by side, and commands such as vatio
// token): whoever caches documents reads them again.
func (s *Store) Shared() bool {
	_, ok := s.eng.(*pgEngine)
	return ok
}

// UpdateDoc replaces the document of kind under key if there is one, and
// reports whether there was: a write that must not bring back a document
// deleted meanwhile (by another instance, on PostgreSQL).
func (s *Store) UpdateDoc(kind, key string, v []byte) (bool, error) {
	return s.eng.updateDoc(kind, key, v)
}
