package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/meter"
)

// importMeter serves POST /api/v1/meters/{id}/import: a CSV history
// (timestamp,power_w[,energy_wh]; header optional) validated like published
// readings and stored in one transaction, all or nothing. The body is read
// as a stream, up to the import limit.
func (s *Server) importMeter(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	var body io.Reader = bytes.NewReader(c.Body())
	if c.Request().IsBodyStream() {
		body = c.Context().RequestBodyStream()
	}
	lr := &io.LimitedReader{R: body, N: s.importLimit + 1}
	readings, err := s.decoder.ReadCSV(lr, id, s.now(), nil)
	if lr.N <= 0 {
		c.Context().SetConnectionClose()
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, fmt.Sprintf("import larger than %d bytes: split it", s.importLimit))
	}
	var le *meter.LineError
	if errors.As(err, &le) {
		c.Context().SetConnectionClose() // the rest of the body was not read
		return &paramError{Name: "body", Detail: le.Error()}
	}
	if err != nil {
		return err
	}
	if len(readings) == 0 {
		return &paramError{Name: "body", Detail: "no readings: send CSV lines timestamp,power_w[,energy_wh]"}
	}
	added, err := s.store.Import(readings, nil)
	if err != nil {
		return err
	}
	s.log.Info("history imported", "meter", id, "readings", len(readings), "new", added)
	return c.JSON(fiber.Map{"meter": id, "readings": len(readings), "added": added})
}

// limitBody holds a request body to limit bytes. The server streams bodies
// larger than its limit instead of refusing them, so that imports (whose
// route comes before this middleware) can be large; on every other route a
// body past the limit is a 413.
func limitBody(limit int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		req := c.Request()
		if !req.IsBodyStream() {
			return c.Next()
		}
		if req.Header.ContentLength() > limit {
			c.Context().SetConnectionClose() // the unread body must not be taken for the next request
			return fiber.ErrRequestEntityTooLarge
		}
		b, err := io.ReadAll(io.LimitReader(c.Context().RequestBodyStream(), int64(limit)+1))
		if err != nil {
			c.Context().SetConnectionClose()
			return fiber.NewError(fiber.StatusBadRequest, "reading the request body: "+err.Error())
		}
		if len(b) > limit {
			c.Context().SetConnectionClose()
			return fiber.ErrRequestEntityTooLarge
		}
		req.SetBody(b)
		return c.Next()
	}
}
