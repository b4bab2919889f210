package insight

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// TestForecastError holds back the last day of 9 weeks of a household's
// history (a daily shape, weekends different, noise) and reports the
// forecast's mean absolute percentage error on it.
func TestForecastError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shape := func(ts time.Time) float64 {
		h := float64(ts.Hour()) + float64(ts.Minute())/60
		w := 300 + 900*math.Exp(-(h-8)*(h-8)/4) + 1500*math.Exp(-(h-20)*(h-20)/6)
		if wd := ts.Weekday(); wd == time.Saturday || wd == time.Sunday {
			w *= 1.3
		}
		return w
	}
	end := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	var rs []meter.Reading
	for ts := end.Add(-9 * 7 * 24 * time.Hour); ts.Before(end); ts = ts.Add(time.Minute) {
		rs = append(rs, meter.Reading{Meter: "home", Time: ts, PowerW: shape(ts) * (1 + 0.15*(rng.Float64()-0.5)), Stamped: true})
	}
	st := openWith(t, rs)
	cut := end.Add(-24 * time.Hour)
	fc, err := Forecast(st, []string{"home"}, cut.Add(-time.Minute), 24)
	if err != nil {
		t.Fatal(err)
	}
	if len(fc) != 24 || !fc[0].T.Equal(cut) {
		t.Fatalf("forecast of %d hours from %v", len(fc), fc)
	}
	var ape float64
	for _, p := range fc {
		bs, _, err := st.Rollups("home", store.TierHour, p.T, p.T.Add(time.Hour), 2)
		if err != nil || len(bs) != 1 {
			t.Fatalf("actual at %s: %v", p.T, err)
		}
		actual := bs[0].EnergyWh
		ape += math.Abs(p.PowerW-actual) / actual
	}
	mape := ape / 24 * 100
	t.Logf("forecast MAPE on the held-back day: %.1f%%", mape)
	if mape > 10 {
		t.Errorf("MAPE %.1f%%: the forecast does not follow a plain weekly pattern", mape)
	}
	// A meter without history has no forecast.
	if fc, err := Forecast(st, []string{"nobody"}, end, 24); err != nil || len(fc) != 0 {
		t.Errorf("forecast of an unknown meter = %v, %v", fc, err)
	}
}
