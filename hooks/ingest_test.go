package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/hooks"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/store"
)

type harness struct {
	addr  string
	store *store.Store
	hook  *hooks.Ingest
}

// start runs the real broker on a free loopback port with the ingest hook
// and a real store in a temporary directory.
func start(t *testing.T) *harness {
	t.Helper()
	return startWith(t, 5*time.Second)
}

// startWith is start with the given write timeout for client connections.
func startWith(t *testing.T, writeTimeout time.Duration) *harness {
	t.Helper()
	return startStore(t, writeTimeout, store.Options{})
}

// startStore is startWith with the store's options opts.
func startStore(t *testing.T, writeTimeout time.Duration, opts store.Options) *harness {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(testLogOut(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Logger = logger
	st, err := store.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{Addr: "127.0.0.1:0", MaxPacketBytes: 2 << 20, WriteTimeout: writeTimeout, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	dec := &meter.Decoder{Topic: "energy/consumption", Limits: meter.DefaultLimits()}
	h := hooks.NewIngest([]meter.Source{dec.AsSource()}, st, b.Server(), logger)
	if err := b.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Shutdown()
		b.Close()
		st.Close()
	})
	return &harness{addr: b.Addr().String(), store: st, hook: h}
}

func (h *harness) count(t *testing.T, meterID string) uint64 {
	t.Helper()
	m, err := h.store.Meter(meterID)
	if err != nil {
		return 0
	}
	return m.Readings
}

// TestQoS1AckMeansStored checks that once the PUBACK arrives, the reading is
// already committed: no flush, no wait.
func TestQoS1AckMeansStored(t *testing.T) {
	h := start(t)
	c := mqtttest.V3(t, h.addr)
	for i := 1; i <= 50; i++ {
		mqtttest.Publish3(t, c, "energy/consumption/m1", 1, false, "1.5")
		if got := h.count(t, "m1"); got != uint64(i) {
			t.Fatalf("after PUBACK %d the store holds %d readings of m1, want %d", i, got, i)
		}
	}
	mqtttest.Publish3(t, c, "energy/consumption", 1, false, "2.5")
	l, err := h.store.Latest("default", 1)
	if err != nil || len(l) != 1 || l[0].PowerW != 2500 {
		t.Errorf("Latest(default) = %+v, %v; want 2500 W", l, err)
	}
}

func TestQoS0IsStored(t *testing.T) {
	h := start(t)
	c := mqtttest.V3(t, h.addr)
	mqtttest.Publish3(t, c, "energy/consumption/q0", 0, false, "0.25")
	deadline := time.Now().Add(10 * time.Second)
	for h.count(t, "q0") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("QoS 0 reading never stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestQoS2IsStoredBeforePubrec(t *testing.T) {
	h := start(t)
	c := mqtttest.V3(t, h.addr)
	mqtttest.Publish3(t, c, "energy/consumption/q2", 2, false, "3")
	if got := h.count(t, "q2"); got != 1 {
		t.Errorf("after the QoS 2 exchange the store holds %d readings, want 1", got)
	}
	mqtttest.Publish3(t, c, "energy/consumption/q2", 2, false, "NaN")
	if got := h.count(t, "q2"); got != 1 {
		t.Errorf("a rejected QoS 2 reading was stored: %d readings", got)
	}
}

// TestSubscribersSeeOnlyStoredReadings subscribes like a dashboard would and
// checks that valid readings are forwarded (after commit) and bad ones never.
func TestSubscribersSeeOnlyStoredReadings(t *testing.T) {
	h := start(t)
	sub := mqtttest.V3(t, h.addr)
	var mu sync.Mutex
	var got []string
	tok := sub.Subscribe("energy/consumption/#", 1, func(_ paho3.Client, m paho3.Message) {
		mu.Lock()
		got = append(got, m.Topic()+" "+string(m.Payload()))
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub := mqtttest.V3(t, h.addr)
	mqtttest.Publish3(t, pub, "energy/consumption/s1", 1, false, "1")
	mqtttest.Publish3(t, pub, "energy/consumption/s1", 1, false, "oops")
	mqtttest.Publish3(t, pub, "energy/consumption/s1", 1, false, "2")
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "energy/consumption/s1 1,energy/consumption/s1 2" {
		t.Errorf("subscriber got %q, want the two valid readings in order", got)
	}
}

func TestOtherTopicsPassThrough(t *testing.T) {
	h := start(t)
	sub := mqtttest.V3(t, h.addr)
	got := make(chan string, 1)
	sub.Subscribe("tele/plug/STATE", 1, func(_ paho3.Client, m paho3.Message) { got <- string(m.Payload()) }).Wait()
	mqtttest.Publish3(t, mqtttest.V3(t, h.addr), "tele/plug/STATE", 1, false, "not a reading")
	select {
	case p := <-got:
		if p != "not a reading" {
			t.Errorf("got %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a publish on a non-energy topic was not delivered")
	}
}

// TestRejectedReadings publishes every kind of bad payload over MQTT 3.1.1
// and MQTT 5, and checks they are counted, not stored, answered with 0x99 on
// MQTT 5, and that good data around them is intact.
func TestRejectedReadings(t *testing.T) {
	h := start(t)
	c3 := mqtttest.V3(t, h.addr)
	c5 := mqtttest.V5(t, h.addr, nil)
	mqtttest.Publish3(t, c3, "energy/consumption/r", 1, false, "1")
	bad := []struct {
		payload string
		reason  meter.Reason
	}{
		{"text", meter.ReasonNotANumber},
		{"NaN", meter.ReasonNotFinite},
		{"Inf", meter.ReasonNotFinite},
		{"1e400", meter.ReasonNotFinite},
		{"", meter.ReasonEmpty},
		{strings.Repeat("9", 1_000_000), meter.ReasonPayloadTooLarge},
		{`{"power_w": `, meter.ReasonBadJSON},
		{`{"power_w": 1, "ts": "2099-01-01T00:00:00Z"}`, meter.ReasonFuture},
		{"20000", meter.ReasonOutOfRange},
	}
	for _, b := range bad {
		before := testutil.ToFloat64(rejectedCounter(h.hook, b.reason))
		mqtttest.Publish3(t, c3, "energy/consumption/r", 1, false, b.payload)
		if code := mqtttest.Publish5(t, c5, "energy/consumption/r", 1, b.payload); code != 0x99 {
			t.Errorf("MQTT 5 PUBACK for %.20q: reason code %#x, want 0x99", b.payload, code)
		}
		if got := testutil.ToFloat64(rejectedCounter(h.hook, b.reason)) - before; got != 2 {
			t.Errorf("payload %.20q: rejected{reason=%s} rose by %v, want 2", b.payload, b.reason, got)
		}
	}
	if code := mqtttest.Publish5(t, c5, "energy/consumption/r", 1, "2"); code != 0 {
		t.Errorf("MQTT 5 PUBACK of a good reading: reason code %#x, want 0", code)
	}
	mqtttest.Publish3(t, c3, "energy/consumption/r", 1, false, "3")
	recs, err := h.store.Latest("r", 10)
	if err != nil {
		t.Fatal(err)
	}
	var powers []float64
	for _, r := range recs {
		powers = append(powers, r.PowerW)
	}
	if len(powers) != 3 || powers[0] != 3000 || powers[1] != 2000 || powers[2] != 1000 {
		t.Errorf("stored powers = %v, want [3000 2000 1000]: only the good readings", powers)
	}
}

func rejectedCounter(h *hooks.Ingest, r meter.Reason) prometheus.Counter {
	return h.RejectedCounter(r)
}

// TestMQTT5Reading checks that an MQTT 5 client's valid reading is stored
// and acknowledged with success.
func TestMQTT5Reading(t *testing.T) {
	h := start(t)
	got := make(chan *paho.Publish, 1)
	sub := mqtttest.V5(t, h.addr, func(p *paho.Publish) { got <- p })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "energy/consumption/v5", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	c := mqtttest.V5(t, h.addr, nil)
	if code := mqtttest.Publish5(t, c, "energy/consumption/v5", 1, `{"power_w": 42, "ts": 1764064740}`); code != 0 {
		t.Fatalf("reason code %#x", code)
	}
	l, _ := h.store.Latest("v5", 1)
	if len(l) != 1 || l[0].PowerW != 42 || l[0].Time.Unix() != 1764064740 {
		t.Errorf("stored %+v", l)
	}
	select {
	case p := <-got:
		if string(p.Payload) != `{"power_w": 42, "ts": 1764064740}` {
			t.Errorf("MQTT 5 subscriber got %q", p.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Error("MQTT 5 subscriber got nothing")
	}
}

// TestStuckClientDoesNotStallOthers connects a raw client that subscribes
// to its own readings and publishes large ones but never reads. Once the
// socket to it is full, the write deadline disconnects it; meanwhile and
// after, another client's readings are acknowledged and stored.
func TestStuckClientDoesNotStallOthers(t *testing.T) {
	h := startWith(t, time.Second)
	// A tiny receive buffer, set before the handshake so the window stays
	// small: the broker's writes to this client soon block.
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
		return errors.Join(err, serr)
	}}
	conn, err := dialer.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	packet := func(header byte, body []byte) []byte {
		out := []byte{header}
		for n := len(body); ; n >>= 7 { // MQTT variable-length remaining length
			if n < 128 {
				out = append(out, byte(n))
				break
			}
			out = append(out, byte(n&127|128))
		}
		return append(out, body...)
	}
	topic := "energy/consumption/stuck"
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	connect := append(str("MQTT"), 4, 0x02, 0, 60)
	connect = append(connect, str("stuck")...)
	subscribe := append([]byte{0, 1}, str(topic)...)
	subscribe = append(subscribe, 0)
	if _, err := conn.Write(append(packet(0x10, connect), packet(0x82, subscribe)...)); err != nil {
		t.Fatal(err)
	}
	payload := `{"power_w": 1, "padding": "` + strings.Repeat("x", 3000) + `"}`
	closed := make(chan error, 1)
	go func() {
		// A steady trickle, not a flood: what fills up is the socket
		// towards the client, not the store's queue.
		for id := 1; ; id++ {
			time.Sleep(time.Millisecond)
			pid := uint16(id%65535 + 1)
			body := append(str(topic), byte(pid>>8), byte(pid))
			if _, err := conn.Write(packet(0x32, append(body, payload...))); err != nil {
				closed <- err // the broker closed the connection
				return
			}
		}
	}()
	for h.count(t, "stuck") < 100 {
		time.Sleep(10 * time.Millisecond)
	}
	good := mqtttest.V3(t, h.addr)
	for i := 0; i < 20; i++ {
		mqtttest.Publish3(t, good, "energy/consumption/good", 1, false, "2")
	}
	if got := h.count(t, "good"); got != 20 {
		t.Errorf("good client: %d readings stored, want 20", got)
	}
	select {
	case err := <-closed:
		t.Logf("stuck client disconnected (%v) after %d readings", err, h.count(t, "stuck"))
	case <-time.After(30 * time.Second):
		t.Error("the stuck client was never disconnected")
	}
	for i := 0; i < 20; i++ {
		mqtttest.Publish3(t, good, "energy/consumption/good", 1, false, "2")
	}
	if got := h.count(t, "good"); got != 40 {
		t.Errorf("good client after the disconnect: %d readings stored, want 40", got)
	}
}

func testLogOut() io.Writer {
	if os.Getenv("VATIO_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// TestRejectionsAreLoggedRateLimited floods bad readings and checks that
// each is counted but the log gets one line per reason per interval, naming
// the meter's topic and the reason.
func TestRejectionsAreLoggedRateLimited(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := broker.New(broker.Options{Addr: "127.0.0.1:0", MaxPacketBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := hooks.NewIngest([]meter.Source{(&meter.Decoder{Topic: "energy/consumption", Limits: meter.DefaultLimits()}).AsSource()}, st, b.Server(), logger)
	b.AddHook(h, nil)
	b.Start()
	defer b.Close()
	c := mqtttest.V3(t, b.Addr().String())
	for i := 0; i < 50; i++ {
		mqtttest.Publish3(t, c, "energy/consumption/flood", 1, false, "NaN")
	}
	h.Shutdown()
	if got := testutil.ToFloat64(h.RejectedCounter(meter.ReasonNotFinite)); got != 50 {
		t.Errorf("counted %v rejections, want 50", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "reading rejected"); n != 1 {
		t.Errorf("%d log lines for 50 rejections within the interval, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "meter=flood") || !strings.Contains(logs.String(), "reason=not_finite") || !strings.Contains(logs.String(), "topic=energy/consumption/flood") {
		t.Errorf("log line lacks the reason or the topic:\n%s", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSubscriberAfterReadingsGetsTheNextOnes subscribes once readings of the
// topic have already gone unforwarded (and that answer was cached), and
// checks the next reading reaches the new subscriber.
func TestSubscriberAfterReadingsGetsTheNextOnes(t *testing.T) {
	h := start(t)
	pub := mqtttest.V3(t, h.addr)
	mqtttest.Publish3(t, pub, "energy/consumption/late", 1, false, "1")
	got := make(chan string, 4)
	sub := mqtttest.V3(t, h.addr)
	if tok := sub.Subscribe("energy/consumption/late", 1, func(_ paho3.Client, m paho3.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	mqtttest.Publish3(t, pub, "energy/consumption/late", 1, false, "2")
	// The first reading may still arrive: it is forwarded after its PUBACK.
	for {
		select {
		case p := <-got:
			if p == "2" {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a reading published after the subscription was not forwarded")
		}
	}
}

// TestImplausibleCounterIsRefused checks that a reading the store refuses
// (an energy counter that jumps further than any power allows) is counted,
// answered with 0x99 on MQTT 5 and never forwarded, while the readings
// around it are stored and the meter records its source.
func TestImplausibleCounterIsRefused(t *testing.T) {
	h := start(t)
	got := make(chan *paho.Publish, 10)
	sub := mqtttest.V5(t, h.addr, func(p *paho.Publish) { got <- p })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "energy/consumption/jump", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	c5 := mqtttest.V5(t, h.addr, nil)
	c3 := mqtttest.V3(t, h.addr)
	before := testutil.ToFloat64(rejectedCounter(h.hook, meter.ReasonImplausibleEnergy))
	if code := mqtttest.Publish5(t, c5, "energy/consumption/jump", 1, `{"power_w": 100, "energy_wh": 1000}`); code != 0 {
		t.Fatalf("first counter: reason code %#x", code)
	}
	if code := mqtttest.Publish5(t, c5, "energy/consumption/jump", 1, `{"power_w": 100, "energy_wh": 1e12}`); code != 0x99 {
		t.Errorf("a counter 1 TWh up: reason code %#x, want 0x99", code)
	}
	mqtttest.Publish3(t, c3, "energy/consumption/jump", 1, false, `{"power_w": 100, "energy_wh": 2e12}`)
	if code := mqtttest.Publish5(t, c5, "energy/consumption/jump", 1, `{"power_w": 100, "energy_wh": 1001}`); code != 0 {
		t.Errorf("a plausible counter after: reason code %#x", code)
	}
	if n := testutil.ToFloat64(rejectedCounter(h.hook, meter.ReasonImplausibleEnergy)) - before; n != 2 {
		t.Errorf("implausible_energy rose by %v, want 2", n)
	}
	m, err := h.store.Meter("jump")
	if err != nil || m.Readings != 2 || m.Info.Source != "vatio" {
		t.Errorf("meter = %+v, %v; want 2 readings from source vatio", m, err)
	}
	for range 2 {
		select {
		case p := <-got:
			if strings.Contains(string(p.Payload), "e12") {
				t.Errorf("subscriber got the refused reading %s", p.Payload)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("subscriber did not get the stored readings")
		}
	}
	select {
	case p := <-got:
		t.Errorf("subscriber got a third reading %s", p.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestPubackReasonCodeAndProperties publishes at QoS 1 with user
// properties over MQTT 5, on an energy topic (acknowledged by Vatio after
// the commit, or refused with 0x99) and on another topic (acknowledged by
// mochi): every PUBACK has a reason code MQTT 5 allows for it and none of
// the publisher's user properties, while a subscriber still gets them
// with the message.
func TestPubackReasonCodeAndProperties(t *testing.T) {
	h := start(t)
	got := make(chan *paho.Publish, 4)
	sub := mqtttest.V5(t, h.addr, func(p *paho.Publish) { got <- p })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "notes/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	c := mqtttest.V5(t, h.addr, nil)
	user := paho.UserProperties{{Key: "origin", Value: "test"}, {Key: "trace", Value: "1234"}}
	for _, tc := range []struct {
		topic, payload string
		qos            byte
		code           byte
	}{
		{"energy/consumption/props", "1.5", 1, 0x00},
		{"energy/consumption/props", "not a number", 1, 0x99},
		{"notes/kitchen", "hello", 1, 0x00},
		{"notes/kitchen", "hello again", 2, 0x00},
	} {
		resp, err := c.Publish(ctx, &paho.Publish{Topic: tc.topic, QoS: tc.qos, Payload: []byte(tc.payload),
			Properties: &paho.PublishProperties{User: user}})
		if resp == nil {
			t.Fatalf("publish %s %q: %v", tc.topic, tc.payload, err)
		}
		if resp.ReasonCode != tc.code {
			t.Errorf("publish %s %q at QoS %d: reason code %#x, want %#x", tc.topic, tc.payload, tc.qos, resp.ReasonCode, tc.code)
		}
		if resp.Properties != nil && len(resp.Properties.User) > 0 {
			t.Errorf("publish %s %q at QoS %d: the acknowledgement echoes user properties %v", tc.topic, tc.payload, tc.qos, resp.Properties.User)
		}
	}
	select {
	case p := <-got:
		if p.Properties == nil || p.Properties.User.Get("origin") != "test" || p.Properties.User.Get("trace") != "1234" {
			t.Errorf("the subscriber got %+v, without the publisher's user properties", p.Properties)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscriber got nothing")
	}
}

// TestPubacksInOrderRejectionsIncluded publishes QoS 1 readings, every
// third one invalid and every fifth on a topic that is not a reading's
// (which mochi answers itself), and every eleventh at QoS 2 (whose PUBREC
// mochi sends once it is stored), from a raw client, and reads the
// answers: one for each publish, in the order they were sent.
func TestPubacksInOrderRejectionsIncluded(t *testing.T) {
	h := startWith(t, time.Second)
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	packet, str := rawPacket, rawString
	connect := append(str("MQTT"), 4, 0x02, 0, 60)
	connect = append(connect, str("order")...)
	var out []byte
	out = append(out, packet(0x10, connect)...)
	const n = 300
	for id := 1; id <= n; id++ {
		payload := fmt.Sprint(id)
		if id%3 == 0 {
			payload = "not a number"
		}
		topic := fmt.Sprintf("energy/consumption/order%d", id%7)
		if id%5 == 0 {
			topic = "misc/notes"
		}
		body := append(str(topic), byte(id>>8), byte(id))
		header := byte(0x32)
		if id%11 == 0 {
			header = 0x34
		}
		out = append(out, packet(header, append(body, payload...))...)
	}
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	in := make([]byte, 4+4*n)
	if _, err := io.ReadFull(conn, in); err != nil {
		t.Fatalf("read the CONNACK and %d PUBACKs: %v", n, err)
	}
	for i := range n {
		ack := in[4+4*i : 8+4*i]
		want, name := byte(0x40), "PUBACK"
		if (i+1)%11 == 0 {
			want, name = 0x50, "PUBREC"
		}
		if ack[0] != want || ack[1] != 2 || int(ack[2])<<8|int(ack[3]) != i+1 {
			t.Fatalf("acknowledgement %d is %x, want the %s of packet %d", i+1, ack, name, i+1)
		}
	}
}

// TestUnstoredReadingsDisconnect fills a database capped small (as a
// 32-bit system caps its own, or a full disk stops it): once the store
// refuses readings, the QoS 1 client is disconnected, so that it sends them
// again on reconnecting instead of waiting for ever for their PUBACKs, and
// the refusals are counted.
func TestUnstoredReadingsDisconnect(t *testing.T) {
	h := startStore(t, 5*time.Second, store.Options{MaxSizeBytes: 1 << 20, HeadMaxBytes: 64 << 10, MaxBatch: 500, SyncDelay: -1})
	lost := make(chan error, 1)
	opts := paho3.NewClientOptions().AddBroker("tcp://" + h.addr).SetClientID("filler").SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho3.Client, err error) { lost <- err })
	c := paho3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	acked := 0
	for i := 0; ; i++ {
		select {
		case err := <-lost:
			t.Logf("disconnected after %d acknowledged readings: %v", acked, err)
			if n := testutil.ToFloat64(h.hook.UnstoredCounter()); n < 1 {
				t.Errorf("vatio_readings_unstored_total = %v after the store refused a reading", n)
			}
			return
		default:
		}
		if i == 200000 {
			t.Fatalf("200,000 readings into a 1 MB database and still no refusal (%d acknowledged)", acked)
		}
		tok := c.Publish(fmt.Sprintf("energy/consumption/m%03d", i%500), 1, false, "1500")
		if !tok.WaitTimeout(10 * time.Second) {
			select {
			case err := <-lost:
				lost <- err // for the loop's next turn
			case <-time.After(5 * time.Second):
				t.Fatalf("reading %d neither acknowledged in 15 s nor its client disconnected", i)
			}
		}
		if tok.Error() == nil {
			acked++
		}
	}
}

// rawPacket frames an MQTT packet: fixed header byte, remaining length,
// body.
func rawPacket(header byte, body []byte) []byte {
	out := []byte{header}
	for n := len(body); ; n >>= 7 {
		if n < 128 {
			out = append(out, byte(n))
			break
		}
		out = append(out, byte(n&127|128))
	}
	return append(out, body...)
}

// rawString encodes an MQTT string.
func rawString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// TestResentPublishIsStoredOnce: a client that sent a QoS 1 reading with no
// time of its own and lost its PUBACK (the connection dropped) sends it
// again on its next connection, flagged DUP, with the same packet id: it is
// acknowledged and not stored twice. A new message on that packet id, and
// a DUP the store never saw, are stored.
func TestResentPublishIsStoredOnce(t *testing.T) {
	h := start(t)
	// session sends the packets of publishes (header, packet id, payload)
	// on a new connection of client "resender", and reads their
	// acknowledgements.
	session := func(pubs ...[]byte) {
		t.Helper()
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		out := rawPacket(0x10, append(append(rawString("MQTT"), 4, 0x00, 0, 60), rawString("resender")...))
		for _, p := range pubs {
			out = append(out, p...)
		}
		if _, err := conn.Write(out); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		in := make([]byte, 4+4*len(pubs))
		if _, err := io.ReadFull(conn, in); err != nil {
			t.Fatalf("read the CONNACK and %d PUBACKs: %v", len(pubs), err)
		}
		for i := range pubs {
			if ack := in[4+4*i:]; ack[0] != 0x40 {
				t.Fatalf("acknowledgement %d is %x, want a PUBACK", i+1, ack[:4])
			}
		}
	}
	publish := func(dup bool, id uint16, payload string) []byte {
		header := byte(0x32)
		if dup {
			header |= 0x08
		}
		return rawPacket(header, append(append(rawString("energy/consumption/dup"), byte(id>>8), byte(id)), payload...))
	}
	session(publish(false, 9, "1.5"))
	session(publish(true, 9, "1.5")) // its PUBACK lost: sent again
	if n := h.count(t, "dup"); n != 1 {
		t.Fatalf("a publish sent again flagged DUP: %d readings, want 1", n)
	}
	session(publish(false, 9, "1.5"), publish(true, 10, "1.5"))
	if n := h.count(t, "dup"); n != 3 {
		t.Fatalf("a new message on packet id 9 and a first DUP on 10: %d readings, want 3", n)
	}
}

// TestReadingStampedAheadIsTakenNow checks that a reading its device
// stamped ahead of the server clock (within max_future) is taken as
// received: stored at its own time it stayed the meter's newest, its power
// now, for minutes of live readings after it, and booked energy ahead of
// time (found by the attacker's review).
func TestReadingStampedAheadIsTakenNow(t *testing.T) {
	h := start(t)
	c := mqtttest.V3(t, h.addr)
	mqtttest.Publish3(t, c, "energy/consumption/k", 1, false, `{"power_w": 500}`)
	ahead := time.Now().Add(290 * time.Second).UTC().Format(time.RFC3339)
	mqtttest.Publish3(t, c, "energy/consumption/k", 1, false, `{"power_w": 99999, "ts": "`+ahead+`"}`)
	before := time.Now()
	m, err := h.store.Meter("k")
	if err != nil {
		t.Fatal(err)
	}
	if m.Last.After(before) || m.LastPowerW != 99999 {
		t.Errorf("the reading stamped ahead: newest at %v (%g W), want it taken at its receipt, before %v", m.Last, m.LastPowerW, before)
	}
	mqtttest.Publish3(t, c, "energy/consumption/k", 1, false, `{"power_w": 1000}`)
	if m, _ = h.store.Meter("k"); m.LastPowerW != 1000 || m.Readings != 3 {
		t.Errorf("after a live 1000 W: newest %g W of %d readings, want 1000 W of 3", m.LastPowerW, m.Readings)
	}
	if w, ok := m.PowerNow(time.Now()); !ok || w != 1000 {
		t.Errorf("power now = %g, %v; want 1000 W", w, ok)
	}
	// Its energy is the few milliseconds it lasted, not 290 s at 100 kW.
	bs, _, err := h.store.Rollups("k", store.TierHour, before.Add(-time.Hour), before.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var wh float64
	for _, b := range bs {
		wh += b.EnergyWh
	}
	if wh > 1 {
		t.Errorf("energy %g Wh after a second of readings", wh)
	}
}
