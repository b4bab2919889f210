package auth

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

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

// TokenID returns the public part of a token (its id, as the Access page
// lists it) when token has a token's form, else "": what may be logged of
// a refused token, never its secret.
func TokenID(token string) string {
	id, _, ok := parseToken(token)
	if !ok {
		return ""
	}
	return strings.Clone(id)
}

// TokenName returns the name of the token whose id is id, if there is one.
func (s *Service) TokenName(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	return t.Name, ok
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
