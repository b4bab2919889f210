package store

import (
	"maps"
	"testing"
)

// TestDocs: documents are kept by kind and key, replaced, deleted, kept
// across a reopen, and handed out as copies.
func TestDocs(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	if docs, err := s.Docs(DocRules); err != nil || len(docs) != 0 {
		t.Errorf("Docs of a new store = %v, %v; want none", docs, err)
	}
	binary := []byte{0, 1, 2, 0xfe, 0xff, '\n', 0}
	for _, d := range []struct{ kind, key, v string }{
		{DocRules, "r1", `{"v":1}`},
		{DocRules, "r2", `{"v":2}`},
		{DocRuleStates, "r1", "firing"},
		{DocRules, "r1", `{"v":3}`}, // replaces the first
		{"other", "bin", string(binary)},
	} {
		if err := s.PutDoc(d.kind, d.key, []byte(d.v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct{ kind, key string }{
		{DocRules, "r2"},
		{DocRules, "never"},     // deleting nothing is no error
		{"no-such-kind", "any"}, // nor in a kind never written
	} {
		if err := s.DeleteDoc(d.kind, d.key); err != nil {
			t.Errorf("DeleteDoc(%s, %s) = %v", d.kind, d.key, err)
		}
	}
	want := map[string]map[string]string{
		DocRules:      {"r1": `{"v":3}`},
		DocRuleStates: {"r1": "firing"},
		"other":       {"bin": string(binary)},
		"empty":       {},
	}
	check := func(s *Store, when string) {
		t.Helper()
		for kind, w := range want {
			docs, err := s.Docs(kind)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range docs {
				got[k] = string(v)
			}
			if !maps.Equal(got, w) {
				t.Errorf("%s: Docs(%s) = %q, want %q", when, kind, got, w)
			}
		}
	}
	check(s, "after the changes")

	docs, _ := s.Docs(DocRules)
	docs["r1"][0] = 'X' // the caller's copy
	check(s, "after changing what Docs returned")

	s.Close()
	check(openTest(t, dir), "after reopening")
}
