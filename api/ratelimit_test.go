package api_test

import (
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
)

// clientFrom makes requests from the loopback address src, so a test can
// be two clients.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// Past the rate limit an address gets 429 with Retry-After and a clear
// error; another address is not held back, and static assets are not
// counted.
func TestRateLimit(t *testing.T) {
	h := startOpts(t, api.Options{RateLimitPerMinute: 5})
	one, two := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	get := func(c *http.Client, path string) *http.Response {
		t.Helper()
		resp, err := c.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for i := range 5 {
		if resp := get(one, "/api/energy"); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, resp.StatusCode)
		}
	}
	for range 3 {
		if resp := get(one, "/assets/app.js"); resp.StatusCode == http.StatusTooManyRequests {
			t.Error("a static asset was rate limited")
		}
	}
	resp := get(one, "/api/energy")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("request 6: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	var body struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" {
		t.Errorf("429 body: %+v, %v", body, err)
	}
	if resp := get(two, "/api/energy"); resp.StatusCode != 200 {
		t.Errorf("another address was held back: %d", resp.StatusCode)
	}
}

// Behind a trusted reverse proxy, each client is limited on its own
// address as the proxy tells it; a header from anyone else changes
// nothing, so a client cannot dodge the limit by sending one.
func TestRateLimitBehindProxy(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		opts := api.Options{RateLimitPerMinute: 2}
		if trusted {
			opts.TrustedProxies = []string{"127.0.0.1"}
		}
		h := startOpts(t, opts)
		codes := map[string][]int{}
		for _, client := range []string{"203.0.113.1", "203.0.113.2"} {
			for range 2 {
				req, _ := http.NewRequest("GET", h.url+"/api/energy", nil)
				req.Header.Set("X-Real-IP", client)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				codes[client] = append(codes[client], resp.StatusCode)
			}
		}
		second := codes["203.0.113.2"]
		if trusted && (second[0] != 200 || second[1] != 200) {
			t.Errorf("behind a trusted proxy, a second client was limited with the first: %v", codes)
		}
		if !trusted && second[0] != http.StatusTooManyRequests {
			t.Errorf("an untrusted X-Real-IP dodged the limit: %v", codes)
		}
	}
}
