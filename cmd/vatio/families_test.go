package main

import (
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// TestDeviceFamiliesEndToEnd publishes a real payload of each device family,
// unconfigured, through the broker with a real MQTT client, and finds each
// meter with its power over the API.
func TestDeviceFamiliesEndToEnd(t *testing.T) {
	v := startVatio(t, t.TempDir())
	c := mqtttest.V3(t, v.mqtt)
	tests := []struct {
		family, topic, file, meter string
		powerW                     float64
	}{
		{"tasmota", "tele/pow-r2/SENSOR", "tasmota/pow_r2.json", "pow-r2", 120},
		{"shelly", "shellyplus1pm-a8032ab12345/status/switch:0", "shelly/plus1pm_switch.json", "shellyplus1pm-a8032ab12345:0", 25.7},
		{"emonhub", "emon/emontx4", "emonhub/emontx4.json", "emontx4:4", -310},
		{"zigbee2mqtt", "zigbee2mqtt/kitchen/plug", "zigbee2mqtt/plug.json", "kitchen_plug", 45.6},
		{"dsmr", "dsmr/json", "dsmr/telegram.json", "dsmr", 123},
	}
	for _, tt := range tests {
		payload, err := os.ReadFile(repoPath("internal/meter/testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		mqtttest.Publish3(t, c, tt.topic, 1, false, string(payload))
	}
	var ms struct {
		Meters []struct {
			ID     string  `json:"id"`
			PowerW float64 `json:"power_w"`
		} `json:"meters"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		getJSON(t, "http://"+v.http+"/api/v1/meters", &ms)
		if len(ms.Meters) >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	power := map[string]float64{}
	for _, m := range ms.Meters {
		power[m.ID] = m.PowerW
	}
	for _, tt := range tests {
		got, ok := power[tt.meter]
		if !ok || math.Abs(got-tt.powerW) > 1e-9 {
			t.Errorf("%s: meter %q power %v (found %v), want %v W; meters: %v", tt.family, tt.meter, got, ok, tt.powerW, power)
		}
	}
}

// TestConfiguredInputEndToEnd reads a gateway described only in the
// configuration file.
func TestConfiguredInputEndToEnd(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfgPath, []byte(`inputs:
  - name: plant-gateway
    topic: factory/+/telemetry
    format: json
    field: data.active_power
    unit: kW
    energy_field: data.import
    energy_unit: kWh
    meter: "line-{2}"
`), 0o600)
	v := startVatioWith(t, t.TempDir(), cfgPath)
	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "factory/press-3/telemetry", 1, false, `{"data": {"active_power": "12.5", "import": 3400.25}}`)
	var got []legacyReading
	getJSON(t, "http://"+v.http+"/api/energy?meter=line-press-3", &got)
	if len(got) != 1 || got[0].Consumption != 12.5 {
		t.Errorf("GET /api/energy?meter=line-press-3 = %+v, want 12.5 kW", got)
	}
}

// TestRegistryAvailabilityAndCountersEndToEnd drives real device payloads
// through the broker and checks what the meter registry makes of them: the
// source family, a Tasmota LWT taking a meter offline and back, a Gen1
// Shelly's power and watt-minute counter joined into one reading, and a
// Tasmota restart that sends its total as 0 before restoring it, which is
// not counted twice.
func TestRegistryAvailabilityAndCountersEndToEnd(t *testing.T) {
	v := startVatio(t, t.TempDir())
	c := mqtttest.V3(t, v.mqtt)
	file := func(name string) string {
		b, err := os.ReadFile(repoPath("internal/meter/testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	type meterInfo struct {
		ID            string  `json:"id"`
		Source        string  `json:"source"`
		Status        string  `json:"status"`
		OfflineReason string  `json:"offline_reason"`
		PowerW        float64 `json:"power_w"`
		Readings      int     `json:"readings"`
	}
	get := func(id string) meterInfo {
		t.Helper()
		var m meterInfo
		getJSON(t, "http://"+v.http+"/api/v1/meters/"+id, &m)
		return m
	}
	// waitFor polls until cond holds of meter id.
	waitFor := func(id, what string, cond func(meterInfo) bool) meterInfo {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			m := get(id)
			if cond(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("meter %s: %s never happened; last %+v", id, what, m)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Tasmota: a reading, then its LWT says Offline, then Online and a reading.
	mqtttest.Publish3(t, c, "tele/pow-r2/SENSOR", 1, false, file("tasmota/pow_r2.json"))
	m := waitFor("pow-r2", "first reading", func(m meterInfo) bool { return m.Readings == 1 })
	if m.Source != "tasmota" || m.Status != "online" {
		t.Errorf("new tasmota meter = %+v", m)
	}
	var withPF struct {
		PowerFactor *float64 `json:"power_factor"`
	}
	getJSON(t, "http://"+v.http+"/api/v1/meters/pow-r2", &withPF)
	if withPF.PowerFactor == nil || *withPF.PowerFactor != 0.92 {
		t.Errorf("power factor of the Tasmota's ENERGY.Factor: %v, want 0.92", withPF.PowerFactor)
	}
	// The device drops off the network: the broker publishes its last will
	// (Tasmota's LWT "Offline"), which never passes through OnPublish.
	var conn net.Conn
	opts := paho3.NewClientOptions().AddBroker("tcp://"+v.mqtt).SetClientID("pow-r2").SetAutoReconnect(false).
		SetWill("tele/pow-r2/LWT", "Offline", 1, true).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ paho3.ClientOptions) (net.Conn, error) {
			c, err := net.Dial("tcp", uri.Host)
			conn = c
			return c, err
		})
	device := paho3.NewClient(opts)
	if tok := device.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	conn.Close()
	waitFor("pow-r2", "offline by its last will", func(m meterInfo) bool { return m.Status == "offline" && m.OfflineReason == "announced" })
	mqtttest.Publish3(t, c, "tele/pow-r2/LWT", 1, true, file("tasmota/lwt_online.txt"))
	waitFor("pow-r2", "online by LWT", func(m meterInfo) bool { return m.Status == "online" })

	// The restart: total 0, then restored.
	mqtttest.Publish3(t, c, "tele/pow-r2/SENSOR", 1, false, file("tasmota/restart_total_zero.json"))
	mqtttest.Publish3(t, c, "tele/pow-r2/SENSOR", 1, false, file("tasmota/after_restart.json"))
	waitFor("pow-r2", "three readings", func(m meterInfo) bool { return m.Readings == 3 })
	var e struct {
		Total struct {
			EnergyKWh float64 `json:"energy_kwh"`
		} `json:"total"`
	}
	getJSON(t, "http://"+v.http+"/api/v1/meters/pow-r2/energy", &e)
	if e.Total.EnergyKWh > 0.02 {
		t.Errorf("energy across the restart = %g kWh; the 14.8 kWh total was counted again", e.Total.EnergyKWh)
	}

	// Gen1 Shelly: power, then the counter in watt-minutes.
	mqtttest.Publish3(t, c, "shellies/shelly1pm-B2C3D4/relay/0/power", 1, false, file("shelly/gen1_power.txt"))
	waitFor("shelly1pm-B2C3D4:0", "the first power", func(m meterInfo) bool { return m.Readings == 1 })
	mqtttest.Publish3(t, c, "shellies/shelly1pm-B2C3D4/relay/0/energy", 1, false, file("shelly/gen1_energy.txt"))
	m = waitFor("shelly1pm-B2C3D4:0", "the counter", func(m meterInfo) bool { return m.Readings == 2 })
	if m.Source != "shelly" || m.PowerW != 23.45 {
		t.Errorf("gen1 meter = %+v", m)
	}
	var rs struct {
		Points []struct {
			CounterKWh *float64 `json:"counter_kwh"`
		} `json:"points"`
	}
	getJSON(t, "http://"+v.http+"/api/v1/meters/shelly1pm-B2C3D4:0/readings?step=raw", &rs)
	if len(rs.Points) != 2 || rs.Points[1].CounterKWh == nil || math.Abs(*rs.Points[1].CounterKWh-81293.0/60/1000) > 1e-9 {
		t.Errorf("gen1 readings = %+v, want the counter 81293 Wmin as kWh on the second", rs.Points)
	}
	mqtttest.Publish3(t, c, "shellies/shelly1pm-B2C3D4/online", 1, true, file("shelly/gen1_offline.txt"))
	waitFor("shelly1pm-B2C3D4:0", "offline by its online topic", func(m meterInfo) bool { return m.Status == "offline" })
}
