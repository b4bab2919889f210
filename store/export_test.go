package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

func exportAll(t *testing.T, s *Store, m string) []meter.Reading {
	t.Helper()
	var out []meter.Reading
	err := s.Export(context.Background(), m, func(r Record) error {
		out = append(out, meter.Reading{Meter: r.Meter, Time: r.Time, PowerW: r.PowerW, EnergyWh: r.EnergyWh, HasEnergy: r.HasEnergy})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An export holds every reading once, in time order, wherever it is: in
// the database, in an archive, or in both (a late reading that replaced an
// archived one wins).
func TestExportMergesArchivesAndDatabase(t *testing.T) {
	s := openRetention(t, t.TempDir(), retain30, 0)
	rs := threeMonths(t, s, "m")
	mustImport(t, s, every("other", jan, feb, time.Hour))
	sameReadings(t, "export before retention", exportAll(t, s, "m"), rs)

	if st, err := s.ApplyRetention(context.Background(), lifeNow); err != nil || st.Files != 2 { // m and other
		t.Fatalf("ApplyRetention = %+v, %v; want January archived", st, err)
	}
	if got := rangeOf(t, s, "m", jan, feb); len(got) != 0 {
		t.Fatalf("January still has %d readings in the database", len(got))
	}
	sameReadings(t, "export with January archived", exportAll(t, s, "m"), rs)
	sameReadings(t, "export of a meter wholly archived", exportAll(t, s, "other"), every("other", jan, feb, time.Hour))

	late := []meter.Reading{
		{Meter: "m", Time: jan.Add(3*day + 10*time.Second), PowerW: 1234, Stamped: true}, // between archived readings
		{Meter: "m", Time: jan.Add(3 * day), PowerW: 4321, Stamped: true},                // replaces an archived one
	}
	mustAppend(t, s, late...)
	want := slices.Clone(rs)
	for _, r := range late {
		i, found := slices.BinarySearchFunc(want, r.Time, func(r meter.Reading, ts time.Time) int { return r.Time.Compare(ts) })
		if found {
			want[i] = r
		} else {
			want = slices.Insert(want, i, r)
		}
	}
	sameReadings(t, "export with late readings in an archived month", exportAll(t, s, "m"), want)

	if err := s.Export(context.Background(), "nobody", func(Record) error { return nil }); !errors.Is(err, ErrUnknownMeter) {
		t.Errorf("export of an unknown meter: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Export(context.Background(), "m", func(Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error did not end the export: %v after %d", err, n)
	}
}
