package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketPF holds power factor statistics per meter and UTC day, created on
// the first reading that carries one:
//
//	pf  <meter> 0x00 <8-byte big-endian Unix ns of the day> -> 3 float64:
//	    the sum of |power|, of |power| x |power factor|, and the count
var bucketPF = []byte("pf")

func (a pfAgg) encode() []byte {
	b := make([]byte, 0, 24)
	for _, f := range [...]float64{a.sumW, a.sumWPF, a.n} {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

func decodePF(v []byte) (pfAgg, bool) {
	if len(v) != 24 {
		return pfAgg{}, false
	}
	f := func(i int) float64 { return math.Float64frombits(binary.BigEndian.Uint64(v[8*i:])) }
	return pfAgg{f(0), f(1), f(2)}, true
}

// writePF adds a commit's statistics to the stored ones.
func writePF(tx *bolt.Tx, pfs map[string]pfAgg) error {
	if len(pfs) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketPF)
	if err != nil {
		return err
	}
	for k, a := range pfs {
		if old, ok := decodePF(b.Get([]byte(k))); ok {
			a.sumW, a.sumWPF, a.n = a.sumW+old.sumW, a.sumWPF+old.sumWPF, a.n+old.n
		}
		if err := b.Put([]byte(k), a.encode()); err != nil {
			return err
		}
	}
	return nil
}

// erasePF deletes a meter's statistics.
func erasePF(tx *bolt.Tx, meterID string) error {
	b := tx.Bucket(bucketPF)
	if b == nil {
		return nil
	}
	prefix := append([]byte(meterID), 0)
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// powerFactor is PowerFactor on bbolt: the stored days with what the head
// adds to them.
func (eng *boltEngine) powerFactor(id string, from, to time.Time) (PowerFactorStats, error) {
	var out PowerFactorStats
	var sum pfAgg
	err := eng.view([]string{id}, func(tx *bolt.Tx, hv headView) error {
		begin, end := pfKey(id, from.UnixNano()), pfKey(id, to.UnixNano())
		days := map[string]pfAgg{}
		hv.pfs(id, days)
		if pf := tx.Bucket(bucketPF); pf != nil {
			c := pf.Cursor()
			for k, v := c.Seek(begin); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
				a, ok := decodePF(v)
				if !ok {
					return errors.New("corrupt power factor statistics")
				}
				h := days[string(k)]
				days[string(k)] = pfAgg{a.sumW + h.sumW, a.sumWPF + h.sumWPF, a.n + h.n}
			}
		}
		for k, a := range days {
			if bytes.Compare([]byte(k), begin) < 0 || bytes.Compare([]byte(k), end) >= 0 {
				continue
			}
			sum.sumW += a.sumW
			sum.sumWPF += a.sumWPF
			sum.n += a.n
			out.Days++
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("store: power factor of %q: %w", id, err)
	}
	out.Readings = int(sum.n)
	if sum.sumW > 0 {
		out.Mean = sum.sumWPF / sum.sumW
	}
	return out, nil
}
