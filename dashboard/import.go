package dashboard

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/meter"
)

// The Meters page's "Bring in history" form imports a history file (Vatio's
// CSV, a Datadis CSV, a Green Button XML file) with a plain multipart form
// that works without JavaScript, posted with the session's CSRF token. The
// file is read and stored by the API's import (Options.ImportForm), with its
// limits; the page answers with a redirect back saying what was imported,
// or with the page and the errors beside the form.

// ImportFunc imports the file of the import form of c (api.Server.ImportForm):
// it returns the form's fields as typed (meter, format, interval, time,
// zone) and what was stored, or why nothing was: a *meter.FieldError, a
// *meter.LineError or a *fiber.Error.
type ImportFunc func(c *fiber.Ctx) (fields map[string]string, sum meter.ImportSummary, err error)

// importFormData is the import form as typed, with Errors by field (meter,
// format, interval, time, zone, file).
type importFormData struct {
	Meter, Format, Interval, Time, Zone string
	Errors                              map[string]string
}

// importResult is what the last import stored, read back from the
// redirect's query.
type importResult struct {
	Meter, Format     string
	Readings          int
	Rows, Intervals   int
	FirstDay, LastDay string // 2006-01-02
	// Text says it in the page's language.
	Text string
}

// importFormats are the form's formats; "" is auto.
var importFormats = []string{"", string(meter.FormatCSV), string(meter.FormatDatadis), string(meter.FormatGreenButton)}

// canImport is whether the user of c may import: operators and admins.
func (d *Dashboard) canImport(c *fiber.Ctx) bool {
	if d.importFile == nil {
		return false
	}
	return d.auth == nil || auth.Allows(auth.WhoFrom(c.UserContext()).Role, auth.Operator)
}

// importResultOf reads what the last import stored from the redirect's
// query, nil when it says nothing (or nonsense).
func importResultOf(c *fiber.Ctx, l *language, loc *time.Location) *importResult {
	id := c.Query("imported")
	if id == "" || !meter.ValidID(id) {
		return nil
	}
	r := &importResult{Meter: id, Format: c.Query("format"), FirstDay: c.Query("first"), LastDay: c.Query("last")}
	n, err := strconv.Atoi(c.Query("readings"))
	rows, err1 := strconv.Atoi(c.Query("rows"))
	intervals, err2 := strconv.Atoi(c.Query("intervals"))
	if err != nil || err1 != nil || err2 != nil || n < 1 || rows < 1 || intervals < 0 || intervals > rows ||
		!slices.Contains(importFormats[1:], r.Format) {
		return nil
	}
	first, err1 := time.ParseInLocation(time.DateOnly, r.FirstDay, loc)
	last, err2 := time.ParseInLocation(time.DateOnly, r.LastDay, loc)
	if err1 != nil || err2 != nil {
		return nil
	}
	r.Readings, r.Rows, r.Intervals = n, rows, intervals
	day := func(t time.Time) string { return l.Day(t, loc) + " " + strconv.Itoa(t.Year()) }
	// What the file held, its rows; the points they became are secondary.
	held := fmt.Sprintf(l.T("import.rows"), l.Number(float64(rows), 0))
	if intervals == rows {
		held = fmt.Sprintf(l.T("import.intervals"), l.Number(float64(intervals), 0))
	}
	r.Text = fmt.Sprintf(l.T("import.done"), held, l.T("import.format_"+r.Format), id, day(first), day(last), l.Number(float64(n), 0))
	return r
}

// importHistory serves POST /meters/import (operator): the import form.
func (d *Dashboard) importHistory(c *fiber.Ctx) error {
	fields, sum, err := d.importFile(c)
	if err == nil {
		q := url.Values{"imported": {sum.MeterID}, "format": {string(sum.Format)}, "readings": {strconv.Itoa(sum.Readings)},
			"rows": {strconv.Itoa(sum.Rows)}, "intervals": {strconv.Itoa(sum.Intervals)},
			"first": {sum.First.In(d.loc).Format(time.DateOnly)}, "last": {sum.Last.In(d.loc).Format(time.DateOnly)}}
		return c.Redirect("/meters?"+q.Encode()+"#import", fiber.StatusSeeOther)
	}
	b := d.newBase(c, "meters", "meters.title")
	form := &importFormData{Meter: fields["meter"], Format: fields["format"], Interval: fields["interval"], Time: fields["time"],
		Zone: fields["zone"], Errors: map[string]string{}}
	var le *meter.LineError
	var fe *meter.FieldError
	var he *fiber.Error
	status := fiber.StatusBadRequest
	switch {
	case errors.As(err, &le):
		form.Errors["file"] = fmt.Sprintf(b.Lang.T("import.error_line"), le.Line, meter.Say(le.Err, b.Lang.problems))
	case errors.As(err, &fe):
		form.Errors[fe.Field] = importFieldError(b.Lang, fe)
	case errors.As(err, &he) && he.Code == fiber.StatusRequestEntityTooLarge:
		form.Errors["file"] = fmt.Sprintf(b.Lang.T("import.error_too_big"), he.Message)
	case errors.As(err, &he) && he.Code == fiber.StatusRequestTimeout:
		form.Errors["file"] = b.Lang.T("import.error_stalled")
	case errors.As(err, &he) && he.Code == fiber.StatusServiceUnavailable:
		form.Errors["file"] = b.Lang.T("import.error_busy")
		status = fiber.StatusServiceUnavailable
	case errors.As(err, &he) && he.Code == fiber.StatusBadRequest:
		form.Errors["file"] = fmt.Sprintf(b.Lang.T("import.error_form"), he.Message)
	default:
		return err
	}
	data := d.metersData(c, b)
	data.ImportForm = form
	c.Status(status)
	return d.render(c, "meters", b, data)
}

// importFieldError says what is wrong with a field of the import form in
// the page's language.
func importFieldError(l *language, fe *meter.FieldError) string {
	switch {
	case fe.Field == "meter" && errors.Is(fe, meter.ErrNoMeterID):
		return l.T("import.error_no_meter")
	case fe.Field == "file":
		return fmt.Sprintf(l.T("import.error_file"), meter.Say(fe.Err, l.problems))
	case slices.Contains([]string{"meter", "format", "interval", "time", "zone"}, fe.Field):
		return l.T("import.error_" + fe.Field)
	}
	return meter.Say(fe, l.problems)
}
