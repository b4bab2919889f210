package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// The tests of what retention does on bbolt alone: archive files written
// before the writer deletes their readings in parts, the writer's jobs,
// the file's size, the loop the store runs by itself.

// archivePath returns the path of meter m's archive file of month.
func archivePath(s *Store, m string, month time.Time) string {
	return filepath.Join(s.archiveDir, m, ArchiveName(m, month))
}

// readArchiveFile reads an archive file back as Vatio's import does.
func readArchiveFile(t *testing.T, path, m string) []meter.Reading {
	t.Helper()
	return decodeArchive(t, path, readFile(t, path), m)
}

// TestRetentionCrashBetweenArchiveAndDelete: the archive was written but
// Vatio died before deleting; the next run writes the same file and
// deletes the readings once.
func TestRetentionCrashBetweenArchiveAndDelete(t *testing.T) {
	boltOnly(t)
	s := openRetention(t, t.TempDir(), retain30, 0)
	rs := threeMonths(t, s, "m")
	janN := len(between(rs, jan, feb))
	before, _ := s.Meter("m")
	a, err := boltOf(t, s).archiveMonth(context.Background(), "m", jan)
	if err != nil {
		t.Fatal(err)
	}
	if a.readings != janN || len(a.parts) != 1 {
		t.Fatalf("archiveMonth = %d readings in %d parts, want %d in 1", a.readings, len(a.parts), janN)
	}
	file := readFile(t, a.path)

	st, err := s.ApplyRetention(context.Background(), lifeNow)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 1 || st.Archived != janN || st.Deleted != janN {
		t.Errorf("ApplyRetention = %+v, want %d readings archived and deleted", st, janN)
	}
	if !bytes.Equal(readFile(t, a.path), file) {
		t.Error("the archive written again differs from the first")
	}
	sameReadings(t, "archive", readArchiveFile(t, a.path, "m"), between(rs, jan, feb))
	if m, _ := s.Meter("m"); m.Readings != before.Readings-uint64(janN) {
		t.Errorf("Readings = %d, want %d", m.Readings, before.Readings-uint64(janN))
	}
	// The parts of the first archive are stale now: deleting with them
	// changes nothing.
	if deleted, deferred, err := boltOf(t, s).retireMonth(context.Background(), a); err != nil || deleted != 0 || deferred != 1 {
		t.Errorf("retiring a month twice deleted %d, deferred %d (%v); want 0 and 1", deleted, deferred, err)
	}
	if m, _ := s.Meter("m"); m.Readings != before.Readings-uint64(janN) {
		t.Errorf("Readings after a second retire = %d, want %d", m.Readings, before.Readings-uint64(janN))
	}
}

// TestRetentionReadingChangedMeanwhile: a reading that arrives, or is
// corrected, between the archive and the delete defers the delete; the next
// run archives it too.
func TestRetentionReadingChangedMeanwhile(t *testing.T) {
	boltOnly(t)
	late := meter.Reading{Meter: "m", Time: jan.Add(14*day + 30*time.Second), PowerW: 7777, Stamped: true}
	fix := meter.Reading{Meter: "m", Time: jan.Add(20 * day), PowerW: 8888, Stamped: true}
	for _, tt := range []struct {
		name  string
		r     meter.Reading
		added int
	}{
		{"late reading", late, 1},
		{"corrected reading", fix, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openRetention(t, t.TempDir(), retain30, 0)
			rs := threeMonths(t, s, "m")
			a, err := boltOf(t, s).archiveMonth(context.Background(), "m", jan)
			if err != nil {
				t.Fatal(err)
			}
			mustAppend(t, s, tt.r)
			before, _ := s.Meter("m")
			deleted, deferred, err := boltOf(t, s).retireMonth(context.Background(), a)
			if err != nil || deleted != 0 || deferred != 1 {
				t.Fatalf("retire after a change deleted %d, deferred %d (%v); want 0 and 1", deleted, deferred, err)
			}
			if m, _ := s.Meter("m"); !reflect.DeepEqual(m, before) {
				t.Errorf("a deferred retire changed the meter: %+v, was %+v", m, before)
			}
			want := between(rs, jan, feb)
			i, found := slices.BinarySearchFunc(want, tt.r.Time, func(r meter.Reading, ts time.Time) int { return r.Time.Compare(ts) })
			if found {
				want[i] = tt.r
			} else {
				want = slices.Insert(want, i, tt.r)
			}
			if got := rangeOf(t, s, "m", jan, feb); len(got) != len(want) {
				t.Fatalf("January has %d readings, want %d", len(got), len(want))
			}
			st, err := s.ApplyRetention(context.Background(), lifeNow)
			if err != nil || st.Deleted != len(want) || st.Deferred != 0 {
				t.Fatalf("next ApplyRetention = %+v, %v; want %d deleted", st, err, len(want))
			}
			sameReadings(t, "archive", readArchiveFile(t, a.path, "m"), want)
			if err := s.CheckRollups("m"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestRetentionInParts: a month is deleted in parts of whole hours, a
// transaction each; a reading that changes meanwhile defers its part only.
func TestRetentionInParts(t *testing.T) {
	boltOnly(t)
	s := openRetention(t, t.TempDir(), retain30, 0)
	boltOf(t, s).retireLimit = 10000
	rs := threeMonths(t, s, "m")
	want := between(rs, jan, feb)
	a, err := boltOf(t, s).archiveMonth(context.Background(), "m", jan)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, p := range a.parts {
		n += p.n
		if p.from%int64(time.Hour) != 0 || p.to%int64(time.Hour) != 0 || (i > 0 && p.from != a.parts[i-1].to) {
			t.Errorf("part %d is [%s, %s): not whole hours following the part before", i, time.Unix(0, p.from).UTC(), time.Unix(0, p.to).UTC())
		}
	}
	if len(a.parts) != 5 || n != len(want) || a.parts[0].from != jan.UnixNano() || a.parts[4].to != feb.UnixNano() {
		t.Fatalf("%d parts of %d readings in all, want 5 covering January's %d", len(a.parts), n, len(want))
	}
	late := meter.Reading{Meter: "m", Time: time.Unix(0, a.parts[1].from).Add(90 * time.Second).UTC(), PowerW: 1, Stamped: true}
	mustAppend(t, s, late)
	deleted, deferred, err := boltOf(t, s).retireMonth(context.Background(), a)
	if err != nil || deferred != 1 || deleted != len(want)-a.parts[1].n {
		t.Errorf("retire = %d deleted, %d deferred (%v); want all but the second part's %d, 1 deferred", deleted, deferred, err, a.parts[1].n)
	}
	if got := rangeOf(t, s, "m", jan, feb); len(got) != a.parts[1].n+1 {
		t.Errorf("January has %d readings left, want the second part's %d and the late one", len(got), a.parts[1].n)
	}
	if err := s.CheckRollups("m"); err != nil {
		t.Error(err)
	}
	st, err := s.ApplyRetention(context.Background(), lifeNow)
	if err != nil || st.Deleted != a.parts[1].n+1 || st.Deferred != 0 {
		t.Errorf("next ApplyRetention = %+v, %v; want the %d left deleted", st, err, a.parts[1].n+1)
	}
	i, _ := slices.BinarySearchFunc(want, late.Time, func(r meter.Reading, ts time.Time) int { return r.Time.Compare(ts) })
	sameReadings(t, "archive", readArchiveFile(t, a.path, "m"), slices.Insert(want, i, late))
	if m, _ := s.Meter("m"); m.Readings != uint64(len(rs)-len(want)) || !m.First.Equal(feb) {
		t.Errorf("meter = %+v, want %d readings from %s", m, len(rs)-len(want), feb)
	}
}

// TestPruneIsBounded: a transaction of retention deletes at most its
// limit of rollups, and the job says when more are left.
func TestPruneIsBounded(t *testing.T) {
	boltOnly(t) // runs the writer's jobs
	s := openRetention(t, t.TempDir(), retain30, 0)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mustImport(t, s, every("r", start, apr, 20*time.Minute))
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err != nil {
		t.Fatal(err)
	}
	before, _, _ := s.Rollups("r", TierHour, start, apr, 1<<20)
	job := &pruneJob{limit: 100}
	job.before[TierHour] = lifeNow.Add(-400 * day).UnixNano()
	if err := s.run(entry{prune: job}); err != nil || job.deleted != 100 || !job.more {
		t.Errorf("a bounded prune deleted %d, more %v (%v); want 100, true", job.deleted, job.more, err)
	}
	if hours, _, _ := s.Rollups("r", TierHour, start, apr, 1<<20); !slices.Equal(hours, before[100:]) {
		t.Errorf("after the bounded prune, hours from %s, want the 100 oldest gone", hours[0].Start)
	}
	s.retention.Hourly = 400 * day
	st, err := s.ApplyRetention(context.Background(), lifeNow)
	hours, _, _ := s.Rollups("r", TierHour, start, apr, 1<<20)
	if err != nil || st.RollupsDeleted == 0 || !hours[0].Start.Equal(time.Date(2025, 1, 29, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("hourly retention after it: %+v, %v, hours from %s", st, err, hours[0].Start)
	}
}

func TestArchiveKeep(t *testing.T) {
	boltOnly(t)                                                // reads the archive files or runs the writer's jobs
	s := openRetention(t, t.TempDir(), Retention{}, 2*365*day) // lifeNow less 730 days: 2024-03-05
	old := time.Now().Add(-2 * time.Hour)
	files := map[string]bool{ // name -> kept
		"m/m-2023-12.csv.gz":          false,
		"m/m-2024-02.csv.gz":          false, // ended 2024-03-01
		"m/m-2024-03.csv.gz":          true,  // ends 2024-04-01
		"m/m-2026-01.csv.gz":          true,
		"m/notes.txt":                 true,
		"m/m-2020-1.csv.gz":           true,
		"other/m-2020-01.csv.gz":      true, // not other's
		"m/.m-2026-02.csv.gz.123.tmp": false,
		"m/.m-2026-03.csv.gz.456.tmp": true, // fresh: a run may be writing it
	}
	for name := range files {
		path := filepath.Join(s.archiveDir, name)
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(name, "456") {
			os.Chtimes(path, old, old)
		}
	}
	st, err := s.ApplyRetention(context.Background(), lifeNow)
	if err != nil || st != (Stats{ArchivesRemoved: 2}) {
		t.Errorf("ApplyRetention = %+v, %v; want 2 archives removed", st, err)
	}
	for name, kept := range files {
		_, err := os.Stat(filepath.Join(s.archiveDir, name))
		if kept != (err == nil) {
			t.Errorf("%s: kept %v, want %v", name, err == nil, kept)
		}
	}
}

// TestArchiveRefusesADamagedFile: an archive that cannot be read is not
// replaced, and the month stays in the database.
func TestArchiveRefusesADamagedFile(t *testing.T) {
	boltOnly(t)
	s := openRetention(t, t.TempDir(), retain30, 0)
	mustImport(t, s, every("m", jan, jan.Add(day), time.Minute))
	path := archivePath(s, "m", jan)
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte("not gzip"), 0o600)
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("ApplyRetention over a damaged archive = %v, want an error naming it", err)
	}
	if string(readFile(t, path)) != "not gzip" {
		t.Error("the damaged archive was replaced")
	}
	if m, _ := s.Meter("m"); m.Readings != 1440 {
		t.Errorf("Readings = %d, want 1440 (nothing deleted)", m.Readings)
	}
}

// TestDatabaseSizeIsBoundedUnderRetention ingests ten months at one reading
// a minute, a month at a time, with compression and retention applied
// after each month as they would be live: bbolt reuses the pages retention
// frees, so once retention deletes as much as each month adds, the
// database stops growing. The same year without retention is the control.
func TestDatabaseSizeIsBoundedUnderRetention(t *testing.T) {
	boltOnly(t)
	if testing.Short() {
		t.Skip("ten months of readings, twice")
	}
	year := func(r Retention) (used, file []int64) {
		s := openRetention(t, t.TempDir(), r, 0)
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for month := range 10 {
			from := start.AddDate(0, month, 0)
			to := from.AddDate(0, 1, 0)
			mustImport(t, s, every("m", from, to, time.Minute))
			if _, err := s.Compress(context.Background(), to); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ApplyRetention(context.Background(), to.Add(day)); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(s.Path())
			if err != nil {
				t.Fatal(err)
			}
			used, file = append(used, s.Size()), append(file, fi.Size())
		}
		if err := s.CheckRollups("m"); err != nil {
			t.Error(err)
		}
		return used, file
	}
	used, file := year(Retention{Raw: 30 * day, Minute: 60 * day})
	t.Logf("with retention, after each month: pages in use %v bytes; file %v bytes", used, file)
	steady := used[3]
	for i, size := range used[4:] {
		if size > steady+steady/10 {
			t.Errorf("after month %d the database uses %d bytes, more than 10%% over its %d after month 4", i+5, size, steady)
		}
	}
	if file[9] > file[3] {
		t.Errorf("the file grew from %d bytes after month 4 to %d after month 10", file[3], file[9])
	}
	control, _ := year(Retention{})
	t.Logf("without retention: pages in use %v bytes", control)
	if control[9] < 2*used[9] {
		t.Errorf("without retention the database uses %d bytes after ten months, with it %d: the test measures nothing", control[9], used[9])
	}
}

func TestMeterStateEncoding(t *testing.T) {
	boltOnly(t)
	for _, st := range []meterState{
		{FirstNs: 1, LastNs: 2, LastW: 3, LastWh: 4, LastHasWh: true, SeenNs: 5, Readings: 6, CompactedNs: 7,
			RefWh: 4, RefNs: 2, PendWh: 9, PendNs: 10, PendN: 2, IntervalNs: 11},
		{FirstNs: 1, LastNs: 2, Readings: 6, ArchivedNs: 8},
	} {
		b := st.encode()
		got, err := decodeMeterState(b)
		if err != nil || got != st {
			t.Errorf("decode(encode(%+v)) = %+v, %v", st, got, err)
		}
	}
	// A state written by schema 1 (encodings 1 and 2) takes its newest
	// counter as the counter reference.
	v1 := meterState{FirstNs: 1, LastNs: 2, LastW: 3, LastWh: 4, LastHasWh: true, SeenNs: 5, Readings: 6, CompactedNs: 7}
	b := v1.encode()[:meterStateSize]
	b[0] = 1
	got, err := decodeMeterState(b)
	want := v1
	want.RefWh, want.RefNs = 4, 2
	if err != nil || got != want {
		t.Errorf("decode(version 1) = %+v, %v; want %+v", got, err, want)
	}
	v2 := append(slices.Clone(b), binary.BigEndian.AppendUint64(nil, 8)...)
	v2[0] = 2
	want.ArchivedNs = 8
	if got, err := decodeMeterState(v2); err != nil || got != want {
		t.Errorf("decode(version 2) = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range [][]byte{nil, {3}, b[:20], append(slices.Clone(b), 0)} {
		if _, err := decodeMeterState(bad); err == nil {
			t.Errorf("decode(%x) succeeded", bad)
		}
	}
}

// TestRetentionLoopStopsOnClose: with retention set, Open starts the loop
// and Close ends it.
func TestRetentionLoopStopsOnClose(t *testing.T) {
	boltOnly(t) // a PostgreSQL store leaves retention to the leader
	s, err := Open(t.TempDir(), Options{Retention: retain30, ArchiveKeep: 730 * day})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("m", 0, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err == nil {
		t.Error("ApplyRetention after Close = nil, want an error")
	}
}

// TestArchiveMonthCancelled: writing an archive file stops at once when
// its run is cancelled, and leaves no file.
func TestArchiveMonthCancelled(t *testing.T) {
	boltOnly(t)
	s := openRetention(t, t.TempDir(), retain30, 0)
	threeMonths(t, s, "m")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := boltOf(t, s).archiveMonth(ctx, "m", jan); !errors.Is(err, context.Canceled) {
		t.Errorf("archiveMonth cancelled = %v, want context.Canceled", err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.archiveDir, "m"))
	if len(entries) != 0 {
		t.Errorf("archive directory holds %v", entries)
	}
}
