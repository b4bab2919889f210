package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/homeassistant"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// cutProxy forwards TCP connections to a broker until cut drops every one
// of them without a word, as a crash or a network cut would; it goes on
// accepting new ones.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// haWatcher records the messages a Home Assistant-like client of the
// broker receives.
type haWatcher struct {
	mu  sync.Mutex
	got []string // "topic payload"
}

func (w *haWatcher) waitFor(t *testing.T, what string, n int, logs fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		w.mu.Lock()
		count := 0
		for _, m := range w.got {
			if m == what {
				count++
			}
		}
		all := strings.Join(w.got, "\n")
		w.mu.Unlock()
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d %q; got:\n%s\nvatio logs:\n%s", count, n, what, all, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With an external broker (Mosquitto), where anyone may publish under the
// discovery prefix: Vatio's status is online while it is connected and
// offline by its will when its connection is cut without a goodbye (a
// crash), online again once it reconnects, and offline when it stops;
// discovery comes again on Home Assistant's birth and when a config is
// cleared.
func TestHomeAssistantExternalBroker(t *testing.T) {
	addr, mlog, _ := startMosquitto(t)
	proxy := newCutProxy(t, addr)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, "broker:\n  mode: external\n  urls: [\"mqtt://%s\"]\n  client_id: ha-ext\n", proxy.ln.Addr()), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	v := startVatioEnv(t, t.TempDir(), cfg, testEnv, "subscribed to the MQTT broker")

	w := &haWatcher{}
	ha := mqtttest.V3(t, addr)
	if tok := ha.Subscribe("#", 1, func(_ paho3.Client, m paho3.Message) {
		w.mu.Lock()
		w.got = append(w.got, m.Topic()+" "+string(m.Payload()))
		w.mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	w.waitFor(t, "vatio/meters/status online", 1, v.logs)
	mqtttest.Publish3(t, ha, "energy/consumption/pv", 1, false, `{"power_w": -1500}`)
	oid := homeassistant.ObjectID("pv")
	topic := "homeassistant/sensor/" + oid + "/power/config"
	var config string
	deadline := time.Now().Add(20 * time.Second)
	for config == "" {
		w.mu.Lock()
		for _, m := range w.got {
			if c, ok := strings.CutPrefix(m, topic+" "); ok && c != "" {
				config = c
			}
		}
		w.mu.Unlock()
		if config == "" && time.Now().After(deadline) {
			t.Fatalf("no config on %s\nvatio logs:\n%s", topic, v.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.waitFor(t, "vatio/meters/pv/availability online", 1, v.logs)

	// Cleared by anyone: published again.
	mqtttest.Publish3(t, ha, topic, 1, true, "")
	w.waitFor(t, topic+" ", 1, v.logs)
	w.waitFor(t, topic+" "+config, 2, v.logs)
	// Home Assistant's birth: published again.
	mqtttest.Publish3(t, ha, "homeassistant/status", 1, false, "online")
	w.waitFor(t, topic+" "+config, 3, v.logs)

	// A cut without a goodbye: the broker publishes Vatio's will; the
	// reconnection says online again.
	proxy.cut()
	w.waitFor(t, "vatio/meters/status offline", 1, mlog)
	w.waitFor(t, "vatio/meters/status online", 2, v.logs)

	v.stop(t)
	w.waitFor(t, "vatio/meters/status offline", 2, mlog)
	// Home Assistant starting later reads offline, retained.
	late := mqtttest.V3(t, addr)
	got := make(chan string, 1)
	if tok := late.Subscribe("vatio/meters/status", 1, func(_ paho3.Client, m paho3.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case s := <-got:
		if s != "offline" {
			t.Errorf("retained status after the stop: %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Error("no retained status after the stop")
	}
}
