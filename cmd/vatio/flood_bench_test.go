package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// BenchmarkConnectFlood measures what a flood of CONNECTs with wrong
// passwords costs Vatio and its connected clients. It starts Vatio as a
// real process, gives a device credentials, and connects 10 MQTT 3.1.1
// clients that each publish a QoS 1 reading, wait for its PUBACK, pause
// 10 ms and go on. For floodPhase their PUBACK delays are taken alone (the
// baseline), then for as long again while 100 clients at a time CONNECT
// as the device with a wrong password, each again as soon as it is
// refused. It reports the connected clients' PUBACK p50 and p99 of both
// phases in ms, Vatio's resident memory growth during the flood (its
// VmHWM, the peak, reset before the flood, less its VmRSS then) in MB, and
// how the flood's CONNECTs were answered per second: busy (server
// unavailable: no password check free), refused (bad password) or dropped
// (no CONNACK before the connect timeout).
//
// The cases are auth.password_checks at its default (half the cores), at
// the core count, and at 100, about what no bound did before it. Vatio, the clients and
// the flood share this machine's cores, so the flood's own cost (100
// connections opened and refused again and again) is in the figures too.
//
//	go test -run '^$' -bench BenchmarkConnectFlood -benchtime 1x .
func BenchmarkConnectFlood(b *testing.B) {
	for _, checks := range []int{0, runtime.NumCPU(), 100} {
		name := "checks=default"
		if checks > 0 {
			name = fmt.Sprintf("checks=%d", checks)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				connectFlood(b, checks)
			}
		})
	}
}

const (
	floodPhase      = 5 * time.Second
	floodClients    = 100
	floodPublishers = 10
)

func connectFlood(b *testing.B, checks int) {
	dir := b.TempDir()
	cfg := filepath.Join(b.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "auth:\n  password_checks: %d\n", checks), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd, mqttAddr, httpAddr, logs := childWith(b, dir, cfg)
	pid := cmd.Process.Pid

	body, _ := json.Marshal(map[string]any{"name": "flood-target"})
	resp, err := apiClient.Post("http://"+httpAddr+"/api/v1/devices", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var added struct{ Password string }
	err = json.NewDecoder(resp.Body).Decode(&added)
	resp.Body.Close()
	if err != nil || added.Password == "" {
		b.Fatalf("add a device: %v (HTTP %d)", err, resp.StatusCode)
	}

	pubs := make([]paho3.Client, floodPublishers)
	for i := range pubs {
		opts := paho3.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID(fmt.Sprintf("steady-%d", i)).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
		pubs[i] = paho3.NewClient(opts)
		if tok := pubs[i].Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			b.Fatalf("connect publisher %d: %v", i, tok.Error())
		}
		defer pubs[i].Disconnect(0)
	}
	// publish runs the publishers for floodPhase and returns their PUBACK
	// delays, sorted.
	publish := func() []time.Duration {
		var mu sync.Mutex
		var delays []time.Duration
		end := time.Now().Add(floodPhase)
		var wg sync.WaitGroup
		for i, c := range pubs {
			wg.Go(func() {
				var mine []time.Duration
				for n := 0; time.Now().Before(end); n++ {
					began := time.Now()
					tok := c.Publish(fmt.Sprintf("energy/consumption/steady-%d", i), 1, false, fmt.Sprint(100+n%50))
					if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
						b.Errorf("publish: %v", tok.Error())
						return
					}
					mine = append(mine, time.Since(began))
					time.Sleep(10 * time.Millisecond)
				}
				mu.Lock()
				delays = append(delays, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(delays)
		return delays
	}

	base := publish()

	// Reset the peak resident memory (VmHWM) to the current.
	resetPeak(b, pid)
	before := procStatusKB(b, pid, "VmRSS")
	var busy, refused, dropped, connected atomic.Int64
	stop := make(chan struct{})
	var flood sync.WaitGroup
	for i := range floodClients {
		flood.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				opts := paho3.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID(fmt.Sprintf("flood-%d-%d", i, n)).
					SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(30 * time.Second).
					SetUsername("flood-target").SetPassword("not the password")
				c := paho3.NewClient(opts)
				tok := c.Connect()
				tok.WaitTimeout(40 * time.Second)
				switch code := tok.(*paho3.ConnectToken).ReturnCode(); {
				case code == 3: // server unavailable: no password check free
					busy.Add(1)
				case code == 4 || code == 5: // bad user name or password, not authorized
					refused.Add(1)
				case tok.Error() != nil: // no CONNACK in time: dropped
					dropped.Add(1)
				default:
					connected.Add(1)
					c.Disconnect(0)
				}
			}
		})
	}
	flooded := publish()
	close(stop)
	flood.Wait()
	peak := procStatusKB(b, pid, "VmHWM")
	if connected.Load() > 0 {
		b.Errorf("%d CONNECTs with a wrong password connected\n%s", connected.Load(), logs)
	}

	pct := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return math.NaN()
		}
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return float64(d[max(i, 0)]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(base, 0.50), "base-p50-ms")
	b.ReportMetric(pct(base, 0.99), "base-p99-ms")
	b.ReportMetric(pct(flooded, 0.50), "flood-p50-ms")
	b.ReportMetric(pct(flooded, 0.99), "flood-p99-ms")
	b.ReportMetric(float64(peak-before)/1024, "rss-growth-MB")
	b.ReportMetric(float64(peak)/1024, "rss-peak-MB")
	b.ReportMetric(float64(busy.Load())/floodPhase.Seconds(), "busy/s")
	b.ReportMetric(float64(refused.Load())/floodPhase.Seconds(), "refused/s")
	b.ReportMetric(float64(dropped.Load())/floodPhase.Seconds(), "dropped/s")
}
