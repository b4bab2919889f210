package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vatio-energy/vatio/internal/meter"
)

// pgWriter stores readings in one PostgreSQL transaction, as txWriter does
// in a bbolt one: new readings are copied in at finish (COPY), late ones
// are written at once, and the rollup changes are applied by finish.
type pgWriter struct {
	ctx context.Context
	tx  pgx.Tx
	pg  *pgEngine
	// ids are reading ids taken from the sequence for this transaction.
	ids []int64
	// rows are the new readings not yet copied in.
	rows [][]any
	// months are the partitions this transaction created.
	months map[int64]bool
	rolls  *rollups
	// spans are, per meter, the stored readings around this transaction's
	// late ones, loaded once (see span); updates are the late readings
	// that replace stored ones, written at flush.
	spans   map[string]*lateSpan
	updates map[lateKey][]any
	// bounds are each meter's earliest and latest stamped reading in the
	// transaction: the span to load.
	bounds map[string][2]int64
	// deliveries are the ledger entries of the messages stored (see
	// ledger), written at finish.
	deliveries map[uint64]ledgerEntry
}

// lateSpan is what a transaction knows of one meter's stored readings from
// its earliest late reading on: every one of them by time (those already
// stored and those this transaction adds), so that late readings need no
// round trip each.
type lateSpan struct {
	from  int64
	known map[int64]lateValue
	times []int64 // the keys of known, sorted
	after *int64  // the first stored reading past the loaded range
	to    int64   // the loaded range's end (inclusive)
}

type lateKey struct {
	meter string
	ns    int64
}

type lateValue struct {
	powerW, energyWh float64
	hasEnergy        bool
}

// reserve takes n reading ids from the sequence in one round trip.
func (w *pgWriter) reserve(n int) error {
	if n <= 0 {
		return nil
	}
	rows, err := w.tx.Query(w.ctx, `SELECT nextval('reading_id') FROM generate_series(1, $1)`, n)
	if err != nil {
		return fmt.Errorf("reserve reading ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("reserve reading ids: %w", err)
	}
	w.ids = append(w.ids, ids...)
	return nil
}

func (w *pgWriter) nextID() (int64, error) {
	if len(w.ids) == 0 {
		if err := w.reserve(1); err != nil {
			return 0, err
		}
	}
	id := w.ids[0]
	w.ids = w.ids[1:]
	return id, nil
}

// appendNewest stores reading r, at ns, as its meter's newest: a row to
// copy in.
func (w *pgWriter) appendNewest(r meter.Reading, ns int64) (uint64, error) {
	id, err := w.nextID()
	if err != nil {
		return 0, err
	}
	w.rows = append(w.rows, []any{r.Meter, ns, id, r.PowerW, pgEnergy(r)})
	if sp := w.spans[r.Meter]; sp != nil {
		sp.known[ns] = lateValue{r.PowerW, r.EnergyWh, r.HasEnergy}
		sp.times = append(sp.times, ns) // the newest: last
		sp.to = max(sp.to, ns)
	}
	return uint64(id), nil
}

// freeNs is txWriter.freeNs for PostgreSQL.
func (w *pgWriter) freeNs(meterID string, ns int64) (int64, error) {
	for {
		sp, err := w.span(meterID, ns)
		if err != nil {
			return 0, err
		}
		if _, taken := sp.known[ns]; !taken {
			return ns, nil
		}
		ns += int64(time.Millisecond)
	}
}

func pgEnergy(r meter.Reading) any {
	if r.HasEnergy {
		return r.EnergyWh
	}
	return nil
}

// putLate is txWriter.putLate for PostgreSQL.
func (w *pgWriter) putLate(r meter.Reading, ns, floor int64) (int, error) {
	sp, err := w.span(r.Meter, ns)
	if err != nil {
		return 0, err
	}
	added := 0
	if old, ok := sp.known[ns]; ok {
		if resend(old.powerW, old.energyWh, old.hasEnergy, r) {
			return 0, nil // a resend: nothing changes
		}
		if w.updates == nil {
			w.updates = map[lateKey][]any{}
		}
		w.updates[lateKey{r.Meter, ns}] = []any{r.Meter, ns, r.PowerW, pgEnergy(r)}
	} else {
		id, err := w.nextID()
		if err != nil {
			return 0, err
		}
		w.rows = append(w.rows, []any{r.Meter, ns, id, r.PowerW, pgEnergy(r)})
		i, _ := slices.BinarySearch(sp.times, ns)
		sp.times = slices.Insert(sp.times, i, ns)
		added = 1
	}
	sp.known[ns] = lateValue{r.PowerW, r.EnergyWh, r.HasEnergy}
	if floor >= 0 {
		next, hasNext := int64(0), false
		if i, _ := slices.BinarySearch(sp.times, ns+1); i < len(sp.times) {
			next, hasNext = sp.times[i], true
		} else if sp.after != nil {
			next, hasNext = *sp.after, true
		}
		w.rolls.changedAt(r.Meter, ns, next, hasNext, floor)
	}
	return added, nil
}

// bounds returns each meter's earliest and latest stamped reading in
// batch.
func bounds(batch []entry) map[string][2]int64 {
	out := map[string][2]int64{}
	for r := range readings(batch) {
		if !r.Stamped {
			continue
		}
		ns := r.Time.UnixNano()
		b, ok := out[r.Meter]
		if !ok {
			b = [2]int64{ns, ns}
		}
		out[r.Meter] = [2]int64{min(b[0], ns), max(b[1], ns)}
	}
	return out
}

// span returns meter id's late span, loading the stored readings from the
// earliest of the transaction's readings of id (at most ns) to its latest
// (at least ns).
func (w *pgWriter) span(id string, ns int64) (_ *lateSpan, err error) {
	defer wrapErr(&err, "load the readings of %q around %s", id, time.Unix(0, ns).UTC().Format(time.RFC3339Nano))
	if sp := w.spans[id]; sp != nil && ns >= sp.from && ns <= sp.to {
		return sp, nil
	}
	if err := w.flush(); err != nil { // what this transaction stored, to be seen
		return nil, err
	}
	b, ok := w.bounds[id]
	if !ok {
		b = [2]int64{ns, ns}
	}
	from, to := min(b[0], ns), max(b[1], ns)
	if sp := w.spans[id]; sp != nil { // a reading outside the span: load again, wider
		from, to = min(from, sp.from), max(to, sp.to)
		if ns > sp.to {
			// Past it: freeNs looking for a free millisecond after
			// readings of other instances. A second more at a time, not
			// a load per millisecond.
			to = max(to, ns+int64(time.Second))
		}
	}
	rows, err := w.tx.Query(w.ctx, `SELECT ts, power_w, energy_wh FROM readings WHERE meter = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts`, id, from, to)
	if err != nil {
		return nil, err
	}
	sp := &lateSpan{from: from, to: to, known: map[int64]lateValue{}}
	for rows.Next() {
		var t int64
		var v lateValue
		var wh *float64
		if err := rows.Scan(&t, &v.powerW, &wh); err != nil {
			rows.Close()
			return nil, err
		}
		v.energyWh, v.hasEnergy = derefOr(wh), wh != nil
		sp.known[t] = v
		sp.times = append(sp.times, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := w.tx.QueryRow(w.ctx, `SELECT min(ts) FROM readings WHERE meter = $1 AND ts > $2`, id, to).Scan(&sp.after); err != nil {
		return nil, err
	}
	if w.spans == nil {
		w.spans = map[string]*lateSpan{}
	}
	w.spans[id] = sp
	return sp, nil
}

func derefOr[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// partition creates, inside the transaction, the partition of ns if the
// writer does not know it: a reading stamped far from the batch's months.
func (w *pgWriter) partition(ns int64) error {
	if w.pg.timescale {
		return nil
	}
	m, _ := pgMonth(ns)
	w.pg.partsMu.Lock()
	known := w.pg.parts[m] || w.months[m]
	w.pg.partsMu.Unlock()
	if known {
		return nil
	}
	from, to := pgMonth(ns)
	name := "readings_" + time.Unix(0, from).UTC().Format("2006_01")
	if from < 0 {
		name = fmt.Sprintf("readings_m%d", -from)
	}
	if _, err := w.tx.Exec(w.ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF readings FOR VALUES FROM (%d) TO (%d)`,
		pgx.Identifier{name}.Sanitize(), from, to)); err != nil {
		return fmt.Errorf("create partition %s: %w", name, err)
	}
	w.months[m] = true
	return nil
}

// flush copies the new readings in, then writes the replaced ones (which
// may be among them).
func (w *pgWriter) flush() error {
	if len(w.rows) > 0 {
		for _, row := range w.rows {
			if err := w.partition(row[1].(int64)); err != nil {
				return err
			}
		}
		_, err := w.tx.CopyFrom(w.ctx, pgx.Identifier{"readings"}, []string{"meter", "ts", "id", "power_w", "energy_wh"}, pgx.CopyFromRows(w.rows))
		if err != nil {
			return fmt.Errorf("copy readings: %w", err)
		}
		w.rows = w.rows[:0]
	}
	if len(w.updates) > 0 {
		var meters []string
		var ts []int64
		var pw []float64
		var wh []*float64
		for _, u := range w.updates {
			meters, ts, pw = append(meters, u[0].(string)), append(ts, u[1].(int64)), append(pw, u[2].(float64))
			var e *float64
			if v, ok := u[3].(float64); ok {
				e = &v
			}
			wh = append(wh, e)
		}
		if _, err := w.tx.Exec(w.ctx, `UPDATE readings AS r SET power_w = u.power_w, energy_wh = u.energy_wh
			FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[]) AS u(meter, ts, power_w, energy_wh)
			WHERE r.meter = u.meter AND r.ts = u.ts`, meters, ts, pw, wh); err != nil {
			return fmt.Errorf("replace readings: %w", err)
		}
		clear(w.updates)
	}
	return nil
}

// finish copies the new readings in, then applies the rollup changes as
// rollups.apply does: additions merged into the stored buckets, minutes
// rebuilt from the readings, and the hours and days above them.
func (w *pgWriter) finish() error {
	if err := w.flush(); err != nil {
		return err
	}
	if err := w.writeLedger(); err != nil {
		return err
	}
	r := w.rolls
	var (
		meters                        []string
		tiers                         []int16
		starts, ns                    []int64
		sumW, minW, maxW, inWh, outWh []float64
	)
	for _, k := range sortedKeys(r.add) {
		if k.tier == TierMinute && r.rebuild[k] {
			continue // rebuilt from raw below
		}
		a := r.add[k]
		meters, tiers, starts = append(meters, k.meter), append(tiers, int16(k.tier)), append(starts, k.start)
		ns = append(ns, int64(a.N))
		sumW, minW, maxW, inWh, outWh = append(sumW, a.SumW), append(minW, a.MinW), append(maxW, a.MaxW), append(inWh, a.InWh), append(outWh, a.OutWh)
	}
	if len(meters) > 0 {
		_, err := w.tx.Exec(w.ctx, `INSERT INTO rollups AS r (meter, tier, start, n, sum_w, min_w, max_w, in_wh, out_wh)
			SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[])
			ON CONFLICT (meter, tier, start) DO UPDATE SET
				min_w = CASE WHEN r.n = 0 THEN excluded.min_w WHEN excluded.n = 0 THEN r.min_w ELSE least(r.min_w, excluded.min_w) END,
				max_w = CASE WHEN r.n = 0 THEN excluded.max_w WHEN excluded.n = 0 THEN r.max_w ELSE greatest(r.max_w, excluded.max_w) END,
				n = r.n + excluded.n, sum_w = r.sum_w + excluded.sum_w,
				in_wh = r.in_wh + excluded.in_wh, out_wh = r.out_wh + excluded.out_wh`,
			meters, tiers, starts, ns, sumW, minW, maxW, inWh, outWh)
		if err != nil {
			return fmt.Errorf("write rollups: %w", err)
		}
	}
	if len(r.rebuild) == 0 {
		return nil
	}
	byMeter := map[string][]int64{}
	for k := range r.rebuild {
		byMeter[k.meter] = append(byMeter[k.meter], k.start)
	}
	for _, id := range slices.Sorted(maps.Keys(byMeter)) {
		minutes := byMeter[id]
		slices.Sort(minutes)
		samples, err := w.samples(id, minutes[0]-r.maxGap, minutes[len(minutes)-1]+TierMinute.stepNs())
		if err != nil {
			return err
		}
		aggs := make(map[int64]agg, len(minutes))
		hours := map[int64]bool{}
		for _, m := range minutes {
			aggs[m] = minuteFromSamples(samples, m, r.maxGap)
			hours[TierHour.start(m)] = true
		}
		if err := w.putAggs(id, TierMinute, aggs); err != nil {
			return err
		}
		days, err := w.rebuildFrom(id, TierHour, TierMinute, hours)
		if err != nil {
			return err
		}
		if _, err := w.rebuildFrom(id, TierDay, TierHour, days); err != nil {
			return err
		}
	}
	return nil
}

// samples returns meter id's readings with from <= ts < to, with the one
// before from and the one at or after to, oldest first.
func (w *pgWriter) samples(id string, from, to int64) (_ []sample, err error) {
	defer wrapErr(&err, "read the readings of %q for its minutes", id)
	rows, err := w.tx.Query(w.ctx, `
		(SELECT ts, power_w, energy_wh FROM readings WHERE meter = $1 AND ts < $2 ORDER BY ts DESC LIMIT 1)
		UNION ALL
		(SELECT ts, power_w, energy_wh FROM readings WHERE meter = $1 AND ts >= $2 AND ts < $3)
		UNION ALL
		(SELECT ts, power_w, energy_wh FROM readings WHERE meter = $1 AND ts >= $3 ORDER BY ts LIMIT 1)
		ORDER BY ts`, id, from, to)
	if err != nil {
		return nil, err
	}
	var out []sample
	for rows.Next() {
		var s sample
		var wh *float64
		if err := rows.Scan(&s.ns, &s.w, &wh); err != nil {
			rows.Close()
			return nil, err
		}
		s.wh, s.hasEnergy = derefOr(wh), wh != nil
		out = append(out, s)
	}
	return out, rows.Err()
}

// minuteFromSamples is minuteFromReadings over samples, oldest first, that
// hold the readings around the minute at start.
func minuteFromSamples(ss []sample, start, maxGap int64) agg {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].ns >= start-maxGap })
	var prev *sample
	if i > 0 {
		prev = &ss[i-1]
	}
	a, _ := minuteOf(prev, func(yield func(sample, error) bool) {
		for _, s := range ss[i:] {
			if !yield(s, nil) {
				return
			}
		}
	}, start, maxGap)
	return a
}

// putAggs stores meter id's buckets of tier t, deleting those that hold
// nothing.
func (w *pgWriter) putAggs(id string, t Tier, aggs map[int64]agg) error {
	var gone, starts, ns []int64
	var sumW, minW, maxW, inWh, outWh []float64
	for _, start := range slices.Sorted(maps.Keys(aggs)) {
		a := aggs[start]
		if a.N == 0 && a.InWh == 0 && a.OutWh == 0 {
			gone = append(gone, start)
			continue
		}
		starts, ns = append(starts, start), append(ns, int64(a.N))
		sumW, minW, maxW, inWh, outWh = append(sumW, a.SumW), append(minW, a.MinW), append(maxW, a.MaxW), append(inWh, a.InWh), append(outWh, a.OutWh)
	}
	if len(gone) > 0 {
		if _, err := w.tx.Exec(w.ctx, `DELETE FROM rollups WHERE meter = $1 AND tier = $2 AND start = ANY($3)`, id, int16(t), gone); err != nil {
			return fmt.Errorf("rollup %s of %q: %w", t, id, err)
		}
	}
	if len(starts) > 0 {
		_, err := w.tx.Exec(w.ctx, `INSERT INTO rollups (meter, tier, start, n, sum_w, min_w, max_w, in_wh, out_wh)
			SELECT $1, $2, * FROM unnest($3::bigint[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[])
			ON CONFLICT (meter, tier, start) DO UPDATE SET n = excluded.n, sum_w = excluded.sum_w, min_w = excluded.min_w,
				max_w = excluded.max_w, in_wh = excluded.in_wh, out_wh = excluded.out_wh`,
			id, int16(t), starts, ns, sumW, minW, maxW, inWh, outWh)
		if err != nil {
			return fmt.Errorf("rollup %s of %q: %w", t, id, err)
		}
	}
	return nil
}

// rebuildFrom recomputes meter id's buckets of tier t at starts from the
// buckets of the finer tier below, and returns the starts of the buckets
// of the tier above that hold them.
func (w *pgWriter) rebuildFrom(id string, t, below Tier, starts map[int64]bool) (_ map[int64]bool, err error) {
	defer wrapErr(&err, "rebuild the %s rollups of %q", t, id)
	keys := slices.Sorted(maps.Keys(starts))
	rows, err := w.tx.Query(w.ctx, `SELECT start, n, sum_w, min_w, max_w, in_wh, out_wh FROM rollups
		WHERE meter = $1 AND tier = $2 AND start >= $3 AND start < $4 ORDER BY start`,
		id, int16(below), keys[0], keys[len(keys)-1]+t.stepNs())
	if err != nil {
		return nil, err
	}
	aggs := make(map[int64]agg, len(keys))
	for _, k := range keys {
		aggs[k] = agg{}
	}
	for rows.Next() {
		var start, n int64
		var b agg
		if err := rows.Scan(&start, &n, &b.SumW, &b.MinW, &b.MaxW, &b.InWh, &b.OutWh); err != nil {
			rows.Close()
			return nil, err
		}
		b.N = uint64(n)
		if a, ok := aggs[t.start(start)]; ok {
			a.merge(b)
			aggs[t.start(start)] = a
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	up := map[int64]bool{}
	if t < TierDay {
		for _, k := range keys {
			up[(t + 1).start(k)] = true
		}
	}
	return up, w.putAggs(id, t, aggs)
}

// writeLedger writes the transaction's entries of the ledger of messages
// stored (see ledger), and, now and then, forgets those past the window.
func (w *pgWriter) writeLedger() error {
	if len(w.deliveries) == 0 {
		return nil
	}
	keys, ats := make([]int64, 0, len(w.deliveries)), make([]int64, 0, len(w.deliveries))
	var newest int64
	for k, e := range w.deliveries {
		keys, ats = append(keys, int64(k)), append(ats, e.atNs)
		newest = max(newest, e.atNs)
	}
	_, err := w.tx.Exec(w.ctx, `INSERT INTO deliveries (key, at_ns)
		SELECT * FROM unnest($1::bigint[], $2::bigint[])
		ON CONFLICT (key) DO UPDATE SET at_ns = excluded.at_ns`, keys, ats)
	if err != nil {
		return fmt.Errorf("write ledger: %w", err)
	}
	if keys[0]%64 == 0 { // about one commit in 64
		if _, err := w.tx.Exec(w.ctx, `DELETE FROM deliveries WHERE at_ns < $1`, newest-int64(redeliveryWindow)); err != nil {
			return fmt.Errorf("prune ledger: %w", err)
		}
	}
	return nil
}

// wrapErr prefixes *err, when there is one, with what was being done.
func wrapErr(err *error, format string, args ...any) {
	if *err != nil {
		*err = fmt.Errorf(format+": %w", append(args, *err)...)
	}
}

// pgFailed is wrapErr for the reads: "store: pg: " and what was being
// done, except on a refusal (an unknown meter), whose message says it all.
func pgFailed(err *error, format string, args ...any) {
	if *err != nil && !errors.Is(*err, ErrUnknownMeter) {
		*err = fmt.Errorf("store: pg: "+format+": %w", append(args, *err)...)
	}
}
