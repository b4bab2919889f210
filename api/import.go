package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
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
	opts, err := meter.ParseImportOptions(c.Query("format"), c.Query("interval"), c.Query("time"), c.Query("zone"))
	if err != nil {
		var fe *meter.FieldError
		errors.As(err, &fe)
		return &paramError{Name: fe.Field, Detail: fe.Err.Error()}
	}
	body, done, err := importBody(c, s.importLimit, s.readTimeout)
	if err != nil {
		return bodyError(c, err, s.importLimit, s.readTimeout)
	}
	defer done()
	sum, err := s.importHistory(c, body, id, opts)
	var fe *meter.FieldError
	var le *meter.LineError
	var he *fiber.Error
	switch {
	case errors.As(err, &he):
		return err
	case errors.As(err, &le):
		return &paramError{Name: "body", Detail: le.Error() + "; nothing was imported"}
	case errors.As(err, &fe):
		return &paramError{Name: "body", Detail: fe.Err.Error() + "; nothing was imported"}
	case err != nil:
		return err
	}
	return c.JSON(fiber.Map{"meter": sum.MeterID, "format": sum.Format, "rows": sum.Rows, "intervals": sum.Intervals,
		"readings": sum.Readings, "added": sum.Added})
}

// errNoReadings is a history that gave no reading.
var errNoReadings = errors.New("no readings: send CSV lines timestamp,power_w[,energy_wh], intervals start,energy_kwh, a Datadis CSV or a Green Button XML file")

// importRetryAfter is the Retry-After (seconds) of an import refused while
// another runs: a year of quarter-hours takes about this long.
const importRetryAfter = "30"

// importHistory stores the history of meter id (or, for a Datadis file, of
// the meter its CUPS names, when id is "") in body: the one import path of
// the API and of the dashboard's form. A file that cannot be read as its
// format is a *meter.FieldError (field "file"; "meter" when it names no
// meter), a bad line a *meter.LineError, and a body that failed (past the
// import limit, stalled) a *fiber.Error; nothing is stored then. Imports
// run one at a time, so that parallel ones cannot multiply their memory and
// the store's work: one sent while another runs is refused at once, 503
// with Retry-After, rather than held waiting with its body unread.
func (s *Server) importHistory(c *fiber.Ctx, body io.Reader, id string, opts meter.ImportOptions) (meter.ImportSummary, error) {
	sum := meter.ImportSummary{MeterID: id}
	select {
	case s.importing <- struct{}{}:
		defer func() { <-s.importing }()
	default:
		c.Context().SetConnectionClose() // the body was not read
		c.Set(fiber.HeaderRetryAfter, importRetryAfter)
		return sum, fiber.NewError(fiber.StatusServiceUnavailable, "another import is running: send this one again when it ends; nothing was imported")
	}
	opts.MaxGap, opts.Heard = s.store.MaxGap(), s.heard
	hr, err := s.decoder.NewHistoryReader(body, id, s.now(), opts)
	var ne net.Error
	if errors.Is(err, errTooLarge) || errors.As(err, &ne) { // the body failed as its first bytes were read
		fe := bodyError(c, err, s.importLimit, s.readTimeout)
		return sum, fiber.NewError(fe.Code, fe.Message+"; nothing was imported")
	}
	if err != nil {
		c.Context().SetConnectionClose() // the body was not read
		field := "file"
		if errors.Is(err, meter.ErrNoMeterID) {
			field = "meter"
		}
		return sum, &meter.FieldError{Field: field, Err: err}
	}
	next := func() (meter.Reading, error) {
		r, err := hr.Next()
		if err == nil {
			if sum.First.IsZero() {
				sum.First = r.Time
			}
			sum.Last = r.Time
		}
		return r, err
	}
	read, added, err := s.store.ImportFrom(next, nil)
	var le *meter.LineError
	switch {
	case hr.ReadErr() != nil: // the body failed, not a line of it
		fe := bodyError(c, hr.ReadErr(), s.importLimit, s.readTimeout)
		return sum, fiber.NewError(fe.Code, fe.Message+"; nothing was imported")
	case errors.As(err, &le):
		c.Context().SetConnectionClose() // the rest of the body was not read
		return sum, err
	case err != nil:
		return sum, err
	}
	if read == 0 {
		return sum, &meter.FieldError{Field: "file", Err: errNoReadings}
	}
	sum.MeterID, sum.Format, sum.Readings, sum.Added = hr.MeterID(), hr.Format(), read, added
	sum.Rows, sum.Intervals = hr.Rows(), hr.Intervals()
	s.log.Info("history imported", "meter", sum.MeterID, "format", string(sum.Format), "rows", sum.Rows, "readings", read, "new", added)
	audit.Note(c.UserContext(), fmt.Sprintf("history of %s imported from a %s file: %d rows, %d readings, %d new",
		sum.MeterID, sum.Format, sum.Rows, sum.Readings, sum.Added))
	return sum, nil
}

// importFormPath is where the dashboard's import form posts: a multipart
// form that streams, as an import's body does (see isImport).
const importFormPath = "/meters/import"

// maxFormFieldBytes and maxFormFields bound what is read of the import
// form before its file: a few short fields.
const (
	maxFormFieldBytes = 1024
	maxFormFields     = 16
)

// importForm is the dashboard's import form as it streams in: its fields,
// read before its file, and the file part, still to read.
type importForm struct {
	fields map[string]string
	file   io.Reader // nil when the form has no file
	done   func()
}

// importFormKey keeps the opened import form in the request's locals:
// authenticate opens it to read its CSRF token, the handler reads on.
type importFormKey struct{}

// openImportForm reads the import form of c up to its file part (field
// file, which must come last, as a browser sends a form whose file input
// is last), within the import limit; the fields before it are short.
func (s *Server) openImportForm(c *fiber.Ctx) (*importForm, error) {
	if f, ok := c.Locals(importFormKey{}).(*importForm); ok {
		return f, nil
	}
	mt, params, err := mime.ParseMediaType(string(c.Request().Header.ContentType()))
	if err != nil || mt != fiber.MIMEMultipartForm || params["boundary"] == "" {
		c.Context().SetConnectionClose()
		return nil, fiber.NewError(fiber.StatusBadRequest, "send the import form as multipart/form-data")
	}
	body, done, err := importBody(c, s.importLimit, s.readTimeout)
	if err != nil {
		return nil, bodyError(c, err, s.importLimit, s.readTimeout)
	}
	f := &importForm{fields: map[string]string{}}
	f.done = func() {
		if done != nil {
			done()
			done = nil
		}
	}
	mr := multipart.NewReader(body, params["boundary"])
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.done()
			return nil, bodyError(c, err, s.importLimit, s.readTimeout)
		}
		if p.FormName() == "file" {
			f.file = p
			break
		}
		v, err := io.ReadAll(io.LimitReader(p, maxFormFieldBytes+1))
		if err != nil {
			f.done()
			return nil, bodyError(c, err, s.importLimit, s.readTimeout)
		}
		if n >= maxFormFields || len(v) > maxFormFieldBytes {
			f.done()
			c.Context().SetConnectionClose()
			return nil, fiber.NewError(fiber.StatusBadRequest, "the import form's fields before its file are too many or too long")
		}
		f.fields[p.FormName()] = strings.TrimSpace(string(v))
	}
	c.Locals(importFormKey{}, f)
	return f, nil
}

// ImportForm imports the file of the dashboard's import form (POST
// /meters/import: a multipart form whose fields csrf, meter, format,
// interval, time and zone come before its file part, file), by the same
// path and within the same limits as POST /api/v1/meters/{id}/import. The
// meter may be "" for a Datadis file, whose CUPS names it. It returns the
// fields as typed, and what was stored or why nothing was: a
// *meter.FieldError (fields meter, format, interval, time, zone, file), a
// *meter.LineError, or a *fiber.Error (413 past the import limit, 408
// stalled, 400 a broken form).
func (s *Server) ImportForm(c *fiber.Ctx) (map[string]string, meter.ImportSummary, error) {
	var sum meter.ImportSummary
	f, err := s.openImportForm(c)
	if err != nil {
		return map[string]string{}, sum, err
	}
	defer f.done()
	fields := map[string]string{}
	for _, k := range []string{"meter", "format", "interval", "time", "zone"} {
		fields[k] = f.fields[k]
	}
	id := fields["meter"]
	if id != "" && !meter.ValidID(id) {
		c.Context().SetConnectionClose()
		return fields, sum, &meter.FieldError{Field: "meter", Err: fmt.Errorf("use 1 to %d letters, digits, '.', '_', ':' or '-'", meter.MaxIDLength)}
	}
	opts, err := meter.ParseImportOptions(fields["format"], fields["interval"], fields["time"], fields["zone"])
	if err != nil {
		c.Context().SetConnectionClose()
		return fields, sum, err
	}
	if f.file == nil {
		return fields, sum, &meter.FieldError{Field: "file", Err: errors.New("choose a file")}
	}
	sum, err = s.importHistory(c, f.file, id, opts)
	return fields, sum, err
}

// heard is the time of meter id's newest live reading, the zero time if
// it never reported live (or is unknown): an import holds only what came
// before.
func (s *Server) heard(id string) time.Time {
	m, err := s.store.Meter(id)
	if err != nil {
		return time.Time{}
	}
	return m.NewestLive()
}
