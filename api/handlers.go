package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/meter"
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
	if ct := c.Get(fiber.HeaderContentType); ct != "" && !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return fiber.NewError(fiber.StatusUnsupportedMediaType, "send the alert as application/json")
	}
	var req alertRequest
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return &paramError{Name: "body", Detail: "not a JSON alert {\"message\", \"severity\", \"meter\"}: " + err.Error()}
	}
	if dec.More() {
		return &paramError{Name: "body", Detail: "more than one JSON value"}
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

type meterJSON struct {
	ID       string    `json:"id"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	LastSeen time.Time `json:"last_seen"`
	PowerW   float64   `json:"power_w"`
	Readings uint64    `json:"readings"`
}

// meters serves GET /api/v1/meters.
func (s *Server) meters(c *fiber.Ctx) error {
	ms := s.store.Meters()
	out := make([]meterJSON, len(ms))
	for i, m := range ms {
		out[i] = meterJSON{ID: m.ID, First: m.First, Last: m.Last, LastSeen: m.LastSeen, PowerW: m.LastPowerW, Readings: m.Readings}
	}
	return c.JSON(fiber.Map{"meters": out})
}

type pointJSON struct {
	ID     uint64    `json:"id"`
	T      time.Time `json:"t"`
	PowerW float64   `json:"power_w"`
}

type readingsJSON struct {
	Meter  string      `json:"meter"`
	Step   string      `json:"step"`
	From   time.Time   `json:"from"`
	To     time.Time   `json:"to"`
	Points []pointJSON `json:"points"`
	More   bool        `json:"more"`
}

// readings serves GET /api/v1/meters/{id}/readings: raw readings with
// from <= t < to, oldest first. Defaults: the last 24 hours up to an hour
// ahead (device clocks run fast), 1000 points. When more is true, ask again
// with from set just after the last point.
func (s *Server) readings(c *fiber.Ctx) error {
	id := c.Params("id")
	if !meter.ValidID(id) {
		return &paramError{Name: "id", Detail: "not a meter id"}
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
	limit, err := parseLimit("limit", c.Query("limit"), 1000, 10000)
	if err != nil {
		return err
	}
	recs, more, err := s.store.Range(id, from, to, limit)
	if err != nil {
		return err
	}
	out := readingsJSON{Meter: id, Step: "raw", From: from.UTC(), To: to.UTC(), Points: make([]pointJSON, len(recs)), More: more}
	for i, r := range recs {
		out.Points[i] = pointJSON{ID: r.ID, T: r.Time, PowerW: r.PowerW}
	}
	return c.JSON(out)
}
