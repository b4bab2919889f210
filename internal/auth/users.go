package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// User is a web user.
type User struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"hash,omitempty"`
	Created time.Time `json:"created"`
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
		return ErrPasswordText
	case utf8.RuneCountInString(pw) < MinPasswordChars:
		return ErrPasswordShort
	case len(pw) > MaxPasswordBytes:
		return ErrPasswordLong
	}
	return nil
}

// AddUser creates a user; Setup makes the first admin.
func (s *Service) AddUser(name, password, role string) (User, error) {
	if !userName.MatchString(name) {
		return User{}, ErrUserName
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
