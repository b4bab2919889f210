package store

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

func allRecords(t *testing.T, s *Store, m string) []Record {
	t.Helper()
	recs, _, err := s.Range(m, t0.Add(-1000*time.Hour), t0.Add(1000*time.Hour), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
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
