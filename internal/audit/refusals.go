package audit

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The refusals of requests from outside: anyone who can reach the port can
// cause them, as fast as they can send. Each is stored in the audit log and
// written to the process log with the message given here (for whoever
// watches it: journalctl, a log collector, fail2ban), both at a bounded
// rate (see gate); one with no message is not written to the process log
// (the broker logs refused CONNECTs itself).
var refusalActions = map[string]string{
	"login_failed":  "log-in refused",
	"setup_refused": "setup refused",
	"token_refused": "API token refused",
	"mqtt_refused":  "",
	// A signed-in user's request its role may not make: any viewer can
	// send them as fast as refused tokens.
	"forbidden": "",
}

// Defaults of the process log's gate: a few lines a minute per address,
// for a few addresses, whatever comes.
const (
	refusalBurst    = 3
	refusalAddrs    = 10
	refusalInterval = time.Minute
)

// Defaults of the audit log's gate: a few more than the process log's, so
// the Access page shows each address's first tries in full.
const (
	storedBurst    = 5
	storedAddrs    = 20
	storedInterval = time.Minute
)

// gate lets through at most burst refusals per client address, for at most
// addrs addresses, each interval, so that a flood of wrong passwords or
// tokens cannot fill a log (or the disk under it), nor one address's flood
// hide another's refusals. Those held back are counted, and held is called
// with their count when their interval ends, naming the addresses that had
// the most. It is safe for concurrent use.
type gate struct {
	burst    int
	addrs    int
	interval time.Duration
	// held is told how many were held back and from where most
	// ("198.51.100.7 (120), 192.0.2.1 (3)"); g.mu is held.
	onHeld func(count int, top string)

	mu    sync.Mutex
	start time.Time // of the interval under way
	// passed counts the refusals let through in it per address (at most
	// addrs of them), held those held back per address (at most addrs of
	// them too: the others count in heldAll only).
	passed  map[string]int
	held    map[string]int
	heldAll int
	summary *time.Timer // calls onHeld at the interval's end
	closed  bool
}

// pass reports whether a refusal from addr has room in the interval under
// way, and counts it held when it has not.
func (g *gate) pass(addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if g.passed == nil {
		g.passed, g.held = map[string]int{}, map[string]int{}
	}
	if now.Sub(g.start) >= g.interval && g.heldAll == 0 {
		g.start = now
		clear(g.passed)
	}
	n, seen := g.passed[addr]
	if n >= g.burst || !seen && len(g.passed) >= g.addrs {
		g.heldAll++
		if _, ok := g.held[addr]; ok || len(g.held) < g.addrs {
			g.held[addr]++
		}
		if g.summary == nil && !g.closed {
			g.summary = time.AfterFunc(g.start.Add(g.interval).Sub(now), g.flush)
		}
		return false
	}
	g.passed[addr] = n + 1
	return true
}

// flush reports how many refusals were held back and starts a new
// interval.
func (g *gate) flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.flushLocked()
}

func (g *gate) flushLocked() {
	if g.heldAll > 0 {
		g.onHeld(g.heldAll, top(g.held, 3))
	}
	g.start, g.heldAll = time.Now(), 0
	if g.summary != nil {
		g.summary.Stop()
		g.summary = nil
	}
	clear(g.passed)
	clear(g.held)
}

// close reports what is held back now rather than at the interval's end,
// and reports nothing after.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.flushLocked()
	g.closed = true
}

// logRefusal writes e, a refusal, to logger: the client's address, what it
// asked for and the user name typed (never a password or a token's secret:
// entries hold neither), each clipped.
func logRefusal(logger *slog.Logger, msg string, e Entry) {
	attrs := []any{slog.String("addr", clip(e.Addr)), slog.String("target", clip(e.Target))}
	if e.Who != "" {
		attrs = append(attrs, slog.String("user", clip(e.Who)))
	}
	if e.Status != 0 {
		attrs = append(attrs, slog.Int("status", e.Status))
	}
	if e.Detail != "" {
		attrs = append(attrs, slog.String("detail", clip(e.Detail)))
	}
	logger.Warn(msg, attrs...)
}

// top names the n addresses with the most refusals in counts, with their
// counts, most first: "198.51.100.7 (120), 192.0.2.1 (3)".
func top(counts map[string]int, n int) string {
	addrs := slices.Collect(maps.Keys(counts))
	slices.SortFunc(addrs, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	var parts []string
	for _, a := range addrs[:min(n, len(addrs))] {
		parts = append(parts, fmt.Sprintf("%s (%d)", clip(a), counts[a]))
	}
	return strings.Join(parts, ", ")
}

// clip bounds what a client typed (a user name) in a log line.
func clip(s string) string { return clipTo(s, 100) }

// clipTo cuts s to at most max bytes, at a character's start, marking the
// cut with "…".
func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
