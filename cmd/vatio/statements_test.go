package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/internal/testutil/smtptest"
)

// TestStatementScheduleByMail: with config.yaml's SMTP server, an admin
// makes a tenant and a monthly schedule through the API and sends last
// month's statement by hand; it arrives once, as a PDF, is recorded, and a
// restart sends nothing more (the next is due on the 1st at 06:00).
func TestStatementScheduleByMail(t *testing.T) {
	box := smtptest.Start(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	yaml := fmt.Sprintf("alerts:\n  email:\n    addr: %s\n    from: Vatio <vatio@example.org>\n    to: [ops@example.org]\n    tls: none\n", box.Addr)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v := startVatioWith(t, dir, cfg)
	origin := "http://" + v.http
	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "energy/consumption/office-2a", 1, false, `{"power_w": 800}`)
	send := func(method, path, body string) (int, string) { return sendJSON(t, method, origin+path, body) }
	for deadline := time.Now().Add(10 * time.Second); getJSON(t, origin+"/api/v1/meters/office-2a", nil) != 200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("office-2a not stored")
		}
	}
	if code, body := send("PUT", "/api/v1/tenants/acme", `{"name": "Acme S.L.", "meters": ["office-2a"]}`); code != 201 {
		t.Fatalf("PUT tenant: %d %s", code, body)
	}
	if code, body := send("PUT", "/api/v1/statements/schedules/acme-monthly", `{"subject": "tenant:acme", "every": "month", "day": 1, "lang": "es", "to": ["billing@acme.example"]}`); code != 201 {
		t.Fatalf("PUT schedule: %d %s", code, body)
	}
	last := time.Now().AddDate(0, -1, 0).Format("2006-01")
	if code, body := send("POST", "/api/v1/statements/schedules/acme-monthly/send?period="+last, ""); code != 200 || !strings.Contains(body, `"state":"sent"`) {
		t.Fatalf("send %s: %d %s", last, code, body)
	}
	if box.Count() != 1 {
		t.Fatalf("%d mails, want 1", box.Count())
	}
	m := box.Data(0)
	for _, want := range []string{"To: billing@acme.example", "Content-Type: application/pdf", "vatio-tenant-acme-" + last + ".pdf"} {
		if !strings.Contains(m, want) {
			t.Errorf("the mail lacks %q", want)
		}
	}
	// Sent again by hand, it is counted.
	if code, body := send("POST", "/api/v1/statements/schedules/acme-monthly/send?period="+last, ""); code != 200 || !strings.Contains(body, `"sent":2`) {
		t.Fatalf("send %s again: %d %s", last, code, body)
	}
	code, body := send("GET", "/api/v1/statements/schedules", "")
	if code != 200 || !strings.Contains(body, `"period":"`+last+`","state":"sent","attempts":1`) || !strings.Contains(body, `"sent":2`) {
		t.Errorf("schedules: %d %s", code, body)
	}
	v.stop(t)
	startVatioWith(t, dir, cfg)
	time.Sleep(time.Second) // the leader's first tick
	if box.Count() != 2 {
		t.Errorf("%d mails after a restart, want still 2", box.Count())
	}
}

// TestMailSetOnTheDashboard: with no config file at all, an admin sets the
// SMTP server through the API (the Settings page's form posts the same);
// a test mail, an alert and a statement arrive through it, the password
// is never given back, the settings outlive a restart, and once removed
// nothing is mailed and schedules are refused again.
func TestMailSetOnTheDashboard(t *testing.T) {
	box := smtptest.Start(t)
	dir := t.TempDir()
	v := startVatio(t, dir)
	origin := "http://" + v.http
	send := func(method, path, body string) (int, string) { return sendJSON(t, method, origin+path, body) }
	if code, body := send("GET", "/api/v1/email", ""); code != 200 || !strings.Contains(body, `"source":"none"`) {
		t.Fatalf("GET /api/v1/email with nothing set: %d %s", code, body)
	}
	if code, body := send("PUT", "/api/v1/statements/schedules/site-monthly", `{"subject": "site:home", "every": "month", "day": 1, "to": ["me@example.org"]}`); code != 409 {
		t.Fatalf("a schedule without an SMTP server: %d %s, want 409", code, body)
	}
	if code, body := send("PUT", "/api/v1/email", `{"addr": "nowhere", "from": "not an address", "tls": "none", "timeout": "30s"}`); code != 400 ||
		!strings.Contains(body, `"field":"alerts.email.addr"`) || !strings.Contains(body, `"field":"alerts.email.from"`) {
		t.Fatalf("bad settings: %d %s", code, body)
	}
	settings := fmt.Sprintf(`{"addr": %q, "from": "Vatio <vatio@example.org>", "to": ["ops@example.org"], "tls": "none", "timeout": "10s"}`, box.Addr)
	if code, body := send("PUT", "/api/v1/email", settings); code != 200 || !strings.Contains(body, `"source":"database"`) {
		t.Fatalf("PUT /api/v1/email: %d %s", code, body)
	}
	if code, body := send("POST", "/api/v1/email/test", `{"to": ["me@example.org"]}`); code != 200 || !strings.Contains(body, `"sent_to":["me@example.org"]`) {
		t.Fatalf("test mail: %d %s", code, body)
	}
	if box.Count() != 1 || !strings.Contains(box.Data(0), "Subject: [Vatio] Test mail") {
		t.Fatalf("the test mail did not arrive: %d mails", box.Count())
	}
	if code, body := send("POST", "/api/alert", `{"message": "Boiler left on", "severity": "warning"}`); code != 202 {
		t.Fatalf("POST /api/alert: %d %s", code, body)
	}
	for deadline := time.Now().Add(10 * time.Second); box.Count() < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the alert was not mailed")
		}
	}
	alertMail := box.Data(1)
	if !strings.Contains(alertMail, "Boiler left on") || !strings.Contains(alertMail, "To: ops@example.org") {
		t.Errorf("alert mail:\n%s", alertMail)
	}

	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "energy/consumption/office-2a", 1, false, `{"power_w": 800}`)
	for deadline := time.Now().Add(10 * time.Second); getJSON(t, origin+"/api/v1/meters/office-2a", nil) != 200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("office-2a not stored")
		}
	}
	if code, body := send("PUT", "/api/v1/statements/schedules/office-monthly", `{"subject": "meter:office-2a", "every": "month", "day": 1, "to": ["billing@acme.example"]}`); code != 201 {
		t.Fatalf("PUT schedule: %d %s", code, body)
	}
	last := time.Now().AddDate(0, -1, 0).Format("2006-01")
	if code, body := send("POST", "/api/v1/statements/schedules/office-monthly/send?period="+last, ""); code != 200 || !strings.Contains(body, `"state":"sent"`) {
		t.Fatalf("send %s: %d %s", last, code, body)
	}
	if box.Count() != 3 || !strings.Contains(box.Data(2), "Content-Type: application/pdf") {
		t.Fatalf("%d mails, want the statement as the third", box.Count())
	}

	// A password saved is never given back, and is kept by a PUT that
	// leaves it out only while the server and the username stay.
	withLogin := fmt.Sprintf(`{"addr": %q, "from": "vatio@example.org", "username": "vatio", "password": "s3cret-smtp", "tls": "starttls"}`, box.Addr)
	if code, body := send("PUT", "/api/v1/email", withLogin); code != 200 || strings.Contains(body, "s3cret-smtp") || !strings.Contains(body, `"password_set":true`) {
		t.Fatalf("PUT with a password: %d %s", code, body)
	}
	v.stop(t)
	v = startVatio(t, dir)
	origin = "http://" + v.http
	code, body := send("GET", "/api/v1/email", "")
	if code != 200 || !strings.Contains(body, `"source":"database"`) || !strings.Contains(body, `"password_set":true`) || strings.Contains(body, "s3cret-smtp") {
		t.Fatalf("after a restart: %d %s", code, body)
	}
	if code, body := send("PUT", "/api/v1/email", fmt.Sprintf(`{"addr": %q, "from": "vatio@example.org", "username": "vatio", "tls": "starttls"}`, box.Addr)); code != 200 || !strings.Contains(body, `"password_set":true`) {
		t.Errorf("same server, password left out: %d %s", code, body)
	}
	if code, body := send("PUT", "/api/v1/email", `{"addr": "smtp.elsewhere.example:587", "from": "vatio@example.org", "username": "vatio", "tls": "starttls"}`); code != 200 || !strings.Contains(body, `"password_set":false`) {
		t.Errorf("another server, password left out: %d %s (the password must not follow)", code, body)
	}
	if code, body := send("GET", "/api/v1/audit", ""); code != 200 || !strings.Contains(body, "SMTP settings saved") || strings.Contains(body, "s3cret-smtp") {
		t.Errorf("audit: %d %s", code, body)
	}
	if code, body := send("DELETE", "/api/v1/email", ""); code != 200 || !strings.Contains(body, `"source":"none"`) {
		t.Fatalf("DELETE /api/v1/email: %d %s", code, body)
	}
	if code, body := send("POST", "/api/v1/email/test", ""); code != 409 {
		t.Errorf("a test with no server: %d %s, want 409", code, body)
	}
	if code, body := send("PUT", "/api/v1/statements/schedules/office-weekly", `{"subject": "meter:office-2a", "every": "week", "day": 1, "to": ["billing@acme.example"]}`); code != 409 {
		t.Errorf("a schedule after the server was removed: %d %s, want 409", code, body)
	}
}

// sendJSON makes an API request with the test's admin token, body as JSON
// (none when empty), and returns its status and body.
func sendJSON(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}
