package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/vatio-energy/vatio/dashboard"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/testutil/smtptest"
)

// TestSettingsMailForm: the Settings page's E-mail section is the
// admins': its form refuses bad settings beside their fields in the
// reader's language, saves good ones (the password never shown, a blank
// one kept), sends a test mail through them, says why the server did not
// take one, and removes them, config.yaml's server in force again.
func TestSettingsMailForm(t *testing.T) {
	s := startSite(t)
	box := smtptest.Start(t)
	addr := box.Addr
	admin, operator := s.login(t, auth.Admin), s.login(t, auth.Operator)

	_, page := operator.get("/settings")
	if !strings.Contains(page, `id="mail-admins"`) || strings.Contains(page, `id="mail-form"`) || strings.Contains(page, "127.0.0.1:1") {
		t.Error("an operator sees the SMTP server or its form")
	}
	if res, _ := operator.post("/settings/email", url.Values{"addr": {addr}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("SMTP settings posted by an operator: %d, want 403", res.StatusCode)
	}
	_, page = admin.get("/settings")
	for _, want := range []string{`id="mail-source" data-source="config"`, `value="127.0.0.1:1"`, `id="mail-test-form"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the admin's settings page lacks %s", want)
		}
	}

	adminES := *admin
	adminES.cookie += "; vatio_lang=es"
	res, page := adminES.post("/settings/email", url.Values{"addr": {"smtp.example.org"}, "from": {"vatio"}, "to": {"ops@example.org, nadie"},
		"username": {"vatio"}, "password": {"pw"}, "tls": {"none"}, "timeout": {"1 h"}})
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad settings: %d", res.StatusCode)
	}
	for _, want := range []string{"el servidor como host:puerto", "una dirección de correo, por ejemplo", "nadie: direcciones de correo",
		"STARTTLS o TLS para iniciar sesión", "un tiempo de 1 s a 5 min", `value="smtp.example.org"`, `id="mail-addr" name="addr" value="smtp.example.org" required maxlength="255" placeholder="smtp.example.org:587" autocomplete="off" aria-invalid="true"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the refused form lacks %s", want)
		}
	}
	if strings.Contains(page, `value="pw"`) {
		t.Error("the refused form gives the password back")
	}

	form := url.Values{"addr": {addr}, "from": {"Vatio <vatio@example.org>"}, "to": {"ops@example.org\nMaría <maria@example.org>"},
		"tls": {"none"}, "timeout": {"10s"}}
	res, _ = admin.post("/settings/email", form)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/settings?done=mail_saved#email" {
		t.Fatalf("saving: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if st, ok := s.mail.Current(); !ok || st.Addr != addr || len(st.To) != 2 {
		t.Errorf("in force: %+v", st)
	}
	_, page = admin.get("/settings?done=mail_saved")
	for _, want := range []string{`id="mail-source" data-source="database"`, "SMTP settings saved", `id="mail-remove"`, "María &lt;maria@example.org&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page after saving lacks %s", want)
		}
	}
	res, _ = admin.post("/settings/email/test", url.Values{"test_to": {"me@example.org"}})
	if res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "done=mail_tested") {
		t.Fatalf("test mail: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if box.Count() != 1 || !strings.Contains(box.Data(0), "To: me@example.org") {
		t.Fatalf("test mail received: %d", box.Count())
	}
	_, page = admin.get(res.Header.Get("Location"))
	if !strings.Contains(page, `id="mail-tested"`) || !strings.Contains(page, "me@example.org") || strings.Contains(page, `id="settings-done"`) {
		t.Error("the page does not say where the test mail went, or says it twice")
	}
	if !strings.Contains(page, "TZ=Europe/Madrid") {
		t.Error("the page does not say how the tariff's time zone is set")
	}
	// The server refusing: its words, on the page.
	if res, _ := admin.post("/settings/email", url.Values{"addr": {"127.0.0.1:1"}, "from": {"vatio@example.org"}, "tls": {"none"}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("saving an absent server: %d", res.StatusCode)
	}
	res, page = adminES.post("/settings/email/test", url.Values{"test_to": {"me@example.org"}})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "El servidor SMTP no aceptó el correo:") || !strings.Contains(page, "connection refused") {
		t.Errorf("a test through an absent server: %d", res.StatusCode)
	}
	res, page = adminES.post("/settings/email/test", url.Values{})
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Escribe una dirección") {
		t.Errorf("a test to nobody: %d", res.StatusCode)
	}
	// A blank password keeps the saved one for the same server and user.
	s.mail.Save(mailWithLogin(addr, "pw-1"), false, "admin", s.mail.State().SavedAt)
	res, _ = admin.post("/settings/email", url.Values{"addr": {addr}, "from": {"vatio@example.org"}, "username": {"vatio"}, "tls": {"starttls"}})
	if st, _ := s.mail.Current(); res.StatusCode != http.StatusSeeOther || st.Password != "pw-1" {
		t.Errorf("a blank password: %d, kept %q", res.StatusCode, st.Password)
	}
	_, page = admin.get("/settings")
	if strings.Contains(page, "pw-1") || !strings.Contains(page, `placeholder="kept (leave blank)"`) {
		t.Error("the page shows the password, or does not say one is kept")
	}
	if res, _ := admin.post("/settings/email/remove", url.Values{}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("removing: %d", res.StatusCode)
	}
	if st, ok := s.mail.Current(); !ok || st.Addr != "127.0.0.1:1" {
		t.Errorf("after removal: %+v %v, want config.yaml's", st, ok)
	}
	if entries := auditText(t, s); !strings.Contains(entries, "SMTP settings saved") || strings.Contains(entries, "pw-1") {
		t.Errorf("audit log: %s", entries)
	}
}

func mailWithLogin(addr, password string) alert.MailSpec {
	return alert.MailSpec{Addr: addr, From: "vatio@example.org", Username: "vatio", Password: password, TLS: "starttls"}
}

// auditText is the audit log's entries, a line each.
func auditText(t *testing.T, s *site) string {
	t.Helper()
	es, err := s.audit.List(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s %s %s %d %s\n", e.Who, e.Action, e.Target, e.Status, e.Detail)
	}
	return b.String()
}

// TestRecipientsTyped: the addresses a form takes, one a line or
// separated by commas or semicolons, a quoted name kept whole.
func TestRecipientsTyped(t *testing.T) {
	for in, want := range map[string][]string{
		"a@example.org\r\nb@example.org\n\n":                       {"a@example.org", "b@example.org"},
		"a@example.org, b@example.org; c@example.org":              {"a@example.org", "b@example.org", "c@example.org"},
		`"Smith; J" <j@example.org>, "Doe, Ana" <ana@example.org>`: {`"Smith; J" <j@example.org>`, `"Doe, Ana" <ana@example.org>`},
		"María <maria@example.org>":                                {"María <maria@example.org>"},
		" , ;":                                                     nil,
	} {
		if got := dashboard.Recipients(in); !slices.Equal(got, want) {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
