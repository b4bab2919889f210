package meter

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestGenericInputs(t *testing.T) {
	plain := NewGeneric(Input{Name: "gateway", Topic: "factory/+/power", Format: "plain", Unit: "kW", Meter: "line-{2}"}, DefaultLimits())
	nested := NewGeneric(Input{Name: "modbus", Topic: "plant/#", Format: "json", Field: "data.p", Unit: "W",
		EnergyField: "data.e", EnergyUnit: "kWh", Meter: "{2}", Scale: 0.1}, DefaultLimits())
	tests := []struct {
		src            Source
		topic, payload string
		meter          string
		powerW         float64
		energyWh       float64
		reason         Reason
	}{
		{plain, "factory/press-3/power", "12.5", "line-press-3", 12500, 0, ""},
		{plain, "factory/press-3/power", "lots", "", 0, 0, ReasonNotANumber},
		{nested, "plant/comp_1/telemetry", `{"data": {"p": 15000, "e": 12.5}}`, "comp_1", 1500, 1250, ""},
		{nested, "plant/comp_1/telemetry", `{"data": {"p": "15000"}}`, "comp_1", 1500, 0, ""},
		{nested, "plant/comp_1/telemetry", `{"data": {"temp": 40}}`, "", 0, 0, ""}, // no power: no reading
		{nested, "plant/comp_1/telemetry", `{"data": {"p": {"x": 1}}}`, "", 0, 0, ReasonNotANumber},
		{nested, "plant/comp_1/telemetry", `{"data": `, "", 0, 0, ReasonBadJSON},
		{nested, "plant", `{"data": {"p": 1}}`, "", 0, 0, ReasonBadMeterID}, // {2} is missing
	}
	for _, tt := range tests {
		rs, err := tt.src.Decode(tt.topic, []byte(tt.payload), now)
		if tt.reason != "" {
			if ReasonOf(err) != tt.reason {
				t.Errorf("%s %q: %v, want rejection %s", tt.topic, tt.payload, err, tt.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tt.topic, tt.payload, err)
			continue
		}
		if tt.meter == "" {
			if len(rs) != 0 {
				t.Errorf("%s %q = %+v, want no reading", tt.topic, tt.payload, rs)
			}
			continue
		}
		if len(rs) != 1 || rs[0].Meter != tt.meter || rs[0].PowerW != tt.powerW || rs[0].EnergyWh != tt.energyWh {
			t.Errorf("%s %q = %+v, want meter %s %v W %v Wh", tt.topic, tt.payload, rs, tt.meter, tt.powerW, tt.energyWh)
		}
	}
	if plain.Match("factory/press-3/power/extra") || !plain.Match("factory/x/power") || nested.Match("plantx/a") {
		t.Error("topic filters match wrongly")
	}
}

func TestInputCheck(t *testing.T) {
	for _, good := range []Input{
		{Name: "g", Topic: "a/+/b", Format: "json", Field: "p", Unit: "W", Meter: "{2}"},
		{Name: "g", Topic: "a/+/b", Format: "json", Field: "p", Unit: "kW", EnergyField: "e", EnergyUnit: "kWh", Meter: "{2}"},
		{Name: "g", Topic: "a/+/b", Format: "json", EnergyField: "e", EnergyUnit: "Wh", Meter: "{2}"}, // counter-only
	} {
		if err := good.Check(); err != nil {
			t.Errorf("Check(%+v) = %v", good, err)
		}
	}
	for _, tt := range []struct {
		field string
		in    Input
	}{
		{"name", Input{Topic: "a", Format: "plain", Unit: "W", Meter: "{1}"}},
		{"topic", Input{Name: "g", Topic: "a/#/b", Format: "plain", Unit: "W", Meter: "{1}"}},
		{"format", Input{Name: "g", Topic: "a", Format: "xml", Unit: "W", Meter: "{1}"}},
		{"field", Input{Name: "g", Topic: "a", Format: "json", Unit: "W", Meter: "{1}"}},
		{"unit", Input{Name: "g", Topic: "a", Format: "plain", Unit: "MW", Meter: "{1}"}},
		{"unit", Input{Name: "g", Topic: "a", Format: "json", Field: "p", Meter: "{1}"}},
		{"unit", Input{Name: "g", Topic: "a", Format: "json", EnergyField: "e", EnergyUnit: "Wh", Unit: "W", Meter: "{1}"}},
		{"energy_unit", Input{Name: "g", Topic: "a", Format: "json", Field: "p", EnergyField: "e", EnergyUnit: "J", Unit: "W", Meter: "{1}"}},
		{"energy_unit", Input{Name: "g", Topic: "a", Format: "json", EnergyField: "e", Meter: "{1}"}},
		{"energy_field", Input{Name: "g", Topic: "a", Format: "plain", EnergyField: "e", EnergyUnit: "Wh", Unit: "W", Meter: "{1}"}},
		{"meter", Input{Name: "g", Topic: "a", Format: "plain", Unit: "W", Meter: "{0}"}},
		{"meter", Input{Name: "g", Topic: "a", Format: "json", EnergyField: "e", EnergyUnit: "Wh"}},
	} {
		if err := tt.in.Check(); err == nil || !strings.HasPrefix(err.Error(), tt.field+":") {
			t.Errorf("Check(%+v) = %v, want an error on %s", tt.in, err, tt.field)
		}
	}
}

func TestGenericCounterOnly(t *testing.T) {
	in := Input{Name: "meters", Topic: "site/+/counter", Format: "json", EnergyField: "total.kwh", EnergyUnit: "kWh", Meter: "{2}"}
	steps := []struct {
		after          time.Duration
		topic, payload string
		want           []Reading
		reason         Reason
	}{
		{0, "site/a/counter", `{"total":{"kwh":100}}`, nil, ""}, // a's first counter
		{time.Hour, "site/a/counter", `{"total":{"kwh":101.5}}`,
			[]Reading{{Meter: "a", Time: now.Add(time.Hour), PowerW: 1500, EnergyWh: 101500, HasEnergy: true}}, ""},
		{75 * time.Minute, "site/a/counter", `{"total":{"kwh":"101.75"}}`,
			[]Reading{{Meter: "a", Time: now.Add(75 * time.Minute), PowerW: 1000, EnergyWh: 101750, HasEnergy: true}}, ""},
		{75 * time.Minute, "site/a/counter", `{"total":{"kwh":101.8}}`, nil, ""}, // no time has passed
		{80 * time.Minute, "site/a/counter", `{"total":{"kwh":101.8}}`,
			[]Reading{{Meter: "a", Time: now.Add(80 * time.Minute), PowerW: 0, EnergyWh: 101800, HasEnergy: true}}, ""},
		{90 * time.Minute, "site/a/counter", `{"total":{"kwh":1}}`, nil, ""}, // a reset
		{105 * time.Minute, "site/a/counter", `{"total":{"kwh":1.25}}`,
			[]Reading{{Meter: "a", Time: now.Add(105 * time.Minute), PowerW: 1000, EnergyWh: 1250, HasEnergy: true}}, ""},
		{2 * time.Hour, "site/b/counter", `{"total":{"kwh":5}}`, nil, ""}, // b's first counter
		{2 * time.Hour, "site/a/counter", `{"temperature":21}`, nil, ""},  // no counter
		{2 * time.Hour, "site/a/counter", `{"total":{"kwh":"x"}}`, nil, ReasonNotANumber},
		{2 * time.Hour, "site/a/counter", `{"total":{"kwh":"NaN"}}`, nil, ReasonNotFinite},
		{2 * time.Hour, "site/a/counter", `{"total":{"kwh":-1}}`, nil, ReasonOutOfRange},
		{2 * time.Hour, "site/a/counter", `{"total":`, nil, ReasonBadJSON},
		// Rejected counters are not remembered: 250 Wh in 15 minutes.
		{2 * time.Hour, "site/a/counter", `{"total":{"kwh":1.5}}`,
			[]Reading{{Meter: "a", Time: now.Add(2 * time.Hour), PowerW: 1000, EnergyWh: 1500, HasEnergy: true}}, ""},
		// 1 GWh in a second is no power a meter measures.
		{2*time.Hour + time.Second, "site/a/counter", `{"total":{"kwh":1000000}}`, nil, ReasonOutOfRange},
		{2 * time.Hour, "site/b b/counter", `{"total":{"kwh":5}}`, nil, ""},
		{3 * time.Hour, "site/b b/counter", `{"total":{"kwh":5.5}}`,
			[]Reading{{Meter: "b_b", Time: now.Add(3 * time.Hour), PowerW: 500, EnergyWh: 5500, HasEnergy: true}}, ""},
		{3 * time.Hour, "site/%%%/counter", `{"total":{"kwh":5}}`, nil, ReasonBadMeterID},
	}
	src := NewGeneric(in, DefaultLimits())
	for i, st := range steps {
		got, err := src.Decode(st.topic, []byte(st.payload), now.Add(st.after))
		if ReasonOf(err) != st.reason || (err == nil) != (st.reason == "") || !sameReadings(got, st.want) {
			t.Errorf("step %d: Decode(%q, %q) = %v, %v; want %v, reason %q", i, st.topic, st.payload, got, err, st.want, st.reason)
		}
	}
}

// TestGenericCounterOnlyIsBounded checks that a counter-only input
// remembers at most 10000 meters: a new meter then gives no reading.
func TestGenericCounterOnlyIsBounded(t *testing.T) {
	src := NewGeneric(Input{Name: "m", Topic: "m/+", Format: "json", EnergyField: "e", EnergyUnit: "Wh", Meter: "{2}"}, DefaultLimits())
	for i := range maxRemembered {
		if _, err := src.Decode(fmt.Sprintf("m/%d", i), []byte(`{"e":1}`), now); err != nil {
			t.Fatal(err)
		}
	}
	for _, after := range []time.Duration{time.Minute, 2 * time.Minute} {
		if rs, err := src.Decode("m/new", []byte(`{"e":2}`), now.Add(after)); rs != nil || err != nil {
			t.Errorf("Decode(m/new) at +%v = %v, %v; want nothing: the memory is full", after, rs, err)
		}
	}
	if rs, err := src.Decode("m/7", []byte(`{"e":61}`), now.Add(time.Hour)); err != nil || len(rs) != 1 || rs[0].PowerW != 60 {
		t.Errorf("Decode(m/7) = %v, %v; want 60 W from a meter already known", rs, err)
	}
	// An hour on, the silent meters make room.
	for i, after := range []time.Duration{time.Hour + time.Minute, time.Hour + 2*time.Minute} {
		rs, err := src.Decode("m/new", []byte(`{"e":2}`), now.Add(after))
		if err != nil || len(rs) != i {
			t.Errorf("Decode(m/new) at +%v = %v, %v; want %d readings", after, rs, err, i)
		}
	}
	if n := len(src.(*generic).counters.entries); n != 2 {
		t.Errorf("%d meters remembered, want 2 (7 and new)", n)
	}
}

// FuzzGeneric checks that a configured JSON input never panics and returns
// only valid readings or a reason.
func FuzzGeneric(f *testing.F) {
	f.Add("plant/a/t", `{"data": {"p": 15000, "e": 12.5}}`)
	f.Add("plant/b/t", `{"data": {"p": "1e3"}}`)
	f.Add("plant", `[]`)
	f.Add("plant/c/t", `{"data": {"e": 1e12}}`)
	f.Add("plant/c/t", `{"data": {"e": "0.5"}}`)
	f.Add("plant/c/t", `{"data": {"e": -0}}`)
	in := Input{Name: "m", Topic: "plant/#", Format: "json", Field: "data.p", Unit: "kW",
		EnergyField: "data.e", EnergyUnit: "Wh", Meter: "{2}"}
	src := NewGeneric(in, DefaultLimits())
	counterOnly := in
	counterOnly.Field, counterOnly.Unit = "", ""
	d := &Decoder{Limits: DefaultLimits()}
	f.Fuzz(func(t *testing.T, topic, payload string) {
		// A counter-only input of its own, that has seen a counter of 0 an
		// hour ago on the same topic, so that the payload's counter gives a
		// power.
		counters := NewGeneric(counterOnly, DefaultLimits())
		_, _ = counters.Decode(topic, []byte(`{"data": {"e": 0}}`), now.Add(-time.Hour))
		for _, s := range []Source{src, counters, counters} {
			rs, err := s.Decode(topic, []byte(payload), now)
			if err != nil {
				if ReasonOf(err) == "" || rs != nil {
					t.Fatalf("Decode(%q, %q) = %v, %v: want a *RejectError and no readings", topic, payload, rs, err)
				}
				continue
			}
			for _, r := range rs {
				if !ValidID(r.Meter) || d.Validate(r, now) != nil {
					t.Fatalf("invalid reading %+v", r)
				}
			}
		}
	})
}

func TestGenericPowerFactor(t *testing.T) {
	in := Input{Name: "gw", Topic: "plant/+/data", Format: "json", Field: "p", Unit: "kW", PFField: "pf", Meter: "{2}"}
	if err := in.Check(); err != nil {
		t.Fatal(err)
	}
	src := NewGeneric(in, DefaultLimits())
	rs, err := src.Decode("plant/press/data", []byte(`{"p": 12.5, "pf": "0.81"}`), time.Now())
	if err != nil || len(rs) != 1 || !rs[0].HasPF || rs[0].PowerFactor != 0.81 {
		t.Errorf("Decode = %+v, %v", rs, err)
	}
	if _, err := src.Decode("plant/press/data", []byte(`{"p": 12.5, "pf": 1.4}`), time.Now()); ReasonOf(err) != ReasonOutOfRange {
		t.Errorf("a power factor of 1.4: %v", err)
	}
	if _, err := src.Decode("plant/press/data", []byte(`{"p": 12.5, "pf": "high"}`), time.Now()); ReasonOf(err) != ReasonNotANumber {
		t.Errorf("a power factor of high: %v", err)
	}
	if err := (Input{Name: "x", Topic: "a", Format: "plain", Unit: "W", PFField: "pf", Meter: "m"}).Check(); err == nil {
		t.Error("a plain input with pf_field passes Check")
	}
}
