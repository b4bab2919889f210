package store

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vatio-energy/vatio/internal/meter"
)

// walReadings returns n readings of a few meters, some with a counter or
// a power factor, some stamped on receipt.
func walReadings(rng *rand.Rand, n int, nowNs int64) []meter.Reading {
	rs := make([]meter.Reading, n)
	for i := range rs {
		r := meter.Reading{Meter: fmt.Sprintf("m%d", rng.IntN(5)), Source: "tasmota",
			Time: time.Unix(0, nowNs-rng.Int64N(int64(time.Hour))).UTC(), PowerW: rng.Float64() * 5000,
			Stamped: rng.IntN(2) == 0}
		if rng.IntN(3) == 0 {
			r.EnergyWh, r.HasEnergy = rng.Float64()*1e6, true
		}
		if rng.IntN(4) == 0 {
			r.PowerFactor, r.HasPF = rng.Float64(), true
		}
		if !r.Stamped && rng.IntN(2) == 0 {
			r.Delivery = meter.Delivery{Key: rng.Uint64() | 1}
		}
		rs[i] = r
	}
	return rs
}

// TestTornLogRecoversEveryCompleteRecord writes a log of frames, then
// tears it at random bytes, as a write cut short by a power loss leaves
// it (zeros where the pages never reached the disk, or garbage): the replay
// recovers every frame written whole before the tear, and nothing after.
func TestTornLogRecoversEveryCompleteRecord(t *testing.T) {
	dir := t.TempDir()
	const epoch = 7
	w, err := openWALWriter(dir, epoch, 1, walSegmentSize, false)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	nowNs := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	var frames [][]meter.Reading
	var ends []int64
	lsn := uint64(1)
	for range 60 {
		rs := walReadings(rng, 1+rng.IntN(30), nowNs)
		if err := w.append(lsn, nowNs, rs); err != nil {
			t.Fatal(err)
		}
		lsn += uint64(len(rs))
		frames = append(frames, rs)
		ends = append(ends, w.off)
		nowNs += int64(time.Second)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, segmentName(1))
	whole, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// The whole log first.
	if got := replayAll(t, dir, epoch, 0); !equalReadings(got, flatten(frames)) {
		t.Fatalf("the whole log replays %d readings, want %d", len(got), len(flatten(frames)))
	}
	// Only the records after a checkpoint's position.
	if got := replayAll(t, dir, epoch, 10); !equalReadings(got, flatten(frames)[10:]) {
		t.Fatalf("past LSN 10 the log replays %d readings, want %d", len(got), len(flatten(frames))-10)
	}
	// Another epoch's log is not this database's.
	if got := replayAll(t, dir, epoch+1, 0); len(got) != 0 {
		t.Fatalf("another epoch replays %d readings", len(got))
	}
	end := ends[len(ends)-1]
	// The segment is preallocated (4 MiB) and its zeros past end are
	// read as the end of the log; trials but the first two keep 64 KiB of
	// them, not all: 300 copies of the whole segment took a minute of CI.
	full := whole
	whole = whole[:min(len(whole), int(end)+64<<10)]
	for trial := range 300 {
		cut := rng.Int64N(end + 1)
		b := append([]byte(nil), whole...)
		if trial < 2 {
			b = append([]byte(nil), full...) // as preallocated, both ways of tearing
		}
		for i := cut; i < end; i++ {
			if trial%2 == 0 {
				b[i] = 0
			} else {
				b[i] = byte(rng.Uint32())
			}
		}
		torn := t.TempDir()
		if err := os.WriteFile(filepath.Join(torn, segmentName(1)), b, 0o600); err != nil {
			t.Fatal(err)
		}
		var want []meter.Reading
		for i, e := range ends {
			if e <= cut {
				want = append(want, frames[i]...)
			}
		}
		if got := replayAll(t, torn, epoch, 0); !equalReadings(got, want) {
			t.Fatalf("torn at byte %d of %d: replayed %d readings, want %d", cut, end, len(got), len(want))
		}
	}
}

// TestDamagedLogKeepsTheSegmentsAfter damages a log of several segments
// in its middle, as a bad page of an SD card or a deleted file would: the
// replay keeps every frame before the damage and every segment after it,
// and reports what it lost, where a torn tail reports nothing.
func TestDamagedLogKeepsTheSegmentsAfter(t *testing.T) {
	dir := t.TempDir()
	const epoch = 7
	const segSize = 16 << 10
	w, err := openWALWriter(dir, epoch, 1, segSize, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.startSegment(1); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	nowNs := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	type written struct {
		rs       []meter.Reading
		seg      uint64 // the first LSN of its segment
		from, to int64  // its bytes there
	}
	var frames []written
	lsn := uint64(1)
	for len(frames) < 40 || w.seg.first == 1 || len(w.old) < 2 {
		rs := walReadings(rng, 1+rng.IntN(30), nowNs)
		if err := w.append(lsn, nowNs, rs); err != nil {
			t.Fatal(err)
		}
		from := w.off - int64(len(w.buf))
		frames = append(frames, written{rs, w.seg.first, from, w.off})
		lsn += uint64(len(rs))
		nowNs += int64(time.Second)
		if err := w.sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	var all []meter.Reading
	for _, f := range frames {
		all = append(all, f.rs...)
	}
	replay := func(dir string) ([]meter.Reading, []walDamage) {
		var got []meter.Reading
		_, damage, err := replayLog(dir, epoch, 0, func(f walFrame) error {
			got = append(got, f.readings...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, damage
	}
	if got, damage := replay(dir); !equalReadings(got, all) || len(damage) != 0 {
		t.Fatalf("the whole log: %d readings (want %d), damage %v", len(got), len(all), damage)
	}
	segs, _, err := listSegments(dir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("%d segments (%v), want 3 or more", len(segs), err)
	}
	copyLog := func() string {
		to := t.TempDir()
		for _, sg := range segs {
			b, err := os.ReadFile(sg.path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(to, filepath.Base(sg.path)), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return to
	}
	// One flipped bit in a frame in the middle of the first segment.
	var victim int
	for i, f := range frames {
		if f.seg == segs[0].first && i > 2 && frames[i+1].seg == segs[0].first {
			victim = i
			break
		}
	}
	damaged := copyLog()
	path := filepath.Join(damaged, filepath.Base(segs[0].path))
	b, _ := os.ReadFile(path)
	b[(frames[victim].from+frames[victim].to)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var want []meter.Reading
	for i, f := range frames {
		if i < victim || f.seg != segs[0].first {
			want = append(want, f.rs...)
		}
	}
	got, damage := replay(damaged)
	if !equalReadings(got, want) {
		t.Errorf("a bit flipped in frame %d: %d readings replayed, want %d (the frames before it and the later segments)", victim, len(got), len(want))
	}
	if len(damage) != 1 || damage[0].offset != int(frames[victim].from) || damage[0].path != path {
		t.Errorf("a bit flipped at byte %d: damage %v", frames[victim].from, damage)
	}
	// The middle segment deleted.
	missing := copyLog()
	if err := os.Remove(filepath.Join(missing, filepath.Base(segs[1].path))); err != nil {
		t.Fatal(err)
	}
	want = want[:0]
	for _, f := range frames {
		if f.seg != segs[1].first {
			want = append(want, f.rs...)
		}
	}
	got, damage = replay(missing)
	if !equalReadings(got, want) {
		t.Errorf("the middle segment deleted: %d readings replayed, want %d", len(got), len(want))
	}
	if len(damage) != 1 || damage[0].offset != -1 || damage[0].from != segs[1].first || damage[0].next != segs[2].first {
		t.Errorf("the middle segment deleted: damage %v", damage)
	}
}

func replayAll(t *testing.T, dir string, epoch, after uint64) []meter.Reading {
	t.Helper()
	var got []meter.Reading
	_, _, err := replayLog(dir, epoch, after, func(f walFrame) error {
		got = append(got, f.readings...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func flatten(frames [][]meter.Reading) []meter.Reading {
	var out []meter.Reading
	for _, f := range frames {
		out = append(out, f...)
	}
	return out
}

func equalReadings(a, b []meter.Reading) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.Time.Equal(y.Time) {
			return false
		}
		x.Time, y.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// FuzzWALFrame feeds the log's frame decoder arbitrary bytes: it never
// panics, and what it decodes encodes back to a frame that decodes the same.
func FuzzWALFrame(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	nowNs := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	for range 4 {
		var names []walName
		f.Add(appendFrame(nil, 1, 1, nowNs, walReadings(rng, 1+rng.IntN(5), nowNs), &names, map[walName]uint64{}))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		var names []walName
		fr, n, err := decodeFrame(b, &names)
		if err != nil {
			if len(names) != 0 {
				t.Fatalf("a refused frame left %d meter entries", len(names))
			}
			return
		}
		if n > len(b) || n < frameHeader {
			t.Fatalf("frame length %d of %d bytes", n, len(b))
		}
		for _, r := range fr.readings {
			if !meter.ValidID(r.Meter) || math.IsNaN(r.PowerW) || math.IsInf(r.PowerW, 0) {
				t.Fatalf("decoded an invalid reading %+v", r)
			}
		}
		var names2 []walName
		again := appendFrame(nil, fr.epoch, fr.first, fr.nowNs, fr.readings, &names2, map[walName]uint64{})
		var names3 []walName
		fr2, _, err := decodeFrame(again, &names3)
		if err != nil || fr2.epoch != fr.epoch || fr2.first != fr.first || fr2.nowNs != fr.nowNs || !equalReadings(fr.readings, fr2.readings) {
			t.Fatalf("round trip: %+v, %v; want %+v", fr2, err, fr)
		}
	})
}

// The crash tests run a child process (this test binary) that appends
// readings of four meters, acknowledged as they become durable, and is
// killed with SIGKILL: by the test at a random instant while it appends,
// or by itself in the middle of its third checkpoint or a later one (its
// transaction written, not committed) or right after it (committed, the
// log not yet freed), once it has acknowledged 1,000 readings. The next
// Open must hold every acknowledged reading exactly once, with meter
// summaries and rollups that agree with them.
func TestCrashChild(t *testing.T) {
	at := os.Getenv("VATIO_STORE_CRASH_AT")
	if at == "" {
		t.Skip("the child process of the crash tests")
	}
	checkpoints := 0
	// acked counts the acknowledgements written out: the acknowledgement
	// goroutine can lag the writer, and the parent needs enough of them to
	// prove anything.
	var acked atomic.Int64
	crash := func(point string) {
		if point == at {
			if checkpoints++; checkpoints >= 3 && acked.Load() >= 1000 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	s, err := Open(os.Getenv("VATIO_STORE_CRASH_DIR"), Options{HeadMaxBytes: 64 << 10, SyncDelay: time.Millisecond, crashAt: crash})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	for i := range 200000 {
		m := fmt.Sprintf("c%d", i%4)
		r := reading(m, i/4, float64(i%977))
		if i%3 == 0 {
			r.EnergyWh, r.HasEnergy = float64(i), true
		}
		err := s.Append(r, func(err error) {
			if err == nil {
				mu.Lock()
				fmt.Fprintf(os.Stdout, "acked %s %d\n", m, i/4)
				mu.Unlock()
				acked.Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
}

func TestKill9KeepsEveryAcknowledgedReadingOnce(t *testing.T) {
	boltOnly(t)
	for _, at := range []string{"append", "checkpoint-tx", "checkpoint-done"} {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
			cmd.Env = append(os.Environ(), "VATIO_STORE_CRASH_AT="+at, "VATIO_STORE_CRASH_DIR="+dir)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			acked := map[string]map[int]bool{}
			total := 0
			killAt := 2000 + rand.IntN(6000)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) != 3 || f[0] != "acked" {
					continue
				}
				sec, _ := strconv.Atoi(f[2])
				if acked[f[1]] == nil {
					acked[f[1]] = map[int]bool{}
				}
				acked[f[1]][sec] = true
				if total++; at == "append" && total == killAt {
					cmd.Process.Kill()
				}
			}
			err = cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("the child was not killed: %v (%d readings acknowledged)", err, total)
			}
			if total < 1000 {
				t.Fatalf("only %d readings acknowledged before the kill: the test proves little", total)
			}
			s := openTest(t, dir)
			for m, want := range acked {
				recs := allRecords(t, s, m)
				seen := map[int]int{}
				for _, r := range recs {
					seen[int(r.Time.Sub(t0)/time.Second)]++
				}
				for sec := range want {
					if seen[sec] != 1 {
						t.Errorf("meter %s: acknowledged reading %d stored %d times, want once", m, sec, seen[sec])
					}
				}
				for sec, n := range seen {
					if n != 1 {
						t.Errorf("meter %s: reading %d stored %d times", m, sec, n)
					}
				}
				if got, _ := s.Meter(m); got.Readings != uint64(len(recs)) {
					t.Errorf("meter %s: summary counts %d readings, %d are stored", m, got.Readings, len(recs))
				}
				if err := s.CheckRollups(m); err != nil {
					t.Error(err)
				}
			}
			t.Logf("%d acknowledged readings, all stored once after SIGKILL at %s", total, at)
		})
	}
}

// A log of several segments left by a crash, replayed and checkpointed at
// the next start, must not hide the new run's frames from the replay after
// a second crash: its segments are freed (renamed), not left to be read
// first.
func TestSecondCrashReplaysTheNewRunsLog(t *testing.T) {
	dir := t.TempDir()
	const seg = 8 << 10
	rng := rand.New(rand.NewPCG(5, 6))
	nowNs := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	w, err := openWALWriter(dir, 0, 1, seg, false)
	if err != nil {
		t.Fatal(err)
	}
	lsn := uint64(1)
	for len(w.old) < 2 {
		rs := walReadings(rng, 20, nowNs)
		if err := w.append(lsn, nowNs, rs); err != nil {
			t.Fatal(err)
		}
		lsn += uint64(len(rs))
	}
	w.close()
	// The next run: the checkpoint after the replay held LSNs up to lsn-1.
	w, err = openWALWriter(dir, 1, lsn, seg, false)
	if err != nil {
		t.Fatal(err)
	}
	want := walReadings(rng, 10, nowNs)
	if err := w.append(lsn, nowNs, want); err != nil {
		t.Fatal(err)
	}
	w.sync()
	if got := replayAll(t, dir, 1, lsn-1); !equalReadings(got, want) {
		t.Fatalf("after the second crash the log replays %d readings, want the %d of the new run", len(got), len(want))
	}
}

// When the checkpoint at start fails, the old log stays in use; a segment
// of it with no record before the next LSN (a crash right after a switch)
// is freed, not kept under the name the new segment takes.
func TestKeptLogNeverNamesTheLiveSegment(t *testing.T) {
	dir := t.TempDir()
	const seg = 8 << 10
	rng := rand.New(rand.NewPCG(9, 10))
	nowNs := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	w, err := openWALWriter(dir, 0, 1, seg, false)
	if err != nil {
		t.Fatal(err)
	}
	first := walReadings(rng, 10, nowNs)
	if err := w.append(1, nowNs, first); err != nil {
		t.Fatal(err)
	}
	w.close()
	if _, err := createZeroed(filepath.Join(dir, segmentName(11)), seg); err != nil { // the switch, then the crash
		t.Fatal(err)
	}
	w, err = openWALWriter(dir, 0, 11, seg, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.old) != 1 || w.old[0].first != 1 {
		t.Fatalf("kept segments %+v, want the one holding records 1 to 10", w.old)
	}
	more := walReadings(rng, 5, nowNs)
	if err := w.append(11, nowNs, more); err != nil {
		t.Fatal(err)
	}
	w.sync()
	w.covered(keepFreeSegments) // a checkpoint holding 1 to 10
	if got := replayAll(t, dir, 0, 10); !equalReadings(got, more) {
		t.Fatalf("past the checkpoint the log replays %d readings, want %d", len(got), len(more))
	}
}

// TestBarriersRunNoTransaction: Flush and Sync with nothing new to write
// run no transaction (and sync the log only when it has something).
func TestBarriersRunNoTransaction(t *testing.T) {
	boltOnly(t)
	s := openTest(t, t.TempDir())
	mustAppend(t, s, reading("b", 0, 1))
	commits := func() uint64 {
		var m dto.Metric
		if err := s.commitSeconds.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleCount()
	}
	before := commits()
	for range 20 {
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, s, reading("b", 1, 2))
	if got := commits(); got != before {
		t.Errorf("20 barriers and a reading ran %d transactions, want none", got-before)
	}
}

// TestDamagedLogIsKeptForAPostMortem opens a store whose log a bad page
// damaged: it replays the frames before the damage and keeps a copy of the
// damaged segment out of the log's way (a clean stop removes the log).
func TestDamagedLogIsKeptForAPostMortem(t *testing.T) {
	boltOnly(t)
	live := t.TempDir()
	s := openTest(t, live)
	for i := range 20 {
		mustAppend(t, s, reading("damaged", i, float64(i)))
	}
	// A crash's image, then a flipped bit in the log's fifth frame or so.
	dir := t.TempDir()
	if err := copyFile(filepath.Join(live, FileName), filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if err := copyDir(filepath.Join(live, walDirName), filepath.Join(dir, walDirName)); err != nil {
		t.Fatal(err)
	}
	segs, _, err := listSegments(filepath.Join(dir, walDirName))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v; want one", segs, err)
	}
	b, err := os.ReadFile(segs[0].path)
	if err != nil {
		t.Fatal(err)
	}
	b[200] ^= 0x10
	if err := os.WriteFile(segs[0].path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if m, err := reopened.Meter("damaged"); err != nil || m.Readings == 0 || m.Readings >= 20 {
		t.Errorf("after the damage: %+v, %v; want the readings before it, fewer than 20", m, err)
	}
	kept, err := os.ReadFile(filepath.Join(dir, "wal-damaged", filepath.Base(segs[0].path)))
	if err != nil || !bytes.Equal(kept, b) {
		t.Errorf("the damaged segment was not kept as it was: %v", err)
	}
}
