package audit

import (
	"log/slog"
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

// Defaults of refusalLog: a few lines a minute, whatever comes.
const (
	refusalBurst    = 10
	refusalInterval = time.Minute
)

// refusalLog writes refused log-ins and tokens to the process log, at most
// burst lines each interval, so that a flood of wrong passwords cannot
// fill the log (or the disk under it): the refusals held back are counted
// in one line when their interval ends. It is safe for concurrent use.
type refusalLog struct {
	log      *slog.Logger
	burst    int
	interval time.Duration

	mu      sync.Mutex
	start   time.Time   // of the interval under way
	logged  int         // lines written in it
	held    int         // refusals held back in it
	summary *time.Timer // writes the count of held ones at the interval's end
}

// note logs e when the interval under way has room left, else counts it.
func (r *refusalLog) note(e Entry) {
	msg, ok := refusalActions[e.Action]
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.start) >= r.interval && r.held == 0 {
		r.start, r.logged = now, 0
	}
	if r.logged >= r.burst {
		r.held++
		if r.summary == nil {
			r.summary = time.AfterFunc(r.start.Add(r.interval).Sub(now), r.flush)
		}
		return
	}
	r.logged++
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

// flush writes how many refusals were held back, and starts a new
// interval.
func (r *refusalLog) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held > 0 {
		r.log.Warn("more refused log-ins and tokens, not logged one by one", slog.Int("count", r.held),
			slog.Duration("within", r.interval), slog.String("see", "the audit log (GET /api/v1/audit)"))
	}
	r.start, r.logged, r.held, r.summary = time.Now(), 0, 0, nil
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
