package store

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/meter"
)

func allRecords(t *testing.T, s *Store, m string) []Record {
	t.Helper()
	recs, _, err := s.Range(m, t0.Add(-1000*time.Hour), t0.Add(1000*time.Hour), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestCompressIsTransparent(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	s := openTest(t, dir)
	var rs []meter.Reading
	for sec := 0; sec < 5*3600; sec += 10 {
		r := reading("z", sec, float64(100+sec%977)/10)
		if sec%3 == 0 {
			r.EnergyWh, r.HasEnergy = float64(sec)/7, true
		}
		rs = append(rs, r, reading("y", sec+5, 42))
	}
	mustAppend(t, s, rs...)
	before := allRecords(t, s, "z")
	latestBefore, _ := s.Latest("", 50)
	moved, err := s.Compress(context.Background(), t0.Add(3*time.Hour+30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if moved != 2*3*360 {
		t.Errorf("moved %d readings, want the first three hours of both meters (%d)", moved, 2*3*360)
	}
	if after := allRecords(t, s, "z"); !reflect.DeepEqual(after, before) {
		t.Errorf("Range after compression differs: %d records, want %d", len(after), len(before))
	}
	if latest, _ := s.Latest("", 50); !reflect.DeepEqual(latest, latestBefore) {
		t.Error("Latest after compression differs")
	}
	if n, _ := s.Count("z", TierRaw, t0, t0.Add(5*time.Hour), 1<<30); n != 1800 {
		t.Errorf("Count raw = %d, want 1800", n)
	}
	got, _, _ := s.Range("z", t0.Add(2*time.Hour+59*time.Minute), t0.Add(3*time.Hour+time.Minute), 100)
	if len(got) != 12 || !got[0].Time.Equal(t0.Add(2*time.Hour+59*time.Minute)) {
		t.Errorf("a range across a block's end gave %d records from %v", len(got), got[0].Time)
	}
	for _, m := range []string{"z", "y"} {
		if err := s.CheckRollups(m); err != nil {
			t.Error(err)
		}
	}
	// Compressing again moves nothing; the data survives a reopen.
	if moved, _ := s.Compress(context.Background(), t0.Add(3*time.Hour)); moved != 0 {
		t.Errorf("second compression moved %d", moved)
	}
	s.Close()
	s = openTest(t, dir)
	if after := allRecords(t, s, "z"); !reflect.DeepEqual(after, before) {
		t.Error("records differ after reopening")
	}
}

// TestLateReadingsIntoCompressedHours: readings arriving late, resent or
// corrected into hours compressed into blocks (on PostgreSQL, which
// compresses its own pages, into plain hours) are stored as into raw ones.
func TestLateReadingsIntoCompressedHours(t *testing.T) {
	s := openTest(t, t.TempDir())
	var rs []meter.Reading
	for sec := 0; sec < 3*3600; sec += 60 {
		rs = append(rs, reading("l", sec, 1000))
	}
	mustAppend(t, s, rs...)
	if _, err := s.Compress(context.Background(), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s,
		reading("l", 30, 2000),   // new, into a compressed hour
		reading("l", 60, 1000),   // a resend: nothing changes
		reading("l", 120, 3000),  // a correction of a compressed reading
		reading("l", -3600, 500), // before everything, an hour with no block
	)
	m, _ := s.Meter("l")
	if m.Readings != uint64(len(rs)+2) {
		t.Errorf("Readings = %d, want %d", m.Readings, len(rs)+2)
	}
	got, _, _ := s.Range("l", t0, t0.Add(3*time.Minute), 10)
	if len(got) != 4 || got[1].PowerW != 2000 || got[3].PowerW != 3000 || got[2].PowerW != 1000 {
		t.Errorf("records = %+v", got)
	}
	if err := s.CheckRollups("l"); err != nil {
		t.Error(err)
	}
}

// TestRollupsMatchRawWithCompression mixes random late readings with
// compressions (none on PostgreSQL) and checks records and rollups against
// readings stored in time order.
func TestRollupsMatchRawWithCompression(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var rs []meter.Reading
	sec := 0
	for i := 0; i < 1500; i++ {
		sec += 1 + rng.IntN(30)
		r := reading("q", sec, float64(rng.IntN(3000)))
		if i%2 == 0 {
			r.EnergyWh, r.HasEnergy = float64(sec), true
		}
		rs = append(rs, r)
	}
	inOrder := openTest(t, t.TempDir())
	mustAppend(t, inOrder, rs...)
	mixed := openTest(t, t.TempDir())
	// Most readings in order, then compress, then the rest out of order.
	perm := rng.Perm(len(rs))
	late := map[int]bool{}
	for _, j := range perm[:300] {
		late[j] = true
	}
	for j, r := range rs {
		if !late[j] {
			mixed.Append(r, nil)
		}
	}
	mixed.Flush()
	if _, err := mixed.Compress(context.Background(), t0.Add(time.Duration(sec/2)*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i, j := range perm[:300] {
		mixed.Append(rs[j], nil)
		if i%100 == 99 {
			mixed.Flush()
			mixed.Compress(context.Background(), t0.Add(time.Duration(sec)*time.Second))
		}
	}
	mixed.Flush()
	want, got := allRecords(t, inOrder, "q"), allRecords(t, mixed, "q")
	if len(want) != len(got) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !want[i].Time.Equal(got[i].Time) || want[i].PowerW != got[i].PowerW || want[i].EnergyWh != got[i].EnergyWh {
			t.Fatalf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := mixed.CheckRollups("q"); err != nil {
		t.Fatal(err)
	}
	for _, tier := range Tiers {
		w, g := rollupsOf(t, inOrder, "q", tier), rollupsOf(t, mixed, "q", tier)
		if len(w) != len(g) {
			t.Fatalf("%s: %d buckets, want %d", tier, len(g), len(w))
		}
		for i := range w {
			if !aggEqualBuckets(g[i], w[i]) {
				t.Fatalf("%s bucket %d = %+v, want %+v", tier, i, g[i], w[i])
			}
		}
	}
}

// TestCompressorRunsInTheBackground checks the store's own compressor moves
// readings past CompressAfter without being asked.
func TestCompressorRunsInTheBackground(t *testing.T) {
	boltOnly(t)
	s, err := Open(t.TempDir(), Options{CompressAfter: time.Hour, CompressEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := time.Now().Add(-5 * time.Hour).Truncate(time.Hour)
	var rs []meter.Reading
	for i := 0; i < 360; i++ {
		rs = append(rs, meter.Reading{Meter: "bg", Time: old.Add(time.Duration(i) * 10 * time.Second), PowerW: 5, Stamped: true})
	}
	mustAppend(t, s, rs...)
	deadline := time.Now().Add(10 * time.Second)
	for bucketBytes(s, bucketBlocks) == 0 || rawKeys(t, s, "bg") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s, %d raw readings left and no block", rawKeys(t, s, "bg"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := allRecords(t, s, "bg"); len(got) != 360 {
		t.Errorf("%d records after background compression, want 360", len(got))
	}
}

func rawKeys(t *testing.T, s *Store, m string) int {
	n := 0
	boltOf(t, s).db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketSeries).Bucket([]byte(m)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}
