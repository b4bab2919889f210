package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// leftovers lists the buckets that still hold meter id.
func (eng *boltEngine) leftovers(t testing.TB, id string) []string {
	t.Helper()
	var out []string
	err := eng.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSeries, bucketBlocks, bucketMeters, bucketInfo,
			TierMinute.bucket(), TierHour.bucket(), TierDay.bucket()} {
			if b := tx.Bucket(name); b.Get([]byte(id)) != nil || b.Bucket([]byte(id)) != nil {
				out = append(out, string(name))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// damageRollup puts a into meterID's rollup bucket of tier.
func (eng *boltEngine) damageRollup(t testing.TB, meterID string, tier Tier, start int64, a agg) {
	t.Helper()
	err := eng.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(tier.bucket()).Bucket([]byte(meterID)).Put(timeKey(start), a.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// archive reads the archive file.
func (eng *boltEngine) archive(t testing.TB, meterID string, month time.Time) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(eng.s.archiveDir, meterID, ArchiveName(meterID, month)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// retireInParts lowers the readings a part deletes.
func (eng *boltEngine) retireInParts(n int) { eng.retireLimit = n }
