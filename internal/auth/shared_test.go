package auth

import (
	"sync"
	"testing"

	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
	"github.com/vatio-energy/vatio/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSharedStore runs two instances' Services on one PostgreSQL store: a
// token made on one (or by vatio token) is listed, accepted and revoked on
// the other; a token revoked while its first use is under way stays
// revoked (its last-use write must not put it back); a user made on one
// logs in on the other.
func TestSharedStore(t *testing.T) {
	dsn := pgtest.Database(t)
	open := func() *Service {
		st, err := store.OpenPostgres(dsn, t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s, err := New(st, NewPasswordChecks(4, 0))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open(), open()

	tok, full, err := a.NewToken("made on a", Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Tokens()) != 1 {
		t.Errorf("b lists %d tokens, want the one made on a", len(b.Tokens()))
	}
	if _, err := b.Token(full); err != nil {
		t.Errorf("b refuses a token made on a: %v", err)
	}
	if err := b.RevokeToken(tok.ID); err != nil {
		t.Errorf("b cannot revoke a token made on a: %v", err)
	}
	if _, err := a.Token(full); err == nil {
		t.Error("a still accepts the token b revoked")
	}

	back := 0
	for range 200 {
		tok, full, err := a.NewToken("raced", Admin, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { a.Token(full) })
		wg.Go(func() { a.RevokeToken(tok.ID) })
		wg.Wait()
		if _, err := b.Token(full); err == nil {
			back++
		}
	}
	if back > 0 {
		t.Errorf("%d of 200 tokens revoked during their first use are accepted again", back)
	}

	if _, err := a.AddUser("ana", "a long enough password", Operator); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Login("ana", "a long enough password", "192.0.2.1"); err != nil {
		t.Errorf("b refuses the log-in of a user made on a: %v", err)
	}
}
