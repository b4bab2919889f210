package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestUnknownURLAndBrokerPort checks, on a running Vatio, that a browser's
// unknown URL gets the Not found page while the API keeps its JSON 404,
// and that the empty overview names the broker's real port.
func TestUnknownURLAndBrokerPort(t *testing.T) {
	v := startVatio(t, t.TempDir())
	origin := "http://" + v.http
	get := func(path, accept string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, origin+path, nil)
		req.Header.Set("Accept", accept)
		resp, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	const html = "text/html,application/xhtml+xml,*/*;q=0.8"
	if code, ctype, body := get("/nonexistent", html); code != http.StatusNotFound || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, "There is no such page or meter.") {
		t.Errorf("a browser's GET /nonexistent = %d %s:\n%s\nwant the Not found page, 404", code, ctype, body)
	}
	for _, c := range [][2]string{{"/nonexistent", "application/json"}, {"/api/v1/nonexistent", html}} {
		if code, ctype, body := get(c[0], c[1]); code != http.StatusNotFound || !strings.HasPrefix(ctype, "application/json") {
			t.Errorf("GET %s (Accept %s) = %d %s %s, want the API's JSON 404", c[0], c[1], code, ctype, body)
		}
	}
	_, port, err := net.SplitHostPort(v.mqtt)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := get("/", html); code != http.StatusOK || !strings.Contains(body, "port "+port+")") || !strings.Contains(body, "mosquitto_pub -h 127.0.0.1 -p "+port+" -t energy/consumption") {
		t.Errorf("the empty overview (%d) does not name the broker's port %s:\n%s", code, port, body)
	}
}
