package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL layout (see OpenPostgres). Times are Unix nanoseconds in
// bigint columns, as in the bbolt file, so both stores agree to the
// nanosecond and the counter and rollup rules run on the same numbers.
//
//	vatio_schema    one row per migration applied
//	meters          one row per meter: the writer's state (see meterState)
//	                and the registry entry (info, JSON MeterInfo)
//	readings        (meter, ts) -> id, power_w, energy_wh; partitioned by
//	                month of ts (plain PostgreSQL partitions, created ahead
//	                by the writer) or a TimescaleDB hypertable when the
//	                extension is installed
//	rollups         (meter, tier, start) -> the bucket's aggregate (see agg),
//	                tiers 1 (1m), 2 (1h) and 3 (1d)
//	power_factor    (meter, day) -> the day's power factor statistics
//	alerts          id -> JSON Alert
//	docs            (kind, key) -> value: rules, rule states, users...;
//	                listed in byte order of keys (COLLATE "C"), as on bbolt
//	archives        (meter, month) -> the month's archive file, as written
//	                to disk by the bbolt store (gzip CSV, sealed when a key
//	                is set): retention moves raw readings here
//	deliveries      message (a hash of session, packet id, topic, payload)
//	                -> time: the ledger of messages stored, for resends
//	                (see ledger)
//	instances       client id -> the broker session of an instance sharing
//	                the database (see leader.Presence)
var pgMigrations = []struct {
	name string
	sql  string
}{
	{"initial layout", `
CREATE TABLE meters (
	id          text PRIMARY KEY,
	first_ns    bigint NOT NULL DEFAULT 0,
	last_ns     bigint NOT NULL DEFAULT 0,
	last_w      double precision NOT NULL DEFAULT 0,
	last_wh     double precision NOT NULL DEFAULT 0,
	last_has_wh boolean NOT NULL DEFAULT false,
	seen_ns     bigint NOT NULL DEFAULT 0,
	readings    bigint NOT NULL DEFAULT 0,
	archived_ns bigint NOT NULL DEFAULT 0,
	ref_wh      double precision NOT NULL DEFAULT 0,
	ref_ns      bigint NOT NULL DEFAULT 0,
	pend_wh     double precision NOT NULL DEFAULT 0,
	pend_ns     bigint NOT NULL DEFAULT 0,
	pend_n      bigint NOT NULL DEFAULT 0,
	interval_ns bigint NOT NULL DEFAULT 0,
	info        jsonb
);
CREATE SEQUENCE reading_id;
CREATE TABLE readings (
	meter     text NOT NULL,
	ts        bigint NOT NULL,
	id        bigint NOT NULL,
	power_w   double precision NOT NULL,
	energy_wh double precision,
	PRIMARY KEY (meter, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE rollups (
	meter  text NOT NULL,
	tier   smallint NOT NULL,
	start  bigint NOT NULL,
	n      bigint NOT NULL,
	sum_w  double precision NOT NULL,
	min_w  double precision NOT NULL,
	max_w  double precision NOT NULL,
	in_wh  double precision NOT NULL,
	out_wh double precision NOT NULL,
	PRIMARY KEY (meter, tier, start)
);
CREATE TABLE power_factor (
	meter    text NOT NULL,
	day      bigint NOT NULL,
	sum_w    double precision NOT NULL,
	sum_w_pf double precision NOT NULL,
	n        double precision NOT NULL,
	PRIMARY KEY (meter, day)
);
CREATE TABLE alerts (
	id    bigserial PRIMARY KEY,
	meter text,
	body  jsonb NOT NULL
);
CREATE INDEX alerts_meter ON alerts (meter);
CREATE TABLE docs (
	kind  text NOT NULL,
	key   text NOT NULL,
	value bytea NOT NULL,
	PRIMARY KEY (kind, key)
);
CREATE TABLE archives (
	meter   text NOT NULL,
	month   bigint NOT NULL,
	name    text NOT NULL,
	data    bytea NOT NULL,
	PRIMARY KEY (meter, month)
);
`},
	{"instances and deliveries", `
CREATE TABLE deliveries (
	key   bigint PRIMARY KEY,
	at_ns bigint NOT NULL
);
CREATE TABLE instances (
	client_id text PRIMARY KEY,
	filters   text[] NOT NULL,
	host      text NOT NULL,
	pid       int NOT NULL,
	started   timestamptz NOT NULL DEFAULT now(),
	seen      timestamptz NOT NULL DEFAULT now(),
	received  bigint NOT NULL DEFAULT 0,
	taken_by  text,
	leaving   boolean NOT NULL DEFAULT false
);
`},
	// Documents are listed newest first by key (the audit log's keys are
	// times), the keys compared as bytes, as on bbolt (ORDER BY key
	// COLLATE "C"), whatever the database's collation: this index serves
	// that order. The column keeps its type, so instances of the version
	// before, running during an upgrade, see no change.
	{"documents in byte order", `
CREATE INDEX docs_kind_key_bytes ON docs (kind, key COLLATE "C");
`},
}

// pgSchemaVersion is the layout this Vatio writes in PostgreSQL.
var pgSchemaVersion = len(pgMigrations)

// pgMigrateLock is the advisory lock key that makes instances starting
// together migrate one at a time ("vatio" + 1).
const pgMigrateLock = 0x766174696f01

// pgMigrate brings the database's schema to pgSchemaVersion, one
// transaction per migration, holding an advisory lock so that several
// instances starting at once do not race. A database migrated by a newer
// Vatio is refused untouched. It reports whether TimescaleDB is installed.
func pgMigrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (timescale bool, err error) {
	defer func() {
		if err != nil && !errors.Is(err, ErrNewerSchema) {
			err = fmt.Errorf("migrate the schema: %w", err)
		}
	}()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(pgMigrateLock)); err != nil {
		return false, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(pgMigrateLock)) //nolint:errcheck // the session ends with the connection anyway
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS vatio_schema (
		version int PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return false, fmt.Errorf("create vatio_schema: %w", err)
	}
	var version int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM vatio_schema`).Scan(&version); err != nil {
		return false, err
	}
	if version > pgSchemaVersion {
		return false, fmt.Errorf("%w: the database has schema version %d, this Vatio reads up to %d; upgrade Vatio (nothing was changed)",
			ErrNewerSchema, version, pgSchemaVersion)
	}
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')`).Scan(&timescale)
	if err != nil {
		return false, err
	}
	for v := version; v < pgSchemaVersion; v++ {
		m := pgMigrations[v]
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// A migration waits for a table's lock a while, not for ever
			// (every other instance's queries would queue behind it).
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			if v == 0 && timescale {
				if err := pgHypertables(ctx, tx); err != nil {
					return fmt.Errorf("timescaledb: %w", err)
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO vatio_schema (version, name) VALUES ($1, $2)`, v+1, m.name)
			return err
		})
		if err != nil {
			return false, fmt.Errorf("to version %d (%s): %w", v+1, m.name, err)
		}
		log.Info("postgresql schema migrated", slog.Int("to", v+1), slog.String("name", m.name))
	}
	return timescale, nil
}

// pgHypertables makes readings a TimescaleDB hypertable of one-week chunks
// in place of monthly partitions. The table is re-created unpartitioned
// first: a hypertable cannot be a partitioned table.
func pgHypertables(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
DROP TABLE readings;
CREATE TABLE readings (
	meter     text NOT NULL,
	ts        bigint NOT NULL,
	id        bigint NOT NULL,
	power_w   double precision NOT NULL,
	energy_wh double precision,
	PRIMARY KEY (meter, ts)
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => 604800000000000);`)
	return err
}

// pgMonth returns the start of the UTC month holding ns and of the next.
func pgMonth(ns int64) (from, to int64) {
	t := time.Unix(0, ns).UTC()
	m := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return m.UnixNano(), m.AddDate(0, 1, 0).UnixNano()
}

// ensurePartitions creates the monthly partitions of readings that months
// (starts of months) need and are not known to exist, each in a short
// transaction of its own, before the commit that writes into them: creating
// a partition locks the parent table, which a long commit must not hold.
func (pg *pgEngine) ensurePartitions(ctx context.Context, months map[int64]bool) error {
	if pg.timescale {
		return nil
	}
	for m := range months {
		pg.partsMu.Lock()
		known := pg.parts[m]
		pg.partsMu.Unlock()
		if known {
			continue
		}
		from, to := pgMonth(m)
		name := "readings_" + time.Unix(0, from).UTC().Format("2006_01")
		if from < 0 {
			name = fmt.Sprintf("readings_m%d", -from)
		}
		_, err := pg.pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF readings FOR VALUES FROM (%d) TO (%d)`,
			pgx.Identifier{name}.Sanitize(), from, to))
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) && (pgErr.SQLState() == "42P07" || pgErr.SQLState() == "23505") {
			err = nil // another instance created it meanwhile
		}
		if err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
		pg.partsMu.Lock()
		pg.parts[m] = true
		pg.partsMu.Unlock()
	}
	return nil
}
