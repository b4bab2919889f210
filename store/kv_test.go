package store

import (
	"fmt"
	"maps"
	"slices"
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

// TestDocsInKeyOrder: NewestDocs reads from the greatest key down, bytes
// compared as bytes on both engines, and stops when told; DeleteDocs and
// TrimDocs delete in one go, TrimDocs keeping the greatest keys.
func TestDocsInKeyOrder(t *testing.T) {
	s := openTest(t, t.TempDir())
	// Keys whose byte order a language's collation would change: case,
	// punctuation, digits of another width.
	keys := []string{"b", "B", "a-b", "ab", "_x", "a", "10", "9", "00000000000000000002-000001", "00000000000000000010-000000"}
	for i, k := range keys {
		if err := s.PutDoc("log", k, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	slices.Reverse(want)
	newest := func(limit int) []string {
		t.Helper()
		var got []string
		err := s.NewestDocs("log", func(k string, v []byte) bool {
			if i := slices.Index(keys, k); len(v) != 1 || int(v[0]) != i {
				t.Errorf("NewestDocs: %s = %v, want [%d]", k, v, i)
			}
			got = append(got, k)
			return len(got) < limit
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := newest(100); !slices.Equal(got, want) {
		t.Errorf("NewestDocs = %q, want %q", got, want)
	}
	if got := newest(3); !slices.Equal(got, want[:3]) {
		t.Errorf("NewestDocs, stopped after 3 = %q, want %q", got, want[:3])
	}
	if err := s.NewestDocs("no-such-kind", func(string, []byte) bool { t.Error("a document of a kind never written"); return true }); err != nil {
		t.Error(err)
	}

	if err := s.DeleteDocs("log", []string{want[0], want[4], "never"}); err != nil {
		t.Fatal(err)
	}
	want = slices.Delete(want, 4, 5)
	want = want[1:]
	if got := newest(100); !slices.Equal(got, want) {
		t.Errorf("after DeleteDocs: %q, want %q", got, want)
	}

	left, err := s.TrimDocs("log", 5)
	if err != nil || left != 5 {
		t.Fatalf("TrimDocs(5) = %d, %v", left, err)
	}
	if got := newest(100); !slices.Equal(got, want[:5]) {
		t.Errorf("after TrimDocs(5): %q, want the greatest keys %q", got, want[:5])
	}
	if left, err := s.TrimDocs("log", 50); err != nil || left != 5 {
		t.Errorf("TrimDocs(50) of 5 = %d, %v; want 5 left", left, err)
	}
	if left, err := s.TrimDocs("no-such-kind", 5); err != nil || left != 0 {
		t.Errorf("TrimDocs of a kind never written = %d, %v", left, err)
	}
	if left, err := s.TrimDocs("log", 0); err != nil || left != 0 || len(newest(100)) != 0 {
		t.Errorf("TrimDocs(0) = %d, %v; left %q", left, err, newest(100))
	}
}

// TestNewestDocsPages: on PostgreSQL the newest documents come a page at a
// time; the order holds across pages.
func TestNewestDocsPages(t *testing.T) {
	s := openTest(t, t.TempDir())
	const n = 1234
	for i := range n {
		if err := s.PutDoc("log", fmt.Sprintf("%08d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	next := n - 1
	big := make([]byte, 8<<20)
	err := s.NewestDocs("log", func(k string, _ []byte) bool {
		// fn may write to the store, even a document that grows the file
		// (on bbolt, a writer that remaps waits for every reader).
		if next == n-1 || next == n-600 {
			if err := s.PutDoc("other", k, big); err != nil {
				t.Fatal(err)
			}
		}
		if want := fmt.Sprintf("%08d", next); k != want {
			t.Fatalf("NewestDocs gave %s, want %s", k, want)
		}
		next--
		return true
	})
	if err != nil || next != -1 {
		t.Errorf("NewestDocs stopped at %d: %v", next, err)
	}
	if left, err := s.TrimDocs("log", 1000); err != nil || left != 1000 {
		t.Errorf("TrimDocs(1000) of %d = %d, %v", n, left, err)
	}
}
