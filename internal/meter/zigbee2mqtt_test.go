package meter

import (
	"os"
	"path/filepath"
	"testing"
)

func TestZigbee2MQTT(t *testing.T) {
	src := NewZigbee2MQTT("", DefaultLimits())
	runPayloadFileCases(t, src, "zigbee2mqtt", []payloadFileCase{
		{file: "plug.json", topic: "zigbee2mqtt/washing machine", want: []Reading{
			{Meter: "washing_machine", Time: now, PowerW: 45.6, EnergyWh: 12340, HasEnergy: true},
		}},
		{file: "plug.json", topic: "zigbee2mqtt/kitchen/dishwasher plug", want: []Reading{
			{Meter: "kitchen_dishwasher_plug", Time: now, PowerW: 45.6, EnergyWh: 12340, HasEnergy: true},
		}},
		{file: "plug.json", topic: "zigbee2mqtt/0x00158d0001a2b3c4", want: []Reading{
			{Meter: "0x00158d0001a2b3c4", Time: now, PowerW: 45.6, EnergyWh: 12340, HasEnergy: true},
		}},
		{file: "sensor_no_power.json", topic: "zigbee2mqtt/living room sensor"},
		{file: "power_null.json", topic: "zigbee2mqtt/heater plug"},
		{file: "bridge_info.json", topic: "zigbee2mqtt/bridge/info"},
		{file: "availability.json", topic: "zigbee2mqtt/heater plug/availability"},
		{file: "availability_offline.json", topic: "zigbee2mqtt/heater plug/availability"},
		{file: "availability_legacy_online.txt", topic: "zigbee2mqtt/heater plug/availability"},
		{file: "availability_legacy_offline.txt", topic: "zigbee2mqtt/heater plug/availability"},
		// A device named "plug/availability" gives no readings.
		{file: "plug.json", topic: "zigbee2mqtt/plug/availability"},
		{file: "plug.json", topic: "zigbee2mqtt/heater plug/set"},
		{file: "plug.json", topic: "zigbee2mqtt/heater plug/set/state"},
		{file: "plug.json", topic: "zigbee2mqtt/heater plug/get"},
		{file: "power_string.json", topic: "zigbee2mqtt/heater plug", reason: ReasonNotANumber},
		{file: "truncated.json", topic: "zigbee2mqtt/heater plug", reason: ReasonBadJSON},
	})
}

func TestZigbee2MQTTRejects(t *testing.T) {
	src := NewZigbee2MQTT("z2m", DefaultLimits())
	for _, tt := range []struct {
		topic, payload string
		reason         Reason
	}{
		{"z2m/plug", "", ""},
		{"z2m/plug", "45.6", ReasonBadJSON},
		{"z2m/plug", `{"power":1e400}`, ReasonNotFinite},
		{"z2m/plug", `{"power":-2e6}`, ReasonOutOfRange},
		{"z2m/plug", `{"power":5,"energy":-1}`, ReasonOutOfRange},
		{"z2m/plug", `{"power":5,"energy":"1"}`, ReasonNotANumber},
		{"z2m/???", `{"power":5}`, ReasonBadMeterID},
		{"z2m/" + string(make([]byte, 65)), `{"power":5}`, ReasonBadMeterID},
	} {
		rs, err := src.Decode(tt.topic, []byte(tt.payload), now)
		if ReasonOf(err) != tt.reason || (tt.reason == "" && (err != nil || rs != nil)) {
			t.Errorf("Decode(%q, %q) = %v, %v, want reason %q", tt.topic, tt.payload, rs, err, tt.reason)
		}
	}
	if src.Match("zigbee2mqtt/plug") || !src.Match("z2m/plug") || src.Match("z2m") {
		t.Error("Match does not follow the prefix z2m")
	}
	if src.Name() != "zigbee2mqtt" {
		t.Errorf("Name() = %q, want zigbee2mqtt", src.Name())
	}
}

func FuzzZigbee2MQTT(f *testing.F) {
	for _, name := range []string{"plug.json", "sensor_no_power.json", "bridge_info.json", "power_null.json", "power_string.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "zigbee2mqtt", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add("zigbee2mqtt/kitchen/plug", b)
	}
	for _, name := range []string{"availability.json", "availability_offline.json", "availability_legacy_online.txt", "availability_legacy_offline.txt"} {
		f.Add("zigbee2mqtt/kitchen/plug/availability", loadPayload(f, "zigbee2mqtt", name))
	}
	f.Add("zigbee2mqtt/bridge/state", []byte(`{"state":"online"}`))
	f.Add("zigbee2mqtt/x/availability/availability", []byte(`{"state":"offline","power":3}`))
	src := NewZigbee2MQTT("", DefaultLimits())
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		if !src.Match(topic) {
			if _, _, ok := src.(AvailabilitySource).Availability(topic, payload); ok {
				t.Fatalf("Availability(%q) of a topic that does not Match", topic)
			}
			return
		}
		rs, err := src.Decode(topic, payload, now)
		checkFuzzReadings(t, topic, payload, rs, err)
		checkAvailability(t, src, topic, payload, rs, err)
	})
}
