// Package broker runs the embedded MQTT broker (mochi-mqtt v2) that meters
// connect to. It owns the listener and the server's lifecycle; what happens
// to published readings is decided by hooks added with AddHook.
package broker

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/vatio-energy/vatio/internal/netlimit"
)

// Options configure a Broker.
type Options struct {
	// Addr is the TCP address of plain MQTT, e.g. ":1883"; port 0 picks a
	// free port, and "" serves no plain MQTT.
	Addr string
	// TLS, when set, serves MQTT over TLS on TLSAddr (":8883"), and makes
	// the WebSocket listener wss.
	TLS     *tls.Config
	TLSAddr string
	// WebSocketAddr serves MQTT over WebSocket, for browsers; "" is off.
	WebSocketAddr string
	// WebSocketOrigins are the web origins ("https://vatio.lan:5000") whose
	// pages may open the WebSocket, besides the WebSocket's own origin; "*"
	// allows every origin. Clients that send no Origin are not browsers
	// and are let through, to authenticate like any client.
	WebSocketOrigins []string
	// MaxClients is how many clients may be connected at once; 0 is no
	// limit.
	MaxClients int
	// MaxMessagesPerSecond is the rate each client may publish at; a faster
	// client is slowed down. 0 is no limit.
	MaxMessagesPerSecond int
	// MaxTopicLength is the longest topic a client may publish on or
	// subscribe to; 0 is MQTT's own limit.
	MaxTopicLength int
	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT (and finish its TLS handshake); 0 means 10 s.
	ConnectTimeout time.Duration
	// MaxPacketBytes is the largest packet a client may send.
	MaxPacketBytes int
	// MaxQueuedMessages is how many messages may wait to be sent to one
	// subscriber; past that they are dropped for it. Each client's queue is
	// allocated at this size, so it sets the memory a connection costs.
	MaxQueuedMessages int
	// WriteTimeout bounds every write to a client connection: a client that
	// stops reading is disconnected rather than stalling the writer.
	WriteTimeout time.Duration
	// MaxConnectionsPerUser is how many clients may be connected at once
	// with one user name (a device's credential); the next is refused with
	// "quota exceeded" (MQTT 5) or "server unavailable" (MQTT 3.1.1).
	// Clients without a user name are not counted. 0 is no limit.
	MaxConnectionsPerUser int
	// MaxConnectionsPerAddress is how many TCP connections may be open at
	// once from one IP address, on each listener; past it a connection is
	// closed before a byte is read. 0 is no limit.
	MaxConnectionsPerAddress int
	// MaxRetainedMessageBytes is the largest retained message a client may
	// leave (topic, payload and properties); MaxRetainedBytes bounds all
	// retained messages together. A retained publish past either is
	// refused: see guard.OnPublish. 0 is no limit.
	MaxRetainedMessageBytes, MaxRetainedBytes int
	// Logger receives the broker's logs.
	Logger *slog.Logger
	// Access decides who may connect and what each may publish and
	// subscribe to; nil lets everyone do everything.
	Access Access
}

// Access decides who may use the broker.
type Access interface {
	// Connect returns nil when a client may connect with user and password
	// (both empty without credentials) from the remote address. An error
	// wrapping ErrBusy tells the client the server is busy; any other
	// refuses it as a bad user name or password. It must hold no lock that
	// other connections need while it checks a password.
	Connect(user string, password []byte, remote string) error
	// Allowed reports whether client user may publish on (write) or
	// subscribe to topic.
	Allowed(user, topic string, write bool) bool
}

// Keeper is an Access that keeps topics for the server itself (Home
// Assistant discovery): a client's publish on one is refused without
// closing its connection, as an ACL refusal would for MQTT 3.1.1 at QoS 1
// or 2. A device that announces itself to Home Assistant (Zigbee2MQTT,
// Tasmota) keeps sending its readings.
type Keeper interface {
	// Kept reports whether only the server may publish on topic.
	Kept(topic string) bool
}

// wsListener is the id of the WebSocket listener.
const wsListener = "ws"

// defaultConnectTimeout bounds the time from a connection's opening to
// its CONNECT packet (and TLS handshake), so idle sockets cannot pile up.
const defaultConnectTimeout = 10 * time.Second

// Broker is the embedded MQTT broker.
type Broker struct {
	srv   *mqtt.Server
	guard *guard
	// lns are the listeners, closed by StopAccepting; addr, tlsAddr and
	// wsAddr are their addresses (nil when off).
	lns                   []net.Listener
	addr, tlsAddr, wsAddr net.Addr
	closes                atomic.Int64
	gate                  *gate
	// inlineSubs numbers the server's own subscriptions (see Subscribe).
	inlineSubs atomic.Int64
}

// New listens on the addresses of opts and prepares the server; Start
// serves it.
func New(opts Options) (_ *Broker, err error) {
	b := &Broker{gate: new(gate)}
	defer func() {
		if err != nil {
			for _, ln := range b.lns {
				ln.Close()
			}
		}
	}()
	listen := func(addr string) (net.Listener, error) {
		raw, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("broker: listen on %s: %w", addr, err)
		}
		// Capped per address, and out of file descriptors it waits
		// rather than stops accepting for good.
		ln := netlimit.New(raw, opts.MaxConnectionsPerAddress, opts.Logger)
		b.lns = append(b.lns, ln)
		return ln, nil
	}
	var plain, secure, ws net.Listener
	if opts.Addr != "" {
		if plain, err = listen(opts.Addr); err != nil {
			return nil, err
		}
		b.addr = plain.Addr()
	}
	if opts.TLS != nil && opts.TLSAddr != "" {
		if secure, err = listen(opts.TLSAddr); err != nil {
			return nil, err
		}
		b.tlsAddr = secure.Addr()
	}
	if opts.WebSocketAddr != "" {
		if ws, err = listen(opts.WebSocketAddr); err != nil {
			return nil, err
		}
		b.wsAddr = ws.Addr()
	}
	if plain == nil && secure == nil && ws == nil {
		return nil, errors.New("broker: no listener: set an MQTT, MQTTS or WebSocket address")
	}

	caps := mqtt.NewDefaultServerCapabilities()
	// Acknowledgements do not echo the publish's properties (see cleanAck).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	caps.MaximumPacketSize = uint32(opts.MaxPacketBytes)
	if opts.MaxQueuedMessages > 0 {
		caps.MaximumClientWritesPending = int32(opts.MaxQueuedMessages)
	}
	if opts.MaxClients > 0 {
		caps.MaximumClients = int64(opts.MaxClients)
	}
	mochiLog := opts.Logger
	if mochiLog != nil {
		mochiLog = slog.New(quietHandler{mochiLog.Handler()})
	}
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true, // readings are forwarded to subscribers after they are stored
		Logger:       mochiLog,
	})
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keeper, _ := opts.Access.(Keeper)
	b.guard = &guard{access: opts.Access, keeper: keeper, maxTopic: opts.MaxTopicLength,
		admission: newAdmission(srv, opts.Access, opts.MaxTopicLength, opts.MaxConnectionsPerUser, log),
		retained:  &retained{maxMessage: noLimit(opts.MaxRetainedMessageBytes), maxTotal: noLimit(opts.MaxRetainedBytes), size: map[string]int{}},
		refusals:  newRefusals(log)}
	if opts.MaxMessagesPerSecond > 0 {
		// A burst of two seconds' worth lets a gateway send the states of
		// all its devices at once after a reconnect.
		b.guard.rate, b.guard.burst = rate.Limit(opts.MaxMessagesPerSecond), 2*opts.MaxMessagesPerSecond
	}
	if err := srv.AddHook(b.guard, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.srv = srv
	connect := cmp.Or(opts.ConnectTimeout, defaultConnectTimeout)
	var ls []listeners.Listener
	if plain != nil {
		ls = append(ls, listeners.NewNet("mqtt", deadlineListener{Listener: plain, timeout: opts.WriteTimeout, connect: connect, closes: &b.closes, gate: b.gate}))
	}
	if secure != nil {
		ls = append(ls, listeners.NewNet("mqtts", deadlineListener{Listener: secure, timeout: opts.WriteTimeout, connect: connect, tls: opts.TLS, closes: &b.closes, gate: b.gate}))
	}
	if ws != nil {
		ls = append(ls, newWebSocket(wsListener, ws, opts.TLS, opts.WebSocketOrigins, opts.WriteTimeout, connect, &b.closes, b.gate))
	}
	for _, l := range ls {
		if err := srv.AddListener(l); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
	}
	return b, nil
}

// noLimit turns a limit of 0 (none) into the largest int.
func noLimit(n int) int {
	if n <= 0 {
		return math.MaxInt
	}
	return n
}

// Server returns the mochi server, for hooks and inline publishing.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// Subscribe calls fn, on the publisher's goroutine, with each message
// published on a topic matching filter (and at once with the retained
// ones) until stop is called: the server's own subscription, which no
// client sees. fn must not block.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) (stop func(), err error) {
	id := int(b.inlineSubs.Add(1))
	err = b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
	if err != nil {
		return nil, fmt.Errorf("broker: subscribe to %s: %w", filter, err)
	}
	return func() { _ = b.srv.Unsubscribe(filter, id) }, nil
}

// AddHook adds a mochi hook; hooks must be added before Start.
func (b *Broker) AddHook(h mqtt.Hook, config any) error {
	if err := b.srv.AddHook(h, config); err != nil {
		return fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
	}
	return nil
}

// Start starts serving clients; it returns at once.
func (b *Broker) Start() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	return nil
}

// Addr returns the address of plain MQTT; nil when it is off.
func (b *Broker) Addr() net.Addr { return b.addr }

// TLSAddr returns the address of MQTT over TLS; nil when it is off.
func (b *Broker) TLSAddr() net.Addr { return b.tlsAddr }

// WebSocketAddr returns the address of MQTT over WebSocket; nil when it
// is off.
func (b *Broker) WebSocketAddr() net.Addr { return b.wsAddr }

// StopAccepting closes the listeners: no new client connects, and the
// clients already connected are served until Close.
func (b *Broker) StopAccepting() error {
	var errs []error
	for _, ln := range b.lns {
		errs = append(errs, ln.Close())
	}
	return errors.Join(errs...)
}

// Close stops listening and disconnects every client.
//
// mochi counts each connection in a WaitGroup that Close waits on, but adds
// to it on the connection's own goroutine: for a connection that ended
// without a lock shared with Close (one that never sent CONNECT), nothing
// orders that Add before the Wait. Reading closes, which every connection
// adds to as it closes, gives that order.
//
// mochi's own Close lists each listener's clients with
// Clients.GetByListener, which takes the client map's read lock twice (the
// second time through Len): a client whose connection ends at that moment
// asks for the write lock in between, and then all wait for one another
// for ever (mochi-mqtt/server#488, not fixed in v2.7.9). So the listeners
// are closed here first, with a closer that lists the clients under one
// read lock; the server's Close then finds them closed.
//
// mochi also counts a connection in that WaitGroup (Add) only on the
// connection's goroutine, so a connection accepted just before Close could
// be added while Close waits: the gate first refuses new connections and
// waits until mochi has counted those it was handed.
func (b *Broker) Close() error {
	b.gate.shutAndWait(2 * time.Second)
	b.closes.Load()
	b.srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range b.srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	return b.srv.Close()
}

var (
	clientsDesc     = prometheus.NewDesc("vatio_mqtt_clients_connected", "MQTT clients connected now.", nil, nil)
	messagesDesc    = prometheus.NewDesc("vatio_mqtt_messages_received_total", "MQTT messages received from clients.", nil, nil)
	throttledDesc   = prometheus.NewDesc("vatio_mqtt_messages_throttled_total", "MQTT messages held back because their client published faster than mqtt.max_messages_per_second.", nil, nil)
	longTopicsDesc  = prometheus.NewDesc("vatio_mqtt_topics_too_long_total", "Publishes and subscriptions refused for a topic longer than mqtt.max_topic_length.", nil, nil)
	connRefusedDesc = prometheus.NewDesc("vatio_mqtt_connections_refused_total",
		"MQTT connections refused, by reason: credentials, busy (too many password checks at once), will (a last will on a topic the client may not publish on), client_id_in_use (held by another user name), per_device_cap (mqtt.max_connections_per_device).", []string{"reason"}, nil)
	pubRefusedDesc = prometheus.NewDesc("vatio_mqtt_publishes_refused_total",
		"MQTT publishes refused, by reason: retained_too_large (mqtt.max_retained_message_bytes), retained_full (mqtt.max_retained_bytes), sys_topic (a client publishing on $SYS), not_allowed (a publish or subscription outside its user name's topics), server_topic (a client publishing on a topic only Vatio publishes on: Home Assistant discovery, states, availability).", []string{"reason"}, nil)
	retainedDesc = prometheus.NewDesc("vatio_mqtt_retained_bytes", "Bytes of retained messages held by the broker (topics, payloads and properties).", nil, nil)
)

// Describe implements prometheus.Collector.
func (b *Broker) Describe(ch chan<- *prometheus.Desc) {
	ch <- clientsDesc
	ch <- messagesDesc
	ch <- throttledDesc
	ch <- longTopicsDesc
	ch <- connRefusedDesc
	ch <- pubRefusedDesc
	ch <- retainedDesc
}

// Collect implements prometheus.Collector.
func (b *Broker) Collect(ch chan<- prometheus.Metric) {
	info := b.srv.Info.Clone()
	ch <- prometheus.MustNewConstMetric(clientsDesc, prometheus.GaugeValue, float64(info.ClientsConnected))
	ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.CounterValue, float64(info.MessagesReceived))
	ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, float64(b.guard.throttled.Load()))
	ch <- prometheus.MustNewConstMetric(longTopicsDesc, prometheus.CounterValue, float64(b.guard.longTopics.Load()))
	for reason, n := range b.guard.admission.refused {
		ch <- prometheus.MustNewConstMetric(connRefusedDesc, prometheus.CounterValue, float64(n.Load()), reason)
	}
	for reason, n := range b.guard.refusals.count {
		ch <- prometheus.MustNewConstMetric(pubRefusedDesc, prometheus.CounterValue, float64(n.Load()), reason)
	}
	ch <- prometheus.MustNewConstMetric(retainedDesc, prometheus.GaugeValue, float64(b.guard.retained.bytes()))
}

// deadlineListener gives every accepted connection the time connect to send
// its CONNECT (mochi sets the keepalive's deadline after it), then a write
// deadline on each write when timeout is not 0; with tls set, it serves
// TLS. closes counts the connections closed (see Broker.Close).
type deadlineListener struct {
	net.Listener
	timeout, connect time.Duration
	tls              *tls.Config
	closes           *atomic.Int64
	gate             *gate
}

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.gate.enter() {
		c.Close()
		return nil, net.ErrClosed
	}
	_ = c.SetDeadline(time.Now().Add(l.connect))
	if l.tls != nil {
		// No WriteWithin on TLS: a TLS write that times out breaks the
		// connection for good, even when it wrote nothing.
		return tlsConn{deadlineConn{Conn: tls.Server(c, l.tls), timeout: l.timeout, closes: l.closes, gated: gated{gate: l.gate, left: new(atomic.Bool)}}}, nil
	}
	return deadlineConn{Conn: c, timeout: l.timeout, closes: l.closes, gated: gated{gate: l.gate, left: new(atomic.Bool)}}, nil
}

// tlsConn is a deadlineConn over TLS, less WriteWithin: crypto/tls makes
// any write timeout permanent, so a short write is never safe there and
// acknowledgements take the blocking path (see hooks' acker).
type tlsConn struct{ net.Conn }

// gate holds Broker.Close until mochi has counted every connection it was
// handed (see Close). A connection is in it from its accept to its first
// read, which mochi makes right after counting it, or its close.
type gate struct {
	mu   sync.Mutex
	n    int
	shut bool
}

// enter admits a new connection, or reports false once the gate is shut.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut {
		return false
	}
	g.n++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	g.n--
	g.mu.Unlock()
}

// shutAndWait refuses new connections and waits, up to d, until those in
// the gate have left it.
func (g *gate) shutAndWait(d time.Duration) {
	deadline := time.Now().Add(d)
	g.mu.Lock()
	g.shut = true
	for g.n > 0 && time.Now().Before(deadline) {
		g.mu.Unlock()
		time.Sleep(time.Millisecond)
		g.mu.Lock()
	}
	g.mu.Unlock()
}

// gated is a connection's place in the gate, left once.
type gated struct {
	gate *gate
	left *atomic.Bool
}

func (g gated) leave() {
	// Load first: after the first, every read of the connection passes here.
	if !g.left.Load() && g.left.CompareAndSwap(false, true) {
		g.gate.leave()
	}
}

// deadlineConn sets a fresh write deadline before each write, so a write to a
// peer that has stopped reading fails after timeout instead of blocking. A
// write that times out closes the connection: part of a packet may have gone
// out, and every later write would wait out the deadline again. mochi then
// drops the client as it does any closed connection.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	closes  *atomic.Int64
	gated
}

// Read leaves the gate first: mochi has counted the connection by its
// first read.
func (c deadlineConn) Read(p []byte) (int, error) {
	c.gated.leave()
	return c.Conn.Read(p)
}

func (c deadlineConn) Write(p []byte) (int, error) {
	if c.timeout <= 0 {
		return c.Conn.Write(p)
	}
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.Conn.Close()
	}
	return n, err
}

// WriteWithin writes p, waiting at most wait (and the write timeout) for
// the socket to take it. A write that timed out leaves the connection as
// it was: having written nothing, for the caller to try again; cut short,
// mid-packet, for the caller to write the rest (with Write) before anyone
// else writes to it.
func (c deadlineConn) WriteWithin(p []byte, wait time.Duration) (int, error) {
	if c.timeout > 0 {
		wait = min(wait, c.timeout)
	}
	if err := c.Conn.SetWriteDeadline(time.Now().Add(wait)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if c.timeout <= 0 {
		_ = c.Conn.SetWriteDeadline(time.Time{})
	}
	return n, err
}

// SetDeadline sets only the read deadline (and clears the connect-time
// write deadline). mochi calls it on every packet it receives to enforce
// the keepalive, which is about what the client sends; letting it move the
// write deadline too would let a client that publishes but never reads
// block writes to it for ever.
func (c deadlineConn) SetDeadline(t time.Time) error {
	if c.timeout <= 0 {
		_ = c.Conn.SetWriteDeadline(time.Time{})
	}
	return c.Conn.SetReadDeadline(t)
}

func (c deadlineConn) Close() error {
	c.gated.leave()
	c.closes.Add(1)
	return c.Conn.Close()
}

// guard is the first hook: it admits connections (see admission), asks
// Access (when set) at each publish and subscription, refuses topics longer
// than maxTopic, keeps retained messages within their caps, answers every
// publish it refuses, slows a client publishing faster than its rate, and
// makes acknowledgements what MQTT 5 allows. The server's own (inline)
// client may do everything.
type guard struct {
	mqtt.HookBase
	access    Access
	keeper    Keeper // nil when access keeps no topics
	admission *admission
	retained  *retained
	refusals  *refusals
	maxTopic  int
	rate      rate.Limit
	burst     int
	limiters  sync.Map // *mqtt.Client -> *rate.Limiter
	// throttled counts messages held back for their client's rate;
	// longTopics topics refused for their length.
	throttled, longTopics atomic.Int64
}

func (*guard) ID() string { return "guard" }

func (*guard) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnDisconnect,
		mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnRetainMessage, mqtt.OnRetainedExpired, mqtt.OnWill:
		return true
	}
	return false
}

// OnConnect admits a client or refuses it with the CONNACK that says why:
// see admission.
func (g *guard) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Net.Inline {
		return nil
	}
	return g.admission.connect(cl, pk)
}

// OnConnectAuthenticate lets in every client that OnConnect admitted:
// mochi asks it after OnConnect, and refuses a client no hook lets in.
func (g *guard) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (g *guard) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if g.maxTopic > 0 && len(topic) > g.maxTopic {
		g.longTopics.Add(1)
		return false
	}
	if write && g.keeper != nil && g.keeper.Kept(topic) {
		return true // refused by OnPublish, which can answer without closing the connection
	}
	if g.access == nil || g.access.Allowed(string(cl.Properties.Username), topic, write) {
		return true
	}
	what := "subscription refused: not one of its user name's topics"
	if write {
		what = "publish refused: not one of its user name's topics"
	}
	g.refusals.note(cl, topic, refusedACL, what)
	return false
}

// OnPacketRead answers a QoS 1 or 2 publish on a $SYS topic, which mochi
// drops without a word before any other hook sees it, so that its client
// would resend it for ever: an MQTT 5 client is told 0x87 not authorized;
// an MQTT 3.1.1 client, which cannot be told, gets a plain
// acknowledgement. The message goes nowhere either way.
func (g *guard) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline || !isSys(pk.TopicName) {
		return pk, nil
	}
	g.refusals.note(cl, pk.TopicName, refusedSys, "publish refused: $SYS topics are the broker's")
	if pk.FixedHeader.Qos > 0 {
		code := packets.ErrNotAuthorized
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.CodeSuccess
		}
		refuse(cl, pk, code)
	}
	return pk, nil
}

// OnPacketEncode cleans every acknowledgement before it is written (see
// cleanAck).
func (g *guard) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet { return cleanAck(pk) }

// OnPublish refuses a client's retained message past the caps, then holds
// the client's message until its rate allows it. mochi reads each client
// on a goroutine of its own, so this slows that client alone (its socket
// then fills and it waits), and no message is dropped.
//
// A refused retained message is neither retained nor forwarded. An MQTT 5
// client is answered 0x97 quota exceeded (at QoS 1 or 2); an MQTT 3.1.1
// client, which has no way to hear a refusal, gets a plain acknowledgement
// so it does not resend the message for ever. Each refusal is counted and
// logged.
func (g *guard) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if g.keeper != nil && g.keeper.Kept(pk.TopicName) {
		g.refusals.note(cl, pk.TopicName, refusedKept, "publish refused: the topic is Vatio's own")
		switch {
		case pk.FixedHeader.Qos == 0:
			return pk, packets.ErrRejectPacket
		case cl.Properties.ProtocolVersion >= 5:
			refuse(cl, pk, packets.ErrNotAuthorized)
			return pk, packets.ErrRejectPacket
		default:
			return pk, packets.CodeSuccessIgnore // acknowledged, not forwarded nor retained
		}
	}
	if pk.FixedHeader.Retain {
		n := retainedSize(pk.TopicName, pk.Payload, pk.Properties)
		if reason := g.retained.refuses(pk.TopicName, n, len(pk.Payload) == 0); reason != "" {
			g.refusals.note(cl, pk.TopicName, reason, "retained message refused: past mqtt.max_retained_message_bytes or mqtt.max_retained_bytes")
			switch {
			case pk.FixedHeader.Qos == 0:
				return pk, packets.ErrRejectPacket
			case cl.Properties.ProtocolVersion >= 5:
				refuse(cl, pk, packets.ErrQuotaExceeded)
				return pk, packets.ErrRejectPacket
			default:
				return pk, packets.CodeSuccessIgnore // acknowledged, not forwarded nor retained
			}
		}
	}
	if g.rate <= 0 {
		return pk, nil
	}
	l, ok := g.limiters.Load(cl)
	if !ok {
		l, _ = g.limiters.LoadOrStore(cl, rate.NewLimiter(g.rate, g.burst))
	}
	if d := l.(*rate.Limiter).Reserve().Delay(); d > 0 {
		g.throttled.Add(1)
		time.Sleep(d)
	}
	return pk, nil
}

// OnWill keeps a retained last will within the caps: past them it is
// still published, but not retained.
func (g *guard) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if !will.Retain || cl.Net.Inline {
		return will, nil
	}
	n := retainedSize(will.TopicName, will.Payload, packets.Properties{User: will.User})
	if reason := g.retained.refuses(will.TopicName, n, len(will.Payload) == 0); reason != "" {
		g.refusals.note(cl, will.TopicName, reason, "last will not retained: past mqtt.max_retained_message_bytes or mqtt.max_retained_bytes")
		will.Retain = false
	}
	return will, nil
}

// OnRetainMessage counts what mochi retained (r is 1 for a message kept,
// otherwise the topic's message was cleared).
func (g *guard) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, r int64) {
	n := 0
	if r > 0 && len(pk.Payload) > 0 {
		n = retainedSize(pk.TopicName, pk.Payload, pk.Properties)
	}
	g.retained.set(pk.TopicName, n)
}

// OnRetainedExpired forgets a retained message that expired.
func (g *guard) OnRetainedExpired(topic string) { g.retained.set(topic, 0) }

func (g *guard) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	g.limiters.Delete(cl)
	g.admission.disconnected(cl)
}
