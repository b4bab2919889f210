package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
)

// TestChunkedBodies checks that bodies sent with Transfer-Encoding:
// chunked (curl -T -, any client streaming a body of unknown length) are
// read to their end: an import and an alert answered at once, not 408 once
// the upload's idle time has passed with the body complete (found by the
// attacker's review).
func TestChunkedBodies(t *testing.T) {
	h := startOpts(t, api.Options{ReadTimeout: 3 * time.Second})
	post := func(path, ctype, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, h.url+path, struct{ io.Reader }{strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ctype)
		req.ContentLength = -1 // unknown: sent chunked
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		t.Logf("%s: %d in %s", path, res.StatusCode, time.Since(start).Round(time.Millisecond))
		return res, string(b)
	}
	res, body := post("/api/v1/meters/piped/import", "text/csv", "timestamp,power_w\n2026-11-02T00:00:00Z,100\n2026-11-02T00:00:10Z,110\n")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"readings":2`) {
		t.Errorf("chunked import = %d %s", res.StatusCode, body)
	}
	if m, err := h.store.Meter("piped"); err != nil || m.Readings != 2 {
		t.Errorf("piped: %+v, %v; want 2 readings", m, err)
	}
	res, body = post("/api/alert", "application/json", `{"message": "boiler", "severity": "warning"}`)
	if res.StatusCode/100 != 2 {
		t.Errorf("chunked alert = %d %s", res.StatusCode, body)
	}
}
