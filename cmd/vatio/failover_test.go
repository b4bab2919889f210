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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/vatio-energy/vatio/internal/bridge"
	"github.com/vatio-energy/vatio/internal/leader"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
)

// brokerSettings returns the Mosquitto settings the operator guide gives
// (its conf mosquitto block): the tests run the broker as operators are
// told to.
func brokerSettings(t *testing.T) string {
	t.Helper()
	for _, b := range blocks(t, repoPath("docs/operator-guide.md")) {
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

func (c *cluster) publisher() *load { return &load{c: mqtttest.V3(c.t, c.broker)} }

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
	// The row goes just after the log line: the survivor deletes it once
	// the session is ended.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var left int
		if err := c.db.QueryRow(context.Background(), `SELECT count(*) FROM instances WHERE client_id = $1`, deadID).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the dead instance %s is still registered 10 s after its session was taken over", deadID)
			break
		}
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

// TestSameClientIDFlaps starts two instances, each on a bbolt file of its
// own, given one broker.client_id: the broker hands the session from one to
// the other at each connection. Each says so in its log, waits longer
// before each new attempt, and answers 503 on /healthz; without the wait
// they knocked each other off about 170 times a second.
func TestSameClientIDFlaps(t *testing.T) {
	brokerAddr, blog, _ := startMosquitto(t)
	begin := time.Now()
	a := startPeer(t, brokerAddr, "twin", "", "")
	b := startPeer(t, brokerAddr, "twin", "", "")
	const handover = "Client twin already connected, closing old connection"
	takenOver := func(p *peer) bool {
		var h struct{ Status, Detail string }
		code := getJSON(t, "http://"+p.http+"/healthz", &h)
		return code == http.StatusServiceUnavailable && strings.Contains(h.Detail, "client id twin") &&
			peerMetric(t, p, "vatio_broker_session_taken_over_total") >= 1
	}
	// Each has been knocked off and says so: a few handovers, spaced by
	// the backoff, not a flood of them.
	for deadline := time.Now().Add(30 * time.Second); !takenOver(a) || !takenOver(b) || strings.Count(blog.String(), handover) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pair did not both see their client id taken over:\n%s\n%s", a.logs, b.logs)
		}
	}
	takeovers := strings.Count(blog.String(), handover)
	t.Logf("Mosquitto handed the session over %d times in %s before both said so", takeovers, time.Since(begin).Round(time.Millisecond))
	if takeovers > 20 {
		t.Errorf("%d takeovers before both instances saw them; want a few", takeovers)
	}
	// From here each waits at least its backoff (1 s, then 2 s, ...)
	// before it connects again: two more handovers take a second or more,
	// where without the wait they took milliseconds.
	from := time.Now()
	for deadline := time.Now().Add(30 * time.Second); strings.Count(blog.String(), handover) < takeovers+2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no more handovers: the pair stopped trying")
		}
	}
	if took := time.Since(from); took < 900*time.Millisecond {
		t.Errorf("two more handovers took %s; the backoff spaces them by a second or more", took)
	}
	if !strings.Contains(a.logs.String()+b.logs.String(), "another connection took this instance's MQTT client id") {
		t.Errorf("no instance logged why it was disconnected:\n%s\n%s", a.logs, b.logs)
	}
}

// TestClientIDInUseIsRefusedOnPostgres: on PostgreSQL an instance given the
// client id of one running is refused at start, saying which host and pid
// hold it, and leaves the running one alone.
func TestClientIDInUseIsRefusedOnPostgres(t *testing.T) {
	c := newCluster(t)
	first := startPeer(t, c.broker, "twin", c.dsn, "")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	conf := fmt.Sprintf("broker:\n  mode: external\n  urls: [\"mqtt://%s\"]\n  client_id: twin\nstore:\n  driver: postgres\n", c.broker)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VATIO_TEST_CHILD=1", "VATIO_ADMIN_TOKEN="+testAdminToken, "VATIO_STORE_DSN="+c.dsn,
		"VATIO_TEST_ARGS=-config "+cfg+" -http-addr 127.0.0.1:0 -data-dir "+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a second instance with client id twin started:\n%s", out)
	}
	if !strings.Contains(string(out), "in use by a running instance") || !strings.Contains(string(out), fmt.Sprintf("pid %d", first.cmd.Process.Pid)) {
		t.Errorf("the refusal does not say who holds the client id:\n%s", out)
	}
	if strings.Contains(first.logs.String(), "another connection took") {
		t.Errorf("the refused instance knocked the running one off:\n%s", first.logs)
	}
}

// TestBrokerLossIsReported: Vatio reports evidence that the broker lost
// readings: its counter of dropped messages rising (a session's queue
// overflowed), and, after the broker restarted without persistence, no
// session kept for it. /healthz stays 200 and lists them; /metrics counts
// them.
func TestBrokerLossIsReported(t *testing.T) {
	const settings = "persistence false\nmax_queued_messages 5\nsys_interval 1\n"
	addr, _, stop := startMosquittoConf(t, settings)
	p := startPeer(t, addr, "watcher", "", "")
	// A client away with a persistent session and a small queue: the
	// broker drops what overflows it.
	sleeper := paho3.NewClient(paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("sleeper").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := sleeper.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := sleeper.Subscribe("away/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	sleeper.Disconnect(100)
	l := &load{c: mqtttest.V3(t, addr)}
	for i := range 20 {
		tok := l.c.Publish("away/x", 1, false, fmt.Sprint(i))
		tok.WaitTimeout(10 * time.Second)
	}
	warned := func(kind string) bool {
		var h struct {
			Status   string
			Warnings []string
		}
		code := getJSON(t, "http://"+p.http+"/healthz", &h)
		return code == http.StatusOK && strings.Contains(strings.Join(h.Warnings, "\n"), kind) &&
			peerMetric(t, p, `vatio_broker_loss_evidence_total{kind="`+map[string]string{"dropped": "dropped", "no session": "session_lost", "restarted": "broker_restarted"}[kind]+`"}`) >= 1
	}
	for deadline := time.Now().Add(15 * time.Second); !warned("dropped"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no evidence of the messages Mosquitto dropped:\n%s", p.logs)
		}
	}
	// Running, a restart is seen as the broker's uptime going back: Vatio
	// must have seen it past what the new broker will say when Vatio is
	// back (it reconnects within a second or two; sys_interval is 1 s).
	for deadline := time.Now().Add(20 * time.Second); peerMetric(t, p, "vatio_broker_uptime_seconds") < 6; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Vatio did not see the broker's uptime pass 6 s:\n%s", p.logs)
		}
	}
	stop()
	startMosquittoAt(t, addr, settings)
	for deadline := time.Now().Add(30 * time.Second); !warned("no session") || !warned("restarted"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no evidence of the broker's restart and the session it lost:\n%s", p.logs)
		}
	}
	if !strings.Contains(p.logs.String(), "evidence of readings lost at the MQTT broker") {
		t.Errorf("the evidence is not in the log:\n%s", p.logs)
	}
}

// TestShareSilence: an instance whose count of readings stands still for a
// minute while the others take a hundred or more, steadily, is reported
// once, until its count moves again; quiet for all, with few readings, or
// while another stores a backlog in a burst, it is not.
func TestShareSilence(t *testing.T) {
	w := newSilenceWatch()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a, b := int64(0), int64(0)
	// run checks once a second for d, a and b taking da and db a second;
	// it returns who was reported.
	run := func(d time.Duration, da, db int64) []string {
		var got []string
		for range int(d / time.Second) {
			at = at.Add(time.Second)
			a, b = a+da, b+db
			for _, msg := range w.check(at, []leader.Member{{ClientID: "a", Host: "h1", Received: a}, {ClientID: "b", Host: "h2", Received: b}}) {
				_, who, _ := strings.Cut(msg, "instance ")
				who, _, _ = strings.Cut(who, " ")
				got = append(got, who)
			}
		}
		return got
	}
	steps := []struct {
		what   string
		d      time.Duration
		da, db int64
		want   string
	}{
		{"both take readings", 2 * time.Minute, 5, 5, ""},
		{"a silent for 30 s", 30 * time.Second, 0, 10, ""},
		{"a silent past a minute", 40 * time.Second, 0, 10, "[a]"},
		{"still silent: said once", time.Minute, 0, 10, ""},
		{"a moves again", 10 * time.Second, 1, 10, ""},
		{"everyone quiet", 3 * time.Minute, 0, 0, ""},
		{"b stores a backlog in a burst", 3 * time.Second, 0, 500, ""},
		{"quiet after the burst", 2 * time.Minute, 0, 0, ""},
		{"a trickle to b: too few to tell", 50 * time.Second, 0, 1, ""},
		{"b silent while a takes them", 70 * time.Second, 5, 0, "[b]"},
	}
	for _, s := range steps {
		if got := fmt.Sprint(run(s.d, s.da, s.db)); got != s.want && !(s.want == "" && got == "[]") {
			t.Errorf("%s: reported %s, want %q", s.what, got, s.want)
		}
	}
}

// TestFailoverStopAll stops both instances together (systemctl stop of
// both, a compose down): one leaves the share group, the last keeps its
// session, so what Mosquitto acknowledges while both are down waits there
// and is stored, once, when they are back.
func TestFailoverStopAll(t *testing.T) {
	c := newCluster(t)
	a := startPeer(t, c.broker, "a", c.dsn, "")
	b := startPeer(t, c.broker, "b", c.dsn, "")
	l := c.publisher()
	l.publish(200)
	var wg sync.WaitGroup
	for _, p := range []*peer{a, b} {
		wg.Go(func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() })
	}
	wg.Wait()
	if left := strings.Count(a.logs.String()+b.logs.String(), "left the share group"); left != 1 {
		t.Errorf("%d of two instances stopping together left the share group, want 1", left)
	}
	l.publish(200) // acknowledged by Mosquitto while both are down
	startPeer(t, c.broker, "a", c.dsn, "")
	startPeer(t, c.broker, "b", c.dsn, "")
	c.settle("both stopped together, then started again", l)
}

// TestBrokerRestartWhileAwayIsReported: the broker restarts while Vatio is
// stopped. Mosquitto 2.0 restores the session (persistence) without its
// shared subscription, so what was published meanwhile went to nobody; the
// session is there, but Vatio sees that the broker started since it last
// looked, and says so.
func TestBrokerRestartWhileAwayIsReported(t *testing.T) {
	const settings = "persistence true\nsys_interval 1\n"
	addr, _, stop := startMosquittoConf(t, settings)
	dir := t.TempDir()
	p := startPeerIn(t, dir, addr, "away", "", "")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, brokerStartFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker's start was not kept:\n%s", p.logs)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	// A broker that ran a while: Vatio tells a restart from a retained
	// uptime that is only late by more than the broker's sys_interval
	// (bridge.RestartSlack).
	brokerUptimePast(t, addr, bridge.RestartSlack+time.Second)
	stop()
	_, blog, _ := startMosquittoAt(t, addr, settings)
	p = startPeerIn(t, dir, addr, "away", "", "")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var h struct{ Warnings []string }
		getJSON(t, "http://"+p.http+"/healthz", &h)
		if strings.Contains(strings.Join(h.Warnings, "\n"), "restarted") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no evidence of the broker's restart while Vatio was away:\n%s", p.logs)
		}
	}
	if strings.Contains(p.logs.String(), "kept no session") {
		t.Errorf("the broker kept the session (persistence), but Vatio says it did not:\n%s\n%s", p.logs, blog)
	}
}

// brokerUptimePast waits until the broker at addr reports an uptime
// ($SYS/broker/uptime) past d.
func brokerUptimePast(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	past := make(chan struct{})
	var once sync.Once
	c := mqtttest.V3(t, addr)
	if tok := c.Subscribe("$SYS/broker/uptime", 0, func(_ paho3.Client, m paho3.Message) {
		f, _, _ := strings.Cut(string(m.Payload()), " ")
		if secs, err := strconv.Atoi(f); err == nil && time.Duration(secs)*time.Second > d {
			once.Do(func() { close(past) })
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to the broker's uptime: %v", tok.Error())
	}
	select {
	case <-past:
	case <-time.After(d + 30*time.Second):
		t.Fatalf("the broker's uptime did not pass %s", d)
	}
}
