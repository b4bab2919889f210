// Package smtptest runs a real SMTP server (go-smtp) on loopback for
// tests: in clear, as a relay on the same machine would be, keeping every
// mail it takes.
package smtptest

import (
	"io"
	"net"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// Mail is one mail taken: its envelope and its data (headers and body).
type Mail struct {
	From string
	To   []string
	Data string
}

// Box is the server and what it took.
type Box struct {
	// Addr is where it listens, host:port.
	Addr   string
	mu     sync.Mutex
	mails  []Mail
	refuse bool
}

// Start runs a Box until the test ends.
func Start(t testing.TB) *Box {
	t.Helper()
	b := &Box{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &session{box: b}, nil }))
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.Addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

// Refuse makes the server refuse every mail (451, try again later) while
// on is set.
func (b *Box) Refuse(on bool) {
	b.mu.Lock()
	b.refuse = on
	b.mu.Unlock()
}

// Mails returns the mails taken, in order.
func (b *Box) Mails() []Mail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Mail(nil), b.mails...)
}

// Count returns how many mails were taken.
func (b *Box) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mails)
}

// Data returns mail i's data.
func (b *Box) Data(i int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mails[i].Data
}

type session struct {
	box  *Box
	from string
	to   []string
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	if s.box.refuse {
		return &gosmtp.SMTPError{Code: 451, Message: "try again later"}
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	s.box.mails = append(s.box.mails, Mail{From: s.from, To: s.to, Data: string(data)})
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
