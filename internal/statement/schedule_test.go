package statement

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/testutil/smtptest"
)

// TestSchedulesMailOncePerPeriod runs a monthly schedule of acme's
// statement against a real SMTP server: nothing before the 1st at 06:00,
// exactly one mail for October then (the PDF attached, its text acme's),
// none again on later ticks nor after a restart; a refused mail is
// recorded failed and tried again 15 minutes later; a try a stopped
// process left sending is never sent again.
func TestSchedulesMailOncePerPeriod(t *testing.T) {
	src := office(t)
	box := smtptest.Start(t)
	addr := box.Addr
	mailer, err := alert.NewMail(nil, alert.MailSpec{Addr: addr, From: "Vatio <vatio@example.org>", TLS: "none", Timeout: alert.Duration(10 * time.Second)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 10, 15, 12, 0, 0, 0, madrid)
	open := func() *Schedules {
		s := NewSchedules(src, mailer, nil)
		s.now = func() time.Time { return clock }
		return s
	}
	s := open()
	x, created, err := s.Put(Schedule{ID: "acme-monthly", Subject: "tenant:acme", Every: EveryMonth, Day: 1, Lang: "es",
		To: []string{"Facturación <billing@acme.example>", "owner@example.org"}})
	if err != nil || !created || !x.Created.Equal(clock.UTC()) {
		t.Fatalf("Put: %+v %v %v", x, created, err)
	}
	ctx := context.Background()
	clock = time.Date(2026, 11, 1, 5, 59, 0, 0, madrid)
	s.Tick(ctx)
	if n := box.Count(); n != 0 {
		t.Fatalf("%d mails before 06:00 on the 1st", n)
	}
	clock = time.Date(2026, 11, 1, 6, 0, 0, 0, madrid)
	s.Tick(ctx)
	clock = clock.Add(time.Minute)
	s.Tick(ctx)
	mails := box.Mails()
	if len(mails) != 1 {
		t.Fatalf("%d mails for October, want 1", len(mails))
	}
	if to := mails[0].To; len(to) != 2 || to[0] != "billing@acme.example" {
		t.Errorf("envelope to %v", to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(mails[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if subject != "Extracto de energía: Acmé Ñandú S.L., octubre de 2026" {
		t.Errorf("subject %q", subject)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var pdf []byte
	for {
		part, err := mr.NextPart()
		if err != nil {
			break
		}
		if part.Header.Get("Content-Type") == `application/pdf; name="vatio-tenant-acme-2026-10.pdf"` {
			pdf, _ = io.ReadAll(base64.NewDecoder(base64.StdEncoding, part))
		}
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("no PDF attached:\n%.2000s", mails[0])
	}
	if pdftotext, err := exec.LookPath("pdftotext"); err == nil {
		cmd := exec.Command(pdftotext, "-", "-")
		cmd.Stdin = bytes.NewReader(pdf)
		out, _ := cmd.Output()
		if !strings.Contains(string(out), "Acmé Ñandú S.L.") || !strings.Contains(string(out), "octubre de 2026") {
			t.Errorf("the attached PDF's text:\n%s", out)
		}
	}
	ds, _ := s.Deliveries("acme-monthly", 10)
	if len(ds) != 1 || ds[0].State != DeliverySent || ds[0].Period != "2026-10" || ds[0].Attempts != 1 {
		t.Errorf("deliveries %+v", ds)
	}

	// A restart (a new process on the store) sends nothing again.
	s = open()
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(ctx2); close(done) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	if n := box.Count(); n != 1 {
		t.Fatalf("%d mails after a restart, want still 1", n)
	}

	// December 1st: November's, refused by the server, then sent on a
	// try 15 minutes later.
	box.Refuse(true)
	clock = time.Date(2026, 12, 1, 6, 0, 0, 0, madrid)
	s.Tick(ctx)
	ds, _ = s.Deliveries("acme-monthly", 10)
	if len(ds) != 2 || ds[0].Period != "2026-11" || ds[0].State != DeliveryFailed || !strings.Contains(ds[0].Error, "try again later") {
		t.Fatalf("a refused mail: %+v", ds)
	}
	box.Refuse(false)
	clock = clock.Add(10 * time.Minute)
	s.Tick(ctx)
	if n := box.Count(); n != 1 {
		t.Fatalf("tried again before 15 minutes: %d mails", n)
	}
	clock = clock.Add(6 * time.Minute)
	s.Tick(ctx)
	s.Tick(ctx)
	if n := box.Count(); n != 2 {
		t.Fatalf("%d mails after the retry, want 2", n)
	}
	ds, _ = s.Deliveries("acme-monthly", 10)
	if ds[0].State != DeliverySent || ds[0].Attempts != 2 {
		t.Errorf("November's delivery after the retry: %+v", ds[0])
	}

	// A try left sending by a process that stopped is never sent again.
	d := Delivery{Schedule: "acme-monthly", Period: "2026-12", State: DeliverySending, Attempts: 1, At: clock}
	if err := s.record("acme-monthly|2026-12", d); err != nil {
		t.Fatal(err)
	}
	s = open()
	clock = time.Date(2027, 1, 1, 7, 0, 0, 0, madrid)
	ctx3, cancel3 := context.WithCancel(ctx)
	done = make(chan struct{})
	go func() { s.Run(ctx3); close(done) }()
	time.Sleep(200 * time.Millisecond)
	cancel3()
	<-done
	if n := box.Count(); n != 2 {
		t.Fatalf("an interrupted try was sent again: %d mails", n)
	}
	ds, _ = s.Deliveries("acme-monthly", 10)
	if ds[0].Period != "2026-12" || ds[0].State != DeliveryFailed || !strings.Contains(ds[0].Error, "interrupted") {
		t.Errorf("the interrupted try: %+v", ds[0])
	}
	// A period not over is not sent by hand: its statement is sent when
	// it is over.
	var ie *InvalidError
	if _, err := s.SendNow(ctx, "acme-monthly", "2027-01"); !errors.As(err, &ie) || ie.Key != "not_over" {
		t.Errorf("sending January on 1 January: %v", err)
	}
	// An admin may send it again.
	if d, err := s.SendNow(ctx, "acme-monthly", "2026-12"); err != nil || d.State != DeliverySent {
		t.Errorf("SendNow: %+v %v", d, err)
	}
	if n := box.Count(); n != 3 {
		t.Errorf("%d mails after SendNow, want 3", n)
	}
}

// TestScheduleDue works out which period a schedule sends when.
func TestScheduleDue(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		x    Schedule
		now  time.Time
		want string
		at   time.Time
	}{
		{Schedule{Every: EveryMonth, Day: 3, Created: created}, time.Date(2026, 11, 3, 6, 0, 0, 0, madrid), "2026-10", time.Date(2026, 11, 3, 6, 0, 0, 0, madrid)},
		{Schedule{Every: EveryMonth, Day: 3, Created: created}, time.Date(2026, 11, 2, 23, 0, 0, 0, madrid), "2026-09", time.Date(2026, 10, 3, 6, 0, 0, 0, madrid)},
		{Schedule{Every: EveryMonth, Day: 1, Created: created}, time.Date(2027, 1, 1, 6, 30, 0, 0, madrid), "2026-12", time.Date(2027, 1, 1, 6, 0, 0, 0, madrid)},
		// Weekly on Monday (1): the week Monday to Sunday before.
		{Schedule{Every: EveryWeek, Day: 1, Created: created}, time.Date(2026, 11, 30, 8, 0, 0, 0, madrid), "2026-11-23/2026-11-29", time.Date(2026, 11, 30, 6, 0, 0, 0, madrid)},
		// On Wednesday (3), before it: the week before's sending.
		{Schedule{Every: EveryWeek, Day: 3, Created: created}, time.Date(2026, 12, 1, 8, 0, 0, 0, madrid), "2026-11-16/2026-11-22", time.Date(2026, 11, 25, 6, 0, 0, 0, madrid)},
		// The week holding the clock change (29 March 2026).
		{Schedule{Every: EveryWeek, Day: 1, Created: created}, time.Date(2026, 3, 30, 9, 0, 0, 0, madrid), "2026-03-23/2026-03-29", time.Date(2026, 3, 30, 6, 0, 0, 0, madrid)},
	} {
		p, at, ok := c.x.due(c.now, madrid)
		if !ok || p.String() != c.want || !at.Equal(c.at) {
			t.Errorf("%+v at %s: %s due %s (%v), want %s due %s", c.x, c.now, p, at, ok, c.want, c.at)
		}
	}
	// Made after its latest sending: nothing due until the next.
	x := Schedule{Every: EveryMonth, Day: 1, Created: time.Date(2026, 12, 4, 10, 0, 0, 0, madrid)}
	if p, _, ok := x.due(time.Date(2026, 12, 20, 0, 0, 0, 0, madrid), madrid); ok {
		t.Errorf("a schedule made on 4 December sends %s", p)
	}
	if p, _, ok := x.due(time.Date(2027, 1, 1, 6, 0, 0, 0, madrid), madrid); !ok || p.String() != "2026-12" {
		t.Errorf("on 1 January: %s %v, want December's", p, ok)
	}
}

// TestSchedulesChecked refuses schedules that cannot be sent.
func TestSchedulesChecked(t *testing.T) {
	src := office(t)
	if _, _, err := NewSchedules(src, nil, nil).Put(Schedule{ID: "x"}); !errors.Is(err, ErrNoMail) {
		t.Errorf("without a mailer: %v", err)
	}
	// No SMTP server in config.yaml: schedules are refused until one is
	// saved (on the Settings page).
	mailer, err := alert.NewMail(src.Store, alert.MailSpec{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSchedules(src, mailer, nil)
	if _, _, err := s.Put(Schedule{ID: "x"}); !errors.Is(err, ErrNoMail) {
		t.Errorf("without SMTP: %v", err)
	}
	if _, err := mailer.Save(alert.MailSpec{Addr: "127.0.0.1:1", From: "v@example.org", TLS: "none"}, false, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	ok := Schedule{ID: "x", Subject: "site:office", Every: EveryMonth, Day: 1, To: []string{"a@example.org"}}
	for _, c := range []struct {
		change func(*Schedule)
		field  string
	}{
		{func(x *Schedule) { x.ID = "X Y" }, "id"},
		{func(x *Schedule) { x.Subject = "office" }, "subject"},
		{func(x *Schedule) { x.Subject = "tenant:nobody" }, "subject"},
		{func(x *Schedule) { x.Subject = "site:nowhere" }, "subject"},
		{func(x *Schedule) { x.Subject = "meter:nothing" }, "subject"},
		{func(x *Schedule) { x.Every = "day" }, "every"},
		{func(x *Schedule) { x.Day = 29 }, "day"},
		{func(x *Schedule) { x.Every, x.Day = EveryWeek, 8 }, "day"},
		{func(x *Schedule) { x.To = nil }, "to"},
		{func(x *Schedule) { x.To = []string{"not an address"} }, "to[0]"},
		{func(x *Schedule) { x.To = []string{"a@example.org\r\nBcc: all@example.org"} }, "to[0]"},
	} {
		x := ok
		x.To = append([]string(nil), ok.To...)
		c.change(&x)
		var ie *InvalidError
		if _, _, err := s.Put(x); !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%+v: %v, want a problem with %s", x, err, c.field)
		}
	}
	if _, _, err := s.Put(ok); err != nil {
		t.Fatal(err)
	}
	weekly := ok
	weekly.ID, weekly.Every = "w", EveryWeek
	if _, _, err := s.Put(weekly); err != nil {
		t.Fatal(err)
	}
	// Send now sends a period of the schedule's own kind only.
	for _, c := range []struct{ id, period, key string }{
		{"x", "2026-10-01/2026-10-15", "not_month"}, {"x", "2026-09-28/2026-10-04", "not_month"},
		{"w", "2026-10", "not_week"}, {"w", "2026-09-29/2026-10-05", "not_week"}, {"x", "1999-12", "period"},
	} {
		var ie *InvalidError
		if _, err := s.SendNow(context.Background(), c.id, c.period); !errors.As(err, &ie) || ie.Key != c.key {
			t.Errorf("send %s's %s now: %v, want %s", c.id, c.period, err, c.key)
		}
	}
	if err := s.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("x"); !errors.Is(err, ErrUnknownSchedule) {
		t.Errorf("deleting twice: %v", err)
	}
}

// TestSlowMailHoldsUpNoChange: while a statement waits on an SMTP server
// that never answers, schedules are still made and deleted at once, and
// the same period cannot be sent twice meanwhile.
func TestSlowMailHoldsUpNoChange(t *testing.T) {
	src := office(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	accepted := make(chan struct{}, 4)
	go func() { // accepts, and never says a word
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			accepted <- struct{}{}
		}
	}()
	mailer, err := alert.NewMail(nil, alert.MailSpec{Addr: ln.Addr().String(), From: "vatio@example.org", TLS: "none", Timeout: alert.Duration(time.Minute)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSchedules(src, mailer, nil)
	if _, _, err := s.Put(Schedule{ID: "acme-monthly", Subject: "tenant:acme", Every: EveryMonth, Day: 1, To: []string{"a@example.org"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan error, 1)
	go func() {
		_, err := s.SendNow(ctx, "acme-monthly", "2026-10")
		sent <- err
	}()
	<-accepted // the mail is under way, stuck
	if _, err := s.SendNow(context.Background(), "acme-monthly", "2026-10"); !errors.Is(err, ErrSending) {
		t.Errorf("the same period sent again meanwhile: %v, want ErrSending", err)
	}
	if _, _, err := s.Put(Schedule{ID: "beta-weekly", Subject: "tenant:beta", Every: EveryWeek, Day: 1, To: []string{"b@example.org"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("beta-weekly"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sent:
		t.Fatalf("the stuck mail ended before the changes were checked: %v", err)
	default: // the changes went through while it waits
	}
	s.Close() // a shutdown
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	cancel()
	// Stopped by a shutdown, it is a plain failure, tried again later;
	// not one interrupted, which is never sent again.
	ds, _ := s.Deliveries("acme-monthly", 1)
	if len(ds) != 1 || ds[0].State != DeliveryFailed || ds[0].Attempts != 1 || strings.Contains(ds[0].Error, "interrupted") {
		t.Errorf("the stuck mail's delivery: %+v", ds)
	}
}
