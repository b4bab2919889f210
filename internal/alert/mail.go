package alert

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// docMail is the document kind of the SMTP settings saved on the Settings
// page or through the API, under the key savedMailKey.
const (
	docMail      = "mail"
	savedMailKey = "saved"
)

// Where the SMTP settings in force come from.
const (
	// MailFromConfig is config.yaml's alerts.email: nothing was saved.
	MailFromConfig = "config"
	// MailFromDatabase is the settings saved on the Settings page or
	// through the API, which override config.yaml's until removed.
	MailFromDatabase = "database"
	// MailOff is no SMTP server at all: nothing is mailed.
	MailOff = "none"
)

// Bounds of the SMTP settings.
const (
	MaxMailRecipients = 50
	maxMailField      = 320 // an address's length (RFC 3696 errata)
	maxMailSecret     = 512
)

// MailSpec is an SMTP server's settings: config.yaml's alerts.email, or
// those saved on the Settings page. Addr empty is no server.
type MailSpec struct {
	// Addr is the server, host:port.
	Addr string `json:"addr"`
	// From is the sender, an address with or without a name.
	From string `json:"from"`
	// To are the recipients of alerts; none mails no alert (statements
	// have recipients of their own).
	To []string `json:"to"`
	// Username logs in (PLAIN) when set; Password is its password.
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
	// TLS is starttls (port 587), tls (from the first byte, port 465) or
	// none (a relay on this machine, without Username).
	TLS string `json:"tls"`
	// Timeout bounds one delivery.
	Timeout Duration `json:"timeout"`
}

// MailProblem is a setting refused, named by its key (to[1]), and why.
type MailProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// MailInvalidError lists the settings refused.
type MailInvalidError struct{ Problems []MailProblem }

func (e *MailInvalidError) Error() string {
	var b strings.Builder
	b.WriteString("invalid SMTP settings: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Field + ": " + p.Reason)
	}
	return b.String()
}

// Check returns what is wrong in s, a setting at a time, in order; none
// when Addr is empty (no server) or all is well.
func (s MailSpec) Check() []MailProblem {
	var out []MailProblem
	bad := func(field, format string, args ...any) {
		out = append(out, MailProblem{field, fmt.Sprintf(format, args...)})
	}
	if s.Addr == "" {
		return nil
	}
	if host, port, err := net.SplitHostPort(s.Addr); err != nil || host == "" || port == "" || len(s.Addr) > 255 || hasControl(s.Addr) {
		bad("addr", "%q is not host:port, such as smtp.example.org:587", clip(s.Addr))
	}
	if len(s.From) > maxMailField || hasControl(s.From) {
		bad("from", "is not an email address")
	} else if _, err := mail.ParseAddress(s.From); err != nil {
		bad("from", "%q is not an email address", s.From)
	}
	if len(s.To) > MaxMailRecipients {
		bad("to", "at most %d addresses", MaxMailRecipients)
	} else {
		for i, to := range s.To {
			if len(to) > maxMailField || hasControl(to) {
				bad(fmt.Sprintf("to[%d]", i), "is not an email address")
			} else if _, err := mail.ParseAddress(to); err != nil {
				bad(fmt.Sprintf("to[%d]", i), "%q is not an email address", to)
			}
		}
	}
	if len(s.Username) > maxMailSecret || hasControl(s.Username) {
		bad("username", "at most %d characters, no control characters", maxMailSecret)
	}
	if len(s.Password) > maxMailSecret || hasControl(s.Password) {
		bad("password", "at most %d characters, no control characters", maxMailSecret)
	}
	switch s.TLS {
	case "starttls", "tls":
	case "none":
		if s.Username != "" {
			bad("tls", "none would send the password in clear: use starttls or tls")
		}
	default:
		bad("tls", "%q is not starttls, tls or none", clip(s.TLS))
	}
	if t := time.Duration(s.Timeout); t < time.Second || t > 5*time.Minute {
		bad("timeout", "%s is outside 1s to 5m", t)
	}
	return out
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// MailView is MailSpec as it is shown: the password never, only whether
// there is one.
type MailView struct {
	Addr        string   `json:"addr"`
	From        string   `json:"from"`
	To          []string `json:"to"`
	Username    string   `json:"username"`
	PasswordSet bool     `json:"password_set"`
	TLS         string   `json:"tls"`
	Timeout     Duration `json:"timeout"`
}

// View returns s as it is shown.
func (s MailSpec) View() MailView {
	to := s.To
	if to == nil {
		to = []string{}
	}
	return MailView{Addr: s.Addr, From: s.From, To: to, Username: s.Username, PasswordSet: s.Password != "",
		TLS: s.TLS, Timeout: s.Timeout}
}

// Summary names v in the audit log and the log: never a password.
func (v MailView) Summary() string {
	s := v.Addr + " (" + v.TLS + ")"
	if v.Username != "" {
		s += " as " + v.Username
	}
	return s + ", from " + v.From
}

// SavedMail is the SMTP settings saved on the Settings page or through
// the API.
type SavedMail struct {
	Mail    MailSpec  `json:"mail"`
	SavedAt time.Time `json:"saved_at"`
	SavedBy string    `json:"saved_by"`
}

// MailState says which SMTP settings are in force and why.
type MailState struct {
	// Source is MailFromDatabase, MailFromConfig or MailOff.
	Source string `json:"source"`
	// Mail is the settings in force (Addr empty: MailOff).
	Mail MailView `json:"mail"`
	// Config is config.yaml's alerts.email.
	Config MailView `json:"config"`
	// Saved is the settings saved, if any, and when and by whom.
	Saved   *MailView `json:"saved,omitempty"`
	SavedAt time.Time `json:"saved_at,omitzero"`
	SavedBy string    `json:"saved_by,omitempty"`
	// Problem, when set, says why saved settings are not in force.
	Problem string `json:"problem,omitempty"`
}

// Mail is the SMTP server in force: the settings saved on the Settings
// page or through the API when there are some, else config.yaml's
// alerts.email. It mails alerts (Notifier) and statements (Send). On a
// store other processes change (PostgreSQL), every use reads the saved
// settings again. It is safe for concurrent use.
type Mail struct {
	st     *store.Store // nil: config's only
	config MailSpec
	log    *slog.Logger
	// TLSConfig, if not nil, is the base of the TLS settings (tests give
	// their own certificate authority).
	TLSConfig *tls.Config

	mu      sync.Mutex
	saved   *SavedMail
	problem string
}

// NewMail returns the SMTP settings in force in st, config when nothing
// is saved. Saved settings that cannot be read are reported
// (MailState.Problem), config's in force meanwhile.
func NewMail(st *store.Store, config MailSpec, logger *slog.Logger) (*Mail, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Mail{st: st, config: config, log: logger}
	if err := m.load(); err != nil {
		return nil, fmt.Errorf("alert: read the saved SMTP settings: %w", err)
	}
	if m.problem != "" {
		logger.Warn("the saved SMTP settings are not used: config.yaml's are in force", slog.String("problem", m.problem))
	}
	return m, nil
}

// load reads the saved settings; m.mu is held, or m not yet shared.
func (m *Mail) load() error {
	if m.st == nil {
		return nil
	}
	v, ok, err := m.st.Doc(docMail, savedMailKey)
	if err != nil {
		return err
	}
	m.saved, m.problem = nil, ""
	if !ok {
		return nil
	}
	var s SavedMail
	if err := json.Unmarshal(v, &s); err != nil {
		m.problem = "the saved SMTP settings are not readable: " + err.Error()
		return nil
	}
	if ps := s.Mail.Check(); len(ps) > 0 {
		m.problem = (&MailInvalidError{ps}).Error()
		return nil
	}
	m.saved = &s
	return nil
}

// fresh reads the saved settings again where other processes may change
// them; m.mu is held.
func (m *Mail) fresh() {
	if m.st == nil || !m.st.Shared() {
		return
	}
	if err := m.load(); err != nil {
		m.log.Warn("saved SMTP settings not read; mailing as last read", slog.Any("error", err))
	}
}

// current returns the settings in force; m.mu is held.
func (m *Mail) current() (MailSpec, string) {
	if m.saved != nil {
		return m.saved.Mail, MailFromDatabase
	}
	if m.config.Addr != "" {
		return m.config, MailFromConfig
	}
	return MailSpec{}, MailOff
}

// Current returns the settings in force, and false when nothing is
// mailed (no SMTP server).
func (m *Mail) Current() (MailSpec, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fresh()
	s, src := m.current()
	return s, src != MailOff
}

// State returns which settings are in force and why.
func (m *Mail) State() MailState {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fresh()
	return m.state()
}

// state is State; m.mu is held.
func (m *Mail) state() MailState {
	s, src := m.current()
	out := MailState{Source: src, Mail: s.View(), Config: m.config.View(), Problem: m.problem}
	if m.saved != nil {
		v := m.saved.Mail.View()
		out.Saved, out.SavedAt, out.SavedBy = &v, m.saved.SavedAt, m.saved.SavedBy
	}
	return out
}

// ErrMailFixed is returned when SMTP settings are saved where none can be.
var ErrMailFixed = errors.New("alert: the SMTP settings cannot be changed here")

// Save checks spec and, valid, makes it the settings in force, saved by
// by at now. keepPassword takes the password of the settings in force
// instead of spec's, so that a form need not show it: only while the
// server and the username stay the same, so that it is never handed to
// another server. Its error is a *MailInvalidError, or the store's.
func (m *Mail) Save(spec MailSpec, keepPassword bool, by string, now time.Time) (MailState, error) {
	if m.st == nil {
		return MailState{}, ErrMailFixed
	}
	if spec.Addr == "" {
		return MailState{}, &MailInvalidError{[]MailProblem{{"addr", "is required: the SMTP server, host:port (remove the saved settings to mail with config.yaml's)"}}}
	}
	if spec.TLS == "" {
		spec.TLS = "starttls"
	}
	if spec.Timeout == 0 {
		spec.Timeout = Duration(30 * time.Second)
	}
	if spec.To == nil {
		spec.To = []string{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fresh()
	if keepPassword {
		spec.Password = ""
		if cur, src := m.current(); src != MailOff && cur.Addr == spec.Addr && cur.Username == spec.Username {
			spec.Password = cur.Password
		}
	}
	if ps := spec.Check(); len(ps) > 0 {
		return MailState{}, &MailInvalidError{ps}
	}
	s := SavedMail{Mail: spec, SavedAt: now.UTC(), SavedBy: by}
	v, err := json.Marshal(s)
	if err != nil {
		return MailState{}, err
	}
	if err := m.st.PutDoc(docMail, savedMailKey, v); err != nil {
		return MailState{}, fmt.Errorf("alert: save the SMTP settings: %w", err)
	}
	m.saved, m.problem = &s, ""
	return m.state(), nil
}

// Remove removes the saved settings: config.yaml's are in force again.
// Removing none is no error.
func (m *Mail) Remove() (MailState, error) {
	if m.st == nil {
		return MailState{}, ErrMailFixed
	}
	m.mu.Lock()
	if err := m.st.DeleteDoc(docMail, savedMailKey); err != nil {
		m.mu.Unlock()
		return MailState{}, fmt.Errorf("alert: remove the saved SMTP settings: %w", err)
	}
	m.saved, m.problem = nil, ""
	st := m.state()
	m.mu.Unlock()
	return st, nil
}

// ErrNoMail is returned when mail is sent with no SMTP server set.
var ErrNoMail = errors.New("email: no SMTP server set (Settings, E-mail; or alerts.email in config.yaml)")

// email returns the mailer of the settings in force.
func (m *Mail) email() (*Email, error) {
	s, ok := m.Current()
	if !ok {
		return nil, ErrNoMail
	}
	return &Email{Addr: s.Addr, From: s.From, To: s.To, Username: s.Username, Password: s.Password, TLS: s.TLS,
		Timeout: time.Duration(s.Timeout), TLSConfig: m.TLSConfig}, nil
}

// From returns the sender of the settings in force, and false when there
// is no SMTP server.
func (m *Mail) From() (string, bool) {
	s, ok := m.Current()
	return s.From, ok
}

// Send mails msg (headers and body) to the addresses to through the
// server in force.
func (m *Mail) Send(ctx context.Context, to []string, msg []byte) error {
	e, err := m.email()
	if err != nil {
		return err
	}
	return e.Send(ctx, to, msg)
}

// Test mails a short message to the addresses to (the alerts' recipients
// when none), at now, through the server in force; it returns whom it
// mailed. Recipients refused are a *MailInvalidError (fields "to[i]").
func (m *Mail) Test(ctx context.Context, to []string, now time.Time) ([]string, error) {
	e, err := m.email()
	if err != nil {
		return nil, err
	}
	if len(to) == 0 {
		to = e.To
	}
	if len(to) == 0 {
		return nil, &MailInvalidError{[]MailProblem{{"to", "no recipient: give one, or set the alerts' recipients"}}}
	}
	if len(to) > MaxMailRecipients {
		return nil, &MailInvalidError{[]MailProblem{{"to", fmt.Sprintf("at most %d addresses", MaxMailRecipients)}}}
	}
	for i, a := range to {
		if _, err := mail.ParseAddress(a); err != nil || hasControl(a) || len(a) > maxMailField {
			return nil, &MailInvalidError{[]MailProblem{{fmt.Sprintf("to[%d]", i), fmt.Sprintf("%q is not an email address", clip(a))}}}
		}
	}
	// A test answers a person waiting: at most 30 s, whatever the
	// settings' time limit.
	e.Timeout = min(cmp.Or(e.Timeout, 30*time.Second), 30*time.Second)
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: [Vatio] Test mail\r\n", AddressHeader(e.From), AddressesHeader(to))
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <vatio-test-%d@%s>\r\n", now.Format(time.RFC1123Z), now.UnixNano(), MessageIDDomain(e.From))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "Vatio mails through %s: alerts and statements will reach you this way.\r\n", e.Addr)
	return to, e.Send(ctx, to, []byte(strings.ReplaceAll(b.String(), "\r\n", "\n")))
}

// Notifier returns the notifier that mails each alert to the settings'
// recipients; while there is no server, or no recipient, alerts are not
// given to it.
func (m *Mail) Notifier() Notifier { return mailNotifier{m} }

type mailNotifier struct{ m *Mail }

func (mailNotifier) Name() string { return "email" }

func (n mailNotifier) Active() bool {
	s, ok := n.m.Current()
	return ok && len(s.To) > 0
}

func (n mailNotifier) Notify(ctx context.Context, a store.Alert) error {
	e, err := n.m.email()
	if err != nil {
		return err
	}
	if len(e.To) == 0 {
		return errors.New("email: the alerts' recipients were removed")
	}
	return e.Notify(ctx, a)
}
