package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
)

// Documents and alerts on PostgreSQL: the docs and alerts tables.

func (pg *pgEngine) putDoc(kind, key string, v []byte) error {
	ctx, cancel := pgCtx()
	defer cancel()
	_, err := pg.pool.Exec(ctx, `INSERT INTO docs (kind, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value`, kind, key, v)
	if err != nil {
		return fmt.Errorf("store: put %s %q: %w", kind, key, err)
	}
	return nil
}

func (pg *pgEngine) deleteDoc(kind, key string) error {
	ctx, cancel := pgCtx()
	defer cancel()
	if _, err := pg.pool.Exec(ctx, `DELETE FROM docs WHERE kind = $1 AND key = $2`, kind, key); err != nil {
		return fmt.Errorf("store: delete %s %q: %w", kind, key, err)
	}
	return nil
}

func (pg *pgEngine) docs(kind string) (map[string][]byte, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	rows, err := pg.pool.Query(ctx, `SELECT key, value FROM docs WHERE kind = $1`, kind)
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", kind, err)
	}
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, err
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read %s: %w", kind, err)
	}
	return out, nil
}

// newestDocs is NewestDocs on PostgreSQL: a page of keys at a time down
// the byte-order index (migration 3), so that no query stays open while fn
// runs.
func (pg *pgEngine) newestDocs(kind string, fn func(key string, v []byte) bool) error {
	ctx, cancel := pgCtx()
	defer cancel()
	const page = 500
	var before *string // nil: from the greatest key
	for {
		rows, err := pg.pool.Query(ctx, `SELECT key, value FROM docs WHERE kind = $1 AND ($2::text IS NULL OR key COLLATE "C" < $2)
			ORDER BY key COLLATE "C" DESC LIMIT `+fmt.Sprint(page), kind, before)
		if err != nil {
			return fmt.Errorf("store: pg: read %s: %w", kind, err)
		}
		type doc struct {
			k string
			v []byte
		}
		var got []doc
		for rows.Next() {
			var d doc
			if err := rows.Scan(&d.k, &d.v); err != nil {
				rows.Close()
				return fmt.Errorf("store: pg: read %s: %w", kind, err)
			}
			got = append(got, d)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: pg: read %s: %w", kind, err)
		}
		for _, d := range got {
			if !fn(d.k, d.v) {
				return nil
			}
		}
		if len(got) < page {
			return nil
		}
		before = &got[len(got)-1].k
	}
}

// deleteDocs is DeleteDocs on PostgreSQL: one statement.
func (pg *pgEngine) deleteDocs(kind string, keys []string) error {
	ctx, cancel := pgCtx()
	defer cancel()
	if _, err := pg.pool.Exec(ctx, `DELETE FROM docs WHERE kind = $1 AND key = ANY($2)`, kind, keys); err != nil {
		return fmt.Errorf("store: pg: delete %d %s: %w", len(keys), kind, err)
	}
	return nil
}

// trimDocs is TrimDocs on PostgreSQL: the keep-th greatest key bounds one
// DELETE, and the count follows in the same transaction.
func (pg *pgEngine) trimDocs(kind string, keep int) (int, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var left int
	err := pgx.BeginFunc(ctx, pg.pool, func(tx pgx.Tx) error {
		if keep == 0 {
			_, err := tx.Exec(ctx, `DELETE FROM docs WHERE kind = $1`, kind)
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM docs WHERE kind = $1 AND key COLLATE "C" < (
			SELECT key FROM docs WHERE kind = $1 ORDER BY key COLLATE "C" DESC OFFSET $2 LIMIT 1)`, kind, keep-1); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM docs WHERE kind = $1`, kind).Scan(&left)
	})
	if err != nil {
		return 0, fmt.Errorf("store: pg: trim %s to %d: %w", kind, keep, err)
	}
	return left, nil
}

func (pg *pgEngine) updateDoc(kind, key string, v []byte) (bool, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	tag, err := pg.pool.Exec(ctx, `UPDATE docs SET value = $3 WHERE kind = $1 AND key = $2`, kind, key, v)
	if err != nil {
		return false, fmt.Errorf("store: update %s %q: %w", kind, key, err)
	}
	return tag.RowsAffected() > 0, nil
}

func (pg *pgEngine) doc(kind, key string) ([]byte, bool, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var v []byte
	err := pg.pool.QueryRow(ctx, `SELECT value FROM docs WHERE kind = $1 AND key = $2`, kind, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: read %s %q: %w", kind, key, err)
	}
	return v, true, nil
}

func (pg *pgEngine) addAlert(a *Alert) error {
	ctx, cancel := pgCtx()
	defer cancel()
	err := pgx.BeginFunc(ctx, pg.pool, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `SELECT nextval('alerts_id_seq')`).Scan(&id); err != nil {
			return err
		}
		a.ID = uint64(id)
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO alerts (id, meter, body) VALUES ($1, nullif($2, ''), $3)`, id, a.Meter, v)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add alert: %w", err)
	}
	return nil
}

func (pg *pgEngine) updateAlert(id uint64, fn func(*Alert)) error {
	ctx, cancel := pgCtx()
	defer cancel()
	err := pgx.BeginFunc(ctx, pg.pool, func(tx pgx.Tx) error {
		var v []byte
		err := tx.QueryRow(ctx, `SELECT body FROM alerts WHERE id = $1 FOR UPDATE`, int64(id)).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ErrUnknownAlert, id)
		}
		if err != nil {
			return err
		}
		a, nv, err := changeAlert(id, v, fn)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE alerts SET body = $2, meter = nullif($3, '') WHERE id = $1`, int64(id), nv, a.Meter)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: update alert: %w", err)
	}
	return nil
}

func (pg *pgEngine) alerts(limit int, keep func(*Alert) bool) ([]Alert, error) {
	ctx, cancel := pgCtx()
	defer cancel()
	var out []Alert
	// Newest first, a page at a time, until limit alerts are kept.
	before := int64(math.MaxInt64)
	for len(out) < limit {
		rows, err := pg.pool.Query(ctx, `SELECT id, body FROM alerts WHERE id < $1 ORDER BY id DESC LIMIT 500`, before)
		if err != nil {
			return nil, fmt.Errorf("store: alerts: %w", err)
		}
		n := 0
		for rows.Next() && len(out) < limit {
			var v []byte
			if err := rows.Scan(&before, &v); err != nil {
				rows.Close()
				return nil, err
			}
			n++
			var a Alert
			if err := json.Unmarshal(v, &a); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: alert %d: %w", before, err)
			}
			if keep == nil || keep(&a) {
				out = append(out, a)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: alerts: %w", err)
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}
