package dashboard

import (
	"cmp"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/statement"
)

// The Statements page (GET /statements) previews a statement of a site, a
// tenant or a meter for a month or a range of days, with links to its PDF
// and CSV (the API's); admins add, change and delete tenants below it.

// choice is an option of the subject list.
type choice struct {
	Value, Label string
}

// statementsData is what statements.html renders.
type statementsData struct {
	*base
	// Sites, Tenants and Meters are the subjects to choose from.
	Sites, TenantChoices, Meters []choice
	// Subject and Period are the statement asked for; Month the month
	// input's value and From, To the range's.
	Subject, Period, Month, From, To string
	// S is the statement, nil before one is asked for or when it cannot
	// be made (Problem says why).
	S       *statement.Statement
	SL      *statement.Lang
	Problem string
	// PDF and CSV are the links to the statement as PDF and CSV (the
	// API's), made of a query url.Values encoded.
	PDF, CSV template.URL
	Days     *chartSnippet
	// Tenants are the tenants, TenantForm the form to add or change one
	// (?tenant=id), CanTenants whether the user may.
	Tenants    []statement.Tenant
	TenantForm *tenantForm
	CanTenants bool
	Done       string
	// SchedulesOn is whether statements can be scheduled (admins see
	// them); Schedules are they, with their latest deliveries, and
	// ScheduleForm the form to add or change one (?schedule=id); NoMail
	// says no SMTP server is configured.
	SchedulesOn bool
	NoMail      bool
	// DoneWhat names the period a "send now" sent (or failed to).
	DoneWhat     string
	Schedules    []scheduleView
	ScheduleForm *scheduleForm
}

// scheduleView is a schedule as the page lists it.
type scheduleView struct {
	statement.Schedule
	Deliveries []statement.Delivery
	// Latest is the period it sent (or sends) last, which "send now"
	// sends again.
	Latest string
	// LatestName is it as the page says it ("October 2026"); LatestSent
	// whether it was sent already (the button then sends it again, once
	// confirmed).
	LatestName string
	LatestSent bool
	// SubjectName is the subject as the page names it (a tenant's name).
	SubjectName string
}

// scheduleForm is the schedule form as typed.
type scheduleForm struct {
	Editing                           string
	ID, Subject, Every, Day, Lang, To string
	Error                             string
}

// tenantForm is the tenant form as typed.
type tenantForm struct {
	Editing                                   string
	ID, Name, Address, Meters, Share, Percent string
	Error                                     string
}

func tenantFormOf(t statement.Tenant) *tenantForm {
	f := &tenantForm{Editing: t.ID, ID: t.ID, Name: t.Name, Address: t.Address, Meters: strings.Join(t.Meters, ", "), Share: t.FixedShare}
	if t.FixedShare == statement.SharePercent {
		f.Percent = number(t.FixedPercent)
	}
	return f
}

// statementsPage serves GET /statements?subject=site:home&period=2026-11
// (or &from=2026-11-01&to=2026-11-15).
func (d *Dashboard) statementsPage(c *fiber.Ctx) error {
	b := d.newBase(c, "statements", "statements.title")
	data, err := d.statementsData(c, b)
	if err != nil {
		return err
	}
	if id := c.Query("tenant"); id != "" && data.CanTenants {
		if t, err := d.tenants.Get(id); err == nil {
			data.TenantForm = tenantFormOf(t)
		}
	}
	return d.render(c, "statements", b, data)
}

// statementsData is the page's data: the subjects, and the statement asked
// for in c's query.
func (d *Dashboard) statementsData(c *fiber.Ctx, b *base) (*statementsData, error) {
	role := auth.WhoFrom(c.UserContext()).Role
	tr := d.tariff.Current()
	now := d.now().In(tr.Location)
	data := &statementsData{base: b, SL: statement.LangOf(b.Lang.Code), CanTenants: d.auth == nil || auth.Allows(role, auth.Admin),
		TenantForm: &tenantForm{Share: statement.ShareEnergy}}
	data.Done = c.Query("done")
	if !slices.Contains([]string{"", "tenant_saved", "tenant_deleted", "schedule_saved", "schedule_deleted", "schedule_sent", "schedule_failed", "schedule_sending"}, data.Done) {
		data.Done = ""
	}
	if p, err := statement.ParsePeriod(c.Query("sent"), tr.Location); err == nil && strings.HasPrefix(data.Done, "schedule_") {
		data.DoneWhat = statement.LangOf(b.Lang.Code).PeriodName(p) // which period went, or did not
	}
	sites := map[string]bool{}
	for _, m := range d.st.Meters() {
		if m.Info.Parent == "" && !sites[m.Site] {
			sites[m.Site] = true
		}
		label := m.ID
		if m.Info.Name != "" {
			label = m.Info.Name + " (" + m.ID + ")"
		}
		data.Meters = append(data.Meters, choice{"meter:" + m.ID, label})
	}
	for _, s := range slices.Sorted(maps.Keys(sites)) {
		data.Sites = append(data.Sites, choice{"site:" + s, s})
	}
	if d.tenants != nil {
		ts, err := d.tenants.List()
		if err != nil {
			return nil, err
		}
		data.Tenants = ts
		for _, t := range ts {
			data.TenantChoices = append(data.TenantChoices, choice{"tenant:" + t.ID, t.Name})
		}
	}
	if d.schedules != nil && data.CanTenants && d.auth != nil {
		data.SchedulesOn, data.NoMail = true, !d.schedules.Mails()
		list, err := d.schedules.List()
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			ds, err := d.schedules.Deliveries(x.ID, 3)
			if err != nil {
				return nil, err
			}
			latest := x.Latest(d.now(), tr.Location)
			v := scheduleView{Schedule: x, Deliveries: ds, Latest: latest.String(), LatestName: statement.LangOf(b.Lang.Code).PeriodName(latest),
				SubjectName: x.Subject}
			for _, dl := range ds {
				v.LatestSent = v.LatestSent || (dl.Period == v.Latest && dl.State == statement.DeliverySent)
			}
			for _, c := range slices.Concat(data.TenantChoices, data.Meters) {
				if c.Value == x.Subject {
					v.SubjectName = c.Label
				}
			}
			data.Schedules = append(data.Schedules, v)
		}
		data.ScheduleForm = &scheduleForm{Every: statement.EveryMonth, Day: "1", Lang: b.Lang.Code}
		if id := c.Query("schedule"); id != "" {
			if x, err := d.schedules.Get(id); err == nil {
				data.ScheduleForm = &scheduleForm{Editing: x.ID, ID: x.ID, Subject: x.Subject, Every: x.Every, Day: strconv.Itoa(x.Day), Lang: x.Lang, To: strings.Join(x.To, "\n")}
			}
		}
	}
	last := statement.MonthOf(now.AddDate(0, 0, -now.Day()))
	data.Month = last.From.Format("2006-01")
	data.Subject = c.Query("subject")
	if data.Subject == "" {
		if len(data.Sites) == 1 {
			data.Subject = data.Sites[0].Value
		}
	}
	data.From, data.To = c.Query("from"), c.Query("to")
	switch {
	case data.From != "" || data.To != "":
		data.Period, data.Month = data.From+"/"+data.To, "" // the days, not a month, are asked for
	case c.Query("period") != "":
		data.Period = c.Query("period")
		data.Month = data.Period
	default:
		data.Period = data.Month
	}
	if data.Subject == "" {
		return data, nil
	}
	subject, err := statement.ParseSubject(data.Subject)
	if err != nil {
		data.Problem = b.Lang.T("statements.bad_subject")
		return data, nil
	}
	p, err := statement.ParsePeriod(data.Period, tr.Location)
	if err != nil {
		data.Problem = b.Lang.T("statements.bad_period")
		return data, nil
	}
	caller := cmp.Or(auth.WhoFrom(c.UserContext()).User, c.IP()) // one statement at a time each
	s, err := statement.Source{Store: d.st, Tariffs: d.tariff, Tenants: d.tenants}.BuildFor(c.UserContext(), caller, subject, p, d.now())
	switch {
	case errors.Is(err, statement.ErrUnknownSubject):
		data.Problem = b.Lang.T("statements.unknown")
		return data, nil
	case errors.Is(err, statement.ErrFuture):
		data.Problem = b.Lang.T("statements.future")
		return data, nil
	case errors.Is(err, statement.ErrBusy):
		data.Problem = b.Lang.T("statements.busy")
		return data, nil
	case err != nil:
		return nil, err
	}
	data.S = s
	q := url.Values{"subject": {subject.String()}, "period": {p.String()}, "lang": {b.Lang.Code}}
	q.Set("format", "pdf")
	data.PDF = template.URL("/api/v1/statements?" + q.Encode()) // encoded by url.Values
	q.Set("format", "csv")
	data.CSV = template.URL("/api/v1/statements?" + q.Encode())
	if d.charts && len(s.Days) > 0 {
		labels := make([]string, len(s.Days))
		kwh := make([]float64, len(s.Days))
		for i, day := range s.Days {
			labels[i] = b.Lang.Day(day.Date, tr.Location)
			kwh[i] = day.ImportKWh
		}
		ch, err := dailyChart(b.Lang, labels, kwh)
		if err != nil {
			return nil, err
		}
		data.Days = b.chart(ch)
	}
	return data, nil
}

// saveTenant serves POST /statements/tenants (admin): the tenant form.
func (d *Dashboard) saveTenant(c *fiber.Ctx) error {
	b := d.newBase(c, "statements", "statements.title")
	args := c.Request().PostArgs()
	field := func(name string) string { return strings.TrimSpace(string(args.Peek(name))) }
	f := &tenantForm{Editing: field("editing"), ID: field("id"), Name: field("name"), Address: strings.TrimSpace(string(args.Peek("address"))),
		Meters: field("meters"), Share: field("fixed_share"), Percent: field("fixed_percent")}
	if f.Editing != "" {
		f.ID = f.Editing
	}
	t := statement.Tenant{ID: f.ID, Name: f.Name, Address: f.Address, Meters: words(f.Meters), FixedShare: f.Share}
	var err error
	if f.Share == statement.SharePercent && f.Percent != "" {
		if t.FixedPercent, err = strconv.ParseFloat(strings.Replace(f.Percent, ",", ".", 1), 64); err != nil {
			err = fmt.Errorf("fixed_percent: %s", fmt.Sprintf(b.Lang.T("form.not_number"), f.Percent))
		}
	}
	if err == nil {
		_, getErr := d.tenants.Get(t.ID)
		switch {
		case getErr == nil && f.Editing == "":
			err = fmt.Errorf("id: %s", fmt.Sprintf(b.Lang.T("tenants.exists"), t.ID))
		case getErr != nil && f.Editing != "":
			err = fmt.Errorf("id: %s", b.Lang.T("tenants.gone"))
		default:
			var saved statement.Tenant
			var created bool
			if saved, created, err = d.tenants.Put(t); err == nil {
				verb := "saved"
				if created {
					verb = "created"
				}
				audit.Note(c.UserContext(), fmt.Sprintf("tenant %s %s: %s, %d meters, fixed charges by %s", saved.ID, verb, saved.Name, len(saved.Meters), saved.FixedShare))
				return c.Redirect("/statements?"+url.Values{"done": {"tenant_saved"}, "subject": {"tenant:" + saved.ID}}.Encode()+"#tenants", fiber.StatusSeeOther)
			}
			var ie *statement.InvalidError
			switch {
			case errors.As(err, &ie):
				err = fmt.Errorf("%s: %s", b.Lang.formField(tenantLabels, ie.Field), b.Lang.statementProblem(ie))
			case errors.Is(err, statement.ErrTooMany):
				err = fmt.Errorf(b.Lang.T("tenants.too_many"), statement.MaxTenants)
			default:
				return err
			}
		}
	}
	data, derr := d.statementsData(c, b)
	if derr != nil {
		return derr
	}
	f.Error = err.Error()
	data.TenantForm = f
	c.Status(fiber.StatusBadRequest)
	return d.render(c, "statements", b, data)
}

// deleteTenant serves POST /statements/tenants/{id}/delete (admin).
func (d *Dashboard) deleteTenant(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	if err := d.tenants.Delete(id); err != nil {
		if errors.Is(err, statement.ErrUnknownTenant) {
			return fiber.NewError(fiber.StatusNotFound, err.Error())
		}
		return err
	}
	audit.Note(c.UserContext(), "tenant "+id+" deleted")
	return c.Redirect("/statements?done=tenant_deleted#tenants", fiber.StatusSeeOther)
}

// saveSchedule serves POST /statements/schedules (admin): the schedule form.
func (d *Dashboard) saveSchedule(c *fiber.Ctx) error {
	b := d.newBase(c, "statements", "statements.title")
	args := c.Request().PostArgs()
	field := func(name string) string { return strings.TrimSpace(string(args.Peek(name))) }
	f := &scheduleForm{Editing: field("editing"), ID: field("id"), Subject: field("subject"), Every: field("every"), Day: field("day"),
		Lang: field("lang"), To: field("to")}
	if f.Editing != "" {
		f.ID = f.Editing
	}
	x := statement.Schedule{ID: f.ID, Subject: f.Subject, Every: f.Every, Lang: f.Lang}
	x.To = recipients(f.To)
	day, err := strconv.Atoi(f.Day)
	if err != nil {
		err = fmt.Errorf("day: %s", fmt.Sprintf(b.Lang.T("form.not_number"), f.Day))
	}
	x.Day = day
	if err == nil {
		_, getErr := d.schedules.Get(x.ID)
		switch {
		case getErr == nil && f.Editing == "":
			err = fmt.Errorf("id: %s", fmt.Sprintf(b.Lang.T("schedules.exists"), x.ID))
		case getErr != nil && f.Editing != "":
			err = fmt.Errorf("id: %s", b.Lang.T("schedules.gone"))
		default:
			var saved statement.Schedule
			var created bool
			if saved, created, err = d.schedules.Put(x); err == nil {
				verb := "saved"
				if created {
					verb = "created"
				}
				audit.Note(c.UserContext(), fmt.Sprintf("statement schedule %s %s: %s every %s on day %d to %d recipients", saved.ID, verb, saved.Subject, saved.Every, saved.Day, len(saved.To)))
				return c.Redirect("/statements?done=schedule_saved#schedules", fiber.StatusSeeOther)
			}
			var ie *statement.InvalidError
			switch {
			case errors.As(err, &ie):
				err = fmt.Errorf("%s: %s", b.Lang.formField(scheduleLabels, ie.Field), b.Lang.statementProblem(ie))
			case errors.Is(err, statement.ErrNoMail):
				err = errors.New(b.Lang.T("schedules.no_mail"))
			case errors.Is(err, statement.ErrTooManySchedules):
				err = fmt.Errorf(b.Lang.T("schedules.too_many"), statement.MaxSchedules)
			default:
				return err
			}
		}
	}
	data, derr := d.statementsData(c, b)
	if derr != nil {
		return derr
	}
	f.Error = err.Error()
	data.ScheduleForm = f
	c.Status(fiber.StatusBadRequest)
	return d.render(c, "statements", b, data)
}

// deleteSchedule serves POST /statements/schedules/{id}/delete (admin).
func (d *Dashboard) deleteSchedule(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	if err := d.schedules.Delete(id); err != nil {
		if errors.Is(err, statement.ErrUnknownSchedule) {
			return fiber.NewError(fiber.StatusNotFound, err.Error())
		}
		return err
	}
	audit.Note(c.UserContext(), "statement schedule "+id+" deleted")
	return c.Redirect("/statements?done=schedule_deleted#schedules", fiber.StatusSeeOther)
}

// sendSchedule serves POST /statements/schedules/{id}/send (admin): field
// period, the period to send now.
func (d *Dashboard) sendSchedule(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	period := string(c.Request().PostArgs().Peek("period"))
	dl, err := d.schedules.SendNow(c.UserContext(), id, period)
	if err != nil {
		var ie *statement.InvalidError
		switch {
		case errors.Is(err, statement.ErrUnknownSchedule):
			return fiber.NewError(fiber.StatusNotFound, err.Error())
		case errors.As(err, &ie):
			return fiber.NewError(fiber.StatusBadRequest, d.newBase(c, "statements", "statements.title").Lang.statementProblem(ie))
		case errors.Is(err, statement.ErrSending):
			return c.Redirect("/statements?done=schedule_sending#schedules", fiber.StatusSeeOther)
		}
		return err
	}
	audit.Note(c.UserContext(), "statement schedule "+id+" sent by hand for "+dl.Period+": "+dl.State)
	done := "schedule_sent"
	if dl.State != statement.DeliverySent {
		done = "schedule_failed"
	}
	return c.Redirect("/statements?"+url.Values{"done": {done}, "sent": {dl.Period}}.Encode()+"#schedules", fiber.StatusSeeOther)
}

// statementProblem says why a tenant or schedule was refused, in l's
// words ("tenanterr." + the problem's key), else in English.
func (l *language) statementProblem(ie *statement.InvalidError) string {
	if text, ok := l.texts["tenanterr."+ie.Key]; ok {
		return fmt.Sprintf(text, ie.Args...)
	}
	return ie.Reason
}

// The forms' labels of the fields package statement names.
var (
	tenantLabels = map[string]string{"id": "rules.id", "name": "tenants.billing_name", "address": "tenants.address",
		"meters": "tenants.meters", "fixed_share": "tenants.share", "fixed_percent": "tenants.percent"}
	scheduleLabels = map[string]string{"id": "rules.id", "subject": "statements.subject", "every": "schedules.every",
		"day": "schedules.day_field", "lang": "schedules.lang", "to": "schedules.to_field"}
)

// formField names a field refused (meters[1]) as its form labels it
// ("Meters 2"), so that the reader finds it; a field the form does not
// have keeps its key.
func (l *language) formField(labels map[string]string, field string) string {
	base, rest, _ := strings.Cut(field, "[")
	key, ok := labels[base]
	if !ok {
		return field
	}
	name, _, _ := strings.Cut(l.T(key), " (") // "Day", not what it takes: the reason says that
	if i, err := strconv.Atoi(strings.TrimSuffix(rest, "]")); err == nil && rest != "" {
		name += " " + strconv.Itoa(i+1)
	}
	return name
}
