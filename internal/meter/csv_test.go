package meter

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReadCSV(t *testing.T) {
	d := testDecoder()
	in := "timestamp,power_w,energy_wh\n" +
		"2026-11-25T09:00:00Z,1500,100\n" +
		"\n" +
		"1764061260, 1600.5 ,\n" +
		"1764061320000,-200\n"
	rs, err := d.ReadCSV(strings.NewReader(in), "m1", now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("%d readings, want 3: %+v", len(rs), rs)
	}
	want := []Reading{
		{Source: "import", Meter: "m1", Time: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), PowerW: 1500, EnergyWh: 100, HasEnergy: true, Stamped: true},
		{Source: "import", Meter: "m1", Time: time.Unix(1764061260, 0).UTC(), PowerW: 1600.5, Stamped: true},
		{Source: "import", Meter: "m1", Time: time.UnixMilli(1764061320000).UTC(), PowerW: -200, Stamped: true},
	}
	for i := range want {
		if rs[i] != want[i] {
			t.Errorf("reading %d = %+v, want %+v", i, rs[i], want[i])
		}
	}
}

func TestReadCSVNamesTheBadLine(t *testing.T) {
	d := testDecoder()
	tests := []struct {
		in   string
		line int
		want string
	}{
		{"2026-11-25T09:00:00Z,1\n2026-11-25T09:00:10Z,abc\n", 2, "power_w"},
		{"2026-11-25T09:00:00Z,1\n2026-11-25T09:00:10,1\n", 2, "RFC 3339"},
		{"2026-11-25T09:00:00Z\n", 1, "fields"},
		{"2026-11-25T09:00:00Z,NaN\n", 1, "not_finite"},
		{"2026-11-25T09:00:00Z,1,2,3\n", 1, "fields"},
		{"2026-11-25T09:00:00Z,99999999\n", 1, "out_of_range"},
		{"2099-11-25T09:00:00Z,1\n", 1, "future"},
		{"1970-01-01T00:00:00Z,1\n", 1, "clock"},
		{"2026-11-25T09:00:00Z,1,-5\n", 1, "energy counter"},
		{"x,y\n2026-11-25T09:00:00Z,1\n", 1, "RFC 3339"}, // a first line without "power" is no header
		{"2026-11-25T09:00:00Z,1\n" + strings.Repeat("9", 5000) + "\n", 2, "longer than"},
	}
	for _, tt := range tests {
		_, err := d.ReadCSV(strings.NewReader(tt.in), "m1", now, nil)
		var le *LineError
		if !errors.As(err, &le) || le.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadCSV(%.40q) = %v, want line %d and %q", tt.in, err, tt.line, tt.want)
		}
	}
}

// FuzzReadCSV checks that any input gives readings within the limits or an
// error naming a line.
func FuzzReadCSV(f *testing.F) {
	f.Add("timestamp,power_w\n2026-11-25T09:00:00Z,1500\n")
	f.Add("1764061260,1,2\n1764061270,3,4\n")
	f.Add("2026-11-25T09:00:00Z,abc\n")
	f.Add("end,energy_wh,export_wh\n2026-10-01T00:15:00Z,100,0\n2026-10-01T00:30:00Z,0,40\n")
	f.Add("start,energy_kwh\n1764061260,0.5\n1764064860,0.25\n")
	f.Fuzz(func(t *testing.T, in string) {
		d := testDecoder()
		rs, err := d.ReadCSV(strings.NewReader(in), "m1", now, nil)
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("ReadCSV(%q) error %v names no line", in, err)
			}
			return
		}
		for _, r := range rs {
			if err := d.Validate(r, now); err != nil || !r.Stamped || r.Meter != "m1" {
				t.Fatalf("ReadCSV(%q) gave %+v: %v", in, r, err)
			}
		}
	})
}
