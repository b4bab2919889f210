package dashboard

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"
)

// every returns n points from ms, stepMs apart, at 1 kW.
func every(ms, stepMs float64, n int) [][2]float64 {
	out := make([][2]float64, n)
	for i := range out {
		out[i] = [2]float64{ms + float64(i)*stepMs, 1}
	}
	return out
}

func TestBreakAfter(t *testing.T) {
	const s, m = 1000.0, 60000.0
	for _, c := range []struct {
		name          string
		interval, gap time.Duration
		step          time.Duration
		pts           [][2]float64
		want          float64
	}{
		{"known interval", 10 * time.Second, 10 * time.Minute, 0, nil, 15 * s},
		{"unknown interval: the store's max gap", 0, 10 * time.Minute, 0, nil, 10 * m},
		{"minute means of a meter every second", time.Second, 10 * time.Minute, time.Minute, every(0, m, 60), 90 * s},
		{"hourly history of a meter every 10 s now", 10 * time.Second, 10 * time.Minute, 0, every(0, 60*m, 24), 90 * m},
		{"hourly history, interval unknown", 0, 10 * time.Minute, 0, every(0, 60*m, 24), 90 * m},
		{"too few points for their spacing to count", 10 * time.Second, 10 * time.Minute, 0, every(0, 60*m, spacingPoints-1), 15 * s},
		{"an outage does not move the median", 10 * time.Second, 10 * time.Minute, 0,
			append(every(0, 10*s, 20), every(3600*s, 10*s, 20)...), 15 * s},
	} {
		if got := breakAfter(c.interval, c.gap, c.step, c.pts); got != c.want {
			t.Errorf("%s: breakAfter(%s, %s, %s, %d points) = %g ms, want %g", c.name, c.interval, c.gap, c.step, len(c.pts), got, c.want)
		}
	}
}

func TestWithBreaks(t *testing.T) {
	for _, c := range []struct {
		name    string
		pts     [][2]float64
		breakMs float64
		want    string
	}{
		{"none", nil, 15, `[]`},
		{"one reading: a dot", [][2]float64{{0, 1}}, 15, `[{"value":[0,1],"symbol":"circle"}]`},
		{"numbers as encoding/json writes them", [][2]float64{{1795600200000, 1.5e-7}, {1795600200001, -2500.125}}, 15,
			`[[1795600200000,1.5e-7],[1795600200001,-2500.125]]`},
		{"continuous", [][2]float64{{0, 1}, {10, 2}, {25, 3}}, 15, `[[0,1],[10,2],[25,3]]`},
		{"a silence breaks the line", [][2]float64{{0, 1}, {10, 2}, {100, 3}, {110, 4}}, 15,
			`[[0,1],[10,2],[55,null],[100,3],[110,4]]`},
		{"a reading between two silences is a dot", [][2]float64{{0, 1}, {10, 2}, {100, 3}, {200, 4}, {210, 5}}, 15,
			`[[0,1],[10,2],[55,null],{"value":[100,3],"symbol":"circle"},[150,null],[200,4],[210,5]]`},
		{"first and last alone", [][2]float64{{0, 1}, {100, 2}, {110, 3}, {200, 4}}, 15,
			`[{"value":[0,1],"symbol":"circle"},[50,null],[100,2],[110,3],[155,null],{"value":[200,4],"symbol":"circle"}]`},
		{"exactly the break is no gap", [][2]float64{{0, 1}, {15, 2}}, 15, `[[0,1],[15,2]]`},
	} {
		b := withBreaks(c.pts, c.breakMs)
		if !json.Valid(b) || string(b) != c.want {
			t.Errorf("%s: withBreaks(%v, %g) = %s, want %s", c.name, c.pts, c.breakMs, b, c.want)
		}
	}
}

func TestZoomToData(t *testing.T) {
	const m = 60000.0
	week := 7 * 24 * 60 * m
	to := 100 * week // any end
	from := to - week
	for _, c := range []struct {
		name       string
		pts        [][2]float64
		start, end float64 // in minutes before to
	}{
		{"no data: the week", nil, 7 * 24 * 60, 0},
		{"7 minutes ending now", every(to-8*m, m, 8), 13, 0},
		{"one reading an hour ago", [][2]float64{{to - 60*m, 1}}, 65, 55},
		{"an old day", every(from+24*60*m, 60*m, 25), 7*24*60 - 24*60 + 144, 7*24*60 - 48*60 - 144},
		{"four days: half the week or more, the week", every(to-4*24*60*m, 60*m, 97), 7 * 24 * 60, 0},
		{"a reading at the start", [][2]float64{{from, 1}}, 7 * 24 * 60, 7*24*60 - 10},
	} {
		start, end := zoomToData(from, to, c.pts)
		// The expected window in percent of the week.
		wantStart, wantEnd := 100*(week-c.start*m)/week, 100*(week-c.end*m)/week
		if fmt.Sprintf("%.4f %.4f", start, end) != fmt.Sprintf("%.4f %.4f", wantStart, wantEnd) {
			t.Errorf("%s: zoomToData = %.4f%%-%.4f%%, want %.4f%%-%.4f%%", c.name, start, end, wantStart, wantEnd)
		}
	}
}

// TestAppendNumber checks that a line's numbers are written as
// encoding/json writes them.
func TestAppendNumber(t *testing.T) {
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e-6, 9.99e-7, 1.5e-7, 1e-10, 1e20, 1e21, 1.7953e12, 123456.789, -3e-300, math.MaxFloat64} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendNumber(nil, f); string(got) != string(want) {
			t.Errorf("appendNumber(%v) = %s, want %s", f, got, want)
		}
	}
	if got := string(appendNumber(nil, math.NaN())); got != "null" {
		t.Errorf("appendNumber(NaN) = %s, want null", got)
	}
}
