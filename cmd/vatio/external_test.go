package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// startMosquitto runs Debian's Mosquitto on a free loopback port, as the
// external broker a plant already has; it stops when the test ends.
func startMosquitto(t testing.TB) (string, *mosquittoLog, func()) {
	t.Helper()
	return startMosquittoConf(t, "persistence false\nmax_queued_messages 100000\n")
}

// startMosquittoConf runs Mosquitto with settings (mosquitto.conf lines)
// added to a listener on a free loopback port, logging to a file, and
// persistence, if asked for, in a directory of the test's.
func startMosquittoConf(t testing.TB, settings string) (string, *mosquittoLog, func()) {
	t.Helper()
	return startMosquittoAt(t, "", settings)
}

// startMosquittoAt is startMosquittoConf on addr ("": a free port), to
// start a broker again where one was.
func startMosquittoAt(t testing.TB, addr, settings string) (string, *mosquittoLog, func()) {
	t.Helper()
	bin := need(t, "mosquitto", "mosquitto")
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	logFile := filepath.Join(t.TempDir(), "mosquitto.log")
	mosquittoDirsMu.Lock()
	dbDir, ok := mosquittoDirs[addr]
	if _, err := os.Stat(dbDir); !ok || err != nil { // another test's, gone
		dbDir = t.TempDir()
		mosquittoDirs[addr] = dbDir
	}
	mosquittoDirsMu.Unlock()
	head := "listener " + port + " 127.0.0.1\nallow_anonymous true\nuser root\nlog_dest file " + logFile + "\nlog_type all\npersistence_location " + dbDir + "/\n"
	if err := os.WriteFile(conf, []byte(head+settings), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	logs := &mosquittoLog{path: logFile}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	// stop stops it as its service would, with SIGTERM: it saves its
	// sessions when persistence is on.
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, logs, stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not start:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mosquittoDirs are the persistence directories of the brokers started,
// by address: a broker started again where one was finds its database.
var (
	mosquittoDirsMu sync.Mutex
	mosquittoDirs   = map[string]string{}
)

// mosquittoLog reads Mosquitto's log file (flushed line by line, unlike
// its standard output to a pipe).
type mosquittoLog struct{ path string }

func (l *mosquittoLog) String() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

// externalVatio runs Vatio as a client of the broker at addr, with client
// id id and data in dir, ready once subscribed; stop stops it as SIGTERM
// would.
func externalVatio(t *testing.T, brokerAddr, id, dir string) (httpAddr string, stop func()) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, "broker:\n  mode: external\n  urls: [\"mqtt://%s\"]\n  client_id: %s\n", brokerAddr, id), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	inst := startVatioEnv(t, dir, cfg, testEnv, "subscribed to the MQTT broker")
	return inst.http, func() { inst.stop(t) }
}

// storedCount returns how many readings of meter the Vatio at httpAddr
// holds.
func storedCount(t *testing.T, httpAddr, meter string) int {
	t.Helper()
	resp, err := apiClient.Get("http://" + httpAddr + "/api/energy?limit=1000&meter=" + meter)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0 // no reading of it yet
	}
	var got []legacyReading
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return len(got)
}

func waitCount(t *testing.T, what string, want int, count func() int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := count()
		if n == want {
			return
		}
		if n > want || time.Now().After(deadline) {
			t.Fatalf("%s: %d readings, want %d", what, n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func publishReadings(t *testing.T, c paho3.Client, meter string, from, n int) {
	t.Helper()
	base := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC).Unix()
	for i := from; i < from+n; i++ {
		mqtttest.Publish3(t, c, "energy/consumption/"+meter, 1, false, fmt.Sprintf(`{"power_w": %d, "ts": %d}`, 100+i, base+int64(i)))
	}
}

// TestExternalBroker runs Vatio as a client of Mosquitto: readings
// published there are stored; those published while Vatio is down wait in
// its persistent session and arrive, once each, when it is back; alerts
// are published there; and two instances in the share group split the
// readings, each stored by exactly one.
func TestExternalBroker(t *testing.T) {
	brokerAddr, brokerLog, stopBroker := startMosquitto(t)
	meterClient := mqtttest.V3(t, brokerAddr)

	dir := t.TempDir()
	httpA, stopA := externalVatio(t, brokerAddr, "vatio-a", dir)
	publishReadings(t, meterClient, "plant", 0, 20)
	waitCount(t, "readings published to the external broker", 20, func() int { return storedCount(t, httpA, "plant") })

	alerts := make(chan string, 4)
	watcher := mqtttest.V3(t, brokerAddr)
	if tok := watcher.Subscribe("vatio/alerts/#", 1, func(_ paho3.Client, m paho3.Message) { alerts <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	resp, err := apiClient.Post("http://"+httpA+"/api/alert", "application/json", strings.NewReader(`{"message": "boiler", "meter": "plant"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case topic := <-alerts:
		if topic != "vatio/alerts/plant" {
			t.Errorf("alert on %s", topic)
		}
	case <-time.After(10 * time.Second):
		t.Error("the alert was not published to the external broker")
	}

	// Down for a while: the broker keeps what is published meanwhile.
	stopA()
	pubacks := regexp.MustCompile(`Received PUBACK from vatio-a`)
	acked := len(pubacks.FindAllString(brokerLog.String(), -1))
	publishReadings(t, meterClient, "plant", 20, 10)
	httpA, _ = externalVatio(t, brokerAddr, "vatio-a", dir)
	waitCount(t, "readings published while vatio was down", 30, func() int { return storedCount(t, httpA, "plant") })
	// Each was acknowledged to the broker, the backlog sent straight after
	// the reconnection too: one left unacknowledged would hold back every
	// later acknowledgement on that connection.
	for deadline := time.Now().Add(5 * time.Second); len(pubacks.FindAllString(brokerLog.String(), -1)) < acked+10; {
		if time.Now().After(deadline) {
			var lines []string
			for _, l := range strings.Split(brokerLog.String(), "\n") {
				if strings.Contains(l, "vatio-a") && (strings.Contains(l, "PUBLISH") || strings.Contains(l, "PUBACK") || strings.Contains(l, "CONNECT")) {
					lines = append(lines, l)
				}
			}
			t.Fatalf("the broker got %d PUBACKs from vatio-a after the restart, for 10 readings:\n%s",
				len(pubacks.FindAllString(brokerLog.String(), -1))-acked, strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A second instance in the share group: the readings are split, and
	// each is stored once.
	httpB, _ := externalVatio(t, brokerAddr, "vatio-b", t.TempDir())
	const n = 60
	publishReadings(t, meterClient, "split", 0, n)
	waitCount(t, "readings split between two instances", n, func() int {
		return storedCount(t, httpA, "split") + storedCount(t, httpB, "split")
	})
	a, b := storedCount(t, httpA, "split"), storedCount(t, httpB, "split")
	if a == 0 || b == 0 {
		t.Errorf("the share group did not split the readings: %d and %d", a, b)
	}
	t.Logf("two instances stored %d and %d of %d readings", a, b, n)

	// /healthz tells when readings cannot flow: the broker is gone.
	health := func() int {
		resp, err := apiClient.Get("http://" + httpA + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := health(); code != 200 {
		t.Errorf("healthz while connected: %d", code)
	}
	stopBroker()
	for deadline := time.Now().Add(10 * time.Second); health() != http.StatusServiceUnavailable; {
		if time.Now().After(deadline) {
			t.Fatal("healthz still answers 200 with the broker gone")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExternalBrokerKill9 kills Vatio (SIGKILL) while it takes readings
// from the external broker: every reading published there is stored once
// it is back, for the broker resends what Vatio had not acknowledged
// (acknowledged only once committed) and what came meanwhile.
func TestExternalBrokerKill9(t *testing.T) {
	brokerAddr, _, _ := startMosquitto(t)
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "broker:\n  mode: external\n  urls: [\"mqtt://%s\"]\n  client_id: vatio-k\n", brokerAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, string) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "VATIO_TEST_CHILD=1", "VATIO_ADMIN_TOKEN="+testAdminToken,
			"VATIO_TEST_ARGS=-config "+cfg+" -http-addr 127.0.0.1:0 -data-dir "+dir)
		logs := &logBuffer{}
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for deadline := time.Now().Add(30 * time.Second); ; {
			l := logs.String()
			if m := httpLine.FindStringSubmatch(l); m != nil && strings.Contains(l, "subscribed to the MQTT broker") {
				return cmd, m[1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("child vatio did not connect:\n%s", l)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	count := func(httpAddr string) int {
		var m struct{ Readings int }
		resp, err := apiClient.Get("http://" + httpAddr + "/api/v1/meters/k")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0
		}
		json.NewDecoder(resp.Body).Decode(&m)
		return m.Readings
	}

	cmd, httpAddr := start()
	publisher := mqtttest.V3(t, brokerAddr)
	const n = 3000
	published := make(chan struct{})
	go func() {
		defer close(published)
		publishReadings(t, publisher, "k", 0, n)
	}()
	for deadline := time.Now().Add(20 * time.Second); count(httpAddr) < 300 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	before := count(httpAddr)
	cmd.Process.Kill()
	cmd.Wait()
	<-published
	t.Logf("killed with %d of %d readings stored", before, n)
	if before >= n {
		t.Fatalf("all %d readings were stored before the kill: the test proves nothing", n)
	}

	_, httpAddr = start()
	deadline := time.Now().Add(30 * time.Second)
	for count(httpAddr) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := count(httpAddr); got != n {
		t.Errorf("after the kill and a restart: %d readings stored, want %d", got, n)
	}
}
