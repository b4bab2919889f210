package store

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9*math.Max(1, math.Abs(want)) }

func rollupsOf(t *testing.T, s *Store, m string, tier Tier) []Bucket {
	t.Helper()
	bs, _, err := s.Rollups(m, tier, t0.Add(-48*time.Hour), t0.Add(48*time.Hour), 100000)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

func TestRollupsOfConstantPower(t *testing.T) {
	s := openTest(t, t.TempDir())
	var rs []meter.Reading
	for sec := 0; sec <= 7200; sec += 10 { // two hours and one reading, at 1 kW
		rs = append(rs, reading("c", sec, 1000))
	}
	mustAppend(t, s, rs...)
	minutes := rollupsOf(t, s, "c", TierMinute)
	if len(minutes) != 121 {
		t.Fatalf("%d minute buckets, want 121", len(minutes))
	}
	m := minutes[5]
	if m.N != 6 || m.MeanW != 1000 || m.MinW != 1000 || m.MaxW != 1000 || !near(m.EnergyWh, 1000.0/60) || m.ExportWh != 0 {
		t.Errorf("minute 5 = %+v, want 6 readings of 1000 W and 16.667 Wh", m)
	}
	hours := rollupsOf(t, s, "c", TierHour)
	if len(hours) != 3 || hours[0].N != 360 || !near(hours[0].EnergyWh, 1000) || !near(hours[1].EnergyWh, 1000) || hours[2].N != 1 || hours[2].EnergyWh != 0 {
		t.Errorf("hours = %+v, want 1000 Wh in each of the first two", hours)
	}
	days := rollupsOf(t, s, "c", TierDay)
	if len(days) != 1 || days[0].N != 721 || !near(days[0].EnergyWh, 2000) {
		t.Errorf("days = %+v, want 721 readings and 2000 Wh", days)
	}
	if err := s.CheckRollups("c"); err != nil {
		t.Error(err)
	}
}

func TestTrapezoidSplitsAtBoundariesAndZero(t *testing.T) {
	s := openTest(t, t.TempDir())
	// A ramp from 0 to 1200 W over two minutes: 5 Wh in the first minute
	// (0 to 600 W), 15 Wh in the second (600 to 1200 W).
	mustAppend(t, s, reading("ramp", 0, 0), reading("ramp", 120, 1200))
	ms := rollupsOf(t, s, "ramp", TierMinute)
	if len(ms) != 3 || !near(ms[0].EnergyWh, 5) || !near(ms[1].EnergyWh, 15) || ms[1].N != 0 || ms[2].N != 1 {
		t.Errorf("ramp minutes = %+v, want 5 Wh then 15 Wh", ms)
	}
	// From 1000 W drawn to 1000 W exported in one minute: a quarter of the
	// triangle each way, 500 W x 30 s = 4.1667 Wh in and out.
	mustAppend(t, s, reading("flip", 0, 1000), reading("flip", 60, -1000))
	ms = rollupsOf(t, s, "flip", TierMinute)
	if !near(ms[0].EnergyWh, 500*30/3600.0) || !near(ms[0].ExportWh, 500*30/3600.0) {
		t.Errorf("flip minute = %+v, want 4.1667 Wh in and 4.1667 Wh out", ms[0])
	}
}

func TestNoEnergyAcrossLongGaps(t *testing.T) {
	s := openTest(t, t.TempDir())
	// 1 kW, then silent for 11 minutes (past the 10-minute maximum), then 1 kW.
	mustAppend(t, s, reading("g", 0, 1000), reading("g", 60, 1000), reading("g", 60+11*60, 1000), reading("g", 60+12*60, 1000))
	day := rollupsOf(t, s, "g", TierDay)[0]
	if !near(day.EnergyWh, 2*1000.0/60) {
		t.Errorf("energy = %v Wh, want 33.33 (two minutes at 1 kW; nothing across the gap)", day.EnergyWh)
	}
}

func TestEnergyCounterWinsAndResets(t *testing.T) {
	s := openTest(t, t.TempDir())
	counter := func(sec int, w, wh float64) meter.Reading {
		r := reading("e", sec, w)
		r.EnergyWh, r.HasEnergy = wh, true
		return r
	}
	// Power says 0 W, the counter says otherwise: the counter wins. It goes
	// 100 -> 150 (+50), resets to 20 (+20), then 50 (+30): 100 Wh in all.
	mustAppend(t, s, counter(0, 0, 100), counter(60, 0, 150), counter(120, 0, 20), counter(180, 0, 50))
	day := rollupsOf(t, s, "e", TierDay)[0]
	if !near(day.EnergyWh, 100) || day.ExportWh != 0 {
		t.Errorf("energy = %v Wh (export %v), want 100 Wh from the counter", day.EnergyWh, day.ExportWh)
	}
	// Across a long silence the counter's increase is still energy, given
	// to the minute it was seen in.
	mustAppend(t, s, counter(3600, 0, 80))
	hours := rollupsOf(t, s, "e", TierHour)
	if len(hours) != 2 || !near(hours[1].EnergyWh, 30) || !near(hours[0].EnergyWh, 100) {
		t.Errorf("hours = %+v, want 100 Wh then 30 Wh", hours)
	}
	if err := s.CheckRollups("e"); err != nil {
		t.Error(err)
	}
}

// TestRollupsMatchRawWhateverTheOrder stores the same readings in random
// order, in random batches, with resends and corrections, and checks that
// the rollups equal those of the readings stored in time order.
func TestRollupsMatchRawWhateverTheOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 5; round++ {
		var rs []meter.Reading
		sec := 0
		for i := 0; i < 400; i++ {
			sec += 1 + rng.IntN(40)
			if rng.IntN(50) == 0 {
				sec += 700 // a silence longer than the maximum gap
			}
			r := reading("o", sec, float64(rng.IntN(4000)-500))
			if round%2 == 1 {
				r.EnergyWh, r.HasEnergy = float64(sec*2), true
				if rng.IntN(30) == 0 {
					r.EnergyWh = 5 // a reset
				}
			}
			rs = append(rs, r)
		}
		inOrder := openTest(t, t.TempDir())
		mustAppend(t, inOrder, rs...)

		shuffled := openTest(t, t.TempDir())
		perm := rng.Perm(len(rs))
		for i := 0; i < len(perm); {
			n := 1 + rng.IntN(30)
			for _, j := range perm[i:min(i+n, len(perm))] {
				r := rs[j]
				if rng.IntN(10) == 0 { // first a wrong value, corrected below
					wrong := r
					wrong.PowerW += 123
					shuffled.Append(wrong, nil)
				}
				shuffled.Append(r, nil)
				if rng.IntN(10) == 0 { // a resend
					shuffled.Append(r, nil)
				}
			}
			if err := shuffled.Flush(); err != nil {
				t.Fatal(err)
			}
			i += n
		}
		if err := shuffled.CheckRollups("o"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, tier := range Tiers {
			want, got := rollupsOf(t, inOrder, "o", tier), rollupsOf(t, shuffled, "o", tier)
			if len(want) != len(got) {
				t.Fatalf("round %d: %s: %d buckets, want %d", round, tier, len(got), len(want))
			}
			for i := range want {
				if !aggEqualBuckets(got[i], want[i]) {
					t.Fatalf("round %d: %s bucket %d = %+v, want %+v", round, tier, i, got[i], want[i])
				}
			}
		}
		if m, _ := shuffled.Meter("o"); m.Readings != uint64(len(rs)) {
			t.Fatalf("round %d: %d readings, want %d", round, m.Readings, len(rs))
		}
	}
}

func aggEqualBuckets(a, b Bucket) bool {
	n := func(x, y float64) bool { return math.Abs(x-y) <= 1e-6*math.Max(1, math.Abs(y)) }
	return a.Start.Equal(b.Start) && a.N == b.N && n(a.MeanW, b.MeanW) && a.MinW == b.MinW && a.MaxW == b.MaxW &&
		n(a.EnergyWh, b.EnergyWh) && n(a.ExportWh, b.ExportWh)
}

func TestCheckRollupsFindsDamage(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustAppend(t, s, reading("d", 0, 100), reading("d", 30, 200))
	if err := s.CheckRollups("d"); err != nil {
		t.Fatal(err)
	}
	// Damage an hourly rollup behind the store's back, as a bug would,
	// once the readings are in the database, not only in the head.
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	behind(s).damageRollup(t, "d", TierHour, TierHour.start(t0.UnixNano()), agg{N: 99})
	if err := s.CheckRollups("d"); err == nil {
		t.Error("CheckRollups found nothing wrong with a damaged rollup")
	}
}
