package automation_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vatio-energy/vatio/internal/automation"
)

// TestEgress sends webhooks to real servers on loopback through a Sender
// with an Egress: refused unless loopback is allowed, never to Vatio's own
// port, never to link-local addresses, and not through a redirect either.
func TestEgress(t *testing.T) {
	var hits atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		}
	}))
	defer hook.Close()
	own := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1000) }))
	defer own.Close()
	ownURL, _ := url.Parse(own.URL)
	ownPort, _ := strconv.Atoi(ownURL.Port())
	hookURL, _ := url.Parse(hook.URL)

	send := func(allowLoopback bool, target string) error {
		s := &automation.Sender{Egress: &automation.Egress{AllowLoopback: allowLoopback, OwnPorts: []int{ownPort}}}
		return s.Send(context.Background(), automation.Command{URL: target, Payload: "{}"})
	}
	for _, c := range []struct {
		name          string
		allowLoopback bool
		url           string
		refused       string // "" for sent
	}{
		{"loopback, not allowed", false, hook.URL + "/hook", "loopback"},
		{"localhost resolves to loopback", false, "http://localhost:" + hookURL.Port() + "/hook", "loopback"},
		{"loopback, allowed", true, hook.URL + "/hook", ""},
		{"Vatio's own port, even with loopback allowed", true, own.URL + "/api/v1/backup", "own listener"},
		{"Vatio's own port by name", true, "http://localhost:" + ownURL.Port() + "/", "own listener"},
		{"cloud metadata", true, "http://169.254.169.254/latest/meta-data/", "link-local"},
		{"IPv6 link-local", true, "http://[fe80::1]/", "link-local"},
		{"unspecified", true, "http://0.0.0.0:" + hookURL.Port() + "/", "not a host"},
		{"a redirect to the metadata service", true, hook.URL + "/redirect?to=" + url.QueryEscape("http://169.254.169.254/"), "link-local"},
		{"a redirect to Vatio", true, hook.URL + "/redirect?to=" + url.QueryEscape(own.URL+"/"), "own listener"},
		{"file scheme", true, "file:///etc/passwd", "only http and https"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := send(c.allowLoopback, c.url)
			switch {
			case c.refused == "" && err != nil:
				t.Errorf("send %s: %v, want sent", c.url, err)
			case c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused)):
				t.Errorf("send %s: %v, want refused (%s)", c.url, err, c.refused)
			case c.refused != "" && strings.HasPrefix(c.url, "http") && !strings.Contains(c.url, "file") && !errors.Is(err, automation.ErrRefusedTarget):
				t.Errorf("send %s: %v is not ErrRefusedTarget", c.url, err)
			}
		})
	}
	if n := hits.Load(); n >= 1000 {
		t.Errorf("Vatio's own listener was reached (%d)", n)
	}
}
