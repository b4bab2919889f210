package leader_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/leader"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
	"github.com/vatio-energy/vatio/store"
)

// presenceDB returns a database with Vatio's tables, instances among them.
func presenceDB(t *testing.T) string {
	t.Helper()
	dsn := pgtest.Database(t)
	st, err := store.OpenPostgres(dsn, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return dsn
}

func join(t *testing.T, dsn, id string) (*leader.Presence, error) {
	t.Helper()
	p, err := leader.Join(context.Background(), dsn, leader.Member{ClientID: id, Filters: []string{"$share/vatio/#"}, Host: "h-" + id, PID: os.Getpid()}, nil)
	if err == nil {
		t.Cleanup(func() { p.Leave(context.Background(), false) })
	}
	return p, err
}

// TestPresence: an instance alive holds its client id, which a second is
// refused; once it is gone (its connection closed, as a process that dies
// leaves it) and its heartbeat LapseAfter old, another claims it, once, and with
// the session ended, forgets it; the id is free again.
func TestPresence(t *testing.T) {
	dsn := presenceDB(t)
	a, err := join(t, dsn, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := join(t, dsn, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := join(t, dsn, "a"); !errors.Is(err, leader.ErrClientIDInUse) {
		t.Fatalf("a second instance with client id a: %v, want ErrClientIDInUse", err)
	}
	live, _, err := b.Members(context.Background())
	if err != nil || len(live) != 2 {
		t.Fatalf("b sees %v alive (%v), want a and b", live, err)
	}
	if claimed, _, err := b.Claim(context.Background()); err != nil || len(claimed) != 0 {
		t.Fatalf("b claimed %v (%v) while a lives", claimed, err)
	}
	// a dies: its connection closes, its row stays.
	if err := a.Leave(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	var claimed []leader.Member
	for deadline := time.Now().Add(10 * time.Second); len(claimed) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("b never claimed a, gone")
		}
		if claimed, _, err = b.Claim(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(claimed) != 1 || claimed[0].ClientID != "a" || claimed[0].Filters[0] != "$share/vatio/#" || claimed[0].Age < leader.LapseAfter {
		t.Fatalf("claimed %+v, want a, LapseAfter silent, with its subscriptions", claimed)
	}
	if again, _, err := b.Claim(context.Background()); err != nil || len(again) != 0 {
		t.Fatalf("a claimed twice: %v (%v)", again, err)
	}
	// a comes back while b takes its session over: it waits, and joins once
	// b is done.
	done := make(chan error, 1)
	go func() { _, err := join(t, dsn, "a"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a joined during the takeover: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := b.Release(context.Background(), "a", true); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a after the takeover: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a still waits after the takeover")
	}
	live, lapsed, err := b.Members(context.Background())
	if err != nil || len(live) != 2 || len(lapsed) != 0 {
		t.Errorf("members %v, lapsed %v (%v); want a and b alive", live, lapsed, err)
	}
}

// TestLeavingOneAtATime: of instances stopping together, all but the last
// leave their share group; the last keeps its session, so that the group
// is never left with no subscriber.
func TestLeavingOneAtATime(t *testing.T) {
	dsn := presenceDB(t)
	var ps []*leader.Presence
	for _, id := range []string{"a", "b", "c"} {
		p, err := join(t, dsn, id)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	results := make(chan bool, len(ps))
	for _, p := range ps {
		go func() {
			leave, err := p.Leaving(context.Background())
			if err != nil {
				t.Error(err)
			}
			results <- leave
		}()
	}
	left := 0
	for range ps {
		if <-results {
			left++
		}
	}
	if left != len(ps)-1 {
		t.Errorf("%d of %d instances stopping together left the group; want all but one", left, len(ps))
	}
}
