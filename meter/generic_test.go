package meter

import (
	"strings"
	"testing"
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
	good := Input{Name: "g", Topic: "a/+/b", Format: "json", Field: "p", Unit: "W", Meter: "{2}"}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for field, in := range map[string]Input{
		"name":         {Topic: "a", Format: "plain", Unit: "W", Meter: "{1}"},
		"topic":        {Name: "g", Topic: "a/#/b", Format: "plain", Unit: "W", Meter: "{1}"},
		"format":       {Name: "g", Topic: "a", Format: "xml", Unit: "W", Meter: "{1}"},
		"field":        {Name: "g", Topic: "a", Format: "json", Unit: "W", Meter: "{1}"},
		"unit":         {Name: "g", Topic: "a", Format: "plain", Unit: "MW", Meter: "{1}"},
		"energy_unit":  {Name: "g", Topic: "a", Format: "json", Field: "p", EnergyField: "e", EnergyUnit: "J", Unit: "W", Meter: "{1}"},
		"energy_field": {Name: "g", Topic: "a", Format: "plain", EnergyField: "e", EnergyUnit: "Wh", Unit: "W", Meter: "{1}"},
		"meter":        {Name: "g", Topic: "a", Format: "plain", Unit: "W", Meter: "{0}"},
	} {
		if err := in.Check(); err == nil || !strings.HasPrefix(err.Error(), field+":") {
			t.Errorf("Check(%+v) = %v, want an error on %s", in, err, field)
		}
	}
}

// FuzzGeneric checks that a configured JSON input never panics and returns
// only valid readings or a reason.
func FuzzGeneric(f *testing.F) {
	f.Add("plant/a/t", `{"data": {"p": 15000, "e": 12.5}}`)
	f.Add("plant/b/t", `{"data": {"p": "1e3"}}`)
	f.Add("plant", `[]`)
	src := NewGeneric(Input{Name: "m", Topic: "plant/#", Format: "json", Field: "data.p", Unit: "kW",
		EnergyField: "data.e", EnergyUnit: "Wh", Meter: "{2}"}, DefaultLimits())
	d := &Decoder{Limits: DefaultLimits()}
	f.Fuzz(func(t *testing.T, topic, payload string) {
		rs, err := src.Decode(topic, []byte(payload), now)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		for _, r := range rs {
			if !ValidID(r.Meter) || d.Validate(r, now) != nil {
				t.Fatalf("invalid reading %+v", r)
			}
		}
	})
}
