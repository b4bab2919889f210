package store

import (
	"encoding/binary"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// Resends of messages already stored.
//
// A reading stamped on receipt has no time of its own to tell a resend of
// its message from a new reading. The store keeps a ledger of the messages
// such readings came in (meter.Delivery: a hash of session, packet id,
// topic and payload) for redeliveryWindow: a message flagged DUP that is in
// it is a resend of a message stored, and is acknowledged without being
// stored again. The ledger is written with the readings: on PostgreSQL in the
// table deliveries, in the same transaction; on bbolt in the log's records,
// and at each checkpoint, for the last seconds, in the file.
//
// A packet id is reused once its message is acknowledged, after the other
// 65,534 ids of the session (brokers and clients count them up), so an
// entry can only be taken for another message's if that one came with the
// same packet id, topic and payload within the window, and was itself
// flagged DUP without having been stored: 65,535 messages within a minute
// on one session (1,092 a second) and a crash at that message.
const redeliveryWindow = time.Minute

// ledgerEntry is a message stored: when.
type ledgerEntry struct {
	atNs int64
}

// ledger is the bbolt engine's ledger, in memory (the writer's).
type ledger struct {
	m map[uint64]ledgerEntry
	// notes counts entries added since the last sweep of old ones.
	notes int
}

func newLedger() *ledger { return &ledger{m: map[uint64]ledgerEntry{}} }

// resend reports whether d is a resend of a message stored.
func (l *ledger) resend(d meter.Delivery, nowNs int64) bool {
	if !d.Dup || d.Key == 0 {
		return false
	}
	e, ok := l.m[d.Key]
	return ok && nowNs-e.atNs <= int64(redeliveryWindow)
}

// note records that d's message is stored, at nowNs, and returns the entry
// it replaced (ok false: none), for an undo.
func (l *ledger) note(d meter.Delivery, nowNs int64) (prev ledgerEntry, ok bool) {
	prev, ok = l.m[d.Key]
	l.m[d.Key] = ledgerEntry{atNs: nowNs}
	l.notes++
	if l.notes >= 4096 && l.notes >= len(l.m)/2 {
		l.sweep(nowNs)
	}
	return prev, ok
}

// sweep forgets the entries older than the window.
func (l *ledger) sweep(nowNs int64) {
	l.notes = 0
	for k, e := range l.m {
		if nowNs-e.atNs > int64(redeliveryWindow) {
			delete(l.m, k)
		}
	}
}

// ledgerKeep is how far back a checkpoint writes the ledger into the file
// (the log keeps what came after the checkpoint began): the window, so a
// resend is recognised across a restart as without one.
const ledgerKeep = redeliveryWindow

// encode returns the entries since sinceNs, 16 bytes each.
func (l *ledger) encode(sinceNs int64) []byte {
	var b []byte
	for k, e := range l.m {
		if e.atNs >= sinceNs {
			b = binary.LittleEndian.AppendUint64(b, k)
			b = binary.LittleEndian.AppendUint64(b, uint64(e.atNs))
		}
	}
	return b
}

// load adds the entries of b, as encode wrote them.
func (l *ledger) load(b []byte) {
	for ; len(b) >= 16; b = b[16:] {
		k := binary.LittleEndian.Uint64(b)
		e := ledgerEntry{atNs: int64(binary.LittleEndian.Uint64(b[8:]))}
		if old, ok := l.m[k]; !ok || old.atNs < e.atNs {
			l.m[k] = e
		}
	}
}
