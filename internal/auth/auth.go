// Package auth keeps who may use Vatio: web users with a role and a
// password (argon2id), their sessions, and API tokens (stored hashed), with
// login rate limits. It knows nothing of HTTP: the API asks it who a
// request is and what that role may do.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// Roles, least first.
const (
	Viewer   = "viewer"
	Operator = "operator"
	Admin    = "admin"
)

// Roles lists the roles, least first.
var Roles = []string{Viewer, Operator, Admin}

// Allows reports whether role may do what needs at least role need.
func Allows(role, need string) bool {
	return slices.Index(Roles, role) >= slices.Index(Roles, need) && slices.Contains(Roles, role)
}

// Errors of the package; a failed login is always ErrLogin, whatever was
// wrong, so that it tells nothing of which users exist.
var (
	ErrLogin        = errors.New("auth: wrong user name or password")
	ErrLocked       = errors.New("auth: too many failed logins: try again later")
	ErrInvalid      = errors.New("auth: invalid")
	ErrExists       = errors.New("auth: already exists")
	ErrUnknown      = errors.New("auth: unknown")
	ErrSetupDone    = errors.New("auth: an admin exists already")
	ErrSetupToken   = errors.New("auth: an admin token exists: setup needs it")
	ErrBadToken     = errors.New("auth: invalid or expired token")
	ErrBadSession   = errors.New("auth: invalid or expired session")
	errLastAdmin    = errors.New("auth: the last admin cannot be removed or demoted")
	userName        = regexp.MustCompile(`^[a-zA-Z0-9._@-]{1,64}$`)
	tokenNamePatt   = regexp.MustCompile(`^[\pL\pN ._@:-]{1,64}$`)
	sessionLifetime = 7 * 24 * time.Hour
)

// The rules of a password, which the pages that ask for one show: at least
// MinPasswordChars characters (any: letters, digits, spaces, symbols) and
// at most MaxPasswordBytes bytes of UTF-8. A user name is 1 to
// MaxUserNameChars ASCII letters, digits, '.', '_', '@' or '-'.
const (
	MinPasswordChars = 10
	MaxPasswordBytes = 256
	MaxUserNameChars = 64
)

// Why a user name or password is refused; each is an ErrInvalid.
var (
	ErrPasswordShort = fmt.Errorf("%w password: at least %d characters", ErrInvalid, MinPasswordChars)
	ErrPasswordLong  = fmt.Errorf("%w password: at most %d bytes", ErrInvalid, MaxPasswordBytes)
	ErrPasswordText  = fmt.Errorf("%w password: not UTF-8 text", ErrInvalid)
	ErrUserName      = fmt.Errorf("%w name: 1-%d letters, digits, '.', '_', '@' or '-'", ErrInvalid, MaxUserNameChars)
)

// Document kinds in the store.
const (
	docUsers    = "users"
	docTokens   = "tokens"
	docSessions = "sessions"
)

// Who is whoever a request comes from.
type Who struct {
	// User is the user name, or "token:<name>" for a token.
	User string
	Role string
	// CSRF is the session's token, which changing requests must echo; ""
	// for a token, which needs none.
	CSRF string
	// Token is the token's id, when it is one.
	Token string
}

type whoKey struct{}

// WithWho returns a copy of ctx that carries who: the API puts whoever a
// request comes from into the request's context, and the pages read it.
func WithWho(ctx context.Context, who Who) context.Context {
	return context.WithValue(ctx, whoKey{}, who)
}

// WhoFrom returns who ctx carries: the zero Who when no one was put there
// (auth is off, or the path is open to anyone).
func WhoFrom(ctx context.Context) Who {
	w, _ := ctx.Value(whoKey{}).(Who)
	return w
}

// Service is the users, tokens and sessions. It is safe for concurrent use.
type Service struct {
	// OnLockout, when set, is told when failed log-ins from addr lock a
	// user name out until until: once per lock-out episode and address,
	// however many names or attempts it takes (an alert, not a flood of
	// them). It is called without the Service's lock held.
	OnLockout func(name, addr string, until time.Time)

	st     *store.Store
	now    func() time.Time
	checks *PasswordChecks

	mu       sync.Mutex
	users    map[string]User
	tokens   map[string]Token
	sessions map[string]Session // by SHA-256 of the session id
	failures map[string]*failure
	// lockedAddrs is, per address, the end of the lock-out episode last
	// reported to OnLockout.
	lockedAddrs map[string]time.Time
}

// New loads the users, tokens and sessions of st. Log-ins check passwords
// within checks (nil: unbounded).
func New(st *store.Store, checks *PasswordChecks) (*Service, error) {
	s := &Service{st: st, now: time.Now, checks: checks, users: map[string]User{}, tokens: map[string]Token{},
		sessions: map[string]Session{}, failures: map[string]*failure{}, lockedAddrs: map[string]time.Time{}}
	for kind, load := range map[string]func(k string, v []byte) error{
		docUsers:  func(k string, v []byte) error { var u User; err := json.Unmarshal(v, &u); s.users[k] = u; return err },
		docTokens: func(k string, v []byte) error { var t Token; err := json.Unmarshal(v, &t); s.tokens[k] = t; return err },
		docSessions: func(k string, v []byte) error {
			var x Session
			err := json.Unmarshal(v, &x)
			s.sessions[k] = x
			return err
		},
	} {
		docs, err := st.Docs(kind)
		if err != nil {
			return nil, err
		}
		for k, v := range docs {
			if err := load(k, v); err != nil {
				return nil, fmt.Errorf("auth: %s %q: %w", kind, k, err)
			}
		}
	}
	return s, nil
}

// refresh reads the document of kind under key again from a store that
// other processes change (PostgreSQL: other instances, vatio token), and
// puts it into the cache with set, or, gone, takes it out with drop; both
// run under s.mu. A token made, or revoked, on another instance is then
// known here at its first use. On one bbolt file this process is the only
// writer and the cache is the truth; a store that cannot answer leaves
// the cache as it is.
func (s *Service) refresh(kind, key string, set func(v []byte), drop func()) {
	if !s.st.Shared() {
		return
	}
	v, ok, err := s.st.Doc(kind, key)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		set(v)
	} else {
		drop()
	}
}

// reload reads every document of kind again from a store that other
// processes change (see refresh): clear empties the cache, and set puts
// each in, under s.mu. For the lists, and the last-admin check.
func (s *Service) reload(kind string, set func(k string, v []byte), clear func()) {
	if !s.st.Shared() {
		return
	}
	docs, err := s.st.Docs(kind)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clear()
	for k, v := range docs {
		set(k, v)
	}
}

// put stores a document; s.mu must be held.
func (s *Service) put(kind, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.st.PutDoc(kind, key, b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randomString(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
