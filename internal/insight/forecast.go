package insight

import (
	"errors"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// Point is a forecast hour: its start and the mean net power (drawn less
// exported) expected over it.
type Point struct {
	T      time.Time `json:"t"`
	PowerW float64   `json:"power_w"`
}

// Forecast settings.
const (
	// forecastWeeks of history feed each hour's profile.
	forecastWeeks = 8
	// smoothing weighs the weeks exponentially: the last week by alpha,
	// the one before by alpha(1 - alpha), and so on.
	smoothing = 0.5
)

// Forecast returns the mean power of meters ids (summed) for each of the
// hours whole hours after now: for each, the same hour of the week in the
// 8 weeks before, smoothed exponentially (the latest weighs most), then
// scaled by how the last 24 hours compared with what the same method
// expected of them (between half and twice), so that a colder week or a
// holiday carries into the next day.
func Forecast(st *store.Store, ids []string, now time.Time, hours int) ([]Point, error) {
	start := now.Truncate(time.Hour).Add(time.Hour)
	from := start.Add(-time.Duration(forecastWeeks*7*24+24) * time.Hour)
	net := map[int64]float64{} // hour start -> net mean W
	for _, id := range ids {
		bs, _, err := st.Rollups(id, store.TierHour, from, start, forecastWeeks*7*24+48)
		if errors.Is(err, store.ErrUnknownMeter) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			net[b.Start.UnixNano()] += b.EnergyWh - b.ExportWh // Wh in an hour: mean W
		}
	}
	profile := func(h time.Time) (float64, bool) {
		var sum, weight float64
		w := smoothing
		for k := 1; k <= forecastWeeks; k++ {
			if v, ok := net[h.Add(-time.Duration(k)*7*24*time.Hour).UnixNano()]; ok {
				sum += w * v
				weight += w
			}
			w *= 1 - smoothing
		}
		if weight == 0 {
			return 0, false
		}
		return sum / weight, true
	}
	// How the last day compared with its own forecast.
	var actual, expected float64
	for h := start.Add(-24 * time.Hour); h.Before(start); h = h.Add(time.Hour) {
		v, ok := net[h.UnixNano()]
		p, okp := profile(h)
		if ok && okp {
			actual += v
			expected += p
		}
	}
	scale := 1.0
	if expected > 0 && actual > 0 {
		scale = min(max(actual/expected, 0.5), 2)
	}
	out := make([]Point, 0, hours)
	for i := range hours {
		h := start.Add(time.Duration(i) * time.Hour)
		p, ok := profile(h)
		if !ok {
			continue
		}
		out = append(out, Point{T: h, PowerW: p * scale})
	}
	return out, nil
}
