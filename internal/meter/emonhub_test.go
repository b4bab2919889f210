package meter

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// payloadFileCase is one payload of testdata/<family>/ published on topic:
// the readings it must give, or the reason it must be rejected for.
type payloadFileCase struct {
	file, topic string
	want        []Reading
	reason      Reason
}

func runPayloadFileCases(t *testing.T, src Source, family string, tests []payloadFileCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.file+"@"+tt.topic, func(t *testing.T) {
			payload, err := os.ReadFile(filepath.Join("testdata", family, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !src.Match(tt.topic) {
				t.Fatalf("Match(%q) = false, want true", tt.topic)
			}
			got, err := src.Decode(tt.topic, payload, now)
			if ReasonOf(err) != tt.reason || (err != nil && tt.reason == "") {
				t.Fatalf("Decode(%q, %q) error = %v, want reason %q", tt.topic, payload, err, tt.reason)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%q, %q) =\n%+v\nwant\n%+v", tt.topic, payload, got, tt.want)
			}
		})
	}
}

// checkFuzzReadings fails unless err is a *RejectError or every reading
// has a valid meter id and passes Validate.
func checkFuzzReadings(t *testing.T, topic string, payload []byte, rs []Reading, err error) {
	t.Helper()
	if err != nil {
		if ReasonOf(err) == "" || rs != nil {
			t.Fatalf("Decode(%q, %q) = %v, %v: want a *RejectError and no readings", topic, payload, rs, err)
		}
		return
	}
	d := Decoder{Limits: DefaultLimits()}
	for _, r := range rs {
		if !ValidID(r.Meter) {
			t.Fatalf("Decode(%q, %q) gave meter id %q", topic, payload, r.Meter)
		}
		if err := d.Validate(r, now); err != nil {
			t.Fatalf("Decode(%q, %q) gave %+v, which fails Validate: %v", topic, payload, r, err)
		}
	}
}

func TestEmonhub(t *testing.T) {
	src := NewEmonhub("", DefaultLimits())
	stamp := time.Date(2026, 11, 25, 9, 59, 50, 0, time.UTC)
	runPayloadFileCases(t, src, "emonhub", []payloadFileCase{
		{file: "emontx4.json", topic: "emon/emontx4_17", want: []Reading{
			{Meter: "emontx4_17:1", Time: stamp, PowerW: 120, EnergyWh: 3400, HasEnergy: true, Stamped: true},
			{Meter: "emontx4_17:2", Time: stamp, PowerW: 0, EnergyWh: 12, HasEnergy: true, Stamped: true},
			{Meter: "emontx4_17:3", Time: stamp, PowerW: 45.5, EnergyWh: 890, HasEnergy: true, Stamped: true},
			{Meter: "emontx4_17:4", Time: stamp, PowerW: -310, EnergyWh: 0, HasEnergy: true, Stamped: true},
			{Meter: "emontx4_17:5", Time: stamp, PowerW: 0, EnergyWh: 0, HasEnergy: true, Stamped: true},
			{Meter: "emontx4_17:6", Time: stamp, PowerW: 0, EnergyWh: 0, HasEnergy: true, Stamped: true},
		}},
		{file: "emontx3.json", topic: "emon/emontx3", want: []Reading{
			{Meter: "emontx3:1", Time: now, PowerW: 250},
			{Meter: "emontx3:2", Time: now, PowerW: 0},
			{Meter: "emontx3:3", Time: now, PowerW: 12},
			{Meter: "emontx3:4", Time: now, PowerW: 0},
		}},
		{file: "energy_only.json", topic: "emon/emonpi"},
		{file: "P1.txt", topic: "emon/emontx4/P1", want: []Reading{{Meter: "emontx4:1", Time: now, PowerW: 120.5}}},
		{file: "P1.txt", topic: "emon/emonpi/power2", want: []Reading{{Meter: "emonpi:2", Time: now, PowerW: 120.5}}},
		{file: "E1.txt", topic: "emon/emontx4/E1"},
		{file: "P1.txt", topic: "emon/emontx4/vrms"},
		{file: "P1.txt", topic: "emon/emontx4/P1/extra"},
		{file: "P2_nan.txt", topic: "emon/emontx4/P2", reason: ReasonNotFinite},
		{file: "emontx3.json", topic: "emon/emontx3/P1", reason: ReasonNotANumber},
		{file: "P1.txt", topic: "emon/emontx4", reason: ReasonBadJSON},
		{file: "ambiguous.json", topic: "emon/emontx4", reason: ReasonAmbiguous},
	})
}

func TestEmonhubRejects(t *testing.T) {
	src := NewEmonhub("emon", DefaultLimits())
	for _, tt := range []struct {
		topic, payload string
		reason         Reason
	}{
		{"emon/tx/P1", "", ReasonEmpty},
		{"emon/tx/P1", "1,5", ReasonNotANumber},
		{"emon/tx/P1", "2e7", ReasonOutOfRange},
		{"emon/tx", `{"P1":"12"}`, ReasonNotANumber},
		{"emon/tx", `{"P1":12,"E1":-4}`, ReasonOutOfRange},
		{"emon/tx", `{"P1":12,"time":4102444800}`, ReasonFuture},
		{"emon/tx", `{"P1":12`, ReasonBadJSON},
		{"emon/tx", `[1]`, ReasonBadJSON},
		{"emon/___/P1", "1", ReasonBadMeterID},
	} {
		_, err := src.Decode(tt.topic, []byte(tt.payload), now)
		if ReasonOf(err) != tt.reason {
			t.Errorf("Decode(%q, %q) = %v, want reason %q", tt.topic, tt.payload, err, tt.reason)
		}
	}
}

func TestEmonKey(t *testing.T) {
	for _, tt := range []struct {
		key     string
		kind    byte
		channel string
	}{
		{"P1", 'P', "1"}, {"p12", 'P', "12"}, {"power3", 'P', "3"}, {"E6", 'E', "6"}, {"energy01", 'E', "1"},
		{"pulse", 0, ""}, {"P0", 0, ""}, {"P", 0, ""}, {"P1000", 0, ""}, {"Vrms", 0, ""}, {"E1a", 0, ""},
	} {
		kind, channel := emonKey(tt.key)
		if kind != tt.kind || channel != tt.channel {
			t.Errorf("emonKey(%q) = %q, %q, want %q, %q", tt.key, kind, channel, tt.kind, tt.channel)
		}
	}
}

func TestEmonhubMatch(t *testing.T) {
	src := NewEmonhub("", DefaultLimits())
	for topic, want := range map[string]bool{"emon/tx": true, "emon/tx/P1": true, "emon": false, "emonx/tx": false, "energy/consumption": false} {
		if got := src.Match(topic); got != want {
			t.Errorf("Match(%q) = %v, want %v", topic, got, want)
		}
	}
	if src.Name() != "emonhub" {
		t.Errorf("Name() = %q, want emonhub", src.Name())
	}
}

func FuzzEmonhub(f *testing.F) {
	for _, name := range []string{"emontx4.json", "emontx3.json", "energy_only.json", "P1.txt", "ambiguous.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "emonhub", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add("emon/emontx4", b)
		f.Add("emon/emontx4/P1", b)
	}
	f.Add("emon/a b/power2", []byte("-1e3"))
	src := NewEmonhub("", DefaultLimits())
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		if !src.Match(topic) {
			return
		}
		rs, err := src.Decode(topic, payload, now)
		checkFuzzReadings(t, topic, payload, rs, err)
	})
}
