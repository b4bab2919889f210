package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := testOpen(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustAppend(t testing.TB, s *Store, rs ...meter.Reading) {
	t.Helper()
	for _, r := range rs {
		if err := s.Append(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

func reading(m string, sec int, w float64) meter.Reading {
	return meter.Reading{Meter: m, Time: t0.Add(time.Duration(sec) * time.Second), PowerW: w, Stamped: true}
}

func TestAppendRangeLatest(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, reading("a", 0, 100), reading("b", 1, 200), reading("a", 2, 300), reading("b", 3, 400), reading("a", 4, 500))

	got, more, err := s.Range("a", t0, t0.Add(4*time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	if more || len(got) != 2 || got[0].PowerW != 100 || got[1].PowerW != 300 || !got[1].Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("Range(a, [0s,4s)) = %+v more=%v, want the readings at 0s and 2s", got, more)
	}
	got, more, _ = s.Range("a", t0, t0.Add(time.Hour), 2)
	if !more || len(got) != 2 {
		t.Errorf("Range with limit 2 = %d records, more=%v; want 2, true", len(got), more)
	}

	latest, err := s.Latest("", 4)
	if err != nil {
		t.Fatal(err)
	}
	var powers []float64
	for _, r := range latest {
		powers = append(powers, r.PowerW)
	}
	if fmt.Sprint(powers) != "[500 400 300 200]" {
		t.Errorf("Latest(all, 4) powers = %v, want [500 400 300 200]", powers)
	}
	for i := 1; i < len(latest); i++ {
		if latest[i].ID >= latest[i-1].ID {
			t.Errorf("ids not in insertion order: %+v", latest)
		}
	}
	if l, _ := s.Latest("b", 10); len(l) != 2 || l[0].PowerW != 400 {
		t.Errorf("Latest(b) = %+v", l)
	}
	if _, err := s.Latest("zzz", 10); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("Latest(unknown) error = %v, want ErrUnknownMeter", err)
	}

	ms := s.Meters()
	if len(ms) != 2 || ms[0].ID != "a" || ms[0].Readings != 3 || ms[0].LastPowerW != 500 || !ms[0].First.Equal(t0) || !ms[0].Last.Equal(t0.Add(4*time.Second)) {
		t.Errorf("Meters() = %+v", ms)
	}
}

func TestResendIsStoredOnce(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, reading("a", 0, 100), reading("a", 1, 110))
	mustAppend(t, s, reading("a", 0, 100)) // a device resends (MQTT DUP)
	m, _ := s.Meter("a")
	if m.Readings != 2 {
		t.Errorf("after a resend, Readings = %d, want 2", m.Readings)
	}
	got, _, _ := s.Range("a", t0, t0.Add(time.Minute), 10)
	if len(got) != 2 || got[0].ID != 1 {
		t.Errorf("after a resend, records = %+v, want 2 with the first keeping id 1", got)
	}

	// Readings stamped on receipt at the same instant are distinct readings.
	unstamped := meter.Reading{Meter: "u", Time: t0, PowerW: 1}
	mustAppend(t, s, unstamped, unstamped, unstamped)
	if m, _ := s.Meter("u"); m.Readings != 3 {
		t.Errorf("three receive-stamped readings at one instant: Readings = %d, want 3", m.Readings)
	}
}

func TestOutOfOrderAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := testOpen(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("a", 10, 1), reading("a", 5, 2), reading("a", 20, 3))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	m, err := s.Meter("a")
	if err != nil {
		t.Fatal(err)
	}
	if m.Readings != 3 || !m.First.Equal(t0.Add(5*time.Second)) || m.LastPowerW != 3 {
		t.Errorf("after reopen Meter(a) = %+v", m)
	}
	mustAppend(t, s, reading("a", 30, 4))
	l, _ := s.Latest("a", 1)
	if l[0].ID != 4 {
		t.Errorf("after reopen the next id = %d, want 4", l[0].ID)
	}
	got, _, _ := s.Range("a", t0, t0.Add(time.Hour), 10)
	if len(got) != 4 || got[0].PowerW != 2 || got[1].PowerW != 1 {
		t.Errorf("Range after out-of-order appends = %+v, want time order", got)
	}
}

func TestCloseCommitsQueuedReadingsInOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := testOpen(t, dir, Options{QueueSize: 64, MaxBatch: 7})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	var mu sync.Mutex
	var order []int
	for i := 0; i < n; i++ {
		i := i
		err := s.Append(meter.Reading{Meter: "m", Time: t0.Add(time.Duration(i) * time.Millisecond), PowerW: float64(i)}, func(err error) {
			if err != nil {
				t.Errorf("reading %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(reading("m", 0, 1), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if len(order) != n {
		t.Fatalf("%d callbacks ran, want %d", len(order), n)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("callback %d ran in position %d: callbacks must run in append order", v, i)
		}
	}
	s = openTest(t, dir)
	if m, _ := s.Meter("m"); m.Readings != n {
		t.Errorf("after Close and reopen, Readings = %d, want %d", m.Readings, n)
	}
}

func TestAlerts(t *testing.T) {
	s := openTest(t, t.TempDir())
	for i := 0; i < 3; i++ {
		a := &Alert{Time: t0, Severity: "info", Message: fmt.Sprint("m", i), Source: "api",
			Deliveries: []Delivery{{Notifier: "log", Status: DeliveryPending}}}
		if err := s.AddAlert(a); err != nil {
			t.Fatal(err)
		}
		if a.ID != uint64(i+1) {
			t.Errorf("alert id = %d, want %d", a.ID, i+1)
		}
	}
	if err := s.UpdateAlert(2, func(a *Alert) { a.Deliveries[0].Status = DeliveryDelivered }); err != nil {
		t.Fatal(err)
	}
	all, _ := s.Alerts(10, nil)
	if len(all) != 3 || all[0].ID != 3 || all[1].Deliveries[0].Status != DeliveryDelivered {
		t.Errorf("Alerts = %+v", all)
	}
	pending, _ := s.Alerts(10, func(a *Alert) bool { return a.Deliveries[0].Status == DeliveryPending })
	if len(pending) != 2 {
		t.Errorf("pending alerts = %d, want 2", len(pending))
	}
	if err := s.UpdateAlert(99, func(*Alert) {}); !errors.Is(err, ErrUnknownAlert) {
		t.Errorf("UpdateAlert(99) = %v, want ErrUnknownAlert", err)
	}
}

func TestImportIsAllOrNothing(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, reading("i", 0, 100))
	var rs []meter.Reading
	for i := 1; i <= 120000; i++ { // older than what is there: every reading rebuilds rollups
		rs = append(rs, reading("i", -i*10, float64(i%1000)))
	}
	var calls []int
	added, err := s.Import(rs, func(n int) { calls = append(calls, n) })
	if err != nil {
		t.Fatal(err)
	}
	if added != len(rs) || fmt.Sprint(calls) != "[100000]" {
		t.Errorf("Import added %d (progress %v), want %d with progress at 100000", added, calls, len(rs))
	}
	if m, _ := s.Meter("i"); m.Readings != uint64(len(rs)+1) || !m.First.Equal(t0.Add(-1200000*time.Second)) {
		t.Errorf("after import Meter = %+v", m)
	}
	if err := s.CheckRollups("i"); err != nil {
		t.Error(err)
	}
	// Importing again changes nothing: the readings are the same instants.
	if added, err := s.Import(rs[:10], nil); err != nil || added != 0 {
		t.Errorf("re-import added %d, %v; want 0", added, err)
	}
	// A meter id bbolt cannot store fails the whole import.
	bad := []meter.Reading{reading("j", 1, 1), reading("", 2, 2)}
	if _, err := s.Import(bad, nil); err == nil {
		t.Fatal("import with an empty meter id succeeded")
	}
	if _, err := s.Meter("j"); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("after a failed import meter j exists: %v", err)
	}
}

// TestReadingStampedAheadShiftsNoReceivedOnes: a device stamps a reading
// minutes ahead; the readings received after it keep their receive times
// (not a millisecond after the one from the future), and one received at
// the very instant of a stamped reading is stored beside it, not over it.
func TestReadingStampedAheadShiftsNoReceivedOnes(t *testing.T) {
	s := openTest(t, t.TempDir())
	now := time.Now().UTC().Truncate(time.Second)
	received := func(at time.Time, w float64) meter.Reading {
		return meter.Reading{Meter: "m", Time: at, PowerW: w}
	}
	mustAppend(t, s,
		received(now.Add(-10*time.Second), 1),
		meter.Reading{Meter: "m", Time: now.Add(-5 * time.Second), PowerW: 2, Stamped: true},
		meter.Reading{Meter: "m", Time: now.Add(3 * time.Minute), PowerW: 3, Stamped: true}, // ahead
		received(now.Add(-5*time.Second), 4),                                                // the stamped reading's instant
		received(now, 5),
		received(now.Add(time.Second), 6),
	)
	recs, _, err := s.Range("m", now.Add(-time.Minute), now.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[float64]time.Time{}
	for _, r := range recs {
		got[r.PowerW] = r.Time
	}
	want := map[float64]time.Time{
		1: now.Add(-10 * time.Second), 2: now.Add(-5 * time.Second), 3: now.Add(3 * time.Minute),
		4: now.Add(-5*time.Second + time.Millisecond), 5: now, 6: now.Add(time.Second),
	}
	for w, at := range want {
		if !got[w].Equal(at) {
			t.Errorf("reading of %v W stored at %s, want %s", w, got[w].Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		}
	}
	if len(recs) != len(want) {
		t.Errorf("%d readings stored, want %d", len(recs), len(want))
	}
	if err := s.CheckRollups("m"); err != nil {
		t.Error(err)
	}
}

// TestReadersSeeEachReadingOnceAcrossCheckpoints reads while a writer
// appends and checkpoints: no reading is seen twice (on bbolt, in the head
// and in the file) or lost for a moment (in neither), in the readings or
// in the rollups, and none before it is queued.
func TestReadersSeeEachReadingOnceAcrossCheckpoints(t *testing.T) {
	s := openTest(t, t.TempDir())
	const n = 3000
	var queued atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			queued.Add(1) // before: the writer may store it before Append returns
			if err := s.Append(reading("r", i, float64(i%50)), nil); err != nil {
				t.Error(err)
				return
			}
			if i%300 == 299 {
				if err := s.Checkpoint(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	seen, rolled := 0, uint64(0)
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
			s.Flush()
		default:
		}
		recs, _, err := s.Range("r", t0, t0.Add(n*time.Second), 1<<30)
		if err != nil && !errors.Is(err, ErrUnknownMeter) {
			t.Fatal(err)
		}
		if len(recs) < seen || int64(len(recs)) > queued.Load() {
			t.Fatalf("Range gave %d readings after %d, with %d queued", len(recs), seen, queued.Load())
		}
		for i := 1; i < len(recs); i++ {
			if !recs[i].Time.After(recs[i-1].Time) {
				t.Fatalf("reading %d at %v after one at %v: twice?", i, recs[i].Time, recs[i-1].Time)
			}
		}
		seen = len(recs)
		days, _, err := s.Rollups("r", TierDay, t0.Add(-24*time.Hour), t0.Add(48*time.Hour), 10)
		if err != nil && !errors.Is(err, ErrUnknownMeter) {
			t.Fatal(err)
		}
		var sum uint64
		for _, d := range days {
			sum += d.N
		}
		if sum < rolled || int64(sum) > queued.Load() {
			t.Fatalf("the daily rollups count %d readings after %d, with %d queued", sum, rolled, queued.Load())
		}
		rolled = sum
	}
	if seen != n || rolled != n {
		t.Errorf("at the end %d readings and %d in the rollups, want %d", seen, rolled, n)
	}
	if err := s.CheckRollups("r"); err != nil {
		t.Error(err)
	}
}

// TestResentMessageIsStoredOnce: a message whose readings are stamped on
// receipt, sent again flagged DUP (its acknowledgement was lost: a broker
// redelivers it to the session, a client resends it after reconnecting),
// is recognised by its session, packet id, topic and payload, and not
// stored twice, also across a restart and for a reading stored late; a
// different message that reuses the packet id is stored.
func TestResentMessageIsStoredOnce(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	now := time.Now()
	msg := func(m string, at time.Time, w float64, packetID uint16, dup bool) meter.Reading {
		payload := fmt.Sprintf(`{"power_w": %g}`, w)
		return meter.Reading{Meter: m, Time: at, PowerW: w,
			Delivery: meter.NewDelivery("plug-7", packetID, "energy/consumption/"+m, []byte(payload), dup)}
	}
	count := func(s *Store, m string) uint64 {
		t.Helper()
		info, err := s.Meter(m)
		if err != nil {
			t.Fatal(err)
		}
		return info.Readings
	}
	mustAppend(t, s, msg("u", now, 5, 7, false))
	mustAppend(t, s, msg("u", now.Add(time.Second), 5, 7, true)) // the resend
	if n := count(s, "u"); n != 1 {
		t.Fatalf("a message sent again: %d readings, want 1", n)
	}
	// Packet id 7 again, with another payload: another message, even
	// flagged DUP (its first sending never arrived).
	mustAppend(t, s, msg("u", now.Add(2*time.Second), 6, 7, true))
	// Packet id 7 again, not flagged: a new message that says the same.
	mustAppend(t, s, msg("u", now.Add(3*time.Second), 6, 7, false))
	if n := count(s, "u"); n != 3 {
		t.Fatalf("new messages on packet id 7: %d readings, want 3", n)
	}
	// Late: behind a reading its device stamped ahead, it goes into the
	// database at once, not the head.
	mustAppend(t, s, meter.Reading{Meter: "v", Time: now.Add(time.Minute), PowerW: 1, Stamped: true})
	mustAppend(t, s, msg("v", now, 9, 8, false), msg("v", now.Add(time.Second), 9, 8, true))
	if n := count(s, "v"); n != 2 {
		t.Fatalf("a late message sent again: %d readings, want 2", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	mustAppend(t, s, msg("u", now.Add(4*time.Second), 6, 7, true), msg("v", now.Add(2*time.Second), 9, 8, true))
	if u, v := count(s, "u"), count(s, "v"); u != 3 || v != 2 {
		t.Fatalf("messages sent again after a restart: %d and %d readings, want 3 and 2", u, v)
	}
	// A message of two channels (a plug's Power:[5,6]) whose first sending
	// never arrived comes flagged DUP: both are stored; sent again, neither.
	two := meter.NewDelivery("plug-7", 12, "tele/plug/SENSOR", []byte(`{"ENERGY":{"Power":[5,6]}}`), true)
	for range 2 {
		mustAppend(t, s, meter.Reading{Meter: "p1", Time: now, PowerW: 5, Delivery: two.Part(0)},
			meter.Reading{Meter: "p2", Time: now, PowerW: 6, Delivery: two.Part(1)})
	}
	if p1, p2 := count(s, "p1"), count(s, "p2"); p1 != 1 || p2 != 1 {
		t.Fatalf("a two-channel message, first flagged DUP, then sent again: %d and %d readings, want 1 and 1", p1, p2)
	}
	// A message with no packet id (QoS 0) has no delivery to recognise.
	mustAppend(t, s, msg("u", now.Add(5*time.Second), 6, 0, true))
	if n := count(s, "u"); n != 4 {
		t.Fatalf("a QoS 0 message: %d readings, want 4", n)
	}
}
