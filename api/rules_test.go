package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/alert"
	"github.com/vatio-energy/vatio/api"
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
	if code := h.post(t, "/api/v1/rules", "application/json", body, &r); code != 201 || r.ID != "quiet-plug" || r.SilentFor != "30m0s" || r.Source != "api" {
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
	if code := h.do(t, http.MethodPut, "/api/v1/rules/quiet-plug", "application/json", put, &r); code != 200 || r.SilentFor != "45m0s" {
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
