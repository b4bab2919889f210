package api_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/dashboard"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/offsite"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/store"
)

// described is the part of openapi.json that says who may call what.
type described struct {
	Security []map[string][]string                 `json:"security"`
	Paths    map[string]map[string]json.RawMessage `json:"paths"`
}

// operation is one operation of openapi.json.
type operation struct {
	OperationID string                     `json:"operationId"`
	Security    *[]map[string][]string     `json:"security"`
	Role        string                     `json:"x-role"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

// answers reports whether the operation documents status code.
func (o *operation) answers(code int) bool {
	_, ok := o.Responses[strconv.Itoa(code)]
	return ok
}

func (o *operation) documented() []string {
	codes := make([]string, 0, len(o.Responses))
	for c := range o.Responses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}

var operationMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operations returns every operation of d by "METHOD /path".
func (d *described) operations(t *testing.T) map[string]*operation {
	t.Helper()
	ops := map[string]*operation{}
	for p, item := range d.Paths {
		for method, raw := range item {
			if !slices.Contains(operationMethods, method) {
				continue // parameters, summary ...
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, p, err)
			}
			ops[strings.ToUpper(method)+" "+p] = &op
		}
	}
	return ops
}

// everything is a server with every route registered (the dashboard's,
// rules, devices, off-site copies) and auth on, with a token of each role
// and a viewer's session.
type everything struct {
	url     string
	srv     *api.Server
	tokens  map[string]string
	session string
	doc     described
}

// startEverything starts it, with a rate limit of ratePerMinute requests
// from one address (0 for none).
func startEverything(t *testing.T, ratePerMinute int) *everything {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	users, err := auth.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := devices.New(st, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(st, nil)
	alerts := alert.New(st, nil, alert.Options{})
	t.Cleanup(alerts.Close)
	rules, err := alert.NewRules(st, alerts, testTariff, nil, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypt.NewKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	// Never contacted: every request to it here is refused before.
	remote, err := offsite.New(offsite.Options{Key: key, Endpoint: "127.0.0.1:9", Bucket: "vatio", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	poller, modbusDevices := modbusOn(t, st)
	tenants, err := statement.NewTenants(st)
	if err != nil {
		t.Fatal(err)
	}
	mail, err := alert.NewMail(st, alert.MailSpec{Addr: "127.0.0.1:1", From: "vatio@example.org", TLS: "none", Timeout: alert.Duration(time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	schedules := statement.NewSchedules(statement.Source{Store: st, Tariffs: testTariff, Tenants: tenants}, mail, nil)
	srv := api.New(st, alerts, api.Options{BodyLimitBytes: 4096, Gatherer: prometheus.NewRegistry(), Tariff: testTariff,
		Auth: users, Audit: log, Devices: reg, MQTTAddr: ":1883", Rules: rules, Offsite: offsite.NewShipper(remote, st),
		Modbus: poller, ModbusDevices: modbusDevices, Tenants: tenants, Schedules: schedules, Mail: mail,
		RateLimitPerMinute: ratePerMinute})
	dashboard.New(st, dashboard.Options{Tariff: testTariff, Auth: users, Audit: log, Devices: reg, Rules: rules,
		Modbus: poller, ModbusDevices: modbusDevices, Tenants: tenants, Schedules: schedules, Mail: mail}).Register(srv.Router())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	e := &everything{url: "http://" + ln.Addr().String(), srv: srv, tokens: map[string]string{}}
	for _, role := range auth.Roles {
		_, secret, err := users.NewToken(role+" token", role, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = secret
	}
	// An admin user exists: the pages send a stranger to the login, not
	// to the setup.
	const password = "a long enough password"
	for _, u := range []struct{ name, role string }{{"admin", auth.Admin}, {"viewer", auth.Viewer}} {
		if _, err := users.AddUser(u.name, password, u.role); err != nil {
			t.Fatal(err)
		}
	}
	id, _, err := users.Login("viewer", password, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e.session = auth.SessionCookie + "=" + id
	if err := st.Append(meter.Reading{Meter: "m", Time: time.Now(), PowerW: 1}, nil); err != nil {
		t.Fatal(err)
	}
	st.Flush()

	resp := e.send(t, "GET", "/api/v1/openapi.json")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&e.doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return e
}

// examples fill a route's path parameters.
var examples = strings.NewReplacer("{id}", "m", "{site}", "home", "{name}", "nobody", "{code}", "es", "{path}", "app.js")

// send makes a request with headers (name, value pairs), following no
// redirect. Its body is the caller's to close; a stream's is never read to
// its end.
func (e *everything) send(t *testing.T, method, path string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+examples.Replace(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	cl := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// status makes a request as send does and returns its status and
// headers.
func (e *everything) status(t *testing.T, method, path string, headers ...string) (int, http.Header) {
	t.Helper()
	resp := e.send(t, method, path, headers...)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

var lowerCamelCase = regexp.MustCompile(`^[a-z][a-z0-9]*([A-Z][a-z0-9]*)*$`)

// TestOpenAPIOperationIDs: every route registered in Fiber has an
// operation with an operationId, in lowerCamelCase and unique in the
// description.
func TestOpenAPIOperationIDs(t *testing.T) {
	e := startEverything(t, 0)
	ops := e.doc.operations(t)
	byID := map[string]string{}
	for name, op := range ops {
		switch {
		case op.OperationID == "":
			t.Errorf("%s has no operationId", name)
		case !lowerCamelCase.MatchString(op.OperationID):
			t.Errorf("%s: operationId %q is not lowerCamelCase (listMeters, getMeter)", name, op.OperationID)
		case byID[op.OperationID] != "":
			t.Errorf("%s and %s have the same operationId %q", byID[op.OperationID], name, op.OperationID)
		}
		byID[op.OperationID] = name
	}
	routes := api.Routes(e.srv.App())
	if len(routes) < 50 {
		t.Fatalf("only %d routes registered: the server lacks some of its parts", len(routes))
	}
	for _, r := range routes {
		if _, ok := ops[r.Method+" "+r.Path]; !ok {
			t.Errorf("route %s %s has no operation in openapi.json", r.Method, r.Path)
		}
	}
}

// TestOpenAPISecurityMatchesMiddleware asks the server itself who may
// make each registered route's request, and compares with what
// openapi.json says: security ([] for public), x-role (the least role),
// and the 401, 403 or login redirect documented where, and only where,
// they happen.
func TestOpenAPISecurityMatchesMiddleware(t *testing.T) {
	e := startEverything(t, 0)
	ops := e.doc.operations(t)
	for _, r := range api.Routes(e.srv.App()) {
		op := ops[r.Method+" "+r.Path]
		if op == nil {
			continue // TestOpenAPIOperationIDs reports it
		}
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			security := e.doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			public := len(security) == 0

			code, header := e.status(t, r.Method, r.Path)
			// A page's GET sends a stranger to the login; everything else
			// answers 401 with a challenge (the login form's own 401, a
			// wrong password, has none).
			location := header.Get("Location")
			refused := code == http.StatusUnauthorized && strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer ") ||
				code == http.StatusSeeOther && strings.HasPrefix(location, "/login?next=")
			switch {
			case public && refused:
				t.Errorf("documented public (security: []), but without credentials: %d %s", code, location)
			case !public && !refused:
				t.Errorf("documented as needing a token or session, but without credentials: %d %s", code, location)
			}
			if !op.answers(code) {
				t.Errorf("without credentials: %d, not among the documented answers %v", code, op.documented())
			}
			if public {
				if op.Role != "" {
					t.Errorf("public, yet x-role %q", op.Role)
				}
				// The one 403 an open route gives: a form posted from
				// another site's page (login, setup).
				forbidden := false
				if r.Method != http.MethodGet {
					code, _ := e.status(t, r.Method, r.Path, "Origin", "http://elsewhere.example")
					forbidden = code == http.StatusForbidden
				}
				if forbidden != op.answers(http.StatusForbidden) {
					t.Errorf("a cross-site request refused with 403: %v; 403 documented: %v", forbidden, op.answers(http.StatusForbidden))
				}
				return
			}

			// The least role let through, asking with a token of each.
			least := auth.Admin
			for _, role := range []string{auth.Viewer, auth.Operator} {
				code, _ := e.status(t, r.Method, r.Path, "Authorization", "Bearer "+e.tokens[role])
				if code == http.StatusUnauthorized {
					t.Fatalf("the %s token: 401", role)
				}
				if code != http.StatusForbidden {
					least = role
					break
				}
			}
			if op.Role != least {
				t.Errorf("x-role %q, but the least role let through is %s", op.Role, least)
			}
			forbidden := least != auth.Viewer
			if r.Method != http.MethodGet {
				// A session's change without its CSRF token.
				code, _ := e.status(t, r.Method, r.Path, "Cookie", e.session)
				if code != http.StatusForbidden {
					t.Errorf("a session's change without its CSRF token: %d, want 403", code)
				}
				forbidden = true
			}
			if forbidden != op.answers(http.StatusForbidden) {
				t.Errorf("403 can happen: %v; 403 documented: %v", forbidden, op.answers(http.StatusForbidden))
			}
		})
	}
}

// TestOpenAPIRateLimit: 429 is documented on every operation the rate
// limit applies to, and only there.
func TestOpenAPIRateLimit(t *testing.T) {
	e := startEverything(t, 1) // the one request of the minute fetched openapi.json
	ops := e.doc.operations(t)
	for _, r := range api.Routes(e.srv.App()) {
		op := ops[r.Method+" "+r.Path]
		if op == nil {
			continue // TestOpenAPIOperationIDs reports it
		}
		code, _ := e.status(t, r.Method, r.Path)
		if limited := code == http.StatusTooManyRequests; limited != op.answers(http.StatusTooManyRequests) {
			t.Errorf("%s %s past the rate limit: %d; 429 documented: %v", r.Method, r.Path, code, op.answers(http.StatusTooManyRequests))
		}
	}
}
