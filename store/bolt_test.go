package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/vatio-energy/vatio/internal/meter"
)

// The tests of the bbolt file itself: its schema and migrations, its lock,
// its size cap.

func TestNewerSchemaIsRefusedUntouched(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	s, err := testOpen(t, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("a", 0, 1))
	s.Close()
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	_, err = testOpen(t, dir, Options{})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open(newer schema) = %v, want ErrNewerSchema", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("Open changed a database it refused")
	}
}

func TestNewDatabaseIsMigratedToCurrentSchema(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	s := openTest(t, dir)
	var version uint32
	boltOf(t, s).db.View(func(tx *bolt.Tx) error {
		version = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	if version != SchemaVersion {
		t.Errorf("schema version = %d, want %d", version, SchemaVersion)
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	openTest(t, dir)
	if _, err := testOpen(t, dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
}

// TestMaxSizeRefusesWithoutDamage fills a database capped small, as 32-bit
// systems cap theirs: once a checkpoint fails past the cap and the head is
// full, readings are refused (so not acknowledged), and what was
// acknowledged stays readable, in the log and the head, across a reopen
// that cannot checkpoint either.
func TestMaxSizeRefusesWithoutDamage(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	s, err := testOpen(t, dir, Options{MaxSizeBytes: 1 << 20, MaxBatch: 500, HeadMaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var failed error
	var mu sync.Mutex
	for i := 0; i < 100000; i++ {
		s.Append(reading("full", i, float64(i)), func(err error) {
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		})
	}
	s.Flush()
	mu.Lock()
	if !errors.Is(failed, bolterrors.ErrMaxSizeReached) {
		t.Errorf("commits past the cap: %v, want ErrMaxSizeReached", failed)
	}
	mu.Unlock()
	m, err := s.Meter("full")
	if err != nil || m.Readings == 0 || m.Readings >= 100000 {
		t.Fatalf("Meter = %+v, %v: want some readings stored, not all", m, err)
	}
	stored := m.Readings
	// Its last checkpoint fails too: Close says so, and where the
	// readings wait.
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "stay in the log") {
		t.Fatalf("Close of a store whose checkpoint fails = %v", err)
	}
	s = openTest(t, dir)
	if recs := allRecords(t, s, "full"); uint64(len(recs)) != stored {
		t.Errorf("after reopening %d readings, want %d", len(recs), stored)
	}
	if err := s.CheckRollups("full"); err != nil {
		t.Error(err)
	}
}

func TestSchemaOneIsMigrated(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	s := openTest(t, dir)
	mustAppend(t, s, counter("old", 0, 100, 1000))
	s.Close()
	// Make it the layout of schema 1: no registry, states in encoding 1.
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketInfo); err != nil {
			return err
		}
		v := tx.Bucket(bucketMeters).Get([]byte("old"))
		st, err := decodeMeterState(v)
		if err != nil {
			return err
		}
		v1 := slices.Clone(st.encode()[:meterStateSize])
		v1[0] = 1
		if err := tx.Bucket(bucketMeters).Put([]byte("old"), v1); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint32(nil, 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = openTest(t, dir)
	m, err := s.Meter("old")
	if err != nil || !m.Info.Created.Equal(t0) || m.Info.Source != "" {
		t.Errorf("migrated meter = %+v, %v", m.Info, err)
	}
	// The counter reference survived: an implausible jump is still caught.
	errs := appendAll(t, s, counter("old", 10, 100, 1e9))
	if meter.ReasonOf(errs[0]) != meter.ReasonImplausibleEnergy {
		t.Errorf("jump after migration: %v", errs[0])
	}
	if err := Verify(s.Path()); err == nil {
		t.Log("Verify refuses a live database; checked after Close below")
	}
	s.Close()
	if err := Verify(filepath.Join(dir, FileName)); err != nil {
		t.Error(err)
	}
}
