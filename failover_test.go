package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/vatio-energy/vatio/internal/pgtest"
)

// brokerSettings returns the Mosquitto settings the operator guide gives
// (its conf mosquitto block): the tests run the broker as operators are
// told to.
func brokerSettings(t *testing.T) string {
	t.Helper()
	for _, b := range blocks(t, filepath.Join("docs", "operator-guide.md")) {
		if b.info == "conf mosquitto" {
			return b.text
		}
	}
	t.Fatal("docs/operator-guide.md has no conf mosquitto block")
	return ""
}

// cluster is Mosquitto, configured as the operator guide says, and a
// PostgreSQL database, for Vatio instances as processes.
type cluster struct {
	t      *testing.T
	broker string
	blog   *mosquittoLog
	dsn    string
	db     *pgx.Conn
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, dsn: pgtest.Database(t)}
	c.broker, c.blog, _ = startMosquittoConf(t, brokerSettings(t))
	db, err := pgx.Connect(context.Background(), c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	c.db = db
	return c
}

// start starts an instance with no client_id, as operators run them.
func (c *cluster) start() *peer { return startPeer(c.t, c.broker, "", c.dsn, "") }

// counts returns, for meter, the rows stored and their distinct values of
// column (ts for stamped readings, power_w, unique per reading, for those
// stamped on receipt).
func (c *cluster) counts(meter, column string) (rows, distinct int) {
	c.t.Helper()
	err := c.db.QueryRow(context.Background(), fmt.Sprintf(`SELECT count(*), count(DISTINCT %s) FROM readings WHERE meter = $1`, column), meter).Scan(&rows, &distinct)
	if err != nil {
		c.t.Fatal(err)
	}
	return rows, distinct
}

// load publishes readings from two meters in turn, through Mosquitto, each
// waiting for Mosquitto's acknowledgement: s stamped by the device (ts),
// r stamped by Vatio on receipt (no ts); power_w numbers them. It counts
// what Mosquitto acknowledged.
type load struct {
	c        paho3.Client
	next     int
	acked    [2]atomic.Int64 // s, r
	failures atomic.Int64
}

func (c *cluster) publisher() *load {
	opts := paho3.NewClientOptions().AddBroker("tcp://" + c.broker).SetClientID(fmt.Sprintf("meters-%d", time.Now().UnixNano())).
		SetProtocolVersion(4).SetAutoReconnect(false).SetWriteTimeout(5 * time.Second)
	cl := paho3.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.t.Fatal(tok.Error())
	}
	c.t.Cleanup(func() { cl.Disconnect(100) })
	return &load{c: cl}
}

var failoverBase = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC).Unix()

// publish publishes n readings.
func (l *load) publish(n int) {
	for range n {
		i := l.next
		l.next++
		var tok paho3.Token
		if i%2 == 0 {
			tok = l.c.Publish("energy/consumption/s", 1, false, fmt.Sprintf(`{"power_w": %d, "ts": %d}`, i, failoverBase+int64(i)))
		} else {
			tok = l.c.Publish("energy/consumption/r", 1, false, fmt.Sprintf(`{"power_w": %d}`, i))
		}
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			l.failures.Add(1)
			continue
		}
		l.acked[i%2].Add(1)
	}
}

// settle waits up to a minute until both meters hold every reading
// Mosquitto acknowledged, and reports the counts: published, acknowledged,
// stored and duplicates, per meter.
func (c *cluster) settle(what string, l *load) {
	t := c.t
	t.Helper()
	want := [2]int{int(l.acked[0].Load()), int(l.acked[1].Load())}
	deadline := time.Now().Add(time.Minute)
	var got [2][2]int
	for {
		got[0][0], got[0][1] = c.counts("s", "ts")
		got[1][0], got[1][1] = c.counts("r", "power_w")
		if got[0][1] >= want[0] && got[1][1] >= want[1] || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, name := range []string{"s (stamped)", "r (stamped on receipt)"} {
		t.Logf("%s: meter %s: published %d, acknowledged by Mosquitto %d, stored %d, duplicates %d",
			what, name, (l.next+1-i)/2, want[i], got[i][1], got[i][0]-got[i][1])
		if got[i][1] != want[i] || got[i][0] != got[i][1] {
			t.Errorf("%s: meter %s: %d rows, %d distinct readings within a minute; want %d, each once",
				what, name, got[i][0], got[i][1], want[i])
		}
	}
	if f := l.failures.Load(); f > 0 {
		t.Errorf("%s: %d publishes were not acknowledged by Mosquitto", what, f)
	}
}

// clientIDOf returns the client id an instance connected with, from its
// log.
var connectedAs = regexp.MustCompile(`msg="connected to the MQTT broker".* client_id=(\S+)`)

func clientIDOf(t *testing.T, p *peer) string {
	t.Helper()
	m := connectedAs.FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("no connection in the log:\n%s", p.logs)
	}
	return m[1]
}

// leaderOf returns which of ins leads, waiting for one to.
func leaderOf(t *testing.T, ins ...*peer) *peer {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, in := range ins {
			var h struct{ Leader bool }
			if getJSON(t, "http://"+in.http+"/healthz", &h) == http.StatusOK && h.Leader {
				return in
			}
		}
	}
	t.Fatal("no instance leads")
	return nil
}

// TestFailoverKill runs two instances with no client_id on one host, one
// PostgreSQL database and one Mosquitto configured as the operator guide
// says. They get distinct client ids and run without knocking each other
// off. The leader is killed with SIGKILL in the middle of ingest and not
// started again: the survivor takes over its broker session, and within a
// minute every reading Mosquitto acknowledged is stored once, those
// stamped on receipt included.
func TestFailoverKill(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	idA, idB := clientIDOf(t, a), clientIDOf(t, b)
	if idA == idB {
		t.Fatalf("two instances on one host both took client id %s", idA)
	}
	l := c.publisher()
	l.publish(1000)
	dead := leaderOf(t, a, b)
	survivor := a
	if dead == a {
		survivor = b
	}
	deadID := clientIDOf(t, dead)
	var wg sync.WaitGroup
	wg.Go(func() { l.publish(3000) })
	for rows, _ := c.counts("s", "ts"); rows < 1200; rows, _ = c.counts("s", "ts") {
		time.Sleep(5 * time.Millisecond)
	}
	dead.cmd.Process.Kill()
	dead.cmd.Wait()
	killedAt := time.Now()
	wg.Wait()
	c.settle("SIGKILL of the leader", l)
	t.Logf("the survivor stored everything %s after the kill; %.0f readings came again, flagged DUP, and were not stored twice",
		time.Since(killedAt).Round(100*time.Millisecond), peerMetric(t, survivor, "vatio_readings_resent_total"))
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(survivor.logs.String(), "took over the broker session of a lapsed instance"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the survivor did not take over the dead instance's session:\n%s", survivor.logs)
		}
	}
	var left int
	if err := c.db.QueryRow(context.Background(), `SELECT count(*) FROM instances WHERE client_id = $1`, deadID).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("the dead instance %s is still registered", deadID)
	}
	// Its session is gone from the broker: what is published now goes to
	// the survivor alone.
	before := l.acked[1].Load()
	l.publish(200)
	c.settle("after the takeover", l)
	if l.acked[1].Load()-before != 100 {
		t.Fatal("publishes after the takeover were not acknowledged")
	}
	for _, p := range []*peer{a, b} {
		if strings.Contains(p.logs.String(), "took this instance's MQTT client id") {
			t.Errorf("an instance was knocked off by another with its client id:\n%s", p.logs)
		}
	}
	var h struct{ Status string }
	if code := getJSON(t, "http://"+survivor.http+"/healthz", &h); code != http.StatusOK {
		t.Errorf("the survivor's /healthz: %d %+v", code, h)
	}
}

// TestFailoverStop stops one of two instances with SIGTERM in the middle of
// ingest: it leaves the share group, handing its readings to the other,
// and every reading Mosquitto acknowledged is stored once, with nothing
// left waiting for it.
func TestFailoverStop(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	l := c.publisher()
	l.publish(600)
	var wg sync.WaitGroup
	wg.Go(func() { l.publish(3000) })
	for rows, _ := c.counts("s", "ts"); rows < 800; rows, _ = c.counts("s", "ts") {
		time.Sleep(5 * time.Millisecond)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	if err := b.cmd.Wait(); err != nil {
		t.Errorf("the stopped instance exited with %v:\n%s", err, b.logs)
	}
	wg.Wait()
	c.settle("SIGTERM of one instance", l)
	if !strings.Contains(b.logs.String(), "left the share group") {
		t.Errorf("the stopped instance did not leave its share group:\n%s", b.logs)
	}
	if strings.Contains(a.logs.String(), "took over the broker session") {
		t.Errorf("the stopped instance left a session to take over:\n%s", a.logs)
	}
}

// TestFailedStartLeavesNoSession starts an instance whose HTTP port is
// taken: it fails before it connects to the broker, so no session there
// swallows a share of the readings.
func TestFailedStartLeavesNoSession(t *testing.T) {
	brokerAddr, blog, _ := startMosquitto(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	conf := fmt.Sprintf("broker:\n  mode: external\n  urls: [\"mqtt://%s\"]\n  client_id: doomed\n", brokerAddr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VATIO_TEST_CHILD=1", "VATIO_ADMIN_TOKEN="+testAdminToken,
		"VATIO_TEST_ARGS=-config "+cfg+" -http-addr "+ln.Addr().String()+" -data-dir "+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("vatio started with its HTTP port taken:\n%s", out)
	}
	if !strings.Contains(string(out), "address already in use") {
		t.Errorf("the failure does not say why:\n%s", out)
	}
	if strings.Contains(blog.String(), "doomed") {
		t.Errorf("the failed start connected to the broker:\n%s", blog)
	}
}
