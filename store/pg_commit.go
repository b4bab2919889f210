package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vatio-energy/vatio/internal/meter"
)

// pgRegistryLock is the advisory lock key that serializes the edits and
// erasures of the registry across instances ("vatio" + 2): the hierarchy
// they check spans meters.
const pgRegistryLock = 0x766174696f02

// next waits for the next queued entry: PostgreSQL's WAL needs no timed
// work of Vatio's.
func (pg *pgEngine) next() (entry, bool) {
	e, ok := <-pg.s.queue
	return e, ok
}

// write commits batch in one transaction (see commit), which PostgreSQL
// makes durable in its WAL, and hands it to the acknowledgements.
func (pg *pgEngine) write(batch []entry) {
	pg.s.finished(batch, pg.commit(batch))
}

// commit stores batch in one transaction of the commit flow (see
// applyBatch) and, once committed, makes it visible to readers. A
// transaction that lost a deadlock to another instance runs again.
func (pg *pgEngine) commit(batch []entry) error {
	s := pg.s
	if len(batch) == 1 && batch[0].reload {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return pg.load(ctx)
	}
	ctx := context.Background()
	start := time.Now()
	ids := map[string]bool{}
	months := map[int64]bool{}
	n := 0
	for r := range readings(batch) {
		ids[r.Meter] = true
		m, _ := pgMonth(r.Time.UnixNano())
		months[m] = true
		n++
	}
	m, _ := pgMonth(start.UnixNano()) // receive-stamped readings
	months[m] = true
	if err := pg.ensurePartitions(ctx, months); err != nil {
		return fmt.Errorf("store: pg: create partitions: %w", err)
	}
	var res *txResult
	var parts map[int64]bool
	var err error
	for attempt := 1; ; attempt++ {
		res, parts, err = pg.commitTx(ctx, batch, slices.Sorted(maps.Keys(ids)), n, start)
		if err == nil || !pgRetryable(err) || attempt == 5 {
			break
		}
		s.log.Debug("postgres: transaction lost a deadlock; running it again", slog.Int("attempt", attempt), slog.Any("error", err))
	}
	if err != nil {
		return fmt.Errorf("store: pg: commit %d readings of %d meters: %w", n, len(ids), err)
	}
	pg.partsMu.Lock()
	for m := range parts {
		pg.parts[m] = true
	}
	pg.partsMu.Unlock()
	s.applied(res, len(batch))
	return nil
}

// commitTx runs one attempt of commit's transaction, for the meters ids,
// with n readings, and returns its result and the months whose partitions
// it created.
func (pg *pgEngine) commitTx(ctx context.Context, batch []entry, ids []string, n int, start time.Time) (*txResult, map[int64]bool, error) {
	s := pg.s
	// Every commit tells the other instances of its fresh readings, watched
	// or not here.
	res := newTxResult(start, true)
	for i := range batch { // from a failed attempt
		batch[i].rejected = nil
	}
	tx, err := pg.pool.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit, a no-op
	t := &pgTx{pg: pg, ctx: ctx, tx: tx, states: map[string]meterState{}, infos: map[string]MeterInfo{}}
	if len(ids) > 0 {
		// Rows for new meters first (in id order, as the locks below, so that
		// two instances cannot wait on each other), then every row locked.
		if _, err := tx.Exec(ctx, `INSERT INTO meters (id) SELECT x FROM unnest($1::text[]) AS x ORDER BY x ON CONFLICT DO NOTHING`, ids); err != nil {
			return nil, nil, fmt.Errorf("register meters: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT `+pgMeterCols+` FROM meters WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
		if err != nil {
			return nil, nil, fmt.Errorf("lock meters: %w", err)
		}
		for rows.Next() {
			id, st, mi, err := scanMeter(rows)
			if err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("read meter states: %w", err)
			}
			t.states[id] = st
			if mi != nil {
				t.infos[id] = *mi
			}
		}
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("lock meters: %w", err)
		}
	}
	t.w = &pgWriter{ctx: ctx, tx: tx, pg: pg, rolls: newRollups(s.maxGap), months: map[int64]bool{}, bounds: bounds(batch)}
	if err := t.w.reserve(n); err != nil {
		return nil, nil, err
	}
	if err := s.applyBatch(t, batch, res); err != nil {
		return nil, nil, fmt.Errorf("apply: %w", err)
	}
	if err := t.w.finish(); err != nil {
		return nil, nil, err
	}
	if err := pgWritePF(ctx, tx, res.pfs); err != nil {
		return nil, nil, err
	}
	if err := pgWriteStates(ctx, tx, res.changed); err != nil {
		return nil, nil, err
	}
	for id, info := range res.newInfo {
		if err := t.putInfo(id, info); err != nil {
			return nil, nil, fmt.Errorf("register meter %s: %w", id, err)
		}
	}
	if len(ids) > 0 {
		// Rows of meters whose only readings were refused.
		if _, err := tx.Exec(ctx, `DELETE FROM meters WHERE id = ANY($1) AND info IS NULL`, ids); err != nil {
			return nil, nil, fmt.Errorf("drop meters with no reading: %w", err)
		}
	}
	for _, payload := range pg.notes(res.fresh) {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, pgChannel, payload); err != nil {
			return nil, nil, fmt.Errorf("notify: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, fmt.Errorf("commit: %w", err)
	}
	return res, t.w.months, nil
}

// pgTx is a PostgreSQL transaction of the commit flow (see writeTx). It
// reads meters' states and registry entries from their rows, locked, not
// from the store's cache: other instances may have changed them.
type pgTx struct {
	pg  *pgEngine
	ctx context.Context
	tx  pgx.Tx
	w   *pgWriter
	// states and infos are the locked rows of the batch's meters.
	states map[string]meterState
	infos  map[string]MeterInfo
	// registryLocked is set once the transaction holds pgRegistryLock.
	registryLocked bool
}

func (t *pgTx) state(id string) meterState { return t.states[id] }

func (t *pgTx) info(id string) (MeterInfo, bool) {
	info, ok := t.infos[id]
	return info, ok
}

func (t *pgTx) appendNewest(r meter.Reading, ns int64) (uint64, error) {
	if r.Meter == "" {
		return 0, errors.New("empty meter id")
	}
	return t.w.appendNewest(r, ns)
}

func (t *pgTx) freeNs(meterID string, ns int64) (int64, error) { return t.w.freeNs(meterID, ns) }

func (t *pgTx) resend(d meter.Delivery, nowNs int64) (bool, error) {
	e, ok := t.w.deliveries[d.Key]
	if !ok {
		err := t.tx.QueryRow(t.ctx, `SELECT at_ns FROM deliveries WHERE key = $1`, int64(d.Key)).Scan(&e.atNs)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("ledger: %w", err)
		}
	}
	return nowNs-e.atNs <= int64(redeliveryWindow), nil
}

func (t *pgTx) delivered(d meter.Delivery, nowNs int64) error {
	if t.w.deliveries == nil {
		t.w.deliveries = map[uint64]ledgerEntry{}
	}
	t.w.deliveries[d.Key] = ledgerEntry{atNs: nowNs}
	return nil
}

func (t *pgTx) putLate(r meter.Reading, ns, floor int64) (int, error) {
	return t.w.putLate(r, ns, floor)
}

func (t *pgTx) changes() *rollups { return t.w.rolls }

// register writes nothing yet: commitTx writes every new entry at the end.
func (t *pgTx) register(string, MeterInfo) error { return nil }

func (t *pgTx) cut() error {
	if err := t.w.finish(); err != nil {
		return err
	}
	t.w = &pgWriter{ctx: t.ctx, tx: t.tx, pg: t.pg, rolls: newRollups(t.pg.s.maxGap), months: t.w.months, ids: t.w.ids, bounds: t.w.bounds}
	return nil
}

// job runs nothing: PostgreSQL compresses what TOAST or TimescaleDB
// compression does, and retention runs apart (see applyRetention).
func (t *pgTx) job(e *entry, _ *txResult) error {
	if e.compress != nil {
		return nil
	}
	return errors.New("retention jobs run apart on postgres")
}

func (t *pgTx) edit(job *editJob, res *txResult) error {
	if err := t.lockRegistry(); err != nil {
		return err
	}
	return t.pg.s.runEdit(t.putInfo, job, res.newInfo)
}

// lockRegistry takes pgRegistryLock for the rest of the transaction and
// reloads the registry under it.
func (t *pgTx) lockRegistry() error {
	if t.registryLocked {
		return nil
	}
	if _, err := t.tx.Exec(t.ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgRegistryLock)); err != nil {
		return fmt.Errorf("lock the meter registry: %w", err)
	}
	t.registryLocked = true
	return t.pg.loadInfo(t.ctx, t.tx)
}

// putInfo writes meter id's registry entry.
func (t *pgTx) putInfo(id string, info MeterInfo) error {
	v, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if _, err = t.tx.Exec(t.ctx, `INSERT INTO meters (id, info) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET info = excluded.info`, id, v); err != nil {
		return fmt.Errorf("write the registry entry of %q: %w", id, err)
	}
	return nil
}

// erase is runErase for PostgreSQL: the meter's rows go, in every table.
func (t *pgTx) erase(job *eraseJob, res *txResult) error {
	s := t.pg.s
	ctx, tx := t.ctx, t.tx
	if err := t.lockRegistry(); err != nil {
		return err
	}
	row := tx.QueryRow(ctx, `SELECT `+pgMeterCols+` FROM meters WHERE id = $1 FOR UPDATE`, job.meter)
	_, st, mi, err := scanMeter(row)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && mi == nil {
		if _, ok := res.newInfo[job.meter]; !ok {
			return &refused{fmt.Errorf("%w: %q", ErrUnknownMeter, job.meter)}
		}
	} else if err != nil {
		return fmt.Errorf("erase %q: read its state: %w", job.meter, err)
	}
	if c, ok := res.changed[job.meter]; ok {
		st = c
	}
	info, _ := s.lookupInfo(job.meter, res.newInfo)
	job.result.Readings = st.Readings
	if _, err := tx.Exec(ctx, `INSERT INTO docs (kind, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value`,
		ErasedKind, job.meter, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("erase %q: note the erasure: %w", job.meter, err)
	}
	for _, q := range []string{
		`DELETE FROM readings WHERE meter = $1`,
		`DELETE FROM rollups WHERE meter = $1`,
		`DELETE FROM power_factor WHERE meter = $1`,
		`DELETE FROM archives WHERE meter = $1`,
		`DELETE FROM meters WHERE id = $1`,
	} {
		if _, err := tx.Exec(ctx, q, job.meter); err != nil {
			return fmt.Errorf("erase %q: %w", job.meter, err)
		}
	}
	if err := s.reparent(job.meter, info, res.newInfo, t.putInfo); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `DELETE FROM alerts WHERE meter = $1`, job.meter)
	if err != nil {
		return fmt.Errorf("erase %q: delete its alerts: %w", job.meter, err)
	}
	job.result.Alerts = int(tag.RowsAffected())
	// A reading after the erasure, in this transaction, starts the meter
	// anew.
	t.states[job.meter] = meterState{}
	delete(t.infos, job.meter)
	return nil
}

// loadInfo replaces the copy of the registry with the database's, inside
// tx (holding pgRegistryLock): edits check the hierarchy against it.
func (pg *pgEngine) loadInfo(ctx context.Context, tx pgx.Tx) (err error) {
	defer wrapErr(&err, "load the meter registry")
	s := pg.s
	rows, err := tx.Query(ctx, `SELECT id, info FROM meters WHERE info IS NOT NULL`)
	if err != nil {
		return err
	}
	info := map[string]MeterInfo{}
	for rows.Next() {
		var id string
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			rows.Close()
			return err
		}
		var mi MeterInfo
		if err := json.Unmarshal(v, &mi); err != nil {
			rows.Close()
			return fmt.Errorf("meter %q: registry entry: %w", id, err)
		}
		info[id] = mi
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.metersMu.Lock()
	s.info = info
	s.metersMu.Unlock()
	return nil
}

// pgWriteStates writes the changed meter states.
func pgWriteStates(ctx context.Context, tx pgx.Tx, changed map[string]meterState) error {
	if len(changed) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(changed))
	var (
		first, last, seen, readings, archived, refNs, pendNs, pendN, interval []int64
		lastW, lastWh, refWh, pendWh                                          []float64
		hasWh                                                                 []bool
	)
	for _, id := range ids {
		st := changed[id]
		first, last, seen = append(first, st.FirstNs), append(last, st.LastNs), append(seen, st.SeenNs)
		readings, archived = append(readings, int64(st.Readings)), append(archived, st.ArchivedNs)
		refNs, pendNs, pendN = append(refNs, st.RefNs), append(pendNs, st.PendNs), append(pendN, int64(st.PendN))
		interval = append(interval, st.IntervalNs)
		lastW, lastWh, refWh, pendWh = append(lastW, st.LastW), append(lastWh, st.LastWh), append(refWh, st.RefWh), append(pendWh, st.PendWh)
		hasWh = append(hasWh, st.LastHasWh)
	}
	_, err := tx.Exec(ctx, `INSERT INTO meters AS m (id, first_ns, last_ns, last_w, last_wh, last_has_wh, seen_ns,
		readings, archived_ns, ref_wh, ref_ns, pend_wh, pend_ns, pend_n, interval_ns)
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::bool[], $7::bigint[],
		$8::bigint[], $9::bigint[], $10::float8[], $11::bigint[], $12::float8[], $13::bigint[], $14::bigint[], $15::bigint[])
	ON CONFLICT (id) DO UPDATE SET first_ns = excluded.first_ns, last_ns = excluded.last_ns, last_w = excluded.last_w,
		last_wh = excluded.last_wh, last_has_wh = excluded.last_has_wh, seen_ns = excluded.seen_ns, readings = excluded.readings,
		archived_ns = excluded.archived_ns, ref_wh = excluded.ref_wh, ref_ns = excluded.ref_ns, pend_wh = excluded.pend_wh,
		pend_ns = excluded.pend_ns, pend_n = excluded.pend_n, interval_ns = excluded.interval_ns`,
		ids, first, last, lastW, lastWh, hasWh, seen, readings, archived, refWh, refNs, pendWh, pendNs, pendN, interval)
	if err != nil {
		return fmt.Errorf("write meter states: %w", err)
	}
	return nil
}

// pgWritePF adds a commit's power factor statistics to the stored ones.
func pgWritePF(ctx context.Context, tx pgx.Tx, pfs map[string]pfAgg) error {
	if len(pfs) == 0 {
		return nil
	}
	var meters []string
	var days []int64
	var sumW, sumWPF, n []float64
	for _, k := range slices.Sorted(maps.Keys(pfs)) {
		a := pfs[k]
		meters = append(meters, k[:len(k)-9])
		days = append(days, int64(binary.BigEndian.Uint64([]byte(k[len(k)-8:]))))
		sumW, sumWPF, n = append(sumW, a.sumW), append(sumWPF, a.sumWPF), append(n, a.n)
	}
	_, err := tx.Exec(ctx, `INSERT INTO power_factor AS p (meter, day, sum_w, sum_w_pf, n)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[])
		ON CONFLICT (meter, day) DO UPDATE SET sum_w = p.sum_w + excluded.sum_w,
			sum_w_pf = p.sum_w_pf + excluded.sum_w_pf, n = p.n + excluded.n`, meters, days, sumW, sumWPF, n)
	if err != nil {
		return fmt.Errorf("write power factor: %w", err)
	}
	return nil
}
