package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// webSocket serves MQTT over WebSocket (the "mqtt" subprotocol) on a
// listener of our own, so that it listens on port 0 in tests, checks the
// Origin of browsers and bounds writes; mochi's own lets every origin in.
type webSocket struct {
	id        string
	ln        net.Listener
	tls       *tls.Config
	origins   []string
	timeout   time.Duration
	connect   time.Duration
	closes    *atomic.Int64
	gate      *gate
	srv       *http.Server
	log       *slog.Logger
	establish listeners.EstablishFn
	upgrader  websocket.Upgrader
	closeOnce sync.Once
}

func newWebSocket(id string, ln net.Listener, tc *tls.Config, origins []string, timeout, connect time.Duration, closes *atomic.Int64, g *gate) *webSocket {
	l := &webSocket{id: id, ln: ln, tls: tc, origins: origins, timeout: timeout, connect: connect, closes: closes, gate: g}
	l.upgrader = websocket.Upgrader{Subprotocols: []string{"mqtt"}, CheckOrigin: l.checkOrigin,
		HandshakeTimeout: connect}
	return l
}

func (l *webSocket) ID() string      { return l.id }
func (l *webSocket) Address() string { return l.ln.Addr().String() }

func (l *webSocket) Protocol() string {
	if l.tls != nil {
		return "wss"
	}
	return "ws"
}

func (l *webSocket) Init(log *slog.Logger) error {
	l.log = log
	// Every timeout is the connect timeout: a request that is no upgrade
	// must not keep its socket open (an upgraded one is the client's).
	l.srv = &http.Server{Handler: http.HandlerFunc(l.handle), ReadHeaderTimeout: l.connect, ReadTimeout: l.connect,
		IdleTimeout: l.connect,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return nil
}

func (l *webSocket) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	ln := l.ln
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		l.log.Error("websocket listener stopped", slog.Any("error", err))
	}
}

func (l *webSocket) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = l.srv.Shutdown(ctx) // hijacked connections are not waited for
	})
	closeClients(l.id)
}

// checkOrigin lets a browser page open the WebSocket only from the
// WebSocket's own origin or one of the configured origins: otherwise any
// web page a user visits could reach the broker from their browser.
func (l *webSocket) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	if slices.Contains(l.origins, "*") {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	norm := strings.ToLower(u.Scheme + "://" + u.Host)
	return slices.ContainsFunc(l.origins, func(o string) bool { return strings.ToLower(strings.TrimSuffix(o, "/")) == norm })
}

func (l *webSocket) handle(w http.ResponseWriter, r *http.Request) {
	c, err := l.upgrader.Upgrade(w, r, nil) // answers 403 for a foreign origin
	if err != nil {
		l.log.Debug("websocket upgrade refused", slog.String("remote", r.RemoteAddr),
			slog.String("origin", r.Header.Get("Origin")), slog.Any("error", err))
		return
	}
	defer c.Close()
	if !l.gate.enter() {
		return // the broker is closing
	}
	g := gated{gate: l.gate, left: new(atomic.Bool)}
	defer g.leave()
	_ = c.SetReadDeadline(time.Now().Add(l.connect)) // until CONNECT; mochi then keeps the keepalive's
	if err := l.establish(l.id, &wsConn{Conn: c.NetConn(), ws: c, timeout: l.timeout, closes: l.closes, gated: g}); err != nil {
		l.log.Debug("websocket client ended", slog.Any("error", err))
	}
}

// wsConn is a WebSocket as the byte stream mochi reads and writes: each
// binary message carries some of the stream.
type wsConn struct {
	net.Conn
	ws      *websocket.Conn
	timeout time.Duration
	closes  *atomic.Int64
	r       io.Reader
	gated
}

func (c *wsConn) Close() error {
	c.gated.leave()
	c.closes.Add(1)
	return c.Conn.Close()
}

// Read leaves the gate first, as deadlineConn's does.
func (c *wsConn) Read(p []byte) (int, error) {
	c.gated.leave()
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if c.timeout > 0 {
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		c.Conn.Close()
		return 0, err
	}
	return len(p), nil
}

// SetDeadline moves only the read deadline, as deadlineConn does.
func (c *wsConn) SetDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }
