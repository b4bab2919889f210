package alert

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"net/smtp"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// Log is the notifier that writes alerts to the log. It always succeeds.
type Log struct {
	Logger *slog.Logger
}

// Name implements Notifier.
func (Log) Name() string { return "log" }

// Notify implements Notifier.
func (l Log) Notify(_ context.Context, a store.Alert) error {
	level := slog.LevelInfo
	switch a.Severity {
	case SeverityWarning:
		level = slog.LevelWarn
	case SeverityCritical:
		level = slog.LevelError
	}
	l.Logger.Log(context.Background(), level, "alert",
		slog.Uint64("id", a.ID), slog.String("severity", a.Severity), slog.String("meter", a.Meter),
		slog.String("source", a.Source), slog.String("message", a.Message))
	return nil
}

// Webhook is the notifier that POSTs each alert to a URL: by default as
// JSON, {"id":1,"time":"...","severity":"warning","message":"...",
// "meter":"m1","source":"api","rule":"...","state":"firing"}; with a body
// template, as the template makes it, so that one webhook speaks to ntfy,
// Slack, Discord, Telegram or an SMS gateway. Any 2xx answer is a delivery;
// anything else is retried.
type Webhook struct {
	URL    string
	Client *http.Client
	// Body, if not nil, renders the request body from the alert; the
	// function json quotes a value as JSON.
	Body        *template.Template
	ContentType string
}

// NewWebhook returns a webhook notifier with a per-attempt timeout.
func NewWebhook(url string, timeout time.Duration) *Webhook {
	return &Webhook{URL: url, Client: &http.Client{Timeout: timeout}, ContentType: "application/json"}
}

// ParseBody parses a webhook body template, such as
// {"text": {{json .Message}}} for Slack.
func ParseBody(text string) (*template.Template, error) {
	t, err := template.New("body").Option("missingkey=error").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(text)
	if err != nil {
		return nil, err
	}
	// Render a sample now, so that a template naming a field alerts lack
	// fails at start-up, not at the first alert.
	if err := t.Execute(io.Discard, templateData(store.Alert{Time: time.Unix(0, 0).UTC()})); err != nil {
		return nil, err
	}
	return t, nil
}

// Name implements Notifier.
func (*Webhook) Name() string { return "webhook" }

// webhookBody is the default body, and what a body template sees.
type webhookBody struct {
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"`
	Message  string    `json:"message"`
	// Key and Args are the message as a key and values (see Message),
	// for a receiver that shows it in another language.
	Key    string            `json:"key,omitempty"`
	Args   map[string]string `json:"args,omitempty"`
	Meter  string            `json:"meter,omitempty"`
	Source string            `json:"source"`
	Rule   string            `json:"rule,omitempty"`
	State  string            `json:"state,omitempty"`
}

func templateData(a store.Alert) webhookBody {
	return webhookBody{ID: a.ID, Time: a.Time, Severity: a.Severity, Message: a.Message, Key: a.Key, Args: a.Args,
		Meter: a.Meter, Source: a.Source, Rule: a.Rule, State: a.State}
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, a store.Alert) error {
	var body []byte
	if w.Body == nil {
		var err error
		if body, err = json.Marshal(templateData(a)); err != nil {
			return err
		}
	} else {
		var buf bytes.Buffer
		if err := w.Body.Execute(&buf, templateData(a)); err != nil {
			return fmt.Errorf("webhook: body template: %w", err)
		}
		body = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", cmp.Or(w.ContentType, "application/json"))
	req.Header.Set("User-Agent", "vatio")
	resp, err := w.Client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: %s answered %s", req.URL.Host, resp.Status)
	}
	return nil
}

// MQTT is the notifier that publishes each alert, as the webhook's JSON,
// on <Prefix>/<meter> (<Prefix> alone for an alert of no meter), through
// the embedded broker, for home automation to act on.
type MQTT struct {
	Prefix  string
	Publish func(ctx context.Context, topic string, payload []byte) error
}

// Name implements Notifier.
func (*MQTT) Name() string { return "mqtt" }

// Notify implements Notifier.
func (m *MQTT) Notify(ctx context.Context, a store.Alert) error {
	payload, err := json.Marshal(templateData(a))
	if err != nil {
		return err
	}
	topic := m.Prefix
	if a.Meter != "" {
		topic += "/" + a.Meter
	}
	if err := m.Publish(ctx, topic, payload); err != nil {
		return fmt.Errorf("mqtt: publish on %s: %w", topic, err)
	}
	return nil
}

// Email is the notifier that mails each alert over SMTP: with STARTTLS
// (TLS "starttls", the default, port 587), over TLS from the first byte
// ("tls", port 465), or in clear ("none", for a relay on the same machine
// only). Username, if set, authenticates with PLAIN, which is refused over
// a connection that is not encrypted.
type Email struct {
	Addr     string // host:port
	From     string
	To       []string
	Username string
	Password string
	TLS      string
	Timeout  time.Duration
	// TLSConfig, if not nil, is the base of the TLS settings (tests give
	// their own certificate authority); ServerName is set from Addr.
	TLSConfig *tls.Config
}

// Name implements Notifier.
func (*Email) Name() string { return "email" }

// Notify implements Notifier.
func (e *Email) Notify(ctx context.Context, a store.Alert) error {
	return e.Send(ctx, e.To, e.message(a))
}

// Send mails msg, a whole message (headers and body, lines ending in
// "\n"), to the addresses to, from e.From, over e's server.
func (e *Email) Send(ctx context.Context, to []string, msg []byte) error {
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(e.Timeout, 30*time.Second))
	defer cancel()
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.TLSConfig != nil {
		tc = e.TLSConfig.Clone()
	}
	tc.ServerName = host
	var conn net.Conn
	d := &net.Dialer{Control: smtpTarget}
	if e.TLS == "tls" {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", e.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", e.Addr)
	}
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Cancelled (a shutdown), a server that says nothing is left at once.
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	defer c.Close()
	if e.TLS == "" || e.TLS == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("email: %s does not offer STARTTLS", e.Addr)
		}
		if err := c.StartTLS(tc); err != nil {
			return fmt.Errorf("email: STARTTLS: %w", err)
		}
	}
	if e.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, host)); err != nil {
			return fmt.Errorf("email: authenticate: %w", err)
		}
	}
	// The envelope takes bare addresses; the headers keep the names.
	from, err := mail.ParseAddress(e.From)
	if err != nil {
		return fmt.Errorf("email: from: %w", err)
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("email: MAIL FROM: %w", err)
	}
	for _, to := range to {
		addr, err := mail.ParseAddress(to)
		if err != nil {
			return fmt.Errorf("email: to %q: %w", to, err)
		}
		if err := c.Rcpt(addr.Address); err != nil {
			return fmt.Errorf("email: RCPT TO %s: %w", addr.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("email: DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	return c.Quit()
}

// message returns the mail of an alert, headers and a plain text body.
func (e *Email) message(a store.Alert) []byte {
	subject := fmt.Sprintf("[Vatio] %s: %s", a.Severity, a.Message)
	if a.State == store.AlertResolved {
		subject = "[Vatio] " + a.Message
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", AddressHeader(e.From))
	fmt.Fprintf(&b, "To: %s\r\n", AddressesHeader(e.To))
	// Encoded words are folded onto lines of their own: a header line stays
	// under the 998 octets SMTP allows.
	fmt.Fprintf(&b, "Subject: %s\r\n", strings.ReplaceAll(mime.QEncoding.Encode("utf-8", oneLine(subject, 200)), "?= =?", "?=\r\n =?"))
	fmt.Fprintf(&b, "Date: %s\r\n", a.Time.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <vatio-alert-%d-%d@%s>\r\n", a.ID, a.Time.UnixNano(), MessageIDDomain(e.From))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "%s\r\n\r\nSeverity: %s\r\nTime: %s\r\n", a.Message, a.Severity, a.Time.Format(time.RFC3339))
	if a.Meter != "" {
		fmt.Fprintf(&b, "Meter: %s\r\n", a.Meter)
	}
	if a.Rule != "" {
		fmt.Fprintf(&b, "Rule: %s (%s)\r\n", a.Rule, a.State)
	}
	fmt.Fprintf(&b, "Alert: %d, raised by %s\r\n", a.ID, a.Source)
	// A body line starting with a dot is escaped by the DATA writer.
	return []byte(strings.ReplaceAll(b.String(), "\r\n", "\n"))
}

// MessageIDDomain is the right-hand side of the Message-IDs Vatio makes:
// the sender's domain (a relay or a spam filter frowns on a bare name).
func MessageIDDomain(from string) string {
	if a, err := mail.ParseAddress(from); err == nil {
		if _, domain, ok := strings.Cut(a.Address, "@"); ok && domain != "" {
			return domain
		}
	}
	return "vatio.invalid"
}

// smtpTarget refuses an SMTP server at a link-local address (the cloud
// metadata service at 169.254.169.254 among them), an unspecified or a
// multicast one, checked on the address dialed, after DNS. A relay on
// this machine's loopback is allowed.
func smtpTarget(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("email: %s: %w", address, err)
	}
	switch ip := ap.Addr().Unmap(); {
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return fmt.Errorf("email: %s is a link-local address (a cloud metadata service, a router's own), not an SMTP server", ip)
	case ip.IsUnspecified(), ip.IsMulticast():
		return fmt.Errorf("email: %s is not a host's address", ip)
	}
	return nil
}

// AddressHeader returns address a as a header gives it: as typed when it
// is ASCII, else with its name encoded (RFC 2047). An address that does
// not parse is given as it is (it was checked before).
func AddressHeader(a string) string {
	ascii := !strings.ContainsFunc(a, func(r rune) bool { return r > 0x7e })
	if p, err := mail.ParseAddress(a); err == nil && !ascii {
		return p.String()
	}
	return a
}

// AddressesHeader returns the addresses to as a header gives them, folded
// onto lines of their own past 76 characters (RFC 5322 allows 998; strict
// relays refuse longer ones).
func AddressesHeader(to []string) string {
	var b strings.Builder
	line := 4 // "To: "
	for i, a := range to {
		a = AddressHeader(a)
		if i > 0 {
			b.WriteByte(',')
			line++
			if line+1+len(a) > 76 {
				b.WriteString("\r\n")
				line = 0
			}
			b.WriteByte(' ')
			line++
		}
		b.WriteString(a)
		line += len(a)
	}
	return b.String()
}

// oneLine keeps the first line of s, at most n characters.
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r", ""))
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}
