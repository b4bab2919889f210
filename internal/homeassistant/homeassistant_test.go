package homeassistant_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/hooks"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/homeassistant"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/store"
)

// harness is Vatio's part in Home Assistant's world: a bbolt store, the
// embedded broker on port 0 with the ingest hook (and, with ACLs, the
// devices' registry as its Access), and a Publisher running on them.
type harness struct {
	addr  string
	store *store.Store
	reg   *devices.Registry
	// stop ends the Publisher's Run and waits for it.
	stop func()
}

// start runs the harness; acl puts the devices' registry, keeping the
// discovery prefix and the state topics for Vatio, in front of the broker.
func start(t *testing.T, acl bool) *harness {
	t.Helper()
	return startWith(t, acl, 100*time.Millisecond, nil)
}

// startWith is start with the Publisher's RepublishEvery and, when not
// nil, its logger.
func startWith(t *testing.T, acl bool, republishEvery time.Duration, pubLogger *slog.Logger) *harness {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if pubLogger == nil {
		pubLogger = logger
	}
	// A meter whose usual interval is not known yet is silent after three
	// times MaxGap: 6 s.
	st, err := store.Open(t.TempDir(), store.Options{Logger: logger, MaxGap: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	opts := broker.Options{Addr: "127.0.0.1:0", Logger: logger}
	h := &harness{store: st}
	if acl {
		h.reg, err = devices.New(st, nil, devices.WithOwnTopics(
			[]string{"homeassistant/#", "vatio/meters/#"}, []string{"homeassistant/status"}))
		if err != nil {
			t.Fatal(err)
		}
		opts.Access = h.reg
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	dec := &meter.Decoder{Topic: "energy/consumption", Limits: meter.DefaultLimits()}
	ingest := hooks.NewIngest([]meter.Source{dec.AsSource()}, st, b.Server(), logger)
	if acl {
		ingest.MayWrite = h.reg.MayWrite
	}
	if err := b.AddHook(ingest, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	h.addr = b.Addr().String()
	srv := b.Server()
	p := homeassistant.New(st, func(_ context.Context, topic string, payload []byte, retain bool) error {
		return srv.Publish(topic, payload, retain, 1)
	}, homeassistant.Options{Every: time.Millisecond, CheckEvery: 100 * time.Millisecond,
		RepublishEvery: republishEvery, Subscribe: b.Subscribe, Version: "test", Logger: pubLogger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		h.stop()
		ingest.Shutdown()
		b.Close()
		st.Close()
	})
	return h
}

// watcher records what an MQTT 5 client subscribed to filters receives.
type watcher struct {
	mu  sync.Mutex
	got []*paho.Publish
	at  time.Time // when the last arrived
	new chan struct{}
}

func watch(t *testing.T, addr string, filters ...string) *watcher {
	t.Helper()
	w := &watcher{new: make(chan struct{}, 1)}
	c := mqtttest.V5(t, addr, func(p *paho.Publish) {
		w.mu.Lock()
		w.got = append(w.got, p)
		w.at = time.Now()
		w.mu.Unlock()
		select {
		case w.new <- struct{}{}:
		default:
		}
	})
	var subs []paho.SubscribeOptions
	for _, f := range filters {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
		t.Fatal(err)
	}
	return w
}

// wait waits until n messages on topic (all of them with payload, if not
// "") have arrived, and returns the last.
func (w *watcher) wait(t *testing.T, topic, payload string, n int) *paho.Publish {
	t.Helper()
	return w.waitFunc(t, topic, func(p []byte) bool { return payload == "" || string(p) == payload }, payload, n)
}

// waitFunc is wait for payloads that ok accepts (what describes them).
func (w *watcher) waitFunc(t *testing.T, topic string, ok func([]byte) bool, what string, n int) *paho.Publish {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		var seen []string
		var last *paho.Publish
		count := 0
		for _, p := range w.got {
			seen = append(seen, fmt.Sprintf("%s %q", p.Topic, p.Payload))
			if p.Topic == topic && ok(p.Payload) {
				count++
				last = p
			}
		}
		w.mu.Unlock()
		if count >= n {
			return last
		}
		select {
		case <-w.new:
		case <-deadline:
			t.Fatalf("%d of %d messages %q on %s; got:\n%s", count, n, what, topic, strings.Join(seen, "\n"))
		}
	}
}

// count returns how many messages on topic have arrived.
func (w *watcher) count(topic string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range w.got {
		if p.Topic == topic {
			n++
		}
	}
	return n
}

// connect5 connects an MQTT 5 client with credentials (user "" for none)
// and returns it with the CONNACK's reason code.
func connect5(t *testing.T, addr, user, password string) (*paho.Client, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%s-%d", cmpOr(user, "anon"), time.Now().UnixNano())
	c := paho.NewClient(paho.ClientConfig{ClientID: id, Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = user, true, []byte(password), true
	}
	ack, err := c.Connect(ctx, cp)
	if err != nil && ack == nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return c, ack.ReasonCode
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// publishReading sends a reading of id as a meter would.
func publishReading(t *testing.T, c *paho.Client, id string, powerW float64) {
	t.Helper()
	if code := mqtttest.Publish5(t, c, "energy/consumption/"+id, 1, fmt.Sprintf(`{"power_w": %g}`, powerW)); code != 0 {
		t.Fatalf("reading of %s: reason code %#x", id, code)
	}
}

// Vatio's status is online (retained) while the Publisher runs and
// offline once it stops; a meter's availability is online while it sends
// and offline once it has been silent past store.Meter.Status's limit;
// every config names both topics, availability_mode all.
func TestAvailability(t *testing.T) {
	h := start(t, true)
	w := watch(t, h.addr, "vatio/meters/#", "homeassistant/sensor/+/+/config")
	w.wait(t, "vatio/meters/status", "online", 1)

	c, _ := connect5(t, h.addr, "", "")
	publishReading(t, c, "kitchen", 100)
	w.wait(t, "vatio/meters/kitchen/availability", "online", 1)
	oid := homeassistant.ObjectID("kitchen")
	for _, kind := range []string{"power", "energy"} {
		p := w.wait(t, "homeassistant/sensor/"+oid+"/"+kind+"/config", "", 1)
		var cfg struct {
			Availability []struct {
				Topic string `json:"topic"`
			} `json:"availability"`
			Mode            string `json:"availability_mode"`
			DefaultEntityID string `json:"default_entity_id"`
		}
		if err := json.Unmarshal(p.Payload, &cfg); err != nil {
			t.Fatal(err)
		}
		if len(cfg.Availability) != 2 || cfg.Availability[0].Topic != "vatio/meters/status" ||
			cfg.Availability[1].Topic != "vatio/meters/kitchen/availability" || cfg.Mode != "all" {
			t.Errorf("%s config's availability: %s", kind, p.Payload)
		}
		if want := "sensor.vatio_kitchen_" + kind; cfg.DefaultEntityID != want {
			t.Errorf("%s default_entity_id = %q, want %q", kind, cfg.DefaultEntityID, want)
		}
	}
	publishReading(t, c, "kitchen", 101)
	// Its state comes after its availability was looked at again.
	w.waitFunc(t, "vatio/meters/kitchen/state", func(p []byte) bool { return strings.Contains(string(p), `"power_w":101`) }, "power 101", 1)
	if n := w.count("vatio/meters/kitchen/availability"); n != 1 {
		t.Errorf("availability published %d times while the meter sent, want once", n)
	}

	start := time.Now()
	w.wait(t, "vatio/meters/kitchen/availability", "offline", 1)
	m, err := h.store.Meter("kitchen")
	if err != nil {
		t.Fatal(err)
	}
	if status, why := m.Status(time.Now()); status != store.StatusOffline || why != store.OfflineSilent {
		t.Errorf("offline published while the store says %s (%s)", status, why)
	}
	t.Logf("offline %s after the last reading", time.Since(start).Round(100*time.Millisecond))

	// Back online with its next reading.
	publishReading(t, c, "kitchen", 120)
	w.wait(t, "vatio/meters/kitchen/availability", "online", 2)

	h.stop()
	w.wait(t, "vatio/meters/status", "offline", 1)
	// A newcomer (Home Assistant starting later) gets offline, retained.
	late := watch(t, h.addr, "vatio/meters/status")
	if p := late.wait(t, "vatio/meters/status", "", 1); string(p.Payload) != "offline" || !p.Retain {
		t.Errorf("retained status after the stop: %q (retain %v)", p.Payload, p.Retain)
	}
}

// Home Assistant's birth message (online on homeassistant/status, which it
// publishes as an anonymous local client or a device given that topic)
// makes Vatio publish every config again, with the availability.
func TestDiscoveryAgainOnBirth(t *testing.T) {
	h := start(t, true)
	c, _ := connect5(t, h.addr, "", "")
	publishReading(t, c, "hall", 50)
	w := watch(t, h.addr, "homeassistant/sensor/+/+/config", "vatio/meters/+/availability", "vatio/meters/status")
	oid := homeassistant.ObjectID("hall")
	topic := "homeassistant/sensor/" + oid + "/power/config"
	w.wait(t, topic, "", 1)
	w.wait(t, "vatio/meters/hall/availability", "online", 1)

	if code := mqtttest.Publish5(t, c, "homeassistant/status", 1, "offline"); code != 0 {
		t.Fatalf("Home Assistant's will: reason code %#x", code)
	}
	if code := mqtttest.Publish5(t, c, "homeassistant/status", 1, "online"); code != 0 {
		t.Fatalf("Home Assistant's birth: reason code %#x", code)
	}
	w.wait(t, topic, "", 2)
	w.wait(t, "homeassistant/sensor/"+oid+"/energy/config", "", 2)
	w.wait(t, "vatio/meters/hall/availability", "online", 2)

	// A device given homeassistant/status may say it too.
	_, password, err := h.reg.Add("ha", []string{"homeassistant/status"}, []string{"homeassistant/#", "vatio/#"})
	if err != nil {
		t.Fatal(err)
	}
	ha, code := connect5(t, h.addr, "ha", password)
	if code != 0 {
		t.Fatalf("connect as ha: %#x", code)
	}
	if code := mqtttest.Publish5(t, ha, "homeassistant/status", 1, "online"); code != 0 {
		t.Fatalf("birth from the ha device: reason code %#x", code)
	}
	w.wait(t, topic, "", 3)
}

// lines is a slog handler counting the records whose message is msg.
type lines struct {
	msg string
	mu  sync.Mutex
	n   int
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lines) WithGroup(string) slog.Handler            { return l }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	if r.Message == l.msg {
		l.mu.Lock()
		l.n++
		l.mu.Unlock()
	}
	return nil
}

func (l *lines) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// A client flooding Home Assistant's birth gets the configurations
// published again at most once per RepublishEvery, each with one log
// line; the first birth after a quiet time is answered at once, and the
// births of a quiet time by one republication at its end.
func TestBirthFloodCoalesced(t *testing.T) {
	const every = 2 * time.Second
	logged := &lines{msg: "home assistant came online: discovery published again"}
	h := startWith(t, false, every, slog.New(logged))
	c, _ := connect5(t, h.addr, "", "")
	publishReading(t, c, "hall", 50)
	topic := "homeassistant/sensor/" + homeassistant.ObjectID("hall") + "/power/config"
	w := watch(t, h.addr, topic)
	w.wait(t, topic, "", 1)

	// After a quiet time (none yet), a birth is answered at once.
	birth := time.Now()
	mqtttest.Publish5(t, c, "homeassistant/status", 1, "online")
	w.wait(t, topic, "", 2)
	if d := time.Since(birth); d >= every {
		t.Errorf("first birth answered after %v, want at once", d)
	}

	flood := time.Now()
	for range 300 {
		if code := mqtttest.Publish5(t, c, "homeassistant/status", 0, "online"); code != 0 {
			t.Fatalf("birth: reason code %#x", code)
		}
	}
	mqtttest.Publish5(t, c, "homeassistant/status", 1, "online") // acked: all heard
	elapsed := time.Since(flood)
	w.wait(t, topic, "", 3) // the flood's births, merged at the quiet time's end
	n := w.count(topic)
	if most := 3 + int(time.Since(flood)/every); n > most {
		t.Errorf("%d configs after 301 births in %v, want at most %d (one per %v)", n, elapsed, most, every)
	}
	if got := logged.count(); got != n-1 {
		t.Errorf("%d log lines for %d republications", got, n-1)
	}

	// Quiet again: the next birth is answered at once.
	for {
		w.mu.Lock()
		last := w.at
		w.mu.Unlock()
		if time.Since(last) > every {
			break
		}
		select {
		case <-w.new:
		case <-time.After(every - time.Since(last) + 10*time.Millisecond):
		}
	}
	n = w.count(topic)
	birth = time.Now()
	mqtttest.Publish5(t, c, "homeassistant/status", 1, "online")
	w.wait(t, topic, "", n+1)
	if d := time.Since(birth); d >= every {
		t.Errorf("birth after a quiet time answered after %v, want at once", d)
	}
}

// A client clearing a config again and again gets it published again at
// most once per RepublishEvery, the clears of a quiet time merged into one.
func TestClearFloodCoalesced(t *testing.T) {
	const every = 2 * time.Second
	h := startWith(t, false, every, nil)
	c, _ := connect5(t, h.addr, "", "")
	publishReading(t, c, "shed", 10)
	topic := "homeassistant/sensor/" + homeassistant.ObjectID("shed") + "/energy/config"
	w := watch(t, h.addr, topic)
	w.wait(t, topic, "", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	flood := time.Now()
	const clears = 200
	for range clears {
		if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(flood)
	// The config, each clear, and the config again at least once after
	// the last clear.
	w.waitFunc(t, topic, func(p []byte) bool { return len(p) > 0 }, "config", 2)
	for {
		w.mu.Lock()
		last := w.got[len(w.got)-1]
		w.mu.Unlock()
		if len(last.Payload) > 0 && w.count(topic) >= 1+clears+1 {
			break
		}
		select {
		case <-w.new:
		case <-time.After(30 * time.Second):
			t.Fatalf("config not published again after the last clear")
		}
	}
	configs := 0
	w.mu.Lock()
	for _, p := range w.got {
		if len(p.Payload) > 0 {
			configs++
		}
	}
	w.mu.Unlock()
	if most := 3 + int(time.Since(flood)/every); configs > most {
		t.Errorf("%d configs after %d clears in %v, want at most %d (one per %v)", configs, clears, elapsed, most, every)
	}
}

// A config cleared by anyone (an empty retained message: on a broker
// without ACLs, as an external broker often is) is published again, and
// stays retained for whoever subscribes next.
func TestDiscoveryAgainWhenCleared(t *testing.T) {
	h := start(t, false)
	c, _ := connect5(t, h.addr, "", "")
	publishReading(t, c, "garage:2", 75)
	oid := homeassistant.ObjectID("garage:2")
	topic := "homeassistant/sensor/" + oid + "/energy/config"
	// Once the config is out: a client subscribing as it is published
	// may get it twice (retained, and live).
	watch(t, h.addr, topic).wait(t, topic, "", 1)
	w := watch(t, h.addr, "homeassistant/#")
	first := w.wait(t, topic, "", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	w.wait(t, topic, "", 3) // the config, the clear, the config again
	w.mu.Lock()
	var payloads []string
	for _, p := range w.got {
		if p.Topic == topic {
			payloads = append(payloads, string(p.Payload))
		}
	}
	w.mu.Unlock()
	if len(payloads) < 3 || payloads[1] != "" || payloads[2] != string(first.Payload) {
		t.Errorf("on %s got %q, want the config, the clear, the config", topic, payloads)
	}
	late := watch(t, h.addr, topic)
	if p := late.wait(t, topic, "", 1); string(p.Payload) != string(first.Payload) || !p.Retain {
		t.Errorf("retained after the clear: %q (retain %v)", p.Payload, p.Retain)
	}
	// The power config, not cleared, was not published again.
	if n := w.count("homeassistant/sensor/" + oid + "/power/config"); n != 1 {
		t.Errorf("power config published %d times, want once", n)
	}
}

// Only Vatio publishes under the discovery prefix and the state topics: a
// device refused there even when its own topics reach them, an anonymous
// local client too; Home Assistant's status is the exception.
func TestOnlyVatioPublishesDiscovery(t *testing.T) {
	h := start(t, true)
	anon, _ := connect5(t, h.addr, "", "")
	publishReading(t, anon, "boiler", 2000)
	oid := homeassistant.ObjectID("boiler")
	topic := "homeassistant/sensor/" + oid + "/power/config"
	w := watch(t, h.addr, "homeassistant/#", "vatio/meters/#")
	first := w.wait(t, topic, "", 1)

	_, password, err := h.reg.Add("gw", []string{"homeassistant/#", "vatio/#", "energy/consumption/gw"}, []string{"cmnd/gw/#"})
	if err != nil {
		t.Fatal(err)
	}
	gw, code := connect5(t, h.addr, "gw", password)
	if code != 0 {
		t.Fatalf("connect as gw: %#x", code)
	}
	for _, c := range []struct {
		who    string
		client *paho.Client
	}{{"device gw", gw}, {"anonymous", anon}} {
		for _, bad := range []struct{ topic, payload string }{
			{topic, ""}, // clearing Vatio's config
			{"homeassistant/switch/evil/config", `{"name":"x","command_topic":"cmnd/boiler/POWER"}`},
			{"vatio/meters/boiler/availability", "online"},
			{"vatio/meters/status", "offline"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := c.client.Publish(ctx, &paho.Publish{Topic: bad.topic, QoS: 1, Retain: true, Payload: []byte(bad.payload)})
			cancel()
			if resp == nil {
				t.Fatalf("%s publishing on %s: %v", c.who, bad.topic, err)
			}
			if resp.ReasonCode != 0x87 {
				t.Errorf("%s publishing on %s: reason code %#x, want 0x87 not authorized", c.who, bad.topic, resp.ReasonCode)
			}
		}
		if code := mqtttest.Publish5(t, c.client, "homeassistant/status", 1, "online"); code != 0 {
			t.Errorf("%s publishing Home Assistant's status: reason code %#x, want 0", c.who, code)
		}
	}
	// An MQTT 3.1.1 device announcing itself to Home Assistant (Zigbee2MQTT,
	// Tasmota) is refused quietly (3.1.1 cannot be told) and stays
	// connected: its readings go on.
	_, pw3, err := h.reg.Add("z2m", []string{"energy/consumption/z2m", "homeassistant/#"}, []string{"zigbee2mqtt/#"})
	if err != nil {
		t.Fatal(err)
	}
	opts := paho3.NewClientOptions().AddBroker("tcp://" + h.addr).SetClientID("z2m").SetUsername("z2m").SetPassword(pw3).
		SetProtocolVersion(4).SetAutoReconnect(false)
	z2m := paho3.NewClient(opts)
	if tok := z2m.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("z2m connect: %v", tok.Error())
	}
	defer z2m.Disconnect(50)
	mqtttest.Publish3(t, z2m, "homeassistant/sensor/0x00158d/power/config", 1, true, `{"name":"plug"}`)
	mqtttest.Publish3(t, z2m, "homeassistant/sensor/0x00158d/energy/config", 2, true, `{"name":"plug"}`)
	mqtttest.Publish3(t, z2m, topic, 0, true, "")
	if !z2m.IsConnectionOpen() {
		t.Fatal("an MQTT 3.1.1 device was disconnected for announcing itself to Home Assistant")
	}
	mqtttest.Publish3(t, z2m, "energy/consumption/z2m", 1, false, `{"power_w": 45.6}`)
	w.wait(t, "vatio/meters/z2m/availability", "online", 1)

	// What a newcomer gets is Vatio's, untouched.
	late := watch(t, h.addr, "homeassistant/#", "vatio/meters/boiler/availability", "vatio/meters/status")
	if p := late.wait(t, topic, "", 1); string(p.Payload) != string(first.Payload) {
		t.Errorf("retained config: %q", p.Payload)
	}
	late.wait(t, "vatio/meters/status", "online", 1)
	late.wait(t, "vatio/meters/boiler/availability", "online", 1)
	late.mu.Lock()
	defer late.mu.Unlock()
	for _, p := range late.got {
		if strings.Contains(p.Topic, "evil") || strings.Contains(p.Topic, "0x00158d") || len(p.Payload) == 0 {
			t.Errorf("a refused publish got through: %s %q", p.Topic, p.Payload)
		}
	}
}

// Vatio's status set offline while it runs (the will of another instance
// sharing the external broker, which died while this one leads) is set
// online again.
func TestStatusCorrected(t *testing.T) {
	h := start(t, false)
	w := watch(t, h.addr, "vatio/meters/status")
	w.wait(t, "vatio/meters/status", "online", 1)
	c, _ := connect5(t, h.addr, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "vatio/meters/status", QoS: 1, Retain: true, Payload: []byte("offline")}); err != nil {
		t.Fatal(err)
	}
	w.wait(t, "vatio/meters/status", "offline", 1)
	w.wait(t, "vatio/meters/status", "online", 2)
	h.stop()
	w.wait(t, "vatio/meters/status", "offline", 2)
	if n := w.count("vatio/meters/status"); n != 4 {
		t.Errorf("%d statuses, want online, offline, online, offline", n)
	}
}

// TestDeletedMeterErased: a meter deleted (GDPR erasure) has its discovery
// configs, availability and state cleared from the broker, so that neither
// it nor Home Assistant keeps them; a config of Vatio's left retained by an
// earlier run, of a meter deleted since, is cleared too.
func TestDeletedMeterErased(t *testing.T) {
	h := start(t, false)
	c, _ := connect5(t, h.addr, "", "")
	publishReading(t, c, "y30", 75)
	publishReading(t, c, "kept", 10)
	oid := homeassistant.ObjectID("y30")
	topics := []string{"homeassistant/sensor/" + oid + "/power/config", "homeassistant/sensor/" + oid + "/energy/config",
		"vatio/meters/y30/availability", "vatio/meters/y30/state"}
	w := watch(t, h.addr, "homeassistant/#", "vatio/meters/#")
	for _, topic := range topics {
		w.waitFunc(t, topic, func(p []byte) bool { return len(p) > 0 }, "a message", 1)
	}
	if _, err := h.store.DeleteMeter("y30"); err != nil {
		t.Fatal(err)
	}
	for _, topic := range topics {
		w.waitFunc(t, topic, func(p []byte) bool { return len(p) == 0 }, "the clear", 1)
	}
	// A config of a meter gone since an earlier run, left retained.
	ghost := "homeassistant/sensor/vatio_ghost/power/config"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: ghost, QoS: 1, Retain: true,
		Payload: []byte(`{"name":"Power","state_topic":"vatio/meters/ghost/state","origin":{"name":"Vatio"}}`)}); err != nil {
		t.Fatal(err)
	}
	w.waitFunc(t, ghost, func(p []byte) bool { return len(p) == 0 }, "the clear", 1)

	// A client subscribing now gets nothing retained of either, and the
	// meter kept is still announced.
	late := watch(t, h.addr, "homeassistant/#", "vatio/meters/#")
	late.wait(t, "homeassistant/sensor/"+homeassistant.ObjectID("kept")+"/power/config", "", 1)
	time.Sleep(200 * time.Millisecond)
	late.mu.Lock()
	defer late.mu.Unlock()
	for _, p := range late.got {
		if strings.Contains(p.Topic, "y30") || strings.Contains(p.Topic, "ghost") {
			t.Errorf("retained after the deletion: %s %q", p.Topic, p.Payload)
		}
	}
}
