package netlimit_test

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/netlimit"
)

// serve accepts on l and holds every connection open, echoing nothing.
func serve(l net.Listener) chan net.Conn {
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

// closedByServer reports whether the server closed c (a read ends).
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err == io.EOF || err != nil
}

// TestPerAddressCap: three connections from one address are held, a
// fourth is closed at once; once one of the three is closed, a new one is
// held again.
func TestPerAddressCap(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := netlimit.New(raw, 3, nil)
	defer l.Close()
	accepted := serve(l)
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	var held []net.Conn
	for range 3 {
		held = append(held, <-accepted)
	}
	if !closedByServer(t, conns[3]) {
		t.Fatal("the fourth connection from one address was not closed")
	}
	for i := range 3 {
		if closedByServer(t, conns[i]) {
			t.Fatalf("connection %d was closed", i)
		}
	}
	if l.Refused() != 1 {
		t.Errorf("Refused() = %d, want 1", l.Refused())
	}
	held[0].Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection after one was closed was not accepted")
	}
	if closedByServer(t, c) {
		t.Error("a connection after one was closed was closed too")
	}
}

// flaky fails Accept with EMFILE a few times, as a process out of file
// descriptors sees it, before it accepts.
type flaky struct {
	net.Listener
	fails int
}

func (f *flaky) Accept() (net.Conn, error) {
	if f.fails > 0 {
		f.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return f.Listener.Accept()
}

// TestOutOfFileDescriptorsIsWaitedOut: Accept waits EMFILE out and then
// hands over the connection, where a bare listener would fail and its
// server stop for good; closing the listener still ends Accept.
func TestOutOfFileDescriptorsIsWaitedOut(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := netlimit.New(&flaky{Listener: raw, fails: 3}, 0, nil)
	go func() {
		if c, err := net.Dial("tcp", raw.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept: %v, want the connection after the EMFILEs", err)
	}
	c.Close()
	if l.Retried() != 3 {
		t.Errorf("Retried() = %d, want 3", l.Retried())
	}
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Error("Accept on a closed listener succeeded")
	}
}
