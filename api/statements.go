package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/statement"
)

// errBusy answers a statement asked for while others are being made.
var errBusy = &fiber.Error{Code: fiber.StatusServiceUnavailable, Message: "other statements are being made: try again in a minute"}

// statementSource is what the statements are built from.
func (s *Server) statementSource() statement.Source {
	return statement.Source{Store: s.store, Tariffs: s.tariffs, Tenants: s.tenants}
}

// Statement is what GET /api/v1/statements serves: the statement of
// subject over period, as JSON, CSV or PDF (in lang), made for caller
// (one at a time each). The dashboard's Statements page serves the same.
func (s *Server) Statement(ctx context.Context, caller, subject, period, format, lang string) (body []byte, contentType, filename string, err error) {
	switch format { // said before the work, not after it
	case "", "json", "csv", "pdf":
	default:
		return nil, "", "", &paramError{Name: "format", Detail: "json, csv or pdf"}
	}
	subj, err := statement.ParseSubject(subject)
	if err != nil {
		return nil, "", "", &paramError{Name: "subject", Detail: err.Error()}
	}
	tr := s.tariffs.Current()
	now := s.now()
	var p statement.Period
	if period == "" {
		p = statement.MonthOf(now.In(tr.Location).AddDate(0, -1, 0)) // last month, the one people bill
	} else if p, err = statement.ParsePeriod(period, tr.Location); err != nil {
		return nil, "", "", &paramError{Name: "period", Detail: err.Error()}
	}
	st, err := s.statementSource().BuildFor(ctx, caller, subj, p, now)
	switch {
	case errors.Is(err, statement.ErrUnknownSubject):
		return nil, "", "", fiber.NewError(fiber.StatusNotFound, err.Error())
	case errors.Is(err, statement.ErrFuture):
		return nil, "", "", &paramError{Name: "period", Detail: err.Error()}
	case errors.Is(err, statement.ErrBusy):
		return nil, "", "", errBusy
	case err != nil:
		return nil, "", "", err
	}
	name := fmt.Sprintf("vatio-%s-%s-%s", subj.Kind, subj.Name, strings.ReplaceAll(p.String(), "/", "_"))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || strings.ContainsRune(`"\;:/`, r) {
			return '_'
		}
		return r
	}, name)
	var b bytes.Buffer
	switch format {
	case "", "json":
		err = json.NewEncoder(&b).Encode(st)
		return b.Bytes(), fiber.MIMEApplicationJSON, name + ".json", err
	case "csv":
		err = statement.WriteCSV(&b, st)
		return b.Bytes(), "text/csv; charset=utf-8", name + ".csv", err
	case "pdf":
		err = statement.WritePDF(&b, st, statement.LangOf(lang), now)
		return b.Bytes(), "application/pdf", name + ".pdf", err
	}
	return nil, "", "", &paramError{Name: "format", Detail: "json, csv or pdf"}
}

// statements serves GET /api/v1/statements?subject=site:home&period=2026-11
// &format=json|csv|pdf&lang=en|es: a statement (last month by default),
// CSV and PDF as attachments.
func (s *Server) statements(c *fiber.Ctx) error {
	lang := c.Query("lang")
	switch lang {
	case "":
		lang = c.Get(fiber.HeaderAcceptLanguage) // a browser's: whatever it asks, English or Spanish
	case "en", "es":
	default:
		return &paramError{Name: "lang", Detail: "en or es"}
	}
	format := c.Query("format")
	caller := cmp.Or(who(c).User, c.IP()) // one statement at a time each
	body, ct, name, err := s.Statement(c.UserContext(), caller, c.Query("subject"), c.Query("period"), format, lang)
	if errors.Is(err, errBusy) {
		c.Set(fiber.HeaderRetryAfter, "30")
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, ct)
	if format == "csv" || format == "pdf" {
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(body)
}

// listTenants serves GET /api/v1/tenants.
func (s *Server) listTenants(c *fiber.Ctx) error {
	list, err := s.tenants.List()
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"tenants": list})
}

// getTenant serves GET /api/v1/tenants/{id}.
func (s *Server) getTenant(c *fiber.Ctx) error {
	t, err := s.tenants.Get(c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(t)
}

// putTenant serves PUT /api/v1/tenants/{id} (admin): the tenant, made
// (201) or replaced (200).
func (s *Server) putTenant(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	var t statement.Tenant
	if err := readJSON(c, "tenant", "tenant", &t); err != nil {
		return err
	}
	if t.ID == "" {
		t.ID = id
	}
	if t.ID != id {
		return &paramError{Name: "id", Detail: "the body's id is not the path's"}
	}
	saved, created, err := s.tenants.Put(t)
	if err != nil {
		return err
	}
	verb := "saved"
	if created {
		verb = "created"
		c.Status(fiber.StatusCreated)
	}
	audit.Note(c.UserContext(), fmt.Sprintf("tenant %s %s: %s, %d meters, fixed charges by %s", saved.ID, verb, saved.Name, len(saved.Meters), saved.FixedShare))
	return c.JSON(saved)
}

// deleteTenant serves DELETE /api/v1/tenants/{id} (admin): 204; its
// meters and their readings stay.
func (s *Server) deleteTenant(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	if err := s.tenants.Delete(id); err != nil {
		return err
	}
	audit.Note(c.UserContext(), "tenant "+id+" deleted")
	return c.SendStatus(fiber.StatusNoContent)
}

// statementError maps the statements' and tenants' errors to statuses and
// bodies.
func statementError(err error) (int, errorBody, bool) {
	var ie *statement.InvalidError
	switch {
	case errors.Is(err, statement.ErrUnknownSchedule):
		return fiber.StatusNotFound, errorBody{Error: "unknown schedule", Detail: err.Error()}, true
	case errors.Is(err, statement.ErrNoMail), errors.Is(err, statement.ErrTooManySchedules), errors.Is(err, statement.ErrSending):
		return fiber.StatusConflict, errorBody{Error: err.Error()}, true
	case errors.Is(err, statement.ErrUnknownTenant):
		return fiber.StatusNotFound, errorBody{Error: "unknown tenant", Detail: err.Error()}, true
	case errors.Is(err, statement.ErrTooMany):
		return fiber.StatusConflict, errorBody{Error: err.Error()}, true
	case errors.As(err, &ie):
		return fiber.StatusBadRequest, errorBody{Error: "invalid parameter \"" + ie.Field + "\"", Detail: ie.Reason,
			Problems: []fieldProblem{{Field: ie.Field, Reason: ie.Reason}}}, true
	}
	return 0, errorBody{}, false
}

// scheduleJSON is a schedule with its latest deliveries.
type scheduleJSON struct {
	statement.Schedule
	Deliveries []statement.Delivery `json:"deliveries"`
}

func (s *Server) scheduleJSON(x statement.Schedule) (scheduleJSON, error) {
	ds, err := s.schedules.Deliveries(x.ID, 12)
	if ds == nil {
		ds = []statement.Delivery{}
	}
	return scheduleJSON{Schedule: x, Deliveries: ds}, err
}

// listSchedules serves GET /api/v1/statements/schedules (admin): each
// schedule with its 12 latest deliveries.
func (s *Server) listSchedules(c *fiber.Ctx) error {
	list, err := s.schedules.List()
	if err != nil {
		return err
	}
	out := []scheduleJSON{}
	for _, x := range list {
		j, err := s.scheduleJSON(x)
		if err != nil {
			return err
		}
		out = append(out, j)
	}
	return c.JSON(fiber.Map{"schedules": out, "send_hour": statement.SendHour})
}

// getSchedule serves GET /api/v1/statements/schedules/{id} (admin).
func (s *Server) getSchedule(c *fiber.Ctx) error {
	x, err := s.schedules.Get(c.Params("id"))
	if err != nil {
		return err
	}
	j, err := s.scheduleJSON(x)
	if err != nil {
		return err
	}
	return c.JSON(j)
}

// putSchedule serves PUT /api/v1/statements/schedules/{id} (admin): made
// (201) or replaced (200).
func (s *Server) putSchedule(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	var x statement.Schedule
	if err := readJSON(c, "schedule", "schedule", &x); err != nil {
		return err
	}
	if x.ID == "" {
		x.ID = id
	}
	if x.ID != id {
		return &paramError{Name: "id", Detail: "the body's id is not the path's"}
	}
	saved, created, err := s.schedules.Put(x)
	if err != nil {
		return err
	}
	verb := "saved"
	if created {
		verb = "created"
		c.Status(fiber.StatusCreated)
	}
	audit.Note(c.UserContext(), fmt.Sprintf("statement schedule %s %s: %s every %s on day %d to %d recipients", saved.ID, verb, saved.Subject, saved.Every, saved.Day, len(saved.To)))
	j, err := s.scheduleJSON(saved)
	if err != nil {
		return err
	}
	return c.JSON(j)
}

// deleteSchedule serves DELETE /api/v1/statements/schedules/{id} (admin).
func (s *Server) deleteSchedule(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	if err := s.schedules.Delete(id); err != nil {
		return err
	}
	audit.Note(c.UserContext(), "statement schedule "+id+" deleted")
	return c.SendStatus(fiber.StatusNoContent)
}

// sendSchedule serves POST /api/v1/statements/schedules/{id}/send?period=
// (admin): the schedule's statement of that period is mailed now, whatever
// was recorded for it, and the delivery recorded.
func (s *Server) sendSchedule(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	period := c.Query("period")
	if period == "" {
		return &paramError{Name: "period", Detail: "give the period to send (2026-11)"}
	}
	d, err := s.schedules.SendNow(c.UserContext(), id, period)
	if err != nil {
		return err
	}
	audit.Note(c.UserContext(), "statement schedule "+id+" sent by hand for "+d.Period+": "+d.State)
	return c.JSON(d)
}
