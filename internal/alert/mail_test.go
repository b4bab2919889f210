package alert_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/alert"
)

// TestMailSavedOverConfig: the SMTP server saved (on the Settings page, or
// through the API) is checked as config.yaml's, mails alerts over STARTTLS
// with its login at once, never shows its password, keeps it only for the
// same server and username, outlives a restart, and once removed gives way
// to config.yaml's.
func TestMailSavedOverConfig(t *testing.T) {
	box, addr, pool := startSMTP(t, false)
	dir := t.TempDir()
	st := openStore(t, dir)
	m, err := alert.NewMail(st, alert.MailSpec{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.TLSConfig = &tls.Config{RootCAs: pool}
	if s := m.State(); s.Source != alert.MailOff {
		t.Fatalf("nothing set: source %q", s.Source)
	}
	svc := alert.New(st, []alert.Notifier{m.Notifier()}, alert.Options{Backoff: 10 * time.Millisecond})
	defer svc.Close()
	a, err := svc.Raise("warning", "before any server", "", "api")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Deliveries) != 0 {
		t.Errorf("an alert raised with no SMTP server is given to it: %+v", a.Deliveries)
	}

	// Refused, each setting named; nothing saved.
	_, err = m.Save(alert.MailSpec{Addr: "smtp.example.org", From: "vatio@example.org\r\nBcc: all@example.org",
		To: []string{"ok@example.org", "nope"}, Username: "vatio", TLS: "none", Timeout: alert.Duration(time.Hour)}, false, "admin", time.Now())
	var me *alert.MailInvalidError
	if !errors.As(err, &me) {
		t.Fatalf("bad settings: %v", err)
	}
	var fields []string
	for _, p := range me.Problems {
		fields = append(fields, p.Field)
	}
	if got := strings.Join(fields, " "); got != "addr from to[1] tls timeout" {
		t.Errorf("fields refused: %s", got)
	}
	if s := m.State(); s.Source != alert.MailOff {
		t.Errorf("a refused save changed the source to %q", s.Source)
	}

	good := alert.MailSpec{Addr: addr, From: "Vatio <vatio@example.org>", To: []string{"ops@example.org"},
		Username: "vatio", Password: "secret", TLS: "starttls"}
	s, err := m.Save(good, false, "admin", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(s)
	if s.Source != alert.MailFromDatabase || !s.Mail.PasswordSet || strings.Contains(string(out), "secret") ||
		time.Duration(s.Mail.Timeout) != 30*time.Second || s.SavedBy != "admin" {
		t.Errorf("state: %s", out)
	}
	a, err = svc.Raise("critical", "Consumo excesivo", "plant-1", "api")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the alert by mail", func() bool { return len(box.received()) == 1 })
	if m := box.received()[0]; !strings.Contains(m, "Consumo excesivo") || !strings.Contains(m, "To: ops@example.org") {
		t.Errorf("alert mail:\n%s", m)
	}
	to, err := m.Test(context.Background(), nil, time.Now())
	if err != nil || len(to) != 1 || to[0] != "ops@example.org" {
		t.Fatalf("test mail to the alerts' recipients: %v %v", to, err)
	}
	waitFor(t, "the test mail", func() bool { return len(box.received()) == 2 })
	if _, err := m.Test(context.Background(), []string{"x@example.org\r\nBcc: y@example.org"}, time.Now()); !errors.As(err, &me) {
		t.Errorf("a test to a header: %v", err)
	}

	// The password is kept while the server and username stay; changing
	// either drops it rather than hand it over.
	if s, err := m.Save(alert.MailSpec{Addr: addr, From: "vatio@example.org", Username: "vatio", TLS: "starttls"}, true, "admin", time.Now()); err != nil || !s.Mail.PasswordSet {
		t.Fatalf("same server, password kept: %+v %v", s.Mail, err)
	}
	if _, err := m.Test(context.Background(), []string{"me@example.org"}, time.Now()); err != nil {
		t.Errorf("the kept password does not log in: %v", err)
	}
	if s, err := m.Save(alert.MailSpec{Addr: "127.0.0.1:1", From: "vatio@example.org", Username: "vatio", TLS: "starttls"}, true, "admin", time.Now()); err != nil || s.Mail.PasswordSet {
		t.Errorf("another server kept the password: %+v %v", s.Mail, err)
	}
	if _, err := m.Save(good, false, "admin", time.Now()); err != nil {
		t.Fatal(err)
	}

	// A restart reads them back; removed, config.yaml's are in force.
	config := alert.MailSpec{Addr: "mail.lan:25", From: "vatio@lan", TLS: "none", Timeout: alert.Duration(time.Minute)}
	again, err := alert.NewMail(st, config, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := again.State(); s.Source != alert.MailFromDatabase || s.Mail.Addr != addr || s.Config.Addr != "mail.lan:25" {
		t.Errorf("after a restart: %+v", s)
	}
	if s, err := again.Remove(); err != nil || s.Source != alert.MailFromConfig || s.Mail.Addr != "mail.lan:25" || s.Saved != nil {
		t.Errorf("removed: %+v %v", s, err)
	}
	if from, ok := again.From(); !ok || from != "vatio@lan" {
		t.Errorf("From after removal: %q %v", from, ok)
	}
}

// TestMailSavedUnreadable: settings that can no longer be read (a damaged
// document) are reported, and config.yaml's mail meanwhile.
func TestMailSavedUnreadable(t *testing.T) {
	st := openStore(t, t.TempDir())
	if err := st.PutDoc("mail", "saved", []byte(`{"mail": {"addr": "x"}}`)); err != nil {
		t.Fatal(err)
	}
	m, err := alert.NewMail(st, alert.MailSpec{Addr: "mail.lan:25", From: "vatio@lan", TLS: "none", Timeout: alert.Duration(time.Minute)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.State(); s.Source != alert.MailFromConfig || !strings.Contains(s.Problem, "addr") {
		t.Errorf("state: %+v", s)
	}
}

// TestMailHeadersAndTargets: a long list of recipients is folded onto
// lines a strict relay takes, names beyond ASCII encoded; an SMTP server
// at a link-local address (a cloud's metadata service) is never dialed.
func TestMailHeadersAndTargets(t *testing.T) {
	var to []string
	for i := range 50 {
		to = append(to, fmt.Sprintf("Destinatario Número %d <recipient-%02d@example.org>", i, i))
	}
	h := "To: " + alert.AddressesHeader(to)
	for _, line := range strings.Split(h, "\r\n") {
		if len(line) > 78 {
			t.Errorf("a header line of %d characters: %q", len(line), line)
		}
	}
	if !strings.Contains(h, "=?utf-8?q?Destinatario_N=C3=BAmero_0?= <recipient-00@example.org>") || strings.Count(h, "@example.org") != 50 {
		t.Errorf("the header: %s", h)
	}
	if got := alert.AddressesHeader([]string{"a@example.org", "b@example.org"}); got != "a@example.org, b@example.org" {
		t.Errorf("a short list: %q", got)
	}
	if d := alert.MessageIDDomain("Vatio <vatio@plant.example.org>"); d != "plant.example.org" {
		t.Errorf("Message-ID domain: %q", d)
	}
	if d := alert.MessageIDDomain("nobody"); d != "vatio.invalid" {
		t.Errorf("Message-ID domain without a sender: %q", d)
	}
	st := openStore(t, t.TempDir())
	m, err := alert.NewMail(st, alert.MailSpec{Addr: "169.254.169.254:25", From: "vatio@example.org", TLS: "none", Timeout: alert.Duration(time.Minute)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Test(context.Background(), []string{"me@example.org"}, time.Now()); err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("a test mail to the metadata service: %v", err)
	}
}
