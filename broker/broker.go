// Package broker runs the embedded MQTT broker (mochi-mqtt v2) that meters
// connect to. It owns the listener and the server's lifecycle; what happens
// to published readings is decided by hooks added with AddHook.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Broker.
type Options struct {
	// Addr is the TCP address to listen on, e.g. ":1883"; port 0 picks a free port.
	Addr string
	// MaxPacketBytes is the largest packet a client may send.
	MaxPacketBytes int
	// MaxQueuedMessages is how many messages may wait to be sent to one
	// subscriber; past that they are dropped for it. Each client's queue is
	// allocated at this size, so it sets the memory a connection costs.
	MaxQueuedMessages int
	// WriteTimeout bounds every write to a client connection: a client that
	// stops reading is disconnected rather than stalling the writer.
	WriteTimeout time.Duration
	// Logger receives the broker's logs.
	Logger *slog.Logger
	// Access decides who may connect and what each may publish and
	// subscribe to; nil lets everyone do everything.
	Access Access
}

// Access decides who may use the broker.
type Access interface {
	// Connect reports whether a client may connect with user and password
	// (both empty without credentials) from the remote address.
	Connect(user string, password []byte, remote string) bool
	// Allowed reports whether client user may publish on (write) or
	// subscribe to topic.
	Allowed(user, topic string, write bool) bool
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv *mqtt.Server
	ln  net.Listener
}

// New listens on opts.Addr and prepares the server; Start serves it.
func New(opts Options) (*Broker, error) {
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", opts.Addr, err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(opts.MaxPacketBytes)
	if opts.MaxQueuedMessages > 0 {
		caps.MaximumClientWritesPending = int32(opts.MaxQueuedMessages)
	}
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true, // readings are forwarded to subscribers after they are stored
		Logger:       opts.Logger,
	})
	// Every client may connect and publish until device credentials and
	// topic ACLs exist.
	var hook mqtt.Hook = new(allowAll)
	if opts.Access != nil {
		hook = &accessHook{access: opts.Access}
	}
	if err := srv.AddHook(hook, nil); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if opts.WriteTimeout > 0 {
		ln = deadlineListener{Listener: ln, timeout: opts.WriteTimeout}
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	return &Broker{srv: srv, ln: ln}, nil
}

// Server returns the mochi server, for hooks and inline publishing.
func (b *Broker) Server() *mqtt.Server { return b.srv }

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

// Addr returns the address the broker listens on.
func (b *Broker) Addr() net.Addr { return b.ln.Addr() }

// StopAccepting closes the listener: no new client connects, and the
// clients already connected are served until Close.
func (b *Broker) StopAccepting() error { return b.ln.Close() }

// Close stops listening and disconnects every client.
func (b *Broker) Close() error { return b.srv.Close() }

var (
	clientsDesc  = prometheus.NewDesc("vatio_mqtt_clients_connected", "MQTT clients connected now.", nil, nil)
	messagesDesc = prometheus.NewDesc("vatio_mqtt_messages_received_total", "MQTT messages received from clients.", nil, nil)
)

// Describe implements prometheus.Collector.
func (b *Broker) Describe(ch chan<- *prometheus.Desc) {
	ch <- clientsDesc
	ch <- messagesDesc
}

// Collect implements prometheus.Collector.
func (b *Broker) Collect(ch chan<- prometheus.Metric) {
	info := b.srv.Info.Clone()
	ch <- prometheus.MustNewConstMetric(clientsDesc, prometheus.GaugeValue, float64(info.ClientsConnected))
	ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.CounterValue, float64(info.MessagesReceived))
}

// deadlineListener gives every accepted connection a write deadline.
type deadlineListener struct {
	net.Listener
	timeout time.Duration
}

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return deadlineConn{Conn: c, timeout: l.timeout}, nil
}

// deadlineConn sets a fresh write deadline before each write, so a write to a
// peer that has stopped reading fails after timeout instead of blocking. A
// write that times out closes the connection: part of a packet may have gone
// out, and every later write would wait out the deadline again. mochi then
// drops the client as it does any closed connection.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.Conn.Close()
	}
	return n, err
}

// SetDeadline sets only the read deadline. mochi calls it on every packet it
// receives to enforce the keepalive, which is about what the client sends;
// letting it move the write deadline too would let a client that publishes
// but never reads block writes to it for ever.
func (c deadlineConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// allowAll lets every client connect, publish and subscribe.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// accessHook asks an Access at each connect and each publish and
// subscription; the server's own (inline) client may do everything.
type accessHook struct {
	mqtt.HookBase
	access Access
}

func (*accessHook) ID() string { return "access" }

func (*accessHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *accessHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.Net.Inline {
		return true
	}
	return h.access.Connect(string(pk.Connect.Username), pk.Connect.Password, cl.Net.Remote)
}

func (h *accessHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	return h.access.Allowed(string(cl.Properties.Username), topic, write)
}
