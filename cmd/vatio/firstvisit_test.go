package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// page GETs path with headers (name, value pairs) as a visitor with no
// token, following no redirect, and returns its status and body.
func page(t *testing.T, origin, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, origin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// postPage posts a form as postForm does, and returns the page answered.
func postPage(t *testing.T, origin, path string, form url.Values, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, origin+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var hrefs = regexp.MustCompile(`href="([^"]*)"`)

// checkBeforeLogIn checks a page shown before a log-in: no live status
// (its stream needs a log-in), and every link on it opens for a visitor
// who has none, rather than sending them back to the login.
func checkBeforeLogIn(t *testing.T, origin, path, body string) {
	t.Helper()
	for _, unwanted := range []string{`id="status"`, `class="dot"`, `class="nav"`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("%s before a log-in has %s", path, unwanted)
		}
	}
	links := 0
	for _, m := range hrefs.FindAllStringSubmatch(body, -1) {
		link := strings.ReplaceAll(m[1], "&amp;", "&")
		if link == "#content" {
			continue
		}
		links++
		resp, _ := page(t, origin, link)
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 400 || strings.HasPrefix(loc, "/login?") || (loc == "/login" && path != "/login") ||
			(loc == "/setup" && path != "/setup") {
			t.Errorf("%s links to %s, which a visitor who has not logged in gets as %d %s", path, link, resp.StatusCode, loc)
		}
	}
	if links < 3 { // the icon, the style sheet, the languages
		t.Errorf("%s has %d links; want its assets and languages", path, links)
	}
}

// TestFirstVisit walks the pages a new user meets before logging in: the
// setup page shows the rules of a user name and a password in the
// reader's language, refuses a bad one saying which rule, and neither it
// nor the login page shows the live status or links that need a log-in.
// Refused log-ins and tokens are in Vatio's log with the address and the
// user name, never the password or the token's secret, and a flood of
// them takes a few lines.
func TestFirstVisit(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("http:\n  rate_limit_per_minute: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v := startVatioEnv(t, dir, cfg, noToken, "")
	origin := "http://" + v.http

	resp, body := page(t, origin, "/setup")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /setup: %d", resp.StatusCode)
	}
	checkBeforeLogIn(t, origin, "/setup", body)
	for _, want := range []string{"At least 10 characters", `minlength="10"`, "1 to 64 letters a-z or A-Z"} {
		if !strings.Contains(body, want) {
			t.Errorf("the setup page does not say %q", want)
		}
	}
	if _, es := page(t, origin, "/setup", "Accept-Language", "es"); !strings.Contains(es, "Al menos 10 caracteres") || !strings.Contains(es, "De 1 a 64 letras") {
		t.Errorf("the Spanish setup page does not say the rules")
	}

	for _, tt := range []struct {
		name, user, password, lang, want string
	}{
		{"short password", "admin", "short pw", "en", "Not created: the password has fewer than 10 characters."},
		{"short password, Spanish", "admin", "corta", "es", "No se creó: la contraseña tiene menos de 10 caracteres."},
		{"long password", "admin", strings.Repeat("p", 257), "en", "Not created: the password is longer than 256 bytes."},
		{"bad user name", "ana maría", "a long enough password", "en", "Not created: a user name is 1 to 64 letters"},
	} {
		resp, body := postPage(t, origin, "/setup", url.Values{"user": {tt.user}, "password": {tt.password}, "confirm": {tt.password}}, "Accept-Language", tt.lang)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tt.want) {
			t.Errorf("%s: setup answered %d, want 400 saying %q", tt.name, resp.StatusCode, tt.want)
		}
		checkBeforeLogIn(t, origin, "/setup", body)
	}

	const pw = "a long enough password"
	resp, _ = postPage(t, origin, "/setup", url.Values{"user": {"admin"}, "password": {pw}, "confirm": {pw}})
	session := sessionOf(resp)
	if resp.StatusCode != http.StatusSeeOther || session == "" {
		t.Fatalf("setup: %d", resp.StatusCode)
	}

	_, body = page(t, origin, "/login")
	checkBeforeLogIn(t, origin, "/login", body)
	// The language switch works before a log-in, and comes back.
	resp, _ = page(t, origin, "/lang/es?back=/login")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("GET /lang/es?back=/login before a log-in: %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, es := page(t, origin, "/login", "Cookie", "vatio_lang=es"); !strings.Contains(es, "Iniciar sesión") {
		t.Errorf("the login page in Spanish is not")
	}
	// Logged in, the pages have the status light and the navigation.
	if _, home := page(t, origin, "/", "Cookie", "vatio_session="+session); !strings.Contains(home, `id="status"`) || !strings.Contains(home, `href="/meters"`) {
		t.Errorf("the overview, logged in, lacks the status light or the navigation")
	}

	// A refused token, then a flood of wrong passwords.
	const secret = "not-the-secret-of-any-token-0123"
	if resp, _ := page(t, origin, "/api/v1/meters", "Authorization", "Bearer vat_0123456789ab_"+secret); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d", resp.StatusCode)
	}
	const wrong = "hunter2-wrong-password"
	for range 40 {
		if resp, _ := postPage(t, origin, "/login", url.Values{"user": {"mallory"}, "password": {wrong}}); resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a wrong password: %d", resp.StatusCode)
		}
	}
	// The log is read as it comes through a pipe: wait for the lines.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(v.logs.String(), `msg="log-in refused"`) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs := v.logs.String()
	var refusals []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "refused") && strings.Contains(line, "component=audit") {
			refusals = append(refusals, line)
		}
	}
	if len(refusals) != 3 {
		t.Errorf("%d refusals logged of 41 from one address in a minute, want 3:\n%s", len(refusals), strings.Join(refusals, "\n"))
	}
	if len(refusals) > 0 {
		for _, want := range []string{`msg="API token refused"`, "addr=127.0.0.1", `detail="token 0123456789ab`, "target=/api/v1/meters"} {
			if !strings.Contains(refusals[0], want) {
				t.Errorf("the refused token was logged as %s, want %s in it", refusals[0], want)
			}
		}
	}
	if len(refusals) > 1 {
		for _, want := range []string{`msg="log-in refused"`, "addr=127.0.0.1", "user=mallory", "status=401"} {
			if !strings.Contains(refusals[1], want) {
				t.Errorf("a wrong password was logged as %s, want %s in it", refusals[1], want)
			}
		}
	}
	for _, secretWord := range []string{wrong, secret, pw} {
		if strings.Contains(logs, secretWord) {
			t.Errorf("the log holds a secret, %q", secretWord)
		}
	}

	// The audit log stored the first 5 refused log-ins and the refused
	// token; stopping stored the count of the others rather than losing
	// it.
	v.stop(t)
	v = startVatioEnv(t, dir, cfg, noToken, "")
	origin = "http://" + v.http
	resp, _ = postPage(t, origin, "/login", url.Values{"user": {"admin"}, "password": {pw}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("log-in after the restart: %d", resp.StatusCode)
	}
	resp, body = page(t, origin, "/api/v1/audit?limit=1000", "Cookie", "vatio_session="+sessionOf(resp))
	var audit struct {
		Entries []struct{ Action, Detail string }
	}
	if err := json.Unmarshal([]byte(body), &audit); err != nil {
		t.Fatalf("GET /api/v1/audit: %d %s", resp.StatusCode, body)
	}
	stored, held := 0, ""
	for _, e := range audit.Entries {
		switch e.Action {
		case "login_failed", "token_refused":
			stored++
		case "refusals_held":
			held = e.Detail
		}
	}
	// 5 of the 40 log-ins, and the one token: each kind its own share.
	if stored != 6 || !strings.HasPrefix(held, "35 more refused") || !strings.Contains(held, "login_failed from 127.0.0.1 (35)") {
		t.Errorf("the audit log stored %d refusals of 41 and says of the others %q; want 6 and 35 log-ins held from 127.0.0.1", stored, held)
	}
}
