package dashboard_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/dashboard"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

var (
	t0        = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	madrid, _ = time.LoadLocation("Europe/Madrid")
)

// newApp opens a store in a temp dir, appends readings, and returns a Fiber
// app serving the dashboard and what the dashboard logged.
func newApp(tb testing.TB, readings ...meter.Reading) (*fiber.App, *bytes.Buffer) {
	tb.Helper()
	return newAppWith(tb, dashboard.New, readings...)
}

// newAppWith is newApp with another constructor of the dashboard.
func newAppWith(tb testing.TB, newDashboard func(*store.Store, dashboard.Options) *dashboard.Dashboard, readings ...meter.Reading) (*fiber.App, *bytes.Buffer) {
	tb.Helper()
	st, err := store.Open(tb.TempDir(), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	for _, r := range readings {
		if err := st.Append(r, nil); err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.Flush(); err != nil {
		tb.Fatal(err)
	}
	var logs bytes.Buffer
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	newDashboard(st, dashboard.Options{
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Location: madrid,
		Now:      func() time.Time { return appNow },
		Tariff:   energy.FixedTariff(&tariff.Tariff{Currency: "EUR", PriceKWh: 0.2, DailyCharge: 0.5, CO2GramsKWh: 250, Location: madrid}),
	}).Register(app)
	return app, &logs
}

// appNow is the dashboards' clock: t0 and 10 s, unless a test (none runs
// in parallel) moves it for itself.
var appNow = t0.Add(10 * time.Second)

func reading(m string, sec int, powerW float64) meter.Reading {
	return meter.Reading{Meter: m, Time: t0.Add(time.Duration(sec) * time.Second), PowerW: powerW, Stamped: true}
}

// get requests path and returns the response and its body, decoded when it
// was gzipped or brotli-compressed.
func get(tb testing.TB, app *fiber.App, path string, header ...string) (*http.Response, string) {
	tb.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	res, err := app.Test(req, -1)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	var body io.Reader = res.Body
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			tb.Fatalf("GET %s: gzip: %v", path, err)
		}
		body = zr
	}
	if res.Header.Get("Content-Encoding") == "br" {
		body = brotli.NewReader(res.Body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		tb.Fatalf("GET %s: read body: %v", path, err)
	}
	return res, string(b)
}

// requireECharts fails the test when the ECharts build is not embedded.
func requireECharts(t *testing.T, app *fiber.App) {
	t.Helper()
	if res, _ := get(t, app, "/assets/vendor/echarts.min.js"); res.StatusCode != http.StatusOK {
		t.Fatalf("GET /assets/vendor/echarts.min.js: status %d: the ECharts build is not embedded: run make assets", res.StatusCode)
	}
}

var externalURL = regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?\s*(https?:)?//`)

func TestPage(t *testing.T) {
	app, logs := newApp(t,
		reading("m1", 0, 1000), reading("m1", 1, 2500),
		reading("house:main", 0, 420), reading("house:main", 2, 1_250_000),
	)
	requireECharts(t, app)
	if logs.Len() > 0 {
		t.Errorf("New logged %q, want nothing", logs)
	}
	res, page := get(t, app, "/")

	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body:\n%s", res.StatusCode, page)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
	}
	for _, want := range []string{
		`<html lang="en" data-page="overview" data-tz="Europe/Madrid">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<title>Overview · Vatio</title>`,
		`<a href="/" aria-current="page">Overview</a>`,
		`data-meter="m1"`,
		`<a href="/meters/m1">m1</a>`,
		`>2.50 kW</data>`,
		`data-meter="house:main"`,
		`>1.25 MW</data>`,
		`id="site-power"`, `id="today-kwh"`,
		`let goecharts_live = echarts.init(document.getElementById('live')`,
		`let goecharts_gauge = echarts.init(document.getElementById('gauge')`,
		`"type":"time"`,
		`"name":"kW"`,
		`"type":"gauge"`,
		// The newest reading of m1: 2.5 kW at t0+1s, as [Unix ms, kW].
		fmt.Sprintf(`[%d,2.5]`, t0.Add(time.Second).UnixMilli()),
		`<script src="/assets/vendor/echarts.min.js?v=`,
		`<script src="/assets/app.js?v=`,
		`<link rel="stylesheet" href="/assets/app.css?v=`,
		`<link rel="icon" href="/assets/icon.svg?v=`,
		`<script type="application/json" id="texts">{"js.add_failed":`,
		`No alerts.`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q; page:\n%s", want, page)
		}
	}
	if m := externalURL.FindString(page); m != "" {
		t.Errorf("page references another host: %q", m)
	}
	for _, unwanted := range []string{`id="empty"`, "make assets", "go-echarts.github.io"} {
		if strings.Contains(page, unwanted) {
			t.Errorf("page contains %q; page:\n%s", unwanted, page)
		}
	}
	// Series follow the cards' order, by name.
	if i, j := strings.Index(page, `"name":"house:main"`), strings.Index(page, `"name":"m1"`); i < 0 || j < 0 || i > j {
		t.Errorf("series house:main at %d, m1 at %d; want both, house:main first", i, j)
	}
}

// TestPageScriptsAllowed checks that the Content-Security-Policy lets the
// page run exactly its scripts: each inline script is pinned by its hash,
// and nothing may load from another origin.
func TestPageScriptsAllowed(t *testing.T) {
	app, _ := newApp(t, reading("m1", 0, 2500))
	requireECharts(t, app)
	res, page := get(t, app, "/")
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want default-src and connect-src 'self'", csp)
	}
	inline := regexp.MustCompile(`(?s)<script[^>]*>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	hashed := 0
	for _, m := range inline {
		if tag := m[0][:strings.Index(m[0], ">")]; strings.Contains(tag, "src=") || strings.Contains(tag, `type="application/json"`) {
			continue // loaded from the origin, or data that never runs
		}
		sum := sha256.Sum256([]byte(m[1]))
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, h) {
			t.Errorf("Content-Security-Policy %q lacks %s, the hash of inline script:\n%s", csp, h, m[1])
		}
		hashed++
	}
	if hashed != 2 {
		t.Errorf("page has %d inline scripts, want 2 (the gauge's and the live chart's)", hashed)
	}
}

func TestPageEmpty(t *testing.T) {
	app, _ := newApp(t)
	res, page := get(t, app, "/", "Host", "vatio.lan:5000")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	for _, want := range []string{
		`id="empty"`,
		"No readings yet",
		"mosquitto_pub -h vatio.lan -t energy/consumption -m 2.5",
		"energy/consumption/&lt;meter&gt;",
		`-t energy/consumption/kitchen -m '{"power_w": 1234.5}'`,
		"Tasmota, Shelly",
		`<script src="/assets/app.js?v=`,
		`id="status"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("empty page lacks %q; page:\n%s", want, page)
		}
	}
	for _, unwanted := range []string{`id="live"`, "goecharts_", `class="card`} {
		if strings.Contains(page, unwanted) {
			t.Errorf("empty page contains %q", unwanted)
		}
	}
}

// TestPageEmptyMQTTPort checks that the empty overview names the broker's
// real port, and gives mosquitto_pub its -p when it is not 1883.
func TestPageEmptyMQTTPort(t *testing.T) {
	for _, tc := range []struct {
		port     int
		want     []string
		unwanted []string
	}{
		{1884, []string{"this machine, port 1884)", "mosquitto_pub -h vatio.lan -p 1884 -t energy/consumption -m 2.5", "mosquitto_pub -h vatio.lan -p 1884 -t energy/consumption/kitchen"}, []string{"1883"}},
		{0, []string{"this machine, port 1883)", "mosquitto_pub -h vatio.lan -t energy/consumption -m 2.5"}, []string{" -p "}},
	} {
		app, _ := newAppWith(t, func(st *store.Store, opts dashboard.Options) *dashboard.Dashboard {
			opts.MQTTPort = tc.port
			return dashboard.New(st, opts)
		})
		_, page := get(t, app, "/", "Host", "vatio.lan:5000")
		for _, want := range tc.want {
			if !strings.Contains(page, want) {
				t.Errorf("port %d: empty page lacks %q; page:\n%s", tc.port, want, page)
			}
		}
		for _, unwanted := range tc.unwanted {
			if strings.Contains(page, unwanted) {
				t.Errorf("port %d: empty page contains %q", tc.port, unwanted)
			}
		}
	}
}

// TestPageEscapes checks that the Host header, which the client chooses, is
// escaped into the page.
func TestPageEscapes(t *testing.T) {
	app, _ := newApp(t)
	res, page := get(t, app, "/", "Host", `"><b>x`)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	if want := "mosquitto_pub -h &#34;&gt;&lt;b&gt;x -t"; !strings.Contains(page, want) || strings.Contains(page, "<b>") {
		t.Errorf("page lacks the escaped Host header %q or contains it unescaped:\n%s", want, page)
	}
}

// TestPageWithoutECharts checks the page of a binary built without make
// assets: a visible notice instead of a blank chart, and a warning in the log.
func TestPageWithoutECharts(t *testing.T) {
	app, logs := newAppWith(t, dashboard.NewWithoutECharts, reading("m1", 0, 2500))
	if !strings.Contains(logs.String(), "run make assets") {
		t.Errorf("log = %q, want a warning to run make assets", logs)
	}
	res, page := get(t, app, "/")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	for _, want := range []string{`class="notice" role="alert"`, "make assets", `data-meter="m1"`, `>2.50 kW</data>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q; page:\n%s", want, page)
		}
	}
	for _, unwanted := range []string{`id="live"`, "echarts.min.js", "goecharts_"} {
		if strings.Contains(page, unwanted) {
			t.Errorf("page contains %q; page:\n%s", unwanted, page)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); strings.Contains(csp, "sha256-") {
		t.Errorf("Content-Security-Policy = %q, want no inline script allowed", csp)
	}
}

// TestAssets asks for the static files over real HTTP as browsers do: by
// the hashed URLs of the page, in each encoding, and again with the ETag.
func TestAssets(t *testing.T) {
	app, _ := newApp(t)
	requireECharts(t, app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() { app.Shutdown() })
	get := func(t *testing.T, _ *fiber.App, path string, header ...string) (*http.Response, string) {
		return fetch(t, "http://"+ln.Addr().String()+path, header...)
	}
	_, page := get(t, app, "/")
	tests := []struct {
		path, contentType, contains string
	}{
		{"/assets/app.js", "text/javascript; charset=utf-8", "getInstanceByDom"},
		{"/assets/app.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"/assets/icon.svg", "image/svg+xml", "<svg"},
		{"/assets/vendor/echarts.min.js", "text/javascript; charset=utf-8", "echarts"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := get(t, app, tt.path)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			// Asked for without its version, a file is revalidated.
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q without ?v=, want no-cache", got)
			}
			if got := res.Header.Get("Content-Encoding"); got != "" {
				t.Errorf("Content-Encoding = %q without Accept-Encoding, want none", got)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}

			// The page's URL carries the version: kept a year.
			hashed := regexp.MustCompile(regexp.QuoteMeta(tt.path) + `\?v=[A-Za-z0-9_-]+`).FindString(page)
			if hashed == "" {
				t.Fatalf("the page has no hashed URL of %s", tt.path)
			}
			hres, hbody := get(t, app, hashed)
			if got := hres.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" || hbody != body {
				t.Errorf("GET %s: Cache-Control = %q (%d bytes), want public, max-age=31536000, immutable", hashed, got, len(hbody))
			}
			if sres, _ := get(t, app, tt.path+"?v=old"); sres.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("GET %s?v=old: Cache-Control = %q, want no-cache", tt.path, sres.Header.Get("Cache-Control"))
			}

			etags := map[string]string{}
			for _, enc := range []struct{ accept, want string }{
				{"", ""}, {"gzip", "gzip"}, {"br, gzip;q=0.8", "br"}, {"gzip, deflate, br, zstd", "br"}, {"br;q=0.5, gzip", "gzip"},
			} {
				zres, zbody := get(t, app, hashed, "Accept-Encoding", enc.accept)
				if got := zres.Header.Get("Content-Encoding"); got != enc.want {
					t.Errorf("Accept-Encoding %q: Content-Encoding = %q, want %q", enc.accept, got, enc.want)
				}
				if zbody != body {
					t.Errorf("Accept-Encoding %q: the decoded body differs from the file (%d bytes, want %d)", enc.accept, len(zbody), len(body))
				}
				if got := zres.Header.Get("Vary"); got != "Accept-Encoding" {
					t.Errorf("Vary = %q, want Accept-Encoding", got)
				}
				etag := zres.Header.Get("ETag")
				if other, seen := etags[etag]; seen && other != enc.want {
					t.Errorf("%s and %q answers share the ETag %s", other, enc.want, etag)
				}
				etags[etag] = enc.want
				cres, cbody := get(t, app, hashed, "Accept-Encoding", enc.accept, "If-None-Match", etag)
				if cres.StatusCode != http.StatusNotModified || cbody != "" || cres.Header.Get("ETag") != etag {
					t.Errorf("Accept-Encoding %q, If-None-Match %s: status %d with %d bytes, ETag %s; want 304, none, the same ETag",
						enc.accept, etag, cres.StatusCode, len(cbody), cres.Header.Get("ETag"))
				}
			}
			if len(etags) != 3 {
				t.Errorf("ETags %v, want one for each of none, gzip and br", etags)
			}
		})
	}
}

// fetch makes a real GET of url with headers (name, value pairs); the
// client asks for no encoding of its own, and the body comes back decoded.
func fetch(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	var body io.Reader = res.Body
	switch res.Header.Get("Content-Encoding") {
	case "gzip":
		if body, err = gzip.NewReader(res.Body); err != nil {
			t.Fatalf("GET %s: gzip: %v", url, err)
		}
	case "br":
		body = brotli.NewReader(res.Body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return res, string(b)
}

func TestAssetsRefused(t *testing.T) {
	app, _ := newApp(t)
	for _, path := range []string{"/assets/nope.js", "/assets/", "/assets/vendor", "/assets/../dashboard.go", "/assets/%2e%2e/page.html"} {
		if res, _ := get(t, app, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, res.StatusCode)
		}
	}
	if res, _ := get(t, app, "/assets/app.js", "Accept-Encoding", "gzip;q=0"); res.Header.Get("Content-Encoding") != "" {
		t.Errorf("Accept-Encoding gzip;q=0: Content-Encoding = %q, want none", res.Header.Get("Content-Encoding"))
	}
}

func TestPageGzip(t *testing.T) {
	app, _ := newApp(t, reading("m1", 0, 2500))
	res, page := get(t, app, "/", "Accept-Encoding", "gzip")
	if got := res.Header.Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding = %q, want gzip", got)
	}
	if !strings.Contains(page, `data-meter="m1"`) {
		t.Errorf("gunzipped page lacks meter m1:\n%s", page)
	}
}

// BenchmarkRenderPage renders each page of a dashboard of 10 meters with
// 500 readings each in the last hour and, for the meter page, a year of
// hourly rollups (its daily bars, load profile and calendar read them).
func BenchmarkRenderPage(b *testing.B) {
	var rs []meter.Reading
	for m := range 10 {
		for i := range 500 {
			rs = append(rs, reading(fmt.Sprintf("meter-%02d", m), -i*7, float64(1000+i)))
		}
	}
	for h := range 365 * 24 {
		rs = append(rs, meter.Reading{Meter: "meter-00", Time: t0.Add(-time.Duration(h)*time.Hour - time.Hour), PowerW: float64(500 + h%700), Stamped: true})
	}
	app, _ := newApp(b, rs...)
	for _, path := range []string{"/", "/meters", "/meters/meter-00", "/alerts"} {
		b.Run(strings.ReplaceAll(path, "/", "_"), func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			b.ReportAllocs()
			for b.Loop() {
				res, err := app.Test(req, -1)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
				b.SetBytes(n)
			}
		})
	}
}
