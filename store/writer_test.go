package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/vatio-energy/vatio/internal/meter"
)

// TestAcknowledgementsInOrder queues, in small batches, readings that go
// different ways (live and newest, volatile, late into the past, refused
// by the counter rules) between barriers: every callback runs once, in the
// order of the calls, with an error for the refused readings alone.
func TestAcknowledgementsInOrder(t *testing.T) {
	s, err := testOpen(t, t.TempDir(), Options{MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	mustAppend(t, s, counter("p", 0, 1000, 1000))
	var mu sync.Mutex
	var order []int
	errs := map[int]error{}
	done := func(i int) func(error) {
		return func(err error) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, i)
			if err != nil {
				errs[i] = err
			}
		}
	}
	const n = 400
	for i := range n {
		var err error
		switch i % 5 {
		case 0:
			err = s.Append(reading("o", 10000+i, 1), done(i))
		case 1:
			err = s.AppendVolatile(reading("v", i, 2), done(i))
		case 2:
			err = s.Sync(done(i))
		case 3: // late: before every reading of o
			err = s.Append(reading("o", i, 3), done(i))
		case 4: // counters that jump and disagree with each other: refused
			err = s.Append(counter("p", 60+i, 1000, []float64{9e12, 5e12}[i/5%2]), done(i))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(order) != n {
		t.Fatalf("%d callbacks ran, want %d", len(order), n)
	}
	for i, v := range order {
		if v != i {
			t.Fatalf("callback %d ran in position %d: callbacks run in the order of the calls", v, i)
		}
	}
	for i := range n {
		if refused := i%5 == 4; refused != (meter.ReasonOf(errs[i]) == meter.ReasonImplausibleEnergy) || !refused && errs[i] != nil {
			t.Errorf("call %d (kind %d): %v", i, i%5, errs[i])
		}
	}
	for id, want := range map[string]uint64{"o": 2 * n / 5, "v": n / 5, "p": 1} {
		if m, err := s.Meter(id); err != nil || m.Readings != want {
			t.Errorf("meter %s: %d readings (%v), want %d", id, m.Readings, err, want)
		}
	}
	if err := s.CheckRollups("o"); err != nil {
		t.Error(err)
	}
}

// TestImportKeepsTheLastOfEqualTimes: an import's readings at one instant
// are one reading, the last of them in the file's order.
func TestImportKeepsTheLastOfEqualTimes(t *testing.T) {
	s := openTest(t, t.TempDir())
	added, err := s.Import([]meter.Reading{reading("e", 0, 1), reading("e", 10, 2), reading("e", 0, 3), reading("e", 20, 4), reading("e", 10, 5)}, nil)
	if err != nil || added != 3 {
		t.Fatalf("Import = %d added, %v; want 3", added, err)
	}
	recs := allRecords(t, s, "e")
	var got []float64
	for _, r := range recs {
		got = append(got, r.PowerW)
	}
	if fmt.Sprint(got) != "[3 5 4]" {
		t.Errorf("stored powers %v, want [3 5 4]", got)
	}
	if err := s.CheckRollups("e"); err != nil {
		t.Error(err)
	}
}

// TestUseAfterClose: every way into the writer says ErrClosed once the
// store is closed.
func TestUseAfterClose(t *testing.T) {
	s, err := testOpen(t, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("m", 0, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("a second Close = %v", err)
	}
	for what, err := range map[string]error{
		"Append":         s.Append(reading("m", 1, 1), nil),
		"AppendVolatile": s.AppendVolatile(reading("m", 1, 1), nil),
		"Sync":           s.Sync(func(error) {}),
		"Flush":          s.Flush(),
		"Checkpoint":     s.Checkpoint(),
		"Import":         second(s.Import([]meter.Reading{reading("m", 2, 1)}, nil)),
		"EditMeter":      second(s.EditMeter("m", func(*MeterInfo) error { return nil })),
		"DeleteMeter":    second(s.DeleteMeter("m")),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", what, err)
		}
	}
}

// second returns the error of a call that returns a value and an error.
func second[T any](_ T, err error) error { return err }
