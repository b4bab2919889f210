package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/store"
)

func newService(t *testing.T, dir string) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func TestPasswordHash(t *testing.T) {
	h := HashPassword("correct horse battery")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash = %s", h)
	}
	if !CheckPassword(h, "correct horse battery") || CheckPassword(h, "correct horse batterz") {
		t.Error("CheckPassword does not tell the password")
	}
	if a, b := HashPassword("x"), HashPassword("x"); a == b {
		t.Error("no salt")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$aaaa$bbbb", "$argon2id$v=19$m=99999999,t=1,p=1$aaaa$bbbb", h[:len(h)-3]} {
		if CheckPassword(bad, "x") {
			t.Errorf("CheckPassword(%q) passed", bad)
		}
	}
}

func TestSetupLoginAndLockout(t *testing.T) {
	dir := t.TempDir()
	s, st := newService(t, dir)
	if !s.NeedsSetup() {
		t.Fatal("a new database needs no setup")
	}
	if _, err := s.Setup("admin", "short", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("short password: %v", err)
	}
	if _, err := s.Setup("admin", "a long enough password", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Setup("other", "a long enough password", ""); !errors.Is(err, ErrSetupDone) {
		t.Errorf("second setup: %v", err)
	}
	id, x, err := s.Login("admin", "a long enough password", "10.0.0.2")
	if err != nil || x.Role != Admin || x.CSRF == "" {
		t.Fatalf("Login = %+v, %v", x, err)
	}
	who, err := s.Session(id)
	if err != nil || who.User != "admin" || who.Role != Admin || who.CSRF != x.CSRF {
		t.Errorf("Session = %+v, %v", who, err)
	}
	// Sessions survive a restart; the session id is not stored, its hash is.
	st.Close()
	s, st = newService(t, dir)
	if _, err := s.Session(id); err != nil {
		t.Errorf("session after a restart: %v", err)
	}
	docs, _ := st.Docs(docSessions)
	for k := range docs {
		if k == id {
			t.Error("the session id is stored in clear")
		}
	}
	s.Logout(id)
	if _, err := s.Session(id); !errors.Is(err, ErrBadSession) {
		t.Errorf("after logout: %v", err)
	}
	// Five wrong passwords from one address lock that address out.
	for i := range maxFailures {
		if _, _, err := s.Login("admin", "wrong password!", "10.0.0.9"); !errors.Is(err, ErrLogin) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if _, _, err := s.Login("admin", "a long enough password", "10.0.0.9"); !errors.Is(err, ErrLocked) {
		t.Errorf("right password while locked: %v", err)
	}
	if _, _, err := s.Login("admin", "a long enough password", "10.0.0.2"); err != nil {
		t.Errorf("another address is not locked: %v", err)
	}
	s.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, _, err := s.Login("admin", "a long enough password", "10.0.0.9"); err != nil {
		t.Errorf("after the lock-out: %v", err)
	}
	if _, _, err := s.Login("nobody", "whatever password", "10.0.0.2"); !errors.Is(err, ErrLogin) {
		t.Errorf("unknown user: %v", err)
	}
	if err := s.DeleteUser("admin"); err == nil {
		t.Error("the last admin was deleted")
	}
}

func TestTokens(t *testing.T) {
	s, st := newService(t, t.TempDir())
	tok, secret, err := s.NewToken("grafana", Viewer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, TokenPrefix+tok.ID+"_") || tok.Hash != "" {
		t.Errorf("token %+v %q", tok, secret)
	}
	who, err := s.Token(secret)
	if err != nil || who.Role != Viewer || who.User != "token:grafana" || who.CSRF != "" {
		t.Errorf("Token = %+v, %v", who, err)
	}
	docs, _ := st.Docs(docTokens)
	if strings.Contains(string(docs[tok.ID]), secret[len(secret)-20:]) {
		t.Error("the token's secret is stored")
	}
	other := "A" // the secret with its last character changed
	if secret[len(secret)-1] == 'A' {
		other = "B"
	}
	for _, bad := range []string{"", "vat_", secret + "x", secret[:len(secret)-1] + other, "Bearer " + secret} {
		if _, err := s.Token(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("Token(%q) = %v", bad, err)
		}
	}
	past := time.Now().Add(-time.Hour)
	if _, _, err := s.NewToken("old", Admin, &past); !errors.Is(err, ErrInvalid) {
		t.Errorf("an expired token made: %v", err)
	}
	soon := time.Now().Add(time.Hour)
	_, short, _ := s.NewToken("short", Operator, &soon)
	s.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := s.Token(short); !errors.Is(err, ErrBadToken) {
		t.Errorf("expired token: %v", err)
	}
	if err := s.RevokeToken(tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(secret); !errors.Is(err, ErrBadToken) {
		t.Errorf("revoked token: %v", err)
	}
	seed := TokenPrefix + "0123456789ab_" + strings.Repeat("s", 30)
	if err := s.SeedToken(seed, "seeded", Admin); err != nil {
		t.Fatal(err)
	}
	if who, err := s.Token(seed); err != nil || who.Role != Admin {
		t.Errorf("seeded token: %+v, %v", who, err)
	}
	if err := s.SeedToken("too short", "x", Admin); !errors.Is(err, ErrInvalid) {
		t.Errorf("a bad seed: %v", err)
	}
}

func TestAllows(t *testing.T) {
	for _, c := range []struct {
		role, need string
		ok         bool
	}{{Admin, Viewer, true}, {Operator, Operator, true}, {Viewer, Operator, false}, {Operator, Admin, false}, {"root", Viewer, false}} {
		if Allows(c.role, c.need) != c.ok {
			t.Errorf("Allows(%s, %s) != %v", c.role, c.need, c.ok)
		}
	}
}

// A patient attacker's lock-outs grow to a day and stay there: the
// doubling must not overflow into no lock-out at all.
func TestLockoutKeepsGrowingToADay(t *testing.T) {
	s, _ := newService(t, t.TempDir())
	if _, err := s.Setup("admin", "a long enough password", ""); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	prev := time.Duration(0)
	for i := range 80 {
		_, _, err := s.Login("admin", "wrong password!", "198.51.100.7")
		if errors.Is(err, ErrLocked) {
			t.Fatalf("attempt %d was refused as locked: the clock should have passed the lock-out", i)
		}
		if i+1 < maxFailures {
			continue
		}
		// Locked now: find for how long.
		if _, _, err := s.Login("admin", "a long enough password", "198.51.100.7"); !errors.Is(err, ErrLocked) {
			t.Fatalf("after %d failures the right password got in: %v", i+1, err)
		}
		s.mu.Lock()
		d := s.failures["admin|198.51.100.7"].until.Sub(now)
		s.mu.Unlock()
		if d < prev || d > 24*time.Hour {
			t.Fatalf("after %d failures the lock-out is %s (was %s)", i+1, d, prev)
		}
		prev = d
		now = now.Add(d)
	}
	if prev != 24*time.Hour {
		t.Errorf("after 80 failures the lock-out is %s, want a day", prev)
	}
}

// Guesses sent in parallel are checked one at a time per name and
// address: they cannot all pass the lock-out check before any failure is
// counted.
func TestParallelGuessesAreLimited(t *testing.T) {
	s, _ := newService(t, t.TempDir())
	if _, err := s.Setup("admin", "a long enough password", ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var checked atomic.Int64
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Login("admin", fmt.Sprintf("guess number %d", i), "203.0.113.5"); errors.Is(err, ErrLogin) {
				checked.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := checked.Load(); n > maxFailures {
		t.Errorf("%d parallel guesses were checked, want at most %d", n, maxFailures)
	}
}

// Pruning the failed logins forgets what holds no lock-out, never a
// lock-out under way or its recent history.
func TestPruneFailures(t *testing.T) {
	s, _ := newService(t, t.TempDir())
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s.failures = map[string]*failure{
		"few|a":      {n: 2},
		"locked|a":   {n: 7, until: now.Add(time.Hour)},
		"recent|a":   {n: 7, until: now.Add(-time.Hour)},
		"old|a":      {n: 7, until: now.Add(-2 * maxLockout)},
		"checking|a": {n: 1, busy: true},
	}
	s.pruneFailures(now)
	var left []string
	for k := range s.failures {
		left = append(left, k)
	}
	slices.Sort(left)
	if want := []string{"checking|a", "locked|a", "recent|a"}; !slices.Equal(left, want) {
		t.Errorf("after pruning: %v, want %v", left, want)
	}
}

// FuzzLogin: whatever name and password, only the right pair logs in,
// and nothing panics.
func FuzzLogin(f *testing.F) {
	st, err := store.Open(f.TempDir(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	s, _ := New(st, nil)
	const pw = "correct horse battery"
	if _, err := s.Setup("ana", pw, ""); err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][2]string{{"ana", pw}, {"ana", pw + " "}, {"ANA", pw}, {"", ""}, {"ana\x00", pw}, {strings.Repeat("a", 1000), "x"}} {
		f.Add(seed[0], seed[1])
	}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, name, password string) {
		// A fresh address each time, so lock-outs do not hide a wrong
		// success.
		addr := fmt.Sprintf("fuzz-%d", n.Add(1))
		id, who, err := s.Login(name, password, addr)
		if ok := name == "ana" && password == pw; ok != (err == nil) {
			t.Fatalf("Login(%q, %q) = %q %+v, %v", name, password, id, who, err)
		}
		if err == nil && (id == "" || who.User != "ana") {
			t.Fatalf("Login(%q, %q) = %q %+v", name, password, id, who)
		}
	})
}

// FuzzToken checks that no input but a token made here passes.
func FuzzToken(f *testing.F) {
	st, err := store.Open(f.TempDir(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	s, _ := New(st, nil)
	_, secret, _ := s.NewToken("t", Viewer, nil)
	for _, seed := range []string{"", secret, secret[:len(secret)-1], "vat_000000000000_" + strings.Repeat("a", 40)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		who, err := s.Token(in)
		if err == nil && in != secret {
			t.Fatalf("Token(%q) = %+v", in, who)
		}
	})
}

// TestLockoutAlertsOncePerEpisodeAndAddress: an address that locks out
// several names, with further attempts while locked, is reported once; a
// second address once more; the same address again after its lock-outs
// ended, once more.
func TestLockoutAlertsOncePerEpisodeAndAddress(t *testing.T) {
	s, _ := newService(t, t.TempDir())
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	var reports []string
	s.OnLockout = func(name, addr string, until time.Time) {
		reports = append(reports, fmt.Sprintf("%s %s %s", addr, name, until.Sub(now)))
	}
	guess := func(name, addr string, n int) {
		for range n {
			s.Login(name, "wrong password!", addr)
		}
	}
	guess("admin", "198.51.100.7", maxFailures+3) // locked, then more attempts
	guess("root", "198.51.100.7", maxFailures)    // another name, same address, same episode
	guess("admin", "203.0.113.9", maxFailures)    // another address
	if len(reports) != 2 || !strings.HasPrefix(reports[0], "198.51.100.7 admin") || !strings.HasPrefix(reports[1], "203.0.113.9 admin") {
		t.Fatalf("reports %q, want one per address", reports)
	}
	now = now.Add(25 * time.Hour) // every lock-out over
	guess("admin", "198.51.100.7", 1)
	if len(reports) != 3 || !strings.HasPrefix(reports[2], "198.51.100.7 admin") {
		t.Fatalf("reports %q, want a third for the address's new episode", reports)
	}
}

// TestBusyPasswordChecks: with one check at a time and a short wait, a
// log-in that finds the slot taken is ErrBusy, not a failure counted
// toward a lock-out, and the user then logs in.
func TestBusyPasswordChecks(t *testing.T) {
	_, st := newService(t, t.TempDir())
	checks := NewPasswordChecks(1, 10*time.Millisecond)
	s, err := New(st, checks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Setup("admin", "a long enough password", ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var busy atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			if _, _, err := s.Login(fmt.Sprintf("guess%d", i), "wrong password!", "198.51.100.7"); errors.Is(err, ErrBusy) {
				busy.Add(1)
			}
		})
	}
	wg.Wait()
	if busy.Load() == 0 || checks.Refused() != busy.Load() {
		t.Errorf("%d of 8 parallel log-ins busy, %d counted; want some", busy.Load(), checks.Refused())
	}
	if _, _, err := s.Login("admin", "a long enough password", "198.51.100.7"); err != nil {
		t.Errorf("log-in after the flood: %v", err)
	}
}
