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
