package hooks

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
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

// ackItem is one committed (or rejected) publish to answer.
type ackItem struct {
	cl       *mqtt.Client
	packetID uint16
	// ack, when set, is sent as is (a rejection with a reason code) instead
	// of a plain PUBACK.
	ack *packets.Packet
	// forward, when set, is the stored reading to pass on to subscribers.
	forward *forward
}

// acker answers publishes once their readings are stored. It has no
// goroutine of its own: the store's acknowledgement goroutine calls send,
// in the order readings were stored, and send writes to the client's
// connection at once, the one stage between the disk and the socket.
//
// A client whose connection is busy (mochi is writing to it) or full (it
// does not read) must not hold up the others: send never waits for the
// client's lock, and waits at most ackWriteWait for its socket, and only
// on a plain TCP connection, where a write that timed out having written
// nothing leaves it usable (TLS and WebSocket connections are not: their
// acknowledgements always go the other way). What it does not write waits
// in the client's pending bytes, in order, written before anything later
// for that client (so PUBACKs, rejections included, stay in order), by a
// retry timer on its own goroutine; a client that deferred stays on that
// path for ackDeferFor. A client whose pending acknowledgements do not
// drain within ackStuckAfter, or pile up past ackMaxPending, is
// disconnected: it resends what it did not get acknowledged.
type acker struct {
	// subsGen counts subscription changes (see Ingest's OnSubscribed);
	// subs caches, per topic, whether it had subscribers at a generation.
	subsGen atomic.Uint64
	subsMu  sync.Mutex
	subs    map[string]subsEntry

	mu      sync.Mutex // guards pending, retry and closed
	pending map[*mqtt.Client]*deferredAcks
	retry   *time.Timer
	closed  bool

	server *mqtt.Server
	log    *slog.Logger
}

// deferredAcks are a client's encoded acknowledgements waiting for its
// connection.
type deferredAcks struct {
	buf []byte
	// lastWrite is when its acknowledgements were last written (or it
	// deferred first); failingSince when its socket started to refuse
	// them, busySince when mochi started to hold its lock throughout
	// (zero: neither).
	lastWrite, failingSince, busySince time.Time
	flushing                           bool // a flush has taken buf
}

const (
	// ackWriteWait bounds a write of acknowledgements to one client's
	// socket: past it the socket is full. A socket with room takes the
	// write at once; one without it rarely drains in a millisecond, and
	// each wait holds up everyone's acknowledgements behind it (a hundred
	// stuck clients waited 1 ms each).
	ackWriteWait = 100 * time.Microsecond
	// ackRetryEvery is how soon pending acknowledgements are tried again.
	ackRetryEvery = 10 * time.Millisecond
	// ackDeferFor keeps a client that deferred on the retry path.
	ackDeferFor = time.Second
	// ackStuckAfter and ackMaxPending judge a client stuck.
	ackStuckAfter = 10 * time.Second
	ackMaxPending = 64 << 10
)

func newAcker(server *mqtt.Server, logger *slog.Logger) *acker {
	return &acker{server: server, log: logger, subs: map[string]subsEntry{}, pending: map[*mqtt.Client]*deferredAcks{}}
}

// send answers it: the PUBACK or rejection to its client, then the
// forward to subscribers.
func (a *acker) send(it ackItem) {
	var b []byte
	switch {
	case it.ack != nil:
		b = encodeAck(it.cl, *it.ack)
	case it.packetID != 0:
		// PUBACK: fixed header, remaining length 2, packet id. Valid for
		// MQTT 3.1.1 and, with reason code success, MQTT 5.
		b = []byte{packets.Puback << 4, 2, byte(it.packetID >> 8), byte(it.packetID)}
	}
	if b != nil {
		a.write(it.cl, b)
	}
	if f := it.forward; f != nil && (f.retain || a.subscribed(f.topic)) {
		if err := a.server.Publish(f.topic, f.payload, f.retain, f.qos); err != nil {
			a.log.Debug("forward failed", slog.String("topic", f.topic), slog.Any("error", err))
		}
	}
}

// shortWrite returns how to write to conn waiting at most a given time,
// leaving conn usable when nothing was written; false when conn cannot.
func shortWrite(conn net.Conn) (func([]byte, time.Duration) (int, error), bool) {
	switch c := conn.(type) {
	case interface {
		WriteWithin([]byte, time.Duration) (int, error)
	}:
		return c.WriteWithin, true
	case *net.TCPConn, *net.UnixConn:
		return func(b []byte, wait time.Duration) (int, error) {
			_ = c.SetWriteDeadline(time.Now().Add(wait))
			n, err := c.Write(b)
			_ = c.SetWriteDeadline(time.Time{})
			return n, err
		}, true
	}
	return nil, false
}

// write sends b to cl now, or behind what waits for it already.
func (a *acker) write(cl *mqtt.Client, b []byte) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	if d := a.pending[cl]; d != nil {
		d.buf = append(d.buf, b...)
		a.armRetry()
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	var failed, busy time.Time
	if cl.Net.Conn != nil {
		if w, ok := shortWrite(cl.Net.Conn); ok {
			switch a.tryWrite(cl, b, w) {
			case writeDone:
				return
			case writeFull:
				failed = time.Now()
			case writeBusy:
				busy = time.Now()
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if d := a.pending[cl]; d != nil { // another goroutine deferred some meanwhile
		d.buf = append(d.buf, b...)
		return
	}
	a.pending[cl] = &deferredAcks{buf: append([]byte(nil), b...), lastWrite: time.Now(), failingSince: failed, busySince: busy}
	a.armRetry()
}

// hasPending reports whether acknowledgements of cl wait to be written,
// or are being written by a flush.
func (a *acker) hasPending(cl *mqtt.Client) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.pending[cl]
	return d != nil && (len(d.buf) > 0 || d.flushing)
}

// armRetry starts the retry timer; mu is held.
func (a *acker) armRetry() {
	if a.retry == nil && !a.closed {
		a.retry = time.AfterFunc(ackRetryEvery, a.flushPending)
	}
}

// writeResult is what came of a try to write a client's acknowledgements.
type writeResult int

const (
	// writeDone: written, or dropped with a client that is gone (or that
	// the try disconnected, a write cut short having broken its stream).
	writeDone writeResult = iota
	// writeBusy: mochi holds the client's lock; try again later.
	writeBusy
	// writeFull: the client's socket took nothing within ackWriteWait; try
	// again later, and count the client as failing (see ackStuckAfter).
	writeFull
)

// tryWrite writes b to cl's connection with w if its lock is free and its
// socket takes b within ackWriteWait.
func (a *acker) tryWrite(cl *mqtt.Client, b []byte, w func([]byte, time.Duration) (int, error)) writeResult {
	if cl.Closed() || cl.Net.Conn == nil {
		return writeDone
	}
	if !cl.TryLock() {
		return writeBusy // mochi is writing to it: never wait behind that
	}
	n, err := w(b, ackWriteWait)
	switch {
	case err == nil:
		cl.Unlock()
		return writeDone
	case n == 0 && isTimeout(err):
		cl.Unlock()
		return writeFull // nothing written: try later
	case n > 0 && isTimeout(err):
		// Cut short mid-packet: the rest must go before anything else,
		// so the lock stays held until it has, on a goroutine of its own
		// (a client that does not take it within ackStuckAfter is
		// dropped).
		rest := bytes.Clone(b[n:])
		go func() {
			conn := cl.Net.Conn
			_ = conn.SetWriteDeadline(time.Now().Add(ackStuckAfter))
			_, err := conn.Write(rest)
			_ = conn.SetWriteDeadline(time.Time{})
			cl.Unlock()
			if err != nil {
				a.dropClient(cl, err)
			}
		}()
		return writeDone
	}
	cl.Unlock()
	a.dropClient(cl, err)
	return writeDone
}

// writeBlocking writes b to a connection that cannot be written with a
// short wait (TLS, WebSocket), as mochi does, on a goroutine of its own.
func (a *acker) writeBlocking(cl *mqtt.Client, b []byte) {
	if cl.Closed() || cl.Net.Conn == nil {
		return
	}
	cl.Lock()
	_, err := cl.Net.Conn.Write(b)
	cl.Unlock()
	if err != nil {
		a.dropClient(cl, err)
	}
}

func (a *acker) dropClient(cl *mqtt.Client, err error) {
	if !errors.Is(err, net.ErrClosed) {
		a.log.Warn("acknowledgements not sent; disconnecting client", slog.String("client", cl.ID), slog.Any("error", err))
	}
	cl.Stop(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errAcksStuck disconnects a client that does not read its acknowledgements.
var errAcksStuck = errors.New("the client does not read its acknowledgements")

// flushPending writes the pending acknowledgements, on the retry timer's
// goroutine (or one of its own for a connection written with no short
// wait), without holding mu while it writes.
func (a *acker) flushPending() {
	a.mu.Lock()
	a.retry = nil
	// Clients whose writes succeed first: one deferred a moment ago
	// (mochi held its lock) must not wait behind those that do not read.
	var clients, failing []*mqtt.Client
	for cl, d := range a.pending {
		if d.flushing {
			continue
		}
		d.flushing = true
		if d.failingSince.IsZero() {
			clients = append(clients, cl)
		} else {
			failing = append(failing, cl)
		}
	}
	clients = append(clients, failing...)
	a.mu.Unlock()
	for _, cl := range clients {
		a.mu.Lock()
		d := a.pending[cl]
		if d == nil { // closed meanwhile
			a.mu.Unlock()
			continue
		}
		if len(d.buf) == 0 {
			d.flushing = false
			if time.Since(d.lastWrite) > ackDeferFor || cl.Closed() {
				delete(a.pending, cl)
			}
			a.mu.Unlock()
			continue
		}
		buf := d.buf
		d.buf = nil
		a.mu.Unlock()
		w, short := shortWrite(cl.Net.Conn)
		if !short {
			go func() {
				a.writeBlocking(cl, buf)
				a.flushed(cl, d, nil, writeDone)
			}()
			continue
		}
		a.flushed(cl, d, buf, a.tryWrite(cl, buf, w))
	}
	a.mu.Lock()
	if len(a.pending) > 0 {
		a.armRetry()
	}
	a.mu.Unlock()
}

// flushed records the outcome of a flush of cl's pending buf.
func (a *acker) flushed(cl *mqtt.Client, d *deferredAcks, buf []byte, res writeResult) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending[cl] != d {
		return
	}
	d.flushing = false
	now := time.Now()
	switch res {
	case writeDone:
		d.lastWrite, d.failingSince, d.busySince = now, time.Time{}, time.Time{}
	case writeBusy:
		d.buf = append(buf, d.buf...)
		if d.busySince.IsZero() {
			d.busySince = now
		}
	case writeFull:
		d.buf = append(buf, d.buf...)
		if d.failingSince.IsZero() {
			d.failingSince = now
		}
	}
	// A lock mochi holds longer than this is a write of its own that a
	// client does not read (mqtt.write_timeout ends it, unless it is 0).
	stuck := !d.failingSince.IsZero() && now.Sub(d.failingSince) > ackStuckAfter ||
		!d.busySince.IsZero() && now.Sub(d.busySince) > ackStuckAfter
	if stuck || len(d.buf) > ackMaxPending {
		delete(a.pending, cl)
		a.log.Warn("acknowledgements not read; disconnecting client", slog.String("client", cl.ID),
			slog.Int("pending_bytes", len(d.buf)))
		go cl.Stop(errAcksStuck)
	}
	if len(a.pending) > 0 {
		a.armRetry()
	}
}

// wait tries, for up to a second, to write what is pending: the answers of
// a shutdown.
func (a *acker) wait() {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(ackRetryEvery) {
		a.mu.Lock()
		n := 0
		for _, d := range a.pending {
			n += len(d.buf)
		}
		a.mu.Unlock()
		if n == 0 {
			return
		}
	}
}

// close drops what is pending: the broker is closing.
func (a *acker) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.retry != nil {
		a.retry.Stop()
	}
	clear(a.pending)
}

// encodeAck encodes a PUBACK or PUBREC carrying a reason for cl, as mochi's
// WritePacket would, without taking the client's lock; a reason string too
// large for the client's maximum packet size is left out.
func encodeAck(cl *mqtt.Client, pk packets.Packet) []byte {
	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	pk.Mods.MaxSize = cl.Properties.Props.MaximumPacketSize
	if cl.Properties.Props.RequestProblemInfoFlag && cl.Properties.Props.RequestProblemInfo == 0 {
		pk.Mods.DisallowProblemInfo = true
	}
	for {
		var buf bytes.Buffer
		var err error
		if pk.FixedHeader.Type == packets.Pubrec {
			err = pk.PubrecEncode(&buf)
		} else {
			err = pk.PubackEncode(&buf)
		}
		if err == nil && (pk.Mods.MaxSize == 0 || uint32(buf.Len()) <= pk.Mods.MaxSize) {
			return buf.Bytes()
		}
		if pk.Properties.ReasonString == "" {
			return nil
		}
		pk.Properties.ReasonString = ""
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
	a.subsMu.Lock()
	defer a.subsMu.Unlock()
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
