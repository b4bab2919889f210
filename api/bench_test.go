package api_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// yearStart is the first reading of the generated meter-year.
var yearStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	yearOnce sync.Once
	yearURL  string
	yearSt   *store.Store
	yearDir  string
	yearErr  error
)

// meterYear serves, over real HTTP, a store holding one meter-year at 10 s
// (3,153,600 readings) of a household-like load, built once per run through
// the store's import (the same path and rollups as live readings) and then
// compressed, as it is at rest.
func meterYear(b *testing.B) (string, *store.Store) {
	yearOnce.Do(func() {
		yearDir, yearErr = os.MkdirTemp("", "vatio-bench-")
		if yearErr != nil {
			return
		}
		yearSt, yearErr = store.Open(yearDir, store.Options{})
		if yearErr != nil {
			return
		}
		const n = 365 * 24 * 360
		chunk := make([]meter.Reading, 0, 360*24*30)
		for i := 0; i < n; i++ {
			t := yearStart.Add(time.Duration(i) * 10 * time.Second)
			h := float64(t.Hour()) + float64(t.Minute())/60
			w := 150 + 90*float64((i/120)%2) + 800*math.Max(0, math.Sin((h-6)/24*2*math.Pi)) + float64(i%7)
			chunk = append(chunk, meter.Reading{Meter: "house", Time: t, PowerW: math.Round(w*10) / 10, Stamped: true})
			if len(chunk) == cap(chunk) || i == n-1 {
				if _, yearErr = yearSt.Import(chunk, nil); yearErr != nil {
					return
				}
				chunk = chunk[:0]
			}
		}
		// At rest, everything older than an hour is in compressed blocks.
		if _, yearErr = yearSt.Compress(context.Background(), yearStart.AddDate(1, 0, 0)); yearErr != nil {
			return
		}
		srv := api.New(yearSt, alert.New(yearSt, nil, alert.Options{}), api.Options{BodyLimitBytes: 1 << 20})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			yearErr = err
			return
		}
		go srv.Serve(ln)
		yearURL = "http://" + ln.Addr().String()
	})
	if yearErr != nil {
		b.Fatal(yearErr)
	}
	return yearURL, yearSt
}

func fetch(b *testing.B, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("%s: %s", url, resp.Status)
	}
	return int(n)
}

// BenchmarkQueries measures, over real HTTP against one meter-year at 10 s,
// the three queries a dashboard makes, and in the same run the baseline of
// computing the year's hourly chart by scanning every raw reading (what a
// store without rollups, like the original design's SQLite table, must do).
func BenchmarkQueries(b *testing.B) {
	url, st := meterYear(b)
	year := fmt.Sprintf("from=%s&to=%s", yearStart.Format(time.RFC3339), yearStart.AddDate(1, 0, 0).Format(time.RFC3339))
	day := fmt.Sprintf("from=%s&to=%s", yearStart.AddDate(0, 6, 0).Format(time.RFC3339), yearStart.AddDate(0, 6, 1).Format(time.RFC3339))
	b.Run("year-auto", func(b *testing.B) {
		for b.Loop() {
			fetch(b, url+"/api/v1/meters/house/readings?step=auto&"+year)
		}
	})
	b.Run("day-raw", func(b *testing.B) {
		for b.Loop() {
			fetch(b, url+"/api/v1/meters/house/readings?step=raw&max_points=10000&"+day)
		}
	})
	b.Run("year-daily-kwh", func(b *testing.B) {
		for b.Loop() {
			fetch(b, url+"/api/v1/meters/house/readings?step=1d&"+year)
		}
	})
	b.Run("baseline-year-hourly-from-raw", func(b *testing.B) {
		for b.Loop() {
			hours := map[int64]float64{}
			from, to := yearStart, yearStart.AddDate(1, 0, 0)
			for {
				recs, more, err := st.Range("house", from, to, 100000)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range recs {
					hours[r.Time.Unix()/3600] += r.PowerW
				}
				if !more {
					break
				}
				from = recs[len(recs)-1].Time.Add(time.Nanosecond)
			}
			if len(hours) != 8760 {
				b.Fatalf("%d hours", len(hours))
			}
		}
	})
}
