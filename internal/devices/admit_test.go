package devices_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/store"
)

// connect3ID connects an MQTT 3.1.1 client with client id id and returns
// it (nil when refused) and the CONNACK's return code. lost, when not nil,
// is closed once the broker drops the connection.
func connect3ID(t *testing.T, addr, id, user, password string, clean bool, lost chan struct{}) (paho3.Client, byte) {
	t.Helper()
	opts := paho3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second)
	if user != "" {
		opts.SetUsername(user).SetPassword(password)
	}
	if lost != nil {
		opts.SetConnectionLostHandler(func(paho3.Client, error) { close(lost) })
	}
	c := paho3.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatalf("connect %s: no CONNACK within 15s", id)
	}
	code := tok.(*paho3.ConnectToken).ReturnCode()
	if tok.Error() != nil {
		return nil, code
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, code
}

// connect5ID connects an MQTT 5 client with client id id and returns it
// (nil when refused) and the CONNACK's reason code.
func connect5ID(t *testing.T, addr, id, user, password string) (*paho.Client, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: id, Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = user, true, []byte(password), true
	}
	ca, err := c.Connect(ctx, cp)
	if ca == nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	if err != nil {
		conn.Close()
		return nil, ca.ReasonCode
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return c, ca.ReasonCode
}

// With one password check at a time, a flood of CONNECTs with wrong
// passwords is answered "server busy" (MQTT 5, 0x89) or "server
// unavailable" (MQTT 3.1.1, 3) for those that found no free check, "bad
// user name or password" for the others, and the device with its right
// password connects afterwards.
func TestBusyPasswordChecksAnswerBusy(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, b := startOn(t, st, broker.Options{Addr: "127.0.0.1:0"}, auth.NewPasswordChecks(1, time.Millisecond))
	_, pw, err := reg.Add("plug", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr().String()
	const n = 24
	flood := func(connect func(i int) byte) map[byte]int {
		var mu sync.Mutex
		codes := map[byte]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				code := connect(i)
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return codes
	}
	codes5 := flood(func(i int) byte {
		_, code := connect5ID(t, addr, fmt.Sprintf("v5-%d", i), "plug", "wrong password")
		return code
	})
	if codes5[0x89] == 0 || codes5[0x89]+codes5[0x86] != n {
		t.Errorf("MQTT 5 CONNACKs of %d wrong passwords at once: %v, want some 0x89 server busy and the rest 0x86", n, codes5)
	}
	codes3 := flood(func(i int) byte {
		_, code := connect3ID(t, addr, fmt.Sprintf("v3-%d", i), "plug", "wrong password", true, nil)
		return code
	})
	// mochi answers a bad password with 5 (not authorized) on MQTT 3.1.1.
	if codes3[3] == 0 || codes3[3]+codes3[5] != n {
		t.Errorf("MQTT 3.1.1 CONNACKs of %d wrong passwords at once: %v, want some 3 server unavailable and the rest 5", n, codes3)
	}
	if c, code := connect3ID(t, addr, "plug-1", "plug", pw, true, nil); c == nil {
		t.Errorf("the right password after the flood: return code %d", code)
	}
	if c, code := connect5ID(t, addr, "plug-2", "plug", pw); c == nil {
		t.Errorf("the right password over MQTT 5 after the flood: reason code %#x", code)
	}
}

// A client id in use by one credential cannot be taken by another, or by
// an anonymous client, while it is connected or keeps a session; the same
// credential reconnecting with it takes over its session.
func TestClientIDStaysWithItsCredential(t *testing.T) {
	reg, addr := start(t)
	_, plugPW, err := reg.Add("plug", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPW, err := reg.Add("other", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{})
	if c, code := connect3ID(t, addr, "plug-main", "plug", plugPW, true, lost); c == nil {
		t.Fatalf("plug: return code %d", code)
	}
	if c, code := connect3ID(t, addr, "plug-main", "other", otherPW, true, nil); c != nil || code != 2 {
		t.Errorf("another device taking plug's client id over MQTT 3.1.1: return code %d, want 2 identifier rejected", code)
	}
	if c, code := connect5ID(t, addr, "plug-main", "other", otherPW); c != nil || code != 0x85 {
		t.Errorf("another device taking plug's client id over MQTT 5: reason code %#x, want 0x85", code)
	}
	if c, code := connect3ID(t, addr, "plug-main", "", "", true, nil); c != nil || code != 2 {
		t.Errorf("an anonymous client taking plug's client id: return code %d, want 2", code)
	}
	select {
	case <-lost:
		t.Fatal("plug was disconnected by a refused takeover")
	default:
	}
	// The same credential takes its session over.
	if c, code := connect3ID(t, addr, "plug-main", "plug", plugPW, true, nil); c == nil {
		t.Fatalf("plug reconnecting with its own client id: return code %d", code)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Error("the first plug connection was not taken over")
	}
	// A session kept after a disconnect still belongs to its credential.
	kept, code := connect3ID(t, addr, "plug-kept", "plug", plugPW, false, nil)
	if kept == nil {
		t.Fatalf("plug with a kept session: return code %d", code)
	}
	kept.Disconnect(50)
	if c, code := connect3ID(t, addr, "plug-kept", "other", otherPW, true, nil); c != nil || code != 2 {
		t.Errorf("another device taking a kept session's client id: return code %d, want 2", code)
	}
}

// One credential may hold at most MaxConnectionsPerUser connections; the
// next is refused with 0x97 quota exceeded (MQTT 5) or 3 server
// unavailable (MQTT 3.1.1). A takeover of its own client id is no new
// connection, a freed slot can be taken again, and anonymous clients are
// not counted per credential.
func TestConnectionsPerDevice(t *testing.T) {
	reg, b := startBroker(t, broker.Options{Addr: "127.0.0.1:0", MaxConnectionsPerUser: 2})
	addr := b.Addr().String()
	_, pw, err := reg.Add("plug", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPW, err := reg.Add("other", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := connect3ID(t, addr, "p1", "plug", pw, true, nil)
	second, _ := connect3ID(t, addr, "p2", "plug", pw, true, nil)
	if first == nil || second == nil {
		t.Fatal("plug's first two connections were refused")
	}
	if c, code := connect3ID(t, addr, "p3", "plug", pw, true, nil); c != nil || code != 3 {
		t.Errorf("a third connection over MQTT 3.1.1: return code %d, want 3 server unavailable", code)
	}
	if c, code := connect5ID(t, addr, "p3", "plug", pw); c != nil || code != 0x97 {
		t.Errorf("a third connection over MQTT 5: reason code %#x, want 0x97 quota exceeded", code)
	}
	if c, code := connect3ID(t, addr, "o1", "other", otherPW, true, nil); c == nil {
		t.Errorf("another device, under its own cap: return code %d", code)
	}
	if c, code := connect3ID(t, addr, "p1", "plug", pw, true, nil); c == nil {
		t.Errorf("plug taking over its own client id at the cap: return code %d", code)
	}
	second.Disconnect(50)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, code := connect3ID(t, addr, "p3", "plug", pw, true, nil)
		if c != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a slot freed by a disconnect was not given again: return code %d", code)
		}
		time.Sleep(20 * time.Millisecond) // the broker may not have seen the disconnect yet
	}
	for i := range 3 {
		if c, code := connect3ID(t, addr, fmt.Sprintf("anon-%d", i), "", "", true, nil); c == nil {
			t.Errorf("anonymous client %d: return code %d", i, code)
		}
	}
}
