package api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

type harness struct {
	url   string
	store *store.Store
	srv   *api.Server
}

// start serves the API over real HTTP on a loopback port, backed by a real
// store in a temporary directory.
func start(t *testing.T) *harness {
	t.Helper()
	return startWith(t, store.Options{})
}

// startWith is start with a store opened with opts.
func startWith(t *testing.T, opts store.Options) *harness {
	t.Helper()
	st, err := store.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	alerts := alert.New(st, nil, alert.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(st)
	srv := api.New(st, alerts, api.Options{BodyLimitBytes: 4096, Gatherer: reg, Tariff: testTariff})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		alerts.Close()
		st.Close()
	})
	return &harness{url: "http://" + ln.Addr().String(), store: st, srv: srv}
}

func (h *harness) add(t *testing.T, rs ...meter.Reading) {
	t.Helper()
	for _, r := range rs {
		if err := h.store.Append(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.store.Flush(); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) get(t *testing.T, path string, into any) int {
	t.Helper()
	return h.do(t, http.MethodGet, path, "", "", into)
}

func (h *harness) post(t *testing.T, path, contentType, body string, into any) int {
	t.Helper()
	return h.do(t, http.MethodPost, path, contentType, body, into)
}

// do sends a request and decodes the JSON answer into into (unless nil).
func (h *harness) do(t *testing.T, method, path, contentType, body string, into any) int {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// testTariff prices energy at 0.2 EUR/kWh and 250 g CO2/kWh, in UTC.
var testTariff = energy.FixedTariff(&tariff.Tariff{Currency: "EUR", PriceKWh: 0.2, CO2GramsKWh: 250, Location: time.UTC})

func at(m string, sec int, w float64) meter.Reading {
	return meter.Reading{Meter: m, Time: t0.Add(time.Duration(sec) * time.Second), PowerW: w, Stamped: true}
}

type apiError struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

func TestLegacyEnergy(t *testing.T) {
	h := start(t)
	h.add(t, at("default", 0, 2500), at("m2", 1, 100), at("default", 2, 1250))
	var got []struct {
		ID          uint64    `json:"id"`
		Timestamp   time.Time `json:"timestamp"`
		Consumption float64   `json:"consumption"`
		Meter       string    `json:"meter"`
	}
	if code := h.get(t, "/api/energy", &got); code != 200 {
		t.Fatalf("status %d", code)
	}
	if len(got) != 3 || got[0].Consumption != 1.25 || got[0].Meter != "default" || !got[0].Timestamp.Equal(t0.Add(2*time.Second)) ||
		got[2].Consumption != 2.5 || got[2].ID != 1 {
		t.Errorf("GET /api/energy = %+v", got)
	}
	got = nil
	h.get(t, "/api/energy?meter=m2&limit=1", &got)
	if len(got) != 1 || got[0].Meter != "m2" || got[0].Consumption != 0.1 {
		t.Errorf("GET /api/energy?meter=m2&limit=1 = %+v", got)
	}
}

func TestEnergyOfManyReadingsIsLimitedTo100(t *testing.T) {
	h := start(t)
	var rs []meter.Reading
	for i := 0; i < 250; i++ {
		rs = append(rs, at(fmt.Sprint("m", i%3), i, float64(i)))
	}
	h.add(t, rs...)
	var got []struct {
		Consumption float64 `json:"consumption"`
	}
	h.get(t, "/api/energy", &got)
	if len(got) != 100 || got[0].Consumption != 0.249 || got[99].Consumption != 0.150 {
		t.Errorf("got %d readings, first %v last %v; want 100 from 0.249 down to 0.150", len(got), got[0], got[len(got)-1])
	}
}

func TestBadParametersAreNamed(t *testing.T) {
	h := start(t)
	h.add(t, at("m1", 0, 1))
	tests := []struct {
		path   string
		status int
		param  string
	}{
		{"/api/energy?limit=0", 400, "limit"},
		{"/api/energy?limit=1001", 400, "limit"},
		{"/api/energy?limit=ten", 400, "limit"},
		{"/api/energy?meter=a%20b", 400, "meter"},
		{"/api/v1/meters/m1/readings?from=yesterday", 400, "from"},
		{"/api/v1/meters/m1/readings?to=2026-11-25T10:00:00", 400, "to"},
		{"/api/v1/meters/m1/readings?from=2026-11-25T11:00:00Z&to=2026-11-25T10:00:00Z", 400, "from"},
		{"/api/v1/meters/m1/readings?limit=-1", 400, "limit"},
		{"/api/v1/alerts?limit=99999", 400, "limit"},
	}
	for _, tt := range tests {
		var e apiError
		if code := h.get(t, tt.path, &e); code != tt.status || !strings.Contains(e.Error, `"`+tt.param+`"`) {
			t.Errorf("GET %s = %d %+v, want %d naming %q", tt.path, code, e, tt.status, tt.param)
		}
	}
	for _, path := range []string{"/api/energy?meter=nope", "/api/v1/meters/nope/readings"} {
		var e apiError
		if code := h.get(t, path, &e); code != 404 || e.Error != "unknown meter" {
			t.Errorf("GET %s = %d %+v, want 404 unknown meter", path, code, e)
		}
	}
	var e apiError
	if code := h.get(t, "/api/nothing", &e); code != 404 || e.Error == "" {
		t.Errorf("GET /api/nothing = %d %+v, want a JSON 404", code, e)
	}
}

func TestMetersAndReadings(t *testing.T) {
	h := start(t)
	var rs []meter.Reading
	for i := 0; i < 10; i++ {
		rs = append(rs, at("m1", i, float64(100*i)))
	}
	h.add(t, append(rs, at("m0", 5, -300))...)

	var ms struct {
		Meters []struct {
			ID        string    `json:"id"`
			LastHeard time.Time `json:"last_heard"`
			PowerW    float64   `json:"power_w"`
			Readings  uint64    `json:"readings"`
			Last      time.Time `json:"last"`
		} `json:"meters"`
	}
	h.get(t, "/api/v1/meters", &ms)
	if len(ms.Meters) != 2 || ms.Meters[0].ID != "m0" || ms.Meters[0].PowerW != -300 || ms.Meters[1].Readings != 10 ||
		ms.Meters[1].PowerW != 900 || !ms.Meters[1].Last.Equal(t0.Add(9*time.Second)) || time.Since(ms.Meters[1].LastHeard) > time.Minute {
		t.Errorf("GET /api/v1/meters = %+v", ms)
	}

	var r struct {
		Meter  string `json:"meter"`
		Step   string `json:"step"`
		Points []struct {
			T      time.Time `json:"t"`
			PowerW float64   `json:"power_w"`
		} `json:"points"`
		More bool `json:"more"`
	}
	q := "/api/v1/meters/m1/readings?from=2026-11-25T10:00:02Z&to=2026-11-25T11:00:05%2B01:00&limit=2"
	if code := h.get(t, q, &r); code != 200 {
		t.Fatalf("status %d", code)
	}
	if r.Meter != "m1" || r.Step != "raw" || len(r.Points) != 2 || r.Points[0].PowerW != 200 || !r.More {
		t.Errorf("GET %s = %+v", q, r)
	}
	r.Points = nil
	h.get(t, "/api/v1/meters/m1/readings?from=2026-11-25T10:00:02Z&to=2026-11-25T10:00:05Z", &r)
	if len(r.Points) != 3 || r.Points[2].PowerW != 400 || r.More {
		t.Errorf("[2s, 5s) gave %+v, want 3 points ending at 400 W", r.Points)
	}
}

func TestPostAlert(t *testing.T) {
	h := start(t)
	var created struct {
		ID uint64 `json:"id"`
	}
	if code := h.post(t, "/api/alert", "application/json", `{"message": "Consumo excesivo", "severity": "critical", "meter": "m1"}`, &created); code != 202 || created.ID != 1 {
		t.Fatalf("POST /api/alert = %d %+v, want 202 with id 1", code, created)
	}
	tests := []struct {
		contentType, body string
		status            int
		want              string
	}{
		{"application/json", `{"message": "x", "severity": "loud"}`, 400, `"severity"`},
		{"application/json", `{"severity": "info"}`, 400, `"message"`},
		{"application/json", `{"message": "x", "colour": "red"}`, 400, `"body"`},
		{"application/json", `{"message": `, 400, `"body"`},
		{"application/json", `{"message": "a"} {"message": "b"}`, 400, `"body"`},
		{"text/plain", `hello`, 415, "application/json"},
		{"application/json", `{"message": "` + strings.Repeat("x", 5000) + `"}`, 413, ""},
	}
	for _, tt := range tests {
		var e apiError
		if code := h.post(t, "/api/alert", tt.contentType, tt.body, &e); code != tt.status || !strings.Contains(e.Error, tt.want) {
			t.Errorf("POST /api/alert %.40q = %d %+v, want %d with %s", tt.body, code, e, tt.status, tt.want)
		}
	}
	var hist struct {
		Alerts []store.Alert `json:"alerts"`
	}
	h.get(t, "/api/v1/alerts", &hist)
	if len(hist.Alerts) != 1 || hist.Alerts[0].Message != "Consumo excesivo" || hist.Alerts[0].Severity != "critical" || hist.Alerts[0].Source != "api" {
		t.Errorf("GET /api/v1/alerts = %+v, want only the valid alert", hist)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	h := start(t)
	if code := h.get(t, "/healthz", nil); code != 503 {
		t.Errorf("healthz before ready = %d, want 503", code)
	}
	h.srv.SetReady(true)
	var body map[string]string
	if code := h.get(t, "/healthz", &body); code != 200 || body["status"] != "ok" {
		t.Errorf("healthz when ready = %d %v", code, body)
	}
	resp, err := http.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^vatio_db_size_bytes \d`).Match(b) {
		t.Errorf("/metrics lacks vatio_db_size_bytes:\n%s", b)
	}
}

// TestOpenAPIListsEveryRoute fails when a route is added without being
// described in openapi.json.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	h := start(t)
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if code := h.get(t, "/api/v1/openapi.json", &doc); code != 200 || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.json: %d %q", code, doc.OpenAPI)
	}
	for _, missing := range api.Undocumented(h.srv.App(), doc.Paths) {
		t.Errorf("route %s is not in openapi.json", missing)
	}
}

func TestReadingsPickTheFinestTierThatFits(t *testing.T) {
	h := start(t)
	var rs []meter.Reading
	for sec := 0; sec <= 3*3600; sec += 10 { // three hours at 10 s, 1 kW: 1081 readings
		rs = append(rs, at("m1", sec, 1000))
	}
	h.add(t, rs...)
	type point struct {
		T         time.Time `json:"t"`
		N         int       `json:"n"`
		MeanW     float64   `json:"mean_w"`
		EnergyKWh float64   `json:"energy_kwh"`
		PowerW    float64   `json:"power_w"`
	}
	var r struct {
		Step   string  `json:"step"`
		Points []point `json:"points"`
		More   bool    `json:"more"`
	}
	q := "/api/v1/meters/m1/readings?from=2026-11-25T10:00:00Z&to=2026-11-25T13:00:01Z"
	tests := []struct {
		query  string
		step   string
		points int
	}{
		{"", "1m", 181},                   // 1081 raw readings do not fit in 1000 points
		{"&max_points=2000", "raw", 1081}, // they fit in 2000
		{"&max_points=100", "1h", 4},
		{"&step=1d", "1d", 1},
		{"&step=raw&max_points=10", "raw", 10},
	}
	for _, tt := range tests {
		r.Points = nil
		if code := h.get(t, q+tt.query, &r); code != 200 || r.Step != tt.step || len(r.Points) != tt.points {
			t.Errorf("%s: %d step %q with %d points, want step %q with %d", tt.query, code, r.Step, len(r.Points), tt.step, tt.points)
		}
	}
	h.get(t, q+"&step=1h", &r)
	if len(r.Points) != 4 || r.Points[0].N != 360 || r.Points[0].MeanW != 1000 || math.Abs(r.Points[0].EnergyKWh-1) > 1e-9 {
		t.Errorf("step=1h first point = %+v, want 360 readings, 1000 W mean, 1000 Wh", r.Points[0])
	}
	for _, bad := range []struct{ query, param string }{
		{"&step=5m", "step"},
		{"&limit=5&max_points=5", "limit"},
		{"&max_points=0", "max_points"},
	} {
		var e apiError
		if code := h.get(t, q+bad.query, &e); code != 400 || !strings.Contains(e.Error, `"`+bad.param+`"`) {
			t.Errorf("%s = %d %+v, want 400 naming %s", bad.query, code, e, bad.param)
		}
	}
}

func TestImportCSV(t *testing.T) {
	h := start(t)
	h.add(t, at("m1", 3600, 500)) // a reading already there
	var csv strings.Builder
	csv.WriteString("timestamp,power_w,energy_wh\n")
	for i := 0; i < 360; i++ {
		fmt.Fprintf(&csv, "%s,%d,%d\n", t0.Add(time.Duration(i*10)*time.Second).Format(time.RFC3339), 1000, i)
	}
	var got struct {
		Meter     string `json:"meter"`
		Rows      int    `json:"rows"`
		Intervals int    `json:"intervals"`
		Readings  int    `json:"readings"`
		Added     int    `json:"added"`
	}
	if code := h.post(t, "/api/v1/meters/m1/import", "text/csv", csv.String(), &got); code != 200 || got.Rows != 360 || got.Intervals != 0 || got.Readings != 360 || got.Added != 360 {
		t.Fatalf("import = %d %+v, want 360 rows, 360 readings added", code, got)
	}
	// Four hours of energy: four rows, each stored as several points.
	hours := "start,energy_kwh\n2026-11-24T00:00:00Z,0.5\n2026-11-24T01:00:00Z,0.4\n2026-11-24T02:00:00Z,0.3\n2026-11-24T03:00:00Z,0.2\n"
	got.Rows, got.Intervals = 0, 0
	if code := h.post(t, "/api/v1/meters/hours/import", "text/csv", hours, &got); code != 200 || got.Rows != 4 || got.Intervals != 4 || got.Readings <= 4 {
		t.Fatalf("import of 4 hours = %d %+v, want 4 rows, 4 intervals, more readings", code, got)
	}
	if err := h.store.CheckRollups("m1"); err != nil {
		t.Error(err)
	}
	m, _ := h.store.Meter("m1")
	if m.Readings != 361 {
		t.Errorf("meter has %d readings, want 361", m.Readings)
	}

	// A bad line fails the whole import, naming the line; nothing is stored.
	bad := "2026-11-24T10:00:00Z,100\n2026-11-24T10:00:10Z,100\n2026-11-24T10:00:20Z,lots\n"
	var e apiError
	if code := h.post(t, "/api/v1/meters/m1/import", "text/csv", bad, &e); code != 400 || !strings.Contains(e.Detail, "line 3") {
		t.Errorf("bad import = %d %+v, want 400 naming line 3", code, e)
	}
	if m2, _ := h.store.Meter("m1"); m2.Readings != 361 {
		t.Errorf("after a failed import the meter has %d readings, want 361", m2.Readings)
	}
}

// TestBodyLimitStillHolds checks that streaming request bodies (for imports)
// did not lift the body limit of other routes: a request announcing a body
// past the limit gets 413 before it has sent it, and the connection closes.
func TestBodyLimitStillHolds(t *testing.T) {
	h := start(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Send the headers and the first 10 kB of the body only.
	fmt.Fprintf(conn, "POST /api/alert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"message\": \"%s", strings.Repeat("x", 10000))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 413 || !resp.Close {
		t.Errorf("100 kB alert = %d (close %v), want 413 and the connection closed", resp.StatusCode, resp.Close)
	}
}

// TestAutoSkipsArchivedRaw checks that a range whose raw readings were
// archived by retention is charted from the rollups that remain.
func TestAutoSkipsArchivedRaw(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Retention: store.Retention{Raw: 30 * 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rs []meter.Reading
	for i := 0; i < 31*24*60; i++ { // January, a reading a minute
		rs = append(rs, meter.Reading{Meter: "old", Time: jan.Add(time.Duration(i) * time.Minute), PowerW: 1000, Stamped: true})
	}
	if _, err := st.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyRetention(context.Background(), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	srv := api.New(st, alert.New(st, nil, alert.Options{}), api.Options{BodyLimitBytes: 4096})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	h := &harness{url: "http://" + ln.Addr().String(), store: st, srv: srv}
	var r struct {
		Step   string `json:"step"`
		Points []struct {
			EnergyKWh float64 `json:"energy_kwh"`
		} `json:"points"`
	}
	h.get(t, "/api/v1/meters/old/readings?from=2026-01-10T00:00:00Z&to=2026-01-10T12:00:00Z", &r)
	if r.Step != "1m" || len(r.Points) != 720 {
		t.Errorf("archived half-day at auto = step %q with %d points, want the 720 minute rollups", r.Step, len(r.Points))
	}
}

// TestOpenAPIIsCompressed: openapi.json goes brotli or gzip as the client
// accepts, decodes to the embedded file, has an ETag per encoding and
// answers 304 to a client that has it.
func TestOpenAPIIsCompressed(t *testing.T) {
	h := start(t)
	cl := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	fetch := func(accept, ifNoneMatch string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.url+"/api/v1/openapi.json", nil)
		req.Header.Set("Accept-Encoding", accept)
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r io.Reader = resp.Body
		switch resp.Header.Get("Content-Encoding") {
		case "br":
			r = brotli.NewReader(resp.Body)
		case "gzip":
			if r, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatalf("Accept-Encoding %q: %v", accept, err)
			}
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("Accept-Encoding %q: %v", accept, err)
		}
		return resp, b
	}
	file, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	etags := map[string]bool{}
	for _, enc := range []struct{ accept, want string }{{"", ""}, {"gzip", "gzip"}, {"gzip, deflate, br", "br"}} {
		resp, body := fetch(enc.accept, "")
		if got := resp.Header.Get("Content-Encoding"); resp.StatusCode != 200 || got != enc.want {
			t.Errorf("Accept-Encoding %q: %d %q, want 200 %q", enc.accept, resp.StatusCode, got, enc.want)
		}
		if !bytes.Equal(body, file) {
			t.Errorf("Accept-Encoding %q: decoded %d bytes, not openapi.json's %d", enc.accept, len(body), len(file))
		}
		if resp.Header.Get("Content-Type") != "application/json; charset=utf-8" || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Content-Type %q, Vary %q", enc.accept, resp.Header.Get("Content-Type"), resp.Header.Get("Vary"))
		}
		etag := resp.Header.Get("ETag")
		if etag == "" || etags[etag] {
			t.Errorf("Accept-Encoding %q: ETag %q, want one of its own", enc.accept, etag)
		}
		etags[etag] = true
		if resp, body := fetch(enc.accept, etag); resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("Accept-Encoding %q, If-None-Match %s: %d with %d bytes, want 304 and none", enc.accept, etag, resp.StatusCode, len(body))
		}
	}
}

// TestImportBeforeLiveReadings: a meter that reports live takes history
// only from before its last live reading; a later one would become its
// power now, and is refused, naming the line, with nothing stored.
func TestImportBeforeLiveReadings(t *testing.T) {
	h := start(t)
	now := time.Now()
	live := meter.Reading{Meter: "kitchen", Time: now.Add(-10 * time.Second), PowerW: 500}
	if err := h.store.Append(live, nil); err != nil {
		t.Fatal(err)
	}
	h.store.Flush()
	m, err := h.store.Meter("kitchen")
	if err != nil || m.LastHeard.IsZero() {
		t.Fatalf("kitchen: %+v %v, want heard live", m, err)
	}
	late := fmt.Sprintf("timestamp,power_w\n%s,900\n%s,9000000\n", now.Add(-time.Hour).Format(time.RFC3339), now.Add(-time.Second).Format(time.RFC3339Nano))
	var refusal struct{ Error, Detail string }
	if code := h.post(t, "/api/v1/meters/kitchen/import", "text/csv", late, &refusal); code != 400 || !strings.Contains(refusal.Detail, "line 3") ||
		!strings.Contains(refusal.Detail, "last reported live") {
		t.Fatalf("an import past the live readings: %d %+v, want 400 naming line 3", code, refusal)
	}
	if m2, _ := h.store.Meter("kitchen"); m2.Readings != m.Readings || m2.LastPowerW != 500 {
		t.Errorf("after the refused import: %d readings, %g W; want %d, 500 W", m2.Readings, m2.LastPowerW, m.Readings)
	}
	early := fmt.Sprintf("timestamp,power_w\n%s,900\n", now.Add(-time.Hour).Format(time.RFC3339))
	if code := h.post(t, "/api/v1/meters/kitchen/import", "text/csv", early, nil); code != 200 {
		t.Errorf("an import before the live readings: %d", code)
	}
}
