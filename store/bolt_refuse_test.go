package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUndoAfterMergeKeepsTheFrozenHead: a checkpoint of a full head runs
// beside the writer (its transaction held open here, as a slow disk does),
// then the disk fills: the log cannot take the next reading, and the
// frozen head's checkpoint fails too, and its failure merges the frozen
// head back in front of the live one while frameFailed handles the
// reading; the undo of the refused reading must take that reading out and
// nothing else (it once cut the merged head back to the live one's
// length). Every reading acknowledged before it
// stays: in queries, in the meter's summary, and after a checkpoint and a
// restart with room again.
func TestUndoAfterMergeKeepsTheFrozenHead(t *testing.T) {
	boltOnly(t)
	if !isolated(t) {
		return
	}
	s, dir, hold := openHeld(t, "checkpoint-tx", Options{HeadMaxBytes: 64 << 10, CheckpointInterval: time.Hour})
	hold.arm()
	const n = 1100 // past one head's bound (about 1,000 readings)
	for i := range n {
		mustAppend(t, s, reading("a", i, float64(i)))
	}
	select {
	case <-hold.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the checkpoint of the full head did not start")
	}
	// The disk fills: no file of this process grows past 16 KiB, the log's
	// current segment (written past it) and the database's new pages alike.
	restore := limitFileSize(t, 16<<10)
	refused := make(chan error, 1)
	if err := s.Append(reading("a", n, 1), func(err error) { refused <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hold.awaited: // the writer waits for the running checkpoint
	case <-time.After(20 * time.Second):
		t.Fatal("the writer did not wait for the running checkpoint")
	}
	hold.release()
	select {
	case err := <-refused:
		if !errors.Is(err, ErrNotStored) {
			t.Fatalf("the reading with no room for it: %v, want ErrNotStored (setup)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reading with no room was not answered")
	}
	check := func(s *Store, when string) {
		t.Helper()
		recs := allRecords(t, s, "a")
		if len(recs) != n {
			t.Errorf("%s: %d readings, want the %d acknowledged", when, len(recs), n)
		}
		if m, _ := s.Meter("a"); m.Readings != uint64(len(recs)) {
			t.Errorf("%s: the summary counts %d readings, %d are stored", when, m.Readings, len(recs))
		}
		if err := s.CheckRollups("a"); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	check(s, "while refusing")
	restore()
	if err := s.Checkpoint(); err != nil {
		t.Fatalf("checkpoint with room again: %v", err)
	}
	check(s, "after a checkpoint with room")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	check(s, "after a restart")
}

// snapshotDir copies the files of a data directory (the database and the log)
// as they are now, what a SIGKILL leaves: the page cache has every write.
func snapshotDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		return copyFile(p, dst)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRefusedFrameSplitLeavesNoRecordsInTheLog: a group of readings whose
// frame is larger than a quarter of a segment is written as several frames
// (see walWriter.append). When the disk fills after the first of them went
// into the log, and the checkpoint fails too, the whole group is refused
// and undone, and the log carries on at the group's first LSN in a new
// segment. The frames already written must not come back: after a
// SIGKILL, the refused readings are not replayed (their senders resend
// them), and the readings acknowledged after them, in the new segment, are.
func TestRefusedFrameSplitLeavesNoRecordsInTheLog(t *testing.T) {
	boltOnly(t)
	if !isolated(t) {
		return
	}
	// Segments of 64 KiB: a frame past 16 KiB is split.
	s, dir, hold := openHeld(t, "checkpoint-tx", Options{CheckpointInterval: time.Hour, segmentBytes: 64 << 10})
	const pre = 10
	for i := range pre {
		mustAppend(t, s, reading("a", i, float64(i)))
	}
	// Hold the writer in a checkpoint while a large group queues up.
	hold.arm()
	cpDone := make(chan error, 1)
	go func() { cpDone <- s.Checkpoint() }()
	select {
	case <-hold.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the checkpoint did not start")
	}
	const group = 2000
	answers := make(chan error, group)
	for i := pre; i < pre+group; i++ {
		if err := s.Append(reading("a", i, float64(i)), func(err error) { answers <- err }); err != nil {
			t.Fatal(err)
		}
	}
	// The disk fills: no file grows past 24 KiB (the group's frame is
	// about 40 KiB, its first parts fit).
	restore := limitFileSize(t, 24<<10)
	hold.release()
	<-cpDone
	notStored := 0
	for range group {
		select {
		case err := <-answers:
			if errors.Is(err, ErrNotStored) {
				notStored++
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the group was not answered")
		}
	}
	if notStored != group {
		t.Fatalf("%d of the group's %d readings refused with ErrNotStored, want all (setup)", notStored, group)
	}
	restore()
	// Room again: the next readings go into a new segment and are
	// acknowledged once durable.
	const after = 100
	for i := range after {
		mustAppend(t, s, reading("a", 5000+i, float64(5000+i)))
	}
	want := pre + after
	if recs := allRecords(t, s, "a"); len(recs) != want {
		t.Fatalf("before the kill: %d readings, want %d", len(recs), want)
	}
	// SIGKILL now: what the files hold is what a restart finds.
	crashed := filepath.Join(t.TempDir(), "crashed")
	snapshotDir(t, dir, crashed)
	c := openTest(t, crashed)
	recs := allRecords(t, c, "a")
	refusedBack, acked := 0, 0
	for _, r := range recs {
		switch v := int(r.PowerW); {
		case v >= pre && v < pre+group:
			refusedBack++
		case v >= 5000:
			acked++
		}
	}
	if refusedBack > 0 {
		t.Errorf("after a SIGKILL, %d refused readings are stored (their senders resend them: stored twice)", refusedBack)
	}
	if acked != after {
		t.Errorf("after a SIGKILL, %d of the %d readings acknowledged after the refusal are stored", acked, after)
	}
	if m, _ := c.Meter("a"); m.Readings != uint64(len(recs)) {
		t.Errorf("after a SIGKILL, the summary counts %d readings, %d are stored", m.Readings, len(recs))
	}
}

// fillLog appends n readings of meter m from second from on, acknowledged,
// so that the log's current segment is written past n*40 bytes or so.
func fillLog(t *testing.T, s *Store, m string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append(reading(m, i, float64(i)), nil); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestRefusedReadingIsNeverShown: a reading that neither the log nor the
// database can take is refused "as if never received"; readers must not
// see it meanwhile either. frameFailed undoes it from the head at once,
// then tries to store it in a database transaction (held open here, as a
// slow disk holds it): a query, the meter's summary or Latest made
// meanwhile must not show it (once they did: its sender resent it, and the
// dashboard had shown it already).
func TestRefusedReadingIsNeverShown(t *testing.T) {
	boltOnly(t)
	if !isolated(t) {
		return
	}
	dir := t.TempDir()
	hold := holdAt(t, "commit-tx")
	s, err := testOpen(t, dir, Options{CheckpointInterval: time.Hour, crashAt: hold.at})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	fillLog(t, s, "a", 0, n)
	t.Cleanup(func() {
		hold.release()
		s.Close()
	})
	restore := limitFileSize(t, 16<<10) // the segment is written past it, the database grows past it
	defer restore()
	hold.arm()
	answer := make(chan error, 1)
	if err := s.Append(reading("a", n, 12345), func(err error) { answer <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hold.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("frameFailed's transaction did not start")
	}
	recs := allRecords(t, s, "a")
	m, _ := s.Meter("a")
	latest, _ := s.Latest("a", 1)
	hold.release()
	if err := <-answer; !errors.Is(err, ErrNotStored) {
		t.Fatalf("the reading with no room: %v, want ErrNotStored (setup)", err)
	}
	if len(recs) != n {
		t.Errorf("while the store was deciding, a query showed %d readings; the %d acknowledged and not the refused one", len(recs), n)
	}
	if m.Readings != n {
		t.Errorf("while the store was deciding, the summary counted %d readings, want %d", m.Readings, n)
	}
	if len(latest) > 0 && latest[0].PowerW == 12345 {
		t.Errorf("while the store was deciding, Latest showed the refused reading: %+v", latest[0])
	}
}

// TestHealthRecoversWithRoomAgain: once readings were refused (neither the
// log nor the database could take a group, which was undone, leaving the
// head empty) and the disk has room again, /healthz must stop answering 503
// within a few seconds, with no reading coming to try (it once stayed
// "refusing" until the next reading, and a probe restarting the service on
// 503 restarted it for nothing).
func TestHealthRecoversWithRoomAgain(t *testing.T) {
	boltOnly(t)
	if !isolated(t) {
		return
	}
	dir := t.TempDir()
	s, err := testOpen(t, dir, Options{CheckpointInterval: time.Hour, FlushInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fillLog(t, s, "a", 0, 1000)
	if err := s.Checkpoint(); err != nil { // the head is empty, the segment written past 16 KiB
		t.Fatal(err)
	}
	restore := limitFileSize(t, 16<<10)
	answer := make(chan error, 1)
	if err := s.Append(reading("a", 1000, 1), func(err error) { answer <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-answer; !errors.Is(err, ErrNotStored) {
		t.Fatalf("the reading with no room: %v, want ErrNotStored (setup)", err)
	}
	if err := s.Health(); err == nil {
		t.Fatal("Health while refusing is nil (setup)")
	}
	restore()
	// The probe tries a new segment again segmentRetry after the last
	// failed (the refusal may have come from one).
	deadline := time.Now().Add(segmentRetry + 5*time.Second)
	for s.Health() != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Health(); err != nil {
		t.Errorf("%s after the disk has room again, with no reading since: Health = %v", segmentRetry+5*time.Second, err)
	}
	// A reading now is taken: the refusal was stale.
	ok := make(chan error, 1)
	if err := s.Append(reading("a", 1001, 1), func(err error) { ok <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-ok; err != nil {
		t.Errorf("a reading with room again: %v", err)
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health after a reading was taken = %v", err)
	}
}
