package alert_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/store"
)

// mailbox is a real SMTP server (go-smtp) on loopback that keeps what it
// receives, requiring authentication as vatio / secret.
type mailbox struct {
	mu   sync.Mutex
	mail []string
	from []string
	to   [][]string
}

type session struct {
	box  *mailbox
	auth bool
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "vatio" || pass != "secret" {
			return errors.New("bad credentials")
		}
		s.auth = true
		return nil
	}), nil
}
func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if !s.auth {
		return gosmtp.ErrAuthRequired
	}
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error { s.to = append(s.to, to); return nil }
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	s.box.mail = append(s.box.mail, string(b))
	s.box.from = append(s.box.from, s.from)
	s.box.to = append(s.box.to, s.to)
	return nil
}
func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

func (b *mailbox) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.mail...)
}

// testCert returns a TLS certificate for 127.0.0.1 and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// startSMTP runs the mailbox; implicit makes it TLS from the first byte,
// otherwise it offers STARTTLS.
func startSMTP(t *testing.T, implicit bool) (*mailbox, string, *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	box := &mailbox{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &session{box: box}, nil }))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	var ln net.Listener
	var err error
	if implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return box, ln.Addr().String(), pool
}

func TestEmailOverSTARTTLSAndTLS(t *testing.T) {
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			box, addr, pool := startSMTP(t, mode == "tls")
			st := openStore(t, t.TempDir())
			email := &alert.Email{Addr: addr, From: "Vatio <vatio@example.org>", To: []string{"ops@example.org", "Me <me@example.org>"},
				Username: "vatio", Password: "secret", TLS: mode, TLSConfig: &tls.Config{RootCAs: pool}}
			svc := alert.New(st, []alert.Notifier{email}, alert.Options{Backoff: 10 * time.Millisecond})
			defer svc.Close()
			a, err := svc.Raise("critical", "Consumo excesivo en la planta\n.", "plant-1", "api")
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the mail", func() bool { return len(box.received()) == 1 })
			waitFor(t, "the delivery record", func() bool { return delivery(t, st, a.ID).Status == store.DeliveryDelivered })
			m := box.received()[0]
			for _, want := range []string{"From: Vatio <vatio@example.org>", "To: ops@example.org, Me <me@example.org>",
				"Subject: [Vatio] critical: Consumo excesivo en la planta", "Content-Type: text/plain; charset=utf-8",
				"Consumo excesivo en la planta\r\n.\r\n", "Meter: plant-1"} {
				if !strings.Contains(m, want) {
					t.Errorf("mail lacks %q:\n%s", want, m)
				}
			}
			box.mu.Lock()
			if box.from[0] != "vatio@example.org" || len(box.to[0]) != 2 || box.to[0][1] != "me@example.org" {
				t.Errorf("envelope from %q to %v", box.from[0], box.to[0])
			}
			box.mu.Unlock()
		})
	}
}

func TestEmailFailuresAreRecorded(t *testing.T) {
	box, addr, pool := startSMTP(t, false)
	st := openStore(t, t.TempDir())
	wrong := &alert.Email{Addr: addr, From: "vatio@example.org", To: []string{"ops@example.org"}, Username: "vatio", Password: "guess",
		TLSConfig: &tls.Config{RootCAs: pool}}
	svc := alert.New(st, []alert.Notifier{wrong}, alert.Options{Attempts: 2, Backoff: 10 * time.Millisecond})
	defer svc.Close()
	a, _ := svc.Raise("warning", "x", "", "api")
	waitFor(t, "the failure", func() bool { return delivery(t, st, a.ID).Status == store.DeliveryFailed })
	if d := delivery(t, st, a.ID); d.Attempts != 2 || !strings.Contains(d.LastError, "authenticate") {
		t.Errorf("delivery = %+v", d)
	}
	// A server without STARTTLS is refused rather than sent the password
	// in clear.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &session{box: box}, nil }))
	plain.AllowInsecureAuth = true
	go plain.Serve(ln)
	defer plain.Close()
	clear := &alert.Email{Addr: ln.Addr().String(), From: "a@b.c", To: []string{"d@e.f"}, Username: "vatio", Password: "secret"}
	if err := clear.Notify(t.Context(), store.Alert{Message: "x"}); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("a server without STARTTLS: %v", err)
	}
	if len(box.received()) != 0 {
		t.Error("mail sent")
	}
}

func TestWebhookBodyTemplate(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var ctype string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		ctype = r.Header.Get("Content-Type")
		mu.Unlock()
	}))
	defer srv.Close()
	body, err := alert.ParseBody(`{"text": {{json (printf "%s: %s" .Severity .Message)}}}`)
	if err != nil {
		t.Fatal(err)
	}
	hook := alert.NewWebhook(srv.URL, 5*time.Second)
	hook.Body, hook.ContentType = body, "application/json; charset=utf-8"
	st := openStore(t, t.TempDir())
	svc := alert.New(st, []alert.Notifier{hook}, alert.Options{})
	defer svc.Close()
	if _, err := svc.Raise("warning", `Kettle "on" for 2h`, "kettle", "api"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	if got[0] != `{"text": "warning: Kettle \"on\" for 2h"}` || ctype != "application/json; charset=utf-8" {
		t.Errorf("body %s (%s)", got[0], ctype)
	}
	for _, bad := range []string{`{{.Nope}}`, `{{`, `{{json}}`} {
		if _, err := alert.ParseBody(bad); err == nil {
			t.Errorf("ParseBody(%q) succeeded", bad)
		}
	}
}

func TestMQTTNotifier(t *testing.T) {
	var topics []string
	var payloads []string
	n := &alert.MQTT{Prefix: "vatio/alerts", Publish: func(_ context.Context, topic string, payload []byte) error {
		topics, payloads = append(topics, topic), append(payloads, string(payload))
		return nil
	}}
	if err := n.Notify(t.Context(), store.Alert{ID: 3, Severity: "info", Message: "hi", Meter: "plug:1", Rule: "r", State: "firing"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), store.Alert{ID: 4, Message: "site-wide"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), store.Alert{ID: 5, Message: "no reading for 5m", Key: alert.MsgSilent, Args: map[string]string{"quiet": "5m"}}); err != nil {
		t.Fatal(err)
	}
	if topics[0] != "vatio/alerts/plug:1" || topics[1] != "vatio/alerts" || !strings.Contains(payloads[0], `"rule":"r","state":"firing"`) ||
		strings.Contains(payloads[1], `"key"`) || !strings.Contains(payloads[2], `"message":"no reading for 5m","key":"alert.silent","args":{"quiet":"5m"}`) {
		t.Errorf("published %v %v", topics, payloads)
	}
}
