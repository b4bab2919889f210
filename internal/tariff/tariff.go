// Package tariff prices energy: a flat price, time-of-use periods by hour
// and weekday (holidays count as Sundays), a fixed daily charge, an export
// price, a demand charge per kW of the month's 15-minute peak, and a CO2
// factor. Times are read in the tariff's time zone, so periods follow its
// daylight saving time.
package tariff

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Period is a time-of-use period: a price on some weekdays between two
// times of day.
type Period struct {
	Name     string
	PriceKWh float64
	// Days the period applies on; a holiday counts as a Sunday.
	Days []time.Weekday
	// From and To are minutes since midnight, To exclusive; To may be 1440
	// (midnight at the end of the day), and To <= From wraps past midnight
	// (22:00 to 06:00), the part after midnight belonging to the next day.
	From, To int
}

// Tariff is how energy is priced at a site.
type Tariff struct {
	Currency string
	// PriceKWh is the price of energy drawn outside every period.
	PriceKWh float64
	// Periods are tried in order; the first that covers a time sets its
	// price.
	Periods []Period
	// Holidays are dates (in Location) priced as Sundays.
	Holidays map[Date]bool
	// DailyCharge is a fixed charge per day.
	DailyCharge float64
	// ExportPriceKWh is paid for energy sent to the grid.
	ExportPriceKWh float64
	// DemandChargeKW is charged per kW of each month's peak 15-minute demand.
	DemandChargeKW float64
	// CO2GramsKWh is the carbon intensity of energy drawn, in g/kWh.
	CO2GramsKWh float64
	// ReactivePriceKVArh is charged per kvarh of reactive energy beyond a
	// third of the active energy (a power factor under 0.95), as supplies
	// over 15 kW pay in Spain.
	ReactivePriceKVArh float64
	Location           *time.Location
}

// Date is a calendar date.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%.40q is not a date YYYY-MM-DD", s)
	}
	return Date{t.Year(), t.Month(), t.Day()}, nil
}

// ParseClock parses a time of day HH:MM (24:00 allowed) into minutes.
func ParseClock(s string) (int, error) {
	digit := func(i int) (int, bool) { return int(s[i] - '0'), s[i] >= '0' && s[i] <= '9' }
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%.40q is not a time of day HH:MM", s)
	}
	h1, ok1 := digit(0)
	h2, ok2 := digit(1)
	m1, ok3 := digit(3)
	m2, ok4 := digit(4)
	h, m := h1*10+h2, m1*10+m2
	if !ok1 || !ok2 || !ok3 || !ok4 || h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%.40q is not a time of day HH:MM", s)
	}
	return h*60 + m, nil
}

// ParseDays parses weekday names (mon..sun), or the shorthands weekdays
// (mon-fri), weekend (sat, sun) and all.
func ParseDays(names []string) ([]time.Weekday, error) {
	var out []time.Weekday
	add := func(ds ...time.Weekday) {
		for _, d := range ds {
			if !contains(out, d) {
				out = append(out, d)
			}
		}
	}
	for _, n := range names {
		switch strings.ToLower(strings.TrimSpace(n)) {
		case "mon":
			add(time.Monday)
		case "tue":
			add(time.Tuesday)
		case "wed":
			add(time.Wednesday)
		case "thu":
			add(time.Thursday)
		case "fri":
			add(time.Friday)
		case "sat":
			add(time.Saturday)
		case "sun":
			add(time.Sunday)
		case "weekdays":
			add(time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday)
		case "weekend":
			add(time.Saturday, time.Sunday)
		case "all":
			add(time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday)
		default:
			return nil, fmt.Errorf("%.40q is not a day (mon..sun, weekdays, weekend, all)", n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no days given")
	}
	return out, nil
}

func contains(ds []time.Weekday, d time.Weekday) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// covers reports whether p covers minute m of a day that is weekday d;
// prev is the weekday before (for the part of a period past midnight).
func (p Period) covers(d, prev time.Weekday, m int) bool {
	if p.From < p.To {
		return contains(p.Days, d) && m >= p.From && m < p.To
	}
	// Wraps midnight: [From, 1440) of its day, [0, To) of the next.
	return (contains(p.Days, d) && m >= p.From) || (contains(p.Days, prev) && m < p.To)
}

// weekday returns t's weekday in the tariff's zone, Sunday on a holiday,
// and the previous day's the same way.
func (t *Tariff) weekday(lt time.Time) (time.Weekday, time.Weekday) {
	day := func(x time.Time) time.Weekday {
		y, m, d := x.Date()
		if t.Holidays[Date{y, m, d}] {
			return time.Sunday
		}
		return x.Weekday()
	}
	return day(lt), day(lt.AddDate(0, 0, -1))
}

// Price returns the price of energy drawn at at.
func (t *Tariff) Price(at time.Time) float64 {
	if len(t.Periods) == 0 {
		return t.PriceKWh
	}
	lt := at.In(t.Location)
	d, prev := t.weekday(lt)
	m := lt.Hour()*60 + lt.Minute()
	for _, p := range t.Periods {
		if p.covers(d, prev, m) {
			return p.PriceKWh
		}
	}
	return t.PriceKWh
}

// PeriodName returns the name of the period at at, or "" outside them.
func (t *Tariff) PeriodName(at time.Time) string {
	lt := at.In(t.Location)
	d, prev := t.weekday(lt)
	m := lt.Hour()*60 + lt.Minute()
	for _, p := range t.Periods {
		if p.covers(d, prev, m) {
			return p.Name
		}
	}
	return ""
}

// HourPrice returns the mean price of the hour from start, minute by
// minute where a period begins or ends inside it (energy is taken as drawn
// evenly over the hour).
func (t *Tariff) HourPrice(start time.Time) float64 {
	if len(t.Periods) == 0 {
		return t.PriceKWh
	}
	lt := start.In(t.Location)
	m0 := lt.Hour()*60 + lt.Minute()
	split := m0+60 > 1440 // past midnight: the day, and so the periods, change
	for _, p := range t.Periods {
		for _, b := range []int{p.From % 1440, p.To % 1440} {
			if b > m0 && b < m0+60 {
				split = true
			}
		}
	}
	if !split {
		return t.Price(start)
	}
	sum := 0.0
	for i := range 60 {
		sum += t.Price(start.Add(time.Duration(i) * time.Minute))
	}
	return sum / 60
}

// Cost is the price and carbon of some energy.
type Cost struct {
	// Energy is what the energy drawn cost less what the energy exported
	// earned.
	Energy float64
	CO2Kg  float64
}

// Hour prices one hour's energy from start: inKWh drawn, outKWh exported.
func (t *Tariff) Hour(start time.Time, inKWh, outKWh float64) Cost {
	return Cost{
		Energy: inKWh*t.HourPrice(start) - outKWh*t.ExportPriceKWh,
		CO2Kg:  inKWh * t.CO2GramsKWh / 1000,
	}
}

// Round rounds an amount of money to four decimals: answers stay readable,
// and sums of many small amounts lose nothing a bill shows.
func Round(v float64) float64 { return math.Round(v*1e4) / 1e4 }
