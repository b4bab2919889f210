package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/internal/certs"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

func start(t *testing.T, opts broker.Options) *broker.Broker {
	t.Helper()
	opts.MaxPacketBytes = 1 << 20
	opts.Logger = slog.New(slog.DiscardHandler)
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// localCA makes a certificate for localhost in a temporary directory and
// returns the server's TLS configuration and a pool trusting its authority.
func localCA(t *testing.T) (*tls.Config, *x509.CertPool, string) {
	t.Helper()
	cfg, info, err := certs.Config(certs.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(info.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(raw)
	return cfg, pool, info.CA
}

var seq int

// connect3 connects an MQTT 3.1.1 client to url (ssl://, ws://, wss://) and
// returns its connect error.
func connect3(t *testing.T, url string, tc *tls.Config, origin string) (paho3.Client, error) {
	t.Helper()
	seq++
	opts := paho3.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("c%d", seq)).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetTLSConfig(tc)
	if origin != "" {
		opts.SetHTTPHeaders(http.Header{"Origin": {origin}})
	}
	c := paho3.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect to %s timed out", url)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// A meter publishing over MQTTS reaches a browser-style client on the
// secure WebSocket; clients that do not trust the certificate, speak plain
// MQTT to the TLS port, or open the WebSocket from a foreign web page do
// not get in.
func TestTLSAndWebSocket(t *testing.T) {
	tc, pool, caFile := localCA(t)
	b := start(t, broker.Options{TLS: tc, TLSAddr: "127.0.0.1:0", WebSocketAddr: "127.0.0.1:0",
		WebSocketOrigins: []string{"https://vatio.lan:5000"}})
	if b.Addr() != nil {
		t.Error("plain MQTT is served with no address for it")
	}
	mqtts := "ssl://localhost:" + port(b.TLSAddr())
	wss := "wss://localhost:" + port(b.WebSocketAddr())
	trust := &tls.Config{RootCAs: pool}

	sub, err := connect3(t, wss, trust, "https://vatio.lan:5000")
	if err != nil {
		t.Fatalf("a page of an allowed origin cannot open the WebSocket: %v", err)
	}
	got := make(chan string, 10)
	if tok := sub.Subscribe("energy/#", 1, func(_ paho3.Client, m paho3.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub, err := connect3(t, mqtts, trust, "")
	if err != nil {
		t.Fatalf("MQTTS with the authority trusted: %v", err)
	}
	mqtttest.Publish3(t, pub, "energy/consumption/m1", 1, false, "2.5")
	select {
	case p := <-got:
		if p != "2.5" {
			t.Errorf("got %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reading sent over MQTTS did not reach the WebSocket subscriber")
	}

	if _, err := connect3(t, mqtts, &tls.Config{}, ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that does not trust the certificate connected (err %v)", err)
	}
	if _, err := connect3(t, "tcp://"+b.TLSAddr().String(), nil, ""); err == nil {
		t.Error("plain MQTT was accepted on the TLS port")
	}
	if _, err := connect3(t, wss, trust, "https://evil.example"); err == nil {
		t.Error("a page of a foreign origin opened the WebSocket")
	}
	if _, err := connect3(t, wss, trust, ""); err != nil {
		t.Errorf("a client that is not a browser (no Origin) cannot use the WebSocket: %v", err)
	}

	// mosquitto's clients (OpenSSL) trust ca.pem as device firmware does.
	if _, err := exec.LookPath("mosquitto_pub"); err == nil {
		out, err := exec.Command("mosquitto_pub", "-h", "localhost", "-p", port(b.TLSAddr()), "--cafile", caFile,
			"-t", "energy/consumption/m2", "-m", "1.5", "-q", "1").CombinedOutput()
		if err != nil {
			t.Errorf("mosquitto_pub over TLS: %v\n%s", err, out)
		}
		select {
		case p := <-got:
			if p != "1.5" {
				t.Errorf("got %q", p)
			}
		case <-time.After(5 * time.Second):
			t.Error("mosquitto_pub's reading did not arrive")
		}
		out, err = exec.Command("mosquitto_pub", "-h", "localhost", "-p", port(b.TLSAddr()),
			"--capath", t.TempDir(), "-t", "energy/consumption/m2", "-m", "1.5").CombinedOutput()
		if err == nil {
			t.Errorf("mosquitto_pub without the authority connected: %s", out)
		}
	}
}

// The plain WebSocket (no TLS) checks origins too, and allows its own.
func TestWebSocketOwnOrigin(t *testing.T) {
	b := start(t, broker.Options{WebSocketAddr: "127.0.0.1:0"})
	ws := "ws://" + b.WebSocketAddr().String()
	if _, err := connect3(t, ws, nil, "http://"+b.WebSocketAddr().String()); err != nil {
		t.Errorf("a page of the WebSocket's own origin was refused: %v", err)
	}
	if _, err := connect3(t, ws, nil, "http://localhost:5000"); err == nil {
		t.Error("an origin that was not listed was let in")
	}
}

// A client publishing faster than its rate is slowed down, and every one
// of its messages arrives, in order.
func TestRateSlowsWithoutDropping(t *testing.T) {
	b := start(t, broker.Options{Addr: "127.0.0.1:0", MaxMessagesPerSecond: 100})
	var mu sync.Mutex
	var got []string
	sub := mqtttest.V3(t, b.Addr().String())
	if tok := sub.Subscribe("energy/#", 1, func(_ paho3.Client, m paho3.Message) {
		mu.Lock()
		got = append(got, string(m.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub := mqtttest.V3(t, b.Addr().String())
	const n, burst, rate = 300, 200, 100 // the burst is two seconds' worth
	began := time.Now()
	for i := range n {
		mqtttest.Publish3(t, pub, "energy/consumption/m1", 1, false, fmt.Sprint(i))
	}
	took := time.Since(began)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		k := len(got)
		mu.Unlock()
		if k == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d of %d messages arrived", len(got), n)
	}
	for i, p := range got {
		if p != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: out of order", i, p)
		}
	}
	// The bucket holds the burst and refills at the rate: the last message
	// cannot have gone through before (n-burst-1)/rate, and a loaded
	// machine only makes that later. The messages past the burst were held
	// back, except those before which the client's own pause (a slow round
	// trip under load) let the bucket refill a token: some, never more
	// than n-burst.
	if least := time.Duration(n-burst-1) * time.Second / rate; took < least {
		t.Errorf("%d messages went through in %v, want at least %v at %d/s after a burst of %d", n, took, least, rate, burst)
	}
	th := testutil.ToFloat64(collector{b, "vatio_mqtt_messages_throttled_total"})
	if th < 1 || th > n-burst {
		t.Errorf("throttled = %v, want between 1 and %d", th, n-burst)
	}
}

// Topics longer than the limit are refused, for publishing and for
// subscribing.
func TestTopicLength(t *testing.T) {
	b := start(t, broker.Options{Addr: "127.0.0.1:0", MaxTopicLength: 64})
	c := mqtttest.V5(t, b.Addr().String(), nil)
	long := "energy/consumption/" + strings.Repeat("x", 64)
	if code := mqtttest.Publish5(t, c, long, 1, "1"); code != 0x87 {
		t.Errorf("publish on a %d-byte topic: reason 0x%02x, want 0x87 not authorized", len(long), code)
	}
	if code := mqtttest.Publish5(t, c, "energy/consumption/m1", 1, "1"); code != 0 {
		t.Errorf("publish on a short topic: reason 0x%02x", code)
	}
	ack, err := c.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: long + "/#", QoS: 1}}})
	if err == nil && ack.Reasons[0] < 0x80 {
		t.Errorf("subscription to a long filter granted (0x%02x)", ack.Reasons[0])
	}
	if v := testutil.ToFloat64(collector{b, "vatio_mqtt_topics_too_long_total"}); v != 2 {
		t.Errorf("topics too long = %v, want 2", v)
	}
}

// Past mqtt.max_clients a client is refused with "server unavailable".
func TestMaxClients(t *testing.T) {
	b := start(t, broker.Options{Addr: "127.0.0.1:0", MaxClients: 2})
	mqtttest.V3(t, b.Addr().String())
	mqtttest.V3(t, b.Addr().String())
	_, err := connect3(t, "tcp://"+b.Addr().String(), nil, "")
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unavailable") {
		t.Errorf("a third client: %v, want server unavailable", err)
	}
}

// A connection that sends nothing is closed after the connect timeout,
// on the plain and the TLS port, so idle sockets cannot pile up.
func TestSilentConnectionsClosed(t *testing.T) {
	tc, _, _ := localCA(t)
	b := start(t, broker.Options{Addr: "127.0.0.1:0", TLS: tc, TLSAddr: "127.0.0.1:0", ConnectTimeout: 200 * time.Millisecond})
	ws := start(t, broker.Options{WebSocketAddr: "127.0.0.1:0", ConnectTimeout: 200 * time.Millisecond})
	for i, addr := range []net.Addr{b.Addr(), b.TLSAddr(), ws.WebSocketAddr(), ws.WebSocketAddr()} {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 { // a request that is no upgrade, on a kept-alive socket
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound for the test only
		_, err = io.ReadAll(c)
		c.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: a silent connection was kept open", addr)
		}
	}
}

func port(a net.Addr) string { return fmt.Sprint(a.(*net.TCPAddr).Port) }

// collector picks one metric of the broker.
type collector struct {
	b    *broker.Broker
	name string
}

func (c collector) Describe(ch chan<- *prometheus.Desc) { c.b.Describe(ch) }
func (c collector) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	c.b.Collect(all)
	close(all)
	for m := range all {
		if strings.Contains(m.Desc().String(), `"`+c.name+`"`) {
			ch <- m
		}
	}
}

// Close disconnects every client and returns while others connect and
// disconnect around it. (mochi's own Close can deadlock then, on a nested
// read lock of its client map against a disconnecting client's write lock,
// mochi-mqtt/server#488: a CI run of this package once hung so. That race
// is too narrow to provoke at will; this test holds the closer that
// replaces it to its work: a client that stays connected is disconnected.)
func TestCloseWhileClientsComeAndGo(t *testing.T) {
	for round := range 5 {
		opts := broker.Options{Addr: "127.0.0.1:0", MaxPacketBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)}
		b, err := broker.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		addr := b.Addr().String()
		lost := make(chan struct{})
		steady := paho3.NewClient(paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("steady").
			SetAutoReconnect(false).SetConnectionLostHandler(func(paho3.Client, error) { close(lost) }))
		if tok := steady.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					o := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("churn-%d-%d", c, i)).
						SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(time.Second)
					cl := paho3.NewClient(o)
					if tok := cl.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
						cl.Disconnect(0)
					}
				}
			})
		}
		time.Sleep(time.Duration(20+round*10) * time.Millisecond)
		closed := make(chan struct{})
		go func() { b.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Close did not return while clients came and went", round)
		}
		close(stop)
		wg.Wait()
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: a connected client was not disconnected by Close", round)
		}
	}
}

// labelled picks one metric of the broker by name and label value.
type labelled struct {
	b            *broker.Broker
	name, reason string
}

func (l labelled) Describe(ch chan<- *prometheus.Desc) { l.b.Describe(ch) }
func (l labelled) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	l.b.Collect(all)
	close(all)
	for m := range all {
		var pb dto.Metric
		if !strings.Contains(m.Desc().String(), `"`+l.name+`"`) || m.Write(&pb) != nil {
			continue
		}
		for _, lp := range pb.GetLabel() {
			if lp.GetValue() == l.reason {
				ch <- m
			}
		}
	}
}
