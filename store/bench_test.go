package store

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/internal/meter"
)

// householdMonth returns a month of one meter at 10 s: a 150 W baseload, a
// fridge cycling 0/90 W every 20 minutes, a daily cooking peak, a few kettle
// runs, 2 W of noise, rounded to 0.1 W as meters report it. stamp jitters
// the times like receive times when set (milliseconds), else whole seconds.
func householdMonth(start time.Time, jitter bool) []meter.Reading {
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 30 * 24 * 360
	out := make([]meter.Reading, 0, n)
	for i := 0; i < n; i++ {
		t := start.Add(time.Duration(i) * 10 * time.Second)
		if jitter {
			t = t.Add(time.Duration(rng.IntN(4000)-2000) * time.Microsecond).Truncate(time.Millisecond)
		}
		w := 150.0
		if (i/120)%2 == 0 {
			w += 90
		}
		if h := t.Hour(); h >= 19 && h < 21 {
			w += 1200
		}
		if i%8640 > 2500 && i%8640 < 2518 {
			w += 2000
		}
		w += rng.NormFloat64() * 2
		out = append(out, meter.Reading{Meter: "house", Time: t, PowerW: math.Round(w*10) / 10, Stamped: true})
	}
	return out
}

// bucketBytes returns the bytes of pages allocated to a top-level bucket.
func bucketBytes(s *Store, name []byte) int {
	var n int
	s.eng.(*boltEngine).db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(name).Stats()
		n = st.BranchAlloc + st.LeafAlloc
		return nil
	})
	return n
}

// BenchmarkBytesPerReading stores a month of one household meter at 10 s
// (259,200 readings), compresses it, and reports the bytes of database pages
// its readings take, raw before and in blocks after, and those of the
// rollups, per reading: device-stamped (whole seconds) and stamped on
// receipt (milliseconds, with jitter).
func BenchmarkBytesPerReading(b *testing.B) {
	for _, v := range []struct {
		name   string
		jitter bool
	}{{"device-stamped", false}, {"receive-stamped", true}} {
		b.Run(v.name, func(b *testing.B) {
			var raw, blocks, rollups float64
			for b.Loop() {
				s, err := Open(b.TempDir(), Options{})
				if err != nil {
					b.Fatal(err)
				}
				rs := householdMonth(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), v.jitter)
				if _, err := s.Import(rs, nil); err != nil {
					b.Fatal(err)
				}
				n := float64(len(rs))
				raw = float64(bucketBytes(s, bucketSeries)) / n
				if _, err := s.Compress(context.Background(), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)); err != nil {
					b.Fatal(err)
				}
				blocks = float64(bucketBytes(s, bucketBlocks)+bucketBytes(s, bucketSeries)) / n
				rollups = float64(bucketBytes(s, TierMinute.bucket())+bucketBytes(s, TierHour.bucket())+bucketBytes(s, TierDay.bucket())) / n
				s.Close()
			}
			b.ReportMetric(raw, "raw-B/reading")
			b.ReportMetric(blocks, "compressed-B/reading")
			b.ReportMetric(rollups, "rollups-B/reading")
			b.ReportMetric(raw/blocks, "ratio")
		})
	}
}

// BenchmarkAppend appends device-stamped readings of 100 meters one at a
// time, as the broker's hook does, and waits for every acknowledgement: the
// store's ingest throughput on the suite's engine (VATIO_TEST_STORE=postgres
// for PostgreSQL, see engine_test.go).
func BenchmarkAppend(b *testing.B) {
	s, err := testOpen(b, b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	i := 0
	for b.Loop() {
		wg.Add(1)
		r := meter.Reading{Meter: fmt.Sprintf("m%02d", i%100), Time: t0.Add(time.Duration(i) * time.Millisecond), PowerW: float64(i % 1000), Stamped: true}
		if err := s.Append(r, func(err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}
