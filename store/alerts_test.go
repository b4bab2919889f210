package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestAlertsNewestFirstAcrossPages: Alerts reads newest first however
// many alerts there are (PostgreSQL reads them a page of 500 at a time),
// stops at its limit of kept ones, and ids go on after a reopen.
func TestAlertsNewestFirstAcrossPages(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	const n = 1201
	for i := range n {
		a := &Alert{Time: t0.Add(time.Duration(i) * time.Second), Severity: "info", Message: fmt.Sprint("alert ", i),
			Meter: []string{"a", "b", ""}[i%3], Source: "api"}
		if err := s.AddAlert(a); err != nil {
			t.Fatal(err)
		}
		if a.ID != uint64(i+1) {
			t.Fatalf("alert %d got id %d", i, a.ID)
		}
	}
	all, err := s.Alerts(1<<20, nil)
	if err != nil || len(all) != n {
		t.Fatalf("Alerts = %d alerts, %v; want %d", len(all), err, n)
	}
	for i, a := range all {
		if a.ID != uint64(n-i) || a.Message != fmt.Sprint("alert ", n-1-i) {
			t.Fatalf("alert %d of the list = %d %q, want %d, newest first", i, a.ID, a.Message, n-i)
		}
	}
	odd := func(a *Alert) bool { return a.ID%2 == 1 }
	some, err := s.Alerts(550, odd)
	if err != nil || len(some) != 550 || some[0].ID != n || some[549].ID != n-2*549 {
		t.Errorf("Alerts(550, odd ids) = %d alerts from %d to %d, %v; want 550 from %d to %d",
			len(some), some[0].ID, some[len(some)-1].ID, err, n, n-2*549)
	}
	if none, err := s.Alerts(0, nil); err != nil || len(none) != 0 {
		t.Errorf("Alerts(0) = %d alerts, %v", len(none), err)
	}
	s.Close()
	s = openTest(t, dir)
	a := &Alert{Time: t0, Severity: "critical", Message: "after", Source: "rule"}
	if err := s.AddAlert(a); err != nil || a.ID != n+1 {
		t.Errorf("the first alert after reopening got id %d (%v), want %d", a.ID, err, n+1)
	}
}

// TestAlertRoundTrip: every field of an alert is stored, an update keeps
// its id, and an alert moved to another meter is erased with that one.
func TestAlertRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	mustAppend(t, s, reading("x", 0, 1), reading("y", 0, 1))
	resolved := t0.Add(time.Hour)
	a := &Alert{Time: t0, Severity: "warning", Message: "hot", Meter: "x", Source: "rule", Rule: "r1", State: AlertFiring,
		Actions:    []string{"cmnd/plug/POWER: sent"},
		Deliveries: []Delivery{{Notifier: "email", Status: DeliveryPending, Updated: t0}},
		Claim:      &Claim{Instance: "i1", Until: t0.Add(time.Minute)}}
	if err := s.AddAlert(a); err != nil {
		t.Fatal(err)
	}
	other := &Alert{Time: t0, Severity: "info", Message: "stays", Meter: "x", Source: "api", Deliveries: []Delivery{}}
	if err := s.AddAlert(other); err != nil {
		t.Fatal(err)
	}
	err := s.UpdateAlert(a.ID, func(a *Alert) {
		a.ID = 999 // ignored: the id is the stored one
		a.Meter, a.State, a.ResolvedAt, a.Claim = "y", AlertResolved, &resolved, nil
		a.Deliveries[0].Status, a.Deliveries[0].Attempts, a.Deliveries[0].LastError = DeliveryFailed, 3, "timeout"
	})
	if err != nil {
		t.Fatal(err)
	}
	want := *a
	want.Meter, want.State, want.ResolvedAt, want.Claim = "y", AlertResolved, &resolved, nil
	want.Deliveries = []Delivery{{Notifier: "email", Status: DeliveryFailed, Attempts: 3, LastError: "timeout", Updated: t0}}
	s.Close()
	s = openTest(t, dir)
	got, err := s.Alerts(10, func(a *Alert) bool { return a.Meter == "y" })
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("after the update and a reopen, the alert of y = %+v, %v; want %+v", got, err, want)
	}
	erased, err := s.DeleteMeter("y")
	if err != nil || erased.Alerts != 1 {
		t.Errorf("deleting y erased %+v, %v; want its alert", erased, err)
	}
	if left, _ := s.Alerts(10, nil); len(left) != 1 || left[0].ID != other.ID {
		t.Errorf("alerts left = %+v, want the other of x", left)
	}
}
