package api_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/store"
)

// secured starts the API with auth on, and returns a token per role.
func secured(t *testing.T) (*harness, map[string]string, *auth.Service, *audit.Log) {
	t.Helper()
	return securedWith(t, api.Options{})
}

// securedWith is secured with more options.
func securedWith(t *testing.T, opts api.Options) (*harness, map[string]string, *auth.Service, *audit.Log) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return securedOn(t, st, opts)
}

// securedOn is securedWith on the store st.
func securedOn(t *testing.T, st *store.Store, opts api.Options) (*harness, map[string]string, *auth.Service, *audit.Log) {
	t.Helper()
	users, err := auth.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(st, nil)
	reg, err := devices.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Auth, opts.Audit, opts.Devices, opts.MQTTAddr = users, log, reg, ":1883"
	if opts.Tenants == nil {
		if opts.Tenants, err = statement.NewTenants(st); err != nil {
			t.Fatal(err)
		}
	}
	if opts.Tariff == nil {
		opts.Tariff = testTariff
	}
	if opts.Mail == nil {
		var err error
		opts.Mail, err = alert.NewMail(st, alert.MailSpec{Addr: "127.0.0.1:1", From: "vatio@example.org", TLS: "none", Timeout: alert.Duration(time.Second)}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if opts.Schedules == nil {
		opts.Schedules = statement.NewSchedules(statement.Source{Store: st, Tariffs: opts.Tariff, Tenants: opts.Tenants}, opts.Mail, nil)
	}
	if opts.ModbusDevices == nil {
		opts.Modbus, opts.ModbusDevices = modbusOn(t, st)
	}
	h := startOptsOn(t, st, opts)
	tokens := map[string]string{}
	for _, role := range auth.Roles {
		_, secret, err := users.NewToken(role+" token", role, nil)
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = secret
	}
	if err := st.Append(meter.Reading{Meter: "m", Time: time.Now(), PowerW: 1}, nil); err != nil {
		t.Fatal(err)
	}
	st.Flush()
	return h, tokens, users, log
}

// call makes a request with headers (name, value pairs) and returns its
// status.
func call(t *testing.T, h *harness, method, path, body string, headers ...string) int {
	t.Helper()
	req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestEndpointsByRole sends every kind of request with each role's token:
// allowed ones are neither 401 nor 403, denied ones 403; without a token,
// 401; /healthz needs nothing.
func TestEndpointsByRole(t *testing.T) {
	h, tokens, _, log := secured(t)
	endpoints := []struct {
		method, path, body, need string
	}{
		{"GET", "/api/energy", "", auth.Viewer},
		{"GET", "/api/v1/meters", "", auth.Viewer},
		{"GET", "/api/v1/meters/m/readings", "", auth.Viewer},
		{"GET", "/api/v1/meters/m/energy", "", auth.Viewer},
		{"GET", "/api/v1/summary", "", auth.Viewer},
		{"GET", "/api/v1/alerts", "", auth.Viewer},
		{"GET", "/api/v1/recommendations", "", auth.Viewer},
		{"GET", "/api/v1/me", "", auth.Viewer},
		{"GET", "/metrics", "", auth.Viewer},
		{"PATCH", "/api/v1/meters/m", `{"name": "M"}`, auth.Operator},
		{"POST", "/api/alert", `{"message": "x"}`, auth.Operator},
		{"POST", "/api/v1/meters/m/import", "2026-11-25T10:00:00Z,5\n", auth.Operator},
		{"GET", "/api/v1/backup", "", auth.Admin},
		{"GET", "/api/v1/meters/m/export", "", auth.Admin},
		{"GET", "/api/v1/meters/export", "", auth.Viewer},       // a meter named export is no export
		{"PATCH", "/api/v1/meters/Export", `{}`, auth.Operator}, // nor, in any case`
		{"GET", "/api/v1/sites/home/export?format=csv", "", auth.Admin},
		{"GET", "/api/v1/audit", "", auth.Admin},
		{"GET", "/api/v1/tokens", "", auth.Admin},
		{"POST", "/api/v1/tokens", `{"name": "ci", "role": "viewer"}`, auth.Admin},
		{"GET", "/api/v1/users", "", auth.Admin},
		{"POST", "/api/v1/users", `{"name": "ana", "password": "a long enough password", "role": "viewer"}`, auth.Admin},
		{"DELETE", "/api/v1/meters/nope", "", auth.Admin},
		{"GET", "/api/v1/devices", "", auth.Admin},
		{"POST", "/api/v1/devices", `{"name": "plug"}`, auth.Admin},
		{"DELETE", "/api/v1/devices/nope", "", auth.Admin},
		{"GET", "/api/v1/tariff", "", auth.Viewer},
		{"PUT", "/api/v1/tariff", `{"currency": "EUR", "price_kwh": 0.2}`, auth.Admin},
		{"DELETE", "/api/v1/tariff", "", auth.Admin},
		{"GET", "/api/v1/modbus", "", auth.Viewer},
		{"GET", "/api/v1/modbus/devices", "", auth.Viewer},
		{"GET", "/api/v1/modbus/devices/nope", "", auth.Viewer},
		{"PUT", "/api/v1/modbus/devices/press", `{"url": "tcp://127.0.0.1:1502", "profile": "sdm630"}`, auth.Admin},
		{"DELETE", "/api/v1/modbus/devices/nope", "", auth.Admin},
		{"GET", "/api/v1/statements?subject=site:default", "", auth.Viewer},
		{"GET", "/api/v1/tenants", "", auth.Viewer},
		{"GET", "/api/v1/tenants/nope", "", auth.Viewer},
		{"PUT", "/api/v1/tenants/acme", `{"name": "Acme", "meters": ["m"]}`, auth.Admin},
		{"DELETE", "/api/v1/tenants/nope", "", auth.Admin},
		{"GET", "/api/v1/statements/schedules", "", auth.Admin},
		{"GET", "/api/v1/statements/schedules/nope", "", auth.Admin},
		{"PUT", "/api/v1/statements/schedules/monthly", `{"subject": "site:default", "every": "month", "day": 1, "to": ["a@example.org"]}`, auth.Admin},
		{"POST", "/api/v1/statements/schedules/nope/send?period=2026-11", "", auth.Admin},
		{"DELETE", "/api/v1/statements/schedules/nope", "", auth.Admin},
	}
	for _, e := range endpoints {
		if code := call(t, h, e.method, e.path, e.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", e.method, e.path, code)
		}
		if code := call(t, h, e.method, e.path, e.body, "Authorization", "Bearer vat_000000000000_"+strings.Repeat("x", 30)); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token: %d, want 401", e.method, e.path, code)
		}
		for _, role := range auth.Roles {
			code := call(t, h, e.method, e.path, e.body, "Authorization", "Bearer "+tokens[role])
			allowed := auth.Allows(role, e.need)
			if allowed && (code == http.StatusUnauthorized || code == http.StatusForbidden) {
				t.Errorf("%s %s as %s: %d, want it allowed", e.method, e.path, role, code)
			}
			if !allowed && code != http.StatusForbidden {
				t.Errorf("%s %s as %s: %d, want 403", e.method, e.path, role, code)
			}
		}
	}
	// A user whose name has an @ is removed by its encoded name.
	if code := call(t, h, "POST", "/api/v1/users", `{"name": "ops@example.com", "password": "a long enough password", "role": "viewer"}`,
		"Authorization", "Bearer "+tokens[auth.Admin]); code != http.StatusCreated {
		t.Fatalf("create ops@example.com: %d", code)
	}
	if code := call(t, h, "DELETE", "/api/v1/users/ops%40example.com", "", "Authorization", "Bearer "+tokens[auth.Admin]); code != http.StatusNoContent {
		t.Errorf("DELETE /api/v1/users/ops%%40example.com: %d, want 204", code)
	}
	// A path spelt otherwise (case, trailing slash) never reaches a route
	// its role may not use.
	for _, p := range []struct{ method, path string }{
		{"GET", "/api/v1/Backup"}, {"GET", "/api/v1/backup/"}, {"GET", "/API/v1/tokens"}, {"GET", "/api/v1/Users"},
		{"GET", "/api/v1/meters/m/EXPORT"}, {"GET", "/api/v1/meters/m/export/"}, {"DELETE", "/API/v1/meters/m"}, {"POST", "/api/v1/Devices"},
		{"PUT", "/api/v1/Modbus/devices/x"}, {"DELETE", "/api/v1/modbus/devices/x/"}, {"PUT", "/api/v1/Tenants/x"}, {"DELETE", "/api/v1/tenants/x/"},
	} {
		for _, role := range []string{auth.Viewer, auth.Operator} {
			code := call(t, h, p.method, p.path, `{"name": "x"}`, "Authorization", "Bearer "+tokens[role])
			if code != http.StatusForbidden && code != http.StatusNotFound {
				t.Errorf("%s %s as %s: %d, want 403 or 404", p.method, p.path, role, code)
			}
		}
	}
	for _, open := range []string{"/healthz", "/api/v1/openapi.json"} {
		if code := call(t, h, "GET", open, ""); code == http.StatusUnauthorized {
			t.Errorf("%s needs a token", open)
		}
	}
	if code := call(t, h, "GET", "/api/v1/meters", "", "Authorization", "Basic YWRtaW46YWRtaW4="); code != http.StatusUnauthorized {
		t.Errorf("basic auth: %d", code)
	}
	// The audit log has the changes, the refusals and the token uses.
	es, err := log.List(1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Action] = true
		if strings.Contains(e.Target, tokens[auth.Admin]) || strings.Contains(e.Detail, "vat_") {
			t.Errorf("a token in the audit log: %+v", e)
		}
	}
	for _, want := range []string{"change", "delete", "forbidden", "token_used", "token_refused", "export"} {
		if !seen[want] {
			t.Errorf("no %q in the audit log", want)
		}
	}
}

// TestSessionsNeedCSRF logs in as a browser would and checks that changes
// need the session's CSRF token.
func TestSessionsNeedCSRF(t *testing.T) {
	h, _, users, _ := secured(t)
	if _, err := users.AddUser("op", "a long enough password", auth.Operator); err != nil {
		t.Fatal(err)
	}
	id, x, err := users.Login("op", "a long enough password", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cookie := auth.SessionCookie + "=" + id
	if code := call(t, h, "GET", "/api/v1/meters", "", "Cookie", cookie); code != 200 {
		t.Errorf("GET with a session: %d", code)
	}
	if code := call(t, h, "PATCH", "/api/v1/meters/m", `{"name": "x"}`, "Cookie", cookie); code != http.StatusForbidden {
		t.Errorf("PATCH without the CSRF token: %d, want 403", code)
	}
	if code := call(t, h, "PATCH", "/api/v1/meters/m", `{"name": "x"}`, "Cookie", cookie, "X-CSRF-Token", "wrong"); code != http.StatusForbidden {
		t.Errorf("PATCH with a wrong CSRF token: %d, want 403", code)
	}
	if code := call(t, h, "PATCH", "/api/v1/meters/m", `{"name": "x"}`, "Cookie", cookie, "X-CSRF-Token", x.CSRF); code != 200 {
		t.Errorf("PATCH with the CSRF token: %d", code)
	}
	// Never from the query string (it ends up in logs and Referers); from
	// a URL-encoded form body, yes.
	if code := call(t, h, "PATCH", "/api/v1/meters/m?csrf="+url.QueryEscape(x.CSRF), `{"name": "y"}`, "Cookie", cookie); code != http.StatusForbidden {
		t.Errorf("PATCH with the CSRF token in the query: %d, want 403", code)
	}
	form := url.Values{"csrf": {x.CSRF}}.Encode()
	if code := call(t, h, "POST", "/api/v1/meters/m/nothing", form, "Cookie", cookie, "Content-Type", "application/x-www-form-urlencoded"); code == http.StatusForbidden {
		t.Errorf("POST with the CSRF token in a form body: %d, want past the CSRF check", code)
	}
	if code := call(t, h, "GET", "/api/v1/meters", "", "Cookie", auth.SessionCookie+"=forged-session-id-000000000"); code != http.StatusUnauthorized {
		t.Errorf("a forged session: %d", code)
	}
	// A page without a session goes to the login.
	if code := call(t, h, "GET", "/api/v1/nothing-here", ""); code != http.StatusUnauthorized {
		t.Errorf("unknown API path without auth: %d", code)
	}
}

// TestAuditHasTheStatusSent: a change refused by its handler is in the
// audit log with the status the client got, not 200.
func TestAuditHasTheStatusSent(t *testing.T) {
	h, tokens, _, log := secured(t)
	admin := []string{"Authorization", "Bearer " + tokens[auth.Admin]}
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/api/alert", `{"message": "", "severity": "warning"}`, http.StatusBadRequest},
		{"DELETE", "/api/v1/meters/no-such-meter", "", http.StatusNotFound},
		{"POST", "/api/alert", `{"message": "over the cap", "severity": "warning"}`, http.StatusAccepted},
	} {
		if code := call(t, h, c.method, c.path, c.body, admin...); code != c.want {
			t.Fatalf("%s %s: %d, want %d (setup)", c.method, c.path, code, c.want)
		}
		es, err := log.List(1, nil)
		if err != nil || len(es) != 1 {
			t.Fatalf("audit log: %v %v", es, err)
		}
		if e := es[0]; e.Target != c.method+" "+c.path || e.Status != c.want {
			t.Errorf("%s %s answered %d: audit entry %+v", c.method, c.path, c.want, e)
		}
	}
}

// TestRefusedTokenFloodKeepsTheAuditLog sends a flood of requests with
// wrong tokens, as anyone who reaches the port can: the audit log stores
// only the first few of them, each clipped, and keeps what was there
// before, so the Access page still shows who changed what.
func TestRefusedTokenFloodKeepsTheAuditLog(t *testing.T) {
	h, tokens, _, log := secured(t)
	if code := call(t, h, "DELETE", "/api/v1/meters/m", "", "Authorization", "Bearer "+tokens[auth.Admin]); code != http.StatusOK {
		t.Fatalf("delete m: %d", code)
	}
	long := "/api/v1/meters/" + strings.Repeat("x", 3000)
	for i := range 300 {
		path := "/api/v1/meters"
		if i%2 == 1 {
			path = long
		}
		if code := call(t, h, "GET", path, "", "Authorization", "Bearer vat_000000000000_"+strings.Repeat("y", 30)); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i, code)
		}
	}
	es, err := log.List(100000, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused, deleted := 0, false
	for _, e := range es {
		switch e.Action {
		case "token_refused":
			refused++
			if len(e.Target) > 300 {
				t.Errorf("a refusal's target of %d bytes stored", len(e.Target))
			}
		case "delete":
			deleted = deleted || e.Target == "DELETE /api/v1/meters/m"
		}
	}
	if refused != 5 {
		t.Errorf("%d of 300 refused tokens stored, want the first 5 (the rest are counted at the minute's end)", refused)
	}
	if !deleted {
		t.Error("the deletion before the flood is no longer in the audit log")
	}
}

// TestImportIsAudited: an import through the API is in the audit log with
// what it stored, as one through the dashboard's form is.
func TestImportIsAudited(t *testing.T) {
	h, tokens, _, log := secured(t)
	req, _ := http.NewRequest("POST", h.url+"/api/v1/meters/garage/import", strings.NewReader("timestamp,power_w\n2026-11-01T10:00:00Z,100\n2026-11-01T10:01:00Z,120\n"))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+tokens[auth.Operator])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("import: %d", resp.StatusCode)
	}
	es, err := log.List(1, nil)
	if err != nil || len(es) != 1 {
		t.Fatalf("audit log: %v %v", es, err)
	}
	if e := es[0]; e.Target != "POST /api/v1/meters/garage/import" || e.Detail != "history of garage imported from a csv file: 2 rows, 2 readings, 2 new" {
		t.Errorf("the import's audit entry: %+v", e)
	}
}

// TestForbiddenFloodKeepsTheAuditLog: a viewer sending requests its role
// may not make, as fast as it can, has the first few stored, not
// thousands that would push the admins' entries out.
func TestForbiddenFloodKeepsTheAuditLog(t *testing.T) {
	h, tokens, _, log := secured(t)
	if code := call(t, h, "DELETE", "/api/v1/meters/m", "", "Authorization", "Bearer "+tokens[auth.Admin]); code != http.StatusOK {
		t.Fatalf("delete m: %d", code)
	}
	for range 200 {
		if code := call(t, h, "GET", "/api/v1/audit", "", "Authorization", "Bearer "+tokens[auth.Viewer]); code != http.StatusForbidden {
			t.Fatalf("a viewer's GET /api/v1/audit: %d", code)
		}
	}
	es, err := log.List(100000, nil)
	if err != nil {
		t.Fatal(err)
	}
	forbidden, deleted := 0, false
	for _, e := range es {
		forbidden += map[bool]int{true: 1}[e.Action == "forbidden"]
		deleted = deleted || e.Action == "delete" && e.Target == "DELETE /api/v1/meters/m"
	}
	if forbidden != 5 || !deleted {
		t.Errorf("%d of 200 forbidden requests stored (want 5), the deletion kept: %v", forbidden, deleted)
	}
}
