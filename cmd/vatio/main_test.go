package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
	"github.com/vatio-energy/vatio/store"
)

// The test binary doubles as the vatio binary for tests that need a real
// child process (signals, kill -9): with VATIO_TEST_CHILD=1 it runs main.
func TestMain(m *testing.M) {
	switch os.Getenv("VATIO_TEST_CHILD") {
	case "1":
		os.Args = append([]string{"vatio"}, strings.Fields(os.Getenv("VATIO_TEST_ARGS"))...)
		// A CPU profile of the child, for finding where a benchmark's
		// time goes: go tool pprof -top <file>.
		if path := os.Getenv("VATIO_TEST_CPUPROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				pprof.StartCPUProfile(f)
				defer f.Close()
			}
		}
		// A heap profile once a benchmark's load is running: <file> after
		// VATIO_TEST_HEAPPROFILE_AFTER.
		if path, after := os.Getenv("VATIO_TEST_HEAPPROFILE"), os.Getenv("VATIO_TEST_HEAPPROFILE_AFTER"); path != "" {
			d, _ := time.ParseDuration(after)
			time.AfterFunc(d, func() {
				if f, err := os.Create(path); err == nil {
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			})
		}
		main()
		pprof.StopCPUProfile()
		os.Exit(0)
	case "argv": // the arguments as given: the docs' shell examples run vatio so
		os.Args[0] = "vatio"
		main()
		os.Exit(0)
	case "bare-mochi": // the baseline of BenchmarkSteadyLoad
		bareMochi()
		os.Exit(0)
	}
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// testAdminToken is the admin API token every test instance is seeded with.
const testAdminToken = "vat_00000000e2e0_the-tests-own-admin-token-0123"

// apiClient is the tests' HTTP client: automation with the admin token,
// which every request carries unless it sets its own Authorization (the
// browser test logs in instead). Process-wide http.DefaultClient stays as
// it is.
var apiClient = &http.Client{Transport: bearer{http.DefaultTransport}}

// bearer adds the admin token to requests that have no Authorization.
type bearer struct{ next http.RoundTripper }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+testAdminToken)
	}
	return b.next.RoundTrip(r)
}

// testEnv is the environment of test instances: the admin token.
func testEnv(key string) string {
	if key == "VATIO_ADMIN_TOKEN" {
		return testAdminToken
	}
	return ""
}

var readyLine = regexp.MustCompile(`msg="vatio ready".* mqtt=(\S+) http=(\S+)`)

// instance is a Vatio started by run, as a user would start it.
type instance struct {
	mqtt, http string
	cancel     context.CancelFunc
	done       chan error
	logs       *logBuffer
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// emptyConfig is a config file with no keys, so tests do not read the
// repository's config.yaml.
func emptyConfig(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startVatio runs Vatio on free loopback ports with data in dir.
func startVatio(t *testing.T, dir string) *instance {
	t.Helper()
	return startVatioWith(t, dir, emptyConfig(t))
}

// startVatioWith is startVatio with the configuration file cfgPath.
func startVatioWith(t *testing.T, dir, cfgPath string) *instance {
	t.Helper()
	return startVatioEnv(t, dir, cfgPath, testEnv, "")
}

var (
	httpLine = regexp.MustCompile(`msg="vatio ready".* http=(\S+)`)
	mqttLine = regexp.MustCompile(`msg="vatio ready".* mqtt=(\S+)`)
)

// startVatioEnv is startVatioWith with the environment getenv, ready once
// the ready line is logged and then (when not "") a line holding waitFor.
// Its mqtt is "" when it serves no plain MQTT (an external broker).
func startVatioEnv(t *testing.T, dir, cfgPath string, getenv func(string) string, waitFor string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	pr, pw := io.Pipe()
	inst := &instance{cancel: cancel, done: make(chan error, 1), logs: logs}
	args := []string{"-config", cfgPath, "-mqtt-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-data-dir", dir}
	go func() {
		err := run(ctx, args, getenv, io.Discard, pw)
		pw.CloseWithError(fmt.Errorf("vatio stopped: %v", err))
		inst.done <- err
	}()
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		var httpAddr, mqttAddr string
		waited := waitFor == ""
		sent := false
		for sc.Scan() {
			line := sc.Text()
			logs.Write(append(sc.Bytes(), '\n'))
			if m := httpLine.FindStringSubmatch(line); m != nil {
				httpAddr = m[1]
				if m := mqttLine.FindStringSubmatch(line); m != nil {
					mqttAddr = m[1]
				}
			}
			waited = waited || strings.Contains(line, waitFor)
			if httpAddr != "" && waited && !sent {
				found <- [2]string{mqttAddr, httpAddr}
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case m := <-found:
		inst.mqtt, inst.http = m[0], m[1]
	case err := <-inst.done:
		t.Fatalf("vatio exited at start: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("vatio did not become ready\n%s", logs)
	}
	t.Cleanup(func() { inst.stop(t) })
	return inst
}

// stop shuts Vatio down as SIGINT would and checks it stopped cleanly.
func (inst *instance) stop(t *testing.T) {
	t.Helper()
	if inst.cancel == nil {
		return
	}
	inst.cancel()
	inst.cancel = nil
	select {
	case err := <-inst.done:
		if err != nil {
			t.Errorf("vatio stopped with error: %v\n%s", err, inst.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("vatio did not stop\n%s", inst.logs)
	}
}

func getJSON(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := apiClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("GET %s: %d %s: %v", url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type legacyReading struct {
	ID          uint64    `json:"id"`
	Timestamp   time.Time `json:"timestamp"`
	Consumption float64   `json:"consumption"`
	Meter       string    `json:"meter"`
}

// TestEndToEnd walks the "done when": publish over MQTT 3.1.1 and
// MQTT 5, read back over HTTP, reject bad payloads without losing good data,
// restart, and find everything still there.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	v := startVatio(t, dir)

	if code := getJSON(t, "http://"+v.http+"/healthz", nil); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	c3 := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c3, "energy/consumption", 1, false, "2.5")
	c5 := mqtttest.V5(t, v.mqtt, nil)
	if code := mqtttest.Publish5(t, c5, "energy/consumption/plant-1", 1, `{"power_w": 1234.5, "ts": "2026-11-25T10:00:00Z"}`); code != 0 {
		t.Fatalf("MQTT 5 PUBACK reason %#x", code)
	}
	bad := []string{"text", "NaN", "Inf", "1e400", "", strings.Repeat("1", 1_000_000), `{"power_w": `, `{"power_w": 1, "ts": "2099-01-01T00:00:00Z"}`}
	for _, p := range bad {
		mqtttest.Publish3(t, c3, "energy/consumption", 1, false, p)
		if code := mqtttest.Publish5(t, c5, "energy/consumption/plant-1", 1, p); code != 0x99 {
			t.Errorf("MQTT 5 PUBACK for %.20q = %#x, want 0x99", p, code)
		}
	}
	mqtttest.Publish3(t, c3, "energy/consumption", 0, false, "3") // QoS 0 is stored too

	want := func(v *instance) {
		t.Helper()
		var got []legacyReading
		deadline := time.Now().Add(10 * time.Second)
		for {
			got = nil
			getJSON(t, "http://"+v.http+"/api/energy", &got)
			if len(got) >= 3 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		byMeter := map[string][]float64{}
		for _, r := range got {
			byMeter[r.Meter] = append(byMeter[r.Meter], r.Consumption)
		}
		if fmt.Sprint(byMeter["default"]) != "[3 2.5]" || fmt.Sprint(byMeter["plant-1"]) != "[1.2345]" || len(got) != 3 {
			t.Errorf("GET /api/energy = %+v, want default 3 and 2.5 kW and plant-1 1.2345 kW only", got)
		}
	}
	want(v)

	var metrics string
	resp, err := apiClient.Get("http://" + v.http + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
	}
	for _, line := range []string{`vatio_readings_rejected_total{reason="not_a_number"} 2`, `vatio_readings_rejected_total{reason="payload_too_large"} 2`, "vatio_readings_stored_total 3", "vatio_mqtt_clients_connected 2"} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	v.stop(t)
	v = startVatio(t, dir)
	want(v)
	var ms struct {
		Meters []struct {
			ID       string `json:"id"`
			Readings int    `json:"readings"`
		} `json:"meters"`
	}
	getJSON(t, "http://"+v.http+"/api/v1/meters", &ms)
	if len(ms.Meters) != 2 || ms.Meters[0].ID != "default" || ms.Meters[0].Readings != 2 || ms.Meters[1].Readings != 1 {
		t.Errorf("after restart GET /api/v1/meters = %+v", ms)
	}
}

// TestOpenAPIDescribesEveryRoute checks the fully wired server, dashboard
// included, against openapi.json.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.MQTT.Addr, cfg.HTTP.Addr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.AdminToken = testAdminToken
	a, err := start(cfg, newLogger(cfg.Log, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer a.shutdown(context.Background())
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	resp, err := a.http.App().Test(mustRequest(t, "/api/v1/openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, missing := range api.Undocumented(a.http.App(), doc.Paths) {
		t.Errorf("route %s is not in openapi.json", missing)
	}
}

func mustRequest(t *testing.T, path string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	return req
}

func TestConfigErrorsRefuseToStart(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgPath, []byte("mqtt:\n  adress: \":1883\"\n"), 0o600)
	err := run(context.Background(), []string{"-config", cfgPath}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"mqtt.adress"`) {
		t.Errorf("unknown key: run = %v, want an error naming mqtt.adress", err)
	}
	err = run(context.Background(), nil, func(k string) string {
		return map[string]string{config.EnvConfig: emptyConfig(t), config.EnvHTTPAddr: "nonsense"}[k]
	}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "http.addr") {
		t.Errorf("bad VATIO_HTTP_ADDR: run = %v, want an error naming http.addr", err)
	}
	err = run(context.Background(), []string{"-config", filepath.Join(dir, "missing.yaml")}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing -config file: run = %v", err)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "vatio ") {
		t.Errorf("vatio version = %q, %v", out.String(), err)
	}
}

func TestPrecedence(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgPath, []byte("mqtt:\n  addr: \":1001\"\nhttp:\n  addr: \":2001\"\ndata_dir: /from-file\n"), 0o600)
	env := map[string]string{config.EnvConfig: cfgPath, config.EnvHTTPAddr: ":2002", config.EnvDataDir: "/from-env"}
	cfg, path, err := loadConfig([]string{"-data-dir", "/from-flag"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if path != cfgPath || cfg.MQTT.Addr != ":1001" || cfg.HTTP.Addr != ":2002" || cfg.DataDir != "/from-flag" {
		t.Errorf("got file %q mqtt %q http %q data %q; want the file's mqtt, the env's http, the flag's data dir", path, cfg.MQTT.Addr, cfg.HTTP.Addr, cfg.DataDir)
	}
}

// child starts the test binary as a real vatio process.
func child(t testing.TB, dir string) (*exec.Cmd, string, string, *logBuffer) {
	t.Helper()
	return childWith(t, dir, emptyConfig(t))
}

// childWith is child with the configuration file cfgPath, and env
// (KEY=value) added to its environment.
func childWith(t testing.TB, dir, cfgPath string, env ...string) (*exec.Cmd, string, string, *logBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VATIO_TEST_CHILD=1", "VATIO_ADMIN_TOKEN="+testAdminToken,
		"VATIO_TEST_ARGS=-config "+cfgPath+" -mqtt-addr 127.0.0.1:0 -http-addr 127.0.0.1:0 -data-dir "+dir)
	cmd.Env = append(cmd.Env, env...)
	// Not StderrPipe: Wait may close that before the last lines are read.
	// With a writer of ours, Wait returns once they are all written.
	stderr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); pw.Close() })
	logs := &logBuffer{}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case m := <-found:
		return cmd, m[1], m[2], logs
	case <-time.After(30 * time.Second):
		t.Fatalf("child vatio not ready\n%s", logs)
	}
	return nil, "", "", nil
}

// TestSIGTERMStopsCleanly sends SIGTERM to a real process and checks it
// exits 0 with everything it acknowledged on disk.
func TestSIGTERMStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	cmd, mqttAddr, _, logs := child(t, dir)
	c := mqtttest.V3(t, mqttAddr)
	for i := 0; i < 20; i++ {
		mqtttest.Publish3(t, c, "energy/consumption/sig", 1, false, "1")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(shutdownTimeout + time.Second):
		t.Fatalf("still running %s after SIGTERM\n%s", shutdownTimeout+time.Second, logs)
	}
	// The last line may still be on its way from the pipe to the buffer.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "stopped cleanly"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no clean stop in the logs:\n%s", logs)
			break
		}
	}
	v := startVatio(t, dir)
	var got []legacyReading
	getJSON(t, "http://"+v.http+"/api/energy?meter=sig", &got)
	if len(got) != 20 {
		t.Errorf("after SIGTERM and restart %d readings, want 20", len(got))
	}
}

// TestKill9LosesNothingAcknowledged publishes from several clients as fast
// as PUBACKs come back, kills the process with SIGKILL mid-stream, opens the
// database it left, and checks that every acknowledged reading is stored
// exactly once, the meter summaries count what is stored, and the rollups
// agree with the raw readings.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	cmd, mqttAddr, _, _ := child(t, dir)
	const clients = 4
	var mu sync.Mutex
	acked := map[string]map[int64]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	base := time.Now().Add(-time.Hour).UnixMilli()
	for c := 0; c < clients; c++ {
		meterID := fmt.Sprintf("k%d", c)
		mine := map[int64]bool{}
		acked[meterID] = mine
		cl := mqtttest.V3(t, mqttAddr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ts := base + i
				tok := cl.Publish("energy/consumption/"+meterID, 1, false, fmt.Sprintf(`{"power_w": %d, "ts": %d}`, i, ts))
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					return // the broker died: this one was not acknowledged
				}
				mu.Lock()
				mine[ts] = true
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, m := range acked {
			n += len(m)
		}
		mu.Unlock()
		if n >= 2000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	close(stop)
	wg.Wait()

	// Open the database the killed process left, as the next start would.
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	total := 0
	for meterID, want := range acked {
		total += len(want)
		recs, _, err := st.Range(meterID, time.UnixMilli(base), time.UnixMilli(base).Add(time.Hour), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]int{}
		for _, r := range recs {
			seen[r.Time.UnixMilli()]++
		}
		for ts := range want {
			if seen[ts] != 1 {
				t.Errorf("meter %s: acknowledged reading at %d stored %d times, want once", meterID, ts, seen[ts])
			}
		}
		if m, _ := st.Meter(meterID); m.Readings != uint64(len(recs)) {
			t.Errorf("meter %s: summary counts %d readings, %d are stored", meterID, m.Readings, len(recs))
		}
		if err := st.CheckRollups(meterID); err != nil {
			t.Errorf("after SIGKILL: %v", err)
		}
	}
	if total < 100 {
		t.Fatalf("only %d readings were acknowledged before the kill; the test proved little", total)
	}
	t.Logf("%d acknowledged readings, all stored once after SIGKILL", total)
}

// TestGCPercent checks that gc_percent sets the collector's GOGC, and that
// a GOGC in the environment wins over it. Vatio runs as a process of its
// own: GOGC is the process's, not this test's to change.
func TestGCPercent(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("gc_percent: 70\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, httpAddr, _ := childWith(t, t.TempDir(), cfg, "GOGC=")
	if got := httpMetric(t, httpAddr, "go_gc_gogc_percent"); got != 70 {
		t.Errorf("with gc_percent 70, GOGC = %g", got)
	}
	_, _, httpAddr, _ = childWith(t, t.TempDir(), cfg, "GOGC=100")
	if got := httpMetric(t, httpAddr, "go_gc_gogc_percent"); got != 100 {
		t.Errorf("with GOGC=100 in the environment and gc_percent 70, GOGC = %g", got)
	}
}

// TestSummaryNamesTimeZone checks that /api/v1/summary names the zone its
// days are counted in by its IANA name: the machine's (TZ of a Vatio
// process of its own) when dashboard.timezone is empty, not "Local".
func TestSummaryNamesTimeZone(t *testing.T) {
	madrid := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(madrid, []byte("dashboard:\n  timezone: Europe/Madrid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, cfg, tz, want string
	}{
		{"TZ", emptyConfig(t), "TZ=America/New_York", "America/New_York"},
		{"TZ empty", emptyConfig(t), "TZ=", "UTC"},
		{"dashboard.timezone over TZ", madrid, "TZ=Asia/Tokyo", "Europe/Madrid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, httpAddr, _ := childWith(t, t.TempDir(), tt.cfg, tt.tz)
			var sum struct {
				TimeZone string `json:"time_zone"`
			}
			if code := getJSON(t, "http://"+httpAddr+"/api/v1/summary", &sum); code != 200 || sum.TimeZone != tt.want {
				t.Errorf("with %s: summary = %d, time_zone %q; want %q", tt.tz, code, sum.TimeZone, tt.want)
			}
		})
	}
}

// repoRoot is the repository's top, seen from this package's directory,
// where go test runs its tests.
const repoRoot = "../.."

// repoPath is a file of the repository named from its top.
func repoPath(elem ...string) string {
	return filepath.Join(append([]string{repoRoot}, elem...)...)
}

// repoRel names a path under repoRoot from the repository's top.
func repoRel(path string) string {
	rel, err := filepath.Rel(repoRoot, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(rel)
}
