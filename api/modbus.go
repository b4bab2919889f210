package api

import (
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/modbus"
)

// modbusDevice is a Modbus device's status as GET /api/v1/modbus gives it.
type modbusDevice struct {
	Name      string  `json:"name"`
	URL       string  `json:"url"`
	Unit      uint8   `json:"unit"`
	Profile   string  `json:"profile,omitempty"`
	IntervalS float64 `json:"interval_s"`
	// Online is whether its last poll was answered; LastError why it was
	// not, Failures how many polls in a row failed.
	Online     bool       `json:"online"`
	LastAnswer *time.Time `json:"last_answer"`
	LastError  string     `json:"last_error,omitempty"`
	Failures   int        `json:"failures"`
	NextPoll   *time.Time `json:"next_poll"`
	// Total and Phases are what its last answer held.
	Total  modbusValues   `json:"total"`
	Phases []modbusValues `json:"phases"`
	// CurrentImbalancePct and PowerImbalancePct are the three phases'
	// largest deviation from their mean, in percent of it.
	CurrentImbalancePct *float64 `json:"current_imbalance_pct"`
	PowerImbalancePct   *float64 `json:"power_imbalance_pct"`
}

// modbusValues are the values of the meter (Phase "") or of a phase.
type modbusValues struct {
	Phase       string   `json:"phase,omitempty"`
	PowerW      *float64 `json:"power_w,omitempty"`
	ImportWh    *float64 `json:"import_wh,omitempty"`
	ExportWh    *float64 `json:"export_wh,omitempty"`
	VoltageV    *float64 `json:"voltage_v,omitempty"`
	CurrentA    *float64 `json:"current_a,omitempty"`
	PowerFactor *float64 `json:"power_factor,omitempty"`
	FrequencyHz *float64 `json:"frequency_hz,omitempty"`
}

func valuesOf(ph modbus.Phase, v map[modbus.Quantity]float64) modbusValues {
	get := func(q modbus.Quantity) *float64 {
		if x, ok := v[q]; ok {
			return &x
		}
		return nil
	}
	return modbusValues{Phase: string(ph), PowerW: get(modbus.PowerW), ImportWh: get(modbus.ImportWh), ExportWh: get(modbus.ExportWh),
		VoltageV: get(modbus.VoltageV), CurrentA: get(modbus.CurrentA), PowerFactor: get(modbus.PowerFactor), FrequencyHz: get(modbus.FrequencyHz)}
}

// modbusDevices serves GET /api/v1/modbus: each Modbus device, whether it
// answers (and why not), and what its last answer held, per phase with
// their imbalance.
func (s *Server) modbusDevices(c *fiber.Ctx) error {
	out := []modbusDevice{}
	if s.modbus == nil {
		return c.JSON(fiber.Map{"devices": out})
	}
	for _, st := range s.modbus.Status() {
		d := modbusDevice{Name: st.Name, URL: st.URL, Unit: st.Unit, Profile: st.Profile, IntervalS: st.Interval.Seconds(),
			Online: st.Online, LastError: st.LastError, Failures: st.Failures, Total: valuesOf(modbus.Total, st.Values[modbus.Total]),
			Phases: []modbusValues{}}
		if !st.LastAnswer.IsZero() {
			t := st.LastAnswer.UTC()
			d.LastAnswer = &t
		}
		if !st.NextPoll.IsZero() {
			t := st.NextPoll.UTC()
			d.NextPoll = &t
		}
		for _, ph := range modbus.Phases {
			if v, ok := st.Values[ph]; ok {
				d.Phases = append(d.Phases, valuesOf(ph, v))
			}
		}
		if pct, ok := modbus.Imbalance(st.Values, modbus.CurrentA); ok {
			d.CurrentImbalancePct = &pct
		}
		if pct, ok := modbus.Imbalance(st.Values, modbus.PowerW); ok {
			d.PowerImbalancePct = &pct
		}
		out = append(out, d)
	}
	return c.JSON(fiber.Map{"devices": out})
}

// modbusEntries serves GET /api/v1/modbus/devices: every Modbus device's
// settings, where they come from (config or database) and, for a saved
// one that is not polled, why.
func (s *Server) modbusEntries(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"devices": s.modbusDevs.List(), "profiles": modbus.ProfileNames()})
}

// modbusEntry serves GET /api/v1/modbus/devices/{name}.
func (s *Server) modbusEntry(c *fiber.Ctx) error {
	e, err := s.modbusDevs.Get(c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(e)
}

// putModbusDevice serves PUT /api/v1/modbus/devices/{name} (admin): the
// body, with the keys of an entry of config.yaml's modbus list, is saved
// as the device of that name, made (201) or replaced (200), and polled at
// once by the leading instance.
func (s *Server) putModbusDevice(c *fiber.Ctx) error {
	name := strings.Clone(c.Params("name"))
	var spec modbus.Spec
	if err := readJSON(c, "device", "Modbus device (the keys of an entry of config.yaml's modbus list)", &spec); err != nil {
		return err
	}
	if spec.Name == "" {
		spec.Name = name
	}
	if spec.Name != name {
		return &paramError{Name: "name", Detail: "the body's name is not the path's"}
	}
	e, created, err := s.modbusDevs.Put(spec, who(c).User, s.now())
	if err != nil {
		return err
	}
	verb := "saved"
	if created {
		verb = "created"
		c.Status(fiber.StatusCreated)
	}
	audit.Note(c.UserContext(), "modbus device "+name+" "+verb+": "+e.Summary())
	return c.JSON(e)
}

// deleteModbusDevice serves DELETE /api/v1/modbus/devices/{name} (admin):
// 204; the device is no longer polled, its meters and readings stay.
func (s *Server) deleteModbusDevice(c *fiber.Ctx) error {
	name := strings.Clone(c.Params("name"))
	if err := s.modbusDevs.Delete(name); err != nil {
		return err
	}
	audit.Note(c.UserContext(), "modbus device "+name+" deleted")
	return c.SendStatus(fiber.StatusNoContent)
}

// modbusError maps the Modbus devices' errors to statuses.
func modbusError(err error) (int, bool) {
	var ie *modbus.InvalidError
	switch {
	case errors.Is(err, modbus.ErrUnknownDevice):
		return fiber.StatusNotFound, true
	case errors.Is(err, modbus.ErrConfigDevice), errors.Is(err, modbus.ErrTooMany):
		return fiber.StatusConflict, true
	case errors.As(err, &ie):
		return fiber.StatusBadRequest, true
	}
	return 0, false
}
