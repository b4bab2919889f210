// Package auth keeps who may use Vatio: web users with a role and a
// password (argon2id), their sessions, and API tokens (stored hashed), with
// login rate limits. It knows nothing of HTTP: the API asks it who a
// request is and what that role may do.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

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
	minPasswordLen  = 10
	maxPasswordLen  = 256
	sessionLifetime = 7 * 24 * time.Hour
)

// Document kinds in the store.
const (
	docUsers    = "users"
	docTokens   = "tokens"
	docSessions = "sessions"
)

// User is a web user.
type User struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"hash,omitempty"`
	Created time.Time `json:"created"`
}

// Token is an API token. Its secret is shown once, when it is made; only
// its SHA-256 is kept (a token is 32 random bytes: a slow hash adds
// nothing).
type Token struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Role     string     `json:"role"`
	Hash     string     `json:"hash,omitempty"`
	Created  time.Time  `json:"created"`
	Expires  *time.Time `json:"expires,omitempty"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// Session is a logged-in browser.
type Session struct {
	User    string    `json:"user"`
	Role    string    `json:"role"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

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

type failure struct {
	n     int
	until time.Time
	// busy is an attempt being checked: a second one at the same time is
	// refused, so that parallel guesses cannot all pass the lock-out
	// check before any failure is counted.
	busy bool
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

// NeedsSetup reports whether no admin user exists yet: the setup page is
// open (to the holder of an admin token, when one exists: see
// SetupNeedsToken).
func (s *Service) NeedsSetup() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Role == Admin {
			return false
		}
	}
	return true
}

// argon2id parameters: OWASP's minimum (19 MiB, 2 passes), fine on a
// Raspberry Pi.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns the argon2id hash of password in the PHC format.
func HashPassword(password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding.EncodeToString
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64(salt), b64(key))
}

// CheckPassword reports whether password matches a HashPassword hash.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<21 || t == 0 || t > 10 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 || len(key) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

func checkPassword(pw string) error {
	switch {
	case !utf8.ValidString(pw):
		return fmt.Errorf("%w password: not UTF-8 text", ErrInvalid)
	case utf8.RuneCountInString(pw) < minPasswordLen:
		return fmt.Errorf("%w password: at least %d characters", ErrInvalid, minPasswordLen)
	case len(pw) > maxPasswordLen:
		return fmt.Errorf("%w password: at most %d bytes", ErrInvalid, maxPasswordLen)
	}
	return nil
}

// AddUser creates a user; Setup makes the first admin.
func (s *Service) AddUser(name, password, role string) (User, error) {
	if !userName.MatchString(name) {
		return User{}, fmt.Errorf("%w name: 1-64 letters, digits, '.', '_', '@' or '-'", ErrInvalid)
	}
	if !slices.Contains(Roles, role) {
		return User{}, fmt.Errorf("%w role: admin, operator or viewer", ErrInvalid)
	}
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	u := User{Name: name, Role: role, Hash: HashPassword(password), Created: s.now().UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; ok {
		return User{}, fmt.Errorf("%w: user %q", ErrExists, name)
	}
	if err := s.put(docUsers, name, u); err != nil {
		return User{}, err
	}
	s.users[name] = u
	u.Hash = ""
	return u, nil
}

// SetupNeedsToken reports whether an admin token exists (such as
// VATIO_ADMIN_TOKEN): setup is then closed to anyone who does not hold one.
func (s *Service) SetupNeedsToken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, t := range s.tokens {
		if t.Role == Admin && (t.Expires == nil || now.Before(*t.Expires)) {
			return true
		}
	}
	return false
}

// Setup creates the first admin user, only while none exists; while an
// admin token exists, only with that token (ErrSetupToken otherwise).
func (s *Service) Setup(name, password, token string) (User, error) {
	if !s.NeedsSetup() {
		return User{}, ErrSetupDone
	}
	if s.SetupNeedsToken() {
		if who, err := s.Token(token); err != nil || who.Role != Admin {
			return User{}, ErrSetupToken
		}
	}
	return s.AddUser(name, password, Admin)
}

// DeleteUser removes a user and its sessions; the last admin stays.
func (s *Service) DeleteUser(name string) error {
	s.reload(docUsers, func(k string, v []byte) { var u User; _ = json.Unmarshal(v, &u); s.users[k] = u }, func() { clear(s.users) })
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return fmt.Errorf("%w user %q", ErrUnknown, name)
	}
	if u.Role == Admin && s.admins() == 1 {
		return errLastAdmin
	}
	if err := s.st.DeleteDoc(docUsers, name); err != nil {
		return err
	}
	delete(s.users, name)
	for k, x := range s.sessions {
		if x.User == name {
			delete(s.sessions, k)
			_ = s.st.DeleteDoc(docSessions, k)
		}
	}
	return nil
}

func (s *Service) admins() int {
	n := 0
	for _, u := range s.users {
		if u.Role == Admin {
			n++
		}
	}
	return n
}

// Users returns the users, without their hashes, by name.
func (s *Service) Users() []User {
	s.reload(docUsers, func(k string, v []byte) { var u User; _ = json.Unmarshal(v, &u); s.users[k] = u }, func() { clear(s.users) })
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		u.Hash = ""
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out
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

// TokenPrefix starts every token, so that a leaked one is easy to find.
const TokenPrefix = "vat_"

// NewToken makes a token with a role and an optional expiry, and returns
// it with its secret, shown this once.
func (s *Service) NewToken(name, role string, expires *time.Time) (Token, string, error) {
	if !tokenNamePatt.MatchString(name) {
		return Token{}, "", fmt.Errorf("%w name: 1-64 letters, digits, spaces, '.', '_', '@', ':' or '-'", ErrInvalid)
	}
	if !slices.Contains(Roles, role) {
		return Token{}, "", fmt.Errorf("%w role: admin, operator or viewer", ErrInvalid)
	}
	if expires != nil && !expires.After(s.now()) {
		return Token{}, "", fmt.Errorf("%w expires: must be in the future", ErrInvalid)
	}
	id := hex.EncodeToString(randomBytes(6))
	secret := randomString(32)
	return s.storeToken(Token{ID: id, Name: name, Role: role, Created: s.now().UTC(), Expires: expires}, TokenPrefix+id+"_"+secret, secret)
}

// SeedToken makes sure a known token (VATIO_ADMIN_TOKEN) exists with a
// role: automation and tests call the API with it.
func (s *Service) SeedToken(token, name, role string) error {
	id, secret, ok := parseToken(token)
	if !ok || len(secret) < 24 {
		return fmt.Errorf("%w token: %s<12 hex>_<at least 24 characters>", ErrInvalid, TokenPrefix)
	}
	s.mu.Lock()
	t, exists := s.tokens[id]
	s.mu.Unlock()
	if exists && t.Hash == hashString(secret) && t.Role == role {
		return nil
	}
	_, _, err := s.storeToken(Token{ID: id, Name: name, Role: role, Created: s.now().UTC()}, token, secret)
	return err
}

func (s *Service) storeToken(t Token, full, secret string) (Token, string, error) {
	t.Hash = hashString(secret)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.put(docTokens, t.ID, t); err != nil {
		return Token{}, "", err
	}
	s.tokens[t.ID] = t
	t.Hash = ""
	return t, full, nil
}

var tokenPattern = regexp.MustCompile(`^` + TokenPrefix + `([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$`)

func parseToken(token string) (id, secret string, ok bool) {
	m := tokenPattern.FindStringSubmatch(token)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// Token returns who a bearer token is, noting its use.
func (s *Service) Token(token string) (Who, error) {
	id, secret, ok := parseToken(token)
	if !ok {
		return Who{}, ErrBadToken
	}
	s.refresh(docTokens, id, func(v []byte) { var t Token; _ = json.Unmarshal(v, &t); s.tokens[id] = t }, func() { delete(s.tokens, id) })
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hashString(secret))) != 1 {
		return Who{}, ErrBadToken
	}
	now := s.now()
	if t.Expires != nil && now.After(*t.Expires) {
		return Who{}, ErrBadToken
	}
	if t.LastUsed == nil || now.Sub(*t.LastUsed) > time.Minute { // not a write per request
		used := now.UTC()
		t.LastUsed = &used
		s.tokens[id] = t
		// An update, not a put: a token revoked meanwhile (on another
		// instance) stays revoked.
		if b, err := json.Marshal(t); err == nil {
			if ok, err := s.st.UpdateDoc(docTokens, id, b); err == nil && !ok {
				delete(s.tokens, id)
				return Who{}, ErrBadToken
			}
		}
	}
	return Who{User: "token:" + t.Name, Role: t.Role, Token: id}, nil
}

// Tokens returns the tokens, without their hashes, newest first.
func (s *Service) Tokens() []Token {
	s.reload(docTokens, func(k string, v []byte) { var t Token; _ = json.Unmarshal(v, &t); s.tokens[k] = t }, func() { clear(s.tokens) })
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		t.Hash = ""
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Token) int { return b.Created.Compare(a.Created) })
	return out
}

// RevokeToken deletes a token.
func (s *Service) RevokeToken(id string) error {
	s.refresh(docTokens, id, func(v []byte) { var t Token; _ = json.Unmarshal(v, &t); s.tokens[id] = t }, func() { delete(s.tokens, id) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tokens[id]; !ok {
		return fmt.Errorf("%w token %q", ErrUnknown, id)
	}
	if err := s.st.DeleteDoc(docTokens, id); err != nil {
		return err
	}
	delete(s.tokens, id)
	return nil
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
