package store

import (
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestCheckpointRunsBesideTheWriter holds a checkpoint's transaction open
// (written, not committed) and checks that the writer goes on meanwhile: a
// reading is acknowledged once the log has it, readers see the frozen head
// and the new one, and once the checkpoint lands nothing is lost or doubled.
// With the checkpoint on the writer, the acknowledgement waits for it.
func TestCheckpointRunsBesideTheWriter(t *testing.T) {
	boltOnly(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool // from the first checkpoint after Open's own
	crashHook = func(at string) {
		if at == "checkpoint-tx" && armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
	}
	t.Cleanup(func() { crashHook = nil })
	dir := t.TempDir()
	s, err := testOpen(t, dir, Options{HeadMaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	held := true
	t.Cleanup(func() {
		if held {
			close(release)
		}
		s.Close()
	})
	armed.Store(true)
	const n = 1500 // past one head's bound (about 1,000 readings), not two
	for i := range n {
		if err := s.Append(reading("a", i, float64(i%50)), nil); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("still waiting for %s after 20 s", what)
		}
	}
	wait("the checkpoint of the full head to start", entered)

	acked := make(chan struct{})
	if err := s.Append(reading("a", n, 7), func(err error) {
		if err != nil {
			t.Errorf("reading during the checkpoint: %v", err)
		}
		close(acked)
	}); err != nil {
		t.Fatal(err)
	}
	wait("the acknowledgement of a reading taken while a checkpoint's transaction is open", acked)
	if recs := allRecords(t, s, "a"); len(recs) != n+1 {
		t.Errorf("during the checkpoint, readers see %d readings, want %d", len(recs), n+1)
	}
	if m, err := s.Meter("a"); err != nil || m.Readings != n+1 {
		t.Errorf("during the checkpoint, Meter = %d readings, %v; want %d", m.Readings, err, n+1)
	}

	close(release)
	held = false
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, when string) {
		t.Helper()
		recs := allRecords(t, s, "a")
		if len(recs) != n+1 {
			t.Fatalf("%s: %d readings, want %d", when, len(recs), n+1)
		}
		for i, r := range recs {
			if want := t0.Add(time.Duration(i) * time.Second); !r.Time.Equal(want) {
				t.Fatalf("%s: reading %d at %v, want %v", when, i, r.Time, want)
			}
		}
		if err := s.CheckRollups("a"); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	check(s, "after the checkpoint")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	check(s, "after reopening")
}

// TestOpensWithNoRoomForTheLog opens a store where no log segment can be
// written (a file size limit of 1 MiB, below a segment's 4 MiB: what a full
// disk does to the first start): the store opens, readings are acknowledged
// once they are in the database, and a later start with room has them.
func TestOpensWithNoRoomForTheLog(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
		t.Fatal(err)
	}
	// The limit is the process's: nothing else in it writes files now.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 20, Max: was.Max}); err != nil {
		t.Skip("cannot limit file sizes here:", err)
	}
	limited := true
	restore := func() {
		if limited {
			limited = false
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	s, err := testOpen(t, dir, Options{})
	if err != nil {
		t.Fatalf("Open with no room for a log segment: %v", err)
	}
	for i := range 20 {
		ack := make(chan error, 1)
		if err := s.Append(reading("full", i, float64(i)), func(err error) { ack <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-ack; err != nil {
			t.Fatalf("reading %d: %v", i, err)
		}
	}
	if recs := allRecords(t, s, "full"); len(recs) != 20 {
		t.Errorf("%d readings stored, want 20", len(recs))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	restore()
	s = openTest(t, dir)
	if recs := allRecords(t, s, "full"); len(recs) != 20 {
		t.Errorf("reopened with room: %d readings, want 20", len(recs))
	}
	if err := s.CheckRollups("full"); err != nil {
		t.Error(err)
	}
	mustAppend(t, s, reading("full", 20, 1))
	if fs, _ := filepath.Glob(filepath.Join(dir, walDirName, "*"+walSuffix)); len(fs) == 0 {
		t.Error("with room again, the log has no segment")
	}
}
