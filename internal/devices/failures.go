package devices

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/internal/auth"
)

// ErrLocked is a CONNECT with credentials from an address that sent too
// many wrong ones: refused without a password check until its lock-out
// ends. Devices whose password was checked right before still connect
// (their check is cached); only new checks wait.
var ErrLocked = errors.New("devices: too many failed connections from this address: try again later")

// Failed CONNECTs per address: after maxFailures in a row, the address is
// locked out for lockout, doubling on each further failure up to
// maxLockout. maxTracked bounds the addresses remembered.
const (
	maxFailures = 10
	lockout     = time.Minute
	maxLockout  = time.Hour
	maxTracked  = 100000
	// lockedDelay is how long a locked-out address waits for its refusal.
	lockedDelay = time.Second
)

// failures are the failed CONNECTs of each address. They keep a flood of
// wrong passwords (or made-up device names) from one address from taking
// the password checks that web log-ins and other devices share.
type failures struct {
	mu sync.Mutex
	by map[string]*failure
}

type failure struct {
	n     int
	until time.Time
}

// locked reports whether ip is locked out now ("" never is: a WebSocket
// client's address is not known).
func (f *failures) locked(ip string, now time.Time) bool {
	if ip == "" {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.by[ip]
	return x != nil && now.Before(x.until)
}

// failed counts a failed CONNECT of ip.
func (f *failures) failed(ip string, now time.Time) {
	if ip == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.by == nil {
		f.by = map[string]*failure{}
	}
	x := f.by[ip]
	if x == nil {
		if len(f.by) >= maxTracked {
			for k, y := range f.by { // forget what holds no lock-out
				if !now.Before(y.until) {
					delete(f.by, k)
				}
			}
		}
		x = &failure{}
		f.by[ip] = x
	}
	x.n++
	if x.n >= maxFailures {
		x.until = now.Add(min(lockout<<min(x.n-maxFailures, 10), maxLockout))
	}
}

// succeeded forgets ip's failures.
func (f *failures) succeeded(ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.by, ip)
}

func hostOf(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// nobodysHash is checked for a device name that does not exist, so that a
// wrong name takes as long as a wrong password and tells nothing of which
// devices exist.
var nobodysHash = sync.OnceValue(func() string { return auth.HashPassword("not the password of any device") })
