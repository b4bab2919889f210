package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Presence tells instances sharing a PostgreSQL database which of them are
// alive, so that one can take over the broker session of another that died
// or stopped (see bridge.Takeover). An instance is alive while it holds an
// advisory lock named by its MQTT client id, on a connection of its own:
// when the process dies, PostgreSQL closes the connection and frees the
// lock at once, whatever the clocks say. The table instances (created by
// the store's migrations) lists the sessions: client id, subscriptions,
// host and pid, and a heartbeat with the count of readings received.
//
// The lock also keeps one client id in one process: a second instance
// given the same broker.client_id is refused at start, and an instance
// coming back while another drains its old session waits until that is
// done.
type Presence struct {
	cfg *pgx.ConnConfig
	me  Member
	log *slog.Logger

	mu   sync.Mutex
	conn *pgx.Conn
	// held are the client ids of lapsed instances whose locks this one
	// holds while it takes their sessions over.
	held map[string]bool
}

// Member is an instance as the others see it.
type Member struct {
	ClientID string
	// Filters are its session's subscriptions.
	Filters []string
	Host    string
	PID     int
	// Received is its count of readings' messages, at its last heartbeat.
	Received int64
	// Seen is when it last told it was alive; Age is how long ago that
	// was, by the database's clock.
	Seen time.Time
	Age  time.Duration
	// TakenBy is the instance taking its session over, if any.
	TakenBy string
}

// presenceClass is the first key of the presence locks, "vati"; the second
// is hashtext(client id). Two-key advisory locks live apart from the
// one-key ones of the leadership and migrations.
const presenceClass int32 = 0x76617469

// joinWait bounds how long Join waits for its client id while another
// instance drains the session it left.
var joinWait = 2 * time.Minute

// ErrClientIDInUse is returned by Join when a running instance holds the
// client id.
var ErrClientIDInUse = errors.New("the MQTT client id is in use by a running instance")

// Join connects to the database of dsn and takes me.ClientID's lock,
// waiting while another instance takes the session over (up to two
// minutes); it refuses a client id that a live instance holds.
func Join(ctx context.Context, dsn string, me Member, logger *slog.Logger) (*Presence, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("presence: postgres dsn: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "vatio presence " + me.ClientID
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Presence{cfg: cfg, me: me, log: logger, held: map[string]bool{}}
	if err := p.join(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Presence) join(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := pgx.ConnectConfig(cctx, p.cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	deadline := time.Now().Add(joinWait)
	said := false
	// A lock held with no takeover marked must stay so for a moment before
	// the id is refused: a takeover marks its row just after it takes the
	// lock, and clears the mark just before it lets go.
	var heldSince time.Time
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, presenceClass, p.me.ClientID).Scan(&got); err != nil {
			conn.Close(context.Background())
			return fmt.Errorf("presence: %w", err)
		}
		if got {
			break
		}
		var m Member
		err := conn.QueryRow(ctx, `SELECT host, pid, coalesce(taken_by, '') FROM instances WHERE client_id = $1`, p.me.ClientID).Scan(&m.Host, &m.PID, &m.TakenBy)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// A takeover that has just deleted the row, about to let go
			// of the lock; or an instance between its lock and its row.
			m.TakenBy = "an instance ending this client id's session"
		case err != nil:
			conn.Close(context.Background())
			return fmt.Errorf("presence: %w", err)
		}
		if m.TakenBy != "" {
			heldSince = time.Time{}
		} else if heldSince.IsZero() {
			heldSince = time.Now()
		}
		if m.TakenBy == "" && time.Since(heldSince) >= 2*time.Second || time.Now().After(deadline) {
			conn.Close(context.Background())
			who := fmt.Sprintf("runs on host %s (pid %d)", m.Host, m.PID)
			if m.Host == "" {
				who = "is held by another process for " + joinWait.String()
			}
			return fmt.Errorf("%w: %s %s; give each instance its own broker.client_id, or leave it empty",
				ErrClientIDInUse, p.me.ClientID, who)
		}
		if !said && m.TakenBy != "" {
			p.log.Info("waiting while another instance takes over the broker session this one left", slog.String("taken_by", m.TakenBy))
			said = true
		}
		select {
		case <-ctx.Done():
			conn.Close(context.Background())
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	_, err = conn.Exec(ctx, `INSERT INTO instances (client_id, filters, host, pid) VALUES ($1, $2, $3, $4)
		ON CONFLICT (client_id) DO UPDATE SET filters = excluded.filters, host = excluded.host, pid = excluded.pid,
			started = now(), seen = now(), received = 0, taken_by = NULL, leaving = false`,
		p.me.ClientID, p.me.Filters, p.me.Host, p.me.PID)
	if err != nil {
		conn.Close(context.Background())
		return fmt.Errorf("presence: register %s: %w", p.me.ClientID, err)
	}
	p.mu.Lock()
	p.conn = conn
	clear(p.held)
	p.mu.Unlock()
	return nil
}

// Heartbeat tells the others this instance is alive, with its count of
// readings received, within ctx; an error means the connection, and with
// it the lock, may be lost (see Rejoin). An instance whose heartbeats fail
// must let go of its broker session well within LapseAfter of the last
// that went through.
func (p *Presence) Heartbeat(ctx context.Context, received int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return errors.New("presence: not joined")
	}
	tag, err := p.conn.Exec(ctx, `UPDATE instances SET seen = now(), received = $2 WHERE client_id = $1`, p.me.ClientID, received)
	if err == nil && tag.RowsAffected() == 0 {
		// Someone deleted the row (it should not happen): put it back.
		_, err = p.conn.Exec(ctx, `INSERT INTO instances (client_id, filters, host, pid, received) VALUES ($1, $2, $3, $4, $5)`,
			p.me.ClientID, p.me.Filters, p.me.Host, p.me.PID, received)
	}
	if err != nil {
		return fmt.Errorf("presence: heartbeat: %w", err)
	}
	return nil
}

// Rejoin drops the connection and joins again: after a failed heartbeat,
// the lock may have gone with the connection.
func (p *Presence) Rejoin(ctx context.Context) error {
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Close(context.Background())
		p.conn = nil
	}
	p.mu.Unlock()
	return p.join(ctx)
}

// LapseAfter is how old an instance's heartbeat must be, its lock free,
// for it to be taken as gone: a restart of PostgreSQL frees every lock for
// the moment their holders take to join again, and an instance that has
// lost the database lets go of its broker session well before (see
// Heartbeat).
const LapseAfter = 5 * time.Second

// Members returns every instance registered, this one included, with
// whether each is alive (holds its lock).
func (p *Presence) Members(ctx context.Context) (live, lapsed []Member, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil, nil, errors.New("presence: not joined")
	}
	rows, err := p.conn.Query(ctx, `SELECT client_id, filters, host, pid, received, seen,
			extract(epoch FROM now() - seen)::float8, coalesce(taken_by, ''),
			EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::int::oid
				AND objid = hashtext(client_id)::oid AND objsubid = 2)
		FROM instances ORDER BY client_id`, presenceClass)
	if err != nil {
		return nil, nil, fmt.Errorf("presence: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m Member
		var alive bool
		var age float64
		if err := rows.Scan(&m.ClientID, &m.Filters, &m.Host, &m.PID, &m.Received, &m.Seen, &age, &m.TakenBy, &alive); err != nil {
			return nil, nil, fmt.Errorf("presence: %w", err)
		}
		m.Age = time.Duration(age * float64(time.Second))
		if alive || m.ClientID == p.me.ClientID {
			live = append(live, m)
		} else {
			lapsed = append(lapsed, m)
		}
	}
	return live, lapsed, rows.Err()
}

// Claim takes the lock of each instance that has lapsed (its lock free and
// its heartbeat older than LapseAfter) and returns them, with the
// instances alive: this instance takes their sessions over, then calls
// Release for each.
func (p *Presence) Claim(ctx context.Context) (claimed, live []Member, err error) {
	live, lapsed, err := p.Members(ctx)
	if err != nil {
		return nil, nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil, nil, errors.New("presence: not joined")
	}
	var out []Member
	for _, m := range lapsed {
		if p.held[m.ClientID] || m.Age < LapseAfter {
			continue
		}
		var got bool
		err := p.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, presenceClass, m.ClientID).Scan(&got)
		if err != nil {
			return out, live, fmt.Errorf("presence: %w", err)
		}
		if !got {
			continue
		}
		if _, err := p.conn.Exec(ctx, `UPDATE instances SET taken_by = $2 WHERE client_id = $1`, m.ClientID, p.me.ClientID); err != nil {
			return out, live, fmt.Errorf("presence: %w", err)
		}
		p.held[m.ClientID] = true
		out = append(out, m)
	}
	return out, live, nil
}

// Release lets go of a lapsed instance claimed: with ended, its session is
// gone and its row is deleted; otherwise it stays to be claimed again.
func (p *Presence) Release(ctx context.Context, clientID string, ended bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || !p.held[clientID] {
		return nil
	}
	delete(p.held, clientID)
	var err error
	if ended {
		_, err = p.conn.Exec(ctx, `DELETE FROM instances WHERE client_id = $1 AND taken_by = $2`, clientID, p.me.ClientID)
	} else {
		_, err = p.conn.Exec(ctx, `UPDATE instances SET taken_by = NULL WHERE client_id = $1`, clientID)
	}
	if _, uerr := p.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, presenceClass, clientID); uerr != nil {
		err = errors.Join(err, uerr)
	}
	if err != nil {
		return fmt.Errorf("presence: release %s: %w", clientID, err)
	}
	return nil
}

// leaveKey is the advisory lock that makes instances stopping together
// decide one at a time whether to leave ("vatio" + 4).
const leaveKey int64 = 0x766174696f04

// Leaving reports whether this instance may leave its share group for
// good: another instance is alive and not leaving itself; it then marks
// this one as leaving. Instances stopping together decide one at a time,
// so the last keeps its session and the group is never left empty.
func (p *Presence) Leaving(ctx context.Context) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return false, errors.New("presence: not joined")
	}
	leave := false
	err := pgx.BeginFunc(ctx, p.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, leaveKey); err != nil {
			return err
		}
		var others int
		err := tx.QueryRow(ctx, `SELECT count(*) FROM instances WHERE client_id <> $2 AND NOT leaving
			AND EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::int::oid
				AND objid = hashtext(client_id)::oid AND objsubid = 2)`, presenceClass, p.me.ClientID).Scan(&others)
		if err != nil || others == 0 {
			return err
		}
		leave = true
		_, err = tx.Exec(ctx, `UPDATE instances SET leaving = true WHERE client_id = $1`, p.me.ClientID)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("presence: %w", err)
	}
	return leave, nil
}

// Leave ends this instance's presence: with forget, its session is gone
// (it left its share group) and its row is deleted; otherwise the row
// stays, and once the lock is free another instance takes the session
// over.
func (p *Presence) Leave(ctx context.Context, forget bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		return nil
	}
	var err error
	if forget {
		_, err = p.conn.Exec(ctx, `DELETE FROM instances WHERE client_id = $1`, p.me.ClientID)
	}
	p.conn.Close(ctx) // and with it the locks
	p.conn = nil
	if err != nil {
		return fmt.Errorf("presence: leave: %w", err)
	}
	return nil
}
