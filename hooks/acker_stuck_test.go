package hooks

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestAckerDisconnectsClientMochiNeverReleases: mochi writes to a client
// holding its lock; with mqtt.write_timeout 0, a client that stops reading
// keeps mochi's write, and the lock, forever. Such a client must be judged
// stuck after ackStuckAfter and disconnected (which also ends mochi's
// write), like one whose socket is full: its PUBACKs would otherwise wait
// forever, never piling past ackMaxPending, which the client's receive
// maximum keeps them from.
func TestAckerDisconnectsClientMochiNeverReleases(t *testing.T) {
	_, conn := tcpPair(t, net.Dialer{})
	srv := mqtt.New(&mqtt.Options{})
	cl := srv.NewClient(conn, "tcp", "stuck", false)
	if cl.Closed() {
		t.Fatal("a new client is closed")
	}
	cl.Lock() // mochi's write to the client, blocked: the peer does not read
	a := newAcker(srv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer a.close()
	for id := uint16(1); id <= 10; id++ {
		a.write(cl, []byte{0x40, 2, byte(id >> 8), byte(id)})
	}
	deadline := time.Now().Add(ackStuckAfter + 2*time.Second)
	for !cl.Closed() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !cl.Closed() {
		t.Errorf("a client whose lock mochi held for %s is still connected, its acknowledgements pending: %v", ackStuckAfter+2*time.Second, a.hasPending(cl))
	}
}

// TestAckerFinishesAWriteCutShort: a socket that takes part of a client's
// acknowledgements within the short wait (its peer reads slowly) leaves the
// stream mid-packet; the rest follows before anything else, and the client
// stays connected, its acknowledgements whole and in order.
func TestAckerFinishesAWriteCutShort(t *testing.T) {
	peer, conn := tcpPair(t, net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}})
	conn.(*net.TCPConn).SetWriteBuffer(4096)
	srv := mqtt.New(&mqtt.Options{})
	cl := srv.NewClient(conn, "tcp", "slow", false)
	a := newAcker(srv, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer a.close()
	// More than the sockets hold: the first write is cut short.
	const n = 16000
	var want []byte
	for id := range n {
		want = append(want, 0x40, 2, byte((id+1)>>8), byte(id+1))
	}
	a.write(cl, want)
	got := make([]byte, len(want))
	peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("read the acknowledgements: %v (client closed: %v)", err, cl.Closed())
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the acknowledgements arrived changed")
	}
	if cl.Closed() {
		t.Error("the client was disconnected for a write cut short")
	}
}

// tcpPair returns both ends of a loopback TCP connection, dialed with d,
// closed at the test's end.
func tcpPair(t *testing.T, d net.Dialer) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err = d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	accepted, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	return dialed, accepted
}
