package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
)

// TestScaleOutOnPostgres runs two Vatio instances on one PostgreSQL
// database and one Mosquitto, in its share group: readings published by a
// real client are split between them and stored once in the shared
// database, which both answer from. One of them leads: it alone runs the
// alert rules and the load shedding. The leader is killed (SIGKILL)
// mid-ingest and started again: the other takes the leadership over, the
// rule fired and the load shed before are not fired or shed again, every
// reading is stored, and none twice.
func TestScaleOutOnPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	brokerAddr, _, _ := startMosquitto(t)

	// The alerts' webhook: a firing alert of rule "big" must reach it once.
	var mu sync.Mutex
	var fired []float64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a struct {
			ID    float64
			Rule  string
			State string
		}
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if a.Rule == "big" && a.State == "firing" {
			mu.Lock()
			fired = append(fired, a.ID)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	// The load's switch: it must be told to switch off once.
	var offs atomic.Int64
	plug := mqtttest.V3(t, brokerAddr)
	if tok := plug.Subscribe("cmnd/heater/POWER", 1, func(_ paho3.Client, m paho3.Message) {
		if string(m.Payload()) == "OFF" {
			offs.Add(1)
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	start := func(id string) *peer {
		return startPeer(t, brokerAddr, id, dsn, fmt.Sprintf(`alerts:
  evaluate_every: 1s
  webhook:
    url: %s
  rules:
    - {id: big, kind: power_above, meter: k, threshold_w: 500, for: 0s, severity: warning, enabled: true}
shedding:
  enabled: true
  cap_w: 500
  every: 1s
  min_off: 1h
  loads:
    - {name: heater, meter: heater, off: {topic: cmnd/heater/POWER, payload: "OFF"}, on: {topic: cmnd/heater/POWER, payload: "ON"}}
`, hook.URL))
	}
	// leads asks an instance's /healthz whether it leads.
	leads := func(in *peer) bool {
		var h struct {
			Status string
			Leader *bool
		}
		if code := getJSON(t, "http://"+in.http+"/healthz", &h); code != http.StatusOK || h.Leader == nil {
			t.Fatalf("%s /healthz: %d %+v", in.http, code, h)
		}
		return *h.Leader
	}
	// leader waits until exactly one of ins leads, and returns it.
	leader := func(ins ...*peer) *peer {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var l []*peer
			for _, in := range ins {
				if leads(in) {
					l = append(l, in)
				}
			}
			if len(l) == 1 {
				return l[0]
			}
			if len(l) > 1 {
				t.Fatal("two instances lead at once")
			}
		}
		t.Fatal("no instance leads")
		return nil
	}
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	// stored returns the rows of meter k and their distinct times.
	stored := func() (rows, distinct int) {
		err := db.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT ts) FROM readings WHERE meter = 'k'`).Scan(&rows, &distinct)
		if err != nil {
			t.Fatal(err)
		}
		return rows, distinct
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	ins := map[string]*peer{"vatio-a": start("vatio-a"), "vatio-b": start("vatio-b")}
	first := leader(ins["vatio-a"], ins["vatio-b"])
	publisher := mqtttest.V3(t, brokerAddr)
	// Power climbs from 100 W by 1 W a reading: over 500 W, rule "big"
	// fires and the heater is shed, by the leader. The readings are taken
	// 100 ms apart and the first 1000 end now: rules and shedding act on a
	// meter's power now, not on history it replays (store.Meter.PowerNow),
	// and the last of the 3000 is within ingest.max_future.
	base := time.Now().Add(-100 * time.Second)
	publishNear := func(from, n int) {
		for i := from; i < from+n; i++ {
			ts := base.Add(time.Duration(i) * 100 * time.Millisecond).UnixMilli()
			mqtttest.Publish3(t, publisher, "energy/consumption/k", 1, false, fmt.Sprintf(`{"power_w": %d, "ts": %d}`, 100+i, ts))
		}
	}
	publishNear(0, 1000)
	waitFor("the first 1000 readings", func() bool { rows, _ := stored(); return rows == 1000 })
	waitFor("the rule to fire", func() bool { mu.Lock(); defer mu.Unlock(); return len(fired) > 0 })
	waitFor("the heater to be shed", func() bool { return offs.Load() > 0 })

	const n = 3000
	published := make(chan struct{})
	go func() {
		defer close(published)
		publishNear(1000, n-1000)
	}()
	waitFor("ingest to go on", func() bool { rows, _ := stored(); return rows >= 1300 })
	var killed string
	for id, in := range ins {
		if in == first {
			killed = id
		}
	}
	first.cmd.Process.Kill()
	first.cmd.Wait()
	before, _ := stored()
	var other *peer
	for id, in := range ins {
		if id != killed {
			other = in
		}
	}
	leader(other) // fails unless the survivor takes over
	<-published
	t.Logf("leader %s killed with %d of %d readings stored; the other took the leadership over", killed, before, n)
	if before >= n {
		t.Fatalf("all %d readings were stored before the kill: the test proves nothing", n)
	}
	// What the broker holds for the killed instance's session arrives when
	// it is back; it comes back as a follower.
	ins[killed] = start(killed)
	deadline := time.Now().Add(60 * time.Second)
	for rows, _ := stored(); rows < n && time.Now().Before(deadline); rows, _ = stored() {
		time.Sleep(50 * time.Millisecond)
	}
	if rows, distinct := stored(); rows != n || distinct != n {
		t.Fatalf("after the kill and a restart: %d rows, %d distinct times; want %d of each", rows, distinct, n)
	}
	if l := leader(ins["vatio-a"], ins["vatio-b"]); l != other {
		t.Error("the leadership moved back to the restarted instance")
	}
	if !strings.Contains(other.logs.String(), "leadership: this instance leads") {
		t.Error("the new leader did not log that it leads")
	}
	// Two rounds of rules and of shedding later (on the leader, with the
	// restarted instance back), the rule has fired once and the heater
	// been switched off once, across the three instances' lives.
	rules, shedding := peerMetric(t, other, "vatio_rule_evaluations_total"), peerMetric(t, other, "vatio_shedding_evaluations_total")
	waitFor("two more rounds of rules and shedding on the leader", func() bool {
		return peerMetric(t, other, "vatio_rule_evaluations_total") >= rules+2 && peerMetric(t, other, "vatio_shedding_evaluations_total") >= shedding+2
	})
	var firing int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM alerts WHERE body->>'rule' = 'big' AND body->>'state' = 'firing'`).Scan(&firing); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if firing != 1 || len(fired) != 1 {
		t.Errorf("rule big: %d firing alerts stored, %d delivered to the webhook; want 1 and 1", firing, len(fired))
	}
	mu.Unlock()
	if n := offs.Load(); n != 1 {
		t.Errorf("the heater was told to switch off %d times, want once", n)
	}

	// Both instances answer from the shared database, registry included.
	for _, in := range ins {
		var m struct {
			Readings int
			Source   string
		}
		getJSON(t, "http://"+in.http+"/api/v1/meters/k", &m)
		if m.Readings != n {
			t.Errorf("%s: meter k has %d readings, want %d", in.http, m.Readings, n)
		}
		if got := storedCount(t, in.http, "k"); got != 1000 {
			t.Errorf("%s: /api/energy?meter=k&limit=1000 gave %d readings", in.http, got)
		}
	}
}

// peer is a Vatio child process sharing an external broker (and, with a
// DSN, a PostgreSQL database) with others.
type peer struct {
	cmd  *exec.Cmd
	http string
	logs *logBuffer
}

// startPeer starts Vatio as a client of the broker at brokerAddr with
// client id id ("": the default), on the PostgreSQL database dsn (or, with dsn "", a bbolt
// file of its own), with extra appended to its config.yaml; it is ready
// once subscribed, and killed when the test ends.
func startPeer(tb testing.TB, brokerAddr, id, dsn, extra string) *peer {
	tb.Helper()
	return startPeerIn(tb, tb.TempDir(), brokerAddr, id, dsn, extra)
}

// startPeerIn is startPeer with data directory dir.
func startPeerIn(tb testing.TB, dir, brokerAddr, id, dsn, extra string) *peer {
	tb.Helper()
	conf := fmt.Sprintf("broker:\n  mode: external\n  urls: [\"mqtt://%s\"]\n", brokerAddr)
	if id != "" {
		conf += "  client_id: " + id + "\n"
	}
	env := []string{"VATIO_TEST_CHILD=1", "VATIO_ADMIN_TOKEN=" + testAdminToken}
	if dsn != "" {
		conf += "store:\n  driver: postgres\n"
		env = append(env, "VATIO_STORE_DSN="+dsn)
	}
	cfg := filepath.Join(tb.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(conf+extra), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), env...), "VATIO_TEST_ARGS=-config "+cfg+" -http-addr 127.0.0.1:0 -data-dir "+dir)
	logs := &logBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; {
		l := logs.String()
		if m := httpLine.FindStringSubmatch(l); m != nil && strings.Contains(l, "subscribed to the MQTT broker") {
			return &peer{cmd: cmd, http: m[1], logs: logs}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("vatio %s did not start:\n%s", id, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peerMetric returns the value of metric name (with its labels, if any, as
// /metrics writes them) of an instance; 0 when it has none.
func peerMetric(tb testing.TB, p *peer, name string) float64 {
	tb.Helper()
	return httpMetric(tb, p.http, name)
}

// httpMetric is peerMetric of the instance serving HTTP at addr.
func httpMetric(tb testing.TB, addr, name string) float64 {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := apiClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	return 0
}
