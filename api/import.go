package api

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/meter"
)

// importMeter serves POST /api/v1/meters/{id}/import: a history of the
// meter, in Vatio's CSV (power readings timestamp,power_w[,energy_wh], or
// energy per interval under a header such as start,energy_kwh), a Datadis
// CSV or a Green Button XML file (query format, told from the file when
// absent), validated like published readings. interval states the meter's
// sampling interval (learned from the file when absent), time whether a
// CSV's interval times are starts or ends, zone a Datadis file's time zone. The body streams (gzip, deflate
// or br allowed), up to the import limit once decoded, and is read a line
// at a time: a CSV of any size takes bounded memory. A bad line fails it
// with nothing stored (see store.ImportFrom).
func (s *Server) importMeter(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	opts, err := importOptions(c)
	if err != nil {
		return err
	}
	opts.MaxGap = s.store.MaxGap()
	body, done, err := importBody(c, s.importLimit, s.readTimeout)
	if err != nil {
		return bodyError(c, err, s.importLimit, s.readTimeout)
	}
	defer done()
	hr, err := s.decoder.NewHistoryReader(body, id, s.now(), opts)
	if err != nil {
		c.Context().SetConnectionClose() // the body was not read
		return &paramError{Name: "body", Detail: err.Error() + "; nothing was imported"}
	}
	read, added, err := s.store.ImportFrom(hr.Next, nil)
	var le *meter.LineError
	switch {
	case hr.ReadErr() != nil: // the body failed, not a line of it
		fe := bodyError(c, hr.ReadErr(), s.importLimit, s.readTimeout)
		return fiber.NewError(fe.Code, fe.Message+"; nothing was imported")
	case errors.As(err, &le):
		c.Context().SetConnectionClose() // the rest of the body was not read
		return &paramError{Name: "body", Detail: le.Error() + "; nothing was imported"}
	case err != nil:
		return err
	}
	if read == 0 {
		return &paramError{Name: "body", Detail: "no readings: send CSV lines timestamp,power_w[,energy_wh], intervals start,energy_kwh, a Datadis CSV or a Green Button XML file"}
	}
	s.log.Info("history imported", "meter", id, "format", string(hr.Format()), "readings", read, "new", added)
	return c.JSON(fiber.Map{"meter": id, "format": hr.Format(), "readings": read, "added": added})
}

// importOptions parses an import's query: format, interval, time and zone.
func importOptions(c *fiber.Ctx) (meter.ImportOptions, error) {
	var opts meter.ImportOptions
	var err error
	if opts.Format, err = meter.ParseFormat(c.Query("format")); err != nil {
		return opts, &paramError{Name: "format", Detail: err.Error()}
	}
	if opts.Stamp, err = meter.ParseStamp(c.Query("time")); err != nil {
		return opts, &paramError{Name: "time", Detail: err.Error()}
	}
	if v := c.Query("zone"); v != "" {
		loc, err := meter.ParseZone(v)
		if err != nil {
			return opts, &paramError{Name: "zone", Detail: err.Error()}
		}
		opts.Zone = loc
	}
	if v := c.Query("interval"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > meter.MaxIntervalLength {
			return opts, &paramError{Name: "interval", Detail: "want a duration from 1s to 24h, such as 15m or 1h"}
		}
		opts.Interval = d
	}
	return opts, nil
}
