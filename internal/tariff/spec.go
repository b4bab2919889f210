package tariff

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Spec is a tariff as people write it: the tariff section of config.yaml,
// or the body of PUT /api/v1/tariff and the dashboard's tariff form, with
// the same keys. Build checks it and makes the Tariff it describes, so
// that a tariff is judged the same wherever it was written.
type Spec struct {
	// Currency is an ISO 4217 code, such as EUR.
	Currency string `json:"currency"`
	// PriceKWh is the price of a kWh drawn outside every period.
	PriceKWh float64 `json:"price_kwh"`
	// ExportPriceKWh is paid for a kWh sent to the grid.
	ExportPriceKWh float64 `json:"export_price_kwh"`
	// DailyCharge is a fixed charge per day.
	DailyCharge float64 `json:"daily_charge"`
	// DemandChargeKW is charged per kW of each month's peak 15-minute
	// demand.
	DemandChargeKW float64 `json:"demand_charge_kw"`
	// CO2GramsKWh is the grid's carbon intensity, g/kWh.
	CO2GramsKWh float64 `json:"co2_g_kwh"`
	// ReactivePriceKVArh is charged per kvarh of reactive energy beyond a
	// third of the active energy; 0 when the supply pays none.
	ReactivePriceKVArh float64 `json:"reactive_price_kvarh"`
	// Periods are time-of-use prices; the first that covers a time wins.
	Periods []PeriodSpec `json:"periods"`
	// Holidays (YYYY-MM-DD) are priced as Sundays.
	Holidays []string `json:"holidays"`
}

// PeriodSpec is a time-of-use period as written.
type PeriodSpec struct {
	// Name names the period in costs (peak, off-peak).
	Name string `json:"name"`
	// PriceKWh is the price of a kWh drawn in the period.
	PriceKWh float64 `json:"price_kwh"`
	// Days: mon..sun, weekdays, weekend or all.
	Days []string `json:"days"`
	// From and To are times of day HH:MM; To is exclusive, may be 24:00,
	// and To before From runs past midnight.
	From string `json:"from"`
	To   string `json:"to"`
}

// FieldError is what is wrong with one field of a Spec, named by its key
// as written (price_kwh, periods[0].days, holidays[1]).
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Limits of a Spec's numbers, wide enough for any real tariff and narrow
// enough that a typing slip (a price in cents) is caught.
const (
	// MaxPeriods is the most time-of-use periods a tariff has.
	MaxPeriods = 48
	// MaxHolidays is the most holidays a tariff lists.
	MaxHolidays = 400
)

// Build checks s and returns the tariff it describes in the time zone
// loc. Its error joins a *FieldError for each field wrong, in the order of
// the keys (a period's together), so that every mistake is reported at
// once.
func (s Spec) Build(loc *time.Location) (*Tariff, error) {
	out := &Tariff{
		Currency: s.Currency, PriceKWh: s.PriceKWh, ExportPriceKWh: s.ExportPriceKWh, DailyCharge: s.DailyCharge,
		DemandChargeKW: s.DemandChargeKW, CO2GramsKWh: s.CO2GramsKWh, ReactivePriceKVArh: s.ReactivePriceKVArh,
		Location: loc, Holidays: map[Date]bool{},
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	price := func(field string, v float64) {
		if !finite(v) || v < -100 || v > 100 {
			bad(field, "%g is not a price from -100 to 100", v)
		}
	}
	if len(s.Currency) != 3 || strings.ContainsFunc(s.Currency, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		bad("currency", "%.40q is not a currency code such as EUR", s.Currency)
	}
	price("price_kwh", s.PriceKWh)
	price("export_price_kwh", s.ExportPriceKWh)
	if !finite(s.DailyCharge) || s.DailyCharge < 0 || s.DailyCharge > 1e6 {
		bad("daily_charge", "%g is not an amount from 0 to 1000000", s.DailyCharge)
	}
	if !finite(s.DemandChargeKW) || s.DemandChargeKW < 0 || s.DemandChargeKW > 1e6 {
		bad("demand_charge_kw", "%g is not an amount from 0 to 1000000", s.DemandChargeKW)
	}
	if !finite(s.CO2GramsKWh) || s.CO2GramsKWh < 0 || s.CO2GramsKWh > 5000 {
		bad("co2_g_kwh", "%g is not from 0 to 5000 g/kWh", s.CO2GramsKWh)
	}
	if !finite(s.ReactivePriceKVArh) || s.ReactivePriceKVArh < 0 || s.ReactivePriceKVArh > 100 {
		bad("reactive_price_kvarh", "%g is not a price from 0 to 100", s.ReactivePriceKVArh)
	}
	if len(s.Periods) > MaxPeriods {
		bad("periods", "%d periods; at most %d", len(s.Periods), MaxPeriods)
	}
	// Past the most allowed, items are not looked at: the count's
	// problem says enough, and an answer naming each of thousands of bad
	// items would be many times the request.
	for i, p := range s.Periods[:min(len(s.Periods), MaxPeriods)] {
		key := fmt.Sprintf("periods[%d].", i)
		if strings.TrimSpace(p.Name) == "" {
			bad(key+"name", "must not be empty")
		} else if len(p.Name) > 64 {
			bad(key+"name", "longer than 64 characters")
		}
		price(key+"price_kwh", p.PriceKWh)
		days, err := ParseDays(p.Days)
		if err != nil {
			bad(key+"days", "%v", err)
		}
		from, err := ParseClock(p.From)
		if err != nil {
			bad(key+"from", "%v", err)
		}
		to, err2 := ParseClock(p.To)
		if err2 != nil {
			bad(key+"to", "%v", err2)
		}
		// 00:00 to 24:00 is the whole day (a weekend priced as a valley);
		// any other from and to at the same time of day leave it no time.
		if err == nil && err2 == nil && from%1440 == to%1440 && (from != 0 || to != 1440) {
			bad(key+"to", "%s is the same time as from: a period needs some time", p.To)
		}
		out.Periods = append(out.Periods, Period{Name: p.Name, PriceKWh: p.PriceKWh, Days: days, From: from, To: to})
	}
	if len(s.Holidays) > MaxHolidays {
		bad("holidays", "%d holidays; at most %d", len(s.Holidays), MaxHolidays)
	}
	for i, h := range s.Holidays[:min(len(s.Holidays), MaxHolidays)] {
		d, err := ParseDate(h)
		if err != nil {
			bad(fmt.Sprintf("holidays[%d]", i), "%v", err)
		}
		out.Holidays[d] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Summary describes s in a few words for the audit log:
// "EUR 0.15/kWh, 2 periods, export 0.05, daily 0.30, demand 4/kW, 250 g CO2/kWh".
func (t Spec) Summary() string {
	parts := []string{fmt.Sprintf("%s %g/kWh", t.Currency, t.PriceKWh)}
	if n := len(t.Periods); n > 0 {
		parts = append(parts, fmt.Sprintf("%d periods", n))
	}
	if t.ExportPriceKWh != 0 {
		parts = append(parts, fmt.Sprintf("export %g", t.ExportPriceKWh))
	}
	if t.DailyCharge != 0 {
		parts = append(parts, fmt.Sprintf("daily %g", t.DailyCharge))
	}
	if t.DemandChargeKW != 0 {
		parts = append(parts, fmt.Sprintf("demand %g/kW", t.DemandChargeKW))
	}
	parts = append(parts, fmt.Sprintf("%g g CO2/kWh", t.CO2GramsKWh))
	return strings.Join(parts, ", ")
}

// FieldErrors returns the *FieldError joined in err (Build's), in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

// Spec returns t as written: days by name (all, weekdays and weekend where
// a period has exactly those), times of day HH:MM, holidays in date order.
func (t *Tariff) Spec() Spec {
	out := Spec{Currency: t.Currency, PriceKWh: t.PriceKWh, ExportPriceKWh: t.ExportPriceKWh, DailyCharge: t.DailyCharge,
		DemandChargeKW: t.DemandChargeKW, CO2GramsKWh: t.CO2GramsKWh, ReactivePriceKVArh: t.ReactivePriceKVArh,
		Periods: []PeriodSpec{}, Holidays: []string{}}
	clock := func(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }
	for _, p := range t.Periods {
		out.Periods = append(out.Periods, PeriodSpec{Name: p.Name, PriceKWh: p.PriceKWh, Days: DayNames(p.Days), From: clock(p.From), To: clock(p.To)})
	}
	for d := range t.Holidays {
		out.Holidays = append(out.Holidays, fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day))
	}
	slices.Sort(out.Holidays)
	return out
}

// DayNames writes days as ParseDays reads them: all, weekdays or weekend
// for exactly those days, else each day's name from Monday on.
func DayNames(days []time.Weekday) []string {
	names := [...]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	has := func(ds ...time.Weekday) bool {
		for _, d := range ds {
			if !contains(days, d) {
				return false
			}
		}
		return true
	}
	n := 0
	for d := time.Sunday; d <= time.Saturday; d++ {
		if contains(days, d) {
			n++
		}
	}
	switch {
	case n == 7:
		return []string{"all"}
	case n == 5 && has(time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday):
		return []string{"weekdays"}
	case n == 2 && has(time.Saturday, time.Sunday):
		return []string{"weekend"}
	}
	var out []string
	for _, d := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
		if contains(days, d) {
			out = append(out, names[d])
		}
	}
	return out
}
