package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// selfWritten returns this process's bytes written to the block layer.
func selfWritten(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Skip("no /proc/self/io:", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Skip("no write_bytes in /proc/self/io")
	return 0
}

// BenchmarkDiskPerDay measures what the bbolt store writes to disk
// (write_bytes of /proc/self/io) to hold three sites' readings, through
// the real writer: the log and its fdatasyncs, checkpoints every 30
// minutes or at the head's bound (16 MiB), the compressor every hour. Time
// is simulated, so that a day takes seconds: readings carry simulated
// times, and the syncs come when the defaults would bring them, every 5 s
// for QoS 0 plugs (flush_interval) and every 30 readings for a plant's
// QoS 1 meters (2,000 readings a second, a group per sync_delay of 15 ms).
// The plant runs 10 minutes, and a day is 144 of them (its hourly
// compression is left out).
func BenchmarkDiskPerDay(b *testing.B) {
	boltOnly(b)
	sites := []struct {
		name     string
		meters   int
		interval time.Duration
		qos1     bool
		span     time.Duration // simulated
		perSync  int           // QoS 1: readings per fdatasync
	}{
		{"household-20x0.2Hz-qos0", 20, 5 * time.Second, false, 24 * time.Hour, 0},
		{"office-200x0.1Hz-qos0", 200, 10 * time.Second, false, 24 * time.Hour, 0},
		{"plant-2000x1Hz-qos1", 2000, time.Second, true, 10 * time.Minute, 30},
	}
	for _, site := range sites {
		b.Run(site.name, func(b *testing.B) {
			for b.Loop() {
				s, err := Open(b.TempDir(), Options{SyncDelay: -1})
				if err != nil {
					b.Fatal(err)
				}
				ids := make([]string, site.meters)
				for i := range ids {
					ids[i] = fmt.Sprintf("m%04d", i)
				}
				start := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
				w0 := selfWritten(b)
				n, pending := 0, 0
				const flushEvery = 5 * time.Second
				nextFlush, nextCheckpoint, nextCompress := flushEvery, 30*time.Minute, time.Hour
				for at := time.Duration(0); at < site.span; at += time.Second {
					// Each meter publishes once an interval, spread over it.
					for i, id := range ids {
						if step := int64(site.interval / time.Second); int64(at/time.Second)%step != int64(i)%step {
							continue
						}
						r := meter.Reading{Meter: id, Time: start.Add(at + time.Duration(i)*time.Millisecond), PowerW: float64(100 + n%977), Stamped: true, Source: "tasmota"}
						if site.qos1 {
							err = s.Append(r, nil)
						} else {
							err = s.AppendVolatile(r, nil)
						}
						if err != nil {
							b.Fatal(err)
						}
						n++
						if pending++; site.qos1 && pending == site.perSync {
							if err := s.Flush(); err != nil {
								b.Fatal(err)
							}
							pending = 0
						}
					}
					if at+time.Second >= nextFlush {
						if err := s.Flush(); err != nil {
							b.Fatal(err)
						}
						nextFlush += flushEvery
					}
					if at+time.Second >= nextCheckpoint {
						if err := s.Checkpoint(); err != nil {
							b.Fatal(err)
						}
						nextCheckpoint += 30 * time.Minute
					}
					if at+time.Second >= nextCompress {
						if _, err := s.Compress(context.Background(), start.Add(at-time.Hour)); err != nil {
							b.Fatal(err)
						}
						nextCompress += time.Hour
					}
				}
				if err := s.Checkpoint(); err != nil {
					b.Fatal(err)
				}
				written := selfWritten(b) - w0
				s.Close()
				perDay := float64(written) * float64(24*time.Hour) / float64(site.span)
				b.ReportMetric(perDay/1e6, "MB/day")
				b.ReportMetric(float64(written)/float64(n), "B/reading")
			}
		})
	}
}
