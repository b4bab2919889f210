package store

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// counter returns a reading of meter m at sec with power w and counter wh.
func counter(m string, sec int, w, wh float64) meter.Reading {
	r := reading(m, sec, w)
	r.EnergyWh, r.HasEnergy = wh, true
	return r
}

// appendAll appends rs and returns each one's commit error.
func appendAll(t *testing.T, s *Store, rs ...meter.Reading) []error {
	t.Helper()
	errs := make([]error, len(rs))
	for i, r := range rs {
		if err := s.Append(r, func(err error) { errs[i] = err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	return errs
}

// totalWh returns the energy of m's day rollups.
func totalWh(t *testing.T, s *Store, m string) float64 {
	t.Helper()
	sum := 0.0
	for _, b := range rollupsOf(t, s, m, TierDay) {
		sum += b.EnergyWh
	}
	return sum
}

func TestCounterBriefDropToZeroIsNotCountedTwice(t *testing.T) {
	s := openTest(t, t.TempDir())
	// 3600 W: 10 Wh every 10 s. The device restarts at 20 s, sends its
	// counter as 0 once, then its restored total.
	errs := appendAll(t, s,
		counter("plug", 0, 3600, 1000), counter("plug", 10, 3600, 1010),
		counter("plug", 20, 3600, 0), counter("plug", 30, 3600, 1030), counter("plug", 40, 3600, 1040))
	for i, err := range errs {
		if err != nil {
			t.Errorf("reading %d: %v", i, err)
		}
	}
	if got := totalWh(t, s, "plug"); !near(got, 40) {
		t.Errorf("energy = %g Wh, want 40 (the drop to 0 and back counted once)", got)
	}
	recs, _, _ := s.Range("plug", t0, t0.Add(time.Hour), 10)
	if len(recs) != 5 || recs[2].HasEnergy || !recs[3].HasEnergy {
		t.Errorf("readings = %+v, want 5 with the 0 stored without its counter", recs)
	}
	if err := s.CheckRollups("plug"); err != nil {
		t.Error(err)
	}
}

func TestCounterResetCountsFromZero(t *testing.T) {
	s := openTest(t, t.TempDir())
	// A counter back to 2 is a reset: 2 Wh, then it counts on.
	mustAppend(t, s, counter("r", 0, 3600, 1000), counter("r", 10, 3600, 1010),
		counter("r", 20, 3600, 2), counter("r", 30, 3600, 12))
	if got := totalWh(t, s, "r"); !near(got, 22) {
		t.Errorf("energy = %g Wh, want 10 + 2 + 10", got)
	}
	// After a long silence, a 0 then the restored total: nothing counted
	// twice. The 0 is stored without its counter, the ramp from it to the
	// next reading integrated from power (0 to 3600 W over 10 s: 5 Wh).
	mustAppend(t, s, counter("z", 0, 0, 100000), counter("z", 700, 0, 0), counter("z", 710, 3600, 100001))
	if got := totalWh(t, s, "z"); !near(got, 5) {
		t.Errorf("energy after a long silence and a 0 = %g Wh, want 5", got)
	}
	// A real reset to 0 counts on from zero: 0, then 10 Wh is a reset (below
	// the reference), integrated from power; then the counter again.
	mustAppend(t, s, counter("z0", 0, 0, 500), counter("z0", 700, 0, 0), counter("z0", 710, 3600, 10), counter("z0", 720, 3600, 20))
	if got := totalWh(t, s, "z0"); !near(got, 15) {
		t.Errorf("energy after a reset to 0 = %g Wh, want 5 + 10", got)
	}
	for _, m := range []string{"r", "z", "z0"} {
		if err := s.CheckRollups(m); err != nil {
			t.Error(err)
		}
	}
}

func TestImplausibleCounterJumpIsRejected(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, counter("p", 0, 1000, 1000))
	limit := 3600.0
	if _, err := s.EditMeter("p", func(m *MeterInfo) error { m.ExpectedMaxW = &limit; return nil }); err != nil {
		t.Fatal(err)
	}
	// 3600 W for a minute (the least time judged) is 60 Wh, with 1.5 times
	// that and 1 Wh allowed: 91 Wh.
	errs := appendAll(t, s, counter("p", 10, 1000, 1090), counter("p", 20, 1000, 1200), counter("p", 30, 1000, 1095))
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("plausible counters refused: %v", errs)
	}
	if meter.ReasonOf(errs[1]) != meter.ReasonImplausibleEnergy {
		t.Errorf("a rise of 110 Wh in 10 s at 3600 W: %v, want implausible_energy", errs[1])
	}
	m, _ := s.Meter("p")
	if m.Readings != 3 {
		t.Errorf("%d readings stored, want 3", m.Readings)
	}
	if got := totalWh(t, s, "p"); !near(got, 95) {
		t.Errorf("energy = %g Wh, want 95", got)
	}
	// Without an expected maximum, MaxPowerW bounds it.
	mustAppend(t, s, counter("q", 0, 1000, 1000))
	errs = appendAll(t, s, counter("q", 60, 1000, 1000+10e6*1.5/60+2))
	if meter.ReasonOf(errs[0]) != meter.ReasonImplausibleEnergy {
		t.Errorf("a rise past 10 MW: %v, want implausible_energy", errs[0])
	}
}

func TestCounterThatMovedForGoodIsRebased(t *testing.T) {
	s := openTest(t, t.TempDir())
	// A device replaced by one whose counter is far ahead: two readings
	// refused, the third taken without its counter, then counting resumes.
	errs := appendAll(t, s, counter("d", 0, 3600, 1000), counter("d", 10, 3600, 5e6),
		counter("d", 20, 3600, 5e6+10), counter("d", 30, 3600, 5e6+20), counter("d", 40, 3600, 5e6+30))
	if errs[0] != nil || errs[3] != nil || errs[4] != nil ||
		meter.ReasonOf(errs[1]) != meter.ReasonImplausibleEnergy || meter.ReasonOf(errs[2]) != meter.ReasonImplausibleEnergy {
		t.Fatalf("errors = %v, want the 2nd and 3rd refused", errs)
	}
	recs, _, _ := s.Range("d", t0, t0.Add(time.Hour), 10)
	if len(recs) != 3 || recs[1].HasEnergy || !recs[2].HasEnergy {
		t.Fatalf("readings = %+v", recs)
	}
	// 0 to 30 s integrated from power (30 Wh), then the counter's 10 Wh.
	if got := totalWh(t, s, "d"); !near(got, 40) {
		t.Errorf("energy = %g Wh, want 40", got)
	}
	if err := s.CheckRollups("d"); err != nil {
		t.Error(err)
	}
	// Refusals that disagree with each other never rebase.
	errs = appendAll(t, s, counter("d", 50, 3600, 9e6), counter("d", 60, 3600, 1e6), counter("d", 70, 3600, 9e6))
	for i, err := range errs {
		if meter.ReasonOf(err) != meter.ReasonImplausibleEnergy {
			t.Errorf("wild counter %d: %v, want implausible_energy", i, err)
		}
	}
	// A counter that fell says so, not that it rose.
	if msg := errs[1].Error(); !strings.Contains(msg, "fell from 5000030.000 Wh to 1000000.000 Wh") || strings.Contains(msg, "rose") {
		t.Errorf("a counter that fell: %q", msg)
	}
}

func TestLateCountersCannotThrowTheRollupsOff(t *testing.T) {
	s := openTest(t, t.TempDir())
	// A late device-stamped reading whose counter is far off the others is
	// kept without its counter, as is a late 0; one that fits keeps it.
	mustAppend(t, s, counter("l", 0, 3600, 1000), counter("l", 20, 3600, 1020), counter("l", 10, 3600, 9e9), counter("l", 15, 3600, 0))
	if got := totalWh(t, s, "l"); !near(got, 20) {
		t.Errorf("energy with a wild late counter = %g Wh, want 20", got)
	}
	mustAppend(t, s, counter("l", 30, 3600, 1030), counter("l", 25, 3600, 1025))
	recs, _, _ := s.Range("l", t0, t0.Add(time.Hour), 10)
	if len(recs) != 6 || recs[1].HasEnergy || recs[2].HasEnergy || !recs[4].HasEnergy {
		t.Errorf("readings = %+v", recs)
	}
	// The resend of a reading whose counter was dropped does not bring the
	// counter back (here, the reading that rebased the counter).
	rs := []meter.Reading{counter("d", 0, 3600, 1000), counter("d", 10, 3600, 5e6), counter("d", 20, 3600, 5e6+10), counter("d", 30, 3600, 5e6+20)}
	appendAll(t, s, rs...)
	appendAll(t, s, rs[3], rs[3])
	if got := totalWh(t, s, "d"); !near(got, 30) {
		t.Errorf("energy after resending the rebasing reading = %g Wh, want 30", got)
	}
	for _, m := range []string{"l", "d"} {
		if err := s.CheckRollups(m); err != nil {
			t.Error(err)
		}
	}
}

// TestImportWithImplausibleCounterKeepsItsPower: an imported reading whose
// counter rose more than the meter can draw is kept with its power alone,
// its energy integrated from that, not refused.
func TestImportWithImplausibleCounterKeepsItsPower(t *testing.T) {
	s := openTest(t, t.TempDir())
	if _, err := s.Import([]meter.Reading{counter("i", 0, 100, 10), counter("i", 60, 100, 9e9)}, nil); err != nil {
		t.Fatalf("import: %v", err)
	}
	m, err := s.Meter("i")
	if err != nil || m.Readings != 2 {
		t.Fatalf("meter i: %+v %v, want 2 readings", m, err)
	}
	// 100 W for a minute, from power: 1.667 Wh, not the counter's 9e9.
	if got := totalWh(t, s, "i"); !near(got, 100.0/60) {
		t.Errorf("energy %g Wh, want %g from power", got, 100.0/60)
	}
}

func TestRegistry(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	before := time.Now().UTC()
	r := reading("main", 0, 5000)
	r.Source = "tasmota"
	mustAppend(t, s, r, reading("kitchen", 0, 1000), reading("oven", 0, 800), reading("other", 0, 1))
	m, err := s.Meter("main")
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Source != "tasmota" || m.Info.Created.Before(before.Add(-time.Second)) || m.Info.Name != "" {
		t.Errorf("new meter's entry = %+v", m.Info)
	}
	edit := func(id string, fn func(*MeterInfo)) error {
		_, err := s.EditMeter(id, func(m *MeterInfo) error { fn(m); return nil })
		return err
	}
	if err := edit("main", func(m *MeterInfo) { m.Name, m.Site, m.Tags = "Main meter", "home", []string{"grid"} }); err != nil {
		t.Fatal(err)
	}
	if err := edit("kitchen", func(m *MeterInfo) { m.Parent = "main" }); err != nil {
		t.Fatal(err)
	}
	if err := edit("oven", func(m *MeterInfo) { m.Parent, m.Critical = "kitchen", true }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		fn   func(*MeterInfo)
		want error
	}{
		{"main", func(m *MeterInfo) { m.Parent = "oven" }, ErrInvalidEdit},     // a loop
		{"main", func(m *MeterInfo) { m.Parent = "main" }, ErrInvalidEdit},     // itself
		{"main", func(m *MeterInfo) { m.Parent = "nowhere" }, ErrInvalidEdit},  // unknown
		{"oven", func(m *MeterInfo) { m.Site = "plant" }, ErrInvalidEdit},      // not its parent's site
		{"nowhere", func(m *MeterInfo) { m.Name = "x" }, ErrUnknownMeter},      // no such meter
		{"other", func(m *MeterInfo) { m.Parent = "kitchen" }, nil},            // fine
		{"other", func(m *MeterInfo) { m.Parent, m.Site = "", "plant" }, nil},  // back to a site of its own
		{"oven", func(m *MeterInfo) { m.Site = "home"; m.Name = "Oven" }, nil}, // its site, said again
	} {
		if err := edit(c.id, c.fn); !errors.Is(err, c.want) {
			t.Errorf("edit %s: %v, want %v", c.id, err, c.want)
		}
	}
	refused := errors.New("no")
	if _, err := s.EditMeter("main", func(m *MeterInfo) error { m.Name = "changed"; return refused }); !errors.Is(err, refused) {
		t.Errorf("a refused edit: %v", err)
	}
	check := func(s *Store) {
		t.Helper()
		main, _ := s.Meter("main")
		oven, _ := s.Meter("oven")
		if main.Info.Name != "Main meter" || main.Site != "home" || !slices.Equal(main.Children, []string{"kitchen"}) {
			t.Errorf("main = %+v", main)
		}
		if oven.Info.Parent != "kitchen" || oven.Info.Site != "" || oven.Site != "home" || !oven.Info.Critical || oven.Info.Name != "Oven" {
			t.Errorf("oven = %+v", oven)
		}
	}
	check(s)
	s.Close()
	s = openTest(t, dir)
	check(s) // kept across a restart

	// Deleting kitchen erases its data and moves oven up to main.
	if err := s.AddAlert(&Alert{Time: t0, Severity: "warning", Message: "hot", Meter: "kitchen"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAlert(&Alert{Time: t0, Severity: "warning", Message: "fine", Meter: "main"}); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "archive", "kitchen")
	if err := os.MkdirAll(archive, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(archive, "kitchen-2026-01.csv.gz"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	erased, err := s.DeleteMeter("kitchen")
	if err != nil {
		t.Fatal(err)
	}
	if erased != (Erased{Readings: 1, Alerts: 1, ArchiveFiles: 1}) {
		t.Errorf("erased %+v", erased)
	}
	if _, err := s.Meter("kitchen"); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("kitchen after delete: %v", err)
	}
	if _, _, err := s.Range("kitchen", t0, t0.Add(time.Hour), 10); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("kitchen's readings after delete: %v", err)
	}
	if _, err := os.Stat(archive); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kitchen's archive after delete: %v", err)
	}
	as, _ := s.Alerts(10, nil)
	if len(as) != 1 || as[0].Meter != "main" {
		t.Errorf("alerts after delete = %+v", as)
	}
	if left := behind(s).leftovers(t, "kitchen"); len(left) > 0 {
		t.Errorf("still holding kitchen: %v", left)
	}
	if oven, _ := s.Meter("oven"); oven.Info.Parent != "main" || oven.Site != "home" {
		t.Errorf("oven after its parent's delete = %+v", oven.Info)
	}
	if _, err := s.DeleteMeter("kitchen"); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("second delete: %v", err)
	}
	// A new reading makes it anew.
	mustAppend(t, s, reading("kitchen", 100, 10))
	if k, err := s.Meter("kitchen"); err != nil || k.Readings != 1 || k.Info.Parent != "" {
		t.Errorf("kitchen anew = %+v, %v", k, err)
	}
}

func TestMeterStatus(t *testing.T) {
	s := openTest(t, t.TempDir())
	for i := range 3 {
		mustAppend(t, s, meter.Reading{Meter: "tele", Time: time.Now(), PowerW: float64(i)})
		time.Sleep(150 * time.Millisecond)
	}
	m, _ := s.Meter("tele")
	if m.Interval < 150*time.Millisecond || m.Interval > time.Second {
		t.Fatalf("interval = %s, want about 150ms", m.Interval)
	}
	now := m.LastHeard
	if st, why := m.Status(now.Add(minSilence - time.Millisecond)); st != StatusOnline {
		t.Errorf("status after %s = %s %s", minSilence, st, why)
	}
	if st, why := m.Status(now.Add(minSilence + time.Millisecond)); st != StatusOffline || why != OfflineSilent {
		t.Errorf("status after a long silence = %s %s", st, why)
	}
	// The device said it went away: offline until its next reading.
	s.SetAvailability("tele", false, time.Now())
	m, _ = s.Meter("tele")
	if st, why := m.Status(m.LastHeard); st != StatusOffline || why != OfflineAnnounced {
		t.Errorf("status after LWT offline = %s %s", st, why)
	}
	mustAppend(t, s, meter.Reading{Meter: "tele", Time: time.Now(), PowerW: 1})
	m, _ = s.Meter("tele")
	if st, _ := m.Status(m.LastHeard); st != StatusOnline {
		t.Errorf("status after a reading = %s", st)
	}
	// A device's announcement covers its channels.
	mustAppend(t, s, meter.Reading{Meter: "strip:2", Time: time.Now(), PowerW: 1})
	s.SetAvailability("strip", false, time.Now().Add(time.Second))
	if c, _ := s.Meter("strip:2"); c.Availability == nil || c.Availability.Online {
		t.Errorf("channel's availability = %+v", c.Availability)
	}
	// Unknown interval: three times MaxGap.
	mustAppend(t, s, reading("once", 0, 1))
	once, _ := s.Meter("once")
	if st, _ := once.Status(once.LastHeard.Add(29 * time.Minute)); st != StatusOnline {
		t.Errorf("a meter seen once, after 29 minutes: %s", st)
	}
	if st, _ := once.Status(once.LastHeard.Add(31 * time.Minute)); st != StatusOffline {
		t.Errorf("a meter seen once, after 31 minutes: %s", st)
	}
}

// TestRefusedJobsLeaveQueuedReadingsAlone queues live readings, then an
// import whose counter does not fit (kept without it) and a delete that
// is refused: the readings before them are stored and acknowledged
// whatever batch the writer makes of them.
func TestRefusedJobsLeaveQueuedReadingsAlone(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, counter("i", 0, 100, 10))
	for round := range 20 {
		errs := make([]error, 50)
		for i := range errs {
			if err := s.Append(reading("live", round*100+i, 1), func(err error) { errs[i] = err }); err != nil {
				t.Fatal(err)
			}
		}
		// An import whose counter does not fit is kept, without it.
		if _, err := s.Import([]meter.Reading{counter("i", round+1, 100, 9e12)}, nil); err != nil {
			t.Fatalf("import: %v", err)
		}
		if _, err := s.DeleteMeter("ghost"); !errors.Is(err, ErrUnknownMeter) {
			t.Fatalf("delete ghost: %v", err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: live reading %d: %v", round, i, err)
			}
		}
	}
	if m, _ := s.Meter("live"); m.Readings != 20*50 {
		t.Errorf("%d live readings stored, want 1000", m.Readings)
	}
}

func TestHierarchyDepthAndDetach(t *testing.T) {
	s := openTest(t, t.TempDir())
	ids := []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"}
	for i, id := range ids {
		mustAppend(t, s, reading(id, i, 1))
	}
	if _, err := s.EditMeter("m1", func(m *MeterInfo) error { m.Site = "plant"; return nil }); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 8; i++ { // m1 <- m2 <- ... <- m8: eight levels
		parent := ids[i-1]
		if _, err := s.EditMeter(ids[i], func(m *MeterInfo) error { m.Parent = parent; return nil }); err != nil {
			t.Fatalf("level %d: %v", i+1, err)
		}
	}
	if _, err := s.EditMeter("m9", func(m *MeterInfo) error { m.Parent = "m8"; return nil }); !errors.Is(err, ErrInvalidEdit) {
		t.Errorf("a ninth level: %v, want refused", err)
	}
	// A meter moves with its sub-meters: m2's seven levels under m9 (the
	// second) would make nine; m3's six make eight.
	if _, err := s.EditMeter("m9", func(m *MeterInfo) error { m.Parent = "m1"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EditMeter("m2", func(m *MeterInfo) error { m.Parent = "m9"; return nil }); !errors.Is(err, ErrInvalidEdit) {
		t.Errorf("moving seven levels under the second: %v, want refused", err)
	}
	if _, err := s.EditMeter("m3", func(m *MeterInfo) error { m.Parent = "m9"; return nil }); err != nil {
		t.Errorf("moving six levels under the second: %v", err)
	}
	// Taken off its parent, a sub-meter stays in its site.
	info, err := s.EditMeter("m8", func(m *MeterInfo) error { m.Parent = ""; return nil })
	if err != nil || info.Site != "plant" {
		t.Errorf("detached m8 = %+v, %v; want site plant", info, err)
	}
}

func TestPowerFactorStatistics(t *testing.T) {
	s := openTest(t, t.TempDir())
	pf := func(m string, sec int, w, f float64) meter.Reading {
		r := reading(m, sec, w)
		r.PowerFactor, r.HasPF = f, true
		return r
	}
	// 3 kW at 0.8 and 1 kW at 0.96: weighted by power, 0.84.
	mustAppend(t, s, pf("press", 0, 3000, 0.8), pf("press", 10, 1000, -0.96), reading("press", 20, 500), pf("press", 86400, 2000, 0.9))
	st, err := s.PowerFactor("press", t0, t0.Add(24*time.Hour))
	if err != nil || st.Readings != 2 || st.Days != 1 || math.Abs(st.Mean-0.84) > 1e-9 {
		t.Errorf("first day = %+v, %v; want 2 readings at 0.84", st, err)
	}
	if st, _ := s.PowerFactor("press", t0, t0.Add(48*time.Hour)); st.Readings != 3 || st.Days != 2 {
		t.Errorf("two days = %+v", st)
	}
	if st, _ := s.PowerFactor("other", t0, t0.Add(48*time.Hour)); st.Readings != 0 {
		t.Errorf("a meter without = %+v", st)
	}
	if _, err := s.DeleteMeter("press"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.PowerFactor("press", t0, t0.Add(48*time.Hour)); st.Readings != 0 {
		t.Errorf("after delete = %+v", st)
	}
}

// TestReloadingMetersRacesNoCommit: on PostgreSQL, readers reload the copy
// of the meters when another instance may have changed them, while the
// writer reads it to store readings and edits. Run with -race: the reload runs on the
// writer.
func TestReloadingMetersRacesNoCommit(t *testing.T) {
	if !onPostgres() {
		t.Skip("PostgreSQL's copy of the meters")
	}
	s := openTest(t, t.TempDir())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			if err := s.Append(reading(fmt.Sprintf("rl%d", i%5), i, 1), nil); err != nil {
				t.Error(err)
				return
			}
			if i%10 == 9 { // an edit: the writer reads the registry's copy
				_, err := s.EditMeter(fmt.Sprintf("rl%d", i%5), func(m *MeterInfo) error { m.Name = fmt.Sprint("meter ", i); return nil })
				if err != nil {
					t.Error(err)
					return
				}
			}
		}
		s.Flush()
	}()
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		s.eng.(*pgEngine).stale.Store(true)
		s.Meters()
	}
	if n := len(s.Meters()); n != 5 {
		t.Errorf("%d meters, want 5", n)
	}
}

// TestRegistryEntryRoundTrip: every field of an edited entry is kept across
// a reopen, the entries handed out are copies, and the expected maximum
// still bounds the meter's counter after the reopen.
func TestRegistryEntryRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	r := counter("e", 0, 100, 1000)
	r.Source = "shelly"
	mustAppend(t, s, r)
	minW, maxW := -500.0, 3600.0
	info, err := s.EditMeter("e", func(m *MeterInfo) error {
		m.Name, m.Site, m.Tags, m.ExpectedMinW, m.ExpectedMaxW, m.Critical = "Heat pump", "home", []string{"heat", "garden"}, &minW, &maxW, true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := info.clone()
	if want.Source != "shelly" || want.Created.IsZero() || want.Name != "Heat pump" || *want.ExpectedMaxW != 3600 {
		t.Fatalf("edited entry = %+v", want)
	}
	info.Tags[0], *info.ExpectedMaxW = "changed", 1 // the caller's copy
	if m, _ := s.Meter("e"); !reflect.DeepEqual(m.Info, want) {
		t.Errorf("entry after changing the copy EditMeter returned = %+v, want %+v", m.Info, want)
	}
	m, _ := s.Meter("e")
	m.Info.Tags[1] = "changed"
	if again, _ := s.Meter("e"); !reflect.DeepEqual(again.Info, want) {
		t.Errorf("entry after changing the copy Meter returned = %+v, want %+v", again.Info, want)
	}
	s.Close()
	s = openTest(t, dir)
	if m, _ := s.Meter("e"); !reflect.DeepEqual(m.Info, want) || m.Site != "home" {
		t.Errorf("entry after reopening = %+v (site %s), want %+v", m.Info, m.Site, want)
	}
	// 3600 W for a minute is at most 91 Wh (see TestImplausibleCounterJumpIsRejected).
	errs := appendAll(t, s, counter("e", 60, 100, 1200), counter("e", 120, 100, 1050))
	if meter.ReasonOf(errs[0]) != meter.ReasonImplausibleEnergy || errs[1] != nil {
		t.Errorf("counters after reopening: %v; want the rise of 200 Wh in a minute refused, 50 Wh in two taken", errs)
	}
}

// TestPowerFactorCountsEachReadingOnce: readings imported again, resent or
// kept across a checkpoint and a reopen count once in the power factor
// statistics; a late reading counts too.
func TestPowerFactorCountsEachReadingOnce(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	pf := func(sec int, w, f float64) meter.Reading {
		r := reading("pf", sec, w)
		r.PowerFactor, r.HasPF = f, true
		return r
	}
	rs := []meter.Reading{pf(0, 1000, 0.5), pf(10, 1000, 0.7), pf(20, 2000, 0.9)}
	mustImport(t, s, rs)
	stats := func(s *Store) PowerFactorStats {
		t.Helper()
		st, err := s.PowerFactor("pf", t0, t0.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	want := PowerFactorStats{Mean: (500 + 700 + 1800) / 4000.0, Readings: 3, Days: 1}
	same := func(a, b PowerFactorStats) bool {
		return a.Readings == b.Readings && a.Days == b.Days && math.Abs(a.Mean-b.Mean) < 1e-12
	}
	if got := stats(s); !same(got, want) {
		t.Fatalf("after the import = %+v, want %+v", got, want)
	}
	mustImport(t, s, rs)    // the same history again
	mustAppend(t, s, rs[2]) // a resend of the newest
	if got := stats(s); !same(got, want) {
		t.Errorf("after importing and resending the same readings = %+v, want %+v", got, want)
	}
	mustAppend(t, s, pf(30, 1000, 1), pf(5, 1000, 0.1)) // a new one, and a late one
	want = PowerFactorStats{Mean: (500 + 700 + 1800 + 1000 + 100) / 6000.0, Readings: 5, Days: 1}
	if got := stats(s); !same(got, want) {
		t.Errorf("after a new and a late reading = %+v, want %+v", got, want)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, pf(40, 2000, 0.5))
	want = PowerFactorStats{Mean: (500 + 700 + 1800 + 1000 + 100 + 1000) / 8000.0, Readings: 6, Days: 1}
	s.Close()
	if got := stats(openTest(t, dir)); !same(got, want) {
		t.Errorf("after a checkpoint and a reopen = %+v, want %+v", got, want)
	}
}

// TestHistoryIsNotHeard: imported history does not make a meter online,
// give it a last heard time or a power now, before or after a restart; a
// live reading does, and a later import leaves when it was heard as it
// was; a live reading stamped long ago (a meter replaying its buffer) is
// heard but is not its power now.
func TestHistoryIsNotHeard(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	yesterday := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	var hist []meter.Reading
	for i := range 60 {
		hist = append(hist, meter.Reading{Source: "import", Meter: "old", Time: yesterday.Add(time.Duration(i) * time.Minute), PowerW: 2510, Stamped: true})
	}
	if _, err := s.Import(hist, nil); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want string, heard bool, wantNow bool) Meter {
		t.Helper()
		m, err := s.Meter("old")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		st, why := m.Status(now)
		if st+why != want {
			t.Errorf("%s: status %s %s, want %s", when, st, why, want)
		}
		if m.LastHeard.IsZero() == heard {
			t.Errorf("%s: last heard %s, heard %v", when, m.LastHeard, heard)
		}
		if w, ok := m.PowerNow(now); ok != wantNow {
			t.Errorf("%s: power now %g %v, want %v", when, w, ok, wantNow)
		}
		return m
	}
	m := check("after the import", StatusOffline+OfflineHistory, false, false)
	if want := yesterday.Add(59 * time.Minute); !m.Last.Equal(want) {
		t.Errorf("newest reading %s, want %s", m.Last, want)
	}
	s.Close()
	s = openTest(t, dir)
	check("after a restart", StatusOffline+OfflineHistory, false, false)

	// Live: online, heard now, its power counts.
	before := time.Now()
	mustAppend(t, s, meter.Reading{Meter: "old", Time: time.Now(), PowerW: 300})
	heard := check("after a live reading", StatusOnline, true, true).LastHeard
	if heard.Before(before.Add(-time.Second)) || heard.After(time.Now().Add(time.Second)) {
		t.Errorf("last heard %s, want about %s", heard, before)
	}
	// More history, imported later: when it was heard stays.
	if _, err := s.Import([]meter.Reading{{Source: "import", Meter: "old", Time: yesterday.Add(-time.Hour), PowerW: 1, Stamped: true}}, nil); err != nil {
		t.Fatal(err)
	}
	if m := check("after a second import", StatusOnline, true, true); !m.LastHeard.Equal(heard) {
		t.Errorf("an import moved last heard from %s to %s", heard, m.LastHeard)
	}
	s.Close()
	s = openTest(t, dir)
	if m := check("after a second restart", StatusOnline, true, true); !m.LastHeard.Equal(heard) {
		t.Errorf("a restart moved last heard from %s to %s", heard, m.LastHeard)
	}

	// A meter replaying its buffer: live, stamped an hour ago.
	mustAppend(t, s, meter.Reading{Meter: "replay", Time: time.Now().Add(-time.Hour), PowerW: 4000, Stamped: true})
	r, _ := s.Meter("replay")
	if st, why := r.Status(time.Now()); st != StatusOnline {
		t.Errorf("a meter replaying its buffer: %s %s, want online (it is heard)", st, why)
	}
	if w, ok := r.PowerNow(time.Now()); ok {
		t.Errorf("a reading an hour old counts as power now: %g W", w)
	}
}

// TestUsualIntervalAtRealPace feeds noteInterval the receive times of
// meters at their real pace, and checks how long each stays online after
// its last reading.
func TestUsualIntervalAtRealPace(t *testing.T) {
	sec := func(n float64) int64 { return int64(n * float64(time.Second)) }
	every := func(gap float64, n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = sec(gap)
		}
		return out
	}
	cases := []struct {
		name string
		gaps []int64 // between successive readings, in order
		want time.Duration
	}{
		{"2 s meter", every(2, 30), 2 * time.Second},
		{"2 s meter, a 60 s pause, 5 readings", slices.Concat(every(2, 30), []int64{sec(62)}, every(2, 5)), 2 * time.Second},
		{"2 s meter, the pause its latest gap", slices.Concat(every(2, 30), []int64{sec(62)}), 2 * time.Second},
		{"plug silent overnight, one reading", slices.Concat(every(10, 30), []int64{sec(14 * 3600)}), 10 * time.Second},
		{"Tasmota: on change, teleperiod 300 s",
			slices.Concat(every(1, 5), []int64{sec(300)}, every(1, 3), []int64{sec(300), sec(300)}, every(2, 4), []int64{sec(300)}),
			300 * time.Second},
		{"first gap only", []int64{sec(30)}, 30 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			st := meterState{SeenNs: t0.UnixNano()}
			for _, g := range c.gaps {
				now := st.SeenNs + g
				s.noteInterval("m", &st, now)
				st.SeenNs = now
			}
			if got := time.Duration(st.IntervalNs); got != c.want {
				t.Errorf("interval after %v = %s, want %s", c.gaps, got, c.want)
			}
		})
	}
}

// TestOneSilenceLeavesTheIntervalAlone sends real readings: a meter every
// 100 ms that pauses 5 s once and stops soon after is offline after the
// 10 s floor of silence, not three times its pause; it keeps that through
// a restart, whose gap is ignored too. A meter that reports on change and
// every so often when idle keeps its idle period, so it never counts as
// silent between two idle reports.
func TestOneSilenceLeavesTheIntervalAlone(t *testing.T) {
	dir := t.TempDir()
	s, err := testOpen(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	send := func(s *Store, id string, n int, gap time.Duration) {
		for range n {
			mustAppend(t, s, meter.Reading{Meter: id, Time: time.Now(), PowerW: 5})
			time.Sleep(gap) // the meter's pace
		}
	}
	send(s, "lamp", 20, 100*time.Millisecond)
	time.Sleep(5 * time.Second) // the pause
	send(s, "lamp", 5, 100*time.Millisecond)
	m, _ := s.Meter("lamp")
	if m.Interval < 100*time.Millisecond || m.Interval > time.Second {
		t.Fatalf("interval after a 5 s pause = %s, want about 100ms", m.Interval)
	}
	if st, _ := m.Status(m.LastHeard.Add(minSilence + time.Millisecond)); st != StatusOffline {
		t.Errorf("status %s after it stopped = %s, want offline", minSilence, st)
	}
	if _, ok := m.PowerNow(m.LastHeard.Add(minNow + time.Millisecond)); ok {
		t.Errorf("power now %s after it stopped", minNow)
	}

	// Report on change, and every 600 ms when idle.
	for range 6 {
		send(s, "plug", 3, 50*time.Millisecond)
		send(s, "plug", 1, 600*time.Millisecond)
		if p, _ := s.Meter("plug"); p.Readings > 8 && 3*p.Interval < 600*time.Millisecond {
			t.Fatalf("on-change meter's interval after %d readings = %s: offline between idle reports", p.Readings, p.Interval)
		}
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // Vatio is down
	s = openTest(t, dir)
	send(s, "lamp", 2, 100*time.Millisecond)
	if m, _ := s.Meter("lamp"); m.Interval < 100*time.Millisecond || m.Interval > time.Second {
		t.Errorf("interval after a restart = %s, want about 100ms", m.Interval)
	}
}

// BenchmarkNoteInterval measures what learning a meter's usual interval
// costs each live reading on the write path.
func BenchmarkNoteInterval(b *testing.B) {
	s := openTest(b, b.TempDir())
	st := meterState{SeenNs: t0.UnixNano()}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now := st.SeenNs + int64(time.Second) + int64(i%7)*int64(time.Second)
		s.noteInterval("m", &st, now)
		st.SeenNs = now
	}
}
