package meter

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var now = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func testDecoder() *Decoder {
	return &Decoder{Topic: "energy/consumption", Limits: DefaultLimits()}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		topic, payload string
		want           Reading
	}{
		{"energy/consumption", "2.5", Reading{Meter: "default", Time: now, PowerW: 2500}},
		{"energy/consumption", " 2.5\n", Reading{Meter: "default", Time: now, PowerW: 2500}},
		{"energy/consumption", "-0.75", Reading{Meter: "default", Time: now, PowerW: -750}},
		{"energy/consumption", "1e3", Reading{Meter: "default", Time: now, PowerW: 1e6}},
		{"energy/consumption", "0", Reading{Meter: "default", Time: now, PowerW: 0}},
		{"energy/consumption/plant-1", ".5", Reading{Meter: "plant-1", Time: now, PowerW: 500}},
		{"energy/consumption/m1", `{"power_w": 1234.5}`, Reading{Meter: "m1", Time: now, PowerW: 1234.5}},
		{"energy/consumption/m1", `{"consumption": 1.2345}`, Reading{Meter: "m1", Time: now, PowerW: 1234.5}},
		{"energy/consumption/m1", `{"power_w": 10, "ts": "2026-11-25T09:59:00+01:00"}`,
			Reading{Meter: "m1", Time: time.Date(2026, 11, 25, 8, 59, 0, 0, time.UTC), PowerW: 10, Stamped: true}},
		{"energy/consumption/m1", `{"power_w": 10, "ts": 1764064740}`,
			Reading{Meter: "m1", Time: time.Unix(1764064740, 0).UTC(), PowerW: 10, Stamped: true}},
		{"energy/consumption/m1", `{"power_w": 10, "ts": 1764064740123}`,
			Reading{Meter: "m1", Time: time.UnixMilli(1764064740123).UTC(), PowerW: 10, Stamped: true}},
		{"energy/consumption/m1", `{"power_w": 10, "ts": 1764064740.5}`,
			Reading{Meter: "m1", Time: time.UnixMilli(1764064740500).UTC(), PowerW: 10, Stamped: true}},
		{"energy/consumption/m1", `{"power_w": 10, "ts": null, "voltage": 230}`, Reading{Meter: "m1", Time: now, PowerW: 10}},
		{"energy/consumption/m1", `{"power_w": 10, "energy_wh": 123456.5}`, Reading{Meter: "m1", Time: now, PowerW: 10, EnergyWh: 123456.5, HasEnergy: true}},
		{"energy/consumption/m1", `{"power_w": 10, "ts": "2026-11-25T10:04:59Z"}`,
			Reading{Meter: "m1", Time: now.Add(4*time.Minute + 59*time.Second), PowerW: 10, Stamped: true}},
	}
	d := testDecoder()
	for _, tt := range tests {
		t.Run(tt.topic+" "+tt.payload, func(t *testing.T) {
			got, err := d.Decode(tt.topic, []byte(tt.payload), now)
			if err != nil {
				t.Fatalf("Decode(%q, %q) error: %v", tt.topic, tt.payload, err)
			}
			if got.Meter != tt.want.Meter || !got.Time.Equal(tt.want.Time) || math.Abs(got.PowerW-tt.want.PowerW) > 1e-9 || got.Stamped != tt.want.Stamped ||
				got.HasEnergy != tt.want.HasEnergy || got.EnergyWh != tt.want.EnergyWh {
				t.Errorf("Decode(%q, %q) = %+v, want %+v", tt.topic, tt.payload, got, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, topic, payload string
		want                 Reason
	}{
		{"text", "energy/consumption", "hello", ReasonNotANumber},
		{"decimal comma", "energy/consumption", "2,5", ReasonNotANumber},
		{"hex float", "energy/consumption", "0x1p-2", ReasonNotANumber},
		{"underscores", "energy/consumption", "1_000", ReasonNotANumber},
		{"two numbers", "energy/consumption", "1 2", ReasonNotANumber},
		{"NaN", "energy/consumption", "NaN", ReasonNotFinite},
		{"Inf", "energy/consumption", "+Inf", ReasonNotFinite},
		{"infinity", "energy/consumption", "-infinity", ReasonNotFinite},
		{"1e400", "energy/consumption", "1e400", ReasonNotFinite},
		{"empty", "energy/consumption", "", ReasonEmpty},
		{"blank", "energy/consumption", " \n\t", ReasonEmpty},
		{"1 MB", "energy/consumption", strings.Repeat("1", 1<<20), ReasonPayloadTooLarge},
		{"above max", "energy/consumption", "10000.001", ReasonOutOfRange},
		{"below min", "energy/consumption", "-1000.001", ReasonOutOfRange},
		{"bad JSON", "energy/consumption/m1", `{"power_w": 1`, ReasonBadJSON},
		{"JSON array", "energy/consumption/m1", `[1]`, ReasonNotANumber},
		{"JSON string value", "energy/consumption/m1", `{"power_w": "12"}`, ReasonNotANumber},
		{"JSON 1e400", "energy/consumption/m1", `{"power_w": 1e400}`, ReasonNotFinite},
		{"JSON no value", "energy/consumption/m1", `{"voltage": 230}`, ReasonMissingValue},
		{"counter only", "energy/consumption/m1", `{"energy_wh": 5}`, ReasonMissingValue},
		{"negative counter", "energy/consumption/m1", `{"power_w": 1, "energy_wh": -5}`, ReasonOutOfRange},
		{"counter as text", "energy/consumption/m1", `{"power_w": 1, "energy_wh": "5"}`, ReasonNotANumber},
		{"JSON both", "energy/consumption/m1", `{"power_w": 1, "consumption": 1}`, ReasonAmbiguous},
		{"future ts", "energy/consumption/m1", `{"power_w": 1, "ts": "2026-11-25T10:05:01Z"}`, ReasonFuture},
		{"future unix ts", "energy/consumption/m1", fmt.Sprintf(`{"power_w": 1, "ts": %d}`, now.Add(time.Hour).Unix()), ReasonFuture},
		{"ts without offset", "energy/consumption/m1", `{"power_w": 1, "ts": "2026-11-25T10:00:00"}`, ReasonBadTimestamp},
		{"ts negative", "energy/consumption/m1", `{"power_w": 1, "ts": -5}`, ReasonBadTimestamp},
		{"ts object", "energy/consumption/m1", `{"power_w": 1, "ts": {}}`, ReasonBadTimestamp},
		{"clock unset", "energy/consumption/m1", `{"power_w": 1, "ts": "1970-01-01T00:00:10Z"}`, ReasonTooOld},
		{"deep topic", "energy/consumption/a/b", "1", ReasonBadTopic},
		{"bad id", "energy/consumption/a b", "1", ReasonBadMeterID},
		{"empty id", "energy/consumption/", "1", ReasonBadMeterID},
		{"long id", "energy/consumption/" + strings.Repeat("a", 65), "1", ReasonBadMeterID},
	}
	d := testDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decode(tt.topic, []byte(tt.payload), now)
			if err == nil {
				t.Fatalf("Decode(%q, %q) = %+v, want rejection %s", tt.topic, truncate(tt.payload), got, tt.want)
			}
			if r := ReasonOf(err); r != tt.want {
				t.Errorf("Decode(%q, %q) rejected for %q (%v), want %q", tt.topic, truncate(tt.payload), r, err, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	d := testDecoder()
	for topic, want := range map[string]bool{
		"energy/consumption":    true,
		"energy/consumption/m1": true,
		"energy/consumption/":   true,
		"energy/consumptionX":   false,
		"energy":                false,
		"tele/plug/SENSOR":      false,
	} {
		if got := d.Match(topic); got != want {
			t.Errorf("Match(%q) = %v, want %v", topic, got, want)
		}
	}
}

// FuzzDecode checks that any topic and payload either decode to a reading
// that satisfies every limit, or are rejected with a known reason; and that
// an accepted reading survives a round trip through the JSON form.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"2.5", "-1e3", `{"power_w": 12.5}`, `{"consumption": 1, "ts": 1764064740}`,
		`{"power_w": 1, "ts": "2026-11-25T10:00:00.123+01:00"}`, "NaN", "1e400", `{"power_w": "1"}`, "2,5", ""} {
		f.Add("energy/consumption/m1", []byte(s))
	}
	f.Add("energy/consumption", []byte("3"))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		d := testDecoder()
		if !d.Match(topic) {
			return
		}
		r, err := d.Decode(topic, payload, now)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("Decode(%q, %q) error without a reason: %v", topic, payload, err)
			}
			return
		}
		if !ValidID(r.Meter) || math.IsNaN(r.PowerW) || math.IsInf(r.PowerW, 0) || (r.HasEnergy && !(r.EnergyWh >= 0 && r.EnergyWh <= MaxEnergyWh)) ||
			r.PowerW < d.Limits.MinPowerW || r.PowerW > d.Limits.MaxPowerW ||
			r.Time.After(now.Add(d.Limits.MaxFuture)) || r.Time.Before(Oldest) {
			t.Fatalf("Decode(%q, %q) = %+v breaks the limits", topic, payload, r)
		}
		again, err := d.Decode(topic, fmt.Appendf(nil, `{"power_w": %v, "ts": %q}`, r.PowerW, r.Time.Format(time.RFC3339Nano)), now)
		if err != nil || again.PowerW != r.PowerW || !again.Time.Equal(r.Time) || again.Meter != r.Meter {
			t.Fatalf("round trip of %+v gave %+v, %v", r, again, err)
		}
	})
}

// TestKilowattsAreExact checks that kW values convert to the float64 nearest
// the decimal number of watts, not one off in the last place.
func TestKilowattsAreExact(t *testing.T) {
	d := testDecoder()
	for _, tt := range []struct {
		payload string
		want    float64
	}{
		{"1.2345", 1234.5},
		{"0.1", 100},
		{"2.675", 2675},
		{"-0.0003", -0.3},
		{"1e-3", 1},
		{`{"consumption": 1.2345}`, 1234.5},
		{`{"consumption": 4.1237}`, 4123.7},
	} {
		r, err := d.Decode("energy/consumption", []byte(tt.payload), now)
		if err != nil || r.PowerW != tt.want {
			t.Errorf("Decode(%q) = %v W (%v), want exactly %v", tt.payload, r.PowerW, err, tt.want)
		}
	}
}

// TestTruncateKeepsCharacters: a value quoted in an error is cut at a
// character's start, never inside one.
func TestTruncateKeepsCharacters(t *testing.T) {
	s := "a" + strings.Repeat("é", 40)
	got := truncate(s)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") || len(got) > 64+len("…") {
		t.Errorf("truncate = %q", got)
	}
}
