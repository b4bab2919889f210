package statement

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/store"
)

// Schedule mails a subject's statement, as a PDF, to its recipients after
// each period ends: a month's on a day of the next month, or a week's
// (Monday to Sunday) on a day of the next week, at SendHour local time.
type Schedule struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	// Every is EveryMonth or EveryWeek; Day the day it is sent on: 1 to
	// 28 of the month, or 1 (Monday) to 7 (Sunday) of the week.
	Every string `json:"every"`
	Day   int    `json:"day"`
	// Lang is the PDF's and the mail's language: en or es.
	Lang string   `json:"lang"`
	To   []string `json:"to"`
	// Created is when it was made: a period due before is not sent.
	Created time.Time `json:"created"`
}

// How often a schedule sends.
const (
	EveryMonth = "month"
	EveryWeek  = "week"
)

// SendHour is the local hour a statement is sent at on its day: late
// readings of the period's last hours have arrived by then.
const SendHour = 6

// Limits of schedules.
const (
	MaxSchedules  = 200
	maxRecipients = 20
	// maxAttempts bounds the tries of a statement whose sending failed,
	// retryEvery apart.
	maxAttempts = 6
	retryEvery  = 15 * time.Minute
)

// Delivery is what became of one period's statement of a schedule.
type Delivery struct {
	Schedule string `json:"schedule"`
	Period   string `json:"period"`
	// State is DeliverySending, DeliverySent or DeliveryFailed.
	State    string    `json:"state"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
	// Sent counts the times it went (more than once: sent again by hand).
	Sent int `json:"sent,omitempty"`
}

// The states of a delivery.
const (
	// DeliverySending is a try under way. One left by a process that
	// stopped mid-try is failed at the next start and not tried again:
	// the statement may have gone, and it is never sent twice.
	DeliverySending = "sending"
	DeliverySent    = "sent"
	DeliveryFailed  = "failed"
)

// The document kinds of schedules and deliveries.
const (
	docSchedules  = "statement_schedules"
	docDeliveries = "statement_deliveries"
)

// Errors of Schedules.
var (
	ErrUnknownSchedule  = errors.New("statement: no such schedule")
	ErrNoMail           = errors.New("statement: no SMTP server set (Settings, E-mail; or alerts.email in config.yaml): statements cannot be mailed")
	ErrTooManySchedules = fmt.Errorf("statement: at most %d schedules", MaxSchedules)
)

// Mailer sends a whole mail message to addresses, through the SMTP server
// in force (alert.Mail).
type Mailer interface {
	// From returns the sender's address, and false while there is no
	// SMTP server.
	From() (string, bool)
	Send(ctx context.Context, to []string, msg []byte) error
}

// Schedules are the statement schedules, and the sending of what they
// make due: Run, on the leading instance only.
type Schedules struct {
	st      *store.Store
	src     Source
	mailer  Mailer // nil: none configured
	log     *slog.Logger
	now     func() time.Time
	mu      sync.Mutex // guards changes and claims, never held while mailing
	ticking sync.Mutex // one Tick at a time
	// life ends with Close: a statement being made or mailed then stops
	// and is recorded as failed, to be tried again.
	life context.Context
	stop context.CancelFunc
}

// NewSchedules returns the schedules saved in src.Store, which mail
// through mailer (nil: never).
func NewSchedules(src Source, mailer Mailer, logger *slog.Logger) *Schedules {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	life, stop := context.WithCancel(context.Background())
	return &Schedules{st: src.Store, src: src, mailer: mailer, log: logger, now: time.Now, life: life, stop: stop}
}

// Close stops what is being made or mailed (a shutdown): it is recorded
// as a plain failure, tried again later, before the store closes.
func (s *Schedules) Close() { s.stop() }

// living is ctx, ended also by Close.
func (s *Schedules) living(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// Mails reports whether an SMTP server is set to mail statements.
func (s *Schedules) Mails() bool {
	if s.mailer == nil {
		return false
	}
	_, ok := s.mailer.From()
	return ok
}

// List returns the schedules by id.
func (s *Schedules) List() ([]Schedule, error) {
	docs, err := s.st.Docs(docSchedules)
	if err != nil {
		return nil, err
	}
	out := make([]Schedule, 0, len(docs))
	for _, id := range slices.Sorted(maps.Keys(docs)) {
		var x Schedule
		if json.Unmarshal(docs[id], &x) == nil {
			out = append(out, x)
		}
	}
	return out, nil
}

// Get returns schedule id.
func (s *Schedules) Get(id string) (Schedule, error) {
	v, ok, err := s.st.Doc(docSchedules, id)
	if err != nil {
		return Schedule{}, err
	}
	var x Schedule
	if !ok || json.Unmarshal(v, &x) != nil {
		return Schedule{}, fmt.Errorf("%w: %q", ErrUnknownSchedule, id)
	}
	return x, nil
}

// Put saves x, made (created, Created set to now) or replaced (keeping its
// Created).
func (s *Schedules) Put(x Schedule) (Schedule, bool, error) {
	if !s.Mails() {
		return Schedule{}, false, ErrNoMail
	}
	x.Lang = LangOf(x.Lang).Code
	if err := s.check(&x); err != nil {
		return Schedule{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.Get(x.ID)
	created := errors.Is(err, ErrUnknownSchedule)
	if err != nil && !created {
		return Schedule{}, false, err
	}
	if created {
		list, err := s.List()
		if err != nil {
			return Schedule{}, false, err
		}
		if len(list) >= MaxSchedules {
			return Schedule{}, false, ErrTooManySchedules
		}
		x.Created = s.now().UTC()
	} else {
		x.Created = old.Created
	}
	v, err := json.Marshal(x)
	if err != nil {
		return Schedule{}, false, err
	}
	if err := s.st.PutDoc(docSchedules, x.ID, v); err != nil {
		return Schedule{}, false, err
	}
	return x, created, nil
}

// check says what is wrong with x, normalising its recipients.
func (s *Schedules) check(x *Schedule) error {
	if !tenantID.MatchString(x.ID) {
		return invalid("id", "id", "1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit")
	}
	subj, err := ParseSubject(x.Subject)
	if err != nil {
		return invalid("subject", "subject", "site:NAME, tenant:ID or meter:ID")
	}
	switch subj.Kind {
	case KindTenant:
		if s.src.Tenants == nil {
			return invalid("subject", "no_tenant", "no tenant %s", subj.Name)
		}
		if _, err := s.src.Tenants.Get(subj.Name); err != nil {
			return invalid("subject", "no_tenant", "no tenant %s", subj.Name)
		}
	case KindMeter:
		if _, err := s.st.Meter(subj.Name); err != nil {
			return invalid("subject", "no_meter", "no meter %s", subj.Name)
		}
	case KindSite:
		if !slices.ContainsFunc(s.st.Meters(), func(m store.Meter) bool { return m.Info.Parent == "" && m.Site == subj.Name }) {
			return invalid("subject", "no_site", "no meter in site %s", subj.Name)
		}
	}
	switch x.Every {
	case EveryMonth:
		if x.Day < 1 || x.Day > 28 {
			return invalid("day", "month_day", "the day of the month it is sent on, 1 to 28")
		}
	case EveryWeek:
		if x.Day < 1 || x.Day > 7 {
			return invalid("day", "week_day", "the day of the week it is sent on, 1 (Monday) to 7 (Sunday)")
		}
	default:
		return invalid("every", "every", "month or week")
	}
	if len(x.To) == 0 || len(x.To) > maxRecipients {
		return invalid("to", "to", "1 to %d addresses", maxRecipients)
	}
	for i, to := range x.To {
		to = strings.TrimSpace(to)
		if _, err := mail.ParseAddress(to); err != nil || len(to) > 320 || unprintable(to, false) {
			return invalid(fmt.Sprintf("to[%d]", i), "email", "%q is no e-mail address", clip(to))
		}
		x.To[i] = to // as typed: the mail's header encodes a name (RFC 2047)
	}
	return nil
}

// Delete removes schedule id; what it sent stays recorded.
func (s *Schedules) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.Get(id); err != nil {
		return err
	}
	return s.st.DeleteDoc(docSchedules, id)
}

// Deliveries returns the deliveries of schedule id, the newest period
// first, at most n.
func (s *Schedules) Deliveries(id string, n int) ([]Delivery, error) {
	docs, err := s.st.Docs(docDeliveries)
	if err != nil {
		return nil, err
	}
	var out []Delivery
	for k, v := range docs {
		if !strings.HasPrefix(k, id+"|") {
			continue
		}
		var d Delivery
		if json.Unmarshal(v, &d) == nil {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Delivery) int { return strings.Compare(b.Period, a.Period) })
	return out[:min(n, len(out))], nil
}

// Latest returns the period whose statement x sent (or sends) last at
// now: the one "send now" sends again.
func (x Schedule) Latest(now time.Time, loc *time.Location) Period {
	p, _, _ := x.due(now, loc)
	return p
}

// due returns the period of x whose statement is due at now, and when it
// became due; ok is false when none is (the latest became due before x
// was made).
func (x Schedule) due(now time.Time, loc *time.Location) (p Period, at time.Time, ok bool) {
	now = now.In(loc)
	switch x.Every {
	case EveryMonth:
		m := MonthOf(now)
		at = time.Date(m.From.Year(), m.From.Month(), x.Day, SendHour, 0, 0, 0, loc)
		if now.Before(at) { // not yet this month: last month's sending
			m = MonthOf(m.From.AddDate(0, 0, -1))
			at = time.Date(m.From.Year(), m.From.Month(), x.Day, SendHour, 0, 0, 0, loc)
		}
		p = MonthOf(m.From.AddDate(0, 0, -1))
	case EveryWeek:
		day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
		monday := day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
		at = time.Date(monday.Year(), monday.Month(), monday.Day()+x.Day-1, SendHour, 0, 0, 0, loc)
		if now.Before(at) {
			monday = monday.AddDate(0, 0, -7)
			at = at.AddDate(0, 0, -7)
		}
		p = Period{From: monday.AddDate(0, 0, -7), To: monday}
	default:
		return Period{}, time.Time{}, false
	}
	return p, at, !at.Before(x.Created)
}

// Run sends what is due every minute until ctx is done. A try left
// "sending" by a process that stopped is failed first, not tried again.
func (s *Schedules) Run(ctx context.Context) {
	s.abandonInterrupted()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// abandonInterrupted fails the deliveries a stopped process left sending.
func (s *Schedules) abandonInterrupted() {
	docs, err := s.st.Docs(docDeliveries)
	if err != nil {
		s.log.Warn("statement deliveries not read", slog.Any("error", err))
		return
	}
	for k, v := range docs {
		var d Delivery
		if json.Unmarshal(v, &d) != nil || d.State != DeliverySending {
			continue
		}
		d.State, d.Error = DeliveryFailed, "interrupted while sending: it may have gone, so it is not sent again automatically (send it from the API if it did not)"
		d.Attempts = maxAttempts
		s.record(k, d)
		s.log.Warn("statement sending was interrupted; not sent again", slog.String("schedule", d.Schedule), slog.String("period", d.Period))
	}
}

// Tick sends every statement due now that was not sent, or whose sending
// failed and may be tried again.
func (s *Schedules) Tick(ctx context.Context) {
	s.ticking.Lock() // one tick at a time; changes go on meanwhile
	defer s.ticking.Unlock()
	ctx, done := s.living(ctx)
	defer done()
	list, err := s.List()
	if err != nil {
		s.log.Warn("statement schedules not read", slog.Any("error", err))
		return
	}
	for _, x := range list {
		if ctx.Err() != nil {
			return
		}
		p, _, ok := x.due(s.now(), s.src.Tariffs.Current().Location)
		if !ok {
			continue
		}
		key := x.ID + "|" + p.String()
		d, ok, err := s.claim(key, x, p, false)
		if err != nil {
			s.log.Warn("statement delivery not read", slog.String("schedule", x.ID), slog.Any("error", err))
			continue
		}
		if ok {
			s.send(ctx, x, p, d, key)
		}
	}
}

// ErrSending is returned when a period's statement is sent while it is
// being sent.
var ErrSending = errors.New("statement: that period's statement is being sent now")

// SendNow mails schedule id's statement of period at once, whatever was
// sent before (an admin's "send again"), and records it as the period's.
// Only a period that is over can be sent. It waits for the mail, not for
// other changes to schedules.
func (s *Schedules) SendNow(ctx context.Context, id, period string) (Delivery, error) {
	ctx, done := s.living(ctx)
	defer done()
	x, err := s.Get(id)
	if err != nil {
		return Delivery{}, err
	}
	p, err := ParsePeriod(period, s.src.Tariffs.Current().Location)
	if err != nil {
		return Delivery{}, invalid("period", "period", "%v", err)
	}
	if p.To.After(s.now()) {
		// Sent now, it would be recorded as the period's, and the
		// statement of the whole period never sent.
		return Delivery{}, invalid("period", "not_over", "%s is not over: its statement is sent when it is", p)
	}
	switch {
	case x.Every == EveryMonth && !p.Month:
		return Delivery{}, invalid("period", "not_month", "%s is not a month: this schedule sends a month's statement", p)
	case x.Every == EveryWeek && (p.From.Weekday() != time.Monday || !p.To.Equal(p.From.AddDate(0, 0, 7))):
		return Delivery{}, invalid("period", "not_week", "%s is not a week from Monday to Sunday: this schedule sends a week's statement", p)
	}
	key := x.ID + "|" + p.String()
	d, ok, err := s.claim(key, x, p, true)
	if err != nil {
		return Delivery{}, err
	}
	if !ok {
		return Delivery{}, ErrSending
	}
	return s.send(ctx, x, p, d, key), nil
}

// claim records x's statement of p as being sent, and reports whether it
// is this caller's to send: not when it is being sent already, nor, unless
// forced (send now), when it was sent or failed for good, or failed less
// than retryEvery ago. The mail is sent after, without s.mu, so that a
// slow SMTP server holds up no change to the schedules.
func (s *Schedules) claim(key string, x Schedule, p Period, force bool) (Delivery, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, _, err := s.delivery(key)
	if err != nil {
		return Delivery{}, false, err
	}
	now := s.now()
	switch {
	case d.State == DeliverySending:
		return d, false, nil
	case force:
		d.Attempts = 0
	case d.State == DeliverySent:
		return d, false, nil
	case d.State == DeliveryFailed && (d.Attempts >= maxAttempts || now.Sub(d.At) < retryEvery):
		return d, false, nil
	}
	d.Schedule, d.Period, d.State, d.Error, d.At = x.ID, p.String(), DeliverySending, "", now.UTC()
	d.Attempts++
	if err := s.record(key, d); err != nil {
		return d, false, nil // not recorded: not sent, tried again at the next tick
	}
	return d, true, nil
}

// send mails x's statement of p, claimed as d, and records how it went.
func (s *Schedules) send(ctx context.Context, x Schedule, p Period, d Delivery, key string) Delivery {
	err := s.mail(ctx, x, p)
	d.At = s.now().UTC()
	if err != nil {
		d.State, d.Error = DeliveryFailed, err.Error()
		s.log.Warn("statement not sent", slog.String("schedule", x.ID), slog.String("period", d.Period), slog.Int("attempt", d.Attempts), slog.Any("error", err))
	} else {
		d.State = DeliverySent
		d.Sent++
		s.log.Info("statement sent", slog.String("schedule", x.ID), slog.String("subject", x.Subject), slog.String("period", d.Period), slog.Int("recipients", len(x.To)))
	}
	s.record(key, d)
	return d
}

func (s *Schedules) delivery(key string) (Delivery, bool, error) {
	v, ok, err := s.st.Doc(docDeliveries, key)
	if err != nil || !ok {
		return Delivery{}, false, err
	}
	var d Delivery
	if err := json.Unmarshal(v, &d); err != nil {
		return Delivery{}, false, err
	}
	return d, true, nil
}

func (s *Schedules) record(key string, d Delivery) error {
	v, err := json.Marshal(d)
	if err == nil {
		err = s.st.PutDoc(docDeliveries, key, v)
	}
	if err != nil {
		s.log.Warn("statement delivery not recorded", slog.String("schedule", d.Schedule), slog.String("period", d.Period), slog.Any("error", err))
	}
	return err
}

// mail builds x's statement of p and mails it, the PDF attached.
func (s *Schedules) mail(ctx context.Context, x Schedule, p Period) error {
	from, ok := "", false
	if s.mailer != nil {
		from, ok = s.mailer.From()
	}
	if !ok {
		return ErrNoMail
	}
	subj, err := ParseSubject(x.Subject)
	if err != nil {
		return err
	}
	now := s.now()
	st, err := s.src.BuildFor(ctx, "", subj, p, now)
	if err != nil {
		return err
	}
	l := LangOf(x.Lang)
	var pdf bytes.Buffer
	if err := WritePDF(&pdf, st, l, now); err != nil {
		return err
	}
	msg := message(from, x, st, l, pdf.Bytes(), now)
	return s.mailer.Send(ctx, x.To, msg)
}

// message is the mail of statement st: a short text and the PDF attached.
func message(from string, x Schedule, st *Statement, l *Lang, pdf []byte, now time.Time) []byte {
	period := l.PeriodName(Period{From: st.From, To: st.To, Month: isMonth(st.From, st.To)})
	subject := l.T("title") + ": " + st.Title + ", " + period
	name := fmt.Sprintf("vatio-%s-%s-%s.pdf", st.Subject.Kind, st.Subject.Name, strings.ReplaceAll(st.Period, "/", "_"))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || strings.ContainsRune(`"\;:/`, r) {
			return '_'
		}
		return r
	}, name)
	boundary := fmt.Sprintf("vatio-%d", now.UnixNano())
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", alert.AddressHeader(from))
	fmt.Fprintf(&b, "To: %s\r\n", alert.AddressesHeader(x.To)) // a name beyond ASCII encoded, long lists folded
	fmt.Fprintf(&b, "Subject: %s\r\n", strings.ReplaceAll(mime.QEncoding.Encode("utf-8", subject), "?= =?", "?=\r\n =?"))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <vatio-statement-%s-%s-%d@%s>\r\n", x.ID, strings.ReplaceAll(st.Period, "/", "_"), now.UnixNano(), alert.MessageIDDomain(from))
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	fmt.Fprintf(&b, "%s\r\n%s\r\n\r\n%s: %s kWh\r\n%s: %s\r\n\r\n-- \r\nVatio\r\n", subject, strings.Repeat("=", 20),
		l.T("import"), l.Number(st.ImportKWh, 2), l.T("total"), l.Money(st.Total, st.Currency))
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/pdf; name=%q\r\nContent-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary, name, name)
	enc := base64.StdEncoding.EncodeToString(pdf)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return []byte(strings.ReplaceAll(b.String(), "\r\n", "\n"))
}
