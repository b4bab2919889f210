package meter

import (
	"strings"
	"testing"
)

// checkAvailability fails unless src is an AvailabilitySource and every
// availability message it takes is on a topic it Matches, names a valid
// device, and is passed through by Decode: no readings, no error.
func checkAvailability(t *testing.T, src Source, topic string, payload []byte, readings []Reading, err error) {
	t.Helper()
	as, ok := src.(AvailabilitySource)
	if !ok {
		t.Fatalf("%s is not an AvailabilitySource", src.Name())
	}
	device, _, ok := as.Availability(topic, payload)
	if !ok {
		return
	}
	if !src.Match(topic) || !ValidID(device) || readings != nil || err != nil {
		t.Fatalf("%s: availability of %q on %q (Match %v), but Decode = %v, %v", src.Name(), device, topic, src.Match(topic), readings, err)
	}
}

func TestAvailability(t *testing.T) {
	tasmota, shelly, z2m := NewTasmota("", DefaultLimits()), NewShelly(DefaultLimits()), NewZigbee2MQTT("", DefaultLimits())
	file := func(family, name string) string { return string(loadPayload(t, family, name)) }
	tooLarge := strings.Repeat(" ", DefaultLimits().MaxPayloadBytes) + "Online"
	tests := []struct {
		src            Source
		topic, payload string
		device         string // "" when the message is not understood
		online         bool
	}{
		{tasmota, "tele/pow1/LWT", file("tasmota", "lwt_online.txt"), "pow1", true},
		{tasmota, "tele/pow1/LWT", file("tasmota", "lwt_offline.txt"), "pow1", false},
		{tasmota, "tele/pow1/LWT", " online\n", "pow1", true},
		{tasmota, "tele/pow1/LWT", "OFFLINE", "pow1", false},
		{tasmota, "tele/living room/LWT", "Online", "living_room", true},
		{tasmota, "tele/home/plug 1/LWT", "Online", "home_plug_1", true}, // a custom full topic
		{tasmota, "tele/pow1/LWT", "Online2", "", false},
		{tasmota, "tele/pow1/LWT", "", "", false},
		{tasmota, "tele/pow1/LWT", tooLarge, "", false},
		{tasmota, "tele/pow1/STATE", "Online", "", false},
		{tasmota, "tele/%%%/LWT", "Online", "", false},
		{tasmota, "stat/pow1/LWT", "Online", "", false},
		{tasmota, "tele/LWT", "Online", "", false},

		{shelly, "shellyplus1pm-abc/online", file("shelly", "gen2_online.txt"), "shellyplus1pm-abc", true},
		{shelly, "shellyplus1pm-abc/online", file("shelly", "gen2_offline.txt"), "shellyplus1pm-abc", false},
		{shelly, "home/pm mini/online", "true", "home_pm_mini", true},
		{shelly, "shellyplus1pm-abc/online", "1", "", false}, // Gen2 says true or false
		{shelly, "shellies/shelly1pm-ABC123/online", file("shelly", "gen1_online.txt"), "shelly1pm-ABC123", true},
		{shelly, "shellies/shelly1pm-ABC123/online", file("shelly", "gen1_offline.txt"), "shelly1pm-ABC123", false},
		{shelly, "shellies/shelly1pm-ABC123/online", "1", "shelly1pm-ABC123", true},
		{shelly, "shellies/shelly1pm-ABC123/online", "0\n", "shelly1pm-ABC123", false},
		{shelly, "shellies/shelly1pm-ABC123/online", "yes", "", false},
		{shelly, "shellies/shelly1pm-ABC123/online", `{"online":true}`, "", false},
		{shelly, "shellies/shelly1pm-ABC123/online", "true" + strings.Repeat(" ", DefaultLimits().MaxPayloadBytes), "", false},
		{shelly, "%%%/online", "true", "", false},
		{shelly, "/online", "true", "", false},
		{shelly, "shellyplus1pm-abc/status/switch:0", "true", "", false},
		{shelly, "shellies/shelly1pm-ABC123/relay/0/power", "1", "", false},

		{z2m, "zigbee2mqtt/heater plug/availability", file("zigbee2mqtt", "availability.json"), "heater_plug", true},
		{z2m, "zigbee2mqtt/heater plug/availability", file("zigbee2mqtt", "availability_offline.json"), "heater_plug", false},
		{z2m, "zigbee2mqtt/heater plug/availability", file("zigbee2mqtt", "availability_legacy_online.txt"), "heater_plug", true},
		{z2m, "zigbee2mqtt/heater plug/availability", file("zigbee2mqtt", "availability_legacy_offline.txt"), "heater_plug", false},
		{z2m, "zigbee2mqtt/kitchen/dishwasher plug/availability", `{"state":"online"}`, "kitchen_dishwasher_plug", true},
		{z2m, "zigbee2mqtt/0x00158d0001a2b3c4/availability", ` {"state":"offline"} `, "0x00158d0001a2b3c4", false},
		// A device's state, as a device named "x/availability" would send it.
		{z2m, "zigbee2mqtt/x/availability", `{"state":"ON","power":5}`, "", false},
		{z2m, "zigbee2mqtt/x/availability", `{"state":true}`, "", false},
		{z2m, "zigbee2mqtt/x/availability", `{"state":"online"`, "", false},
		{z2m, "zigbee2mqtt/x/availability", "Online!", "", false},
		{z2m, "zigbee2mqtt/x/availability", "", "", false},
		// Not the availability of a device that gives readings.
		{z2m, "zigbee2mqtt/x/availability/availability", `{"state":"online"}`, "", false},
		{z2m, "zigbee2mqtt/bridge/availability", `{"state":"online"}`, "", false},
		{z2m, "zigbee2mqtt/x/set/availability", `{"state":"online"}`, "", false},
		{z2m, "zigbee2mqtt/availability", `{"state":"online"}`, "", false},
		{z2m, "zigbee2mqtt/bridge/state", `{"state":"online"}`, "", false},
		{z2m, "zigbee2mqtt/???/availability", `{"state":"online"}`, "", false},
		{z2m, "z2m/plug/availability", `{"state":"online"}`, "", false},
	}
	for _, tt := range tests {
		as := tt.src.(AvailabilitySource)
		device, online, ok := as.Availability(tt.topic, []byte(tt.payload))
		if device != tt.device || online != tt.online || ok != (tt.device != "") {
			t.Errorf("%s.Availability(%q, %q) = %q, %v, %v; want %q, %v, %v",
				tt.src.Name(), tt.topic, truncate(tt.payload), device, online, ok, tt.device, tt.online, tt.device != "")
		}
		if ok && !tt.src.Match(tt.topic) {
			t.Errorf("%s.Match(%q) = false for an availability message", tt.src.Name(), tt.topic)
		}
		// Whatever their payload, availability topics pass through.
		availabilityTopic := strings.HasSuffix(tt.topic, "/LWT") || strings.HasSuffix(tt.topic, "/online") || strings.HasSuffix(tt.topic, "/availability")
		if availabilityTopic && tt.src.Match(tt.topic) {
			if rs, err := tt.src.Decode(tt.topic, []byte(tt.payload), now); rs != nil || err != nil {
				t.Errorf("%s.Decode(%q, %q) = %v, %v; want no readings and no error", tt.src.Name(), tt.topic, truncate(tt.payload), rs, err)
			}
		}
	}
}

// TestAvailabilityNamesTheMeters checks what AvailabilitySource promises:
// the device is each meter id of the device, or what it has before the
// last ':'.
func TestAvailabilityNamesTheMeters(t *testing.T) {
	tests := []struct {
		src                           Source
		family, readingTopic, file    string
		availabilityTopic, announcing string
	}{
		{NewTasmota("", DefaultLimits()), "tasmota", "tele/shelly25/SENSOR", "dual_channel.json", "tele/shelly25/LWT", "Online"},
		{NewTasmota("", DefaultLimits()), "tasmota", "tele/home/living room/SENSOR", "pow_r2.json", "tele/home/living room/LWT", "Online"},
		{NewTasmota("", DefaultLimits()), "tasmota", "tele/a:b/SENSOR", "three_phase_one_total.json", "tele/a:b/LWT", "Online"},
		{NewShelly(DefaultLimits()), "shelly", "home/pm mini/status/pm1:0", "pmmini_pm1.json", "home/pm mini/online", "true"},
		{NewShelly(DefaultLimits()), "shelly", "shellypro2pm-ec62608840a4/events/rpc", "notify_two_components.json", "shellypro2pm-ec62608840a4/online", "true"},
		{NewShelly(DefaultLimits()), "shelly", "shellies/shelly1pm-ABC123/relay/0/power", "gen1_power.txt", "shellies/shelly1pm-ABC123/online", "true"},
		{NewZigbee2MQTT("", DefaultLimits()), "zigbee2mqtt", "zigbee2mqtt/kitchen/dishwasher plug", "plug.json", "zigbee2mqtt/kitchen/dishwasher plug/availability", `{"state":"online"}`},
	}
	for _, tt := range tests {
		device, _, ok := tt.src.(AvailabilitySource).Availability(tt.availabilityTopic, []byte(tt.announcing))
		rs, err := tt.src.Decode(tt.readingTopic, loadPayload(t, tt.family, tt.file), now)
		if !ok || err != nil || len(rs) == 0 {
			t.Errorf("%s: Availability(%q) ok = %v; Decode(%q) = %v, %v", tt.src.Name(), tt.availabilityTopic, ok, tt.readingTopic, rs, err)
			continue
		}
		for _, r := range rs {
			channel, sub := strings.CutPrefix(r.Meter, device+":")
			if r.Meter != device && (!sub || strings.Contains(channel, ":")) {
				t.Errorf("%s: meter %q of %q is not device %q of %q", tt.src.Name(), r.Meter, tt.readingTopic, device, tt.availabilityTopic)
			}
		}
	}
}
