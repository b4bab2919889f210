package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// pgEngine is the PostgreSQL side of a Store opened with OpenPostgres. The
// Store keeps its queue, group commit, acknowledgements, counter rules and
// rollup arithmetic; the engine stores what they produce in PostgreSQL, so
// both engines behave alike (the shared test suite checks it).
//
// Several Vatio instances may share one database. Every commit locks the
// rows of its meters (SELECT ... FOR UPDATE) and reads their state there,
// so readings of one meter arriving at two instances are still checked
// against each other in commit order. Each instance keeps a copy of the
// meters' states and registry for its readers, reloaded when another
// instance says (NOTIFY vatio_commit) that it committed; the same
// notification carries the newest readings to the live streams of every
// instance (see Watch).
type pgEngine struct {
	s         *Store
	pool      *pgxpool.Pool
	display   string // the DSN without its password, for logs and Path
	timescale bool
	// instance names this process in its notifications, to skip its own.
	instance string

	partsMu sync.Mutex
	parts   map[int64]bool // starts of months whose partitions exist

	// stale is set while the copy of the meters may be behind the database:
	// another instance committed, or the notifications are not received.
	stale atomic.Bool
	// loadMu makes one reload at a time.
	loadMu sync.Mutex

	stopListen context.CancelFunc
	listenDone chan struct{}
}

// pgChannel is the NOTIFY channel of commits.
const pgChannel = "vatio_commit"

// OpenPostgres opens the store in the PostgreSQL database of dsn (a URL or
// key=value connection string), creating or migrating its tables, and
// starts the writer. dir keeps what stays on this machine: the scheduled
// backups. Several instances may open the same database at once.
func OpenPostgres(dsn, dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults(dir)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres dsn: %w", err)
	}
	cfg.MaxConns = max(cfg.MaxConns, 8)
	display := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres %s: %w", display, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres %s: %w", display, err)
	}
	timescale, err := pgMigrate(ctx, pool, opts.Logger)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres %s: %w", display, err)
	}
	id := make([]byte, 8)
	rand.Read(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	s := newStore(display, opts)
	pg := &pgEngine{s: s, pool: pool, display: display, timescale: timescale, instance: hex.EncodeToString(id), parts: map[int64]bool{}}
	s.eng = pg
	if err := pg.load(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres %s: %w", display, err)
	}
	pg.stale.Store(true) // until the listener is up
	lctx, stop := context.WithCancel(context.Background())
	pg.stopListen, pg.listenDone = stop, make(chan struct{})
	go pg.listen(lctx)
	if err := s.startBackups(dir, opts); err != nil {
		pg.close()
		return nil, err
	}
	s.start()
	if timescale {
		opts.Logger.Info("postgresql store with TimescaleDB", slog.String("db", display))
	} else {
		opts.Logger.Info("postgresql store", slog.String("db", display))
	}
	return s, nil
}

// close stops listening and closes the pool.
func (pg *pgEngine) close() error {
	pg.stopListen()
	<-pg.listenDone
	pg.pool.Close()
	return nil
}

// size is the database's size, as PostgreSQL counts it.
func (pg *pgEngine) size() int64 {
	var n int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = pg.pool.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n)
	return n
}

// shared is true: several instances may open the same database.
func (pg *pgEngine) shared() bool { return true }

// health is nil: a commit PostgreSQL refuses fails its own readings, and
// the next is tried anew.
func (pg *pgEngine) health() error { return nil }

// ErrPostgresBackup is returned by the backups of a PostgreSQL store: its
// database is backed up by PostgreSQL's own tools (pg_dump, base backups
// with WAL archiving), which a database team already runs.
var ErrPostgresBackup = errors.New("store: a PostgreSQL store is backed up by PostgreSQL (pg_dump or base backups), not by Vatio")

// backups is ErrPostgresBackup.
func (pg *pgEngine) backups() error { return ErrPostgresBackup }

// backup writes nothing and returns ErrPostgresBackup.
func (pg *pgEngine) backup(io.Writer) (int64, error) { return 0, ErrPostgresBackup }

// compress moves nothing: PostgreSQL compresses its own pages (TOAST,
// TimescaleDB).
func (pg *pgEngine) compress(context.Context, time.Time) (int, error) { return 0, nil }

// collect adds nothing: PostgreSQL's own statistics tell what its WAL and
// tables do.
func (pg *pgEngine) collect(chan<- prometheus.Metric) {}

// checkpoint is Flush: a commit on PostgreSQL is in the database proper.
func (pg *pgEngine) checkpoint() error { return pg.s.Flush() }

// pgMeterCols are the meters columns of a meterState, in scan order.
const pgMeterCols = `id, first_ns, last_ns, last_w, last_wh, last_has_wh, seen_ns, readings, archived_ns,
	ref_wh, ref_ns, pend_wh, pend_ns, pend_n, interval_ns, info`

// scanMeter reads one meters row.
func scanMeter(row pgx.Row) (string, meterState, *MeterInfo, error) {
	var id string
	var st meterState
	var readings, pendN int64
	var info []byte
	err := row.Scan(&id, &st.FirstNs, &st.LastNs, &st.LastW, &st.LastWh, &st.LastHasWh, &st.SeenNs, &readings,
		&st.ArchivedNs, &st.RefWh, &st.RefNs, &st.PendWh, &st.PendNs, &pendN, &st.IntervalNs, &info)
	if err != nil {
		return "", st, nil, err
	}
	st.Readings, st.PendN = uint64(readings), uint64(pendN)
	if info == nil {
		return id, st, nil, nil
	}
	var mi MeterInfo
	if err := json.Unmarshal(info, &mi); err != nil {
		return "", st, nil, fmt.Errorf("meter %q: registry entry: %w", id, err)
	}
	return id, st, &mi, nil
}

// load reads every registered meter's state and entry into the copy
// readers use.
func (pg *pgEngine) load(ctx context.Context) error {
	s := pg.s
	pg.loadMu.Lock()
	defer pg.loadMu.Unlock()
	pg.stale.Store(false) // a commit notified from now on marks it again
	rows, err := pg.pool.Query(ctx, `SELECT `+pgMeterCols+` FROM meters WHERE info IS NOT NULL`)
	if err != nil {
		pg.stale.Store(true)
		return err
	}
	meters, info := map[string]meterState{}, map[string]MeterInfo{}
	for rows.Next() {
		id, st, mi, err := scanMeter(rows)
		if err != nil {
			rows.Close()
			pg.stale.Store(true)
			return err
		}
		meters[id], info[id] = st, *mi
	}
	if err := rows.Err(); err != nil {
		pg.stale.Store(true)
		return err
	}
	s.metersMu.Lock()
	s.meters, s.info = meters, info
	s.metersMu.Unlock()
	return nil
}

// refresh reloads the copy of the meters if another instance may have
// changed them. A failed reload keeps the old copy, logged.
//
// The reload runs on the writer, which reads the copy without a lock
// (registry entries, meter states): a reader replacing it would race it.
func (pg *pgEngine) refresh() {
	s := pg.s
	if !pg.stale.Load() {
		return
	}
	done := make(chan error, 1)
	if err := s.enqueue(entry{reload: true, done: func(err error) { done <- err }}); err != nil {
		return
	}
	select {
	case err := <-done:
		if err != nil {
			s.log.Warn("postgres: reload meters", slog.Any("error", err))
		}
	case <-time.After(10 * time.Second): // the writer is stuck: the copy as it is
	}
}

// pgNote is the payload of a commit notification: the instance that
// committed and the readings it stored as their meters' newest, as
// [meter, ns, id, power_w, energy_wh or null].
type pgNote struct {
	Instance string  `json:"i"`
	Records  [][]any `json:"r,omitempty"`
}

// pgNoteMax keeps notifications under PostgreSQL's 8000-byte payload limit.
const pgNoteMax = 7000

// notes returns the notifications of a commit that stored recs.
func (pg *pgEngine) notes(recs []Record) []string {
	var out []string
	note := pgNote{Instance: pg.instance}
	size := 0
	flush := func() {
		b, _ := json.Marshal(note)
		out = append(out, string(b))
		note.Records, size = nil, 0
	}
	for _, r := range recs {
		row := []any{r.Meter, r.Time.UnixNano(), r.ID, r.PowerW, nil}
		if r.HasEnergy {
			row[4] = r.EnergyWh
		}
		n := len(r.Meter) + 80
		if size+n > pgNoteMax && len(note.Records) > 0 {
			flush()
		}
		note.Records = append(note.Records, row)
		size += n
	}
	if len(note.Records) > 0 || len(out) == 0 {
		flush()
	}
	return out
}

// listen receives the commit notifications of the other instances: they
// mark the copy of the meters stale and feed the watchers. While it is not
// listening the copy is taken as stale, and reloaded at each read.
func (pg *pgEngine) listen(ctx context.Context) {
	s := pg.s
	defer close(pg.listenDone)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := pg.listenOnce(ctx)
		pg.stale.Store(true)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres: notifications lost; reconnecting", slog.Any("error", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (pg *pgEngine) listenOnce(ctx context.Context) error {
	s := pg.s
	conn, err := pg.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN `+pgChannel); err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool: it must not keep listening.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `UNLISTEN *`)
	}()
	pg.stale.Store(true) // whatever was committed before LISTEN
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var note pgNote
		dec := json.NewDecoder(strings.NewReader(n.Payload))
		dec.UseNumber() // nanoseconds and ids need all 64 bits
		if err := dec.Decode(&note); err != nil || note.Instance == pg.instance {
			continue
		}
		pg.stale.Store(true)
		if len(note.Records) == 0 || s.watchers.count.Load() == 0 {
			continue
		}
		recs := make([]Record, 0, len(note.Records))
		for _, row := range note.Records {
			if r, ok := pgNoteRecord(row); ok {
				recs = append(recs, r)
			}
		}
		s.watchers.send(recs)
	}
}

func pgNoteRecord(row []any) (Record, bool) {
	if len(row) != 5 {
		return Record{}, false
	}
	m, ok := row[0].(string)
	num := func(v any) (json.Number, bool) { n, ok := v.(json.Number); return n, ok }
	nsN, ok1 := num(row[1])
	idN, ok2 := num(row[2])
	wN, ok3 := num(row[3])
	if !ok || !ok1 || !ok2 || !ok3 {
		return Record{}, false
	}
	ns, err1 := nsN.Int64()
	id, err2 := idN.Int64()
	w, err3 := wN.Float64()
	if err1 != nil || err2 != nil || err3 != nil {
		return Record{}, false
	}
	r := Record{Meter: m, Time: time.Unix(0, ns).UTC(), ID: uint64(id), PowerW: w}
	if whN, ok := num(row[4]); ok {
		if wh, err := whN.Float64(); err == nil {
			r.EnergyWh, r.HasEnergy = wh, true
		}
	}
	return r, true
}

// pgRetryable reports whether err is a deadlock or serialization failure,
// after which the whole transaction can run again.
func pgRetryable(err error) bool {
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) {
		switch pgErr.SQLState() {
		case "40P01", "40001":
			return true
		}
	}
	return false
}
