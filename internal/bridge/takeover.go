package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Lapsed is the broker session of an instance that died or stopped
// without leaving its share group: the broker still queues the group's
// readings for it, which nobody would store until it came back.
type Lapsed struct {
	// ClientID is the session's client id; Filters its subscriptions
	// ($share/<group>/<filter>).
	ClientID string
	Filters  []string
}

// TakeoverResult says what a takeover found.
type TakeoverResult struct {
	// SessionPresent is whether the broker still held the session.
	SessionPresent bool
	// Messages counts readings' messages taken from it.
	Messages int64
}

// takeoverQuiet is how long a session taken over must have sent nothing,
// once out of the share group, for what the broker held for it to be
// taken as all sent.
const takeoverQuiet = time.Second

// Takeover resumes the session of a lapsed instance under its client id,
// takes it out of the share group, stores what the broker held for it
// (readings it had sent and not seen acknowledged come again, marked as
// duplicates), and ends it. The caller makes sure the instance is gone
// (see leader.Presence): were it still connected, the broker would hand
// its session over, and it would take it back.
//
// On an error the session is left at the broker, as it was, for a later
// attempt.
func (b *Bridge) Takeover(ctx context.Context, s Lapsed) (TakeoverResult, error) {
	var res TakeoverResult
	if s.ClientID == b.opts.ClientID {
		return res, errors.New("bridge: cannot take over this instance's own session")
	}
	l := b.newLink(s.ClientID, s.Filters, false)
	cctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	if err := l.connect(cctx); err != nil {
		return res, err
	}
	closed := false
	defer func() {
		if !closed {
			l.close() // the session stays at the broker
		}
	}()
	wait, stop := context.WithTimeout(ctx, 15*time.Second)
	defer stop()
	select {
	case ack := <-l.connack:
		res.SessionPresent = ack.SessionPresent
	case <-wait.Done():
		return res, fmt.Errorf("bridge: take over %s: no connection to the broker: %w", s.ClientID, wait.Err())
	}
	log := b.log.With(slog.String("lapsed_client_id", s.ClientID))
	if !res.SessionPresent {
		// Nothing held: end the session this connection just made.
		l.leave.Store(true)
		log.Info("the broker held no session for a lapsed instance")
		return res, nil
	}
	if err := l.unsubscribe(ctx); err != nil {
		return res, err
	}
	if err := l.quiesce(ctx, time.Now(), takeoverQuiet); err != nil {
		return res, err
	}
	res.Messages = l.received.Load()
	if err := l.drain(ctx); err != nil {
		return res, err
	}
	if l.refused.Load() > 0 {
		return res, fmt.Errorf("bridge: take over %s: messages still arriving; the session is kept for another attempt", s.ClientID)
	}
	if l.downs.Load() > 0 {
		// The DISCONNECT that ends the session cannot go: it stays at the
		// broker, with whatever came after, for another attempt.
		return res, fmt.Errorf("bridge: take over %s: the connection dropped; the session is kept for another attempt", s.ClientID)
	}
	l.leave.Store(true)
	closed = true
	if err := l.close(); err != nil || l.downs.Load() > 0 {
		return res, errors.Join(fmt.Errorf("bridge: take over %s: the connection dropped before the session was ended; it is kept for another attempt", s.ClientID), err)
	}
	b.lapsed.Inc()
	b.lapsedRead.Add(float64(res.Messages))
	log.Info("took over the broker session of a lapsed instance: its readings are stored and the session ended",
		slog.Int64("messages", res.Messages))
	return res, nil
}
