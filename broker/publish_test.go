package broker_test

import (
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// publishRetained5 publishes a retained message at QoS 1 with c and
// returns the PUBACK's reason code.
func publishRetained5(t *testing.T, c *paho.Client, topic, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)})
	if resp == nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return resp.ReasonCode
}

// retainedOn subscribes a new client to prefix/# and returns, sorted, the
// topics of the retained messages it is sent.
func retainedOn(t *testing.T, addr, prefix string) []string {
	t.Helper()
	got := make(chan paho3.Message, 100)
	sub := mqtttest.V3(t, addr)
	if tok := sub.Subscribe(prefix+"/#", 1, func(_ paho3.Client, m paho3.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// The retained messages are sent right after the SUBACK, on the
	// subscriber's own goroutine: a message the subscriber publishes next
	// is handled, and comes back to it, after them.
	mqtttest.Publish3(t, sub, prefix+"/marker", 1, false, "end")
	var topics []string
	for {
		select {
		case m := <-got:
			if !m.Retained() {
				slices.Sort(topics)
				return topics
			}
			topics = append(topics, m.Topic())
		case <-time.After(10 * time.Second):
			t.Fatal("the marker did not arrive")
		}
	}
}

// Retained messages are capped, per message and in total: past a cap an
// MQTT 5 client is answered 0x97 quota exceeded and an MQTT 3.1.1 client
// is acknowledged; either way the message is neither retained nor
// forwarded. Clearing a retained message makes room again.
func TestRetainedCaps(t *testing.T) {
	b := start(t, broker.Options{Addr: "127.0.0.1:0", MaxRetainedMessageBytes: 1024, MaxRetainedBytes: 3000})
	addr := b.Addr().String()
	live := make(chan string, 100)
	watcher := mqtttest.V3(t, addr)
	// At QoS 0: what is forwarded is counted, and a QoS 1 delivery may
	// come twice (it did, once, under the race detector).
	if tok := watcher.Subscribe("r/#", 0, func(_ paho3.Client, m paho3.Message) { live <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c5 := mqtttest.V5(t, addr, nil)
	c3 := mqtttest.V3(t, addr)
	kb := strings.Repeat("x", 900)
	if code := publishRetained5(t, c5, "r/big", strings.Repeat("x", 2000)); code != 0x97 {
		t.Errorf("a 2000-byte retained message: reason code %#x, want 0x97", code)
	}
	mqtttest.Publish3(t, c3, "r/big3", 1, true, strings.Repeat("x", 2000)) // acknowledged
	for _, topic := range []string{"r/a", "r/b", "r/c"} {
		if code := publishRetained5(t, c5, topic, kb); code != 0 {
			t.Errorf("retained %s within the caps: reason code %#x", topic, code)
		}
	}
	if code := publishRetained5(t, c5, "r/d", kb); code != 0x97 {
		t.Errorf("a retained message past the total: reason code %#x, want 0x97", code)
	}
	mqtttest.Publish3(t, c3, "r/d3", 1, true, kb)
	if code := publishRetained5(t, c5, "r/a", kb+"y"); code != 0 {
		t.Errorf("replacing a retained message by one of about its size: reason code %#x", code)
	}
	if code := publishRetained5(t, c5, "r/b", ""); code != 0 {
		t.Errorf("clearing a retained message: reason code %#x", code)
	}
	if code := publishRetained5(t, c5, "r/d", kb); code != 0 {
		t.Errorf("a retained message once another was cleared: reason code %#x", code)
	}
	// Not retained, from the same client as the last: it marks the end of
	// what was forwarded.
	mqtttest.Publish5(t, c5, "r/end", 1, "")
	var forwarded []string
	for topic := range live {
		if topic == "r/end" {
			break
		}
		forwarded = append(forwarded, topic)
	}
	if got, want := strings.Join(forwarded, " "), "r/a r/b r/c r/a r/b r/d"; got != want {
		t.Errorf("forwarded %s, want %s (nothing refused)", got, want)
	}
	if got := retainedOn(t, addr, "r"); strings.Join(got, " ") != "r/a r/c r/d" {
		t.Errorf("retained now: %v, want r/a r/c r/d", got)
	}
	for reason, want := range map[string]float64{"retained_too_large": 2, "retained_full": 2} {
		if got := testutil.ToFloat64(labelled{b, "vatio_mqtt_publishes_refused_total", reason}); got != want {
			t.Errorf("publishes refused for %s: %v, want %v", reason, got, want)
		}
	}
}

// A QoS 1 publish on $SYS is answered, never left unacknowledged (which
// makes a client resend it for ever): 0x87 not authorized over MQTT 5, a
// plain acknowledgement over MQTT 3.1.1. Nobody receives it.
func TestSysPublishAnswered(t *testing.T) {
	b := start(t, broker.Options{Addr: "127.0.0.1:0"})
	addr := b.Addr().String()
	got := make(chan string, 4)
	sub := mqtttest.V3(t, addr)
	if tok := sub.Subscribe("$SYS/vatio/#", 1, func(_ paho3.Client, m paho3.Message) { got <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if code := mqtttest.Publish5(t, mqtttest.V5(t, addr, nil), "$SYS/vatio/x", 1, "1"); code != 0x87 {
		t.Errorf("MQTT 5 QoS 1 publish on $SYS: reason code %#x, want 0x87", code)
	}
	if code := mqtttest.Publish5(t, mqtttest.V5(t, addr, nil), "$sys/vatio/x", 1, "1"); code != 0x87 {
		t.Errorf("MQTT 5 QoS 1 publish on $sys: reason code %#x, want 0x87", code)
	}
	mqtttest.Publish3(t, mqtttest.V3(t, addr), "$SYS/vatio/x", 1, false, "1") // fails the test without an ack
	mqtttest.Publish3(t, mqtttest.V3(t, addr), "$SYS/vatio/x", 2, false, "1")
	select {
	case topic := <-got:
		t.Errorf("a client's $SYS publish was delivered on %s", topic)
	case <-time.After(200 * time.Millisecond):
	}
	if got := testutil.ToFloat64(labelled{b, "vatio_mqtt_publishes_refused_total", "sys_topic"}); got != 4 {
		t.Errorf("publishes refused on $SYS: %v, want 4", got)
	}
}

// A retained last will past the caps is still published when its client
// drops, but not retained.
func TestRetainedWillCapped(t *testing.T) {
	b := start(t, broker.Options{Addr: "127.0.0.1:0", MaxRetainedMessageBytes: 1024, MaxRetainedBytes: 4096})
	addr := b.Addr().String()
	got := make(chan paho3.Message, 4)
	watcher := mqtttest.V3(t, addr)
	if tok := watcher.Subscribe("w/#", 1, func(_ paho3.Client, m paho3.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// MQTT 3.1.1 CONNECT, clean session, will retained at QoS 0 on w/will
	// with 2000 bytes; then the connection drops without a DISCONNECT.
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := append(str("MQTT"), 4, 0x02|0x04|0x20, 0, 60)
	body = append(body, str("dropper")...)
	body = append(body, str("w/will")...)
	body = append(body, str(strings.Repeat("x", 2000))...)
	packet := []byte{0x10}
	for n := len(body); ; n >>= 7 {
		if n < 128 {
			packet = append(packet, byte(n))
			break
		}
		packet = append(packet, byte(n&127|128))
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(append(packet, body...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil || ack[3] != 0 {
		t.Fatalf("CONNACK %v, %v", ack, err)
	}
	conn.Close()
	select {
	case m := <-got:
		if m.Topic() != "w/will" || len(m.Payload()) != 2000 {
			t.Errorf("got %s with %d bytes, want the will", m.Topic(), len(m.Payload()))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the will was not published")
	}
	if r := retainedOn(t, addr, "w"); len(r) != 0 {
		t.Errorf("retained now: %v, want nothing (the will was past the cap)", r)
	}
}
