package meter

import (
	"testing"
	"time"
)

func TestShellyFiles(t *testing.T) {
	tests := []struct {
		file, topic string
		want        []Reading
	}{
		{"plus1pm_switch.json", "shellyplus1pm-abc/status/switch:0", []Reading{
			{Meter: "shellyplus1pm-abc:0", Time: now, PowerW: 25.7, EnergyWh: 913.252, HasEnergy: true}}},
		{"pmmini_pm1.json", "home/pmmini/status/pm1:0", []Reading{
			{Meter: "home_pmmini:0", Time: now, PowerW: 42.3, EnergyWh: 1234.567, HasEnergy: true}}},
		// Three-phase meter: the total only, no counter.
		{"pro3em_em.json", "shellypro3em-a1/status/em:0", []Reading{
			{Meter: "shellypro3em-a1:0", Time: now, PowerW: 790}}},
		// Counters only: no reading.
		{"pro3em_emdata.json", "shellypro3em-a1/status/emdata:0", nil},
		// Partial NotifyStatus: stamped with params.ts.
		{"notify_partial.json", "shellyplus1pm-abc/events/rpc", []Reading{
			{Meter: "shellyplus1pm-abc:0", Time: time.Unix(1795600795, 430000000), PowerW: 8.9, Stamped: true}}},
		// A partial update without power: no reading.
		{"notify_aenergy_only.json", "shellyplus1pm-abc/events/rpc", nil},
		// Several components in one update, in component order.
		{"notify_two_components.json", "shellypro2pm-ec62608840a4/events/rpc", []Reading{
			{Meter: "shellypro2pm-ec62608840a4:0", Time: time.Unix(1795600799, 10000000), PowerW: 12, EnergyWh: 55.5, HasEnergy: true, Stamped: true},
			{Meter: "shellypro2pm-ec62608840a4:1", Time: time.Unix(1795600799, 10000000), PowerW: 301.5, Stamped: true}}},
	}
	src := NewShelly(DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if !src.Match(tt.topic) {
				t.Fatalf("Match(%q) = false", tt.topic)
			}
			got, err := src.Decode(tt.topic, loadPayload(t, "shelly", tt.file), now)
			if err != nil || !sameReadings(got, tt.want) {
				t.Errorf("Decode(%q, %s) = %v, %v; want %v, nil", tt.topic, tt.file, got, err, tt.want)
			}
		})
	}
}

func TestShellyInline(t *testing.T) {
	tests := []struct {
		name, topic, payload string
		want                 []Reading
		reason               Reason
	}{
		{"gen1 power", "shellies/shelly1pm-ABC123/relay/0/power", "23.45",
			[]Reading{{Meter: "shelly1pm-ABC123:0", Time: now, PowerW: 23.45}}, ""},
		{"gen1 power newline", "shellies/shellyplug-s-1/relay/0/power", "0.00\n",
			[]Reading{{Meter: "shellyplug-s-1:0", Time: now, PowerW: 0}}, ""},
		{"gen1 energy", "shellies/shelly1pm-ABC123/relay/0/energy", "81293", nil, ""},
		{"gen1 power not a number", "shellies/s/relay/0/power", "on", nil, ReasonNotANumber},
		{"gen1 power empty", "shellies/s/relay/0/power", "", nil, ReasonEmpty},
		{"gen1 power nan", "shellies/s/relay/0/power", "NaN", nil, ReasonNotFinite},
		{"switch without metering", "shellyplus1-x/status/switch:0", `{"id":0,"source":"button","output":true,"temperature":{"tC":40.1}}`, nil, ""},
		{"switch string apower", "shellyplus1pm-abc/status/switch:0", string(loadPayload(t, "shelly", "string_apower.json")), nil, ReasonNotANumber},
		{"switch string counter", "p/status/switch:0", `{"apower":1,"aenergy":{"total":"9"}}`, nil, ReasonNotANumber},
		{"em string total", "p/status/em:0", `{"total_act_power":"790"}`, nil, ReasonNotANumber},
		{"malformed switch", "p/status/switch:0", `{"apower":`, nil, ReasonBadJSON},
		{"malformed emdata", "p/status/emdata:0", `{"total_act":`, nil, ReasonBadJSON},
		{"malformed rpc", "p/events/rpc", `[`, nil, ReasonBadJSON},
		{"other rpc method", "p/events/rpc", `{"src":"p","method":"NotifyEvent","params":{"ts":1795600795,"events":[{"component":"input:0","event":"single_push"}]}}`, nil, ""},
		{"rpc clock unset", "p/events/rpc", `{"method":"NotifyStatus","params":{"ts":12.5,"pm1:0":{"apower":3}}}`,
			[]Reading{{Meter: "p:0", Time: now, PowerW: 3}}, ""},
		{"rpc without ts", "p/events/rpc", `{"method":"NotifyStatus","params":{"em:0":{"total_act_power":-1500}}}`,
			[]Reading{{Meter: "p:0", Time: now, PowerW: -1500}}, ""},
		{"rpc string apower", "p/events/rpc", `{"method":"NotifyStatus","params":{"switch:0":{"apower":"8.9"}}}`, nil, ReasonNotANumber},
		{"rpc full status", "p/events/rpc", `{"method":"NotifyFullStatus","params":{"ts":1795600790,"switch:0":{"apower":4,"aenergy":{"total":7}},"wifi":{"rssi":-60}}}`,
			[]Reading{{Meter: "p:0", Time: time.Unix(1795600790, 0), PowerW: 4, EnergyWh: 7, HasEnergy: true, Stamped: true}}, ""},
		{"power out of range", "p/status/pm1:0", `{"apower":2e7}`, nil, ReasonOutOfRange},
		{"no usable id", "%%%/status/switch:0", `{"apower":1}`, nil, ReasonBadMeterID},
	}
	src := NewShelly(DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := src.Decode(tt.topic, []byte(tt.payload), now)
			if ReasonOf(err) != tt.reason || (err == nil) != (tt.reason == "") || !sameReadings(got, tt.want) {
				t.Errorf("Decode(%q, %q) = %v, %v; want %v, reason %q", tt.topic, tt.payload, got, err, tt.want, tt.reason)
			}
		})
	}
}

func TestShellyMatch(t *testing.T) {
	tests := []struct {
		topic string
		want  bool
	}{
		{"shellyplus1pm-abc/status/switch:0", true},
		{"home/garage/status/pm1:1", true},
		{"shellypro3em-a1/status/em:0", true},
		{"shellypro3em-a1/status/emdata:0", true},
		{"shellyplus1pm-abc/events/rpc", true},
		{"shellies/shelly1pm-ABC123/relay/0/power", true},
		{"shellies/shelly1pm-ABC123/relay/0/energy", true},
		{"shellies/shelly1pm-ABC123/relay/0", false},
		{"shellies//relay/0/power", false},
		{"shellies/x/relay/a/power", false},
		{"shellyplus1pm-abc/status/sys", false},
		{"shellyplus1pm-abc/status/switch:", false},
		{"shellyplus1pm-abc/status/switch:x", false},
		{"shellyplus1pm-abc/status/input:0", false},
		{"/status/switch:0", false},
		{"/events/rpc", false},
		{"tele/pow1/SENSOR", false},
		{"energy/consumption", false},
	}
	src := NewShelly(DefaultLimits())
	for _, tt := range tests {
		if got := src.Match(tt.topic); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.topic, got, tt.want)
		}
	}
}

func FuzzShelly(f *testing.F) {
	seeds := []struct{ topic, file string }{
		{"shellyplus1pm-abc/status/switch:0", "plus1pm_switch.json"},
		{"shellyplus1pm-abc/status/pm1:0", "pmmini_pm1.json"},
		{"shellypro3em-a1/status/em:0", "pro3em_em.json"},
		{"shellypro3em-a1/status/emdata:0", "pro3em_emdata.json"},
		{"shellyplus1pm-abc/events/rpc", "notify_partial.json"},
		{"shellyplus1pm-abc/events/rpc", "notify_aenergy_only.json"},
		{"shellypro2pm-1/events/rpc", "notify_two_components.json"},
		{"shellyplus1pm-abc/status/switch:0", "string_apower.json"},
	}
	for _, s := range seeds {
		f.Add(s.topic, loadPayload(f, "shelly", s.file))
	}
	f.Add("shellies/shelly1pm-ABC123/relay/0/power", []byte("23.45"))
	f.Add("shellies/shelly1pm-ABC123/relay/0/energy", []byte("81293"))
	src := NewShelly(DefaultLimits())
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		readings, err := src.Decode(topic, payload, now)
		if !src.Match(topic) && err == nil {
			t.Fatalf("Decode(%q) of a topic that does not Match: no error", topic)
		}
		checkSourceOutput(t, src, topic, payload, readings, err)
	})
}
