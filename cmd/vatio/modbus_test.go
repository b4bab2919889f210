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

	"github.com/vatio-energy/vatio/internal/testutil/modbustest"
)

// sdm630 is an SDM630's registers: three phases drawing 1000, 1500 and
// 500 W, 12,345.6 kWh drawn so far, nothing sent.
func sdm630() []modbustest.Value {
	v := func(addr uint16, x float64) modbustest.Value {
		return modbustest.Value{Function: "input", Address: addr, Type: "float32", Value: x}
	}
	return []modbustest.Value{
		v(0x00, 230.1), v(0x02, 231.2), v(0x04, 229.8), v(0x06, 4.35), v(0x08, 6.49), v(0x0A, 2.18),
		v(0x0C, 1000), v(0x0E, 1500), v(0x10, 500), v(0x1E, 0.99), v(0x20, 0.98), v(0x22, 0.97),
		v(0x34, 3000), v(0x3E, 0.98), v(0x46, 50.01), v(0x48, 12345.6), v(0x4A, 0),
	}
}

// TestModbusPlantMain is the plant floor's first hour: an SDM630 served by
// pymodbus, named in config.yaml, shows its total and three phases through
// the API within two polling intervals of Vatio's start, and its energy
// (from its import counter) and cost per day like any other meter's.
func TestModbusPlantMain(t *testing.T) {
	sim := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{1: sdm630()})
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	const interval = 2 * time.Second
	yaml := fmt.Sprintf(`tariff:
  currency: EUR
  price_kwh: 0.2
alerts:
  evaluate_every: 1s
  rules:
    - {id: unbalanced, kind: phase_imbalance, meter: plant-main, threshold_pct: 20, hysteresis_pct: 5, severity: warning, enabled: true}
modbus:
  - name: plant-main
    url: tcp://%s
    profile: sdm630
    interval: %s
`, sim.Addr, interval)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	v := startVatioWith(t, t.TempDir(), cfg)
	ready := time.Now()
	origin := "http://" + v.http

	type meterAnswer struct {
		PowerNowW *float64 `json:"power_now_w"`
		LastHeard *string  `json:"last_heard"`
		Status    string   `json:"status"`
		Source    string   `json:"source"`
	}
	var m meterAnswer
	for {
		m = meterAnswer{}
		if getJSON(t, origin+"/api/v1/meters/plant-main", &m) == 200 && m.PowerNowW != nil {
			break
		}
		if time.Since(ready) > 2*interval {
			t.Fatalf("plant-main not in the API %s after Vatio was ready (two polling intervals): %+v\n%s", time.Since(ready), m, v.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if *m.PowerNowW != 3000 || m.LastHeard == nil || m.Status != "online" || m.Source != "modbus" {
		t.Errorf("plant-main: %+v (%g W), want 3000 W now, heard, online, from modbus", m, *m.PowerNowW)
	}
	for phase, w := range map[string]float64{"L1": 1000, "L2": 1500, "L3": 500} {
		var p meterAnswer
		if code := getJSON(t, origin+"/api/v1/meters/plant-main:"+phase, &p); code != 200 || p.PowerNowW == nil || *p.PowerNowW != w {
			t.Errorf("plant-main:%s: %d %+v, want %g W", phase, code, p, w)
		}
	}

	// The phases are sub-meters of plant-main: the site counts its 3 kW
	// once.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var sum struct {
			PowerW float64 `json:"power_w"`
		}
		var l3 struct {
			Parent string `json:"parent"`
		}
		getJSON(t, origin+"/api/v1/summary", &sum)
		getJSON(t, origin+"/api/v1/meters/plant-main:L3", &l3)
		if sum.PowerW == 3000 && l3.Parent == "plant-main" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site's power %v W (want 3000: the phases counted once), plant-main:L3's parent %q", sum.PowerW, l3.Parent)
		}
	}

	// Deleting the meter: the next poll makes it anew, its phases its
	// sub-meters again, and the site counts it once.
	req, _ := http.NewRequest("DELETE", origin+"/api/v1/meters/plant-main", nil)
	if resp, err := apiClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE plant-main: %v %v", resp, err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var sum struct {
			PowerW float64 `json:"power_w"`
		}
		var l3 struct {
			Parent string `json:"parent"`
		}
		getJSON(t, origin+"/api/v1/summary", &sum)
		getJSON(t, origin+"/api/v1/meters/plant-main:L3", &l3)
		if sum.PowerW == 3000 && l3.Parent == "plant-main" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after deleting plant-main: the site's power %v W (want 3000), plant-main:L3's parent %q", sum.PowerW, l3.Parent)
		}
	}

	// Its metrics: up, polls counted.
	resp, err := apiClient.Get(origin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `vatio_modbus_device_up{device="plant-main"} 1`) || !strings.Contains(string(metrics), `vatio_modbus_polls_total{device="plant-main",result="ok"}`) {
		t.Errorf("no Modbus metrics of plant-main in /metrics")
	}

	// The device's own status: answering, its phases' voltages and
	// currents, their imbalance.
	var st struct {
		Devices []struct {
			Name   string `json:"name"`
			Online bool   `json:"online"`
			Total  struct {
				PowerW      float64 `json:"power_w"`
				FrequencyHz float64 `json:"frequency_hz"`
			} `json:"total"`
			Phases []struct {
				Phase    string  `json:"phase"`
				VoltageV float64 `json:"voltage_v"`
				CurrentA float64 `json:"current_a"`
			} `json:"phases"`
			CurrentImbalancePct float64 `json:"current_imbalance_pct"`
		} `json:"devices"`
	}
	if code := getJSON(t, origin+"/api/v1/modbus", &st); code != 200 || len(st.Devices) != 1 {
		t.Fatalf("GET /api/v1/modbus: %d %+v", code, st)
	}
	d := st.Devices[0]
	f := func(x float64) float64 { return float64(float32(x)) }
	i1, i2, i3 := f(4.35), f(6.49), f(2.18)
	mean := (i1 + i2 + i3) / 3
	wantPct := 100 * max(math.Abs(i1-mean), math.Abs(i2-mean), math.Abs(i3-mean)) / mean
	if d.Name != "plant-main" || !d.Online || d.Total.PowerW != 3000 || d.Total.FrequencyHz != f(50.01) || len(d.Phases) != 3 ||
		d.Phases[1].Phase != "L2" || d.Phases[1].VoltageV != f(231.2) || d.Phases[1].CurrentA != i2 || math.Abs(d.CurrentImbalancePct-wantPct) > 1e-9 {
		t.Errorf("plant-main's status: %+v, want online, 3000 W, L2 at 231.2 V and 6.49 A, current imbalance %.2f %%", d, wantPct)
	}

	// The meter's page shows its phases and their imbalance, in the
	// reader's language.
	for lang, want := range map[string][]string{
		"en": {`id="phases-table"`, `data-phase="L2"`, "231.2 V", "6.49 A", "1.50 kW", "Imbalance: Current", fmt.Sprintf("%.1f %%", wantPct)},
		"es": {"Fases", "231,2 V", "6,49 A", "Desequilibrio: Corriente", strings.Replace(fmt.Sprintf("%.1f %%", wantPct), ".", ",", 1)},
	} {
		req, _ := http.NewRequest("GET", origin+"/meters/plant-main", nil)
		req.Header.Set("Accept-Language", lang)
		resp, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range want {
			if !strings.Contains(string(page), w) {
				t.Errorf("the %s meter page of plant-main lacks %q", lang, w)
			}
		}
	}

	// Its phases, 50 % apart, fire the phase_imbalance rule.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var as struct {
			Alerts []struct {
				Rule, Meter, State, Message string
			} `json:"alerts"`
		}
		getJSON(t, origin+"/api/v1/alerts?limit=100", &as)
		fired := false
		for _, a := range as.Alerts {
			fired = fired || a.Rule == "unbalanced" && a.Meter == "plant-main" && a.State == "firing" && strings.Contains(a.Message, "phases 50 % apart in power")
		}
		if fired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no phase_imbalance alert for plant-main: %+v", as)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A kWh more on its import counter is a kWh of the day, priced.
	sim.Set(modbustest.Value{Unit: 1, Function: "input", Address: 0x48, Type: "float32", Value: 12346.6})
	want := float64(float32(12346.6)) - float64(float32(12345.6))
	deadline = time.Now().Add(30 * time.Second)
	for {
		var e struct {
			Total struct {
				EnergyKWh float64 `json:"energy_kwh"`
				Cost      float64 `json:"cost"`
			} `json:"total"`
		}
		getJSON(t, origin+"/api/v1/meters/plant-main/energy?interval=day", &e)
		if math.Abs(e.Total.EnergyKWh-want) < 1e-6 {
			if math.Abs(e.Total.Cost-0.2*want) > 1e-6 {
				t.Errorf("the day's cost %v EUR, want %v", e.Total.Cost, 0.2*want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the day's energy %+v, want %v kWh from the counter", e.Total, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestModbusDeviceThroughTheAPI adds a Modbus meter to a running Vatio
// through the API, with nothing in config.yaml: it is polled at once, and
// again after a restart; deleted, it is polled no more and its readings
// stay.
func TestModbusDeviceThroughTheAPI(t *testing.T) {
	sim := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{5: sdm630()})
	dir := t.TempDir()
	v := startVatio(t, dir)
	origin := "http://" + v.http
	put := func(name, body string) int {
		req, _ := http.NewRequest("PUT", origin+"/api/v1/modbus/devices/"+name, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put("line-2", fmt.Sprintf(`{"url": "tcp://%s", "unit": 5, "profile": "sdm630", "interval": "1s"}`, sim.Addr)); code != http.StatusCreated {
		t.Fatalf("PUT line-2: %d", code)
	}
	polled := func(v *instance) {
		t.Helper()
		var m struct {
			PowerNowW *float64 `json:"power_now_w"`
			Source    string   `json:"source"`
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			m.PowerNowW = nil
			if getJSON(t, "http://"+v.http+"/api/v1/meters/line-2:L3", &m) == 200 && m.PowerNowW != nil && *m.PowerNowW == 500 && m.Source == "modbus" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("line-2:L3 not polled: %+v\n%s", m, v.logs)
			}
		}
	}
	polled(v)
	v.stop(t)

	v = startVatio(t, dir)
	origin = "http://" + v.http
	var list struct {
		Devices []struct{ Name, Source string } `json:"devices"`
	}
	if code := getJSON(t, origin+"/api/v1/modbus/devices", &list); code != 200 || len(list.Devices) != 1 || list.Devices[0].Source != "database" {
		t.Fatalf("devices after a restart: %d %+v", code, list)
	}
	started := time.Now()
	polled(v)
	t.Logf("polled %s after the restart", time.Since(started).Round(time.Millisecond))

	req, _ := http.NewRequest("DELETE", origin+"/api/v1/modbus/devices/line-2", nil)
	resp, err := apiClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE line-2: %v %v", resp, err)
	}
	resp.Body.Close()
	var st struct {
		Devices []any `json:"devices"`
	}
	if getJSON(t, origin+"/api/v1/modbus", &st); len(st.Devices) != 0 {
		t.Errorf("still polled after DELETE: %+v", st)
	}
	if code := getJSON(t, origin+"/api/v1/meters/line-2", nil); code != 200 {
		t.Errorf("line-2's meter after its device was deleted: %d, want it kept", code)
	}
}
