package automation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"syscall"
	"time"
)

// Egress decides which addresses the webhooks of rule actions may reach.
// Rules are written through the API by operators, so an action's URL is
// not trusted to point anywhere: never at link-local addresses (the cloud
// metadata service at 169.254.169.254 among them), unspecified or
// multicast ones, nor at Vatio's own listeners (which would let a rule
// drive Vatio's API or broker as itself); at this machine's loopback only
// when AllowLoopback is set. The check is made on the address actually
// dialed, after DNS, on every redirect, so a name that resolves to a
// refused address is refused too.
type Egress struct {
	// AllowLoopback lets actions reach services on this machine's
	// loopback (127.0.0.0/8, ::1), other than Vatio's own ports.
	AllowLoopback bool
	// OwnPorts are the TCP ports Vatio listens on (HTTP, MQTT...): never
	// reached on a loopback or unspecified address, nor on this machine's
	// own addresses.
	OwnPorts []int
}

// ErrRefusedTarget is an action's address that Egress refuses.
var ErrRefusedTarget = errors.New("refused target")

// CheckURL reports what is wrong with an action's URL as far as can be
// told without resolving its host: its scheme, and a literal address.
func (e *Egress) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url: %q: only http and https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("url: no host")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		port := 80
		if u.Scheme == "https" {
			port = 443
		}
		if p := u.Port(); p != "" {
			fmt.Sscan(p, &port)
		}
		return e.check(ip, port, nil)
	}
	return nil
}

// check refuses ip:port; local are this machine's own addresses (nil:
// looked up).
func (e *Egress) check(ip netip.Addr, port int, local []netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return fmt.Errorf("%w: %s is a link-local address (a cloud metadata service, a router's own)", ErrRefusedTarget, ip)
	case ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: %s is not a host's address", ErrRefusedTarget, ip)
	case ip.IsLoopback() && slices.Contains(e.OwnPorts, port):
		return fmt.Errorf("%w: %s is Vatio's own listener", ErrRefusedTarget, netip.AddrPortFrom(ip, uint16(port)))
	case ip.IsLoopback() && !e.AllowLoopback:
		return fmt.Errorf("%w: %s is this machine's loopback: allow it with alerts.actions_allow_loopback", ErrRefusedTarget, ip)
	}
	if slices.Contains(e.OwnPorts, port) {
		if local == nil {
			local = localAddrs()
		}
		if slices.Contains(local, ip) {
			return fmt.Errorf("%w: %s is Vatio's own listener", ErrRefusedTarget, netip.AddrPortFrom(ip, uint16(port)))
		}
	}
	return nil
}

// localAddrs returns this machine's interface addresses.
func localAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// Client returns an HTTP client whose every connection, redirects
// included, is checked against e once its host is resolved. It uses no
// proxy from the environment: the check is on the address dialed.
func (e *Egress) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Control: func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrRefusedTarget, address, err)
		}
		return e.check(ap.Addr(), int(ap.Port()), nil)
	}}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout: timeout,
		MaxIdleConns:        4,
		IdleConnTimeout:     time.Minute,
	}}
}
