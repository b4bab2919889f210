package dashboard

import (
	"math"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/asset"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// TestDailyEnergyFollowsTheTimeZone checks that days are local days, daylight
// saving time included: a constant 1 kW draws 24 kWh a day, and 25 kWh on
// the day Madrid's clocks go back.
func TestDailyEnergyFollowsTheTimeZone(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	first := time.Date(2026, 10, 24, 0, 0, 0, 0, madrid)
	var rs []meter.Reading
	for ts := first.Add(-time.Hour); ts.Before(first.AddDate(0, 0, 3).Add(time.Hour)); ts = ts.Add(5 * time.Minute) {
		rs = append(rs, meter.Reading{Meter: "m", Time: ts, PowerW: 1000, Stamped: true})
	}
	if _, err := st.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	d := newDashboard(st, Options{Location: madrid}, map[string]*asset.File{})
	days, err := d.dailyKWh([]string{"m"}, first, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{24, 25, 24}
	for i := range want {
		if math.Abs(days[i]-want[i]) > 1e-6 {
			t.Errorf("day %d = %g kWh, want %g (days %v)", i, days[i], want[i], days)
		}
	}
}
