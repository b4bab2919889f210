package meter

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// dayTotals integrates readings as the store does (trapezoids between
// readings no further apart than maxGap) into the calendar days of loc,
// returning kWh drawn and sent per day ("2006-01-02").
func dayTotals(rs []Reading, maxGap time.Duration, loc *time.Location) (in, out map[string]float64) {
	in, out = map[string]float64{}, map[string]float64{}
	for i := 1; i < len(rs); i++ {
		a, b := rs[i-1], rs[i]
		dt := b.Time.Sub(a.Time)
		if dt <= 0 || dt > maxGap {
			continue
		}
		wh := (a.PowerW + b.PowerW) / 2 * dt.Hours()
		day := a.Time.In(loc).Format("2006-01-02")
		if wh >= 0 {
			in[day] += wh / 1000
		} else {
			out[day] -= wh / 1000
		}
	}
	return in, out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func readFile(t *testing.T, name string, opts ImportOptions, meterID string) []Reading {
	t.Helper()
	f, err := os.Open("testdata/history/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := testDecoder().ReadHistory(f, meterID, now, opts, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return rs
}

// TestDatadisDaysOfDaylightSaving reads a Datadis file with the 23-hour
// day of March and the 25-hour day of October, numbered in order and
// numbered by the clock, and checks each day's kWh against the file's.
func TestDatadisDaysOfDaylightSaving(t *testing.T) {
	wantIn := map[string]float64{"2026-03-28": 25.868, "2026-03-29": 26.490, "2026-10-25": 22.332, "2026-10-26": 17.622}
	wantOut := map[string]float64{"2026-10-25": 2.099, "2026-10-26": 1.548}
	opts := ImportOptions{MaxGap: 10 * time.Minute}
	var first []Reading
	for _, name := range []string{"datadis-dst.csv", "datadis-clock.csv"} {
		h, err := testDecoder().NewHistoryReader(strings.NewReader(mustRead(t, name)), "", now, opts)
		if err != nil {
			t.Fatal(err)
		}
		if h.Format() != FormatDatadis {
			t.Errorf("%s: format %q, want datadis", name, h.Format())
		}
		rs := readFile(t, name, opts, "")
		if rs[0].Meter != "ES0031405123456789JN0F" || rs[0].Source != "import" {
			t.Errorf("%s: reading %+v, want the CUPS as meter", name, rs[0])
		}
		in, out := dayTotals(rs, opts.MaxGap, madrid)
		for day, want := range wantIn {
			if !near(in[day], want) || !near(out[day], wantOut[day]) {
				t.Errorf("%s: %s in %.6f out %.6f kWh, want %.3f and %.3f", name, day, in[day], out[day], want, wantOut[day])
			}
		}
		if len(in) != len(wantIn) {
			t.Errorf("%s: days %v, want %v", name, in, wantIn)
		}
		// The 25-hour day starts at 22:00 UTC the day before and ends at 23:00 UTC.
		if first == nil {
			first = rs
			continue
		}
		if len(rs) != len(first) {
			t.Fatalf("%s: %d readings, datadis-dst.csv %d", name, len(rs), len(first))
		}
		for i := range rs {
			if rs[i] != first[i] {
				t.Fatalf("%s: reading %d = %+v, datadis-dst.csv's %+v", name, i, rs[i], first[i])
			}
		}
	}
	// Hour 1 of 29 March (CET, +01:00) starts at 23:00 UTC on the 28th.
	rs := readFile(t, "datadis-dst.csv", opts, "main")
	for _, r := range rs {
		if r.Meter != "main" {
			t.Fatalf("reading %+v: want meter main as chosen", r)
		}
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/history/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDatadisPlacesHours checks where hours land, one day at a time.
func TestDatadisPlacesHours(t *testing.T) {
	const head = "CUPS;Fecha;Hora;Consumo_kWh;Metodo_obtencion\n"
	rs, err := testDecoder().ReadHistory(strings.NewReader(head+"ES1;29/03/2026;3;1,000;Real\n"), "m", now, ImportOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Hour 3, in order, of the 23-hour day is its third: 03:00-04:00 CEST, from 01:00 UTC.
	if want := time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC); !rs[0].Time.Equal(want) || rs[0].PowerW != 1000 {
		t.Errorf("hour 3 of 29/03 = %+v, want 1000 W from %s", rs[0], want)
	}
	if len(rs) != 2 || !rs[1].Time.Equal(rs[0].Time.Add(time.Hour-time.Nanosecond)) {
		t.Errorf("readings %+v, want the interval's start and its last nanosecond", rs)
	}
}

// TestDatadisCanaryHours checks that a file of the Canary Islands, an hour
// behind the peninsula, is read in the zone stated.
func TestDatadisCanaryHours(t *testing.T) {
	in := "CUPS;Fecha;Hora;Consumo_kWh\nES1;01/10/2026;1;1\n"
	canary, err := ParseZone("Atlantic/Canary")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := testDecoder().ReadHistory(strings.NewReader(in), "m", now, ImportOptions{Zone: canary}, nil)
	if want := time.Date(2026, 9, 30, 23, 0, 0, 0, time.UTC); err != nil || !rs[0].Time.Equal(want) {
		t.Errorf("hour 1 of 01/10/2026 in the Canaries: %+v %v, want from %s", rs, err, want)
	}
	for _, bad := range []string{"", "Local", "../../etc/passwd", "Mars/Olympus"} {
		if _, err := ParseZone(bad); err == nil {
			t.Errorf("ParseZone(%q) took it", bad)
		}
	}
	if _, err := testDecoder().NewHistoryReader(strings.NewReader("timestamp,power_w\n"), "m", now, ImportOptions{Zone: canary}); err == nil {
		t.Error("a zone for a CSV file was taken")
	}
}

func TestDatadisRefuses(t *testing.T) {
	const head = "CUPS;Fecha;Hora;Consumo_kWh;Metodo_obtencion\n"
	row := func(date string, hour int) string {
		return "ES0031405123456789JN0F;" + date + ";" + itoa(hour) + ";0,5;Real\n"
	}
	clockMarch := ""
	for h := 1; h <= 24; h++ {
		if h != 3 {
			clockMarch += row("29/03/2026", h)
		}
	}
	tests := []struct {
		name, in string
		line     int
		want     string
	}{
		{"no header", "ES1;01/10/2026;1;0,5;Real\n", 1, "CUPS"},
		{"no consumption", "CUPS;Fecha;Hora;Metodo\n", 1, "consumption"},
		{"hour 0", head + row("01/10/2026", 0), 2, "hour"},
		{"hour 26", head + row("01/10/2026", 26), 2, "hour"},
		{"hour 25 on a day of 24", head + row("01/10/2026", 25), 2, "has 24 hours"},
		{"an hour twice", head + row("01/10/2026", 5) + row("01/10/2026", 5), 3, "again"},
		{"hour 3 by the clock", head + clockMarch + row("29/03/2026", 3), 25, "no hour ends at 03:00"},
		{"days back", head + row("02/10/2026", 1) + row("01/10/2026", 1), 3, "in order"},
		{"two supplies", head + row("01/10/2026", 1) + "ES0031405000000000XX0F;01/10/2026;2;0,5;Real\n", 3, "one supply"},
		{"bad number", head + "ES1;01/10/2026;1;1,2.3;Real\n", 2, "comma"},
		{"negative", head + "ES1;01/10/2026;1;-1;Real\n", 2, "negative"},
		{"bad date", head + "ES1;2026-13-01;1;1;Real\n", 2, "date"},
		{"future", head + "ES1;01/10/2099;1;1;Real\n", 2, "future"},
		{"too much", head + "ES1;01/10/2026;1;99999999;Real\n", 2, "out_of_range"},
	}
	for _, tt := range tests {
		_, err := testDecoder().ReadHistory(strings.NewReader(tt.in), "", now, ImportOptions{Format: FormatDatadis}, nil)
		var le *LineError
		if !errors.As(err, &le) || le.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want line %d and %q", tt.name, err, tt.line, tt.want)
		}
	}
}

func itoa(n int) string {
	if n < 10 && n >= 0 {
		return string(rune('0' + n))
	}
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}

// TestGreenButtonDays reads a Green Button download of quarter-hours,
// forward and reverse, over the 23-hour day of March in Los Angeles.
func TestGreenButtonDays(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	opts := ImportOptions{MaxGap: 10 * time.Minute}
	rs := readFile(t, "greenbutton-dst.xml", opts, "home")
	in, out := dayTotals(rs, opts.MaxGap, la)
	wantIn := map[string]float64{"2026-03-07": 26.939, "2026-03-08": 25.522}
	wantOut := map[string]float64{"2026-03-07": 1.714495, "2026-03-08": 2.795176}
	for day := range wantIn {
		if !near(in[day], wantIn[day]) || !near(out[day], wantOut[day]) {
			t.Errorf("%s: in %.6f out %.6f kWh, want %.6f and %.6f", day, in[day], out[day], wantIn[day], wantOut[day])
		}
	}
	if len(in) != 2 {
		t.Errorf("days %v, want 2", in)
	}
	h, err := testDecoder().NewHistoryReader(strings.NewReader(mustRead(t, "greenbutton-dst.xml")), "home", now, ImportOptions{})
	if err != nil || h.Format() != FormatGreenButton {
		t.Errorf("format %v %v, want greenbutton", h, err)
	}
}

const gbHead = `<feed xmlns="http://www.w3.org/2005/Atom"><entry><link rel="self" href="U/1/MeterReading/1"/><link rel="related" href="RT/1"/><content><MeterReading xmlns="http://naesb.org/espi"/></content></entry>`

func gbType(inner string) string {
	return `<entry><link rel="self" href="RT/1"/><content><ReadingType xmlns="http://naesb.org/espi">` + inner + `</ReadingType></content></entry>`
}

func gbBlockOf(readings string) string {
	return `<entry><link rel="up" href="U/1/MeterReading/1/IntervalBlock"/><content><IntervalBlock xmlns="http://naesb.org/espi">` + readings + `</IntervalBlock></content></entry>`
}

func TestGreenButtonScalesAndRefuses(t *testing.T) {
	ok := gbHead + gbType("<uom>72</uom><powerOfTenMultiplier>3</powerOfTenMultiplier><accumulationBehaviour>4</accumulationBehaviour><flowDirection>1</flowDirection>") +
		gbBlockOf("<IntervalReading><timePeriod><duration>3600</duration><start>1764000000</start></timePeriod><value>2</value></IntervalReading>") + "</feed>"
	rs, err := testDecoder().ReadHistory(strings.NewReader(ok), "m", now, ImportOptions{MaxGap: time.Hour}, nil)
	if err != nil || len(rs) != 2 || rs[0].PowerW != 2000 || !rs[0].Time.Equal(time.Unix(1764000000, 0)) {
		t.Fatalf("2 kWh in an hour: %+v %v, want 2000 W", rs, err)
	}
	reading := "<IntervalReading><timePeriod><duration>3600</duration><start>1764000000</start></timePeriod><value>5</value></IntervalReading>"
	tests := []struct{ name, in, want string }{
		{"cumulative", gbHead + gbType("<uom>72</uom><accumulationBehaviour>1</accumulationBehaviour>") + gbBlockOf(reading) + "</feed>", "cumulative"},
		{"gas", gbHead + gbType("<uom>169</uom>") + gbBlockOf(reading) + "</feed>", "gas"},
		{"flow", gbHead + gbType("<uom>72</uom><flowDirection>7</flowDirection>") + gbBlockOf(reading) + "</feed>", "flowDirection"},
		{"overlap", gbHead + gbType("<uom>72</uom>") + gbBlockOf(reading+strings.Replace(reading, "1764000000", "1764001800", 1)) + "</feed>", "overlaps"},
		{"no start", gbHead + gbType("<uom>72</uom>") + gbBlockOf("<IntervalReading><value>1</value></IntervalReading>") + "</feed>", "timePeriod"},
		{"syntax", gbHead + "\n<entry><oops></entry></feed>", "line 2"},
		{"not a feed", "<html></html>", "Atom"},
		{"empty feed", "<feed></feed>", "no IntervalReading"},
		{"multiplier", gbHead + gbType("<uom>72</uom><powerOfTenMultiplier>40</powerOfTenMultiplier>") + gbBlockOf(reading) + "</feed>", "powerOfTenMultiplier"},
		{"no type", gbHead + gbBlockOf(reading) + "</feed>", "ReadingType"},
	}
	for _, tt := range tests {
		_, err := testDecoder().ReadHistory(strings.NewReader(tt.in), "m", now, ImportOptions{}, nil)
		var le *LineError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a line error with %q", tt.name, err, tt.want)
		}
	}
}

// TestCSVIntervals reads energy per interval in Vatio's CSV.
func TestCSVIntervals(t *testing.T) {
	opts := ImportOptions{MaxGap: 10 * time.Minute}
	tests := []struct {
		name, in string
		opts     ImportOptions
		in0, out float64 // kWh on 2026-10-01 (UTC)
		first    time.Time
	}{
		{"start kWh", "start,energy_kwh\n2026-10-01T00:00:00Z,0.5\n2026-10-01T01:00:00Z,0.25\n", opts, 0.75, 0, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)},
		{"Datadis hours out of order", "CUPS;Fecha;Hora;Consumo_kWh\nES1;01/10/2026;4;0,25\nES1;01/10/2026;3;0,5\n", opts, 0.75, 0, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)},
		{"end Wh with export", "end,energy_wh,export_wh\n2026-10-01T00:15:00Z,100,0\n2026-10-01T00:30:00Z,0,40\n2026-10-01T00:45:00Z,30,\n", opts, 0.13, 0.04, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)},
		{"timestamp stated as end", "timestamp,energy_kwh\n2026-10-01T01:00:00Z,1\n", ImportOptions{MaxGap: 10 * time.Minute, Interval: time.Hour, Stamp: StampEnd}, 1, 0, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)},
		{"stated interval", "start,energy_kwh\n2026-10-01T00:00:00Z,0.5\n", ImportOptions{MaxGap: 10 * time.Minute, Interval: 30 * time.Minute}, 0.5, 0, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		rs, err := testDecoder().ReadHistory(strings.NewReader(tt.in), "m", now, tt.opts, nil)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		in, out := dayTotals(rs, tt.opts.MaxGap, time.UTC)
		if !near(in["2026-10-01"], tt.in0) || !near(out["2026-10-01"], tt.out) || !rs[0].Time.Equal(tt.first) {
			t.Errorf("%s: in %g out %g kWh from %s, want %g and %g from %s", tt.name, in["2026-10-01"], out["2026-10-01"], rs[0].Time, tt.in0, tt.out, tt.first)
		}
	}
	bad := []struct{ in, want string }{
		{"timestamp,energy_kwh\n2026-10-01T00:00:00Z,1\n", "start or end"},
		{"start,end,energy_kwh\n", "not both"},
		{"start,energy_kwh\n2026-10-01T00:00:00Z,1\n", "length is unknown"},
		{"start,energy_kwh\n2026-10-01T00:00:00Z,-1\n2026-10-01T01:00:00Z,1\n", "outside"},
		{"start,energy_kwh\n2026-10-01T00:00:00Z,1,2\n", "fields"},
		{"start,energy_kwh\n2026-10-01T00:00:00Z,1\n2026-10-01T01:00:00Z,1\n2026-10-01T00:30:00Z,1\n", "overlaps"},
	}
	for _, tt := range bad {
		_, err := testDecoder().ReadHistory(strings.NewReader(tt.in), "m", now, opts, nil)
		var le *LineError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want a line error with %q", tt.in, err, tt.want)
		}
	}
}

// TestPowerAcrossTheMetersInterval checks that power readings 15 minutes
// apart (the user guide's example) are integrated across their interval:
// points on the line between them keep the store's gaps within max_gap,
// and a gap longer than the interval stays a gap.
func TestPowerAcrossTheMetersInterval(t *testing.T) {
	in := "timestamp,power_w\n2026-10-01T00:00:00Z,420\n2026-10-01T00:15:00Z,380\n2026-10-01T00:30:00Z,400\n2026-10-01T02:00:00Z,400\n"
	maxGap := 10 * time.Minute
	rs, err := testDecoder().ReadHistory(strings.NewReader(in), "m", now, ImportOptions{MaxGap: maxGap}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := dayTotals(rs, maxGap, time.UTC)
	want := ((420.0+380)/2*0.25 + (380.0+400)/2*0.25) / 1000 // the 90-minute gap is unknown
	if !near(got["2026-10-01"], want) {
		t.Errorf("%g kWh from %d readings %+v, want %g", got["2026-10-01"], len(rs), rs, want)
	}
	// Without max_gap (ReadCSV), or with an interval stated short, only
	// the file's readings.
	if rs, _ := testDecoder().ReadCSV(strings.NewReader(in), "m", now, nil); len(rs) != 4 {
		t.Errorf("ReadCSV gave %d readings, want the file's 4", len(rs))
	}
	if rs, _ := testDecoder().ReadHistory(strings.NewReader(in), "m", now, ImportOptions{MaxGap: maxGap, Interval: time.Second}, nil); len(rs) != 4 {
		t.Errorf("with interval 1s, %d readings, want the file's 4", len(rs))
	}
}

// FuzzDatadis checks that any input gives valid readings of whole hours
// or an error naming a line.
func FuzzDatadis(f *testing.F) {
	// Small seeds: the fuzzer minimises what it finds, slowly on large ones.
	f.Add("CUPS;Fecha;Hora;Consumo_kWh;Metodo_obtencion;Energia_vertida_kWh\r\nES1;28/03/2026;1;1,149;Real;\r\nES1;29/03/2026;23;0,5;Real;0,1\r\n")
	f.Add("CUPS;Fecha;Hora;AE_kWh;AS_kWh\nES1;2026/10/25;02:00;0.1;0\nES1;2026/10/25;03:00;1;0\nES1;2026/10/25;03:00;1;0\nES1;2026/10/25;25:00;1;0\n")
	f.Fuzz(func(t *testing.T, in string) {
		fuzzHistory(t, in, FormatDatadis)
	})
}

// FuzzGreenButton checks that any input gives valid readings or an error
// naming a line.
func FuzzGreenButton(f *testing.F) {
	f.Add(gbHead + gbType("<uom>72</uom>") + gbBlockOf("<IntervalReading><timePeriod><duration>900</duration><start>1764000000</start></timePeriod><value>5</value></IntervalReading>") + "</feed>")
	f.Fuzz(func(t *testing.T, in string) {
		fuzzHistory(t, in, FormatGreenButton)
	})
}

func fuzzHistory(t *testing.T, in string, format Format) {
	d := testDecoder()
	if len(in) > 8<<10 { // larger inputs only take the fuzzer longer
		return
	}
	rs, err := d.ReadHistory(strings.NewReader(in), "m1", now, ImportOptions{Format: format, MaxGap: 10 * time.Minute}, nil)
	if err != nil {
		var le *LineError
		if !errors.As(err, &le) || le.Line < 1 {
			t.Fatalf("ReadHistory(%q) error %v names no line", in, err)
		}
		return
	}
	for _, r := range rs {
		if err := d.Validate(r, now); err != nil || !r.Stamped || r.Meter != "m1" || r.HasEnergy {
			t.Fatalf("ReadHistory(%q) gave %+v: %v", in, r, err)
		}
	}
}

// FuzzParseImportOptions checks that an import's options are either in
// range or a *FieldError naming the field that is not.
func FuzzParseImportOptions(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("datadis", "1h", "", "Atlantic/Canary")
	f.Add("CSV", "15m", "end", "")
	f.Add("xlsx", "0s", "middle", "../../etc/passwd")
	f.Fuzz(func(t *testing.T, format, interval, stamp, zone string) {
		opts, err := ParseImportOptions(format, interval, stamp, zone)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !slices.Contains([]string{"format", "interval", "time", "zone"}, fe.Field) {
				t.Fatalf("ParseImportOptions(%q, %q, %q, %q) error %v names no field", format, interval, stamp, zone, err)
			}
			return
		}
		if !slices.Contains([]Format{FormatAuto, FormatCSV, FormatDatadis, FormatGreenButton}, opts.Format) {
			t.Fatalf("format %q from %q", opts.Format, format)
		}
		if opts.Interval != 0 && (opts.Interval < time.Second || opts.Interval > MaxIntervalLength) || (interval == "") != (opts.Interval == 0) {
			t.Fatalf("interval %s from %q", opts.Interval, interval)
		}
		if (zone == "") != (opts.Zone == nil) {
			t.Fatalf("zone %v from %q", opts.Zone, zone)
		}
	})
}

// TestImportNotAhead refuses a reading, or an interval ending, later than
// the import's time: its power would become the meter's power now.
func TestImportNotAhead(t *testing.T) {
	ahead := now.Add(2 * time.Minute).Format(time.RFC3339)
	tests := []struct{ name, in string }{
		{"power", "timestamp,power_w\n" + now.Add(-time.Minute).Format(time.RFC3339) + ",100\n" + ahead + ",50000\n"},
		{"interval", "start,energy_kwh\n" + now.Add(-30*time.Minute).Format(time.RFC3339) + ",1\n"},
	}
	for _, tt := range tests {
		_, err := testDecoder().ReadHistory(strings.NewReader(tt.in), "m", now, ImportOptions{Interval: time.Hour, MaxGap: 10 * time.Minute}, nil)
		var le *LineError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "later than the import's time") {
			t.Errorf("%s: %v, want a line error saying it is later than now", tt.name, err)
		}
	}
	rs, err := testDecoder().ReadHistory(strings.NewReader("timestamp,power_w\n"+now.Format(time.RFC3339)+",100\n"), "m", now, ImportOptions{}, nil)
	if err != nil || len(rs) != 1 {
		t.Errorf("a reading at the import's time: %v %v, want it read", rs, err)
	}
}

// TestImportMadeReadingsBound refuses a file whose intervals would make
// more than MaxMadeReadings readings, naming the limit, and reads one just
// within it.
func TestImportMadeReadingsBound(t *testing.T) {
	days := func(n int) string {
		var b strings.Builder
		b.WriteString("start,energy_kwh\n")
		start := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range n {
			b.WriteString(start.AddDate(0, 0, i).Format(time.RFC3339) + ",12\n")
		}
		return b.String()
	}
	opts := ImportOptions{Interval: 24 * time.Hour, MaxGap: 10 * time.Minute} // 145 readings a day
	within := MaxMadeReadings / 145
	rs, err := testDecoder().ReadHistory(strings.NewReader(days(within)), "m", now, opts, nil)
	if err != nil || len(rs) != within*145 {
		t.Fatalf("%d days: %d readings, %v; want %d", within, len(rs), err, within*145)
	}
	_, err = testDecoder().ReadHistory(strings.NewReader(days(9800)), "m", now, opts, nil)
	var le *LineError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "more than 600000 readings") || !strings.Contains(err.Error(), "split it") {
		t.Fatalf("9800 days: %v, want a line error naming the limit", err)
	}
	// Power readings an hour apart, spanned every max_gap, count too.
	var b strings.Builder
	b.WriteString("timestamp,power_w\n")
	for i := range MaxMadeReadings/5 + 2 { // 5 points a gap
		b.WriteString(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Hour).Format(time.RFC3339) + ",100\n")
	}
	_, err = testDecoder().ReadHistory(strings.NewReader(b.String()), "m", now, ImportOptions{Interval: time.Hour, MaxGap: 10 * time.Minute}, nil)
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "more than 600000 readings") {
		t.Fatalf("hourly power spanned: %v, want a line error naming the limit", err)
	}
}

// TestFileReadingsAreBounded: a file of more power readings than
// MaxFileReadings is refused at the first one past it.
func TestFileReadingsAreBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("timestamp,power_w\n")
	start := now.Add(-time.Duration(MaxFileReadings+10) * time.Second)
	for i := range MaxFileReadings + 1 {
		fmt.Fprintf(&b, "%d,1\n", start.Unix()+int64(i))
	}
	hr, err := testDecoder().NewHistoryReader(strings.NewReader(b.String()), "m", now, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for err == nil {
		if _, err = hr.Next(); err == nil {
			n++
		}
	}
	if n != MaxFileReadings {
		t.Errorf("%d readings given before the refusal, want %d", n, MaxFileReadings)
	}
	var le *LineError
	if !errors.As(err, &le) || le.Line != MaxFileReadings+2 || !strings.Contains(err.Error(), "more than 2000000 readings") {
		t.Fatalf("%d readings: %v, want refused at line %d", MaxFileReadings+1, err, MaxFileReadings+2)
	}
}
