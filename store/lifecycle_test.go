package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

const day = 24 * time.Hour

var (
	jan = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	feb = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	apr = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	// lifeNow puts January past 30 days of retention, not February (whose
	// end, March 1, is less than 30 days before it).
	lifeNow = time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)
)

// openRetention opens a store in dir whose retention is applied only by
// the test's ApplyRetention calls (no background loop).
func openRetention(t *testing.T, dir string, r Retention, keep time.Duration) *Store {
	t.Helper()
	s := openTest(t, dir)
	s.retention, s.archiveKeep = r, keep
	return s
}

// every returns readings of meterID every step in [from, to); one in three
// carries an energy counter, which rises 2.5 Wh every 30 s of time, and
// powers vary.
func every(meterID string, from, to time.Time, step time.Duration) []meter.Reading {
	var rs []meter.Reading
	i := 0
	for ts := from; ts.Before(to); ts = ts.Add(step) {
		r := meter.Reading{Meter: meterID, Time: ts, PowerW: float64(500+i%1777) + 0.25, Stamped: true}
		if i%3 == 0 {
			r.EnergyWh, r.HasEnergy = 1e6+float64((ts.Unix()-1577836800)/30)*2.5, true
		}
		rs = append(rs, r)
		i++
	}
	return rs
}

func mustImport(t testing.TB, s *Store, rs []meter.Reading) {
	t.Helper()
	if _, err := s.Import(slices.Clone(rs), nil); err != nil {
		t.Fatal(err)
	}
}

func rangeOf(t *testing.T, s *Store, m string, from, to time.Time) []Record {
	t.Helper()
	recs, _, err := s.Range(m, from, to, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// readArchived reads meter m's archive of month, as either engine stores
// it, back as Vatio's import does.
func readArchived(t *testing.T, s *Store, m string, month time.Time) []meter.Reading {
	t.Helper()
	b := behind(s).archive(t, m, month)
	if b == nil {
		t.Fatalf("%s has no archive of %s", m, month.Format("2006-01"))
	}
	return decodeArchive(t, ArchiveName(m, month), b, m)
}

// decodeArchive decodes archive b, named name, of meter m.
func decodeArchive(t *testing.T, name string, b []byte, m string) []meter.Reading {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not gzip: %v", name, err)
	}
	dec := &meter.Decoder{Topic: "energy/consumption", Limits: meter.DefaultLimits()}
	rs, err := dec.ReadCSV(zr, m, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), nil)
	if err != nil {
		t.Fatalf("ReadCSV(%s): %v", name, err)
	}
	return rs
}

// sameReadings compares readings by time and values.
func sameReadings(t *testing.T, what string, got, want []meter.Reading) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d readings, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.PowerW != w.PowerW || g.HasEnergy != w.HasEnergy || g.EnergyWh != w.EnergyWh {
			t.Fatalf("%s: reading %d = %v (%v %v), want %v (%v %v)", what, i, g, g.HasEnergy, g.EnergyWh, w, w.HasEnergy, w.EnergyWh)
		}
	}
}

func between(rs []meter.Reading, from, to time.Time) []meter.Reading {
	var out []meter.Reading
	for _, r := range rs {
		if !r.Time.Before(from) && r.Time.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// threeMonths stores January to March at one reading a minute, the first
// half of January compressed into blocks, and returns the readings.
func threeMonths(t *testing.T, s *Store, m string) []meter.Reading {
	t.Helper()
	rs := every(m, jan, apr, time.Minute)
	mustImport(t, s, rs)
	if _, err := s.Compress(context.Background(), jan.Add(15*day)); err != nil {
		t.Fatal(err)
	}
	return rs
}

var retain30 = Retention{Raw: 30 * day, Minute: 365 * day}

func TestRetentionArchivesPastMonths(t *testing.T) {
	dir := t.TempDir()
	s := openRetention(t, dir, retain30, 0)
	rs := threeMonths(t, s, "m")
	odd := []meter.Reading{ // values whose text forms are worth checking
		{Meter: "odd", Time: jan.Add(time.Nanosecond), PowerW: 1e6, Stamped: true},
		{Meter: "odd", Time: jan.Add(time.Second + 123456789), PowerW: -2500.125, EnergyWh: 0, HasEnergy: true, Stamped: true},
		{Meter: "odd", Time: jan.Add(time.Minute), PowerW: 0.1, EnergyWh: 9.999999999e12, HasEnergy: true, Stamped: true},
		{Meter: "odd", Time: jan.Add(time.Hour), PowerW: 1e-7, Stamped: true},
		{Meter: "odd", Time: feb.Add(time.Hour), PowerW: 42, Stamped: true},
	}
	mustImport(t, s, odd)
	janN := len(between(rs, jan, feb))
	before, _ := s.Meter("m")
	laterBefore := rangeOf(t, s, "m", feb, apr)
	hoursBefore, _, _ := s.Rollups("m", TierHour, jan, apr, 1<<20)
	minutesBefore, _, _ := s.Rollups("m", TierMinute, jan, feb, 1<<20)

	st, err := s.ApplyRetention(context.Background(), lifeNow)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{Files: 2, Archived: janN + 4, Deleted: janN + 4}); st != want {
		t.Errorf("ApplyRetention = %+v, want %+v", st, want)
	}
	sameReadings(t, "m's January archive", readArchived(t, s, "m", jan), between(rs, jan, feb))
	sameReadings(t, "odd's January archive", readArchived(t, s, "odd", jan), odd[:4])
	for _, month := range []time.Time{feb, feb.AddDate(0, 1, 0)} {
		if behind(s).archive(t, "m", month) != nil {
			t.Errorf("%s archived too", month.Format("2006-01"))
		}
	}
	file := behind(s).archive(t, "m", jan)
	lines := bytes.Split(gunzip(t, file), []byte("\n"))
	if string(lines[0]) != "timestamp,power_w,energy_wh" || string(lines[1]) != "2026-01-01T00:00:00Z,500.25,1.67824e+07" ||
		string(lines[2]) != "2026-01-01T00:01:00Z,501.25," {
		t.Errorf("archive starts %q, want a header then readings", lines[:3])
	}

	if got := rangeOf(t, s, "m", jan, feb); len(got) != 0 {
		t.Errorf("January still has %d readings", len(got))
	}
	if got := rangeOf(t, s, "m", feb, apr); !slices.Equal(got, laterBefore) {
		t.Errorf("February and March changed: %d readings, were %d", len(got), len(laterBefore))
	}
	after, _ := s.Meter("m")
	if after.Readings != before.Readings-uint64(janN) || !after.First.Equal(feb) || !after.Last.Equal(before.Last) || !after.ArchivedBefore.Equal(feb) {
		t.Errorf("meter after retention = %+v, want %d readings from %s to %s, archived before %s", after, before.Readings-uint64(janN), feb, before.Last, feb)
	}
	if o, _ := s.Meter("odd"); o.Readings != 1 || !o.First.Equal(feb.Add(time.Hour)) {
		t.Errorf("odd after retention = %+v, want its February reading only", o)
	}
	hours, _, _ := s.Rollups("m", TierHour, jan, apr, 1<<20)
	minutes, _, _ := s.Rollups("m", TierMinute, jan, feb, 1<<20)
	if !slices.Equal(hours, hoursBefore) || !slices.Equal(minutes, minutesBefore) {
		t.Errorf("rollups changed: %d hours (were %d), %d January minutes (were %d)", len(hours), len(hoursBefore), len(minutes), len(minutesBefore))
	}
	for _, m := range []string{"m", "odd"} {
		if err := s.CheckRollups(m); err != nil {
			t.Error(err)
		}
	}

	// Again: nothing to do, the archive is left as it is.
	if st, err := s.ApplyRetention(context.Background(), lifeNow); err != nil || st != (Stats{}) {
		t.Errorf("second ApplyRetention = %+v, %v; want nothing done", st, err)
	}
	if !bytes.Equal(behind(s).archive(t, "m", jan), file) {
		t.Error("the second run changed the archive")
	}
	// The state survives a reopen.
	s.Close()
	s = openRetention(t, dir, retain30, 0)
	if m, _ := s.Meter("m"); !reflect.DeepEqual(m, after) {
		t.Errorf("after reopening, meter = %+v, want %+v", m, after)
	}
	if err := s.CheckRollups("m"); err != nil {
		t.Error(err)
	}
}

// gunzip decompresses an archive.
func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLateReadingsIntoArchivedMonths: readings arriving for a month already
// archived and deleted are kept, change no rollup of it, and are merged into
// its archive by the next run; readings just after the boundary rebuild
// rollups after it only.
func TestLateReadingsIntoArchivedMonths(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	rs := threeMonths(t, s, "m")
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err != nil {
		t.Fatal(err)
	}
	minutes, _, _ := s.Rollups("m", TierMinute, jan, feb, 1<<20)
	hours, _, _ := s.Rollups("m", TierHour, jan, feb, 1<<20)
	before, _ := s.Meter("m")

	lateJan := []meter.Reading{
		{Meter: "m", Time: jan.Add(3*day + 10*time.Second), PowerW: 1234, Stamped: true},       // between archived readings
		{Meter: "m", Time: jan.Add(3 * day), PowerW: 4321, Stamped: true},                      // replaces an archived one
		{Meter: "m", Time: feb.Add(-30 * time.Second), PowerW: 99, Stamped: true},              // just before the boundary
		{Meter: "m", Time: feb.Add(30 * time.Second), PowerW: 3000, Stamped: true},             // just after it
		{Meter: "m", Time: feb.Add(20*time.Minute + 30*time.Second), PowerW: 0, Stamped: true}, // well after it
	}
	mustAppend(t, s, lateJan...)
	if got, _, _ := s.Rollups("m", TierMinute, jan, feb, 1<<20); !slices.Equal(got, minutes) {
		t.Error("late readings into an archived month changed its minute rollups")
	}
	if got, _, _ := s.Rollups("m", TierHour, jan, feb, 1<<20); !slices.Equal(got, hours) {
		t.Error("late readings into an archived month changed its hour rollups")
	}
	m, _ := s.Meter("m")
	if m.Readings != before.Readings+5 || !m.First.Equal(lateJan[1].Time) {
		t.Errorf("meter = %+v, want 5 more readings, the first at %s", m, lateJan[1].Time)
	}
	if err := s.CheckRollups("m"); err != nil {
		t.Error(err)
	}

	st, err := s.ApplyRetention(context.Background(), lifeNow)
	if err != nil || st.Files != 1 || st.Archived != 3 || st.Deleted != 3 {
		t.Errorf("ApplyRetention = %+v, %v; want the 3 January readings archived", st, err)
	}
	want := between(rs, jan, feb)
	for _, r := range lateJan[:3] {
		i, found := slices.BinarySearchFunc(want, r.Time, func(r meter.Reading, ts time.Time) int { return r.Time.Compare(ts) })
		if found {
			want[i] = r
		} else {
			want = slices.Insert(want, i, r)
		}
	}
	sameReadings(t, "archive with the late readings", readArchived(t, s, "m", jan), want)
	if got := rangeOf(t, s, "m", jan, feb); len(got) != 0 {
		t.Errorf("January has %d readings left", len(got))
	}
	if m, _ := s.Meter("m"); m.Readings != before.Readings+2 || !m.First.Equal(feb) {
		t.Errorf("meter = %+v, want %d readings from %s", m, before.Readings+2, feb)
	}
	if err := s.CheckRollups("m"); err != nil {
		t.Error(err)
	}
}

// TestRetentionOfAWholeMeter: a meter whose readings are all archived is
// kept, with no readings and its rollups, and takes new readings.
func TestRetentionOfAWholeMeter(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	mustImport(t, s, every("gone", jan, jan.Add(2*day), time.Minute))
	last, _ := s.Meter("gone")
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err != nil {
		t.Fatal(err)
	}
	m, err := s.Meter("gone")
	if err != nil || m.Readings != 0 || !m.First.Equal(last.Last) || !m.Last.Equal(last.Last) || m.LastPowerW != last.LastPowerW {
		t.Errorf("Meter(gone) = %+v, %v; want 0 readings, First and Last at %s", m, err, last.Last)
	}
	if days, _, _ := s.Rollups("gone", TierDay, jan, feb, 10); len(days) != 2 {
		t.Errorf("%d daily rollups, want 2", len(days))
	}
	if err := s.CheckRollups("gone"); err != nil {
		t.Error(err)
	}
	if l, err := s.Latest("gone", 10); err != nil || len(l) != 0 {
		t.Errorf("Latest(gone) = %v, %v", l, err)
	}
	back := meter.Reading{Meter: "gone", Time: lifeNow, PowerW: 5, Stamped: true}
	mustAppend(t, s, back)
	if m, _ := s.Meter("gone"); m.Readings != 1 || !m.First.Equal(lifeNow) || !m.Last.Equal(lifeNow) {
		t.Errorf("after a new reading, Meter(gone) = %+v", m)
	}
	if err := s.CheckRollups("gone"); err != nil {
		t.Error(err)
	}
}

func TestRetentionOfRollups(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mustImport(t, s, every("r", start, apr, 20*time.Minute))
	// Before any raw data is archived, no rollup goes.
	s.retention = Retention{Minute: 365 * day}
	if st, err := s.ApplyRetention(context.Background(), lifeNow); err != nil || st != (Stats{}) {
		t.Errorf("rollup retention without archived raw data = %+v, %v; want nothing done", st, err)
	}
	s.retention = retain30
	minutes, _, _ := s.Rollups("r", TierMinute, start, apr, 1<<20)
	st, err := s.ApplyRetention(context.Background(), lifeNow)
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Date(2025, 3, 5, 0, 0, 0, 0, time.UTC) // the day of lifeNow less 365 days
	kept, _, _ := s.Rollups("r", TierMinute, start, apr, 1<<20)
	if len(kept) == 0 || !kept[0].Start.Equal(cut) || st.RollupsDeleted != len(minutes)-len(kept) || st.Files != 13 {
		t.Errorf("after retention, %d minute rollups from %v (%+v), want them from %s", len(kept), kept[0].Start, st, cut)
	}
	if i := slices.IndexFunc(minutes, func(b Bucket) bool { return b.Start.Equal(cut) }); !slices.Equal(minutes[i:], kept) {
		t.Error("the minute rollups kept changed")
	}
	hours, _, _ := s.Rollups("r", TierHour, start, apr, 1<<20)
	if !hours[0].Start.Equal(start) {
		t.Errorf("hourly rollups start at %s, want %s (kept forever)", hours[0].Start, start)
	}
	if err := s.CheckRollups("r"); err != nil {
		t.Error(err)
	}

	// Hours past 400 days go, whole days before it.
	s.retention.Hourly = 400 * day
	from := time.Date(2025, 1, 29, 0, 0, 0, 0, time.UTC)
	gone := slices.IndexFunc(hours, func(b Bucket) bool { return b.Start.Equal(from) })
	st, err = s.ApplyRetention(context.Background(), lifeNow)
	left, _, _ := s.Rollups("r", TierHour, start, apr, 1<<20)
	if err != nil || st.RollupsDeleted != gone || !left[0].Start.Equal(from) || !slices.Equal(left, hours[gone:]) {
		t.Errorf("hourly retention: %+v, %v, hours from %s; want the %d before %s deleted", st, err, left[0].Start, gone, from)
	}
}

// TestRetentionCancelled: a run cancelled (the store closing) leaves the
// database and the archives as they were, but for directories.
func TestRetentionCancelled(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	threeMonths(t, s, "m")
	before, _ := s.Meter("m")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.ApplyRetention(ctx, lifeNow); !errors.Is(err, context.Canceled) {
		t.Errorf("ApplyRetention cancelled = %v, want context.Canceled", err)
	}
	if m, _ := s.Meter("m"); !reflect.DeepEqual(m, before) {
		t.Errorf("meter = %+v, was %+v", m, before)
	}
	entries, _ := os.ReadDir(filepath.Join(s.archiveDir, "m"))
	if len(entries) != 0 {
		t.Errorf("archive directory holds %v", entries)
	}
}

// TestRetentionWhileIngesting applies retention while readings, some late
// into the month being archived, keep coming: every reading ends up once,
// in the archive or in the database.
func TestRetentionWhileIngesting(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	behind(s).retireInParts(5000)
	all := threeMonths(t, s, "m")
	var late []meter.Reading
	for i := range 3000 { // at half minutes, between the stored readings
		ts := jan.Add(time.Duration(i*17%(59*24*60))*time.Minute + 30*time.Second)
		late = append(late, meter.Reading{Meter: "m", Time: ts, PowerW: float64(i), Stamped: true})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, r := range late {
			if err := s.Append(r, nil); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 49 { // commits spread over the runs
				s.Flush()
			}
		}
	}()
	var runs []Stats
	for ingesting := true; ingesting; {
		select {
		case <-done:
			ingesting = false
		default:
		}
		st, err := s.ApplyRetention(context.Background(), lifeNow)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, st)
	}
	var busy []Stats
	for _, st := range runs {
		if st != (Stats{}) {
			busy = append(busy, st)
		}
	}
	t.Logf("%d runs while ingesting; those that did something: %+v", len(runs), busy)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(all), late...)
	slices.SortFunc(want, func(a, b meter.Reading) int { return a.Time.Compare(b.Time) })
	got := readArchived(t, s, "m", jan)
	for _, r := range rangeOf(t, s, "m", jan, apr) {
		got = append(got, meter.Reading{Meter: "m", Time: r.Time, PowerW: r.PowerW, EnergyWh: r.EnergyWh, HasEnergy: r.HasEnergy, Stamped: true})
	}
	sameReadings(t, "archive and database", got, want)
	if m, _ := s.Meter("m"); m.Readings != uint64(len(want)-len(between(want, jan, feb))) {
		t.Errorf("Readings = %d, want %d", m.Readings, len(want)-len(between(want, jan, feb)))
	}
	if err := s.CheckRollups("m"); err != nil {
		t.Error(err)
	}
}

// TestArchiveKeepRemovesOldArchives: archives go once the end of their
// month is ArchiveKeep old, wherever the engine keeps them.
func TestArchiveKeepRemovesOldArchives(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	mustImport(t, s, every("m", jan, apr, time.Hour))
	for _, now := range []time.Time{lifeNow, lifeNow.AddDate(0, 1, 0)} { // January, then February
		if st, err := s.ApplyRetention(context.Background(), now); err != nil || st.Files != 1 {
			t.Fatalf("ApplyRetention(%s) = %+v, %v; want a month archived", now.Format(time.DateOnly), st, err)
		}
	}
	now := lifeNow.AddDate(0, 1, 0)
	s.archiveKeep = now.Sub(feb) - time.Hour // January's month ended more than that ago, February's less
	st, err := s.ApplyRetention(context.Background(), now)
	if err != nil || st != (Stats{ArchivesRemoved: 1}) {
		t.Errorf("ApplyRetention with ArchiveKeep = %+v, %v; want one archive removed", st, err)
	}
	if behind(s).archive(t, "m", jan) != nil || behind(s).archive(t, "m", feb) == nil {
		t.Error("want January's archive removed, February's kept")
	}
	if got := exportAll(t, s, "m"); len(got) != len(every("m", feb, apr, time.Hour)) {
		t.Errorf("export after January's archive went: %d readings, want February's and March's", len(got))
	}
}

// TestDeleteMeterErasesItsArchives: a meter's archives go with it, its
// erasure is recorded, and a reading afterwards starts it anew.
func TestDeleteMeterErasesItsArchives(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	rs := every("m", jan, apr, time.Hour)
	mustImport(t, s, rs)
	mustImport(t, s, every("keep", jan, apr, time.Hour))
	if st, err := s.ApplyRetention(context.Background(), lifeNow); err != nil || st.Files != 2 {
		t.Fatalf("ApplyRetention = %+v, %v; want January archived", st, err)
	}
	before := time.Now().UTC()
	erased, err := s.DeleteMeter("m")
	if err != nil || erased.Readings != uint64(len(rs)-len(between(rs, jan, feb))) {
		t.Fatalf("DeleteMeter = %+v, %v; want the %d readings left in the database", erased, err, len(rs)-len(between(rs, jan, feb)))
	}
	if behind(s).archive(t, "m", jan) != nil {
		t.Error("m's archive is still there")
	}
	if left := behind(s).leftovers(t, "m"); len(left) > 0 {
		t.Errorf("still holding m: %v", left)
	}
	if err := s.Export(context.Background(), "m", func(Record) error { return nil }); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("export of the erased meter: %v", err)
	}
	tombs, err := s.Docs(ErasedKind)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, string(tombs["m"]))
	if err != nil || at.Before(before.Add(-time.Second)) || len(tombs) != 1 {
		t.Errorf("erasure records = %q (%v), want m's, erased now", tombs, err)
	}
	// The other meter, archive and all, is untouched.
	if got := exportAll(t, s, "keep"); len(got) != len(rs) || behind(s).archive(t, "keep", jan) == nil {
		t.Errorf("the other meter's export: %d readings, want %d", len(got), len(rs))
	}
	mustAppend(t, s, meter.Reading{Meter: "m", Time: apr, PowerW: 9, Stamped: true})
	if m, err := s.Meter("m"); err != nil || m.Readings != 1 || !m.First.Equal(apr) || !m.ArchivedBefore.IsZero() {
		t.Errorf("m anew = %+v, %v; want one reading and no archive boundary", m, err)
	}
	if err := s.CheckRollups("m"); err != nil {
		t.Error(err)
	}
}
