package auth

import (
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// SessionCookie is the name of the cookie that holds a browser's session
// id.
const SessionCookie = "vatio_session"

// Session is a logged-in browser.
type Session struct {
	User    string    `json:"user"`
	Role    string    `json:"role"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

type failure struct {
	n     int
	until time.Time
	// busy is an attempt being checked: a second one at the same time is
	// refused, so that parallel guesses cannot all pass the lock-out
	// check before any failure is counted.
	busy bool
}

// Login rate limits: after maxFailures failed logins of one user name from
// one address, that pair is locked out for lockout (doubling on each
// further failure, up to a day).
const (
	maxFailures = 5
	lockout     = time.Minute
	maxLockout  = 24 * time.Hour
	// maxTracked bounds the failed logins remembered, against a flood of
	// made-up names; lock-outs under way are never forgotten to make room.
	maxTracked = 100000
)

// pruneFailures forgets the failures that hold no lock-out now and no
// attempt under way; a lock-out's history (which doubles the next one) is
// kept for a day after it ended. s.mu is held.
func (s *Service) pruneFailures(now time.Time) {
	for k, f := range s.failures {
		if !f.busy && !now.Before(f.until) && (f.n < maxFailures || now.Sub(f.until) > maxLockout) {
			delete(s.failures, k)
		}
	}
	for a, until := range s.lockedAddrs {
		if now.After(until) {
			delete(s.lockedAddrs, a)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Login checks a user's password, limited per name and address, and
// starts a session: it returns the session id for the cookie.
func (s *Service) Login(name, password, addr string) (string, Session, error) {
	key := strings.ToLower(name) + "|" + addr
	now := s.now()
	if len(name) <= 64 {
		s.refresh(docUsers, name, func(v []byte) { var u User; _ = json.Unmarshal(v, &u); s.users[name] = u }, func() { delete(s.users, name) })
	}
	s.mu.Lock()
	f := s.failures[key]
	if f != nil && now.Before(f.until) {
		s.mu.Unlock()
		return "", Session{}, ErrLocked
	}
	if f != nil && f.busy { // the same name from the same address, being checked
		s.mu.Unlock()
		return "", Session{}, ErrBusy
	}
	if f == nil {
		if len(s.failures) >= maxTracked {
			s.pruneFailures(now)
		}
		if len(s.failures) < maxTracked {
			f = &failure{}
			s.failures[key] = f
		}
	}
	if f != nil {
		f.busy = true
	}
	u, ok := s.users[name]
	s.mu.Unlock()
	hash := u.Hash
	if !ok {
		hash = dummyHash() // the same work whether the user exists or not
	}
	good, err := s.checks.Check(hash, password)
	good = good && ok
	s.mu.Lock()
	if f != nil {
		f.busy = false
	}
	if err != nil { // busy: not an attempt, so not a failure
		s.mu.Unlock()
		return "", Session{}, err
	}
	if !good {
		report := false
		if f != nil {
			f.n++
			if f.n >= maxFailures {
				// Doubling, to a day at most. The shift is capped first:
				// lockout<<28 overflows, which would lift the lock-out
				// for a patient attacker.
				f.until = now.Add(min(lockout<<min(f.n-maxFailures, 12), maxLockout))
				if len(s.lockedAddrs) >= maxTracked {
					s.pruneFailures(now)
				}
				if last, ok := s.lockedAddrs[addr]; !ok || !now.Before(last) {
					report = true // a new episode for this address
				}
				s.lockedAddrs[addr] = later(s.lockedAddrs[addr], f.until)
			}
		}
		onLockout, until := s.OnLockout, time.Time{}
		if f != nil {
			until = f.until
		}
		s.mu.Unlock()
		if report && onLockout != nil {
			onLockout(name, addr, until)
		}
		return "", Session{}, ErrLogin
	}
	if f != nil && f == s.failures[key] {
		delete(s.failures, key)
	}
	s.mu.Unlock()
	id := randomString(32)
	x := Session{User: u.Name, Role: u.Role, CSRF: randomString(24), Expires: now.Add(sessionLifetime).UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := hashString(id)
	if err := s.put(docSessions, k, x); err != nil {
		return "", Session{}, err
	}
	s.sessions[k] = x
	return id, x, nil
}

// dummyHash is checked for a user who does not exist; made on first use,
// not when the package loads (19 MiB of argon2id for every command).
var dummyHash = sync.OnceValue(func() string { return HashPassword("not a password of anyone") })

// Session returns who a session cookie is.
func (s *Service) Session(id string) (Who, error) {
	if len(id) < 20 || len(id) > 100 {
		return Who{}, ErrBadSession
	}
	k := hashString(id)
	s.refresh(docSessions, k, func(v []byte) { var x Session; _ = json.Unmarshal(v, &x); s.sessions[k] = x }, func() { delete(s.sessions, k) })
	s.mu.Lock()
	x, ok := s.sessions[k]
	s.mu.Unlock()
	if ok {
		s.refresh(docUsers, x.User, func(v []byte) { var u User; _ = json.Unmarshal(v, &u); s.users[x.User] = u }, func() { delete(s.users, x.User) })
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || s.now().After(x.Expires) {
		return Who{}, ErrBadSession
	}
	if u, ok := s.users[x.User]; !ok || u.Role != x.Role {
		return Who{}, ErrBadSession // removed, or its role changed
	}
	return Who{User: x.User, Role: x.Role, CSRF: x.CSRF}, nil
}

// Logout ends a session.
func (s *Service) Logout(id string) {
	k := hashString(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, k)
	_ = s.st.DeleteDoc(docSessions, k)
}
