package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mqttPacket encodes a packet of type and flags with body.
func mqttPacket(typeFlags byte, body []byte) []byte {
	b := []byte{typeFlags}
	n := len(body)
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			break
		}
	}
	return append(b, body...)
}

func mqttString(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// TestStuckClientHoldsUpNobody connects a client that subscribes to large
// messages and never reads them, so that the broker's write to it blocks
// holding the client's lock, and that publishes QoS 1 readings meanwhile;
// beside it, 100 Paho meters publish QoS 1 once a second. Theirs keep
// coming as fast as before: the acknowledgements are written by one
// goroutine, which never waits for the stuck client's lock or socket (a
// write to it waits up to mqtt.write_timeout, 10 s).
func TestStuckClientHoldsUpNobody(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("mqtt:\n  max_connections_per_address: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, mqttAddr, _, logs := childWith(t, t.TempDir(), cfg)

	// The stuck client: a tiny receive buffer, never read after SUBACK.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
	}}
	stuck, err := d.Dial("tcp", mqttAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	connect := slices.Concat(mqttString("MQTT"), []byte{4, 2, 0, 60}, mqttString("stuck-client"))
	subscribe := slices.Concat([]byte{0, 1}, mqttString("big/#"), []byte{0})
	if _, err := stuck.Write(append(mqttPacket(0x10, connect), mqttPacket(0x82, subscribe)...)); err != nil {
		t.Fatal(err)
	}
	answers := make([]byte, 4+5)
	stuck.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(stuck, answers); err != nil || answers[0] != 0x20 || answers[3] != 0 || answers[4] != 0x90 {
		t.Fatalf("CONNACK and SUBACK %x, %v", answers, err)
	}
	// 8 MB for it, more than the sockets hold: the broker's write blocks.
	big := connectMeters(t, mqttAddr, "big", 1)[0]
	defer big.Disconnect(0)
	payload := make([]byte, 900<<10)
	for range 10 {
		if tok := big.Publish("big/x", 0, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish big: %v", tok.Error())
		}
	}
	// The broker's write to it is blocked once its socket holds bytes it
	// could not send.
	for deadline := time.Now().Add(10 * time.Second); sendQueue(t, mqttAddr, stuck.LocalAddr().String()) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the broker's socket towards the stuck client never filled")
		}
	}
	// Its own readings, to be acknowledged while the broker's write
	// holds its lock.
	go func() {
		for id := uint16(1); id <= 50; id++ {
			body := slices.Concat(mqttString("energy/consumption/stuck"), binary.BigEndian.AppendUint16(nil, id), []byte("1"))
			stuck.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := stuck.Write(mqttPacket(0x32, body)); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	clients := connectMeters(t, mqttAddr, "normal", 100)
	defer func() {
		for _, c := range clients {
			c.Disconnect(0)
		}
	}()
	var mu sync.Mutex
	var waits []time.Duration
	failed := 0
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			for n := range 5 {
				begin := time.Now()
				tok := c.Publish(fmt.Sprintf("energy/consumption/n%03d", i), 1, false, fmt.Sprint(100+n))
				ok := tok.WaitTimeout(30*time.Second) && tok.Error() == nil
				mu.Lock()
				if ok {
					waits = append(waits, time.Since(begin))
				} else {
					failed++
				}
				mu.Unlock()
				time.Sleep(time.Second - time.Since(begin)%time.Second)
			}
		})
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d PUBACKs of the normal clients never came\n%s", failed, logs)
	}
	slices.Sort(waits)
	worst := waits[len(waits)-1]
	// The write timeout of a client's socket is 10 s: a PUBACK that waited
	// behind the stuck client would wait that long.
	if worst > 2*time.Second {
		t.Errorf("a normal client's PUBACK took %s (median %s): it waited behind the stuck client", worst, waits[len(waits)/2])
	}
	t.Logf("normal clients' PUBACK waits: median %s, worst %s", waits[len(waits)/2], worst)
}

// sendQueue returns the bytes the TCP socket from local to remote (IPv4
// host:port) holds unsent, as /proc/net/tcp says; 0 when there is none.
func sendQueue(t *testing.T, local, remote string) int {
	t.Helper()
	hex := func(addr string) string {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().Is4() {
			t.Fatalf("not an IPv4 address: %s", addr)
		}
		b := ap.Addr().As4()
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", b[3], b[2], b[1], b[0], ap.Port())
	}
	l, r := hex(local), hex(remote)
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 4 && f[1] == l && f[2] == r {
			tx, _, _ := strings.Cut(f[4], ":")
			n, _ := strconv.ParseInt(tx, 16, 64)
			return int(n)
		}
	}
	return 0
}
