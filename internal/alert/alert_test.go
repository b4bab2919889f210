package alert_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/store"
)

// receiver is a real HTTP server that fails the first `failures` requests.
type receiver struct {
	mu       sync.Mutex
	failures int
	got      []map[string]any
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures > 0 {
		r.failures--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil || req.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.got = append(r.got, body)
}

func (r *receiver) received() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

func openStore(t *testing.T, dir string) *store.Store {
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func delivery(t *testing.T, st *store.Store, id uint64) store.Delivery {
	t.Helper()
	as, err := st.Alerts(1, func(a *store.Alert) bool { return a.ID == id })
	if err != nil || len(as) != 1 {
		t.Fatalf("alert %d: %v", id, err)
	}
	return as[0].Deliveries[0]
}

func TestWebhookRetriedUntilDelivered(t *testing.T) {
	rcv := &receiver{failures: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	st := openStore(t, t.TempDir())
	svc := alert.New(st, []alert.Notifier{alert.NewWebhook(srv.URL, time.Second)}, alert.Options{Backoff: 10 * time.Millisecond})
	defer svc.Close()

	a, err := svc.Raise("warning", "  fridge drawing 2 kW  ", "kitchen", "api")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return delivery(t, st, a.ID).Status == store.DeliveryDelivered })
	if d := delivery(t, st, a.ID); d.Attempts != 3 {
		t.Errorf("attempts = %d, want 3 (two failures, then success)", d.Attempts)
	}
	got := rcv.received()
	if len(got) != 1 || got[0]["message"] != "fridge drawing 2 kW" || got[0]["severity"] != "warning" || got[0]["meter"] != "kitchen" || got[0]["id"] != float64(a.ID) {
		t.Errorf("receiver got %v", got)
	}
}

func TestWebhookGivesUpAfterAttempts(t *testing.T) {
	rcv := &receiver{failures: 1000}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	st := openStore(t, t.TempDir())
	svc := alert.New(st, []alert.Notifier{alert.NewWebhook(srv.URL, time.Second)}, alert.Options{Attempts: 3, Backoff: time.Millisecond})
	defer svc.Close()
	a, err := svc.Raise("critical", "x", "", "api")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failure", func() bool { return delivery(t, st, a.ID).Status == store.DeliveryFailed })
	if d := delivery(t, st, a.ID); d.Attempts != 3 || d.LastError == "" {
		t.Errorf("delivery = %+v, want 3 attempts and the last error", d)
	}
}

// TestPendingDeliveryResumesAfterRestart closes the service while the
// receiver is down and checks a new service delivers the alert.
func TestPendingDeliveryResumesAfterRestart(t *testing.T) {
	rcv := &receiver{failures: 1000}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	dir := t.TempDir()
	st := openStore(t, dir)
	svc := alert.New(st, []alert.Notifier{alert.NewWebhook(srv.URL, time.Second)}, alert.Options{Attempts: 100, Backoff: time.Hour})
	a, err := svc.Raise("info", "restart me", "", "api")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first attempt", func() bool { return delivery(t, st, a.ID).Attempts == 1 })
	svc.Close()
	if d := delivery(t, st, a.ID); d.Status != store.DeliveryPending {
		t.Fatalf("after Close the delivery is %q, want pending", d.Status)
	}
	rcv.mu.Lock()
	rcv.failures = 0
	rcv.mu.Unlock()
	svc = alert.New(st, []alert.Notifier{alert.NewWebhook(srv.URL, time.Second)}, alert.Options{Backoff: time.Millisecond})
	defer svc.Close()
	waitFor(t, "delivery after restart", func() bool { return delivery(t, st, a.ID).Status == store.DeliveryDelivered })
	if got := rcv.received(); len(got) != 1 {
		t.Errorf("receiver got %d alerts, want 1", len(got))
	}
}

func TestRaiseValidates(t *testing.T) {
	st := openStore(t, t.TempDir())
	svc := alert.New(st, nil, alert.Options{})
	defer svc.Close()
	tests := []struct{ severity, message, meter, field string }{
		{"info", "", "", "message"},
		{"info", "   ", "", "message"},
		{"loud", "x", "", "severity"},
		{"info", "x", "bad id", "meter"},
		{"info", strings.Repeat("é", alert.MaxMessageLength+1), "", "message"},
		{"info", "\xff", "", "message"},
	}
	for _, tt := range tests {
		_, err := svc.Raise(tt.severity, tt.message, tt.meter, "api")
		var ie *alert.InvalidError
		if !errors.As(err, &ie) || ie.Field != tt.field {
			t.Errorf("Raise(%q, %.10q, %q) = %v, want an InvalidError on %s", tt.severity, tt.message, tt.meter, err, tt.field)
		}
	}
	if as, _ := svc.History(10); len(as) != 0 {
		t.Errorf("invalid alerts were stored: %+v", as)
	}
	a, err := svc.Raise("", "default severity", "", "api")
	if err != nil || a.Severity != "info" {
		t.Errorf("Raise with no severity = %+v, %v; want info", a, err)
	}
}

// Two services sharing a store, as instances sharing PostgreSQL do, each
// sweeping often: every alert still reaches the receiver once, though
// each first attempt fails and leaves it pending for the other to see.
func TestSharedStoreDeliversOnce(t *testing.T) {
	var mu sync.Mutex
	tried, got := map[float64]int{}, map[float64]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		id, _ := body["id"].(float64)
		mu.Lock()
		defer mu.Unlock()
		if tried[id]++; tried[id] == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		got[id]++
	}))
	defer srv.Close()
	st := openStore(t, t.TempDir())
	opts := alert.Options{Backoff: 50 * time.Millisecond, Sweep: 5 * time.Millisecond}
	a := alert.New(st, []alert.Notifier{alert.NewWebhook(srv.URL, time.Second)}, opts)
	defer a.Close()
	b := alert.New(st, []alert.Notifier{alert.NewWebhook(srv.URL, time.Second)}, opts)
	defer b.Close()
	var ids []uint64
	for i := range 20 {
		svc := a
		if i%2 == 1 {
			svc = b
		}
		al, err := svc.Raise("warning", "over the cap", "", "api")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, al.ID)
	}
	for _, id := range ids {
		waitFor(t, "delivery", func() bool { return delivery(t, st, id).Status == store.DeliveryDelivered })
	}
	// Both services stopped, and every request they sent answered: a
	// second delivery of any alert has landed by now, or never will.
	a.Close()
	b.Close()
	srv.Close()
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if n := got[float64(id)]; n != 1 {
			t.Errorf("alert %d delivered %d times, want once", id, n)
		}
	}
	as, err := st.Alerts(100, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, al := range as {
		if al.Claim != nil {
			t.Errorf("alert %d still claimed by %s after its delivery", al.ID, al.Claim.Instance)
		}
	}
}

// An alert claimed by an instance that died is left alone until the claim
// lapses, then delivered by another.
func TestLapsedClaimTakenOver(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	st := openStore(t, t.TempDir())
	until := time.Now().Add(300 * time.Millisecond).UTC()
	a := store.Alert{Time: time.Now().UTC(), Severity: "info", Message: "left behind", Source: "api",
		Deliveries: []store.Delivery{{Notifier: "webhook", Status: store.DeliveryPending}},
		Claim:      &store.Claim{Instance: "dead-instance", Until: until}}
	if err := st.AddAlert(&a); err != nil {
		t.Fatal(err)
	}
	svc := alert.New(st, []alert.Notifier{alert.NewWebhook(srv.URL, time.Second)}, alert.Options{Sweep: 20 * time.Millisecond})
	defer svc.Close()
	waitFor(t, "delivery", func() bool { return delivery(t, st, a.ID).Status == store.DeliveryDelivered })
	if d := delivery(t, st, a.ID); d.Updated.Before(until) {
		t.Errorf("delivered at %v, before the claim lapsed at %v", d.Updated, until)
	}
	if got := rcv.received(); len(got) != 1 {
		t.Errorf("receiver got %d alerts, want 1", len(got))
	}
}

// TestRaiseMessage: Vatio's own alerts are stored with their message key
// and values and the English text, times in the zone given; a key with no
// text is refused.
func TestRaiseMessage(t *testing.T) {
	st := openStore(t, t.TempDir())
	svc := alert.New(st, nil, alert.Options{})
	t.Cleanup(svc.Close)
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2026, 11, 25, 10, 15, 0, 0, time.UTC)
	a, err := svc.RaiseMessage(alert.SeverityWarning, alert.Lockout("192.0.2.1", "ana", until), madrid, "", "security")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.Alerts(10, func(s *store.Alert) bool { return s.ID == a.ID })
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored alerts %+v, %v", stored, err)
	}
	got := stored[0]
	if want := `repeated failed logins from 192.0.2.1 (user "ana"): locked out until 2026-11-25 11:15:00`; got.Message != want ||
		got.Key != alert.MsgLockout || got.Args["until_at"] != "2026-11-25T10:15:00Z" || got.Args["user"] != "ana" {
		t.Errorf("stored %q key %q args %v; want %q", got.Message, got.Key, got.Args, want)
	}
	if _, err := svc.RaiseMessage(alert.SeverityWarning, alert.Message{Key: "alert.nope"}, nil, "", "x"); err == nil {
		t.Error("a message key with no text was raised")
	}
}
