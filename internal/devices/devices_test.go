package devices_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/store"
)

// start runs the real broker with the device registry deciding access.
func start(t *testing.T) (*devices.Registry, string) {
	t.Helper()
	reg, b := startBroker(t, broker.Options{Addr: "127.0.0.1:0"})
	return reg, b.Addr().String()
}

// startBroker runs the real broker of opts with a new device registry
// deciding access.
func startBroker(t *testing.T, opts broker.Options) (*devices.Registry, *broker.Broker) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return startOn(t, st, opts, nil)
}

// startOn runs the real broker of opts with a registry of the devices of
// st, checking passwords within checks, deciding access.
func startOn(t *testing.T, st *store.Store, opts broker.Options, checks *auth.PasswordChecks, ropts ...devices.Option) (*devices.Registry, *broker.Broker) {
	t.Helper()
	reg, err := devices.New(st, checks, ropts...)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxPacketBytes, opts.Access = 1<<20, reg
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return reg, b
}

var seq int

// connect connects an MQTT 3.1.1 client with credentials (user "" for
// none) and returns it, or the error of the connect.
func connect(t *testing.T, addr, user, password string, onMessage paho3.MessageHandler) (paho3.Client, error) {
	t.Helper()
	seq++
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("dev-%d", seq)).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetDefaultPublishHandler(onMessage)
	if user != "" {
		opts.SetUsername(user).SetPassword(password)
	}
	c := paho3.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

func TestDeviceCredentialsAndACL(t *testing.T) {
	reg, addr := start(t)
	_, plugPW, err := reg.Add("plug", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Add("other", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, addr, "plug", "wrong password", nil); err == nil {
		t.Error("a wrong password connected")
	}
	if _, err := connect(t, addr, "ghost", plugPW, nil); err == nil {
		t.Error("an unknown device connected")
	}
	// A watcher (anonymous from loopback: trusted) sees what gets through.
	var mu sync.Mutex
	var seen []string
	watcher, err := connect(t, addr, "", "", func(_ paho3.Client, m paho3.Message) {
		mu.Lock()
		seen = append(seen, m.Topic()+" "+string(m.Payload()))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	watcher.Subscribe("#", 1, nil).Wait()
	plug, err := connect(t, addr, "plug", plugPW, nil)
	if err != nil {
		t.Fatalf("the right password: %v", err)
	}
	plug.Publish("tele/plug/STATE", 1, false, "mine").Wait()
	// Its own commands it may subscribe to; another's, or all, not.
	if tok := plug.Subscribe("cmnd/plug/#", 1, nil); tok.Wait() && tok.Error() != nil {
		t.Errorf("own command topic: %v", tok.Error())
	}
	for _, wide := range []string{"cmnd/other/#", "#", "cmnd/+/POWER"} {
		tok := plug.Subscribe(wide, 1, nil)
		tok.Wait()
		if st := tok.(*paho3.SubscribeToken); st.Result()[wide] != 0x80 {
			t.Errorf("subscribing to %s: granted %#x, want 0x80", wide, st.Result()[wide])
		}
	}
	// Publishing on another device's topics is refused (MQTT 3.1.1 has no
	// way to say so but closing the connection): nothing gets through.
	for _, topic := range []string{"tele/other/STATE", "cmnd/other/POWER"} {
		c, err := connect(t, addr, "plug", plugPW, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Publish(topic, 1, false, "not mine").WaitTimeout(time.Second)
		// The broker closes the connection once it has read the publish
		// and refused it.
		for deadline := time.Now().Add(10 * time.Second); c.IsConnectionOpen(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a publish on %s was not refused", topic)
			}
		}
	}
	// What got through reached the watcher before the device's next
	// message on its own topic, which comes after the refusals.
	plug.Publish("tele/plug/STATE", 1, false, "after").Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		done := len(seen) > 0 && strings.HasSuffix(seen[len(seen)-1], " after")
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not see the device's own message")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "|") != "tele/plug/STATE mine|tele/plug/STATE after" {
		t.Errorf("got through: %v, want only the device's own topic", seen)
	}
	// A second connect with the right password is served from the cache;
	// once removed, the device is refused.
	if _, err := connect(t, addr, "plug", plugPW, nil); err != nil {
		t.Errorf("reconnect: %v", err)
	}
	if err := reg.Remove("plug"); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, addr, "plug", plugPW, nil); err == nil {
		t.Error("a removed device connected")
	}
}

func TestAnonymousOnlyFromTrustedAddresses(t *testing.T) {
	reg, addr := start(t)
	reg.AnonymousFrom = func(net.IP) bool { return false } // as if from the LAN
	if _, err := connect(t, addr, "", "", nil); err == nil {
		t.Error("an anonymous client connected from an untrusted address")
	}
	reg.AnonymousFrom = func(ip net.IP) bool { return ip.IsLoopback() }
	if _, err := connect(t, addr, "", "", nil); err != nil {
		t.Errorf("anonymous from loopback: %v", err)
	}
	for _, bad := range []string{"", "a b", "-x", strings.Repeat("x", 65)} {
		if _, _, err := reg.Add(bad, nil, nil); err == nil {
			t.Errorf("Add(%q) passed", bad)
		}
	}
	if _, _, err := reg.Add("x", []string{"a/#/b"}, nil); err == nil {
		t.Error("a bad filter passed")
	}
}

// connectWill connects device user with a last will on willTopic.
func connectWill(t *testing.T, url, user, password, willTopic string) (paho3.Client, error) {
	t.Helper()
	seq++
	opts := paho3.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("dev-%d", seq)).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetUsername(user).SetPassword(password)
	if willTopic != "" {
		opts.SetWill(willTopic, "OFF", 1, true)
	}
	c := paho3.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	return c, tok.Error()
}

// A device may connect only with a last will it could publish itself:
// mochi publishes wills without asking the ACL, so a will on another
// device's command topic would switch it when the first one drops.
func TestWillMustBeAllowed(t *testing.T) {
	reg, addr := start(t)
	_, pw, err := reg.Add("plug", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	if _, err := connect(t, addr, "", "", func(_ paho3.Client, m paho3.Message) { got <- m.Topic() }); err != nil {
		t.Fatal(err)
	}
	watcher, _ := connect(t, addr, "", "", func(_ paho3.Client, m paho3.Message) { got <- m.Topic() })
	if tok := watcher.Subscribe("#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if _, err := connectWill(t, "tcp://"+addr, "plug", pw, "cmnd/heater/POWER"); err == nil {
		t.Fatal("a device connected with a will on another device's command topic")
	}
	c, err := connectWill(t, "tcp://"+addr, "plug", pw, "tele/plug/LWT")
	if err != nil {
		t.Fatalf("a device with a will on its own topic: %v", err)
	}
	c.Disconnect(0) // its own will may come: it is its availability
	deadline := time.After(300 * time.Millisecond)
	for {
		select {
		case topic := <-got:
			if topic != "tele/plug/LWT" {
				t.Errorf("a message arrived on %s", topic)
			}
		case <-deadline:
			return
		}
	}
}

// The WebSocket trusts no client as local: a web page can steer a browser
// on this machine to it, so anonymous clients are refused there even from
// loopback; devices log in as on the TCP port.
func TestWebSocketNeedsCredentials(t *testing.T) {
	reg, b := startBroker(t, broker.Options{Addr: "127.0.0.1:0", WebSocketAddr: "127.0.0.1:0"})
	_, pw, err := reg.Add("panel", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := "ws://" + b.WebSocketAddr().String()
	if c, err := connectWill(t, ws, "", "", ""); err == nil {
		c.Disconnect(0)
		t.Error("an anonymous client connected over the WebSocket from loopback")
	}
	c, err := connectWill(t, ws, "panel", pw, "")
	if err != nil {
		t.Fatalf("a device over the WebSocket: %v", err)
	}
	c.Disconnect(0)
	if c, err := connectWill(t, "tcp://"+b.Addr().String(), "", "", ""); err != nil {
		t.Errorf("anonymous from loopback over TCP: %v", err)
	} else {
		c.Disconnect(0)
	}
}

// TestFailedConnectsLockAnAddressOut: ten wrong CONNECTs from one address
// (wrong passwords or made-up names) lock it out: even the right password
// is then refused there, without a password check, while other addresses
// and devices already verified from it still connect.
func TestFailedConnectsLockAnAddressOut(t *testing.T) {
	reg := newRegistry(t)
	_, pw, err := reg.Add("plug", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, known, err := reg.Add("meter", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Connect("meter", []byte(known), "192.0.2.7:4000"); err != nil {
		t.Fatalf("meter: %v", err)
	}
	for i := range 10 {
		user := "plug"
		if i%2 == 1 {
			user = fmt.Sprintf("nobody%d", i)
		}
		if err := reg.Connect(user, []byte("wrong password!"), "192.0.2.7:4000"); err == nil || errors.Is(err, devices.ErrLocked) {
			t.Fatalf("wrong CONNECT %d: %v, want refused as wrong", i, err)
		}
	}
	if err := reg.Connect("plug", []byte(pw), "192.0.2.7:4001"); !errors.Is(err, devices.ErrLocked) {
		t.Errorf("the right password from the locked address: %v, want ErrLocked", err)
	}
	if err := reg.Connect("plug", []byte(pw), "198.51.100.1:4000"); err != nil {
		t.Errorf("the right password from another address: %v", err)
	}
	if err := reg.Connect("meter", []byte(known), "192.0.2.7:4002"); err != nil {
		t.Errorf("a device verified before, from the locked address: %v", err)
	}
}

// Topics kept for Vatio (Home Assistant's discovery prefix, Vatio's state
// topics) are refused to every client's publishes and wills, whatever its
// topics say; Home Assistant's status is open to those whose topics reach
// it, so Home Assistant may connect with its will there.
func TestOwnTopics(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, b := startOn(t, st, broker.Options{Addr: "127.0.0.1:0"}, nil,
		devices.WithOwnTopics([]string{"homeassistant/#", "vatio/meters/#"}, []string{"homeassistant/status"}))
	_, pw, err := reg.Add("ha", []string{"homeassistant/#", "vatio/#"}, []string{"homeassistant/#", "vatio/#"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Add("plug", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, topic string
		write, want bool
	}{
		{"ha", "homeassistant/sensor/vatio_x/power/config", true, false},
		{"ha", "homeassistant/switch/x/config", true, false},
		{"ha", "homeassistant/status", true, true},
		{"ha", "vatio/meters/status", true, false},
		{"ha", "vatio/meters/x/availability", true, false},
		{"ha", "vatio/alerts/x", true, true}, // not kept: its topics give it
		{"ha", "homeassistant/sensor/vatio_x/power/config", false, true},
		{"ha", "vatio/meters/#", false, true},
		{"", "homeassistant/sensor/a/b/config", true, false},
		{"", "vatio/meters/x/state", true, false},
		{"", "homeassistant/status", true, true},
		{"plug", "homeassistant/status", true, false}, // not among its topics
		{"plug", "plug/status", true, true},
	} {
		if got := reg.Allowed(c.user, c.topic, c.write); got != c.want {
			t.Errorf("Allowed(%q, %q, write %v) = %v, want %v", c.user, c.topic, c.write, got, c.want)
		}
	}
	for topic, want := range map[string]bool{"homeassistant/sensor/a/b/config": true, "vatio/meters/x/state": true,
		"homeassistant/status": false, "vatio/alerts/x": false, "homeassistant": true, "vatio/meters": true} {
		if got := reg.Kept(topic); got != want {
			t.Errorf("Kept(%q) = %v, want %v", topic, got, want)
		}
	}
	addr := "tcp://" + b.Addr().String()
	if _, err := connectWill(t, addr, "ha", pw, "vatio/meters/status"); err == nil {
		t.Error("a device connected with a will on Vatio's status")
	}
	if _, err := connectWill(t, addr, "ha", pw, "homeassistant/status"); err != nil {
		t.Errorf("Home Assistant's will on homeassistant/status refused: %v", err)
	}
}

// logLines is a slog handler keeping the messages of the records it gets.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}

// count returns how many messages are msg.
func (l *logLines) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// Clients refused for their will on a kept topic, many of them, are
// logged at most once a second, and mochi's own message-less line about
// each refusal is not logged at all.
func TestRefusedWillsLoggedThrottled(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logged := &logLines{}
	_, b := startOn(t, st, broker.Options{Addr: "127.0.0.1:0", Logger: slog.New(logged)}, nil,
		devices.WithOwnTopics([]string{"vatio/meters/#"}, nil))
	addr := "tcp://" + b.Addr().String()
	const clients = 100
	began := time.Now()
	for range clients {
		if _, err := connectWill(t, addr, "", "", "vatio/meters/status"); err == nil {
			t.Fatal("an anonymous client connected with a will on Vatio's status")
		}
	}
	elapsed := time.Since(began)
	msg := "connection refused: its last will is on a topic it may not publish on"
	// mochi logs its line after the CONNACK, so a line of the last
	// refusals may come later; the others' are in.
	if _, err := connectWill(t, addr, "", "", ""); err != nil {
		t.Fatal(err)
	}
	if n, most := logged.count(msg), 1+int(elapsed/time.Second); n == 0 || n > most {
		t.Errorf("%d lines for %d refused wills in %v, want 1 to %d", n, clients, elapsed, most)
	}
	if n := logged.count(""); n != 0 {
		t.Errorf("%d message-less lines from mochi for refusals already logged", n)
	}
}
