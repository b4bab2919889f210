// Package mqtttest connects real MQTT clients (Eclipse Paho) to a broker for
// tests: MQTT 3.1.1 with paho.mqtt.golang and MQTT 5 with paho.golang.
package mqtttest

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"
)

var clientSeq atomic.Int64

// V3 connects an MQTT 3.1.1 client to addr; it disconnects when t ends.
func V3(t testing.TB, addr string) paho3.Client {
	t.Helper()
	opts := paho3.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(fmt.Sprintf("test-v3-%d", clientSeq.Add(1))).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second)
	c := paho3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt 3.1.1 connect to %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Publish3 publishes with c and waits for the broker's acknowledgement
// (for QoS 0, for the packet to be written).
func Publish3(t testing.TB, c paho3.Client, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("publish %s %q: no acknowledgement within 10s", topic, payload)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s %q: %v", topic, payload, err)
	}
}

// V5 connects an MQTT 5 client to addr; received publishes go to onPublish
// (which may be nil). It disconnects when t ends.
func V5(t testing.TB, addr string, onPublish func(*paho.Publish)) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{ClientID: fmt.Sprintf("test-v5-%d", clientSeq.Add(1)), Conn: conn}
	if onPublish != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { onPublish(pr.Packet); return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: cfg.ClientID, KeepAlive: 30, CleanStart: true})
	if err != nil {
		t.Fatalf("mqtt 5 connect to %s: %v", addr, err)
	}
	if ca.ReasonCode != 0 {
		t.Fatalf("mqtt 5 connect to %s: reason code %#x", addr, ca.ReasonCode)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{ReasonCode: 0}) })
	return c
}

// Publish5 publishes with c and returns the PUBACK's reason code (0 for QoS 0).
func Publish5(t testing.TB, c *paho.Client, topic string, qos byte, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
	if resp == nil {
		if err != nil {
			t.Fatalf("mqtt 5 publish %s %q: %v", topic, payload, err)
		}
		return 0
	}
	return resp.ReasonCode
}
