package store

import (
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestCompactFile(t *testing.T) {
	boltOnly(t)
	dir := t.TempDir()
	s := openRetention(t, dir, retain30, 0)
	mustImport(t, s, every("m", jan, feb, 10*time.Second))
	mustImport(t, s, every("m", feb, feb.Add(2*day), time.Minute))
	if _, err := s.ApplyRetention(context.Background(), lifeNow); err != nil { // deletes January's raw readings
		t.Fatal(err)
	}
	want := rangeOf(t, s, "m", jan, apr)
	meterWant, _ := s.Meter("m")

	// Refused while the store is open, which is left as it was.
	sizeOpen := fileSize(t, s.Path())
	if _, _, err := CompactFile(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("CompactFile of an open database = %v, want ErrLocked", err)
	}
	if size := fileSize(t, s.Path()); size != sizeOpen {
		t.Errorf("a refused compaction changed the file: %d bytes, was %d", size, sizeOpen)
	}
	s.Close()

	before, after, err := CompactFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted: %d -> %d bytes", before, after)
	if after >= before/2 || after != fileSize(t, s.Path()) || before != sizeOpen {
		t.Errorf("CompactFile = %d -> %d bytes (file now %d), want a smaller file", before, after, fileSize(t, s.Path()))
	}
	if err := Verify(s.Path()); err != nil {
		t.Error(err)
	}
	for _, leftover := range []string{".compacting", ".before-compact"} {
		if _, err := os.Stat(s.Path() + leftover); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("vatio.db%s left behind (%v)", leftover, err)
		}
	}
	s = openRetention(t, dir, retain30, 0)
	if got := rangeOf(t, s, "m", jan, apr); !slices.Equal(got, want) {
		t.Errorf("after compaction %d readings, want %d", len(got), len(want))
	}
	if m, _ := s.Meter("m"); !reflect.DeepEqual(m, meterWant) {
		t.Errorf("after compaction meter = %+v, want %+v", m, meterWant)
	}
	if err := s.CheckRollups("m"); err != nil {
		t.Error(err)
	}
	mustAppend(t, s, reading("m", 0, 1)) // and it takes new readings
	s.Close()

	if _, _, err := CompactFile(t.TempDir()); err == nil {
		t.Error("CompactFile of a directory without a database = nil, want an error")
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
