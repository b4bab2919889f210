// Package netlimit guards a TCP listener against a client that opens
// connections without end: it caps the connections open from one address
// and keeps accepting when the process runs out of file descriptors,
// where a bare listener's Accept fails and the server behind it stops for
// good. It knows nothing of the protocols served.
package netlimit

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Listener is a net.Listener with a cap on the connections open from one
// address. It is safe for concurrent use.
type Listener struct {
	net.Listener
	perAddr int
	log     *slog.Logger

	mu   sync.Mutex
	open map[string]int
	// refused counts connections closed for their address's cap;
	// retried, accepts retried after a lack of file descriptors.
	refused, retried atomic.Int64
	lastLog          time.Time
}

// New wraps ln: at most perAddr connections open at once from one IP
// address (0: no cap); a connection past it is closed at once, before a
// byte is read. Accept errors that pass (too many open files, a
// connection aborted before it was accepted) are waited out, not
// returned.
func New(ln net.Listener, perAddr int, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, perAddr: perAddr, log: log, open: map[string]int{}}
}

// Accept waits for the next connection within its address's cap.
func (l *Listener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !passing(err) {
				return nil, err
			}
			// Out of file descriptors: wait for some to be closed, as
			// net/http's server does, rather than stop serving.
			l.retried.Add(1)
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			l.warn("accept failed: retrying", slog.Any("error", err), slog.Duration("in", wait))
			time.Sleep(wait)
			continue
		}
		wait = 0
		if l.perAddr <= 0 {
			return c, nil
		}
		ip := addrIP(c.RemoteAddr())
		l.mu.Lock()
		if l.open[ip] >= l.perAddr {
			l.mu.Unlock()
			l.refused.Add(1)
			l.warn("connection refused: too many open from one address", slog.String("remote", ip), slog.Int("cap", l.perAddr))
			c.Close()
			continue
		}
		l.open[ip]++
		l.mu.Unlock()
		return &conn{Conn: c, l: l, ip: ip}, nil
	}
}

// Refused returns how many connections were closed for their address's
// cap; Retried how many accepts failed for want of file descriptors.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Retried returns how many accepts failed and were retried.
func (l *Listener) Retried() int64 { return l.retried.Load() }

// warn logs at most once a second: a flood must not flood the log too.
func (l *Listener) warn(msg string, attrs ...any) {
	l.mu.Lock()
	now := time.Now()
	ok := now.Sub(l.lastLog) >= time.Second
	if ok {
		l.lastLog = now
	}
	l.mu.Unlock()
	if ok {
		l.log.Warn(msg, attrs...)
	}
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

// passing reports whether an Accept error is one to wait out.
func passing(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}

func addrIP(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn gives its address's slot back when closed, once.
type conn struct {
	net.Conn
	l    *Listener
	ip   string
	done atomic.Bool
}

func (c *conn) Close() error {
	if c.done.CompareAndSwap(false, true) {
		c.l.release(c.ip)
	}
	return c.Conn.Close()
}
