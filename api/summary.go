package api

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// periodJSON is the energy and cost of a period of a summary.
type periodJSON struct {
	From      time.Time `json:"from"`
	EnergyKWh float64   `json:"energy_kwh"`
	ExportKWh float64   `json:"export_kwh"`
	// EnergyCost is the energy's cost less the export's earnings;
	// FixedCharge the daily charges of the period's days so far (from
	// the day a site's data begins: see store.Meter.Since);
	// DemandCharge (months) the charge on the peak demand so far; Cost
	// their sum.
	EnergyCost   float64 `json:"energy_cost"`
	FixedCharge  float64 `json:"fixed_charge"`
	DemandCharge float64 `json:"demand_charge,omitempty"`
	Cost         float64 `json:"cost"`
	CO2Kg        float64 `json:"co2_kg"`
	// PeakDemandKW (months) is the highest 15-minute demand so far, and
	// PeakAt when its window ended.
	PeakDemandKW float64    `json:"peak_demand_kw,omitempty"`
	PeakAt       *time.Time `json:"peak_at,omitempty"`
}

type summaryJSON struct {
	Site     string   `json:"site,omitempty"`
	Sites    []string `json:"sites"`
	Currency string   `json:"currency"`
	TimeZone string   `json:"time_zone"`
	// PowerW is the power now of the main meters online, from their
	// readings taken now (see store.Meter.PowerNow); DemandKW their
	// mean demand over the last 15 minutes.
	PowerW   float64    `json:"power_w"`
	DemandKW float64    `json:"demand_kw"`
	Today    periodJSON `json:"today"`
	Month    periodJSON `json:"month"`
}

// summary serves GET /api/v1/summary: a site's (?site=, or every site's)
// power and demand now, and today's and this month's energy, cost and CO2,
// with the month's peak demand. Fixed and demand charges count once per
// site; only main meters count, so no sub-meter is counted twice.
func (s *Server) summary(c *fiber.Ctx) error {
	site := strings.Clone(c.Query("site"))
	if site != "" && !validSite(site) {
		return &paramError{Name: "site", Detail: siteRule}
	}
	now := s.now()
	_, sites := s.mainMeters(site)
	if site != "" && len(sites) == 0 {
		return fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("no meter in site %q", site))
	}
	tr := s.tariffs.Current()
	loc := tr.Location
	out := summaryJSON{Site: site, Currency: tr.Currency, TimeZone: loc.String(), Sites: []string{}}
	today := energy.Day.Floor(now, loc)
	month := energy.Month.Floor(now, loc)
	out.Today.From, out.Month.From = today, month
	var peakAt time.Time
	for name, ids := range sites {
		out.Sites = append(out.Sites, name)
		var ms []store.Meter
		for _, id := range ids {
			if m, err := s.store.Meter(id); err == nil {
				ms = append(ms, m)
				if w, ok := m.PowerNow(now); ok {
					out.PowerW += w
				}
			}
		}
		bs, err := s.series(tr, ids, energy.Day, month, now)
		if err != nil {
			return err
		}
		for _, b := range bs {
			addBucket(&out.Month, b)
			if !b.Start.Before(today) {
				addBucket(&out.Today, b)
			}
		}
		// The daily charge of the days the site's data covers: none for
		// the month's days before Vatio knew of it.
		since := energy.SiteSince(ms...)
		out.Today.FixedCharge += tr.DailyCharge * float64(energy.ChargedDays(since, today, now, loc))
		out.Month.FixedCharge += tr.DailyCharge * float64(energy.ChargedDays(since, month, now, loc))
		current, peak, err := energy.Demands(s.store, ids, month, now)
		if err != nil {
			return err
		}
		out.DemandKW += current.KW
		out.Month.DemandCharge += peak.KW * tr.DemandChargeKW
		if peak.KW > out.Month.PeakDemandKW { // the busiest site's
			out.Month.PeakDemandKW, peakAt = peak.KW, peak.At
		}
	}
	slices.Sort(out.Sites)
	if !peakAt.IsZero() {
		at := peakAt.In(loc)
		out.Month.PeakAt = &at
	}
	for _, p := range []*periodJSON{&out.Today, &out.Month} {
		p.EnergyCost = tariff.Round(p.EnergyCost)
		p.FixedCharge = tariff.Round(p.FixedCharge)
		p.DemandCharge = tariff.Round(p.DemandCharge)
		p.Cost = tariff.Round(p.EnergyCost + p.FixedCharge + p.DemandCharge)
		p.EnergyKWh, p.ExportKWh = energy.RoundKWh(p.EnergyKWh), energy.RoundKWh(p.ExportKWh)
	}
	return c.JSON(out)
}

func addBucket(p *periodJSON, b energy.Bucket) {
	p.EnergyKWh += b.InKWh
	p.ExportKWh += b.OutKWh
	p.EnergyCost += b.Cost
	p.CO2Kg += b.CO2Kg
}

// demand serves GET /api/v1/meters/{id}/demand: the meter's rolling
// 15-minute demand now, and its peak in a month (?month=YYYY-MM, default
// this one) with when the window ended.
func (s *Server) demand(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	if _, err := s.store.Meter(id); err != nil {
		return err
	}
	loc, now := s.tariffs.Current().Location, s.now()
	from := energy.Month.Floor(now, loc)
	if q := c.Query("month"); q != "" {
		t, err := time.ParseInLocation("2006-01", q, loc)
		if err != nil || t.Year() < 1970 || t.Year() > 2500 {
			return &paramError{Name: "month", Detail: fmt.Sprintf("%q is not a month YYYY-MM", clip(q))}
		}
		from = t
	}
	to := from.AddDate(0, 1, 0)
	if to.After(now) {
		to = now
	}
	if !from.Before(to) {
		return &paramError{Name: "month", Detail: "is in the future"}
	}
	current, peak, err := energy.Demands(s.store, []string{id}, from, to)
	if err != nil {
		return err
	}
	out := fiber.Map{"meter": id, "month": from.Format("2006-01"), "window_minutes": int(energy.DemandWindow / time.Minute),
		"demand_kw": current.KW, "at": current.At.In(loc), "peak_demand_kw": peak.KW}
	if !peak.At.IsZero() {
		out["peak_at"] = peak.At.In(loc)
	}
	return c.JSON(out)
}
