package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// TestCheckpointRunsBesideTheWriter holds a checkpoint's transaction open
// (written, not committed) and checks that the writer goes on meanwhile: a
// reading is acknowledged once the log has it, readers see the frozen head
// and the new one, and once the checkpoint lands nothing is lost or doubled.
// With the checkpoint on the writer, the acknowledgement waits for it.
func TestCheckpointRunsBesideTheWriter(t *testing.T) {
	boltOnly(t)
	s, dir, hold := openHeld(t, "checkpoint-tx", Options{HeadMaxBytes: 64 << 10})
	hold.arm()
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
	wait("the checkpoint of the full head to start", hold.entered)

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

	hold.release()
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
	if !isolated(t) {
		return
	}
	dir := t.TempDir()
	restore := limitFileSize(t, 1<<20)
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

// TestLateCrashChild is the child of TestKill9AfterLateReadings: it appends
// readings of meters "u" and "v" stamped on receipt (which a replay would
// store again, a millisecond later, rather than find as resends), each
// acknowledged once durable, and every 100th a late reading of u, which
// takes u's part of the head into bbolt and leaves v's in the head and the
// log, whose segments are small (8 KiB) so that several fill meanwhile;
// once 1,000 are acknowledged and several late ones went in, it kills
// itself.
func TestLateCrashChild(t *testing.T) {
	dir := os.Getenv("VATIO_STORE_LATE_CRASH_DIR")
	if dir == "" {
		t.Skip("the child process of TestKill9AfterLateReadings")
	}
	s, err := Open(dir, Options{SyncDelay: time.Millisecond, CheckpointInterval: time.Hour, segmentBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var acked, late atomic.Int64
	var mu sync.Mutex
	for i := 1; ; i++ {
		r := meter.Reading{Meter: "u", Time: time.Now(), PowerW: float64(i)}
		if i%2 == 0 {
			r.Meter = "v"
		}
		if i%100 == 0 {
			r = meter.Reading{Meter: "u", Time: t0.Add(time.Duration(i) * time.Second), PowerW: float64(-i), Stamped: true}
		}
		err := s.Append(r, func(err error) {
			if err != nil {
				return
			}
			mu.Lock()
			fmt.Fprintf(os.Stdout, "acked %s %d\n", r.Meter, int(r.PowerW))
			mu.Unlock()
			if r.PowerW < 0 {
				late.Add(1)
			}
			if acked.Add(1) >= 1000 && late.Load() >= 3 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// TestKill9AfterLateReadings: readings whose meter's part of the head went
// into bbolt with a late reading, the rest of the head only in the log, are
// each stored once after a SIGKILL: the replay skips what bbolt holds.
func TestKill9AfterLateReadings(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLateCrashChild$")
	cmd.Env = append(os.Environ(), "VATIO_STORE_LATE_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]map[int]bool{"u": {}, "v": {}}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var m string
		var v int
		if _, err := fmt.Sscanf(sc.Text(), "acked %s %d", &m, &v); err == nil && acked[m] != nil {
			acked[m][v] = true
		}
	}
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed (%d readings acknowledged)", len(acked))
	}
	s := openTest(t, dir)
	for m, want := range acked {
		recs := allRecords(t, s, m)
		seen := map[int]int{}
		for _, r := range recs {
			seen[int(r.PowerW)]++
		}
		for v := range want {
			if seen[v] != 1 {
				t.Errorf("meter %s: acknowledged reading %d stored %d times, want once", m, v, seen[v])
			}
		}
		if got, _ := s.Meter(m); got.Readings != uint64(len(recs)) {
			t.Errorf("meter %s: the summary counts %d readings, %d are stored", m, got.Readings, len(recs))
		}
		if err := s.CheckRollups(m); err != nil {
			t.Error(err)
		}
		t.Logf("meter %s: %d acknowledged readings", m, len(want))
	}
}

// TestLateReadingLeavesTheOtherMetersInTheHead: a reading older than its
// meter's newest writes that meter's part of the head into bbolt with it,
// not the whole head (whose every meter would cost its pages again for each
// late reading), and readers see every reading before and after.
func TestLateReadingLeavesTheOtherMetersInTheHead(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	s := openTest(t, dir)
	eng := s.eng.(*boltEngine)
	const meters, each = 20, 30
	for sec := range each {
		for m := range meters {
			if err := s.Append(reading(fmt.Sprintf("m%02d", m), sec, float64(100+m+sec)), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	headN := func() int {
		eng.headMu.RLock()
		defer eng.headMu.RUnlock()
		return eng.head.n
	}
	if n := headN(); n != meters*each {
		t.Fatalf("the head holds %d readings, want %d", n, meters*each)
	}
	late := reading("m00", 10, 7)
	late.Time = late.Time.Add(500 * time.Millisecond)
	mustAppend(t, s, late)
	if n := headN(); n != (meters-1)*each {
		t.Errorf("after a late reading of m00 the head holds %d readings, want the other meters' %d", n, (meters-1)*each)
	}
	check := func(when string) {
		t.Helper()
		for m := range meters {
			id := fmt.Sprintf("m%02d", m)
			want := each
			if m == 0 {
				want++
			}
			if recs := allRecords(t, s, id); len(recs) != want {
				t.Errorf("%s: %s has %d readings, want %d", when, id, len(recs), want)
			}
			if err := s.CheckRollups(id); err != nil {
				t.Errorf("%s: %v", when, err)
			}
		}
	}
	check("after the late reading")
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	check("after a checkpoint")
	s.Close()
	s = openTest(t, dir)
	check("after reopening")
}

// TestRefusedReadingsLeaveNoTrace fills a store where no log segment can be
// written (a file size limit below a segment) and whose database is capped:
// once neither can take a reading, it is refused, and nothing of it stays:
// not in queries, not in the meter's summary, not in the database after a
// restart with room (a device resends what was refused, which would be
// stored twice), and the store's health says why meanwhile.
func TestRefusedReadingsLeaveNoTrace(t *testing.T) {
	boltOnly(t)
	if !isolated(t) {
		return
	}
	dir := t.TempDir()
	restore := limitFileSize(t, 1<<20)
	defer restore()
	s, err := testOpen(t, dir, Options{MaxSizeBytes: 256 << 10, MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	var refused error
	for i := 0; i < 100000 && refused == nil; i++ {
		ack := make(chan error, 1)
		r := meter.Reading{Meter: "full", Time: t0.Add(time.Duration(i) * time.Second), PowerW: float64(i)}
		if err := s.Append(r, func(err error) { ack <- err }); err != nil {
			t.Fatal(err)
		}
		if refused = <-ack; refused == nil {
			acked++
		}
	}
	if !errors.Is(refused, ErrNotStored) {
		t.Fatalf("after %d readings: %v, want ErrNotStored", acked, refused)
	}
	if err := s.Health(); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Health while refusing = %v", err)
	}
	check := func(s *Store, when string) {
		t.Helper()
		recs := allRecords(t, s, "full")
		if len(recs) != acked {
			t.Errorf("%s: %d readings, want the %d acknowledged", when, len(recs), acked)
		}
		for i, r := range recs {
			if int(r.PowerW) != i {
				t.Fatalf("%s: reading %d has %v W, want %d", when, i, r.PowerW, i)
			}
		}
		if m, _ := s.Meter("full"); m.Readings != uint64(acked) {
			t.Errorf("%s: the summary counts %d readings, want %d", when, m.Readings, acked)
		}
		if err := s.CheckRollups("full"); err != nil && when != "while refusing" {
			t.Errorf("%s: %v", when, err)
		}
	}
	check(s, "while refusing")
	if err := s.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	restore()
	s = openTest(t, dir)
	check(s, "after a restart with room")
	if err := s.Health(); err != nil {
		t.Errorf("Health with room = %v", err)
	}
}

// limitFileSize limits the size of the files this process writes to max
// bytes (a write past it fails with EFBIG, as on a full disk) until the
// returned function, or the test's end, restores the limit. The limit is
// the process's: nothing else in it may write files meanwhile.
func limitFileSize(t *testing.T, max uint64) (restore func()) {
	t.Helper()
	if os.Getenv(isolatedEnv) != t.Name() {
		t.Fatal("limitFileSize limits the whole process: call isolated first")
	}
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: max, Max: was.Max}); err != nil {
		t.Skip("cannot limit file sizes here:", err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

// held is a transaction of the writer held at a point of crashHook.
type held struct {
	// at is the store's Options.crashAt.
	at                func(string)
	armed             atomic.Bool
	entered, released chan struct{}
	once              sync.Once
	// awaited is closed when, once the transaction is held, the writer
	// waits for it (a checkpoint beside the writer).
	awaited   chan struct{}
	awaitOnce sync.Once
}

// holdAt makes the first transaction of the writer to reach point (see
// crashHook) once arm is called wait there: entered is closed once it
// does, and release lets it go on. Set before the store opens (the hook is
// read by the writer); release before closing the store.
func holdAt(t *testing.T, point string) *held {
	h := &held{entered: make(chan struct{}), released: make(chan struct{}), awaited: make(chan struct{})}
	h.at = func(at string) {
		if at == "await-checkpoint" {
			select {
			case <-h.entered:
				h.awaitOnce.Do(func() { close(h.awaited) })
			default:
			}
		}
		if at == point && h.armed.CompareAndSwap(true, false) {
			close(h.entered)
			<-h.released
		}
	}
	return h
}

func (h *held) arm()     { h.armed.Store(true) }
func (h *held) release() { h.once.Do(func() { close(h.released) }) }

// openHeld opens a store in a new directory with a transaction of its
// writer to be held at point (see holdAt), released and closed at the
// test's end.
func openHeld(t *testing.T, point string, opts Options) (*Store, string, *held) {
	t.Helper()
	hold := holdAt(t, point)
	dir := t.TempDir()
	opts.crashAt = hold.at
	s, err := testOpen(t, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hold.release()
		s.Close()
	})
	return s, dir, hold
}

// isolatedEnv names the test a child process runs for isolated.
const isolatedEnv = "VATIO_STORE_ISOLATED"

// isolated runs the calling test in a process of its own, for a test that
// changes what belongs to the whole process (its file size limit), so that
// no other test, and no other store, is touched. In that child it returns
// true and the test goes on; in the parent it runs the child, passes on
// its failure or skip, and returns false.
func isolated(t *testing.T) bool {
	t.Helper()
	if os.Getenv(isolatedEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), isolatedEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("in a process of its own: %v\n%s", err, out)
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name())):
		t.Skipf("skipped in a process of its own:\n%s", out)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name())):
		t.Fatalf("in a process of its own, the test did not run:\n%s", out)
	}
	return false
}
