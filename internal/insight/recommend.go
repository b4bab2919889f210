// Package insight reads a site's history for what to do about it:
// energy-saving recommendations, each with an estimated yearly saving and
// the evidence behind it, and a forecast of the next day.
package insight

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// Recommendation kinds.
const (
	Baseload   = "baseload"
	TimeShift  = "time_shift"
	PeakDemand = "peak_demand"
	Standby    = "standby"
	Increase   = "increase"
	// PowerFactorKind is a power factor low enough to pay for reactive
	// energy.
	PowerFactorKind = "power_factor"
)

// Recommendation is something to do, what it would save in a year, and why
// Vatio thinks so.
type Recommendation struct {
	Kind  string `json:"kind"`
	Meter string `json:"meter,omitempty"`
	// Title and Detail are in English; Evidence holds the numbers behind
	// them, for the dashboard to write in its language.
	Title         string             `json:"title"`
	Detail        string             `json:"detail"`
	SavingPerYear float64            `json:"saving_per_year"`
	Currency      string             `json:"currency"`
	Evidence      map[string]float64 `json:"evidence"`
}

// Assumptions of the estimates, stated in each recommendation's evidence.
const (
	// BaseloadCut is the part of an always-on load a household typically
	// finds and switches off.
	BaseloadCut = 0.25
	// ShiftableShare is the part of peak-period energy that can move to a
	// cheaper period (washing, dishwasher, water heating, charging).
	ShiftableShare = 0.2
	// minBaseloadW, minSavingPerYear: smaller findings are not worth a word.
	minBaseloadW     = 30
	minSavingPerYear = 1
)

// Recommend returns the recommendations for meters at now, from their
// history: the last 28 days (4 weeks) for patterns, the current and last
// month for the demand peak. Main meters (those without a parent) give the
// site's; every meter may show standby use. Sorted by saving, largest
// first.
func Recommend(st *store.Store, meters []store.Meter, tr *tariff.Tariff, now time.Time) ([]Recommendation, error) {
	var out []Recommendation
	var mains []string
	for _, m := range meters {
		if m.Info.Parent == "" {
			mains = append(mains, m.ID)
		}
	}
	avgPrice := averagePrice(tr, now)
	for _, m := range meters {
		hours, err := hourly(st, m.ID, now.Add(-28*24*time.Hour), now)
		if err != nil {
			return nil, err
		}
		if m.Info.Parent == "" {
			if r, ok := baseload(m.ID, hours, tr, avgPrice); ok {
				out = append(out, r)
			}
			r, ok, err := increase(st, m, tr, now, avgPrice)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, r)
			}
		}
		if r, ok := standby(m.ID, hours, tr, avgPrice, now); ok {
			out = append(out, r)
		}
		r, ok, err := powerFactor(st, m.ID, hours, tr, now)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	if len(mains) > 0 {
		r, ok, err := timeShift(st, mains, tr, now)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
		r, ok, err = peakDemand(st, mains, tr, now)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, r)
		}
	}
	out = slices.DeleteFunc(out, func(r Recommendation) bool { return r.SavingPerYear < minSavingPerYear })
	slices.SortStableFunc(out, func(a, b Recommendation) int {
		return cmp.Or(cmp.Compare(b.SavingPerYear, a.SavingPerYear), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Meter, b.Meter))
	})
	return out, nil
}

func hourly(st *store.Store, id string, from, to time.Time) ([]store.Bucket, error) {
	bs, _, err := st.Rollups(id, store.TierHour, from, to, int(to.Sub(from)/time.Hour)+2)
	if errors.Is(err, store.ErrUnknownMeter) {
		return nil, nil
	}
	return bs, err
}

// averagePrice is the mean price over the week before now, hour by hour:
// what a kWh drawn evenly costs.
func averagePrice(tr *tariff.Tariff, now time.Time) float64 {
	sum := 0.0
	start := now.Truncate(time.Hour).Add(-7 * 24 * time.Hour)
	for h := range 7 * 24 {
		sum += tr.HourPrice(start.Add(time.Duration(h) * time.Hour))
	}
	return sum / (7 * 24)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// baseload finds the always-on load: the median over the nights of the
// lowest hourly minimum between 01:00 and 05:00 (local). It costs that
// power all year round; a quarter of it is what is typically found and
// switched off.
func baseload(id string, hours []store.Bucket, tr *tariff.Tariff, price float64) (Recommendation, bool) {
	nightMin := map[string]float64{}
	for _, h := range hours {
		lt := h.Start.In(tr.Location)
		if h.N == 0 || lt.Hour() < 1 || lt.Hour() >= 5 {
			continue
		}
		day := lt.Format(time.DateOnly)
		if v, ok := nightMin[day]; !ok || h.MinW < v {
			nightMin[day] = h.MinW
		}
	}
	if len(nightMin) < 7 {
		return Recommendation{}, false // a week of nights at least
	}
	var mins []float64
	for _, v := range nightMin {
		mins = append(mins, v)
	}
	w := median(mins)
	if w < minBaseloadW {
		return Recommendation{}, false
	}
	kwh := w * 8760 / 1000
	cost := kwh * price
	return Recommendation{
		Kind: Baseload, Meter: id, Currency: tr.Currency,
		Title:         fmt.Sprintf("%s draws %.0f W even at night", id, w),
		Detail:        fmt.Sprintf("An always-on load of %.0f W uses %.0f kWh a year (%.0f %s). Switching off a quarter of it (standby devices, an old fridge, a pump) saves the amount shown.", w, kwh, cost, tr.Currency),
		SavingPerYear: round2(cost * BaseloadCut),
		Evidence:      map[string]float64{"baseload_w": round2(w), "nights": float64(len(mins)), "kwh_per_year": round2(kwh), "cost_per_year": round2(cost), "assumed_cut": BaseloadCut, "price_kwh": math.Round(price*1e4) / 1e4},
	}, true
}

// standby finds a meter that spends most hours at a few watts: a device
// left on standby. Switching it off at the plug saves all of it.
func standby(id string, hours []store.Bucket, tr *tariff.Tariff, price float64, now time.Time) (Recommendation, bool) {
	var low []float64
	total := 0
	for _, h := range hours {
		if h.N == 0 || now.Sub(h.Start) > 14*24*time.Hour {
			continue
		}
		total++
		if h.MeanW >= 0.5 && h.MeanW <= 15 {
			low = append(low, h.MeanW)
		}
	}
	if total < 48 || float64(len(low)) < 0.4*float64(total) {
		return Recommendation{}, false
	}
	w := median(low)
	share := float64(len(low)) / float64(total)
	kwh := w * 8760 * share / 1000
	return Recommendation{
		Kind: Standby, Meter: id, Currency: tr.Currency,
		Title:         fmt.Sprintf("%s is on standby %.0f%% of the time", id, share*100),
		Detail:        fmt.Sprintf("It draws about %.1f W when idle. Switching it off at the plug (or with a timer) saves the amount shown.", w),
		SavingPerYear: round2(kwh * price),
		Evidence:      map[string]float64{"standby_w": round2(w), "standby_share": round2(share), "hours_seen": float64(total), "kwh_per_year": round2(kwh)},
	}, true
}

// timeShift finds energy drawn in the dearest time-of-use period that
// could move to the cheapest price.
func timeShift(st *store.Store, mains []string, tr *tariff.Tariff, now time.Time) (Recommendation, bool, error) {
	if len(tr.Periods) == 0 {
		return Recommendation{}, false, nil
	}
	cheapest, dearest := tr.PriceKWh, tr.PriceKWh
	for _, p := range tr.Periods {
		cheapest, dearest = min(cheapest, p.PriceKWh), max(dearest, p.PriceKWh)
	}
	if dearest-cheapest < 0.005 {
		return Recommendation{}, false, nil
	}
	var kwh float64
	days := 28.0
	for _, id := range mains {
		hours, err := hourly(st, id, now.Add(-28*24*time.Hour), now)
		if err != nil {
			return Recommendation{}, false, err
		}
		for _, h := range hours {
			if tr.HourPrice(h.Start) >= dearest-1e-9 {
				kwh += h.EnergyWh / 1000
			}
		}
	}
	perYear := kwh * 365 / days
	saving := perYear * ShiftableShare * (dearest - cheapest)
	return Recommendation{
		Kind: TimeShift, Currency: tr.Currency,
		Title:         fmt.Sprintf("%.0f kWh a year are drawn at the dearest price", perYear),
		Detail:        fmt.Sprintf("Energy costs %.3f %s/kWh in the dearest period and %.3f at the cheapest. Moving a fifth of it (washing machine, dishwasher, water heating, car charging) to cheap hours saves the amount shown.", dearest, tr.Currency, cheapest),
		SavingPerYear: round2(saving),
		Evidence:      map[string]float64{"dear_kwh_28_days": round2(kwh), "dear_kwh_per_year": round2(perYear), "dearest_price": dearest, "cheapest_price": cheapest, "assumed_share": ShiftableShare},
	}, true, nil
}

// peakDemand compares this month's (or, early in a month, the last
// month's) peak 15-minute demand with its 95th percentile: spreading the
// few loads that make the peak brings it down to there.
func peakDemand(st *store.Store, mains []string, tr *tariff.Tariff, now time.Time) (Recommendation, bool, error) {
	if tr.DemandChargeKW <= 0 {
		return Recommendation{}, false, nil
	}
	from := energy.Month.Floor(now, tr.Location)
	if now.Sub(from) < 7*24*time.Hour {
		from = from.AddDate(0, -1, 0)
	}
	demands, err := windows(st, mains, from, now)
	if err != nil || len(demands) < 4*24 {
		return Recommendation{}, false, err
	}
	peak := slices.Max(demands)
	slices.Sort(demands)
	p95 := demands[int(0.95*float64(len(demands)-1))]
	if peak-p95 < 0.1 {
		return Recommendation{}, false, nil
	}
	saving := (peak - p95) * tr.DemandChargeKW * 12
	return Recommendation{
		Kind: PeakDemand, Currency: tr.Currency,
		Title:         fmt.Sprintf("A few moments make a %.1f kW demand peak", peak),
		Detail:        fmt.Sprintf("95%% of the time demand stays under %.1f kW. Not running the largest loads together (staggering them, or letting load shedding do it) keeps the monthly peak there, at %.2f %s per kW a month.", p95, tr.DemandChargeKW, tr.Currency),
		SavingPerYear: round2(saving),
		Evidence:      map[string]float64{"peak_kw": round2(peak), "p95_kw": round2(p95), "demand_charge_kw": tr.DemandChargeKW},
	}, true, nil
}

// windows returns the 15-minute demands (kW) of the quarter hours in
// [from, to), summed over meters.
func windows(st *store.Store, ids []string, from, to time.Time) ([]float64, error) {
	from, to = from.Truncate(15*time.Minute), to.Truncate(15*time.Minute)
	n := int(to.Sub(from) / (15 * time.Minute))
	if n <= 0 {
		return nil, nil
	}
	wh := make([]float64, n)
	for _, id := range ids {
		bs, _, err := st.Rollups(id, store.TierMinute, from, to, n*15+1)
		if errors.Is(err, store.ErrUnknownMeter) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			if i := int(b.Start.Sub(from) / (15 * time.Minute)); i >= 0 && i < n {
				wh[i] += b.EnergyWh
			}
		}
	}
	for i := range wh {
		wh[i] = wh[i] / 1000 * 4
	}
	return wh, nil
}

// increase compares the last 7 days with the same weekdays of the 3 weeks
// before: a rise of a fifth or more is worth a look.
// Only whole weeks of data count.
func increase(st *store.Store, m store.Meter, tr *tariff.Tariff, now time.Time, price float64) (Recommendation, bool, error) {
	id := m.ID
	today := energy.Day.Floor(now, tr.Location)
	week := func(w int) (float64, error) {
		from, to := today.AddDate(0, 0, -7*(w+1)), today.AddDate(0, 0, -7*w)
		if from.Before(m.First) {
			return 0, nil // not a whole week of data
		}
		bs, err := energy.Series(st, []string{id}, energy.Day, from, to, tr)
		if err != nil {
			return 0, err
		}
		sum := 0.0
		for _, b := range bs {
			sum += b.InKWh
		}
		return sum, nil
	}
	last, err := week(0)
	if err != nil {
		return Recommendation{}, false, err
	}
	var before []float64
	for w := 1; w <= 3; w++ {
		v, err := week(w)
		if err != nil {
			return Recommendation{}, false, err
		}
		if v > 0 {
			before = append(before, v)
		}
	}
	if len(before) < 2 {
		return Recommendation{}, false, nil
	}
	usual := 0.0
	for _, v := range before {
		usual += v
	}
	usual /= float64(len(before))
	if usual <= 0 || last < usual*1.2 || last-usual < 1 {
		return Recommendation{}, false, nil
	}
	up := last/usual - 1
	return Recommendation{
		Kind: Increase, Meter: id, Currency: tr.Currency,
		Title:         fmt.Sprintf("%s drew %.0f%% more this week", id, up*100),
		Detail:        fmt.Sprintf("%.1f kWh in the last 7 days against %.1f kWh in a usual week of the 3 before. Finding what changed and going back to it saves the amount shown.", last, usual),
		SavingPerYear: round2((last - usual) * 52 * price),
		Evidence:      map[string]float64{"last_week_kwh": round2(last), "usual_week_kwh": round2(usual), "increase": round2(up)},
	}, true, nil
}

// powerFactor finds a meter whose power factor, weighted by power over the
// last 4 weeks, is under 0.95: the reactive energy beyond a third of the
// active energy is charged (tariff.ReactivePriceKVArh), and a capacitor
// bank that brings the power factor to 0.95 saves all of that charge.
func powerFactor(st *store.Store, id string, hours []store.Bucket, tr *tariff.Tariff, now time.Time) (Recommendation, bool, error) {
	if tr.ReactivePriceKVArh <= 0 {
		return Recommendation{}, false, nil
	}
	stats, err := st.PowerFactor(id, now.Add(-28*24*time.Hour), now)
	if err != nil || stats.Readings < 100 || stats.Mean >= 0.95 || stats.Mean <= 0 {
		return Recommendation{}, false, err
	}
	var kwh float64
	for _, h := range hours {
		kwh += h.EnergyWh / 1000
	}
	tanPhi := math.Sqrt(1-stats.Mean*stats.Mean) / stats.Mean
	kvarh := kwh * tanPhi
	excess := max(kvarh-kwh/3, 0)
	perYear := excess * 365 / 28
	return Recommendation{
		Kind: PowerFactorKind, Meter: id, Currency: tr.Currency,
		Title:         fmt.Sprintf("%s runs at a power factor of %.2f", id, stats.Mean),
		Detail:        fmt.Sprintf("Its reactive energy beyond a third of the active energy, about %.0f kvarh a year, is charged at %.3f %s/kvarh. Power factor correction (a capacitor bank sized for 0.95 or better) saves the amount shown.", perYear, tr.ReactivePriceKVArh, tr.Currency),
		SavingPerYear: round2(perYear * tr.ReactivePriceKVArh),
		Evidence:      map[string]float64{"power_factor": math.Round(stats.Mean*1000) / 1000, "readings": float64(stats.Readings), "kwh_28_days": round2(kwh), "kvarh_28_days": round2(kvarh), "excess_kvarh_per_year": round2(perYear), "reactive_price_kvarh": tr.ReactivePriceKVArh},
	}, true, nil
}
