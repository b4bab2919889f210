package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/internal/meter"
)

// The tests of bbolt's compressed blocks as the store uses them; the
// blocks' encoding is tested in bolt_block_test.go.

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
