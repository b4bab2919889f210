package meter

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDSMR(t *testing.T) {
	src := NewDSMR("", DefaultLimits())
	runPayloadFileCases(t, src, "dsmr", []payloadFileCase{
		{file: "telegram.json", topic: "dsmr/json", want: []Reading{
			{Meter: "dsmr", Time: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), PowerW: 123, EnergyWh: 1234567 + 2345678, HasEnergy: true, Stamped: true},
		}},
		{file: "telegram_export.json", topic: "dsmr/json", want: []Reading{
			{Meter: "dsmr", Time: time.Date(2026, 11, 25, 8, 59, 50, 0, time.UTC), PowerW: -1850, EnergyWh: 1234567 + 2345678, HasEnergy: true, Stamped: true},
		}},
		// A clock far ahead is not trusted: the reading is stamped on
		// receipt. One tariff alone is no import counter.
		{file: "telegram_bad_clock.json", topic: "dsmr/json", want: []Reading{{Meter: "dsmr", Time: now, PowerW: 500}}},
		{file: "telegram_comma.json", topic: "dsmr/json", reason: ReasonNotANumber},
		{file: "currently_delivered.txt", topic: "dsmr/reading/electricity_currently_delivered", want: []Reading{{Meter: "dsmr", Time: now, PowerW: 456}}},
		{file: "currently_returned.txt", topic: "dsmr/reading/electricity_currently_returned", want: []Reading{{Meter: "dsmr:export", Time: now, PowerW: 1200}}},
		{file: "delivered_1.txt", topic: "dsmr/reading/electricity_delivered_1"},
		{file: "delivered_1.txt", topic: "dsmr/reading/electricity_returned_2"},
		{file: "currently_delivered.txt", topic: "dsmr/consumption/gas/delivered"},
	})
}

func TestDSMRRejects(t *testing.T) {
	src := NewDSMR("meter", DefaultLimits())
	for _, tt := range []struct {
		topic, payload string
		want           float64 // PowerW when accepted
		reason         Reason
	}{
		{"meter/json", `{"electricity_currently_delivered": " 0.5 "}`, 500, ""},
		{"meter/json", `{"electricity_currently_delivered": 1.25, "electricity_currently_returned": "0.25"}`, 1000, ""},
		{"meter/json", `{"electricity_currently_delivered": "abc"}`, 0, ReasonNotANumber},
		{"meter/json", `{"electricity_currently_delivered": "NaN"}`, 0, ReasonNotFinite},
		{"meter/json", `{"electricity_currently_delivered": true}`, 0, ReasonNotANumber},
		{"meter/json", `{"electricity_currently_delivered": "0.1", "electricity_delivered_1": "-1", "electricity_delivered_2": "1"}`, 0, ReasonOutOfRange},
		{"meter/json", `{"electricity_currently_delivered": "0.1"`, 0, ReasonBadJSON},
		{"meter/json", `"0.1"`, 0, ReasonBadJSON},
		{"meter/json", ``, 0, ReasonEmpty},
		{"meter/reading/electricity_currently_delivered", "20000", 0, ReasonOutOfRange},
		{"meter/reading/electricity_currently_delivered", "0,5", 0, ReasonNotANumber},
	} {
		rs, err := src.Decode(tt.topic, []byte(tt.payload), now)
		if ReasonOf(err) != tt.reason || (tt.reason == "" && (len(rs) != 1 || rs[0].PowerW != tt.want)) {
			t.Errorf("Decode(%q, %q) = %v, %v, want %g W or reason %q", tt.topic, tt.payload, rs, err, tt.want, tt.reason)
		}
	}
	rs, err := src.Decode("meter/json", []byte(`{"electricity_delivered_1": "1.000"}`), now)
	if rs != nil || err != nil {
		t.Errorf("a telegram without power = %v, %v, want no reading and no error", rs, err)
	}
	if src.Match("dsmr/json") || !src.Match("meter/json") || src.Name() != "dsmr" {
		t.Error("Match or Name does not follow the prefix meter")
	}
}

func FuzzDSMR(f *testing.F) {
	for _, name := range []string{"telegram.json", "telegram_export.json", "telegram_bad_clock.json", "currently_delivered.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", "dsmr", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add("dsmr/json", b)
		f.Add("dsmr/reading/electricity_currently_returned", b)
	}
	src := NewDSMR("", DefaultLimits())
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		if !src.Match(topic) {
			return
		}
		rs, err := src.Decode(topic, payload, now)
		checkFuzzReadings(t, topic, payload, rs, err)
	})
}
