package hooks

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// forward is what passing a stored reading on to subscribers needs of its
// publish: much less than a whole packets.Packet.
type forward struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
}

// ackItem is one committed (or rejected) publish to answer, or a marker.
type ackItem struct {
	cl       *mqtt.Client
	packetID uint16
	// ack, when set, is sent as is (a rejection with a reason code) instead
	// of a plain PUBACK.
	ack *packets.Packet
	// forward, when set, is the stored reading to pass on to subscribers.
	forward *forward
	// marker, when set, is closed once everything before it is done.
	marker chan struct{}
}

// acker answers publishes once their readings are committed. It runs on its
// own goroutine, fed in commit order, and groups the plain PUBACKs that one
// commit owes one client into a single write: a commit of thousands of
// readings costs one write per client rather than one per reading.
type acker struct {
	// subsGen counts subscription changes (see Ingest's OnSubscribed);
	// subs caches, per topic, whether it had subscribers at a generation.
	// Only the acker's goroutine uses subs.
	subsGen atomic.Uint64
	subs    map[string]subsEntry
	// mu orders send against close: send holds it shared.
	mu     sync.RWMutex
	closed bool
	in     chan ackItem
	server *mqtt.Server
	log    *slog.Logger
	done   chan struct{}
}

const ackerMaxBatch = 4096

func newAcker(server *mqtt.Server, queue int, logger *slog.Logger) *acker {
	a := &acker{in: make(chan ackItem, queue), server: server, log: logger, done: make(chan struct{}), subs: map[string]subsEntry{}}
	go a.loop()
	return a
}

// send queues it; after close it is dropped (the client is gone anyway).
func (a *acker) send(it ackItem) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.closed {
		a.in <- it
	}
}

// close stops the acker after everything sent to it is done.
func (a *acker) close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.in)
	}
	a.mu.Unlock()
	<-a.done
}

// wait returns once everything sent before it is done.
func (a *acker) wait() {
	m := make(chan struct{})
	a.send(ackItem{marker: m})
	a.mu.RLock()
	closed := a.closed
	a.mu.RUnlock()
	if !closed {
		<-m
	}
}

func (a *acker) loop() {
	defer close(a.done)
	batch := make([]ackItem, 0, ackerMaxBatch)
	pending := map[*mqtt.Client][]byte{}
	var order []*mqtt.Client
	for it := range a.in {
		batch = append(batch[:0], it)
	drain:
		for len(batch) < cap(batch) {
			select {
			case it, ok := <-a.in:
				if !ok {
					break drain
				}
				batch = append(batch, it)
			default:
				break drain
			}
		}
		for _, it := range batch {
			switch {
			case it.marker != nil:
				a.flush(pending, order)
				order = order[:0]
				close(it.marker)
			case it.ack != nil:
				if buf := pending[it.cl]; len(buf) > 0 {
					a.write(it.cl, buf) // keep this client's acks in order
					pending[it.cl] = buf[:0]
				}
				if err := it.cl.WritePacket(*it.ack); err != nil && !errors.Is(err, mqtt.ErrConnectionClosed) {
					a.log.Debug("ack not sent", slog.String("client", it.cl.ID), slog.Any("error", err))
				}
			case it.packetID != 0:
				buf, seen := pending[it.cl]
				if !seen {
					order = append(order, it.cl)
				}
				// PUBACK: fixed header, remaining length 2, packet id. Valid
				// for MQTT 3.1.1 and, with reason code success, MQTT 5.
				pending[it.cl] = append(buf, packets.Puback<<4, 2, byte(it.packetID>>8), byte(it.packetID))
			}
		}
		a.flush(pending, order)
		order = order[:0]
		for _, it := range batch {
			if f := it.forward; f != nil && (f.retain || a.subscribed(f.topic)) {
				if err := a.server.Publish(f.topic, f.payload, f.retain, f.qos); err != nil {
					a.log.Debug("forward failed", slog.String("topic", f.topic), slog.Any("error", err))
				}
			}
		}
		clear(batch) // drop references to clients and payloads
	}
}

// subsEntry is a cached answer of subscribed.
type subsEntry struct {
	gen uint64
	at  time.Time
	has bool
}

// subsMaxAge bounds how long a cached answer is trusted even when no
// subscription event came: inline subscriptions (server.Subscribe) raise
// none.
const subsMaxAge = time.Second

// subscribed reports whether any client subscribes to topic. Publishing
// through the inline client runs the whole inbound path of a packet; most
// readings have no subscriber, and finding that out is much cheaper,
// cheaper still from the cache, which any subscription change invalidates.
func (a *acker) subscribed(topic string) bool {
	gen, now := a.subsGen.Load(), time.Now()
	if e, ok := a.subs[topic]; ok && e.gen == gen && now.Sub(e.at) < subsMaxAge {
		return e.has
	}
	subs := a.server.Topics.Subscribers(topic)
	has := len(subs.Subscriptions) > 0 || len(subs.Shared) > 0 || len(subs.InlineSubscriptions) > 0
	if len(a.subs) > 100000 {
		clear(a.subs) // topics come from clients: keep the cache bounded
	}
	a.subs[topic] = subsEntry{gen: gen, at: now, has: has}
	return has
}

func (a *acker) flush(pending map[*mqtt.Client][]byte, order []*mqtt.Client) {
	for _, cl := range order {
		if buf := pending[cl]; len(buf) > 0 {
			a.write(cl, buf)
		}
		delete(pending, cl)
	}
}

// write sends encoded PUBACKs straight to the client's connection under the
// client's lock, as mochi's WritePacket does for one packet. A client whose
// connection fails (it stopped reading past the write deadline) is
// disconnected; it will resend what it did not get acknowledged.
func (a *acker) write(cl *mqtt.Client, buf []byte) {
	if cl.Closed() || cl.Net.Conn == nil {
		return
	}
	cl.Lock()
	_, err := cl.Net.Conn.Write(buf)
	cl.Unlock()
	if err != nil {
		a.log.Warn("acknowledgements not sent; disconnecting client", slog.String("client", cl.ID), slog.Any("error", err))
		cl.Stop(err)
	}
}
