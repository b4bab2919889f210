package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/mqtttest"
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
		payload, err := os.ReadFile(filepath.Join("meter", "testdata", tt.file))
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
