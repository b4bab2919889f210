// Package statement builds the statements people file and forward: a
// period's energy and cost for a site, a tenant (a named group of meters)
// or one meter, with the tariff's periods, charges, peak demand, CO2, the
// days, each meter's part and the comparisons with the period before and
// the same period a year before; and writes them as CSV and PDF. Every
// figure is the one the API's energy and summary answers give for the same
// meters and period.
package statement

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Period is a span of calendar days in a time zone: [From, To).
type Period struct {
	From, To time.Time
	// Month is set when the period is one calendar month.
	Month bool
}

// MaxDays bounds a period.
const MaxDays = 366

// MinYear is the first year a period may be in: before it, no meter of
// Vatio's read anything, and zones give odd offsets (-00:14 in year 0).
const MinYear = 2000

// ParsePeriod reads a period in loc: a month (2026-11), or a range of days,
// both included (2026-11-01/2026-11-15, ISO 8601's interval notation).
func ParsePeriod(s string, loc *time.Location) (Period, error) {
	if a, b, ok := strings.Cut(s, "/"); ok {
		from, err1 := time.ParseInLocation(time.DateOnly, a, loc)
		to, err2 := time.ParseInLocation(time.DateOnly, b, loc)
		if err1 != nil || err2 != nil {
			return Period{}, fmt.Errorf("period %q: give a month (2026-11) or two dates (2026-11-01/2026-11-15)", s)
		}
		if to.Before(from) {
			return Period{}, fmt.Errorf("period %q: the second date is before the first", s)
		}
		if from.Year() < MinYear {
			return Period{}, fmt.Errorf("period %q: from the year %d on", s, MinYear)
		}
		p := Period{From: from, To: to.AddDate(0, 0, 1)}
		if p.days() > MaxDays {
			return Period{}, fmt.Errorf("period %q: at most %d days", s, MaxDays)
		}
		p.Month = from.Day() == 1 && p.To.Equal(from.AddDate(0, 1, 0))
		return p, nil
	}
	m, err := time.ParseInLocation("2006-01", s, loc)
	if err != nil {
		return Period{}, fmt.Errorf("period %q: give a month (2026-11) or two dates (2026-11-01/2026-11-15)", s)
	}
	if m.Year() < MinYear {
		return Period{}, fmt.Errorf("period %q: from the year %d on", s, MinYear)
	}
	return MonthOf(m), nil
}

// MonthOf is the calendar month holding t, in t's zone.
func MonthOf(t time.Time) Period {
	from := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, t.Location())
	return Period{From: from, To: from.AddDate(0, 1, 0), Month: true}
}

// days counts the period's calendar days.
func (p Period) days() int {
	n := 0
	for d := p.From; d.Before(p.To); d = d.AddDate(0, 0, 1) {
		n++
	}
	return n
}

// Previous is the period just before p: the month before a month, else as
// many days before.
func (p Period) Previous() Period {
	if p.Month {
		return MonthOf(p.From.AddDate(0, 0, -1))
	}
	n := p.days()
	return Period{From: p.From.AddDate(0, 0, -n), To: p.From}
}

// YearBefore is p a year before: the same month, or the same days.
func (p Period) YearBefore() Period {
	if p.Month {
		return MonthOf(p.From.AddDate(-1, 0, 0))
	}
	return Period{From: p.From.AddDate(-1, 0, 0), To: p.To.AddDate(-1, 0, 0)}
}

// String writes p as ParsePeriod reads it.
func (p Period) String() string {
	if p.Month {
		return p.From.Format("2006-01")
	}
	return p.From.Format(time.DateOnly) + "/" + p.To.AddDate(0, 0, -1).Format(time.DateOnly)
}

// Subject is what a statement is of.
type Subject struct {
	// Kind is KindSite, KindTenant or KindMeter; Name the site's, the
	// tenant's id or the meter's id.
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// The kinds of subject.
const (
	KindSite   = "site"
	KindTenant = "tenant"
	KindMeter  = "meter"
)

// ParseSubject reads site:NAME, tenant:ID or meter:ID.
func ParseSubject(s string) (Subject, error) {
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" || (kind != KindSite && kind != KindTenant && kind != KindMeter) {
		return Subject{}, errors.New("subject: give site:NAME, tenant:ID or meter:ID")
	}
	return Subject{Kind: kind, Name: name}, nil
}

func (s Subject) String() string { return s.Kind + ":" + s.Name }
