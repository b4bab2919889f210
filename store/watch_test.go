package store

import (
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

func TestWatchGetsCommittedNewestReadings(t *testing.T) {
	s := openTest(t, t.TempDir())
	ch, stop := s.Watch(16)
	mustAppend(t, s, reading("a", 10, 100), reading("b", 10, 200))
	mustAppend(t, s, reading("a", 5, 50)) // late: history, not news
	if _, err := s.Import([]meter.Reading{reading("c", 0, 1)}, nil); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, reading("a", 20, 300))
	var got []Record
	timeout := time.After(5 * time.Second)
	for len(got) < 3 {
		select {
		case recs := <-ch:
			got = append(got, recs...)
		case <-timeout:
			t.Fatalf("got %+v, want 3 readings", got)
		}
	}
	if len(got) != 3 || got[0].Meter != "a" || got[0].PowerW != 100 || got[1].Meter != "b" || got[2].PowerW != 300 ||
		got[0].ID == 0 || got[2].ID <= got[1].ID || !got[2].Time.Equal(t0.Add(20*time.Second)) {
		t.Errorf("watched %+v", got)
	}
	select {
	case recs := <-ch:
		t.Errorf("more than the newest readings: %+v", recs)
	case <-time.After(50 * time.Millisecond):
	}
	stop()
	stop() // twice is fine
	if _, ok := <-ch; ok {
		t.Error("channel still open after stop")
	}
	mustAppend(t, s, reading("a", 30, 1)) // nobody watching: no panic, no block
}

func TestSlowWatcherMissesRatherThanBlocks(t *testing.T) {
	s := openTest(t, t.TempDir())
	ch, stop := s.Watch(1)
	defer stop()
	for i := range 20 {
		mustAppend(t, s, reading("a", i, float64(i)))
	}
	if n := len(ch); n != 1 {
		t.Errorf("%d commits queued for a watcher with room for 1", n)
	}
}

// TestWatchSeesWhatIsStored: a watcher gets volatile readings too, and no
// reading the counter rules refused.
func TestWatchSeesWhatIsStored(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, counter("p", 0, 1000, 1000))
	ch, stop := s.Watch(64)
	defer stop()
	if errs := appendAll(t, s, counter("p", 10, 1000, 9e12)); meter.ReasonOf(errs[0]) != meter.ReasonImplausibleEnergy {
		t.Fatalf("a wild counter: %v, want refused", errs[0])
	}
	if err := s.AppendVolatile(reading("v", 5, 7), nil); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, counter("p", 20, 1000, 1001))
	var got []Record
	for timeout := time.After(5 * time.Second); len(got) < 2; {
		select {
		case recs := <-ch:
			got = append(got, recs...)
		case <-timeout:
			t.Fatalf("watched %+v, want 2 readings", got)
		}
	}
	if len(got) != 2 || got[0].Meter != "v" || got[0].PowerW != 7 || got[1].Meter != "p" || !got[1].HasEnergy ||
		got[1].EnergyWh != 1001 || got[1].ID <= got[0].ID {
		t.Errorf("watched %+v, want v's reading then p's newest, not the refused one", got)
	}
}
