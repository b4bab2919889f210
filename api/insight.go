package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/insight"
)

// recommendations serves GET /api/v1/recommendations: energy-saving
// recommendations for a site's meters (?site=, default every meter), each
// with its estimated yearly saving and evidence, largest saving first.
func (s *Server) recommendations(c *fiber.Ctx) error {
	site := c.Query("site")
	if site != "" && !validSite(site) {
		return &paramError{Name: "site", Detail: siteRule}
	}
	ms := s.store.Meters()
	if site != "" {
		kept := ms[:0]
		for _, m := range ms {
			if m.Site == site {
				kept = append(kept, m)
			}
		}
		ms = kept
	}
	tr := s.tariffs.Current()
	rs, err := insight.Recommend(s.store, ms, tr, s.now())
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []insight.Recommendation{}
	}
	total := 0.0
	for _, r := range rs {
		total += r.SavingPerYear
	}
	return c.JSON(fiber.Map{"currency": tr.Currency, "saving_per_year": total, "recommendations": rs})
}

// forecastHours parses ?hours= (1 to 168, default 24).
func forecastHours(c *fiber.Ctx) (int, error) {
	return parseLimit("hours", c.Query("hours"), 24, 168)
}

// meterForecast serves GET /api/v1/meters/{id}/forecast: the meter's mean
// power for each of the next hours (see insight.Forecast).
func (s *Server) meterForecast(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	hours, err := forecastHours(c)
	if err != nil {
		return err
	}
	if _, err := s.store.Meter(id); err != nil {
		return err
	}
	fc, err := insight.Forecast(s.store, []string{id}, s.now(), hours)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"meter": id, "points": nonNil(fc)})
}

// siteForecast serves GET /api/v1/sites/{site}/forecast: the same for the
// site's main meters.
func (s *Server) siteForecast(c *fiber.Ctx) error {
	site, err := siteParam(c)
	if err != nil {
		return err
	}
	hours, err := forecastHours(c)
	if err != nil {
		return err
	}
	mains, _ := s.mainMeters(site)
	if mains == nil {
		return fiber.NewError(fiber.StatusNotFound, "no meter in site "+site)
	}
	fc, err := insight.Forecast(s.store, mains, s.now(), hours)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"site": site, "meters": mains, "points": nonNil(fc)})
}

func nonNil(fc []insight.Point) []insight.Point {
	if fc == nil {
		return []insight.Point{}
	}
	return fc
}
