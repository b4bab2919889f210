package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// bareMochi runs a mochi-mqtt broker with no hook but allow-all on a free
// loopback port, prints its address and serves until SIGTERM: the baseline
// of the steady-load benchmark (VATIO_TEST_CHILD=bare-mochi).
func bareMochi() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Each client's outbound queue as Vatio's default (mqtt.max_queued_messages),
	// not mochi's 8,192, so that resident memory compares like with like.
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 512
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps})
	_ = srv.AddHook(new(allowAll), nil)
	_ = srv.AddListener(listeners.NewNet("bare", ln))
	if err := srv.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bare ready mqtt=%s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	srv.Close()
}

// allowAll lets every client connect and publish, as mochi's AllowHook
// does (whose package would bring in a YAML library).
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

var bareLine = regexp.MustCompile(`bare ready mqtt=(\S+)`)

// startBare starts bareMochi as a process of its own.
func startBare(tb testing.TB) (*exec.Cmd, string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VATIO_TEST_CHILD=bare-mochi")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := bareLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case addr := <-found:
		return cmd, addr
	case <-time.After(20 * time.Second):
		tb.Fatal("bare mochi not ready")
	}
	return nil, ""
}

// steadyRun is what BenchmarkSteadyLoad measures of one process: per
// reading, bytes written and CPU in ms; the peak resident memory during the
// load; the PUBACK latencies; the bytes written in the idle time after.
type steadyRun struct {
	bytes, cpu, peakMB float64
	lat                []time.Duration
	idle               int64
}

// pct is the latency at quantile p, in ms.
func (r steadyRun) pct(p float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	return float64(r.lat[int(float64(len(r.lat)-1)*p)].Microseconds()) / 1000
}

// procIO returns a process's bytes written to the block layer
// (/proc/<pid>/io write_bytes) and its CPU time (utime+stime).
func procIO(tb testing.TB, pid int) (written int64, cpu time.Duration) {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			written, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command name, which may hold spaces: utime and
	// stime are the 14th and 15th fields, in clock ticks (100 a second).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return written, time.Duration(ut+st) * 10 * time.Millisecond
}

// connectMeters connects n MQTT 3.1.1 clients to addr, with client ids
// prefix-0, prefix-1...
func connectMeters(tb testing.TB, addr, prefix string, n int) []paho3.Client {
	tb.Helper()
	clients := make([]paho3.Client, n)
	for i := range clients {
		opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("%s-%d", prefix, i)).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(20 * time.Second)
		c := paho3.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			tb.Fatalf("connect %d: %v", i, tok.Error())
		}
		clients[i] = c
	}
	return clients
}

// steadyLoad connects meters clients to addr, each publishing a reading
// at interval with qos for d, and returns how many were published and the
// PUBACK waits (QoS 1).
func steadyLoad(tb testing.TB, addr string, meters int, interval time.Duration, qos byte, d time.Duration) (int, []time.Duration) {
	tb.Helper()
	clients := connectMeters(tb, addr, "steady", meters)
	defer func() {
		for _, c := range clients {
			c.Disconnect(0)
		}
	}()
	var mu sync.Mutex
	var lat []time.Duration
	sent := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			// Spread over the interval, as real meters are.
			time.Sleep(time.Duration(i) * interval / time.Duration(meters))
			tick := time.NewTicker(interval)
			defer tick.Stop()
			n := 0
			for t := time.Now(); t.Sub(start) < d; t = <-tick.C {
				begin := time.Now()
				tok := c.Publish(fmt.Sprintf("energy/consumption/m%04d", i), qos, false, strconv.FormatFloat(1.5+float64(n%7)/10, 'f', 2, 64))
				n++
				if qos > 0 {
					if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
						mu.Lock()
						lat = append(lat, time.Since(begin))
						mu.Unlock()
					}
				}
			}
			mu.Lock()
			sent += n
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return sent, lat
}

// BenchmarkSteadyLoad measures what meters publishing steadily cost, as
// users load Vatio (unlike a burst, where one commit carries hundreds of
// readings): Vatio's binary and a bare mochi broker as processes, each
// taking the same Paho clients at a fixed rate, one after the other in the
// same run. It reports, per reading, the bytes written to disk
// (/proc/<pid>/io write_bytes, page-cache writeback included) and the CPU
// time (utime+stime) of each, their ratio, and the PUBACK p50/p99 (QoS 1).
// The cases are issue 15's: 1,000 meters at 1 Hz, QoS 1, 30 s; 100 meters
// at 1 Hz, QoS 1, 30 s; 20 plugs every 5 s, QoS 0, 60 s, then the bytes
// Vatio writes in an idle minute.
// VATIO_BENCH_STEADY_SECONDS shortens both loads.
func BenchmarkSteadyLoad(b *testing.B) {
	cases := []struct {
		name     string
		meters   int
		interval time.Duration
		qos      byte
		d        time.Duration
		// idle is a quiet time after the load whose writes are measured.
		idle time.Duration
	}{
		{"1000x1Hz-qos1", 1000, time.Second, 1, 30 * time.Second, 0},
		{"100x1Hz-qos1", 100, time.Second, 1, 30 * time.Second, 0},
		{"20x0.2Hz-qos0", 20, 5 * time.Second, 0, 60 * time.Second, time.Minute},
	}
	if s, err := strconv.Atoi(os.Getenv("VATIO_BENCH_STEADY_SECONDS")); err == nil && s > 0 {
		for i := range cases {
			cases[i].d = time.Duration(s) * time.Second
		}
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				measure := func(pid int, addr string) (r steadyRun) {
					time.Sleep(time.Second)
					resetPeak(b, pid)
					w0, c0 := procIO(b, pid)
					n, lat := steadyLoad(b, addr, c.meters, c.interval, c.qos, c.d)
					r.peakMB = float64(procStatusKB(b, pid, "VmHWM")) / 1024
					time.Sleep(2 * time.Second) // writes of the last commits, and page-cache writeback's start
					w1, c1 := procIO(b, pid)
					if c.idle > 0 {
						time.Sleep(c.idle)
						w2, _ := procIO(b, pid)
						r.idle = w2 - w1
					}
					r.bytes, r.cpu, r.lat = float64(w1-w0)/float64(n), float64((c1-c0).Microseconds())/1000/float64(n), lat
					return r
				}
				bare, bareAddr := startBare(b)
				bareRun := measure(bare.Process.Pid, bareAddr)
				cfg := filepath.Join(b.TempDir(), "config.yaml")
				if err := os.WriteFile(cfg, []byte("mqtt:\n  max_connections_per_address: 0\n"), 0o600); err != nil {
					b.Fatal(err)
				}
				v, mqttAddr, _, _ := childWith(b, b.TempDir(), cfg)
				vRun := measure(v.Process.Pid, mqttAddr)
				b.ReportMetric(vRun.bytes, "vatio-B/reading")
				b.ReportMetric(bareRun.bytes, "bare-B/reading")
				b.ReportMetric(vRun.cpu, "vatio-cpu-ms/reading")
				b.ReportMetric(bareRun.cpu, "bare-cpu-ms/reading")
				if bareRun.cpu > 0 {
					b.ReportMetric(vRun.cpu/bareRun.cpu, "x-bare-cpu")
				}
				b.ReportMetric(vRun.peakMB, "vatio-peak-MB")
				b.ReportMetric(bareRun.peakMB, "bare-peak-MB")
				if c.idle > 0 {
					b.ReportMetric(float64(vRun.idle)/1024, "vatio-idle-KiB/"+c.idle.String())
				}
				if c.qos == 0 {
					continue // no acknowledgement to time
				}
				b.ReportMetric(vRun.pct(0.5), "vatio-p50-ms")
				b.ReportMetric(vRun.pct(0.99), "vatio-p99-ms")
				b.ReportMetric(bareRun.pct(0.99), "bare-p99-ms")
				// The default memory settings against none: Go's own
				// GOGC and no limit, the figures they must not cost.
				off, offAddr, _, _ := childWith(b, b.TempDir(), cfg, "GOGC=100", "GOMEMLIMIT=off")
				offRun := measure(off.Process.Pid, offAddr)
				b.ReportMetric(offRun.peakMB, "gc-off-peak-MB")
				b.ReportMetric(offRun.pct(0.99), "gc-off-p99-ms")
				if p := offRun.pct(0.99); p > 0 {
					b.ReportMetric(vRun.pct(0.99)/p, "x-gc-off-p99")
				}
			}
		})
	}
}
