package leader_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vatio-energy/vatio/internal/leader"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// instance is one elector campaigning in the background, as a Vatio
// instance does.
type instance struct {
	e      *leader.Elector
	cancel context.CancelFunc
	done   chan struct{}
	leads  atomic.Int64 // times lead was called
}

// campaign starts an elector on dsn whose lead marks active while it runs
// and counts, in overlaps, any moment two leads ran at once.
func campaign(t *testing.T, dsn string, active, overlaps *atomic.Int64) *instance {
	t.Helper()
	e, err := leader.Postgres(dsn, leader.Options{Wait: 200 * time.Millisecond, Check: 100 * time.Millisecond, Retry: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{e: e, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		e.Run(ctx, func(ctx context.Context) {
			in.leads.Add(1)
			if active.Add(1) > 1 {
				overlaps.Add(1)
			}
			<-ctx.Done()
			active.Add(-1)
		})
	}()
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	in.cancel()
	<-in.done
}

// leaders waits until exactly one of ins leads, and returns it; two
// leading at once fails the test.
func leaders(t *testing.T, ins ...*instance) *instance {
	t.Helper()
	return waitLeader(t, false, ins...)
}

// waitLeader is leaders; with overlap, two leading at once is waited out
// (the gap after a connection is cut, before its holder's next check).
func waitLeader(t *testing.T, overlap bool, ins ...*instance) *instance {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var lead []*instance
		for _, in := range ins {
			if in.e.Leading() {
				lead = append(lead, in)
			}
		}
		if len(lead) == 1 {
			return lead[0]
		}
		if len(lead) > 1 && !overlap {
			t.Fatalf("%d instances lead at once", len(lead))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no instance became the leader")
	return nil
}

// Of three instances one leads; when it stops, another takes over, and
// the jobs of two never run at once.
func TestOneLeadsAndHandsOver(t *testing.T) {
	dsn := pgtest.Database(t)
	var active, overlaps atomic.Int64
	ins := []*instance{campaign(t, dsn, &active, &overlaps), campaign(t, dsn, &active, &overlaps), campaign(t, dsn, &active, &overlaps)}
	seen := map[*instance]bool{}
	for len(ins) > 0 {
		l := leaders(t, ins...)
		seen[l] = true
		followersRetried(t, dsn, len(ins)-1) // they keep waiting through lock_timeout
		if again := leaders(t, ins...); again != l {
			t.Fatal("the leadership moved while its holder was alive")
		}
		l.stop()
		if l.e.Leading() {
			t.Error("an instance that stopped still says it leads")
		}
		for i, in := range ins {
			if in == l {
				ins = append(ins[:i], ins[i+1:]...)
				break
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("%d instances led, want all 3 in turn", len(seen))
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("the jobs of two leaders ran at once %d times", n)
	}
}

// When the leader's connection dies (its process killed, the network
// gone), it stops its jobs, another instance leads, and the first comes
// back as a follower.
func TestConnectionLostMovesLeadership(t *testing.T) {
	dsn := pgtest.Database(t)
	var active, overlaps atomic.Int64
	a, b := campaign(t, dsn, &active, &overlaps), campaign(t, dsn, &active, &overlaps)
	first := leaders(t, a, b)
	other := a
	if first == a {
		other = b
	}
	// PostgreSQL ends every leader connection: the holder's, and the
	// waiter's too.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Both connections are open: the waiter's may be between two tries
	// on a busy machine.
	for open := 0; open < 2; time.Sleep(10 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'vatio leader' AND datname = current_database()`).Scan(&open); err != nil {
			t.Fatalf("%d leader connections open, want 2: %v", open, err)
		}
	}
	var killed int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'vatio leader' AND datname = current_database()`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 2 {
		t.Fatalf("ended %d leader connections, want 2", killed)
	}
	deadline := time.Now().Add(15 * time.Second)
	for first.leads.Load()+other.leads.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := first.leads.Load() + other.leads.Load(); n < 2 {
		t.Fatalf("nobody led again after the connections died (%d leads in all)", n)
	}
	// Overlaps are allowed here: until its next check the old holder
	// cannot know its connection went (the gap Options.Check bounds). Then
	// one leads, and only its jobs run.
	waitLeader(t, true, a, b)
	// A holder that has not noticed its connection went stops its jobs at
	// its next check.
	for deadline := time.Now().Add(10 * time.Second); active.Load() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d leaders' jobs run, want 1", active.Load())
		}
	}
	leaders(t, a, b)
}

// Several processes' worth of electors, started and stopped at random
// moments, never leave two leading at once.
func TestNoTwoLeadersUnderChurn(t *testing.T) {
	dsn := pgtest.Database(t)
	var active, overlaps atomic.Int64
	var ins []*instance
	for range 4 {
		ins = append(ins, campaign(t, dsn, &active, &overlaps))
	}
	for range 6 {
		l := leaders(t, ins...)
		l.stop()
		for i, in := range ins {
			if in == l {
				ins[i] = campaign(t, dsn, &active, &overlaps) // a restarted instance
			}
		}
	}
	leaders(t, ins...)
	if n := overlaps.Load(); n != 0 {
		t.Errorf("the jobs of two leaders ran at once %d times", n)
	}
}

// Alone always leads, for as long as Run runs.
func TestAlone(t *testing.T) {
	e := leader.Alone()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx, func(ctx context.Context) { close(started); <-ctx.Done() })
	}()
	<-started
	if !e.Leading() {
		t.Error("Alone does not lead")
	}
	cancel()
	<-done
	if e.Leading() {
		t.Error("Alone still leads after Run returned")
	}
}

// followersRetried waits until n electors wait for the lock in PostgreSQL
// and each of them has waited out lock_timeout and asked again: the state
// in which a leadership that should stay put would have moved.
func followersRetried(t *testing.T, dsn string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// waits maps each waiting elector's backend to when its current wait
	// for the lock began.
	waits := func() map[int32]time.Time {
		rows, err := conn.Query(ctx, `SELECT pid, query_start FROM pg_stat_activity
			WHERE application_name = 'vatio leader' AND datname = current_database() AND wait_event_type = 'Lock'`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]time.Time{}
		for rows.Next() {
			var pid int32
			var start time.Time
			if err := rows.Scan(&pid, &start); err != nil {
				t.Fatal(err)
			}
			out[pid] = start
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := waits()
	for len(first) < n {
		if ctx.Err() != nil {
			t.Fatalf("%d electors wait for the lock, want %d", len(first), n)
		}
		time.Sleep(10 * time.Millisecond)
		first = waits()
	}
	for pid, began := range first {
		for {
			if again, ok := waits()[pid]; ok && again.After(began) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("the elector of backend %d did not ask for the lock again after lock_timeout", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
