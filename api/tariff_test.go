package api_test

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// request sends body to path as the holder of token and decodes the JSON
// answer into into (unless nil); it returns the status.
func request(t *testing.T, h *harness, token, method, path, body string, into any) int {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// tariffed starts the API with auth on, on a real store whose tariff in
// force is config.yaml's flat 0.20 EUR/kWh until one is saved, and a meter
// m that drew 1 kW from t0 to t0+2h.
func tariffed(t *testing.T) (*harness, map[string]string, *energy.Tariffs) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	config, err := tariff.Spec{Currency: "EUR", PriceKWh: 0.2, CO2GramsKWh: 250}.Build(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	tariffs, err := energy.NewTariffs(st, config, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := alert.New(st, nil, alert.Options{})
	t.Cleanup(svc.Close)
	rules, err := alert.NewRules(st, svc, tariffs, nil, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, tokens, _, _ := securedOn(t, st, api.Options{BodyLimitBytes: 1 << 20, Tariff: tariffs, Rules: rules, Now: func() time.Time { return t0.Add(3 * time.Hour) }})
	var rs []meter.Reading
	for ts := t0; !ts.After(t0.Add(2 * time.Hour)); ts = ts.Add(time.Minute) {
		rs = append(rs, meter.Reading{Meter: "kitchen", Time: ts, PowerW: 1000, Stamped: true})
	}
	h.add(t, rs...)
	return h, tokens, tariffs
}

type tariffAnswer struct {
	Source string      `json:"source"`
	Tariff tariff.Spec `json:"tariff"`
	Config tariff.Spec `json:"config"`
	Saved  *struct {
		SavedBy string `json:"saved_by"`
	} `json:"saved"`
	TimeZone string `json:"time_zone"`
}

// TestTariffAPI: anyone may read the tariff in force and where it comes
// from; only admins change it; a tariff wrong as config.yaml's would be is
// refused naming each key, and changes nothing; a saved tariff prices the
// next request, with no restart, until it is removed; each change is in
// the audit log with what it set.
func TestTariffAPI(t *testing.T) {
	h, tokens, _ := tariffed(t)
	admin := tokens[auth.Admin]
	var got tariffAnswer
	if code := request(t, h, tokens[auth.Viewer], "GET", "/api/v1/tariff", "", &got); code != 200 || got.Source != "config" || got.Tariff.PriceKWh != 0.2 || got.Saved != nil || got.TimeZone != "UTC" {
		t.Fatalf("GET as a viewer = %d %+v, want config.yaml's tariff", code, got)
	}
	cost := func() float64 {
		t.Helper()
		var e struct{ Total struct{ Cost float64 } }
		from, to := t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339)
		if code := request(t, h, tokens[auth.Viewer], "GET", "/api/v1/meters/kitchen/energy?from="+from+"&to="+to, "", &e); code != 200 {
			t.Fatalf("energy: %d", code)
		}
		return e.Total.Cost
	}
	if c := cost(); math.Abs(c-0.2) > 1e-9 {
		t.Fatalf("1 kWh at config.yaml's 0.20 costs %g", c)
	}

	tou := `{"currency": "EUR", "price_kwh": 0.1, "export_price_kwh": 0.04, "daily_charge": 0.5, "demand_charge_kw": 3, "co2_g_kwh": 150,
		"periods": [{"name": "peak", "price_kwh": 0.45, "days": ["weekdays"], "from": "10:00", "to": "14:00"}], "holidays": ["2026-12-25"]}`
	for _, role := range []string{auth.Viewer, auth.Operator} {
		if code := request(t, h, tokens[role], "PUT", "/api/v1/tariff", tou, nil); code != http.StatusForbidden {
			t.Errorf("PUT as %s = %d, want 403", role, code)
		}
		if code := request(t, h, tokens[role], "DELETE", "/api/v1/tariff", "", nil); code != http.StatusForbidden {
			t.Errorf("DELETE as %s = %d, want 403", role, code)
		}
	}
	if c := cost(); math.Abs(c-0.2) > 1e-9 {
		t.Fatalf("after refused changes 1 kWh costs %g, want 0.20 still", c)
	}
	if code := request(t, h, admin, "PUT", "/api/v1/tariff", tou, &got); code != 200 || got.Source != "database" || got.Saved == nil ||
		got.Saved.SavedBy != "token:admin token" || len(got.Tariff.Periods) != 1 || got.Config.PriceKWh != 0.2 {
		t.Fatalf("PUT as admin = %d %+v", code, got)
	}
	// t0 is Wednesday 10:00 UTC: the peak period's 0.45.
	if c := cost(); math.Abs(c-0.45) > 1e-9 {
		t.Errorf("after the PUT 1 kWh at peak costs %g, want 0.45", c)
	}
	var sum struct {
		Today struct {
			FixedCharge float64 `json:"fixed_charge"`
		}
	}
	if request(t, h, admin, "GET", "/api/v1/summary", "", &sum); sum.Today.FixedCharge != 0.5 {
		t.Errorf("today's fixed charge = %g, want the saved 0.5", sum.Today.FixedCharge)
	}

	for _, c := range []struct {
		body   string
		fields []string
	}{
		{`{"currency": "euro", "price_kwh": 0.2, "periods": [{"name": "", "price_kwh": 0.3, "days": ["funday"], "from": "25:00", "to": "14:00"}], "holidays": ["2026-13-01"]}`,
			[]string{"tariff.currency", "tariff.periods[0].name", "tariff.periods[0].days", "tariff.periods[0].from", "tariff.holidays[0]"}},
		{`{"currency": "EUR", "price_kwh": 250, "co2_g_kwh": -1, "daily_charge": -3}`, []string{"tariff.price_kwh", "tariff.daily_charge", "tariff.co2_g_kwh"}},
		{`{"currency": "EUR", "price_kwh": 0.2, "periods": [{"name": "p", "price_kwh": 0.3, "days": ["all"], "from": "10:00", "to": "10:00"}]}`, []string{"tariff.periods[0].to"}},
		{`{"currency": "EUR", "price": 0.2}`, nil},
		{`{"currency": "EUR"} {}`, nil},
		{`[1, 2]`, nil},
	} {
		var e struct {
			Error    string
			Detail   string
			Problems []struct{ Field, Reason string }
		}
		code := request(t, h, admin, "PUT", "/api/v1/tariff", c.body, &e)
		var fields []string
		for _, p := range e.Problems {
			fields = append(fields, p.Field)
		}
		if code != 400 || strings.Join(fields, " ") != strings.Join(c.fields, " ") || (c.fields == nil && !strings.Contains(e.Error, `"body"`)) {
			t.Errorf("PUT %s = %d %+v, want 400 naming %q", c.body, code, e, c.fields)
		}
	}
	if c := cost(); math.Abs(c-0.45) > 1e-9 {
		t.Errorf("after refused tariffs 1 kWh costs %g, want the saved 0.45 still", c)
	}
	got = tariffAnswer{}
	if code := request(t, h, admin, "DELETE", "/api/v1/tariff", "", &got); code != 200 || got.Source != "config" || got.Saved != nil {
		t.Errorf("DELETE = %d %+v, want config.yaml's in force", code, got)
	}
	if c := cost(); math.Abs(c-0.2) > 1e-9 {
		t.Errorf("after the DELETE 1 kWh costs %g, want config.yaml's 0.20", c)
	}
	var audit struct {
		Entries []struct{ Who, Action, Target, Detail string }
	}
	request(t, h, admin, "GET", "/api/v1/audit", "", &audit)
	var saved, removed, forbidden bool
	for _, e := range audit.Entries {
		switch {
		case e.Target == "PUT /api/v1/tariff" && e.Action == "change" && strings.Contains(e.Detail, "tariff saved: EUR 0.1/kWh, 1 periods"):
			saved = true
		case e.Target == "DELETE /api/v1/tariff" && e.Action == "delete" && strings.Contains(e.Detail, "config.yaml's is in force"):
			removed = true
		case e.Target == "PUT /api/v1/tariff" && e.Action == "forbidden" && e.Who == "token:viewer token":
			forbidden = true
		}
	}
	if !saved || !removed || !forbidden {
		t.Errorf("audit log: saved %v, removed %v, forbidden %v: %+v", saved, removed, forbidden, audit.Entries)
	}
}

// TestRulesByRoleAndUnknownMeter: operators make, change and delete rules,
// viewers may not; a rule naming a meter that has sent nothing is
// accepted with a warning saying so, which goes once the meter reports.
func TestRulesByRoleAndUnknownMeter(t *testing.T) {
	h, tokens, _ := tariffed(t)
	op := tokens[auth.Operator]
	body := `{"id": "night-base", "kind": "power_above", "meter": "main", "threshold_w": 400, "for": "2h", "severity": "info", "enabled": true}`
	if code := request(t, h, tokens[auth.Viewer], "POST", "/api/v1/rules", body, nil); code != http.StatusForbidden {
		t.Errorf("POST a rule as a viewer = %d, want 403", code)
	}
	var r struct {
		ID       string
		Meter    string
		Warnings []string
	}
	if code := request(t, h, op, "POST", "/api/v1/rules", body, &r); code != 201 || len(r.Warnings) != 1 ||
		r.Warnings[0] != `meter "main" has sent no readings yet: the rule applies once it does` {
		t.Errorf("POST a rule on meter main as an operator = %d %+v, want 201 with a warning", code, r)
	}
	h.add(t, meter.Reading{Meter: "main", Time: t0, PowerW: 300, Stamped: true})
	r.Warnings = nil
	if code := request(t, h, op, "GET", "/api/v1/rules/night-base", "", &r); code != 200 || len(r.Warnings) != 0 {
		t.Errorf("GET the rule once main reported = %d %+v, want no warning", code, r)
	}
	put := strings.Replace(body, `"main"`, `"kitchen"`, 1)
	r.Warnings = nil
	if code := request(t, h, op, "PUT", "/api/v1/rules/night-base", put, &r); code != 200 || r.Meter != "kitchen" || len(r.Warnings) != 0 {
		t.Errorf("PUT as an operator = %d %+v", code, r)
	}
	if code := request(t, h, tokens[auth.Viewer], "DELETE", "/api/v1/rules/night-base", "", nil); code != http.StatusForbidden {
		t.Errorf("DELETE as a viewer = %d, want 403", code)
	}
	if code := request(t, h, op, "DELETE", "/api/v1/rules/night-base", "", nil); code != http.StatusNoContent {
		t.Errorf("DELETE as an operator = %d, want 204", code)
	}
	var audit struct {
		Entries []struct{ Action, Target, Detail string }
	}
	request(t, h, tokens[auth.Admin], "GET", "/api/v1/audit", "", &audit)
	notes := map[string]bool{}
	for _, e := range audit.Entries {
		notes[e.Detail] = true
	}
	for _, want := range []string{"rule night-base created: power_above on main, 400 W for 2 h, info, enabled",
		"rule night-base saved: power_above on kitchen, 400 W for 2 h, info, enabled", "rule night-base deleted"} {
		if !notes[want] {
			t.Errorf("no audit entry %q in %+v", want, audit.Entries)
		}
	}
}

// A tariff with thousands of bad periods and holidays is refused with an
// answer of bounded size: the counts' problems, and the items within the
// most allowed, with the values they quote cut short.
func TestHugeBadTariffSmallAnswer(t *testing.T) {
	h, tokens, _ := tariffed(t)
	var b strings.Builder
	b.WriteString(`{"currency": "` + strings.Repeat("€", 200) + `", "price_kwh": 0.2, "periods": [`)
	for i := range 8000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name": "", "price_kwh": 999, "days": ["funday"], "from": "99:99", "to": "99:99"}`)
	}
	b.WriteString(`], "holidays": [`)
	long := strings.Repeat("x", 200)
	for i := range 3000 {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == 0 {
			b.WriteString(`"` + long + `"`)
		} else {
			b.WriteString(`"2026-13-01"`)
		}
	}
	b.WriteString(`]}`)
	body := b.String()
	req, err := http.NewRequest("PUT", h.url+"/api/v1/tariff", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokens[auth.Admin])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PUT of %d bytes = %d, want 400", len(body), resp.StatusCode)
	}
	if len(answer) > 256<<10 {
		t.Errorf("answer of %d bytes to a request of %d, want at most 256 KiB", len(answer), len(body))
	}
	var e struct {
		Problems []struct{ Field, Reason string }
	}
	if err := json.Unmarshal(answer, &e); err != nil {
		t.Fatal(err)
	}
	// Values are quoted short, never cut inside a character.
	if !utf8.Valid(answer) || strings.Contains(string(answer), "\uFFFD") || strings.Contains(string(answer), `\ufffd`) {
		t.Errorf("the answer holds a character cut in two: %.300s", answer)
	}
	counts := map[string]int{}
	for _, p := range e.Problems {
		if strings.Contains(p.Reason, strings.Repeat("€", 41)) {
			t.Errorf("%s quotes more than 40 characters of the currency: %.200s", p.Field, p.Reason)
		}
		field, _, _ := strings.Cut(p.Field, "[")
		counts[field]++
		if strings.Contains(p.Reason, long[:41]) {
			t.Errorf("%s quotes more than 40 characters of the value: %.80s", p.Field, p.Reason)
		}
	}
	if counts["tariff.periods"] != 1+5*tariff.MaxPeriods || counts["tariff.holidays"] != 1+tariff.MaxHolidays {
		t.Errorf("problems %v, want the count's and each of the first %d periods (5 each) and %d holidays",
			counts, tariff.MaxPeriods, tariff.MaxHolidays)
	}
}
