// Package audit keeps the audit log: who logged in (or failed to), which
// token was used, what was changed, deleted or exported, and every
// automation action, with the address it came from. Entries are kept in
// the database, the newest MaxEntries of them.
package audit

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/store"
)

const docAudit = "audit"

// MaxEntries bounds the log; older entries are deleted.
const MaxEntries = 100000

// Entry is one audited event.
type Entry struct {
	Time time.Time `json:"time"`
	// Who did it: a user name, "token:<name>", "system" or "" (anonymous).
	Who string `json:"who"`
	// Action names what happened: login, login_failed, token_used,
	// change, delete, export, shed, restore...
	Action string `json:"action"`
	// Target is what it was done to (a path, a meter, a load).
	Target string `json:"target,omitempty"`
	Addr   string `json:"addr,omitempty"`
	// Status is the HTTP status of a request.
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Log is the audit log. It is safe for concurrent use.
type Log struct {
	st  *store.Store
	log *slog.Logger
	mu  sync.Mutex
	seq uint64
	n   int // entries stored, once counted
	max int // entries kept: MaxEntries
	// logged and stored bound the refusals from outside written to the
	// process log and stored in the audit log.
	logged, stored *gate
}

// New returns the audit log kept in st.
func New(st *store.Store, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{st: st, log: logger, n: -1, max: MaxEntries}
	l.logged = &gate{burst: refusalBurst, addrs: refusalAddrs, interval: refusalInterval, onHeld: l.logHeld}
	l.stored = &gate{burst: storedBurst, addrs: storedAddrs, interval: storedInterval, onHeld: l.storeHeld}
	return l
}

// Bounds of an entry's fields: what a client sends (a user name typed, a
// path) is cut to these, so an entry stays small whatever comes.
const (
	maxField  = 256
	maxDetail = 1024
)

// clipped returns e with its fields cut to their bounds.
func clipped(e Entry) Entry {
	e.Who = clipTo(e.Who, maxField)
	e.Action = clipTo(e.Action, maxField)
	e.Target = clipTo(e.Target, maxField)
	e.Addr = clipTo(e.Addr, maxField)
	e.Detail = clipTo(e.Detail, maxDetail)
	return e
}

// Record adds e (its Time set to now when zero, its fields clipped). A
// failure to record is logged, never returned: auditing must not stop what
// it records.
//
// A refused log-in, setup, token or MQTT CONNECT, which anyone who reaches
// the port can cause as fast as they can send, and a request a user's role
// forbids, which any viewer can, are bounded: each kind is stored at most 5
// times a minute per address, for 20 kinds and addresses. Refused log-ins,
// setups and tokens are also written to the process log with the client's
// address and the user name typed (never a password or a token's secret:
// entries hold neither), at most 3 times a minute per address, for 10
// addresses. Those held back are counted, in a log line and in a stored
// entry "refusals_held", at the minute's end.
func (l *Log) Record(e Entry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e = clipped(e)
	if msg, ok := refusalActions[e.Action]; ok {
		if msg != "" && l.logged.pass(e.Addr) {
			logRefusal(l.log, msg, e)
		}
		if !l.stored.pass(e.Action + " from " + e.Addr) { // each kind its own share
			return
		}
	}
	l.store(e)
}

// Close stores and logs the count of refusals held back now rather than at
// the minute's end, so that stopping loses none of them; call it before
// closing the store.
func (l *Log) Close() {
	l.logged.close()
	l.stored.close()
}

// logHeld writes the count of refusals not written one by one.
func (l *Log) logHeld(count int, top string) {
	l.log.Warn("more refused log-ins and tokens, not logged one by one", slog.Int("count", count),
		slog.String("top", top), slog.Duration("within", l.logged.interval),
		slog.String("see", "the audit log (GET /api/v1/audit)"))
}

// storeHeld stores the count of refusals not stored one by one.
func (l *Log) storeHeld(count int, top string) {
	l.store(Entry{Time: time.Now(), Who: "system", Action: "refusals_held",
		Detail: fmt.Sprintf("%d more refused log-ins, tokens, MQTT connections and forbidden requests within %s, not stored one by one; most from %s", count, l.stored.interval, top)})
}

// store writes e, then prunes the log when it has grown past its bound.
func (l *Log) store(e Entry) {
	e.Time = e.Time.UTC()
	v, _ := json.Marshal(e)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	key := fmt.Sprintf("%020d-%06d", e.Time.UnixNano(), l.seq%1000000)
	if err := l.st.PutDoc(docAudit, key, v); err != nil {
		l.log.Error("audit entry not recorded", slog.String("action", e.Action), slog.Any("error", err))
		return
	}
	if l.n >= 0 {
		l.n++
	}
	if l.n < 0 || l.n > l.max+l.max/10 {
		l.prune()
	}
}

// prune deletes the oldest entries beyond l.max, in one transaction;
// l.mu is held.
func (l *Log) prune() {
	n, err := l.st.TrimDocs(docAudit, l.max)
	if err != nil {
		l.log.Error("audit log not pruned", slog.Any("error", err))
		return
	}
	l.n = n
}

// List returns up to limit entries, newest first, that keep accepts (nil:
// all). It reads from the newest entry back, no further than it needs.
func (l *Log) List(limit int, keep func(Entry) bool) ([]Entry, error) {
	out := []Entry{}
	if limit <= 0 {
		return out, nil
	}
	err := l.st.NewestDocs(docAudit, func(_ string, v []byte) bool {
		var e Entry
		if json.Unmarshal(v, &e) == nil && (keep == nil || keep(e)) {
			out = append(out, e)
		}
		return len(out) < limit
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
