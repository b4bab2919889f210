package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
)

// sendTariff sends a tariff request to the instance serving HTTP at addr
// with the admin token and returns the status.
func sendTariff(t *testing.T, addr, method, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+"/api/v1/tariff", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestTariffSharedOnPostgres: a tariff saved on one instance sharing a
// PostgreSQL database prices on the other at its next request, and once
// removed on that other, config.yaml's prices on both.
func TestTariffSharedOnPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	brokerAddr, _, _ := startMosquitto(t)
	conf := "dashboard:\n  timezone: UTC\ntariff:\n  currency: EUR\n  price_kwh: 0.2\n"
	a, b := startPeer(t, brokerAddr, "vatio-a", dsn, conf), startPeer(t, brokerAddr, "vatio-b", dsn, conf)
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) // a Wednesday
	var csv strings.Builder
	for ts := start; !ts.After(start.Add(time.Hour)); ts = ts.Add(2 * time.Minute) {
		fmt.Fprintf(&csv, "%s,1000\n", ts.Format(time.RFC3339))
	}
	req, _ := http.NewRequest("POST", "http://"+a.http+"/api/v1/meters/kitchen/import", strings.NewReader(csv.String()))
	req.Header.Set("Content-Type", "text/csv")
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("import: %d %s", resp.StatusCode, body)
	}
	cost := func(p *peer) float64 {
		t.Helper()
		var e struct {
			Total struct {
				EnergyKWh float64 `json:"energy_kwh"`
				Cost      float64 `json:"cost"`
			} `json:"total"`
		}
		url := "http://" + p.http + "/api/v1/meters/kitchen/energy?from=" + start.Format(time.RFC3339) + "&to=" + start.Add(time.Hour).Format(time.RFC3339)
		if code := getJSON(t, url, &e); code != 200 || math.Abs(e.Total.EnergyKWh-1) > 1e-6 {
			t.Fatalf("energy on %s: %d %+v, want 1 kWh", p.http, code, e)
		}
		return e.Total.Cost
	}
	if c := cost(b); math.Abs(c-0.2) > 1e-9 {
		t.Fatalf("b before any tariff is saved: %g, want config.yaml's 0.20", c)
	}
	if code := sendTariff(t, a.http, "PUT", `{"currency": "EUR", "price_kwh": 0.1, "periods": [{"name": "peak", "price_kwh": 0.45, "days": ["weekdays"], "from": "10:00", "to": "14:00"}]}`); code != 200 {
		t.Fatalf("PUT on a: %d", code)
	}
	if c := cost(b); math.Abs(c-0.45) > 1e-9 {
		t.Errorf("b after a tariff saved on a: %g, want 0.45", c)
	}
	if code := sendTariff(t, b.http, "DELETE", ""); code != 200 {
		t.Fatalf("DELETE on b: %d", code)
	}
	if c := cost(a); math.Abs(c-0.2) > 1e-9 {
		t.Errorf("a after b removed the saved tariff: %g, want config.yaml's 0.20", c)
	}
}

// TestTariffChangedWithoutRestart: a meter's cost follows a tariff saved
// through the API at the next request, config.yaml's until then; the saved
// tariff outlives a restart (Vatio says at start that it overrides
// config.yaml's), and once removed config.yaml's prices again.
func TestTariffChangedWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("dashboard:\n  timezone: UTC\ntariff:\n  currency: EUR\n  price_kwh: 0.2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := startVatioWith(t, dir, cfg)
	c := mqtttest.V5(t, v.mqtt, nil)
	start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) // a Wednesday
	for ts := start; !ts.After(start.Add(time.Hour)); ts = ts.Add(2 * time.Minute) {
		if code := mqtttest.Publish5(t, c, "energy/consumption/kitchen", 1, fmt.Sprintf(`{"power_w": 1000, "ts": %q}`, ts.Format(time.RFC3339))); code != 0 {
			t.Fatalf("PUBACK %#x", code)
		}
	}
	energyURL := func(v *instance) string {
		return "http://" + v.http + "/api/v1/meters/kitchen/energy?from=" + start.Format(time.RFC3339) + "&to=" + start.Add(time.Hour).Format(time.RFC3339)
	}
	type total struct{ EnergyKWh, Cost float64 }
	read := func(v *instance) total {
		t.Helper()
		var e struct {
			Total struct {
				EnergyKWh float64 `json:"energy_kwh"`
				Cost      float64 `json:"cost"`
			} `json:"total"`
		}
		if code := getJSON(t, energyURL(v), &e); code != 200 {
			t.Fatalf("energy: %d", code)
		}
		return total{e.Total.EnergyKWh, e.Total.Cost}
	}
	deadline := time.Now().Add(10 * time.Second)
	got := read(v)
	for math.Abs(got.EnergyKWh-1) > 1e-6 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got = read(v)
	}
	if math.Abs(got.EnergyKWh-1) > 1e-6 || math.Abs(got.Cost-0.2) > 1e-9 {
		t.Fatalf("before any tariff is saved: %+v, want 1 kWh at config.yaml's 0.20", got)
	}
	if code := sendTariff(t, v.http, "PUT", `{"currency": "EUR", "price_kwh": 0.1, "periods": [{"name": "peak", "price_kwh": 0.45, "days": ["weekdays"], "from": "10:00", "to": "14:00"}]}`); code != 200 {
		t.Fatalf("PUT /api/v1/tariff: %d", code)
	}
	if got := read(v); math.Abs(got.Cost-0.45) > 1e-9 {
		t.Errorf("after the PUT: %+v, want the peak's 0.45 with no restart", got)
	}

	v.stop(t)
	v = startVatioWith(t, dir, cfg)
	if got := read(v); math.Abs(got.Cost-0.45) > 1e-9 {
		t.Errorf("after a restart: %+v, want the saved tariff's 0.45", got)
	}
	if !strings.Contains(v.logs.String(), "the one saved on the dashboard is in force, over config.yaml's") {
		t.Errorf("the start does not say the saved tariff overrides config.yaml's:\n%s", v.logs)
	}
	if code := sendTariff(t, v.http, "DELETE", ""); code != 200 {
		t.Fatalf("DELETE /api/v1/tariff: %d", code)
	}
	if got := read(v); math.Abs(got.Cost-0.2) > 1e-9 {
		t.Errorf("after the DELETE: %+v, want config.yaml's 0.20", got)
	}
}
