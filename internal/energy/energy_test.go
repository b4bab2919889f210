package energy

import (
	"math"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

func openStore(t *testing.T, rs []meter.Reading) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

// constant returns readings of m at w watts every step over [from, to].
func constant(m string, w float64, from, to time.Time, step time.Duration) []meter.Reading {
	var rs []meter.Reading
	for ts := from; !ts.After(to); ts = ts.Add(step) {
		rs = append(rs, meter.Reading{Meter: m, Time: ts, PowerW: w, Stamped: true})
	}
	return rs
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestCalendarBucketsFollowDST(t *testing.T) {
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	first := time.Date(2026, 10, 24, 0, 0, 0, 0, madrid) // the clocks go back on the 25th
	st := openStore(t, constant("m", 1000, first.Add(-time.Hour), first.AddDate(0, 0, 8), 5*time.Minute))
	tr := &tariff.Tariff{PriceKWh: 0.2, CO2GramsKWh: 250, Location: madrid}
	days, err := Series(st, []string{"m", "ghost"}, Day, first, first.AddDate(0, 0, 3), tr)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{24, 25, 24} {
		b := days[i]
		if !near(b.InKWh, want) || !near(b.Cost, want*0.2) || !near(b.CO2Kg, want*0.25) || b.End.Sub(b.Start) != time.Duration(want)*time.Hour {
			t.Errorf("day %d = %+v, want %g kWh over %g hours", i, b, want, want)
		}
	}
	hours, err := Series(st, []string{"m"}, Hour, first.AddDate(0, 0, 1), first.AddDate(0, 0, 2), tr)
	if err != nil || len(hours) != 25 {
		t.Fatalf("hours of the 25th: %d, %v; want 25", len(hours), err)
	}
	if hours[2].Start.Format("15:04 -07:00") != "02:00 +02:00" || hours[3].Start.Format("15:04 -07:00") != "02:00 +01:00" {
		t.Errorf("the hour 02:00 twice: %s, %s", hours[2].Start, hours[3].Start)
	}
	months, err := Series(st, []string{"m"}, Month, first, first.AddDate(0, 0, 9), tr)
	if err != nil || len(months) != 2 || !near(months[0].InKWh, 8*24+1+1) || months[0].Start.Day() != 1 {
		t.Errorf("months = %+v, %v; want October: 8 days (one of 25 hours) and the hour before", months, err)
	}
	if _, err := Series(st, []string{"m"}, Hour, first, first.AddDate(2, 0, 0), tr); err == nil {
		t.Error("two years of hours: no error")
	}
}

func TestTimeOfUseCost(t *testing.T) {
	utc := time.UTC
	wd, _ := tariff.ParseDays([]string{"all"})
	tr := &tariff.Tariff{PriceKWh: 0.1, ExportPriceKWh: 0.04, Location: utc,
		Periods: []tariff.Period{{Name: "peak", PriceKWh: 0.3, Days: wd, From: 18 * 60, To: 22 * 60}}}
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, utc)
	// 1 kW all day, and a panel sending 2 kW back from 10:00 to 14:00.
	rs := constant("house", 1000, day, day.Add(24*time.Hour), 5*time.Minute)
	rs = append(rs, constant("pv", -2000, day.Add(10*time.Hour), day.Add(14*time.Hour), 5*time.Minute)...)
	st := openStore(t, rs)
	b, err := Series(st, []string{"house", "pv"}, Day, day, day.Add(24*time.Hour), tr)
	if err != nil {
		t.Fatal(err)
	}
	// 20 h at 0.1 and 4 h at 0.3 for the house; 8 kWh exported at 0.04.
	want := 20*0.1 + 4*0.3 - 8*0.04
	if len(b) != 1 || !near(b[0].InKWh, 24) || !near(b[0].OutKWh, 8) || !near(b[0].Cost, want) {
		t.Errorf("day = %+v, want 24 kWh in, 8 out, cost %g", b, want)
	}
}

func TestDemandPeak(t *testing.T) {
	utc := time.UTC
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, utc)
	// 2 kW, but 6 kW for 5 minutes from 10:20: the worst 15 minutes average
	// (5 x 6 + 10 x 2) / 15 kW.
	var rs []meter.Reading
	for ts := t0; !ts.After(t0.Add(time.Hour)); ts = ts.Add(10 * time.Second) {
		w := 2000.0
		if !ts.Before(t0.Add(20*time.Minute)) && ts.Before(t0.Add(25*time.Minute)) {
			w = 6000
		}
		rs = append(rs, meter.Reading{Meter: "plant", Time: ts, PowerW: w, Stamped: true})
	}
	st := openStore(t, rs)
	current, peak, err := Demands(st, []string{"plant"}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(peak.KW-(5*6+10*2)/15.0) > 0.01 {
		t.Errorf("peak = %+v, want %.3f kW", peak, (5*6+10*2)/15.0)
	}
	if peak.At.Before(t0.Add(25*time.Minute)) || peak.At.After(t0.Add(35*time.Minute)) {
		t.Errorf("peak at %s, want a window covering 10:20-10:25", peak.At)
	}
	if math.Abs(current.KW-2) > 0.01 || !current.At.Equal(t0.Add(time.Hour)) {
		t.Errorf("current = %+v, want 2 kW at 11:00", current)
	}
}

// TestDemandPeakIsTheMonthsOwn checks that the first windows of a month do
// not carry the last month's energy into its peak.
func TestDemandPeakIsTheMonthsOwn(t *testing.T) {
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var rs []meter.Reading
	for ts := march.Add(-10 * time.Minute); ts.Before(march.Add(time.Hour)); ts = ts.Add(10 * time.Second) {
		w := 1000.0
		if ts.Before(march) {
			w = 20000
		}
		rs = append(rs, meter.Reading{Meter: "m", Time: ts, PowerW: w, Stamped: true})
	}
	st := openStore(t, rs)
	_, peak, err := Demands(st, []string{"m"}, march, march.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(peak.KW-1) > 0.05 {
		t.Errorf("March's peak = %+v, want 1 kW: February's 20 kW counted", peak)
	}
}
