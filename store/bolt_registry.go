package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bucketInfo holds the meter registry: <meter> -> JSON MeterInfo.
var bucketInfo = []byte("meter_info")

// putInfo writes meter id's registry entry.
func putInfo(tx *bolt.Tx, id string, info MeterInfo) error {
	v, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketInfo).Put([]byte(id), v)
}

// runErase removes everything of one meter from the database: readings,
// blocks, rollups, state, registry entry and alerts. Its sub-meters become
// main meters of the site it was in.
func (eng *boltEngine) runErase(tx *bolt.Tx, job *eraseJob, newInfo map[string]MeterInfo) error {
	s := eng.s
	id := []byte(job.meter)
	st, hasState := s.meters[job.meter]
	info, hasInfo := s.lookupInfo(job.meter, newInfo)
	if !hasState && !hasInfo {
		return &refused{fmt.Errorf("%w: %q", ErrUnknownMeter, job.meter)}
	}
	job.result.Readings = st.Readings
	// A tombstone, in the erasing transaction, for what keeps copies
	// elsewhere (the off-site archives) to erase them there too.
	tomb, err := tx.CreateBucketIfNotExists([]byte("doc_" + ErasedKind))
	if err != nil {
		return err
	}
	if err := tomb.Put(id, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketSeries, bucketBlocks, TierMinute.bucket(), TierHour.bucket(), TierDay.bucket()} {
		if err := tx.Bucket(name).DeleteBucket(id); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return fmt.Errorf("erase %s of %q: %w", name, job.meter, err)
		}
	}
	if err := tx.Bucket(bucketMeters).Delete(id); err != nil {
		return err
	}
	if err := erasePF(tx, job.meter); err != nil {
		return err
	}
	if err := tx.Bucket(bucketInfo).Delete(id); err != nil {
		return err
	}
	if err := s.reparent(job.meter, info, newInfo, func(id string, info MeterInfo) error { return putInfo(tx, id, info) }); err != nil {
		return err
	}
	alerts := tx.Bucket(bucketAlerts)
	var drop [][]byte
	err = alerts.ForEach(func(k, v []byte) error {
		var a struct {
			Meter string `json:"meter"`
		}
		if json.Unmarshal(v, &a) == nil && a.Meter == job.meter {
			drop = append(drop, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := alerts.Delete(k); err != nil {
			return err
		}
	}
	job.result.Alerts = len(drop)
	return nil
}

// loadInfo reads the registry.
func loadInfo(tx *bolt.Tx, into map[string]MeterInfo) error {
	return tx.Bucket(bucketInfo).ForEach(func(k, v []byte) error {
		var info MeterInfo
		if err := json.Unmarshal(v, &info); err != nil {
			return fmt.Errorf("meter %q: registry entry: %w", k, err)
		}
		into[string(k)] = info
		return nil
	})
}

// migrateRegistry creates the registry with an entry for every meter of an
// older database, created at its first reading.
func migrateRegistry(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(bucketInfo)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeters).ForEach(func(k, v []byte) error {
		if b.Get(k) != nil {
			return nil
		}
		created := time.Time{}
		if len(v) >= 9 {
			created = time.Unix(0, int64(binary.BigEndian.Uint64(v[1:]))).UTC()
		}
		return putInfo(tx, string(k), MeterInfo{Created: created})
	})
}
