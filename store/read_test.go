package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// twoHours stores a reading of meter c every 10 s for two hours, at powers
// that vary, and returns them.
func twoHours(t *testing.T, s *Store) []meter.Reading {
	t.Helper()
	var rs []meter.Reading
	for sec := 0; sec < 7200; sec += 10 {
		rs = append(rs, reading("c", sec, float64(100+sec%700)))
	}
	mustAppend(t, s, rs...)
	return rs
}

func TestCount(t *testing.T) {
	s := openTest(t, t.TempDir())
	twoHours(t, s)
	for _, c := range []struct {
		tier     Tier
		from, to time.Duration
		limit    int
		want     int
	}{
		{TierRaw, 0, time.Hour, 1000, 360},
		{TierRaw, 0, time.Hour, 100, 101}, // counted no further than limit+1
		{TierRaw, 30 * time.Second, 90 * time.Second, 100, 6},
		{TierMinute, 0, time.Hour, 1000, 60},
		{TierMinute, 30 * time.Second, 2 * time.Minute, 100, 2}, // from the bucket holding from
		{TierMinute, 0, 3 * time.Hour, 10, 11},
		{TierHour, 0, 3 * time.Hour, 10, 2},
		{TierDay, -48 * time.Hour, 48 * time.Hour, 10, 1},
		{TierHour, 5 * time.Hour, 6 * time.Hour, 10, 0},
	} {
		n, err := s.Count("c", c.tier, t0.Add(c.from), t0.Add(c.to), c.limit)
		if err != nil || n != c.want {
			t.Errorf("Count(c, %s, [%s, %s), %d) = %d, %v; want %d", c.tier, c.from, c.to, c.limit, n, err, c.want)
		}
	}
	for _, tier := range []Tier{TierRaw, TierMinute} {
		if n, err := s.Count("nobody", tier, t0, t0.Add(time.Hour), 10); err != nil || n != 0 {
			t.Errorf("Count(nobody, %s) = %d, %v; want 0", tier, n, err)
		}
	}
}

// TestPaging: Range and Rollups hand out at most limit entries and say
// whether more remain; pages read from just after the last one add up to
// the whole.
func TestPaging(t *testing.T) {
	s := openTest(t, t.TempDir())
	rs := twoHours(t, s)
	all, more, err := s.Range("c", t0, t0.Add(3*time.Hour), 1<<20)
	if err != nil || more || len(all) != len(rs) {
		t.Fatalf("Range of all = %d readings, more %v, %v; want %d", len(all), more, err, len(rs))
	}
	paged := pages(t, t0, 100, func(from time.Time) ([]Record, bool, error) {
		return s.Range("c", from, t0.Add(3*time.Hour), 100)
	}, func(r Record) time.Time { return r.Time.Add(time.Nanosecond) })
	if !slices.Equal(paged, all) {
		t.Errorf("Range by pages of 100 = %d readings, want the %d of one read", len(paged), len(all))
	}

	minutes, more, err := s.Rollups("c", TierMinute, t0, t0.Add(3*time.Hour), 1<<20)
	if err != nil || more || len(minutes) != 120 {
		t.Fatalf("Rollups of all minutes = %d, more %v, %v; want 120", len(minutes), more, err)
	}
	// From mid-minute: the bucket holding from comes first.
	buckets := pages(t, t0.Add(30*time.Second), 7, func(from time.Time) ([]Bucket, bool, error) {
		return s.Rollups("c", TierMinute, from, t0.Add(3*time.Hour), 7)
	}, func(b Bucket) time.Time { return b.Start.Add(time.Minute) })
	if !slices.Equal(buckets, minutes) {
		t.Errorf("Rollups by pages of 7 = %d buckets, want the %d of one read", len(buckets), len(minutes))
	}
	if page, more, _ := s.Rollups("c", TierMinute, t0, t0.Add(10*time.Minute), 10); len(page) != 10 || more {
		t.Errorf("Rollups of exactly the limit = %d, more %v; want 10, false", len(page), more)
	}
}

// pages reads pages of at most limit entries with read, the first from
// from, each next one from after the last entry of the one before, until
// read says no more remain.
func pages[T any](t *testing.T, from time.Time, limit int, read func(from time.Time) ([]T, bool, error), after func(last T) time.Time) []T {
	t.Helper()
	var out []T
	for {
		page, more, err := read(from)
		if err != nil || len(page) > limit {
			t.Fatalf("a page from %s = %d entries, %v; want at most %d", from, len(page), err, limit)
		}
		out = append(out, page...)
		if !more {
			return out
		}
		from = after(page[len(page)-1])
	}
}

// TestLatestMergesMeters: the newest readings of all meters, newest first,
// equal times in meter order.
func TestLatestMergesMeters(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, reading("b", 0, 1), reading("a", 0, 2), reading("c", 5, 3), reading("b", 10, 4),
		reading("a", 10, 5), reading("c", 10, 6), reading("a", 20, 7))
	latest, err := s.Latest("", 6)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range latest {
		got = append(got, fmt.Sprintf("%s@%v", r.Meter, r.Time.Sub(t0).Seconds()))
	}
	if want := "[a@20 a@10 b@10 c@10 c@5 a@0]"; fmt.Sprint(got) != want {
		t.Errorf("Latest(all, 6) = %v, want %v", got, want)
	}
	if all, _ := s.Latest("", 100); len(all) != 7 {
		t.Errorf("Latest(all, 100) = %d readings, want the 7 there are", len(all))
	}
	if a, _ := s.Latest("a", 2); len(a) != 2 || a[0].PowerW != 7 || a[1].PowerW != 5 {
		t.Errorf("Latest(a, 2) = %+v", a)
	}
}

// TestUnknownMeter: every reader says so of a meter that never had a
// reading, or reports nothing.
func TestUnknownMeter(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, reading("known", 0, 1))
	if _, err := s.Meter("nobody"); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("Meter: %v", err)
	}
	if _, _, err := s.Range("nobody", t0, t0.Add(time.Hour), 10); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("Range: %v", err)
	}
	if _, err := s.Latest("nobody", 10); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("Latest: %v", err)
	}
	if _, _, err := s.Rollups("nobody", TierHour, t0, t0.Add(time.Hour), 10); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("Rollups: %v", err)
	}
	if err := s.CheckRollups("nobody"); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("CheckRollups: %v", err)
	}
	if st, err := s.PowerFactor("nobody", t0, t0.Add(24*time.Hour)); err != nil || st != (PowerFactorStats{}) {
		t.Errorf("PowerFactor = %+v, %v; want nothing", st, err)
	}
	if _, err := s.EditMeter("nobody", func(*MeterInfo) error { return nil }); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("EditMeter: %v", err)
	}
	if len(s.Meters()) != 1 {
		t.Errorf("Meters = %+v, want the known one", s.Meters())
	}
}
