package store

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// history returns a generator of n readings of meter m a second apart
// from t0, with energy and power factor on every third, that fails with
// failAt's error at reading failAt (0: never).
func history(m string, n, failAt int) func() (meter.Reading, error) {
	i := 0
	return func() (meter.Reading, error) {
		if i == n {
			return meter.Reading{}, io.EOF
		}
		i++
		if i == failAt {
			return meter.Reading{}, &meter.LineError{Line: i, Err: errors.New("bad")}
		}
		r := meter.Reading{Meter: m, Source: "import", Time: t0.Add(time.Duration(i) * time.Second), PowerW: float64(i % 997), Stamped: true}
		if i%3 == 0 {
			r.EnergyWh, r.HasEnergy = float64(i), true
			r.PowerFactor, r.HasPF = 0.5, true
		}
		return r, nil
	}
}

// TestImportFromStagesLargeHistories imports more readings than one
// transaction takes: all of them arrive, as they were, and the staging
// file is gone; a history that fails near its end stores nothing.
func TestImportFromStagesLargeHistories(t *testing.T) {
	staging := t.TempDir()
	s, err := testOpen(t, t.TempDir(), Options{StagingDir: staging})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := ImportChunk*2 + 123
	var last, all int
	read, added, err := s.ImportFrom(history("big", n, 0), func(stored, total int) { last, all = stored, total })
	if err != nil || read != n || added != n || last != n || all != n {
		t.Fatalf("ImportFrom = %d read, %d added, progress %d of %d, %v; want %d", read, added, last, all, err, n)
	}
	m, err := s.Meter("big")
	if err != nil || m.Readings != uint64(n) {
		t.Fatalf("meter big: %+v %v, want %d readings", m, err, n)
	}
	next := history("big", n, 0)
	recs, _, err := s.Range("big", t0, t0.Add(time.Duration(n+1)*time.Second), n+1)
	if err != nil || len(recs) != n {
		t.Fatalf("Range: %d readings, %v", len(recs), err)
	}
	for i, got := range recs {
		want, _ := next()
		if !got.Time.Equal(want.Time) || got.PowerW != want.PowerW || got.HasEnergy != want.HasEnergy || got.EnergyWh != want.EnergyWh {
			t.Fatalf("reading %d = %+v, want %+v", i, got, want)
		}
	}
	if left, _ := os.ReadDir(staging); len(left) != 0 {
		t.Errorf("staging left %v", left)
	}
	if err := s.CheckRollups("big"); err != nil {
		t.Error(err)
	}

	// A bad reading past the first transaction's worth: nothing stored.
	read, added, err = s.ImportFrom(history("other", n, n-5), nil)
	var le *meter.LineError
	if !errors.As(err, &le) || added != 0 {
		t.Fatalf("failing ImportFrom = %d read, %d added, %v; want the line error", read, added, err)
	}
	if _, err := s.Meter("other"); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("a failed import left meter other: %v", err)
	}
	if left, _ := os.ReadDir(staging); len(left) != 0 {
		t.Errorf("a failed import left %v in staging", left)
	}
	// The same history again: nothing new.
	if _, added, err := s.ImportFrom(history("big", n, 0), nil); err != nil || added != 0 {
		t.Errorf("the same history again: %d added, %v; want none", added, err)
	}
}

// FuzzStaging writes readings made of any values to a staging file and
// reads them back unchanged.
func FuzzStaging(f *testing.F) {
	f.Add("m1", "import", int64(1764000000e9), 1500.5, 12.25, 0.9, uint8(7), int64(-3e9))
	f.Add("", "", int64(0), -1.0, 0.0, 0.0, uint8(0), int64(1))
	f.Fuzz(func(t *testing.T, id, source string, ns int64, w, wh, pf float64, flags uint8, step int64) {
		if len(id) > 1024 || len(source) > 1024 {
			return
		}
		st, err := newStaging(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer st.remove()
		var want []meter.Reading
		for i := range int64(3) {
			r := meter.Reading{Meter: id, Source: source, Time: time.Unix(0, ns+i*step).UTC(), PowerW: w,
				HasEnergy: flags&1 != 0, Stamped: flags&2 != 0, HasPF: flags&4 != 0}
			if r.HasEnergy {
				r.EnergyWh = wh
			}
			if r.HasPF {
				r.PowerFactor = pf
			}
			if i == 2 {
				r.Meter += "x" // a change of meter mid-file
			}
			want = append(want, r)
			if err := st.write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.rewind(); err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			got, err := st.read()
			same := func(a, b float64) bool { return a == b || a != a && b != b }
			if err != nil || got.Meter != w.Meter || got.Source != w.Source || !got.Time.Equal(w.Time) || !same(got.PowerW, w.PowerW) ||
				got.HasEnergy != w.HasEnergy || !same(got.EnergyWh, w.EnergyWh) || got.HasPF != w.HasPF || !same(got.PowerFactor, w.PowerFactor) || got.Stamped != w.Stamped {
				t.Fatalf("read back %+v, %v; want %+v", got, err, w)
			}
		}
	})
}

// TestImportKeepsACounterJump imports a history whose energy counter jumps
// (a meter replaced) past the first transaction's worth: the whole history
// is stored, never part of it with an error; the readings whose counter
// does not fit are kept with their power, their energy integrated from it.
func TestImportKeepsACounterJump(t *testing.T) {
	s, err := testOpen(t, t.TempDir(), Options{StagingDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n, jump := ImportChunk*2+123, ImportChunk+10
	i := 0
	next := func() (meter.Reading, error) {
		if i == n {
			return meter.Reading{}, io.EOF
		}
		i++
		wh := 0.03 * float64(i)
		if i >= jump {
			wh += 1e12 // the new meter's counter
		}
		return meter.Reading{Meter: "swapped", Source: "import", Time: t0.Add(time.Duration(i) * time.Second), PowerW: 108,
			EnergyWh: wh, HasEnergy: true, Stamped: true}, nil
	}
	read, added, err := s.ImportFrom(next, nil)
	if err != nil || read != n || added != n {
		t.Fatalf("ImportFrom = %d read, %d added, %v; want all %d stored", read, added, err, n)
	}
	recs, _, err := s.Range("swapped", t0, t0.Add(time.Duration(n+1)*time.Second), n+1)
	if err != nil || len(recs) != n {
		t.Fatalf("Range: %d readings, %v", len(recs), err)
	}
	if r := recs[jump-1]; r.HasEnergy || r.PowerW != 108 {
		t.Errorf("the reading where the counter jumps: %+v, want its power without the counter", r)
	}
	if r := recs[jump-2]; !r.HasEnergy {
		t.Errorf("the reading before the jump lost its counter: %+v", r)
	}
	if err := s.CheckRollups("swapped"); err != nil {
		t.Error(err)
	}
}
