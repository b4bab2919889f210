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

// The refusals the process log shows besides the audit log: for whoever
// watches the log (journalctl, a log collector, fail2ban) rather than the
// Access page.
var refusalActions = map[string]string{
	"login_failed":  "log-in refused",
	"setup_refused": "setup refused",
	"token_refused": "API token refused",
}

// Defaults of refusalLog: a few lines a minute per address, for a few
// addresses, whatever comes.
const (
	refusalBurst    = 3
	refusalAddrs    = 10
	refusalInterval = time.Minute
)

// refusalLog writes refused log-ins and tokens to the process log, at most
// burst lines per client address, for at most addrs addresses, each
// interval, so that a flood of wrong passwords cannot fill the log (or the
// disk under it), nor one address's hide another's: the refusals held back
// are counted in one line when their interval ends, which names the
// addresses that had the most. It is safe for concurrent use.
type refusalLog struct {
	log      *slog.Logger
	burst    int
	addrs    int
	interval time.Duration

	mu    sync.Mutex
	start time.Time // of the interval under way
	// logged counts the lines written in it per address (at most addrs
	// of them), held the refusals held back per address (at most addrs
	// of them too: the others count in heldAll only).
	logged  map[string]int
	held    map[string]int
	heldAll int
	summary *time.Timer // writes the count of held ones at the interval's end
}

// note logs e when its address has room left in the interval under way,
// else counts it.
func (r *refusalLog) note(e Entry) {
	msg, ok := refusalActions[e.Action]
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.logged == nil {
		r.logged, r.held = map[string]int{}, map[string]int{}
	}
	if now.Sub(r.start) >= r.interval && r.heldAll == 0 {
		r.start = now
		clear(r.logged)
	}
	n, seen := r.logged[e.Addr]
	if n >= r.burst || !seen && len(r.logged) >= r.addrs {
		r.heldAll++
		if _, ok := r.held[e.Addr]; ok || len(r.held) < r.addrs {
			r.held[e.Addr]++
		}
		if r.summary == nil {
			r.summary = time.AfterFunc(r.start.Add(r.interval).Sub(now), r.flush)
		}
		return
	}
	r.logged[e.Addr] = n + 1
	attrs := []any{slog.String("addr", e.Addr), slog.String("target", clip(e.Target))}
	if e.Who != "" {
		attrs = append(attrs, slog.String("user", clip(e.Who)))
	}
	if e.Status != 0 {
		attrs = append(attrs, slog.Int("status", e.Status))
	}
	if e.Detail != "" {
		attrs = append(attrs, slog.String("detail", clip(e.Detail)))
	}
	r.log.Warn(msg, attrs...)
}

// flush writes how many refusals were held back, from which addresses
// most, and starts a new interval.
func (r *refusalLog) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.heldAll > 0 {
		r.log.Warn("more refused log-ins and tokens, not logged one by one", slog.Int("count", r.heldAll),
			slog.String("top", top(r.held, 3)),
			slog.Duration("within", r.interval), slog.String("see", "the audit log (GET /api/v1/audit)"))
	}
	r.start, r.heldAll, r.summary = time.Now(), 0, nil
	clear(r.logged)
	clear(r.held)
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
func clip(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
