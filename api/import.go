package api

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/meter"
)

// importMeter serves POST /api/v1/meters/{id}/import: a CSV history
// (timestamp,power_w[,energy_wh]; header optional) validated like published
// readings. The body streams (gzip, deflate or br allowed), up to the
// import limit once decoded, and is read a line at a time: an import of
// any size takes bounded memory. A bad line fails it with nothing stored
// (see store.ImportFrom).
func (s *Server) importMeter(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	body, done, err := importBody(c, s.importLimit, s.readTimeout)
	if err != nil {
		return bodyError(c, err, s.importLimit, s.readTimeout)
	}
	defer done()
	cr, err := s.decoder.NewCSVReader(body, id, s.now())
	if err != nil {
		return err
	}
	read, added, err := s.store.ImportFrom(cr.Next, nil)
	var le *meter.LineError
	switch {
	case cr.ReadErr() != nil: // the body failed, not a line of it
		fe := bodyError(c, cr.ReadErr(), s.importLimit, s.readTimeout)
		return fiber.NewError(fe.Code, fe.Message+"; nothing was imported")
	case errors.As(err, &le):
		c.Context().SetConnectionClose() // the rest of the body was not read
		return &paramError{Name: "body", Detail: le.Error() + "; nothing was imported"}
	case err != nil:
		return err
	}
	if read == 0 {
		return &paramError{Name: "body", Detail: "no readings: send CSV lines timestamp,power_w[,energy_wh]"}
	}
	s.log.Info("history imported", "meter", id, "readings", read, "new", added)
	return c.JSON(fiber.Map{"meter": id, "readings": read, "added": added})
}
