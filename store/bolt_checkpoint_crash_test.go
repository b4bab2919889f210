package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vatio-energy/vatio/internal/meter"
)

// Tests of the checkpoint beside the writer and of late readings
// taking only their meters' part of the head.

// crashScenarios are run by TestCrashScenarioChild in a child process, which
// they end with SIGKILL; what they print on stdout is for the parent.
var crashScenarios = map[string]func(t *testing.T, dir string){}

// TestCrashScenarioChild runs the scenario VATIO_STORE_SCENARIO on the data dir
// VATIO_STORE_SCENARIO_DIR, then kills its process.
func TestCrashScenarioChild(t *testing.T) {
	name := os.Getenv("VATIO_STORE_SCENARIO")
	if name == "" {
		t.Skip("the child process of the crash scenarios")
	}
	crashScenarios[name](t, os.Getenv("VATIO_STORE_SCENARIO_DIR"))
	os.Stdout.Sync()
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// runCrashScenario runs scenario in a child process on dir and returns the
// lines it printed; the child must have died of SIGKILL.
func runCrashScenario(t *testing.T, scenario, dir string) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashScenarioChild$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "VATIO_STORE_SCENARIO="+scenario, "VATIO_STORE_SCENARIO_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", cmd.ProcessState, strings.Join(lines, "\n"))
	}
	return lines
}

// liveSegments counts the log's segments in use (not free-).
func liveSegments(t *testing.T, dir string) int {
	t.Helper()
	segs, _, err := listSegments(filepath.Join(dir, walDirName))
	if err != nil {
		t.Fatal(err)
	}
	return len(segs)
}

func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func init() {
	crashScenarios["late-frees-log"] = func(t *testing.T, dir string) {
		s, err := Open(dir, Options{HeadMaxBytes: 512 << 20, CheckpointInterval: time.Hour, SyncDelay: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for sec := range 10 {
			mustAppend(t, s, reading("b", sec, 100))
		}
		// Meter a's readings, only in the head and the log, until the
		// log has rolled over into a second segment.
		n := 0
		for liveSegments(t, dir) < 2 {
			for range 5000 {
				r := reading("a", n, float64(n%1000))
				r.EnergyWh, r.HasEnergy = float64(n), true
				r.PowerFactor, r.HasPF = 0.9, true
				if err := s.Append(r, nil); err != nil {
					t.Fatal(err)
				}
				n++
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		// A late reading of b: b's part of the head goes into bbolt, a's
		// stays in the head and the log.
		late := reading("b", 2, 55)
		late.Time = late.Time.Add(500 * time.Millisecond)
		mustAppend(t, s, late)
		fmt.Printf("a %d\n", n)
		fmt.Printf("segments %d\n", liveSegments(t, dir))
	}
}

// TestLateReadingKeepsTheLogOfOtherMeters: a late reading commits only its
// meter's part of the head; the log segments before the current one hold
// the other meters' records, still only in the head, and must not be freed
// (as they were once: after SIGKILL those readings were lost).
func TestLateReadingKeepsTheLogOfOtherMeters(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	lines := runCrashScenario(t, "late-frees-log", dir)
	var n, segs int
	for _, l := range lines {
		fmt.Sscanf(l, "a %d", &n)
		fmt.Sscanf(l, "segments %d", &segs)
	}
	if n == 0 {
		t.Fatalf("the child printed nothing useful: %q", lines)
	}
	t.Logf("a: %d acknowledged readings, %d live segments after the late reading", n, segs)
	s := openTest(t, dir)
	if got := len(allRecords(t, s, "a")); got != n {
		t.Errorf("after SIGKILL meter a has %d readings, want the %d acknowledged", got, n)
	}
	if got := len(allRecords(t, s, "b")); got != 11 {
		t.Errorf("after SIGKILL meter b has %d readings, want 11", got)
	}
	if err := s.CheckRollups("a"); err != nil {
		t.Error(err)
	}
}

// fillUntil appends readings of meter m, one a second from t0, until
// entered is closed (a checkpoint held), and returns how many.
func fillUntil(t *testing.T, s *Store, m string, entered <-chan struct{}) int {
	t.Helper()
	for n := 0; ; n++ {
		select {
		case <-entered:
			return n
		default:
		}
		if err := s.Append(reading(m, n, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// holdCheckpoint makes the next checkpoint after a send on armed hold its
// transaction (written, not committed): entered is closed once it does,
// and closing release lets it go on.
func holdCheckpoint(t *testing.T) (armed chan struct{}, entered, release chan struct{}, hook func(string)) {
	entered, release = make(chan struct{}), make(chan struct{})
	armed = make(chan struct{}, 1)
	hook = func(at string) {
		if at != "checkpoint-tx" {
			return
		}
		select {
		case <-armed:
			close(entered)
			<-release
		default:
		}
	}
	return armed, entered, release, hook
}

// fillFreePages leaves the database in dir with free pages (a junk meter
// imported then erased) and returns its size: a cap at that size lets small
// commits through and fails a big checkpoint.
func fillFreePages(t *testing.T, dir string, n int) int {
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rs []meter.Reading
	for i := range n {
		rs = append(rs, reading("junk", -100000+i, float64(i)))
	}
	if _, err := s.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteMeter("junk"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("z", 0, 1))
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("z", 1, 1))
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size())
}

func init() {
	// A checkpoint beside the writer fails (the database at its cap) while
	// the new head took more readings of meter u; the frozen head is merged
	// back, keeping u's log position of before. A late reading of u then
	// records that stale position in wal_meters; the replay after SIGKILL
	// stores u's readings past it again (they are stamped on receipt, so a
	// millisecond after u's newest, not as resends).
	crashScenarios["merge-stale-lsn"] = func(t *testing.T, dir string) {
		size := fillFreePages(t, dir, 20000)
		armed, entered, release, hook := holdCheckpoint(t)
		s, err := Open(dir, Options{MaxSizeBytes: size, HeadMaxBytes: 4 << 20, CheckpointInterval: time.Hour, SyncDelay: time.Millisecond, crashAt: hook})
		if err != nil {
			t.Fatal(err)
		}
		base := t0.Add(10 * time.Hour)
		u := func(i int) meter.Reading {
			return meter.Reading{Meter: "u", Time: base.Add(time.Duration(i) * 100 * time.Millisecond), PowerW: float64(i)}
		}
		acked := func(r meter.Reading) {
			ch := make(chan error, 1)
			if err := s.Append(r, func(err error) { ch <- err }); err != nil {
				t.Fatal(err)
			}
			if err := <-ch; err != nil {
				t.Fatalf("reading %v: %v", r, err)
			}
			fmt.Printf("acked %s %g\n", r.Meter, r.PowerW)
		}
		for i := 1; i <= 5; i++ {
			acked(u(i))
		}
		errs := counterValue(t, s.commitErrors)
		armed <- struct{}{}
		for i := 0; ; i++ {
			select {
			case <-entered:
			default:
				if err := s.Append(reading("a", i, 1), nil); err != nil {
					t.Fatal(err)
				}
				continue
			}
			break
		}
		// The checkpoint of the full head is written, not committed: u's
		// next readings go to the new head.
		for i := 6; i <= 10; i++ {
			acked(u(i))
		}
		close(release)
		waitFor(t, "the checkpoint to fail", func() bool {
			s.Flush()
			return counterValue(t, s.commitErrors) > errs
		})
		late := meter.Reading{Meter: "u", Time: base.Add(-time.Hour), PowerW: -1, Stamped: true}
		acked(late)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFailedCheckpointMergeKeepsTheNewestLSN: see the scenario
// merge-stale-lsn. head.merge must carry the later head's lsn (it once kept
// the frozen one's, and a replay stored readings twice).
func TestFailedCheckpointMergeKeepsTheNewestLSN(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	lines := runCrashScenario(t, "merge-stale-lsn", dir)
	want := map[float64]bool{}
	for _, l := range lines {
		var v float64
		if _, err := fmt.Sscanf(l, "acked u %g", &v); err == nil {
			want[v] = true
		}
	}
	if len(want) != 11 {
		t.Fatalf("the child acknowledged %d readings of u, want 11: %q", len(want), lines)
	}
	s := openTest(t, dir)
	seen := map[float64]int{}
	recs := allRecords(t, s, "u")
	for _, r := range recs {
		seen[r.PowerW]++
	}
	for v := range want {
		if seen[v] != 1 {
			t.Errorf("acknowledged reading %g of u stored %d times, want once", v, seen[v])
		}
	}
	if len(recs) != 11 {
		t.Errorf("after SIGKILL u has %d readings, want 11", len(recs))
	}
	if err := s.CheckRollups("u"); err != nil {
		t.Error(err)
	}
}

// TestFailedCheckpointThenDocCommitKeepsFrozenHead: a checkpoint beside the
// writer fails and rolls back; its transaction id is not used up, so the
// next write transaction (a document, an alert: db.Update outside the
// writer) commits with that same id. Until the writer merges the frozen
// head back, view() must not take a read transaction begun after that
// commit for one that holds the frozen head (it once did, and readers
// missed every reading of the frozen head).
func TestFailedCheckpointThenDocCommitKeepsFrozenHead(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	size := fillFreePages(t, dir, 20000)
	armed, entered, release, hook := holdCheckpoint(t)
	s, err := testOpen(t, dir, Options{MaxSizeBytes: size, HeadMaxBytes: 4 << 20, CheckpointInterval: time.Hour, SyncDelay: time.Millisecond, crashAt: hook})
	if err != nil {
		t.Fatal(err)
	}
	eng := s.eng.(*boltEngine)
	unblock := make(chan struct{})
	released, unblocked := false, false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		if !unblocked {
			close(unblock)
		}
		s.Close()
	})
	armed <- struct{}{}
	n := fillUntil(t, s, "a", entered)
	// The writer blocks handing acknowledgements on: one callback waits.
	if err := s.Append(reading("b", 0, 1), func(error) { <-unblock }); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 1; i < 200; i++ {
			if s.Append(reading("b", i, 1), func(error) {}) != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	waitFor(t, "the writer to block on acknowledgements", func() bool { return len(s.acks) == cap(s.acks) && len(s.queue) > 0 })
	cp := eng.cp   // set before the checkpoint's goroutine, which entered, started
	close(release) // the checkpoint's commit fails: the database is at its cap
	released = true
	waitFor(t, "the checkpoint's transaction to end", func() bool { return len(cp.done) == 1 })
	if got := len(allRecords(t, s, "a")); got != n {
		t.Errorf("after the failed checkpoint, before any other commit, readers see %d readings of a, want %d", got, n)
	}
	if err := s.PutDoc("dashboards", "x", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	eng.headMu.RLock()
	stillFrozen := eng.frozen != nil
	eng.headMu.RUnlock()
	if !stillFrozen {
		t.Skip("the writer merged the frozen head back before the document's commit")
	}
	want := n
	if got := len(allRecords(t, s, "a")); got != want {
		t.Errorf("after a failed checkpoint and a document's commit, readers see %d readings of a, want %d", got, want)
	}
	close(unblock)
	unblocked = true
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := len(allRecords(t, s, "a")); got != want {
		t.Errorf("once the writer went on, readers see %d readings of a, want %d", got, want)
	}
}

// TestRollupsThroughFailedAsyncCheckpoint: readers' counts and rollups
// while a checkpoint beside the writer is held, after it fails (a big meter
// in the head, the database at its cap) and merges back, while retried
// checkpoints keep failing, after a late reading of a small meter, and
// after reopening without the cap.
func TestRollupsThroughFailedAsyncCheckpoint(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	size := fillFreePages(t, dir, 20000)
	armed, entered, release, hook := holdCheckpoint(t)
	s, err := testOpen(t, dir, Options{MaxSizeBytes: size, HeadMaxBytes: 64 << 20, CheckpointInterval: 200 * time.Millisecond, SyncDelay: time.Millisecond, crashAt: hook})
	if err != nil {
		t.Fatal(err)
	}
	armed <- struct{}{}
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		s.Close()
	})
	for i := range 60000 {
		r := reading("big", -100000+i, 5)
		if err := s.Append(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	const meters = 5
	count := map[string]int{"big": 60000}
	sec := 0
	add := func(k int) {
		for range k {
			for m := range meters {
				id := fmt.Sprintf("m%d", m)
				r := reading(id, sec*7, float64(100+m+sec%13))
				r.EnergyWh, r.HasEnergy = float64(sec*10), true
				ch := make(chan error, 1)
				if err := s.Append(r, func(err error) { ch <- err }); err != nil {
					t.Fatal(err)
				}
				if err := <-ch; err != nil {
					t.Fatalf("reading %v: %v", r, err)
				}
				count[id]++
			}
			sec++
		}
	}
	check := func(when string) {
		t.Helper()
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		for id, want := range count {
			if got := len(allRecords(t, s, id)); got != want {
				t.Errorf("%s: %s has %d readings, want %d", when, id, got, want)
			}
			if mt, err := s.Meter(id); err != nil || mt.Readings != uint64(want) {
				t.Errorf("%s: Meter(%s) = %d, %v; want %d", when, id, mt.Readings, err, want)
			}
			if err := s.CheckRollups(id); err != nil {
				t.Errorf("%s: %v", when, err)
			}
		}
	}
	add(10)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no checkpoint started")
	}
	add(20)
	check("during the checkpoint")
	errs := counterValue(t, s.commitErrors)
	close(release)
	released = true
	waitFor(t, "the checkpoint to fail", func() bool {
		s.Flush()
		return counterValue(t, s.commitErrors) > errs
	})
	add(20)
	check("after it failed")
	late := reading("m0", 7*3+3, 1)
	ch := make(chan error, 1)
	if err := s.Append(late, func(err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-ch; err != nil {
		t.Fatalf("late reading: %v", err)
	}
	count["m0"]++
	check("after a late reading")
	add(20)
	errs = counterValue(t, s.commitErrors)
	waitFor(t, "two more checkpoints to fail", func() bool {
		s.Flush()
		return counterValue(t, s.commitErrors) >= errs+2
	})
	add(20)
	check("after more readings")
	if err := s.Close(); err != nil {
		t.Log("close:", err)
	}
	s, err = testOpen(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	check("after reopening")
}

// TestCloseWhileAsyncCheckpointHeld: Close while a checkpoint beside the
// writer is held returns once it ends, and a reopen has every reading.
func TestCloseWhileAsyncCheckpointHeld(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	armed, entered, release, hook := holdCheckpoint(t)
	s, err := testOpen(t, dir, Options{HeadMaxBytes: 1 << 20, SyncDelay: time.Millisecond, crashAt: hook})
	if err != nil {
		t.Fatal(err)
	}
	armed <- struct{}{}
	n := fillUntil(t, s, "a", entered)
	for i := range 100 {
		if err := s.Append(reading("a", n+i, 1), nil); err != nil {
			t.Fatal(err)
		}
	}
	n += 100
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitFor(t, "Close to close the queue, with the checkpoint held", func() bool {
		s.closeMu.Lock()
		defer s.closeMu.Unlock()
		return s.closed
	})
	select {
	case <-closed:
		t.Fatal("Close returned while the checkpoint was held")
	default:
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return")
	}
	s = openTest(t, dir)
	if got := len(allRecords(t, s, "a")); got != n {
		t.Errorf("after Close during a checkpoint and reopening: %d readings, want %d", got, n)
	}
	if err := s.CheckRollups("a"); err != nil {
		t.Error(err)
	}
}
