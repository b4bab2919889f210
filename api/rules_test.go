package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/automation"
)

func TestRulesAPI(t *testing.T) {
	probe := startOpts(t, api.Options{})
	svc := alert.New(probe.store, nil, alert.Options{})
	defer svc.Close()
	rules, err := alert.NewRules(probe.store, svc, testTariff, []alert.Rule{
		{ID: "cfg", Kind: alert.Silent, Meter: "*", Severity: "warning", Enabled: true, SilentFor: alert.Duration(time.Hour)},
	}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := startOpts(t, api.Options{Rules: rules})
	type ruleAnswer struct {
		ID        string   `json:"id"`
		Kind      string   `json:"kind"`
		SilentFor string   `json:"silent_for"`
		Source    string   `json:"source"`
		Firing    []string `json:"firing"`
	}
	body := `{"id": "quiet-plug", "name": "Plug silent", "kind": "silent", "meter": "plug", "severity": "critical", "enabled": true, "silent_for": "30m"}`
	var r ruleAnswer
	if code := h.post(t, "/api/v1/rules", "application/json", body, &r); code != 201 || r.ID != "quiet-plug" || r.SilentFor != "30m" || r.Source != "api" {
		t.Fatalf("POST = %d %+v", code, r)
	}
	if code := h.post(t, "/api/v1/rules", "application/json", body, nil); code != 409 {
		t.Errorf("POST of an existing id = %d, want 409", code)
	}
	var list struct{ Rules []ruleAnswer }
	if h.get(t, "/api/v1/rules", &list); len(list.Rules) != 2 || list.Rules[0].ID != "cfg" || list.Rules[0].Source != "config" || list.Rules[1].Firing == nil {
		t.Errorf("GET rules = %+v", list.Rules)
	}
	put := strings.Replace(body, `"30m"`, `"45m"`, 1)
	if code := h.do(t, http.MethodPut, "/api/v1/rules/quiet-plug", "application/json", put, &r); code != 200 || r.SilentFor != "45m" {
		t.Errorf("PUT = %d %+v", code, r)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
		param              string
	}{
		{http.MethodPost, "/api/v1/rules", `{"id": "x", "kind": "silent", "meter": "*", "severity": "info", "silent_for": "5s"}`, 400, "silent_for"},
		{http.MethodPost, "/api/v1/rules", `{"id": "x", "kind": "silent", "colour": "red"}`, 400, "body"},
		{http.MethodPost, "/api/v1/rules", `{"id": "x", "kind": "silent", "silent_for": 5}`, 400, "body"},
		{http.MethodPut, "/api/v1/rules/other", put, 400, "id"},
		{http.MethodPut, "/api/v1/rules/cfg", `{"kind": "silent", "meter": "*", "severity": "info", "silent_for": "1h"}`, 409, ""},
		{http.MethodDelete, "/api/v1/rules/cfg", "", 409, ""},
		{http.MethodGet, "/api/v1/rules/nope", "", 404, ""},
		{http.MethodDelete, "/api/v1/rules/nope", "", 404, ""},
	} {
		var e apiError
		code := h.do(t, c.method, c.path, "application/json", c.body, &e)
		if code != c.code || (c.param != "" && !strings.Contains(e.Error, `"`+c.param+`"`)) {
			t.Errorf("%s %s %.40s = %d %+v, want %d naming %q", c.method, c.path, c.body, code, e, c.code, c.param)
		}
	}
	if code := h.do(t, http.MethodDelete, "/api/v1/rules/quiet-plug", "", "", nil); code != 204 {
		t.Errorf("DELETE = %d", code)
	}
	if code := h.get(t, "/api/v1/rules/quiet-plug", nil); code != 404 {
		t.Errorf("GET after DELETE = %d", code)
	}
}

// TestRuleActionTargets: a rule whose webhook action points at the cloud
// metadata service, another scheme or this machine's loopback (not
// allowed) is refused, naming the action; an ordinary host is accepted.
func TestRuleActionTargets(t *testing.T) {
	probe := startOpts(t, api.Options{})
	svc := alert.New(probe.store, nil, alert.Options{})
	defer svc.Close()
	rules, err := alert.NewRules(probe.store, svc, testTariff, nil, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	rules.SetSender(&automation.Sender{Egress: &automation.Egress{OwnPorts: []int{5000}}})
	h := startOpts(t, api.Options{Rules: rules})
	for _, c := range []struct {
		url  string
		want int
	}{
		{"http://169.254.169.254/latest/meta-data/iam", 400},
		{"ftp://files.example/x", 400},
		{"http://127.0.0.1:8123/api/webhook/x", 400},
		{"http://[::1]:5000/api/v1/backup", 400},
		{"https://hooks.example.com/vatio", 201},
	} {
		body := `{"id": "r` + strings.Repeat("x", len(c.url)%7) + `", "kind": "silent", "meter": "plug", "severity": "info", "enabled": true, "silent_for": "30m",
			"actions": [{"url": "` + c.url + `", "payload": "{}"}]}`
		var e apiError
		if code := h.post(t, "/api/v1/rules", "application/json", body, &e); code != c.want || (c.want == 400 && !strings.Contains(e.Error, "actions[0]")) {
			t.Errorf("a rule acting on %s: %d %+v, want %d", c.url, code, e, c.want)
		}
	}
}
