package automation

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

type published struct {
	mu   sync.Mutex
	msgs []string
	fail bool
}

func (p *published) publish(topic string, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("broker closed")
	}
	p.msgs = append(p.msgs, topic+" "+string(payload))
	return nil
}

func (p *published) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs)
}

func power(t *testing.T, st *store.Store, m string, w float64) {
	t.Helper()
	if err := st.Append(meter.Reading{Meter: m, Time: time.Now(), PowerW: w}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestSheddingShedsInOrderAndRestoresLastFirst(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	power(t, st, "main", 6000)
	power(t, st, "heater", 2000)
	power(t, st, "ev", 3000)
	power(t, st, "fridge", 100)
	for _, id := range []string{"heater", "ev", "fridge"} {
		if _, err := st.EditMeter(id, func(m *store.MeterInfo) error { m.Parent = "main"; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.EditMeter("fridge", func(m *store.MeterInfo) error { m.Critical = true; return nil }); err != nil {
		t.Fatal(err)
	}
	cfg := Shedding{Site: store.DefaultSite, CapW: 5000, HysteresisW: 1000, MinOff: time.Second, Loads: []Load{
		{Name: "fridge", Meter: "fridge", Off: Command{Topic: "cmnd/fridge/POWER", Payload: "OFF"}, On: Command{Topic: "cmnd/fridge/POWER", Payload: "ON"}},
		{Name: "heater", Meter: "heater", Off: Command{Topic: "cmnd/heater/POWER", Payload: "OFF"}, On: Command{Topic: "cmnd/heater/POWER", Payload: "ON"}},
		{Name: "ev", Meter: "ev", Off: Command{Topic: "zigbee2mqtt/ev/set", Payload: `{"state":"OFF"}`}, On: Command{Topic: "zigbee2mqtt/ev/set", Payload: `{"state":"ON"}`}},
	}}
	pub := &published{}
	s, err := NewShedder(cfg, st, &Sender{Publish: pub.publish}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The shedder judges meters online by when they last reported, on the
	// clock: it is evaluated at the time of the readings, not at a time
	// made up (two minutes after its last reading, a meter is offline).
	s.Evaluate(ctx, time.Now())
	s.Evaluate(ctx, time.Now()) // no reading since: the power has not taken it in
	if got := pub.got(); len(got) != 1 {
		t.Fatalf("acted again before a fresh reading: %v", got)
	}
	power(t, st, "main", 6000)
	s.Evaluate(ctx, time.Now())
	shedAt := time.Now()
	power(t, st, "main", 6000)
	s.Evaluate(ctx, time.Now()) // nothing left to shed
	want := []string{"cmnd/heater/POWER OFF", `zigbee2mqtt/ev/set {"state":"OFF"}`}
	if got := pub.got(); !slices.Equal(got, want) {
		t.Fatalf("over the cap: %v, want %v (the critical fridge never)", got, want)
	}
	// Restarted: the shed loads are remembered.
	st.Close()
	if st, err = store.Open(dir, store.Options{}); err != nil {
		t.Fatal(err)
	}
	if s, err = NewShedder(cfg, st, &Sender{Publish: pub.publish}, nil); err != nil {
		t.Fatal(err)
	}
	power(t, st, "main", 4500) // under the cap, within the margin
	s.Evaluate(ctx, time.Now())
	power(t, st, "main", 3000)
	s.Evaluate(ctx, time.Now())
	if got := pub.got(); len(got) != 2 && time.Since(shedAt) < cfg.MinOff {
		t.Fatalf("restored before min_off: %v", got)
	}
	// min_off later on the shedder's clock, the time Evaluate is given:
	// the test need not wait for it.
	later := shedAt.Add(cfg.MinOff)
	power(t, st, "main", 3000)
	s.Evaluate(ctx, later)
	power(t, st, "main", 3000)
	s.Evaluate(ctx, later)
	want = append(want, `zigbee2mqtt/ev/set {"state":"ON"}`, "cmnd/heater/POWER ON")
	if got := pub.got(); !slices.Equal(got, want) {
		t.Errorf("restored: %v, want %v", got, want)
	}
	status, err := s.Status(time.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(status.Shed) != 0 || len(status.Actions) != 4 || status.Actions[0].Action != "restore" || status.Actions[0].Load != "heater" ||
		status.Actions[3].Action != "shed" || status.Actions[3].SiteW != 6000 {
		t.Errorf("status = %+v", status)
	}
}

func TestSheddingDryRunAndFailures(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	power(t, st, "main", 9000)
	pub := &published{fail: true}
	load := Load{Name: "pump", Meter: "pump", Off: Command{Topic: "cmnd/pump/POWER", Payload: "OFF"}, On: Command{Topic: "cmnd/pump/POWER", Payload: "ON"}}
	dry, err := NewShedder(Shedding{Site: store.DefaultSite, CapW: 5000, Loads: []Load{load}, DryRun: true}, st, &Sender{Publish: pub.publish}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dry.Evaluate(context.Background(), time.Now())
	status, _ := dry.Status(time.Now(), 10)
	if len(status.Actions) != 1 || !status.Actions[0].DryRun || status.Actions[0].Error != "" {
		t.Errorf("dry run: %+v", status.Actions)
	}
	// A failed command is recorded with its error, and the load is not
	// taken as shed: the next turn tries it again.
	real, _ := NewShedder(Shedding{Site: "plant", CapW: 5000, Loads: []Load{load}}, st, &Sender{Publish: pub.publish}, nil)
	if _, err := st.EditMeter("main", func(m *store.MeterInfo) error { m.Site = "plant"; return nil }); err != nil {
		t.Fatal(err)
	}
	real.Evaluate(context.Background(), time.Now())
	status, _ = real.Status(time.Now(), 10)
	if len(status.Actions) == 0 || status.Actions[0].Error == "" || len(status.Shed) != 0 {
		t.Errorf("failure not recorded, or the load taken as shed: %+v", status)
	}
	pub.mu.Lock()
	pub.fail = false
	pub.mu.Unlock()
	power(t, st, "main", 9000)
	real.Evaluate(context.Background(), time.Now())
	if status, _ = real.Status(time.Now(), 10); len(status.Shed) != 1 || pub.got()[0] != "cmnd/pump/POWER OFF" {
		t.Errorf("the retry: %+v, sent %v", status, pub.got())
	}
}

func TestWebhookCommand(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 100)
		n, _ := r.Body.Read(b)
		got = string(b[:n])
	}))
	defer srv.Close()
	s := &Sender{}
	if err := s.Send(context.Background(), Command{URL: srv.URL, Payload: `{"on": false}`}); err != nil || got != `{"on": false}` {
		t.Errorf("webhook: %v, got %q", err, got)
	}
	for _, c := range []Command{{}, {Topic: "a/#"}, {Topic: "$SYS/x"}, {Topic: "a", URL: "http://x"}} {
		if c.Check() == nil {
			t.Errorf("Check(%+v) passed", c)
		}
	}
}
