package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// sampleAnon samples a process's anonymous resident memory (its heap and
// stacks, not the database file it maps) every 50 ms until stop is
// called, which returns the highest sample.
func sampleAnon(tb testing.TB, pid int) (stop func() int64) {
	done, out := make(chan struct{}), make(chan int64)
	go func() {
		var peak int64
		for {
			peak = max(peak, procStatusKB(tb, pid, "RssAnon")<<10)
			select {
			case <-done:
				out <- peak
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); return <-out }
}

// BenchmarkHostileInput starts Vatio as a real process and sends it what
// an attacker or a careless user would, reporting the process's peak
// resident memory over its idle figure (MB) and the time each took:
//
//   - gzip-login: a 1 MB gzip body that inflates to 1 GiB, to POST /login
//     (no credentials needed);
//   - import-1GiB-bad-end: a 1 GiB CSV import (57 million readings) whose
//     last line is bad, and import-1GiB: the same, all good and stored
//     (VATIO_BENCH_IMPORT_MB changes the size);
//   - wrong-logins: 100 wrong log-ins at once while 10 MQTT clients
//     publish QoS 1 readings, with their PUBACK p50/p99 during the flood
//     next to the same clients' figures just before it (same run).
func BenchmarkHostileInput(b *testing.B) {
	b.Run("gzip-login", func(b *testing.B) {
		cmd, _, httpAddr, _ := child(b, b.TempDir())
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for range 64 {
			zw.Write(zeros)
		}
		zw.Close()
		body := bytes.Repeat(gz.Bytes(), 16) // 1 GiB inflated, under the 1 MiB body limit
		for b.Loop() {
			time.Sleep(time.Second)
			idle := procStatusKB(b, cmd.Process.Pid, "VmHWM") << 10
			resetPeak(b, cmd.Process.Pid)
			start := time.Now()
			req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/login", bytes.NewReader(body))
			req.Header.Set("Content-Type", "multipart/form-data; boundary=vatio") // fasthttp inflates these
			req.Header.Set("Content-Encoding", "gzip")
			req.Header.Set("Authorization", "")
			status := 0
			if resp, err := anon.Do(req); err == nil {
				status = resp.StatusCode
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			took := time.Since(start)
			peak := procStatusKB(b, cmd.Process.Pid, "VmHWM") << 10
			b.ReportMetric(float64(len(body))/(1<<20), "body-MB")
			b.ReportMetric(float64(peak-idle)/(1<<20), "peak-over-idle-MB")
			b.ReportMetric(took.Seconds(), "s/request")
			b.ReportMetric(float64(status), "status")
		}
	})
	importCSV := func(b *testing.B, badEnd bool) {
		cmd, _, httpAddr, logs := child(b, b.TempDir())
		size := int64(1 << 30)
		if mb, err := strconv.Atoi(os.Getenv("VATIO_BENCH_IMPORT_MB")); err == nil && mb > 0 {
			size = int64(mb) << 20
		}
		for b.Loop() {
			time.Sleep(time.Second)
			idle, idleAnon := procStatusKB(b, cmd.Process.Pid, "VmHWM")<<10, procStatusKB(b, cmd.Process.Pid, "RssAnon")<<10
			resetPeak(b, cmd.Process.Pid)
			stopAnon := sampleAnon(b, cmd.Process.Pid)
			pr, pw := io.Pipe()
			go func() {
				t0 := time.Now().Add(-2 * 366 * 24 * time.Hour).Unix() // 57 million seconds back
				var buf []byte
				var sent int64
				for i := int64(0); sent < size-(1<<16); i++ {
					buf = strconv.AppendInt(buf, t0+i, 10)
					buf = append(buf, ",1234.5\n"...)
					if len(buf) > 64<<10 {
						n, err := pw.Write(buf)
						sent += int64(n)
						if err != nil {
							return
						}
						buf = buf[:0]
					}
				}
				pw.Write(buf)
				if badEnd {
					pw.Write([]byte("not a reading\n"))
				}
				pw.Close()
			}()
			start := time.Now()
			req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/api/v1/meters/bench/import", pr)
			req.Header.Set("Content-Type", "text/csv")
			status := 0
			resp, err := apiClient.Do(req)
			if err != nil {
				b.Logf("import: %v\n%s", err, logs)
			} else {
				status = resp.StatusCode
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				b.Logf("import: %d %s", status, answer)
			}
			pr.Close()
			took := time.Since(start)
			peak, peakAnon := procStatusKB(b, cmd.Process.Pid, "VmHWM")<<10, stopAnon()
			b.ReportMetric(float64(size)/(1<<20), "body-MB")
			b.ReportMetric(float64(peak-idle)/(1<<20), "peak-over-idle-MB")
			b.ReportMetric(float64(peakAnon-idleAnon)/(1<<20), "anon-peak-over-idle-MB")
			b.ReportMetric(took.Seconds(), "s/request")
			b.ReportMetric(float64(status), "status")
		}
	}
	b.Run("import-1GiB-bad-end", func(b *testing.B) { importCSV(b, true) })
	b.Run("import-1GiB", func(b *testing.B) { importCSV(b, false) })
	b.Run("wrong-logins", func(b *testing.B) {
		cmd, mqttAddr, httpAddr, _ := child(b, b.TempDir())
		const publishers = 10
		clients := make([]paho3.Client, publishers)
		for i := range clients {
			opts := paho3.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID(fmt.Sprintf("pub-%d", i)).
				SetProtocolVersion(4).SetAutoReconnect(false)
			c := paho3.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(0)
			clients[i] = c
		}
		// publish sends QoS 1 readings, 10 a second per client, for d,
		// and returns every PUBACK's wait.
		publish := func(d time.Duration) []time.Duration {
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Go(func() {
					for end := time.Now().Add(d); time.Now().Before(end); {
						start := time.Now()
						if tok := c.Publish(fmt.Sprintf("energy/consumption/m%d", i), 1, false, "1.5"); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
							mu.Lock()
							lat = append(lat, time.Since(start))
							mu.Unlock()
						}
						time.Sleep(100 * time.Millisecond)
					}
				})
			}
			wg.Wait()
			slices.Sort(lat)
			return lat
		}
		pct := func(lat []time.Duration, p float64) float64 {
			if len(lat) == 0 {
				return 0
			}
			return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
		}
		for b.Loop() {
			quiet := publish(3 * time.Second)
			idle := procStatusKB(b, cmd.Process.Pid, "VmHWM") << 10
			resetPeak(b, cmd.Process.Pid)
			var refused, wrong, other int
			var mu sync.Mutex
			done := make(chan []time.Duration)
			go func() { done <- publish(3 * time.Second) }()
			var wg sync.WaitGroup
			for i := range 100 {
				wg.Go(func() {
					form := url.Values{"user": {fmt.Sprintf("guess-%d", i)}, "password": {"not the right password"}}
					req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/login", strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", "")
					resp, err := anon.Do(req)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						other++
					case resp.StatusCode == http.StatusTooManyRequests:
						refused++
					case resp.StatusCode == http.StatusUnauthorized:
						wrong++
					default:
						other++
					}
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
			wg.Wait()
			flood := <-done
			peak := procStatusKB(b, cmd.Process.Pid, "VmHWM") << 10
			b.ReportMetric(float64(peak-idle)/(1<<20), "peak-over-idle-MB")
			b.ReportMetric(pct(quiet, 0.5), "quiet-p50-ms")
			b.ReportMetric(pct(quiet, 0.99), "quiet-p99-ms")
			b.ReportMetric(pct(flood, 0.5), "flood-p50-ms")
			b.ReportMetric(pct(flood, 0.99), "flood-p99-ms")
			b.ReportMetric(float64(wrong), "checked")
			b.ReportMetric(float64(refused), "busy-429")
			b.ReportMetric(float64(other), "other")
		}
	})
}
