package meter

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loadPayload returns the payload of testdata/<dir>/<name>.
func loadPayload(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameReadings reports whether got and want hold the same readings, in
// order, comparing times as instants.
func sameReadings(got, want []Reading) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Meter != w.Meter || !g.Time.Equal(w.Time) || g.PowerW != w.PowerW ||
			g.EnergyWh != w.EnergyWh || g.HasEnergy != w.HasEnergy || g.Stamped != w.Stamped ||
			g.HasPF != w.HasPF || math.Abs(g.PowerFactor-w.PowerFactor) > 1e-9 {
			return false
		}
	}
	return true
}

func TestTasmotaFiles(t *testing.T) {
	tests := []struct {
		file, topic string
		want        []Reading
	}{
		// Time without an offset: stamped on receipt.
		{"pow_r2.json", "tele/pow1/SENSOR", []Reading{
			{Meter: "pow1", Time: now, PowerW: 120, EnergyWh: 14834, HasEnergy: true, PowerFactor: 0.92, HasPF: true}}},
		// Clock unset (1970): stamped on receipt.
		{"clock_unset.json", "tele/plug-2/SENSOR", []Reading{
			{Meter: "plug-2", Time: now, PowerW: 45.5, EnergyWh: 12, HasEnergy: true, PowerFactor: 0.87, HasPF: true}}},
		// SetOption52: the device time carries an offset and is sane.
		{"setoption52.json", "tele/boiler/SENSOR", []Reading{
			{Meter: "boiler", Time: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), PowerW: 1530, EnergyWh: 812407, HasEnergy: true, Stamped: true, PowerFactor: 0.98, HasPF: true}}},
		// Shelly 2.5 running Tasmota: one meter a channel, one counter a channel.
		{"dual_channel.json", "tele/shelly25/SENSOR", []Reading{
			{Meter: "shelly25:1", Time: now, PowerW: 120, EnergyWh: 1234, HasEnergy: true, PowerFactor: 0.92, HasPF: true},
			{Meter: "shelly25:2", Time: now, PowerW: 0, EnergyWh: 500, HasEnergy: true, PowerFactor: 0, HasPF: true}}},
		// Three phases, one Total for the device: no counter per channel.
		{"three_phase_one_total.json", "tele/pzem/SENSOR", []Reading{
			{Meter: "pzem:1", Time: now, PowerW: 2210, PowerFactor: 0.98, HasPF: true},
			{Meter: "pzem:2", Time: now, PowerW: 840, PowerFactor: 0.93, HasPF: true},
			{Meter: "pzem:3", Time: now, PowerW: 1320, PowerFactor: 0.98, HasPF: true}}},
		{"temperature_only.json", "tele/attic/SENSOR", nil},
		// Availability: no reading.
		{"lwt_online.txt", "tele/pow1/LWT", nil},
		{"lwt_offline.txt", "tele/shelly25/LWT", nil},
	}
	src := NewTasmota("", DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if !src.Match(tt.topic) {
				t.Fatalf("Match(%q) = false", tt.topic)
			}
			got, err := src.Decode(tt.topic, loadPayload(t, "tasmota", tt.file), now)
			if err != nil || !sameReadings(got, tt.want) {
				t.Errorf("Decode(%q, %s) = %v, %v; want %v, nil", tt.topic, tt.file, got, err, tt.want)
			}
		})
	}
}

func TestTasmotaInline(t *testing.T) {
	tests := []struct {
		name, topic, payload string
		want                 []Reading
		reason               Reason
	}{
		{"lwt online", "tele/pow1/LWT", "Online", nil, ""},
		{"lwt offline", "tele/pow1/LWT", "Offline", nil, ""},
		{"state", "tele/pow1/STATE", `{"Time":"2026-11-25T10:00:00","Uptime":"0T01:00:00","POWER":"ON"}`, nil, ""},
		{"offset but clock unset", "tele/p/SENSOR", `{"Time":"1970-01-01T01:02:13+01:00","ENERGY":{"Power":5}}`,
			[]Reading{{Meter: "p", Time: now, PowerW: 5}}, ""},
		{"offset in the future", "tele/p/SENSOR", `{"Time":"2026-11-25T12:00:00+01:00","ENERGY":{"Power":5}}`,
			[]Reading{{Meter: "p", Time: now, PowerW: 5}}, ""},
		{"energy without power", "tele/p/SENSOR", `{"ENERGY":{"Total":1.5}}`, nil, ""},
		{"negative export", "tele/p/SENSOR", `{"ENERGY":{"Power":-350.5,"Total":2}}`,
			[]Reading{{Meter: "p", Time: now, PowerW: -350.5, EnergyWh: 2000, HasEnergy: true}}, ""},
		{"spaced json", "tele/p/SENSOR", "{ \"ENERGY\" : { \"Power\" : [ 7 , 8 ] ,\n \"Total\" : [ 0.001 , 0.002 ] } }",
			[]Reading{{Meter: "p:1", Time: now, PowerW: 7, EnergyWh: 1, HasEnergy: true}, {Meter: "p:2", Time: now, PowerW: 8, EnergyWh: 2, HasEnergy: true}}, ""},
		{"odd device name", "tele/living room/SENSOR", `{"ENERGY":{"Power":1}}`,
			[]Reading{{Meter: "living_room", Time: now, PowerW: 1}}, ""},
		{"malformed json", "tele/p/SENSOR", `{"ENERGY":{"Power":1`, nil, ReasonBadJSON},
		{"energy not an object", "tele/p/SENSOR", `{"ENERGY":12}`, nil, ReasonBadJSON},
		{"string power", "tele/p/SENSOR", string(loadPayload(t, "tasmota", "string_power.json")), nil, ReasonNotANumber},
		{"string in array", "tele/p/SENSOR", `{"ENERGY":{"Power":[1,"2"]}}`, nil, ReasonNotANumber},
		{"string total", "tele/p/SENSOR", `{"ENERGY":{"Power":1,"Total":"3"}}`, nil, ReasonNotANumber},
		{"power out of range", "tele/p/SENSOR", `{"ENERGY":{"Power":1e9}}`, nil, ReasonOutOfRange},
		{"negative counter", "tele/p/SENSOR", `{"ENERGY":{"Power":1,"Total":-1}}`, nil, ReasonOutOfRange},
		{"no usable id", "tele/%%%/SENSOR", `{"ENERGY":{"Power":1}}`, nil, ReasonBadMeterID},
		{"too large", "tele/p/SENSOR", `{"ENERGY":{"Power":1},"X":"` + strings.Repeat("x", DefaultLimits().MaxPayloadBytes) + `"}`, nil, ReasonPayloadTooLarge},
	}
	src := NewTasmota("tele", DefaultLimits())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := src.Decode(tt.topic, []byte(tt.payload), now)
			if ReasonOf(err) != tt.reason || (err == nil) != (tt.reason == "") || !sameReadings(got, tt.want) {
				t.Errorf("Decode(%q, %q) = %v, %v; want %v, reason %q", tt.topic, truncate(tt.payload), got, err, tt.want, tt.reason)
			}
		})
	}
}

func TestTasmotaMatch(t *testing.T) {
	tests := []struct {
		prefix, topic string
		want          bool
	}{
		{"", "tele/pow1/SENSOR", true},
		{"", "tele/pow1/LWT", true},
		{"", "tele/SENSOR", false},
		{"", "tele//SENSOR", false},
		{"", "stat/pow1/RESULT", false},
		{"", "telemetry/pow1/SENSOR", false},
		{"", "energy/consumption", false},
		{"home/tele/", "home/tele/pow1/SENSOR", true},
		{"home/tele", "tele/pow1/SENSOR", false},
	}
	for _, tt := range tests {
		if got := NewTasmota(tt.prefix, DefaultLimits()).Match(tt.topic); got != tt.want {
			t.Errorf("NewTasmota(%q).Match(%q) = %v, want %v", tt.prefix, tt.topic, got, tt.want)
		}
	}
}

// checkSourceOutput fails unless every reading is valid at now with a valid
// meter id and every error is a *RejectError.
func checkSourceOutput(t *testing.T, src Source, topic string, payload []byte, readings []Reading, err error) {
	t.Helper()
	if err != nil {
		if ReasonOf(err) == "" {
			t.Fatalf("%s.Decode(%q, %q): error %v is not a *RejectError", src.Name(), topic, payload, err)
		}
		if readings != nil {
			t.Fatalf("%s.Decode(%q, %q): readings %v with error %v", src.Name(), topic, payload, readings, err)
		}
	}
	d := &Decoder{Limits: DefaultLimits()}
	for _, r := range readings {
		if !ValidID(r.Meter) {
			t.Fatalf("%s.Decode(%q, %q): meter id %q is not valid", src.Name(), topic, payload, r.Meter)
		}
		if err := d.Validate(r, now); err != nil {
			t.Fatalf("%s.Decode(%q, %q): reading %v fails Validate: %v", src.Name(), topic, payload, r, err)
		}
	}
}

func FuzzTasmota(f *testing.F) {
	for _, name := range []string{"pow_r2.json", "clock_unset.json", "setoption52.json", "dual_channel.json",
		"three_phase_one_total.json", "temperature_only.json", "string_power.json"} {
		f.Add("tele/pow1/SENSOR", loadPayload(f, "tasmota", name))
	}
	for _, name := range []string{"lwt_online.txt", "lwt_offline.txt"} {
		f.Add("tele/pow1/LWT", loadPayload(f, "tasmota", name))
	}
	f.Add("tele/living room/LWT", []byte(" offline\n"))
	f.Add("tele/home/plug:1/LWT", []byte("Online"))
	f.Add("tele/a b/SENSOR", []byte(`{"Time":"2026-11-25T10:00:00+01:00","ENERGY":{"Power":[1,2],"Total":[3,4]}}`))
	src := NewTasmota("", DefaultLimits())
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		readings, err := src.Decode(topic, payload, now)
		if !src.Match(topic) && err == nil {
			t.Fatalf("Decode(%q) of a topic that does not Match: no error", topic)
		}
		checkSourceOutput(t, src, topic, payload, readings, err)
		checkAvailability(t, src, topic, payload, readings, err)
	})
}
