package audit

import (
	"fmt"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/store"
)

func openLog(t *testing.T) *Log {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, nil)
}

// TestListNewestFirst: List gives the newest entries first, as many as
// asked, of those keep accepts.
func TestListNewestFirst(t *testing.T) {
	l := openLog(t)
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for i := range 30 {
		// Recorded out of order: the time orders them, not the recording.
		j := (i * 7) % 30
		l.Record(Entry{Time: t0.Add(time.Duration(j) * time.Second), Who: fmt.Sprint("u", j%3), Action: "change", Target: fmt.Sprint(j)})
	}
	got, err := l.List(5, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		if want := fmt.Sprint(29 - i); e.Target != want {
			t.Errorf("List(5)[%d] = %s, want %s", i, e.Target, want)
		}
	}
	if len(got) != 5 {
		t.Errorf("List(5) gave %d entries", len(got))
	}
	got, err = l.List(4, func(e Entry) bool { return e.Who == "u0" })
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, e := range got {
		targets = append(targets, e.Target)
	}
	if fmt.Sprint(targets) != "[27 24 21 18]" {
		t.Errorf("List(4, u0) = %v, want [27 24 21 18]", targets)
	}
	if got, err := l.List(0, nil); err != nil || len(got) != 0 {
		t.Errorf("List(0) = %v, %v", got, err)
	}
	if got, err := l.List(1000, nil); err != nil || len(got) != 30 {
		t.Errorf("List(1000) = %d entries, %v; want 30", len(got), err)
	}
}

// TestPruneKeepsTheNewest: past its bound (and a tenth), the log deletes
// its oldest entries down to the bound, and counts what a reopened log
// holds.
func TestPruneKeepsTheNewest(t *testing.T) {
	l := openLog(t)
	l.max = 20
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for i := range 23 {
		l.Record(Entry{Time: t0.Add(time.Duration(i) * time.Second), Action: "change", Target: fmt.Sprint(i)})
	}
	got, err := l.List(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 || got[0].Target != "22" || got[19].Target != "3" {
		t.Fatalf("after 23 entries with a bound of 20: %d entries, newest %s, oldest %s; want 20, 22 to 3", len(got), got[0].Target, got[len(got)-1].Target)
	}
	if l.n != 20 {
		t.Errorf("the log counts %d entries, holds 20", l.n)
	}
	// A new Log on the same store counts what it holds at its first
	// record.
	again := New(l.st, nil)
	again.max = 20
	again.Record(Entry{Time: t0.Add(time.Hour), Action: "change", Target: "later"})
	if again.n != 20 {
		t.Errorf("a reopened log counts %d entries, want 20 (21 trimmed to its bound)", again.n)
	}
}
