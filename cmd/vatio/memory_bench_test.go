package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// procStatusKB reads a field of /proc/<pid>/status (VmRSS, VmHWM, RssAnon), in KiB.
func procStatusKB(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// resetPeak resets a process's peak resident memory (VmHWM) to its
// current figure, so that the next VmHWM is the peak from now on.
func resetPeak(tb testing.TB, pid int) {
	tb.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		tb.Fatalf("reset VmHWM: %v", err)
	}
}

// BenchmarkMemory1000Meters starts Vatio as a real process, connects 1,000
// MQTT clients (one per meter) that each publish a QoS 1 reading every
// second for 20 seconds, and reports the process's resident memory before
// the clients connected and at the end, in MB.
func BenchmarkMemory1000Meters(b *testing.B) {
	for b.Loop() {
		// 1,000 clients from this one address: past the per-address cap.
		cfg := filepath.Join(b.TempDir(), "config.yaml")
		if err := os.WriteFile(cfg, []byte("mqtt:\n  max_connections_per_address: 0\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		cmd, mqttAddr, httpAddr, _ := childWith(b, b.TempDir(), cfg)
		idle := procStatusKB(b, cmd.Process.Pid, "VmRSS") << 10
		const meters = 1000
		clients := connectMeters(b, mqttAddr, "mem", meters)
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := 0; s < 20; s++ {
					c.Publish(fmt.Sprintf("energy/consumption/m%04d", i), 1, false, "1.5").WaitTimeout(10 * time.Second)
					time.Sleep(time.Second)
				}
			}()
		}
		wg.Wait()
		loaded := procStatusKB(b, cmd.Process.Pid, "VmRSS") << 10
		if os.Getenv("VATIO_BENCH_DEBUG") != "" {
			resp, err := apiClient.Get("http://" + httpAddr + "/metrics")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, l := range strings.Split(string(body), "\n") {
					if strings.HasPrefix(l, "go_memstats_") || strings.HasPrefix(l, "go_goroutines") || strings.HasPrefix(l, "process_resident") {
						fmt.Fprintln(os.Stderr, l)
					}
				}
			}
		}
		for _, c := range clients {
			c.Disconnect(0)
		}
		b.ReportMetric(float64(idle)/(1<<20), "idle-MB")
		b.ReportMetric(float64(loaded)/(1<<20), "1000-meters-MB")
	}
}
