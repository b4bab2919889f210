package statement

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// Statement is a period's energy and cost of a subject.
type Statement struct {
	Subject Subject `json:"subject"`
	// Title names the subject: the site, the tenant's billing name, the
	// meter's name (or id).
	Title string `json:"title"`
	// Tenant is the tenant billed, for a tenant's statement.
	Tenant *Tenant `json:"tenant,omitempty"`
	// Site is the subject's site.
	Site string `json:"site"`
	// Meters are the meters whose energy it is (a site's main meters, a
	// tenant's, the meter).
	Meters []string `json:"meters"`

	Period   string    `json:"period"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	TimeZone string    `json:"time_zone"`
	// Final is false for a period not yet over: figures to date (Until).
	Final bool      `json:"final"`
	Until time.Time `json:"until"`

	Currency string `json:"currency"`
	// Tariff is the tariff that priced it and TariffSource where it comes
	// from (config, or database: saved on the dashboard or the API).
	Tariff       tariff.Spec `json:"tariff"`
	TariffSource string      `json:"tariff_source"`

	ImportKWh float64 `json:"import_kwh"`
	ExportKWh float64 `json:"export_kwh"`
	// Energy splits the energy drawn by tariff period (Name "" is the
	// price outside every period).
	Energy []PeriodLine `json:"energy"`
	// EnergyCost is what the energy drawn cost; ExportCredit what the
	// energy sent earned; NetEnergyCost the first less the second, the
	// energy answers' cost.
	EnergyCost    float64 `json:"energy_cost"`
	ExportCredit  float64 `json:"export_credit"`
	NetEnergyCost float64 `json:"net_energy_cost"`
	// FixedCharge is the daily charge of the days the site's data covers;
	// DemandCharge the demand charge of each month's peak. A tenant bears
	// Share of its site's; a meter's statement has none (they are the
	// site's).
	FixedCharge  float64 `json:"fixed_charge"`
	DemandCharge float64 `json:"demand_charge"`
	Share        float64 `json:"share"`
	Total        float64 `json:"total"`
	// SitePeak, on a tenant's statement, is its site's highest 15-minute
	// demand of the period: the demand charge it bears a share of.
	SitePeak *Demand `json:"site_peak,omitempty"`
	// Peak is the period's highest 15-minute demand of the subject's own
	// meters, nil without one.
	Peak  *Demand `json:"peak,omitempty"`
	CO2Kg float64 `json:"co2_kg"`

	Days  []Day  `json:"days"`
	Lines []Line `json:"lines"`
	// Previous and YearBefore compare with the period before and the same
	// period a year before.
	Previous   Comparison `json:"previous"`
	YearBefore Comparison `json:"year_before"`
}

// Demand is a 15-minute demand, and when its window ended.
type Demand struct {
	KW float64   `json:"kw"`
	At time.Time `json:"at"`
}

// PeriodLine is the energy drawn in one tariff period, and its cost.
type PeriodLine struct {
	Name     string  `json:"name"`
	PriceKWh float64 `json:"price_kwh"` // mean, for a period whose price is by the minute
	KWh      float64 `json:"kwh"`
	Cost     float64 `json:"cost"`
}

// Day is one calendar day's energy and net cost.
type Day struct {
	Date      time.Time `json:"date"`
	ImportKWh float64   `json:"import_kwh"`
	ExportKWh float64   `json:"export_kwh"`
	Cost      float64   `json:"cost"`
}

// Line is one meter's part: a meter, or (Unmetered) what its parent drew
// that its sub-meters did not.
type Line struct {
	Meter     string  `json:"meter"`
	Name      string  `json:"name"`
	Unmetered bool    `json:"unmetered,omitempty"`
	ImportKWh float64 `json:"import_kwh"`
	ExportKWh float64 `json:"export_kwh"`
	Cost      float64 `json:"cost"`
}

// Comparison is another period's figures, and the change to this one's.
type Comparison struct {
	Period    string  `json:"period"`
	ImportKWh float64 `json:"import_kwh"`
	Total     float64 `json:"total"`
	// ImportChangePct and TotalChangePct are this period's change, in
	// percent of that one's; nil when that one's is zero.
	ImportChangePct *float64 `json:"import_change_pct"`
	TotalChangePct  *float64 `json:"total_change_pct"`
}

// Source is what statements are built from.
type Source struct {
	Store   *store.Store
	Tariffs *energy.Tariffs
	Tenants *Tenants
	// Wait is how long a build waits for its turn (builds): 20 s when 0,
	// for a person waiting; schedules wait longer.
	Wait time.Duration
}

// Errors of Build.
var (
	ErrUnknownSubject = errors.New("statement: no such subject")
	ErrFuture         = errors.New("statement: the period has not begun")
	ErrBusy           = errors.New("statement: other statements are being made: try again in a minute")
)

// builds admits the statements being built. One reads up to three
// periods of 366 days of every meter of a site, by the minute for the
// peak demand (a minute and a half for a year of 100 meters on a small
// machine): one per two cores at a time, so that readings, pages and the
// broker keep the rest, however many are asked for at once.
var builds = make(chan struct{}, max(1, runtime.NumCPU()/2))

// building are the callers (users, tokens) with a statement waiting or
// being made: one at a time each, so that nobody holds every turn.
var building = struct {
	sync.Mutex
	by map[string]bool
}{by: map[string]bool{}}

// Build returns subject's statement for period (in the tariff's zone), as
// known at now. It waits for its turn up to src.Wait, then gives up with
// ErrBusy.
func (src Source) Build(subject Subject, period Period, now time.Time) (*Statement, error) {
	return src.BuildFor(context.Background(), "", subject, period, now)
}

// BuildFor is Build for caller who (a user, a token; "" for Vatio's own
// schedules): a caller with a statement already waiting or being made
// gets ErrBusy at once. Waiting ends with ctx.
func (src Source) BuildFor(ctx context.Context, who string, subject Subject, period Period, now time.Time) (*Statement, error) {
	if who != "" {
		building.Lock()
		if building.by[who] {
			building.Unlock()
			return nil, ErrBusy
		}
		building.by[who] = true
		building.Unlock()
		defer func() {
			building.Lock()
			delete(building.by, who)
			building.Unlock()
		}()
	}
	wait := time.NewTimer(cmp.Or(src.Wait, 20*time.Second))
	defer wait.Stop()
	select {
	case builds <- struct{}{}:
		defer func() { <-builds }()
	case <-wait.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	state := src.Tariffs.State()
	tr := src.Tariffs.Current()
	loc := tr.Location
	if !period.From.Before(now) {
		return nil, fmt.Errorf("%w: %s starts after now", ErrFuture, period)
	}
	s := &Statement{Subject: subject, Period: period.String(), From: period.From, To: period.To, TimeZone: loc.String(),
		Currency: tr.Currency, Tariff: state.Tariff, TariffSource: state.Source, Final: !period.To.After(now), Until: minTime(period.To, now)}
	var share func(own float64, site figures) float64
	switch subject.Kind {
	case KindSite:
		for _, m := range src.Store.Meters() {
			if m.Info.Parent == "" && m.Site == subject.Name {
				s.Meters = append(s.Meters, m.ID)
			}
		}
		if len(s.Meters) == 0 {
			return nil, fmt.Errorf("%w: no meter in site %q", ErrUnknownSubject, subject.Name)
		}
		s.Title, s.Site, s.Share = subject.Name, subject.Name, 1
		share = func(float64, figures) float64 { return 1 }
	case KindTenant:
		if src.Tenants == nil {
			return nil, fmt.Errorf("%w: tenant %q", ErrUnknownSubject, subject.Name)
		}
		t, err := src.Tenants.Get(subject.Name)
		if errors.Is(err, ErrUnknownTenant) {
			return nil, fmt.Errorf("%w: tenant %q", ErrUnknownSubject, subject.Name)
		}
		if err != nil {
			return nil, err
		}
		s.Tenant, s.Title, s.Meters = &t, t.Name, slices.Clone(t.Meters)
		for _, id := range t.Meters {
			if m, err := src.Store.Meter(id); err == nil {
				s.Site = m.Site
				break
			}
		}
		share = func(own float64, site figures) float64 {
			if t.FixedShare == SharePercent {
				return t.FixedPercent / 100
			}
			if site.importKWh <= 0 {
				return 0
			}
			return min(max(own/site.importKWh, 0), 1)
		}
	case KindMeter:
		m, err := src.Store.Meter(subject.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: meter %q", ErrUnknownSubject, subject.Name)
		}
		s.Title, s.Site, s.Meters = cmp.Or(m.Info.Name, m.ID), m.Site, []string{m.ID}
	}
	b := builder{st: src.Store, tr: tr, now: now}
	cur, err := b.figures(s.Meters, period)
	if err != nil {
		return nil, err
	}
	s.ImportKWh, s.ExportKWh, s.NetEnergyCost, s.CO2Kg = cur.importKWh, cur.exportKWh, cur.netCost, cur.co2Kg
	if cur.peak.KW > 0 {
		s.Peak = &Demand{KW: math.Round(cur.peak.KW*1e6) / 1e6, At: cur.peak.At.In(loc)}
	}
	for _, d := range cur.days {
		s.Days = append(s.Days, Day{Date: d.Start, ImportKWh: energy.RoundKWh(d.InKWh), ExportKWh: energy.RoundKWh(d.OutKWh), Cost: tariff.Round(d.Cost)})
	}
	if s.Energy, err = b.byPeriod(s.Meters, period); err != nil {
		return nil, err
	}
	for _, p := range s.Energy {
		s.EnergyCost += p.Cost
	}
	s.ExportCredit = cur.exportKWh * tr.ExportPriceKWh
	// Charges: the site's, or a tenant's share of its site's.
	charges := func(f figures, p Period) (fixed, demand float64, err error) {
		switch subject.Kind {
		case KindSite:
			return f.fixed, f.demand, nil
		case KindTenant:
			site, err := b.siteFigures(s.Site, p)
			if err != nil {
				return 0, 0, err
			}
			k := share(f.importKWh, site)
			return site.fixed * k, site.demand * k, nil
		}
		return 0, 0, nil
	}
	if s.FixedCharge, s.DemandCharge, err = charges(cur, period); err != nil {
		return nil, err
	}
	if subject.Kind == KindTenant {
		if site, err := b.siteFigures(s.Site, period); err == nil {
			s.Share = share(cur.importKWh, site)
			if site.peak.KW > 0 { // what its share of the demand charge comes from
				s.SitePeak = &Demand{KW: math.Round(site.peak.KW*1e6) / 1e6, At: site.peak.At.In(loc)}
			}
		}
	}
	s.Total = tariff.Round(tariff.Round(s.NetEnergyCost) + tariff.Round(s.FixedCharge) + tariff.Round(s.DemandCharge))
	if s.Lines, err = b.lines(s.Meters, period); err != nil {
		return nil, err
	}
	for i, p := range []Period{period.Previous(), period.YearBefore()} {
		c := Comparison{Period: p.String()}
		if p.From.Before(now) {
			f, err := b.figures(s.Meters, p)
			if err != nil {
				return nil, err
			}
			fixed, demand, err := charges(f, p)
			if err != nil {
				return nil, err
			}
			c.ImportKWh = f.importKWh
			c.Total = tariff.Round(tariff.Round(f.netCost) + tariff.Round(fixed) + tariff.Round(demand))
		}
		c.ImportChangePct, c.TotalChangePct = change(s.ImportKWh, c.ImportKWh), change(s.Total, c.Total)
		if i == 0 {
			s.Previous = c
		} else {
			s.YearBefore = c
		}
	}
	s.round()
	// Lists, never null, in the JSON (a tenant whose meters are gone).
	if s.Meters == nil {
		s.Meters = []string{}
	}
	if s.Energy == nil {
		s.Energy = []PeriodLine{}
	}
	if s.Days == nil {
		s.Days = []Day{}
	}
	if s.Lines == nil {
		s.Lines = []Line{}
	}
	return s, nil
}

// round rounds what Build summed as the API rounds it.
func (s *Statement) round() {
	for i := range s.Energy {
		s.Energy[i].KWh, s.Energy[i].Cost = energy.RoundKWh(s.Energy[i].KWh), tariff.Round(s.Energy[i].Cost)
	}
	for i := range s.Lines {
		l := &s.Lines[i]
		l.ImportKWh, l.ExportKWh, l.Cost = energy.RoundKWh(l.ImportKWh), energy.RoundKWh(l.ExportKWh), tariff.Round(l.Cost)
	}
	s.EnergyCost, s.ExportCredit, s.NetEnergyCost = tariff.Round(s.EnergyCost), tariff.Round(s.ExportCredit), tariff.Round(s.NetEnergyCost)
	s.FixedCharge, s.DemandCharge = tariff.Round(s.FixedCharge), tariff.Round(s.DemandCharge)
	s.CO2Kg = energy.RoundKWh(s.CO2Kg)
}

// change is cur's change from prev in percent of prev; nil when prev is 0.
func change(cur, prev float64) *float64 {
	if prev == 0 {
		return nil
	}
	v := (cur - prev) / prev * 100
	return &v
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// builder works out the figures of meters over periods.
type builder struct {
	st  *store.Store
	tr  *tariff.Tariff
	now time.Time
}

// figures are a period's energy, net cost, charges and peak of some
// meters, as the API's energy and summary answers work them out.
type figures struct {
	days                        []energy.Bucket
	importKWh, exportKWh, co2Kg float64
	netCost                     float64
	// fixed and demand are the charges of a site of those meters.
	fixed, demand float64
	peak          energy.Demand
}

// figures returns ids' figures over p: the day buckets of the energy
// answers, summed in their order, and a site's charges of them up to now.
func (b builder) figures(ids []string, p Period) (figures, error) {
	return b.figuresOf(ids, p, true)
}

// figuresOf is figures, with the charges only when charges is set.
func (b builder) figuresOf(ids []string, p Period, charges bool) (figures, error) {
	var f figures
	days, err := energy.Series(b.st, ids, energy.Day, p.From, p.To, b.tr)
	if err != nil {
		return f, err
	}
	f.days = days
	for _, d := range days {
		f.importKWh += d.InKWh
		f.exportKWh += d.OutKWh
		f.netCost += d.Cost
		f.co2Kg += d.CO2Kg
	}
	f.importKWh, f.exportKWh = energy.RoundKWh(f.importKWh), energy.RoundKWh(f.exportKWh)
	f.netCost = tariff.Round(f.netCost)
	if !charges {
		return f, nil
	}
	end := minTime(p.To, b.now)
	var ms []store.Meter
	for _, id := range ids {
		if m, err := b.st.Meter(id); err == nil {
			ms = append(ms, m)
		}
	}
	since, err := b.dataSince(ms)
	if err != nil {
		return f, err
	}
	f.fixed = b.tr.DailyCharge * float64(energy.ChargedDays(since, p.From, end, b.tr.Location))
	// Each calendar month's peak bills its demand charge. A period that
	// covers part of a month bears what it added to the month's charge
	// so far: the month's peak up to the period's end over the days up to
	// it, less the month's peak before the period over the days before it
	// (what the periods before bore). Weekly statements so add up to the
	// month's charge, wherever in the month its peak fell.
	for m := energy.Month.Floor(p.From, b.tr.Location); m.Before(end); m = energy.Month.Next(m) {
		next := energy.Month.Next(m)
		from, to := maxTime(m, p.From), minTime(next, end)
		_, peak, err := energy.Demands(b.st, ids, from, to)
		if err != nil {
			return f, err
		}
		if peak.KW > f.peak.KW {
			f.peak = peak
		}
		var before energy.Demand // the month's peak before the period
		if from.After(m) {
			if _, before, err = energy.Demands(b.st, ids, m, from); err != nil {
				return f, err
			}
		}
		upTo := max(before.KW, peak.KW)
		month := float64(daysBetween(m, next))
		f.demand += b.tr.DemandChargeKW * (upTo*float64(daysBetween(m, minTime(next, p.To))) - before.KW*float64(daysBetween(m, from))) / month
	}
	return f, nil
}

// daysBetween counts the calendar days from a to b (midnights in one zone).
func daysBetween(a, b time.Time) int {
	n := 0
	for d := a; d.Before(b); d = d.AddDate(0, 0, 1) {
		n++
	}
	return n
}

// dataSince is when the data of meters ms begins: energy.SiteSince, or
// their first day's rollup when retention archived their oldest readings
// (the raw readings' first then moves, the rollups keep the days).
func (b builder) dataSince(ms []store.Meter) (time.Time, error) {
	since := energy.SiteSince(ms...)
	for _, m := range ms {
		if m.ArchivedBefore.IsZero() {
			continue
		}
		days, _, err := b.st.Rollups(m.ID, store.TierDay, time.Unix(0, 0), m.ArchivedBefore.Add(24*time.Hour), 1)
		if err != nil {
			return time.Time{}, err
		}
		if len(days) > 0 && (since.IsZero() || days[0].Start.Before(since)) {
			since = days[0].Start
		}
	}
	return since, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// siteFigures are the figures of site's main meters over p.
func (b builder) siteFigures(site string, p Period) (figures, error) {
	var mains []string
	for _, m := range b.st.Meters() {
		if m.Info.Parent == "" && m.Site == site {
			mains = append(mains, m.ID)
		}
	}
	return b.figures(mains, p)
}

// byPeriod splits the energy ids drew over p by tariff period, each hour
// priced as the energy answers price it (by the minute where a period
// begins or ends inside it), in the order of the tariff's periods, the
// price outside them last.
func (b builder) byPeriod(ids []string, p Period) ([]PeriodLine, error) {
	sums := map[string]*PeriodLine{}
	add := func(name string, kwh, price float64) {
		l := sums[name]
		if l == nil {
			l = &PeriodLine{Name: name}
			sums[name] = l
		}
		l.KWh += kwh
		l.Cost += kwh * price
	}
	hours := int(p.To.Sub(p.From)/time.Hour) + 2
	for _, id := range ids {
		bs, _, err := b.st.Rollups(id, store.TierHour, p.From, p.To, hours)
		if errors.Is(err, store.ErrUnknownMeter) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, h := range bs {
			in := h.EnergyWh / 1000
			if in == 0 {
				continue
			}
			if len(b.tr.Periods) == 0 {
				add("", in, b.tr.PriceKWh)
				continue
			}
			// As HourPrice prices it: the energy taken as drawn evenly
			// over the hour, each minute at its period's price.
			for i := range 60 {
				at := h.Start.Add(time.Duration(i) * time.Minute)
				add(b.tr.PeriodName(at), in/60, b.tr.Price(at))
			}
		}
	}
	var out []PeriodLine
	for _, per := range b.tr.Periods {
		if l := sums[per.Name]; l != nil {
			out = append(out, *l)
			delete(sums, per.Name)
		}
	}
	if l := sums[""]; l != nil {
		out = append(out, *l)
	}
	for i := range out {
		if out[i].KWh > 0 {
			out[i].PriceKWh = math.Round(out[i].Cost/out[i].KWh*1e6) / 1e6
		}
	}
	return out, nil
}

// lines returns each meter's part of ids' energy over p: a meter without
// sub-meters itself; one with sub-meters, each of them (their own
// sub-meters within them) and what it drew that they did not.
func (b builder) lines(ids []string, p Period) ([]Line, error) {
	var out []Line
	part := func(id string) (Line, error) {
		f, err := b.figuresOf([]string{id}, p, false)
		if err != nil {
			return Line{}, err
		}
		l := Line{Meter: id, Name: id, ImportKWh: f.importKWh, ExportKWh: f.exportKWh, Cost: f.netCost}
		if m, err := b.st.Meter(id); err == nil && m.Info.Name != "" {
			l.Name = m.Info.Name
		}
		return l, nil
	}
	for _, id := range ids {
		m, err := b.st.Meter(id)
		if err != nil {
			continue
		}
		own, err := part(id)
		if err != nil {
			return nil, err
		}
		if len(m.Children) == 0 {
			out = append(out, own)
			continue
		}
		rest := own
		rest.Unmetered = true
		for _, kid := range m.Children {
			l, err := part(kid)
			if err != nil {
				return nil, err
			}
			out = append(out, l)
			rest.ImportKWh -= l.ImportKWh
			rest.ExportKWh -= l.ExportKWh
			rest.Cost -= l.Cost
		}
		out = append(out, rest)
	}
	return out, nil
}

// Bill is a statement's money as a document prints it: each line in
// cents, and the lines adding up to the total, itself the statement's
// Total to the cent. The statement keeps the API's four decimals, so
// that it adds up with the energy answers and the summary; printed to the
// cent, its lines would not always add up (19.9149 + 33.634 printed as
// 19.91 + 33.63, their total as 53.55): the cents a rounding lost or won
// go to the lines rounded furthest (largest remainder).
type Bill struct {
	// Energy is each of s.Energy's costs.
	Energy []float64
	// ExportCredit is negative: money back.
	ExportCredit, Fixed, Demand, Total float64
}

// Bill returns s's money in cents that add up.
func (s *Statement) Bill() Bill {
	parts := make([]float64, 0, len(s.Energy)+3)
	for _, p := range s.Energy {
		parts = append(parts, p.Cost)
	}
	parts = append(parts, -s.ExportCredit, s.FixedCharge, s.DemandCharge)
	cents := addUp(parts, s.Total)
	n := len(s.Energy)
	b := Bill{Energy: make([]float64, n), Total: halfUp(s.Total, 2)}
	for i := range n {
		b.Energy[i] = float64(cents[i]) / 100
	}
	b.ExportCredit, b.Fixed, b.Demand = float64(cents[n])/100, float64(cents[n+1])/100, float64(cents[n+2])/100
	return b
}

// addUp rounds parts to whole cents summing to total's cents, moving the
// cents a rounding lost or won to the parts rounded furthest.
func addUp(parts []float64, total float64) []int64 {
	cents := make([]int64, len(parts))
	rest := make([]float64, len(parts)) // what rounding took from each, in cents
	var sum int64
	for i, p := range parts {
		cents[i] = int64(math.Round(halfUp(p, 2) * 100))
		rest[i] = p*100 - float64(cents[i])
		sum += cents[i]
	}
	diff := int64(math.Round(halfUp(total, 2)*100)) - sum
	if diff == 0 || len(parts) == 0 {
		return cents
	}
	order := make([]int, len(parts))
	for i := range order {
		order[i] = i
	}
	// A cent to add goes first to the part rounded down the most; one to
	// take, to the part rounded up the most. Parts that are 0 stay 0.
	sign := int64(1)
	if diff < 0 {
		sign = -1
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(float64(sign)*rest[b], float64(sign)*rest[a]) })
	for k := 0; diff != 0 && k < 2*len(order); k++ {
		i := order[k%len(order)]
		if parts[i] == 0 {
			continue
		}
		cents[i] += sign
		diff -= sign
	}
	return cents
}
