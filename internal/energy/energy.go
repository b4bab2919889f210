// Package energy turns stored rollups into what people pay for: energy,
// cost and CO2 per calendar hour, day or month in a time zone (a day is 23
// or 25 hours when the clocks change), and the rolling 15-minute demand
// whose monthly peak a demand charge bills; and which tariff is in force
// (Tariffs): config.yaml's, or one saved on the dashboard or the API.
package energy

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// Interval is the length of calendar buckets.
type Interval int

// The intervals.
const (
	Hour Interval = iota
	Day
	Month
)

// ParseInterval parses hour, day or month.
func ParseInterval(s string) (Interval, bool) {
	switch s {
	case "hour":
		return Hour, true
	case "day":
		return Day, true
	case "month":
		return Month, true
	}
	return 0, false
}

func (iv Interval) String() string { return [...]string{"hour", "day", "month"}[iv] }

// Floor returns the start of the bucket holding t, in loc.
func (iv Interval) Floor(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	switch iv {
	case Hour:
		return lt.Truncate(time.Hour) // zones a whole number of hours off UTC
	case Day:
		y, m, d := lt.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	default:
		y, m, _ := lt.Date()
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
}

// Next returns the start of the bucket after the one starting at start.
func (iv Interval) Next(start time.Time) time.Time {
	switch iv {
	case Hour:
		return start.Add(time.Hour)
	case Day:
		return start.AddDate(0, 0, 1)
	default:
		return start.AddDate(0, 1, 0)
	}
}

// Bucket is the energy of meters over one calendar bucket.
type Bucket struct {
	Start, End time.Time
	// InKWh is drawn from the grid, OutKWh sent to it.
	InKWh, OutKWh float64
	// Cost is what InKWh cost less what OutKWh earned, at the tariff's
	// prices hour by hour; CO2Kg is InKWh's carbon.
	Cost, CO2Kg float64
}

// MaxBuckets bounds one series.
const MaxBuckets = 10000

// ErrTooMany is returned for a series of more than MaxBuckets buckets.
var ErrTooMany = errors.New("energy: too many buckets")

// Series returns the buckets of interval iv from the one holding from to
// the last starting before to, in tr's zone, with the energy of meters ids
// summed, priced by tr. Every bucket is there, empty ones at zero. Unknown
// meters count as none.
func Series(st *store.Store, ids []string, iv Interval, from, to time.Time, tr *tariff.Tariff) ([]Bucket, error) {
	loc := tr.Location
	var out []Bucket
	index := map[int64]int{}
	for start := iv.Floor(from, loc); start.Before(to); start = iv.Next(start) {
		if len(out) == MaxBuckets {
			return nil, fmt.Errorf("%w: more than %d %ss from %s to %s", ErrTooMany, MaxBuckets, iv, from.Format(time.RFC3339), to.Format(time.RFC3339))
		}
		index[start.UnixNano()] = len(out)
		out = append(out, Bucket{Start: start, End: iv.Next(start)})
	}
	if len(out) == 0 {
		return out, nil
	}
	first, end := out[0].Start, out[len(out)-1].End
	hours := int(end.Sub(first)/time.Hour) + 2
	for _, id := range ids {
		bs, _, err := st.Rollups(id, store.TierHour, first, end, hours)
		if errors.Is(err, store.ErrUnknownMeter) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, h := range bs {
			i, ok := index[iv.Floor(h.Start, loc).UnixNano()]
			if !ok {
				continue
			}
			in, outKWh := h.EnergyWh/1000, h.ExportWh/1000
			c := tr.Hour(h.Start, in, outKWh)
			b := &out[i]
			b.InKWh += in
			b.OutKWh += outKWh
			b.Cost += c.Energy
			b.CO2Kg += c.CO2Kg
		}
	}
	return out, nil
}

// DemandWindow is the window of the demand a demand charge bills.
const DemandWindow = 15 * time.Minute

// Demand is a mean demand over DemandWindow, and when the window ended.
type Demand struct {
	KW float64
	At time.Time
}

// Demands returns, for meters ids summed, the rolling 15-minute demand of
// the window ending at now (the last whole minute) and the highest such
// demand of any window wholly in [from, now]. Windows slide a minute at a
// time over the 1-minute rollups of energy drawn; a minute without data
// counts as nothing drawn.
func Demands(st *store.Store, ids []string, from, now time.Time) (current, peak Demand, err error) {
	const window = int(DemandWindow / time.Minute)
	end := now.Truncate(time.Minute)
	start := from.Truncate(time.Minute).Add(-DemandWindow)
	if !start.Before(end) {
		return Demand{At: end}, Demand{}, nil
	}
	n := int(end.Sub(start) / time.Minute)
	wh := make([]float64, n)
	for _, id := range ids {
		bs, _, err := st.Rollups(id, store.TierMinute, start, end, n+1)
		if errors.Is(err, store.ErrUnknownMeter) {
			continue
		}
		if err != nil {
			return Demand{}, Demand{}, err
		}
		for _, b := range bs {
			if i := int(b.Start.Sub(start) / time.Minute); i >= 0 && i < n {
				wh[i] += b.EnergyWh
			}
		}
	}
	sum := 0.0
	for i := range n {
		sum += wh[i]
		if i >= window {
			sum -= wh[i-window]
		}
		if i < window-1 {
			continue
		}
		at := start.Add(time.Duration(i+1) * time.Minute)
		kw := max(sum, 0) / 1000 * float64(time.Hour/DemandWindow)
		// Only windows wholly inside [from, now]: a month's peak is its own.
		if !at.Before(from.Truncate(time.Minute).Add(DemandWindow)) && kw > peak.KW {
			peak = Demand{KW: kw, At: at}
		}
		if i == n-1 {
			current = Demand{KW: kw, At: at}
		}
	}
	return current, peak, nil
}

// ChargedDays returns how many of the days from from to to (in loc, the
// one holding from to the last starting before to) owe a site's daily
// fixed charge: those ending after since, when the site's data begins
// (see store.Meter.Since). None when since is zero: a site with no data
// owes nothing yet, and days before Vatio knew of it are not its to book.
func ChargedDays(since, from, to time.Time, loc *time.Location) int {
	if since.IsZero() {
		return 0
	}
	n := 0
	for d := Day.Floor(from, loc); d.Before(to); d = Day.Next(d) {
		if since.Before(Day.Next(d)) {
			n++
		}
	}
	return n
}

// SiteSince returns when the data of a site of meters ms begins: the
// earliest of their Since, zero for none.
func SiteSince(ms ...store.Meter) time.Time {
	var since time.Time
	for _, m := range ms {
		if s := m.Since(); !s.IsZero() && (since.IsZero() || s.Before(since)) {
			since = s
		}
	}
	return since
}

// RoundKWh rounds an energy to the microwatt-hour (1e-9 kWh), far below any
// meter's resolution: sums of many readings' energy carry float noise
// (2.5099999999997746 for a file's 2.51 kWh) that answers should not.
func RoundKWh(kwh float64) float64 { return math.Round(kwh*1e9) / 1e9 }
