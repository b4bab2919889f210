// Package leader chooses which of several Vatio instances sharing one
// PostgreSQL database runs the jobs that must run once: alert rules, load
// shedding, retention, off-site copies and Home Assistant states.
//
// The leader is whoever holds a PostgreSQL session-level advisory lock, on
// a connection of its own. The others wait for the lock in the server,
// lock_timeout at a time, so when the leader's process dies and its
// connection closes, one of them gets it at once. The leader checks its
// connection every Check; when that fails, it stops leading before it
// connects again. No clock or lease of Vatio's own is involved: PostgreSQL
// decides.
//
// One instance on bbolt (which allows one process per file) is its own
// leader: see Alone.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// Key is the advisory lock of the leadership. Advisory locks belong to a
// database, so deployments in different databases do not meet; the other
// keys of 0x766174696f ("vatio") guard migrations and registry edits.
const Key int64 = 0x766174696f03

// Options tunes an Elector; zero values take the defaults.
type Options struct {
	// Wait is how long a follower waits for the lock in one statement
	// before it checks its connection and waits again (5s).
	Wait time.Duration
	// Check is how often the leader checks that its connection, and so the
	// lock, is still there (2s); it stops leading when a check fails.
	Check time.Duration
	// Retry is the pause before connecting again after an error (2s).
	Retry  time.Duration
	Logger *slog.Logger
}

// Elector campaigns for the leadership and runs the leader's jobs while it
// holds it.
type Elector struct {
	cfg     *pgx.ConnConfig // nil: Alone
	opts    Options
	leading atomic.Bool
	changes atomic.Int64
	desc    *prometheus.Desc
	chDesc  *prometheus.Desc
}

// Postgres returns an Elector for the database of dsn (a URL or key=value
// connection string).
func Postgres(dsn string, opts Options) (*Elector, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("leader: postgres dsn: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "vatio leader"
	e := newElector(opts)
	e.cfg = cfg
	e.opts.Logger = e.opts.Logger.With(slog.String("db", fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)))
	return e, nil
}

// Alone returns an Elector that always leads: the only instance there is.
func Alone() *Elector { return newElector(Options{}) }

func newElector(opts Options) *Elector {
	if opts.Wait <= 0 {
		opts.Wait = 5 * time.Second
	}
	if opts.Check <= 0 {
		opts.Check = 2 * time.Second
	}
	if opts.Retry <= 0 {
		opts.Retry = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Elector{opts: opts,
		desc:   prometheus.NewDesc("vatio_leader", "1 while this instance leads: it runs alert rules, load shedding, retention and off-site copies.", nil, nil),
		chDesc: prometheus.NewDesc("vatio_leader_changes_total", "Times this instance became the leader or stopped being it.", nil, nil),
	}
}

// Leading reports whether this instance leads now.
func (e *Elector) Leading() bool { return e.leading.Load() }

// Run campaigns until ctx ends. Each time this instance becomes the leader
// it calls lead with a context that ends when it stops being the leader,
// and waits for lead to return before it campaigns again; so lead never
// runs twice at once in one process. Run returns once ctx has ended and
// lead has returned; the lock goes with the connection.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) {
	if e.cfg == nil {
		e.set(true)
		lead(ctx)
		e.set(false)
		return
	}
	log := e.opts.Logger
	failing := false
	for ctx.Err() == nil {
		err := e.campaign(ctx, lead)
		if ctx.Err() != nil {
			return
		}
		// Say it once, not at every retry, while PostgreSQL is away.
		if !failing {
			log.Warn("leadership: lost the database; connecting again", slog.Any("error", err))
		}
		failing = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(e.opts.Retry):
		}
	}
}

// campaign connects, waits for the lock and leads while the connection
// holds; it returns why it stopped.
func (e *Elector) campaign(ctx context.Context, lead func(ctx context.Context)) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := pgx.ConnectConfig(cctx, e.cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx) // and with it the lock
	}()
	// The wait happens in the server, so it ends the moment the lock is
	// free; lock_timeout bounds each statement so a dead connection is
	// found.
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d", e.opts.Wait.Milliseconds())); err != nil {
		return err
	}
	for {
		_, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", Key)
		if err == nil {
			break
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available: someone else leads
			continue
		}
		return err
	}
	return e.lead(ctx, conn, lead)
}

// lead runs lead while this instance holds the lock on conn.
func (e *Elector) lead(ctx context.Context, conn *pgx.Conn, lead func(ctx context.Context)) error {
	log := e.opts.Logger
	log.Info("leadership: this instance leads")
	e.set(true)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); lead(lctx) }()
	defer func() {
		stop()
		<-done
		e.set(false)
	}()
	t := time.NewTicker(e.opts.Check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("leadership: handed over (stopping)")
			return ctx.Err()
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, e.opts.Check)
		err := conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("leadership: lost with the connection to the database; the jobs stop", slog.Any("error", err))
			return err
		}
	}
}

func (e *Elector) set(leading bool) {
	if e.leading.Swap(leading) != leading {
		e.changes.Add(1)
	}
}

// Describe implements prometheus.Collector.
func (e *Elector) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.desc
	ch <- e.chDesc
}

// Collect implements prometheus.Collector.
func (e *Elector) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if e.leading.Load() {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(e.desc, prometheus.GaugeValue, v)
	ch <- prometheus.MustNewConstMetric(e.chDesc, prometheus.CounterValue, float64(e.changes.Load()))
}
