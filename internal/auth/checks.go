package auth

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// ErrBusy is a password check refused because as many as PasswordChecks
// allows were already running: the caller answers 429 (HTTP) or CONNACK
// "server busy" (MQTT) and the client tries again later.
var ErrBusy = errors.New("auth: too many password checks at once: try again in a moment")

// DefaultCheckWait is how long a password check waits for a free slot
// before it is refused with ErrBusy.
const DefaultCheckWait = time.Second

// PasswordChecks bounds how many password checks run at once. Each argon2id
// check takes 19 MiB and tens of milliseconds of a core, so a flood of
// wrong log-ins or MQTT CONNECTs would otherwise take gigabytes and starve
// the broker. Web log-ins and device CONNECTs share one PasswordChecks. A
// nil *PasswordChecks bounds nothing. It is safe for concurrent use.
type PasswordChecks struct {
	slots chan struct{}
	wait  time.Duration
	// refused counts checks refused with ErrBusy.
	refused atomic.Int64
}

// NewPasswordChecks returns a bound of n checks at once (0: half the
// cores, at least one), each waiting at most wait (0: DefaultCheckWait)
// for a slot. Half, not all: with every core on argon2id, a flood of wrong
// passwords delayed connected meters' PUBACKs by 80 ms at p99 on two cores;
// with one core left to serve them, by 30 ms (BenchmarkConnectFlood).
func NewPasswordChecks(n int, wait time.Duration) *PasswordChecks {
	if n <= 0 {
		n = max(1, runtime.NumCPU()/2)
	}
	if wait <= 0 {
		wait = DefaultCheckWait
	}
	return &PasswordChecks{slots: make(chan struct{}, n), wait: wait}
}

// Check reports whether password matches hash (a HashPassword hash), once a
// slot is free; ErrBusy when none was within the wait.
func (p *PasswordChecks) Check(hash, password string) (bool, error) {
	if p == nil {
		return CheckPassword(hash, password), nil
	}
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(p.wait)
		defer t.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-t.C:
			p.refused.Add(1)
			return false, ErrBusy
		}
	}
	defer func() { <-p.slots }()
	return CheckPassword(hash, password), nil
}

// Refused returns how many checks were refused with ErrBusy.
func (p *PasswordChecks) Refused() int64 {
	if p == nil {
		return 0
	}
	return p.refused.Load()
}
