package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
)

// BenchmarkScaleOutIngest measures ingest through the whole binary:
// publishers, an external Mosquitto, Vatio instances and their store, each
// reading acknowledged to the broker once committed. The cases are one
// instance on its bbolt file (the baseline), one instance on PostgreSQL,
// and two instances on one PostgreSQL database in one share group. Each
// iteration publishes 20,000 readings of 100 meters from 4 clients (QoS 1)
// and waits until the instances have stored them all. It reports
// readings/s and, for PostgreSQL, that rate over the baseline's in the same
// run (x_bbolt), and for two instances their rate over one's
// (x_postgres_1). Every process shares this machine's cores, Mosquitto's
// and PostgreSQL's included.
func BenchmarkScaleOutIngest(b *testing.B) {
	var baseline, onePG float64
	for _, c := range []struct {
		name      string
		postgres  bool
		instances int
	}{{"bbolt-1", false, 1}, {"postgres-1", true, 1}, {"postgres-2", true, 2}} {
		b.Run(c.name, func(b *testing.B) {
			brokerAddr, _, _ := startMosquitto(b) // a broker per case: no session of another case left in the share group
			dsn := ""
			if c.postgres {
				dsn = pgtest.Database(b)
			}
			var peers []*peer
			for i := range c.instances {
				peers = append(peers, startPeer(b, brokerAddr, fmt.Sprintf("bench-%d", i), dsn, ""))
			}
			const clients, metersPerClient, batch = 4, 25, 20000
			pubs := make([]paho3.Client, clients)
			for i := range pubs {
				pubs[i] = mqtttest.V3(b, brokerAddr)
			}
			sent := 0
			for b.Loop() {
				var wg sync.WaitGroup
				for ci, c := range pubs {
					wg.Go(func() {
						toks := make([]paho3.Token, 0, batch/clients)
						for i := range batch / clients {
							m := fmt.Sprintf("c%dm%02d", ci, i%metersPerClient)
							ts := sent/clients + i // per meter: strictly increasing across iterations
							toks = append(toks, c.Publish("energy/consumption/"+m, 1, false,
								fmt.Sprintf(`{"power_w": %d, "ts": %d}`, 100+i%1000, int64(1_780_000_000+ts))))
						}
						for _, tok := range toks {
							if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
								b.Errorf("publish: %v", tok.Error())
								return
							}
						}
					})
				}
				wg.Wait()
				sent += batch
				for deadline := time.Now().Add(120 * time.Second); storedTotal(b, peers) < sent; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d readings stored after 2 minutes", storedTotal(b, peers), sent)
					}
				}
			}
			rate := float64(sent) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "readings/s")
			switch {
			case c.name == "bbolt-1":
				baseline = rate
			case baseline > 0:
				b.ReportMetric(rate/baseline, "x_bbolt")
			}
			switch {
			case c.name == "postgres-1":
				onePG = rate
			case c.name == "postgres-2" && onePG > 0:
				b.ReportMetric(rate/onePG, "x_postgres_1")
			}
		})
	}
}

// storedTotal sums vatio_readings_stored_total over the instances.
func storedTotal(tb testing.TB, peers []*peer) int {
	tb.Helper()
	total := 0
	for _, p := range peers {
		total += int(peerMetric(tb, p, "vatio_readings_stored_total"))
	}
	return total
}
