package api

import (
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// legacyReading is a reading as the original API returned it: consumption
// in kW.
type legacyReading struct {
	ID          uint64    `json:"id"`
	Timestamp   time.Time `json:"timestamp"`
	Consumption float64   `json:"consumption"`
	Meter       string    `json:"meter"`
}

// energy serves GET /api/energy: the newest readings, newest first.
func (s *Server) energy(c *fiber.Ctx) error {
	limit, err := parseLimit("limit", c.Query("limit"), 100, 1000)
	if err != nil {
		return err
	}
	meterID := c.Query("meter")
	if meterID != "" && !meter.ValidID(meterID) {
		return &paramError{Name: "meter", Detail: "not a meter id"}
	}
	recs, err := s.store.Latest(meterID, limit)
	if err != nil {
		return err
	}
	out := make([]legacyReading, len(recs))
	for i, r := range recs {
		out[i] = legacyReading{ID: r.ID, Timestamp: r.Time, Consumption: r.PowerW / 1000, Meter: r.Meter}
	}
	return c.JSON(out)
}

type alertRequest struct {
	Message  string `json:"message"`
	Severity string `json:"severity"`
	Meter    string `json:"meter"`
}

// postAlert serves POST /api/alert: it raises an alert and answers 202 with
// its id; delivery happens in the background.
func (s *Server) postAlert(c *fiber.Ctx) error {
	var req alertRequest
	if err := readJSON(c, "alert", `alert {"message", "severity", "meter"}`, &req); err != nil {
		return err
	}
	a, err := s.alerts.Raise(req.Severity, req.Message, req.Meter, "api")
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"id": a.ID})
}

// listAlerts serves GET /api/v1/alerts: the alert history, newest first.
func (s *Server) listAlerts(c *fiber.Ctx) error {
	limit, err := parseLimit("limit", c.Query("limit"), 100, 1000)
	if err != nil {
		return err
	}
	as, err := s.alerts.History(limit)
	if err != nil {
		return err
	}
	if as == nil {
		as = []store.Alert{}
	}
	return c.JSON(fiber.Map{"alerts": as})
}

// rawPoint is a stored reading in a readings answer.
type rawPoint struct {
	ID     uint64    `json:"id"`
	T      time.Time `json:"t"`
	PowerW float64   `json:"power_w"`
	// CounterKWh is the device's energy counter, when it sends one.
	CounterKWh *float64 `json:"counter_kwh,omitempty"`
}

// rollupPoint is a rollup bucket in a readings answer.
type rollupPoint struct {
	T     time.Time `json:"t"`
	N     uint64    `json:"n"`
	MeanW float64   `json:"mean_w"`
	// PowerW is the power to draw for the bucket (see store.Bucket.PowerW):
	// the readings' mean, or without readings the bucket's energy over its
	// length; nil where the meter was silent.
	PowerW *float64 `json:"power_w"`
	MinW   float64  `json:"min_w"`
	MaxW   float64  `json:"max_w"`
	// EnergyKWh is the energy drawn in the bucket, ExportKWh the energy sent
	// to the grid.
	EnergyKWh float64 `json:"energy_kwh"`
	ExportKWh float64 `json:"export_kwh"`
}

type readingsJSON struct {
	Meter  string    `json:"meter"`
	Step   string    `json:"step"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Points any       `json:"points"`
	More   bool      `json:"more"`
}

// readings serves GET /api/v1/meters/{id}/readings: one meter's readings
// with from <= t < to, oldest first, raw or as rollups. step=auto (the
// default, but raw when the first API's limit is given) picks the finest
// tier that fits in max_points; raw, 1m, 1h or 1d ask for one. Defaults: the last 24 hours up to an hour ahead (device clocks
// run fast), 1000 points. When more is true, ask again from just after the
// last point.
func (s *Server) readings(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	now := s.now()
	to, err := parseTime("to", c.Query("to"), now.Add(time.Hour))
	if err != nil {
		return err
	}
	from, err := parseTime("from", c.Query("from"), to.Add(-25*time.Hour))
	if err != nil {
		return err
	}
	if !from.Before(to) {
		return &paramError{Name: "from", Detail: "must be before to"}
	}
	maxPoints, err := parseLimit("max_points", c.Query("max_points"), 1000, 100000)
	if err != nil {
		return err
	}
	if c.Query("limit") != "" { // the name of the first API
		if c.Query("max_points") != "" {
			return &paramError{Name: "limit", Detail: "give limit or max_points, not both"}
		}
		if maxPoints, err = parseLimit("limit", c.Query("limit"), 1000, 100000); err != nil {
			return err
		}
	}
	step := c.Query("step")
	if step == "" && c.Query("limit") != "" {
		step = "raw" // the first API: limit counted raw readings
	}
	tier, err := s.chooseTier(id, step, from, to, maxPoints)
	if err != nil {
		return err
	}
	out := readingsJSON{Meter: id, Step: tier.String(), From: from.UTC(), To: to.UTC()}
	if tier == store.TierRaw {
		recs, more, err := s.store.Range(id, from, to, maxPoints)
		if err != nil {
			return err
		}
		points := make([]rawPoint, len(recs))
		for i, r := range recs {
			points[i] = rawPoint{ID: r.ID, T: r.Time, PowerW: r.PowerW}
			if r.HasEnergy {
				kwh := r.EnergyWh / 1000
				points[i].CounterKWh = &kwh
			}
		}
		out.Points, out.More = points, more
		return c.JSON(out)
	}
	buckets, more, err := s.store.Rollups(id, tier, from, to, maxPoints)
	if err != nil {
		return err
	}
	points := make([]rollupPoint, len(buckets))
	for i, b := range buckets {
		points[i] = rollupPoint{T: b.Start, N: b.N, MeanW: b.MeanW, MinW: b.MinW, MaxW: b.MaxW, EnergyKWh: b.EnergyWh / 1000, ExportKWh: b.ExportWh / 1000}
		if w, ok := b.PowerW(tier.Step()); ok {
			points[i].PowerW = &w
		}
	}
	out.Points, out.More = points, more
	return c.JSON(out)
}

// chooseTier returns the tier step names; for auto (or nothing), the finest
// tier with some but at most maxPoints entries in the range, or the coarsest.
func (s *Server) chooseTier(id, step string, from, to time.Time, maxPoints int) (store.Tier, error) {
	if step != "" && step != "auto" {
		t, ok := store.ParseTier(step)
		if !ok {
			return 0, &paramError{Name: "step", Detail: fmt.Sprintf("%q is not auto, raw, 1m, 1h or 1d", clip(step))}
		}
		return t, nil
	}
	if _, err := s.store.Meter(id); err != nil {
		return 0, err
	}
	// A tier with nothing in the range is skipped: raw readings past
	// retention are archived, and 1-minute rollups expire before the others.
	empty := 0
	for _, t := range []store.Tier{store.TierRaw, store.TierMinute, store.TierHour} {
		n, err := s.store.Count(id, t, from, to, maxPoints)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			empty++
			continue
		}
		if n <= maxPoints {
			return t, nil
		}
	}
	if empty == 3 {
		if n, err := s.store.Count(id, store.TierDay, from, to, 0); err != nil || n == 0 {
			return store.TierRaw, err // nothing at all: an empty raw answer
		}
	}
	return store.TierDay, nil
}
