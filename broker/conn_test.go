package broker

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestShortWritesOnPlainTCPOnly checks which accepted connections offer
// WriteWithin, the acknowledgements' short write: plain TCP does, TLS must
// not, since crypto/tls makes any write timeout permanent (a TLS client
// whose socket filled for a moment lost its connection to a bad record).
func TestShortWritesOnPlainTCPOnly(t *testing.T) {
	type shortWriter interface {
		WriteWithin([]byte, time.Duration) (int, error)
	}
	for _, tc := range []struct {
		name  string
		tls   *tls.Config
		short bool
	}{{"plain", nil, true}, {"tls", &tls.Config{}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			l := deadlineListener{Listener: ln, timeout: time.Second, connect: time.Second, tls: tc.tls, closes: new(atomic.Int64), gate: &gate{}}
			dialed, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer dialed.Close()
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, short := c.(shortWriter); short != tc.short {
				t.Errorf("%s connection %T offers WriteWithin: %v, want %v", tc.name, c, short, tc.short)
			}
		})
	}
}
