package hooks_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/hooks"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

const (
	benchClients = 100
	benchWindow  = 64 // QoS 1 publishes in flight per client
)

// BenchmarkIngest measures QoS 1 readings per second from 100 MQTT clients
// publishing as fast as they are acknowledged, against a bare mochi broker
// with no hooks (nothing stored) before and after Vatio's broker with the
// ingest hook (every PUBACK after its commit), in the same run. It
// reports each side's msg/s, Vatio's ratio to the bare broker, and Vatio's
// p50 and p99 PUBACK latency.
func BenchmarkIngest(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := max(b.N, benchClients*benchWindow)

	// The bare broker runs before and after Vatio and the two are averaged,
	// so that a change in the machine's load during the run (it is shared)
	// weighs on both sides alike.
	bareRun := func() float64 {
		bare, err := broker.New(broker.Options{Addr: "127.0.0.1:0", MaxPacketBytes: 1 << 20, Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		bare.Start()
		defer bare.Close()
		rate, _ := publishLoad(b, bare.Addr().String(), n)
		return rate
	}
	bareBefore := bareRun()

	st, err := store.Open(b.TempDir(), store.Options{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	vb, err := broker.New(broker.Options{Addr: "127.0.0.1:0", MaxPacketBytes: 1 << 20, WriteTimeout: 10 * time.Second, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	h := hooks.NewIngest([]meter.Source{(&meter.Decoder{Topic: "energy/consumption", Limits: meter.DefaultLimits()}).AsSource()}, st, vb.Server(), logger)
	vb.AddHook(h, nil)
	vb.Start()
	b.ResetTimer()
	vatioRate, lat := publishLoad(b, vb.Addr().String(), n)
	b.StopTimer()
	h.Shutdown()
	stored := uint64(0)
	for _, m := range st.Meters() {
		stored += m.Readings
	}
	vb.Close()
	st.Close()
	if stored != uint64(n) {
		b.Fatalf("stored %d readings, published %d", stored, n)
	}
	bareRate := (bareBefore + bareRun()) / 2
	b.ReportMetric(bareRate, "bare-msg/s")
	b.ReportMetric(vatioRate, "vatio-msg/s")
	b.ReportMetric(vatioRate/bareRate, "ratio")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// publishLoad publishes n QoS 1 readings from benchClients clients, each
// keeping benchWindow in flight, and returns the rate and the sorted PUBACK
// latencies.
func publishLoad(b *testing.B, addr string, n int) (float64, []time.Duration) {
	clients := make([]paho3.Client, benchClients)
	for i := range clients {
		opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)).
			SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(false)
		c := paho3.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("connect: %v", tok.Error())
		}
		clients[i] = c
	}
	defer func() {
		for _, c := range clients {
			c.Disconnect(0)
		}
	}()
	lats := make([][]time.Duration, benchClients)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		share := n / benchClients
		if i < n%benchClients {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			type inflight struct {
				tok  paho3.Token
				sent time.Time
			}
			window := make([]inflight, 0, benchWindow)
			wait := func(f inflight) {
				if !f.tok.WaitTimeout(30*time.Second) || f.tok.Error() != nil {
					b.Errorf("publish: %v", f.tok.Error())
				}
				lats[i] = append(lats[i], time.Since(f.sent))
			}
			topic := fmt.Sprintf("energy/consumption/bench%d", i)
			for j := 0; j < share; j++ {
				if len(window) == benchWindow {
					wait(window[0])
					window = window[1:]
				}
				window = append(window, inflight{c.Publish(topic, 1, false, "1.5"), time.Now()})
			}
			for _, f := range window {
				wait(f)
			}
		}()
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	all := slices.Concat(lats...)
	slices.Sort(all)
	return rate, all
}

// BenchmarkAcksBesideDocumentWrites measures whether document writes (the
// audit log, sessions, rule states: each a bbolt transaction of its own)
// delay PUBACKs through bbolt's write lock. The same QoS 1 load as
// BenchmarkIngest runs alone, then beside a writer that records documents
// as fast as bbolt commits them (trimming them in one transaction every
// 1,000), then beside a writer that does the same appends and fdatasyncs
// to a plain file, in the same run. Readings go to the write-ahead log,
// not to a bbolt transaction: if they queued behind bbolt's lock, the
// documents' p99 ratio would exceed the plain file's, which shares only
// the disk and the CPU.
func BenchmarkAcksBesideDocumentWrites(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := max(b.N, benchClients*benchWindow)
	dir := b.TempDir()
	st, err := store.Open(dir, store.Options{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	vb, err := broker.New(broker.Options{Addr: "127.0.0.1:0", MaxPacketBytes: 1 << 20, WriteTimeout: 10 * time.Second, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer vb.Close()
	h := hooks.NewIngest([]meter.Source{(&meter.Decoder{Topic: "energy/consumption", Limits: meter.DefaultLimits()}).AsSource()}, st, vb.Server(), logger)
	vb.AddHook(h, nil)
	vb.Start()
	defer h.Shutdown()

	doc := []byte(`{"time":"2026-12-03T10:00:00Z","who":"admin","action":"change","target":"/api/v1/meters/plant-main","addr":"192.168.1.20","status":200}`)
	plain, err := os.Create(filepath.Join(dir, "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	writers := map[string]func(i int) error{
		"docs": func(i int) error {
			if err := st.PutDoc("audit", fmt.Sprintf("%020d", i), doc); err != nil {
				return err
			}
			if i%1000 == 999 {
				_, err := st.TrimDocs("audit", 500)
				return err
			}
			return nil
		},
		"file": func(int) error {
			if _, err := plain.Write(doc); err != nil {
				return err
			}
			return plain.Sync()
		},
	}
	beside := func(write func(i int) error) (rate float64, lat []time.Duration, perSecond float64) {
		stop := make(chan struct{})
		var done atomic.Int64
		var writer sync.WaitGroup
		writer.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := write(i); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		})
		start := time.Now()
		rate, lat = publishLoad(b, vb.Addr().String(), n)
		close(stop)
		writer.Wait()
		return rate, lat, float64(done.Load()) / time.Since(start).Seconds()
	}
	p99 := func(lat []time.Duration) float64 { return float64(lat[len(lat)*99/100].Microseconds()) / 1000 }

	aloneRate, alone := publishLoad(b, vb.Addr().String(), n)
	docsRate, docs, docsPerSecond := beside(writers["docs"])
	fileRate, file, filePerSecond := beside(writers["file"])
	b.ReportMetric(p99(alone), "p99-ms-alone")
	b.ReportMetric(p99(docs)/p99(alone), "p99-ratio-docs")
	b.ReportMetric(p99(file)/p99(alone), "p99-ratio-file")
	b.ReportMetric(docsRate/aloneRate, "rate-ratio-docs")
	b.ReportMetric(fileRate/aloneRate, "rate-ratio-file")
	b.ReportMetric(docsPerSecond, "docs/s")
	b.ReportMetric(filePerSecond, "syncs/s")
}
