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
	// refusals writes refused log-ins and tokens to logger as well.
	refusals *refusalLog
}

// New returns the audit log kept in st.
func New(st *store.Store, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{st: st, log: logger, n: -1, max: MaxEntries,
		refusals: &refusalLog{log: logger, burst: refusalBurst, addrs: refusalAddrs, interval: refusalInterval}}
}

// Record adds e (its Time set to now when zero). A failure to record is
// logged, never returned: auditing must not stop what it records. A
// refused log-in, setup or token is also written to the logger, with the
// client's address and the user name typed (never a password or a token's
// secret: entries hold neither), at most 10 lines a minute; those held
// back are counted in a line at the minute's end.
func (l *Log) Record(e Entry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.refusals.note(e)
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
