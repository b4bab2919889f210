package insight

import (
	"math"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// history returns readings of m every 5 minutes over the 35 days before
// now, at power(t).
func history(m string, power func(time.Time) float64) []meter.Reading {
	var rs []meter.Reading
	for ts := now.Add(-35 * 24 * time.Hour); ts.Before(now); ts = ts.Add(5 * time.Minute) {
		rs = append(rs, meter.Reading{Meter: m, Time: ts, PowerW: power(ts), Stamped: true})
	}
	return rs
}

func openWith(t *testing.T, rs ...[]meter.Reading) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, r := range rs {
		if _, err := st.Import(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func find(rs []Recommendation, kind, meterID string) *Recommendation {
	for i := range rs {
		if rs[i].Kind == kind && rs[i].Meter == meterID {
			return &rs[i]
		}
	}
	return nil
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestRecommendationsOfAKnownHouse feeds a house that draws 200 W from 01:00
// to 05:00 and 1 kW the rest of the day, 1.5 kW in the last week, with a
// TV below it on 2 W standby 20 hours a day, at a flat 0.2 EUR/kWh.
func TestRecommendationsOfAKnownHouse(t *testing.T) {
	house := history("house", func(ts time.Time) float64 {
		switch {
		case ts.Hour() >= 1 && ts.Hour() < 5:
			return 200
		case !ts.Before(now.Truncate(24*time.Hour).AddDate(0, 0, -7)): // the last 7 whole days, and today
			return 1500
		}
		return 1000
	})
	tv := history("tv", func(ts time.Time) float64 {
		if ts.Hour() >= 19 && ts.Hour() < 23 {
			return 100
		}
		return 2
	})
	st := openWith(t, house, tv)
	if _, err := st.EditMeter("tv", func(m *store.MeterInfo) error { m.Parent = "house"; return nil }); err != nil {
		t.Fatal(err)
	}
	tr := &tariff.Tariff{Currency: "EUR", PriceKWh: 0.2, Location: time.UTC}
	rs, err := Recommend(st, st.Meters(), tr, now)
	if err != nil {
		t.Fatal(err)
	}
	// Baseload: 200 W all year is 1752 kWh, 350.40 EUR; a quarter of it.
	b := find(rs, Baseload, "house")
	if b == nil || !near(b.Evidence["baseload_w"], 200, 0.5) || !near(b.SavingPerYear, 350.4*BaseloadCut, 0.5) {
		t.Errorf("baseload = %+v", b)
	}
	// Standby: 2 W for 20 of 24 hours: 14.6 kWh, 2.92 EUR a year.
	s := find(rs, Standby, "tv")
	if s == nil || !near(s.Evidence["standby_w"], 2, 0.01) || !near(s.Evidence["standby_share"], 20.0/24, 0.02) || !near(s.SavingPerYear, 2.92, 0.1) {
		t.Errorf("standby = %+v", s)
	}
	if find(rs, Standby, "house") != nil || find(rs, Baseload, "tv") != nil {
		t.Errorf("a house on standby or a sub-meter's baseload: %+v", rs)
	}
	// Increase: a usual day is 4 x 0.2 + 20 x 1 = 20.8 kWh, the last week's
	// days 4 x 0.2 + 20 x 1.5 = 30.8: 70 kWh more a week.
	in := find(rs, Increase, "house")
	if in == nil || !near(in.Evidence["usual_week_kwh"], 7*20.8, 1) || !near(in.Evidence["last_week_kwh"], 7*30.8, 1.5) ||
		!near(in.SavingPerYear, 70*52*0.2, 20) {
		t.Errorf("increase = %+v", in)
	}
	if find(rs, TimeShift, "") != nil || find(rs, PeakDemand, "") != nil {
		t.Errorf("time shift or peak without a time-of-use tariff or demand charge: %+v", rs)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].SavingPerYear > rs[i-1].SavingPerYear {
			t.Errorf("not sorted by saving: %+v", rs)
		}
	}
}

func TestTimeShiftAndPeakDemand(t *testing.T) {
	// 1 kW all day; peak price 0.3 from 18:00 to 22:00, 0.1 otherwise.
	flat := history("h", func(time.Time) float64 { return 1000 })
	// A plant at 10 kW, 30 kW for half an hour on the 20th.
	spike := history("plant", func(ts time.Time) float64 {
		if ts.Day() == 20 && ts.Hour() == 9 && ts.Minute() < 30 {
			return 30000
		}
		return 10000
	})
	st := openWith(t, flat, spike)
	all, _ := tariff.ParseDays([]string{"all"})
	tr := &tariff.Tariff{Currency: "EUR", PriceKWh: 0.1, DemandChargeKW: 10, Location: time.UTC,
		Periods: []tariff.Period{{Name: "peak", PriceKWh: 0.3, Days: all, From: 18 * 60, To: 22 * 60}}}
	rs, err := Recommend(st, st.Meters(), tr, now)
	if err != nil {
		t.Fatal(err)
	}
	// 4 h a day at the dear price: per meter 4 kWh (h) and 40 kWh (plant) a
	// day, 44 x 365 kWh a year; a fifth of it 0.2 EUR cheaper.
	ts := find(rs, TimeShift, "")
	if ts == nil || !near(ts.Evidence["dear_kwh_per_year"], 44*365, 30) || !near(ts.SavingPerYear, 44*365*ShiftableShare*0.2, 5) {
		t.Errorf("time shift = %+v", ts)
	}
	// The peak: (30 + 1) kW against the usual (10 + 1) kW, 10 EUR per kW a
	// month.
	pd := find(rs, PeakDemand, "")
	if pd == nil || !near(pd.Evidence["peak_kw"], 31, 0.5) || !near(pd.Evidence["p95_kw"], 11, 0.1) || !near(pd.SavingPerYear, 20*10*12, 60) {
		t.Errorf("peak demand = %+v", pd)
	}
}

func TestLowPowerFactor(t *testing.T) {
	var rs []meter.Reading
	for ts := now.Add(-35 * 24 * time.Hour); ts.Before(now); ts = ts.Add(5 * time.Minute) {
		rs = append(rs, meter.Reading{Meter: "press", Time: ts, PowerW: 10000, PowerFactor: 0.8, HasPF: true, Stamped: true})
	}
	st := openWith(t, rs)
	tr := &tariff.Tariff{Currency: "EUR", PriceKWh: 0.1, ReactivePriceKVArh: 0.04, Location: time.UTC}
	got, err := Recommend(st, st.Meters(), tr, now)
	if err != nil {
		t.Fatal(err)
	}
	// 28 days at 10 kW: 6720 kWh; at 0.8, tan phi is 0.75: 5040 kvarh, of
	// which 5040 - 6720 / 3 = 2800 are charged; 36500 kvarh a year.
	pf := find(got, PowerFactorKind, "press")
	if pf == nil || !near(pf.Evidence["power_factor"], 0.8, 1e-9) || !near(pf.Evidence["excess_kvarh_per_year"], 36500, 50) || !near(pf.SavingPerYear, 1460, 2) {
		t.Errorf("power factor = %+v", pf)
	}
	// Without a reactive energy price, nothing to save.
	tr.ReactivePriceKVArh = 0
	if got, _ := Recommend(st, st.Meters(), tr, now); find(got, PowerFactorKind, "press") != nil {
		t.Error("a power factor recommendation without a reactive price")
	}
}
