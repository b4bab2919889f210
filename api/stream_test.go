package api_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// startOpts is start with the given API options.
func startOpts(t *testing.T, opts api.Options) *harness {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return startOptsOn(t, st, opts)
}

// startOptsOn is startOpts on the store st.
func startOptsOn(t *testing.T, st *store.Store, opts api.Options) *harness {
	t.Helper()
	alerts := alert.New(st, nil, alert.Options{})
	opts.BodyLimitBytes, opts.Gatherer = cmp.Or(opts.BodyLimitBytes, 4096), prometheus.NewRegistry()
	if opts.Tariff == nil {
		opts.Tariff = testTariff
	}
	srv := api.New(st, alerts, opts)
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
	})
	return &harness{url: "http://" + ln.Addr().String(), store: st, srv: srv}
}

// sse is one event or comment read from a stream.
type sse struct {
	id, event, data, comment string
	retry                    string
}

// openStream connects to path and returns what it sends, event by event.
func openStream(t *testing.T, h *harness, path string, header ...string) (<-chan sse, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	out := make(chan sse, 100)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				out <- ev
				ev = sse{}
			case strings.HasPrefix(line, ":"):
				ev.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "id":
					ev.id = v
				case "event":
					ev.event = v
				case "data":
					ev.data = v
				case "retry":
					ev.retry = v
				}
			}
		}
	}()
	return out, resp
}

// nextReading returns the next reading event, skipping comments and retry.
func nextReading(t *testing.T, events <-chan sse) (sse, map[string]any) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.event != "reading" {
				continue
			}
			var data map[string]any
			if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
				t.Fatalf("event data %q: %v", ev.data, err)
			}
			return ev, data
		case <-timeout:
			t.Fatal("no reading event within 5 s")
		}
	}
}

func live(m string, w float64) meter.Reading {
	return meter.Reading{Meter: m, Time: time.Now(), PowerW: w}
}

func TestStreamPushesNewReadings(t *testing.T) {
	h := startOpts(t, api.Options{StreamThrottle: 100 * time.Millisecond, StreamHeartbeat: 50 * time.Millisecond})
	events, resp := openStream(t, h, "/api/v1/stream")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type = %q", ct)
	}
	first := <-events
	if first.retry == "" {
		t.Errorf("first event %+v, want a retry interval", first)
	}
	h.add(t, live("kettle", 2000))
	ev, data := nextReading(t, events)
	if ev.id == "" || data["meter"] != "kettle" || data["power_w"] != 2000.0 || data["t"] == nil {
		t.Errorf("event %+v %v", ev, data)
	}
	// Heartbeats keep coming while nothing happens.
	timeout := time.After(5 * time.Second)
	for ping := false; !ping; {
		select {
		case ev := <-events:
			ping = ev.comment == "ping"
		case <-timeout:
			t.Fatal("no heartbeat")
		}
	}
	// A burst of one meter is throttled: fewer events, the newest last.
	for i := range 20 {
		if err := h.store.Append(live("kettle", float64(100+i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	h.store.Flush()
	n := 0
	for {
		_, data := nextReading(t, events)
		n++
		if data["power_w"] == 119.0 {
			break
		}
	}
	if n >= 20 {
		t.Errorf("%d events for a burst of 20 readings: not throttled", n)
	}
}

func TestStreamFilterAndReplay(t *testing.T) {
	h := startOpts(t, api.Options{StreamThrottle: 20 * time.Millisecond})
	events, _ := openStream(t, h, "/api/v1/stream?meter=b,c")
	h.add(t, live("a", 1))
	h.add(t, live("b", 2))
	ev, data := nextReading(t, events)
	if data["meter"] != "b" {
		t.Errorf("filtered stream sent %v", data)
	}
	// Reconnecting with Last-Event-ID sends what was missed, then goes on.
	h.add(t, live("a", 3))
	h.add(t, live("b", 4), live("c", 5))
	again, _ := openStream(t, h, "/api/v1/stream?meter=b,c", "Last-Event-ID", ev.id)
	_, d1 := nextReading(t, again)
	_, d2 := nextReading(t, again)
	if d1["power_w"] != 4.0 || d2["power_w"] != 5.0 {
		t.Errorf("replay = %v, %v; want b's 4 W then c's 5 W", d1, d2)
	}
	h.add(t, live("c", 6))
	if _, d := nextReading(t, again); d["power_w"] != 6.0 {
		t.Errorf("after the replay: %v", d)
	}
	// ?meter= alone: heartbeats, no readings.
	quiet, _ := openStream(t, h, "/api/v1/stream?meter=")
	<-quiet
	h.add(t, live("c", 7))
	select {
	case ev := <-quiet:
		if ev.event == "reading" {
			t.Errorf("a heartbeat-only stream sent %+v", ev)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

func TestStreamRefusals(t *testing.T) {
	h := startOpts(t, api.Options{MaxStreams: 1})
	for _, c := range []struct{ path, header, value string }{
		{"/api/v1/stream?meter=../etc", "", ""},
		{"/api/v1/stream?meter=" + strings.Repeat("a,", 101) + "a", "", ""},
		{"/api/v1/stream", "Last-Event-ID", "yesterday"},
	} {
		req, _ := http.NewRequest(http.MethodGet, h.url+c.path, nil)
		if c.header != "" {
			req.Header.Set(c.header, c.value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s %s=%s: %d, want 400", c.path, c.header, c.value, resp.StatusCode)
		}
	}
	events, _ := openStream(t, h, "/api/v1/stream")
	<-events
	resp, err := http.Get(h.url + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a stream past MaxStreams: %d, want 503 with Retry-After", resp.StatusCode)
	}
}

func TestShutdownIsNotHeldByStreams(t *testing.T) {
	h := startOpts(t, api.Options{})
	events, _ := openStream(t, h, "/api/v1/stream")
	<-events
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a stream open: %v", err)
	}
	for range events {
	} // the stream ends
}

// TestStreamsPerUser: a token holding MaxStreamsPerUser streams that
// opens another ends its oldest, with an "end" event, and keeps the rest;
// another token still gets a stream.
func TestStreamsPerUser(t *testing.T) {
	const perUser = 3
	h, tokens, users, _ := securedWith(t, api.Options{MaxStreamsPerUser: perUser})
	var streams []<-chan sse
	for range perUser + 1 {
		events, resp := openStream(t, h, "/api/v1/stream?meter=", "Authorization", "Bearer "+tokens["viewer"])
		if resp.StatusCode != 200 {
			t.Fatalf("stream: %d", resp.StatusCode)
		}
		<-events // retry: the stream is open
		streams = append(streams, events)
	}
	ended := func(events <-chan sse, wait time.Duration) bool {
		timeout := time.After(wait)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					return true
				}
				if ev.event == "end" {
					if !strings.Contains(ev.data, "live streams of one user") {
						t.Errorf("end event data %q", ev.data)
					}
				}
			case <-timeout:
				return false
			}
		}
	}
	if !ended(streams[0], 5*time.Second) {
		t.Error("the oldest stream of the session was not ended")
	}
	for i, s := range streams[1:] {
		if ended(s, 300*time.Millisecond) {
			t.Errorf("stream %d of %d ended", i+2, perUser+1)
		}
	}
	if events, resp := openStream(t, h, "/api/v1/stream?meter=", "Authorization", "Bearer "+tokens["operator"]); resp.StatusCode != 200 {
		t.Errorf("another token's stream: %d", resp.StatusCode)
	} else if ended(events, 300*time.Millisecond) {
		t.Error("another token's stream ended")
	}

	// A user's sessions share the cap: logging in again gains nothing.
	if _, err := users.AddUser("vic", "a long enough password", auth.Viewer); err != nil {
		t.Fatal(err)
	}
	var first <-chan sse
	for i := range perUser + 1 {
		id, _, err := users.Login("vic", "a long enough password", fmt.Sprintf("198.51.100.%d", i))
		if err != nil {
			t.Fatal(err)
		}
		events, resp := openStream(t, h, "/api/v1/stream?meter=", "Cookie", auth.SessionCookie+"="+id)
		if resp.StatusCode != 200 {
			t.Fatalf("session %d's stream: %d", i, resp.StatusCode)
		}
		<-events
		if i == 0 {
			first = events
		}
	}
	if !ended(first, 5*time.Second) {
		t.Error("a user's oldest stream was not ended by a stream of another of their sessions")
	}
}
