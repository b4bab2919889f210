package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vatio-energy/vatio/internal/bridge"
	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/leader"
)

// presenceEvery is how often an instance on PostgreSQL looks for instances
// gone.
const presenceEvery = time.Second

// startBridge starts taking readings from the external broker. On
// PostgreSQL the instance first joins the others (see leader.Presence):
// that refuses a client id another running instance uses, and waits while
// another drains the session this one left.
func (a *app) startBridge(cfg config.Config) error {
	if cfg.Store.Driver == "postgres" {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		p, err := leader.Join(ctx, cfg.Store.DSN, leader.Member{ClientID: a.bridge.ClientID(),
			Filters: a.bridge.Filters(), Host: hostname(), PID: os.Getpid()}, a.log.With("component", "presence"))
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		a.presence = p
		pctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); a.runPresence(pctx) }()
		a.stopPresence = func() { stop(); <-done }
	}
	if err := a.bridge.Start(); err != nil {
		if a.presence != nil {
			a.stopPresence()
			a.presence.Leave(context.Background(), false)
		}
		return err
	}
	if err := noteSession(a.dataDir, a.bridge.ClientID()); err != nil {
		a.log.Warn("cannot record the broker session in the data directory", slog.Any("error", err))
	}
	return nil
}

// stopBridge stops taking readings. An instance in a share group with
// others alive leaves the group, handing them its share; otherwise the
// session is kept at the broker, and the readings wait there for this
// instance or another to take them (see runPresence).
func (a *app) stopBridge(ctx context.Context) error {
	if a.presence != nil && a.bridge.Shared() {
		leave, err := a.presence.Leaving(ctx)
		if err != nil {
			a.log.Warn("cannot tell whether other instances run; keeping the broker session", slog.Any("error", err))
		}
		if leave {
			return a.bridge.Leave(ctx)
		}
	}
	return a.bridge.Drain(ctx)
}

// runPresence tells the other instances this one is alive, takes over the
// sessions of those gone, and watches for a share gone silent.
func (a *app) runPresence(ctx context.Context) {
	var suspended atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() { a.heartbeats(ctx, &suspended) })
	wg.Go(func() { a.takeovers(ctx, &suspended) })
	wg.Wait()
}

// Liveness. Another instance takes this one for gone once its lock is
// free and its last heartbeat leader.LapseAfter (5 s) old, by the
// database's clock. Heartbeats go every heartbeatEvery; without one for
// suspendAfter, this instance lets go of its broker session (a drain of at
// most suspendDrain), before anyone may take it over under it.
const (
	heartbeatEvery   = 500 * time.Millisecond
	heartbeatTimeout = time.Second
	suspendAfter     = 2 * time.Second
	suspendDrain     = 1500 * time.Millisecond
)

// heartbeats runs the heartbeat, and suspends the broker session while the
// database is lost.
func (a *app) heartbeats(ctx context.Context, suspended *atomic.Bool) {
	log := a.log.With("component", "presence")
	lastOK := time.Now()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Not cancelled with ctx: a query cut short closes the
		// connection, and a stop still needs it to leave its share group.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), heartbeatTimeout)
		err := a.presence.Heartbeat(hctx, a.bridge.Received())
		cancel()
		if err == nil {
			lastOK = time.Now()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(lastOK) < suspendAfter {
			continue
		}
		// The lock may have gone with the connection: another instance
		// may take this one's session over. Hold it at the broker
		// (readings wait there) until this instance is back.
		log.Warn("lost the database that tells instances apart; the MQTT session pauses until it is back", slog.Any("error", err))
		suspended.Store(true)
		sctx, cancel := context.WithTimeout(ctx, suspendDrain)
		a.bridge.Suspend(sctx)
		cancel()
		for ctx.Err() == nil {
			if err := a.presence.Rejoin(ctx); err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
		if ctx.Err() != nil {
			return
		}
		lastOK = time.Now()
		suspended.Store(false)
		if err := a.bridge.Resume(); err != nil {
			log.Error("cannot resume the MQTT session", slog.Any("error", err))
		}
		log.Info("back in the database; the MQTT session resumes")
	}
}

// takeovers takes over the sessions of instances gone, and watches for a
// share gone silent.
func (a *app) takeovers(ctx context.Context, suspended *atomic.Bool) {
	log := a.log.With("component", "presence")
	silence := newSilenceWatch()
	t := time.NewTicker(presenceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if suspended.Load() {
			continue
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second) // see heartbeats
		claimed, live, err := a.presence.Claim(cctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("cannot look for instances gone", slog.Any("error", err))
		}
		for _, m := range claimed {
			log.Info("an instance is gone; taking over its broker session", slog.String("client_id", m.ClientID),
				slog.String("host", m.Host), slog.Int("pid", m.PID), slog.Duration("silent_for", m.Age.Round(time.Millisecond)))
			_, err := a.bridge.Takeover(ctx, bridge.Lapsed{ClientID: m.ClientID, Filters: m.Filters})
			if err != nil {
				log.Warn("taking over a broker session failed; trying again", slog.String("client_id", m.ClientID), slog.Any("error", err))
			}
			if rerr := a.presence.Release(context.WithoutCancel(ctx), m.ClientID, err == nil); rerr != nil {
				log.Warn("cannot release a session taken over", slog.Any("error", rerr))
			}
		}
		if err == nil {
			for _, msg := range silence.check(time.Now(), live) {
				a.bridge.Evidence("share_silent", msg)
			}
		}
	}
}

// Share silence: an instance whose count of readings has not moved for
// silentFor while the others took at least silentMin between them, in at
// least half of the seconds of it, gets no share of the readings: the
// broker queues them somewhere nobody reads. (Another instance storing a
// backlog it was sent while away takes many readings in a few seconds:
// that is not steady traffic this one misses.)
const (
	silentFor = time.Minute
	silentMin = 100
)

// silenceWatch remembers, for each instance, when its count last moved,
// and the totals of the checks of the last silentFor.
type silenceWatch struct {
	last     map[string]silenceMark
	reported map[string]bool
	// samples are the totals of the counts at the checks of the last
	// silentFor, oldest first.
	samples []silenceSample
}

type silenceMark struct {
	at       time.Time
	received int64
}

type silenceSample struct {
	at    time.Time
	total int64
}

func newSilenceWatch() *silenceWatch {
	return &silenceWatch{last: map[string]silenceMark{}, reported: map[string]bool{}}
}

// check takes the live instances' counts at now (once a second) and
// returns a message for each whose share has gone silent (once until it
// moves again).
func (w *silenceWatch) check(now time.Time, live []leader.Member) []string {
	var total int64
	for _, m := range live {
		total += m.Received
	}
	w.samples = append(w.samples, silenceSample{now, total})
	for len(w.samples) > 1 && now.Sub(w.samples[0].at) > silentFor {
		w.samples = w.samples[1:]
	}
	// What the instances took in the window, and in how many of its
	// checks the total rose.
	took, busy := total-w.samples[0].total, 0
	for i := 1; i < len(w.samples); i++ {
		if w.samples[i].total > w.samples[i-1].total {
			busy++
		}
	}
	steady := took >= silentMin && busy >= int(silentFor/time.Second)/2
	var out []string
	seen := map[string]bool{}
	for _, m := range live {
		seen[m.ClientID] = true
		mark, ok := w.last[m.ClientID]
		if !ok || m.Received != mark.received {
			w.last[m.ClientID] = silenceMark{at: now, received: m.Received}
			w.reported[m.ClientID] = false
			continue
		}
		if now.Sub(mark.at) >= silentFor && steady && !w.reported[m.ClientID] {
			w.reported[m.ClientID] = true
			out = append(out, fmt.Sprintf("instance %s (host %s) has taken no reading for %s while the others took %d in the last %s: the broker sends its share somewhere nobody reads",
				m.ClientID, m.Host, now.Sub(mark.at).Round(time.Second), took, silentFor))
		}
	}
	for id := range w.last {
		if !seen[id] {
			delete(w.last, id)
			delete(w.reported, id)
		}
	}
	return out
}
