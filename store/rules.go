package store

import (
	"fmt"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// The rules every reading is stored by, whatever the engine: where it goes
// (put), the time a reading stamped on receipt takes (readingNs), and what
// its energy counter may do (checkCounter).

// The counter checks of checkCounter.
const (
	// plausibleFloor is the least time a counter's rise is judged over:
	// readings stamped on receipt can arrive bunched after a network outage.
	plausibleFloor = int64(time.Minute)
	// plausibleFactor and plausibleSlackWh allow for clock jitter and the
	// counter's own rounding (kWh with three decimals moves in 1 Wh steps).
	plausibleFactor  = 1.5
	plausibleSlackWh = 1.0
	// rebaseAfter is how many implausible counters in a row, agreeing with
	// each other, move a meter's counter for good.
	rebaseAfter = 3
)

// plausibleWh is the most energy a meter of maximum power maxW (watts) can
// draw in dt nanoseconds, with the allowances above.
func plausibleWh(maxW float64, dt int64) float64 {
	return maxW*float64(max(dt, plausibleFloor))/nsPerHour*plausibleFactor + plausibleSlackWh
}

// checkCounter applies the energy counter rules to reading r, at ns, of a
// meter in state st whose maximum power is maxW, before r is stored. It may
// drop r's counter, and it updates st's counter reference: the newest
// non-zero counter taken.
//
//   - A counter of 0 once the meter has sent a non-zero one is a device
//     restarting before it restored its total, or a reset: r is stored
//     without its counter, so that the total's return is not counted again.
//     The intervals around it are integrated from power; after a reset, the
//     next non-zero counter is below the reference and counts from zero.
//   - For the newest reading of the meter, a counter that rose (or, after a
//     reset, starts) by more energy than maxW can draw since the reference
//     is rejected with meter.ReasonImplausibleEnergy. rebaseAfter such
//     readings in a row that agree with each other mean the counter moved
//     for good (a replaced device): the last is stored without its counter,
//     and later counters count from it.
//   - A reading arriving late (not the newest) whose counter does not fit
//     the reference so (counters only rise, within maxW) is stored without
//     its counter: history is kept, and cannot throw the rollups off.
func checkCounter(st *meterState, r *meter.Reading, ns int64, newest bool, maxW float64) error {
	if !r.HasEnergy {
		return nil
	}
	if r.EnergyWh == 0 {
		if st.RefNs != 0 && st.RefWh != 0 {
			r.HasEnergy = false
		}
		return nil
	}
	if st.RefNs == 0 {
		if newest {
			st.RefWh, st.RefNs = r.EnergyWh, ns
		}
		return nil
	}
	if !newest {
		fits := r.EnergyWh <= st.RefWh && st.RefWh-r.EnergyWh <= plausibleWh(maxW, st.RefNs-ns)
		if ns > st.RefNs {
			fits = r.EnergyWh >= st.RefWh && r.EnergyWh-st.RefWh <= plausibleWh(maxW, ns-st.RefNs)
		}
		if !fits {
			r.HasEnergy = false
		}
		return nil
	}
	rise := r.EnergyWh - st.RefWh
	reset := rise < 0
	if reset {
		rise = r.EnergyWh // a reset: the new value counts from zero
	}
	if limit := plausibleWh(maxW, ns-st.RefNs); rise > limit {
		agrees := st.PendN > 0 && r.EnergyWh >= st.PendWh && ns > st.PendNs &&
			r.EnergyWh-st.PendWh <= plausibleWh(maxW, ns-st.PendNs)
		if agrees {
			st.PendN++
		} else {
			st.PendN = 1
		}
		st.PendWh, st.PendNs = r.EnergyWh, ns
		if st.PendN < rebaseAfter {
			detail := fmt.Sprintf("meter %s: energy counter %.3f Wh rose %.3f Wh in %s since %.3f Wh, more than %.0f W can draw",
				r.Meter, r.EnergyWh, rise, time.Duration(ns-st.RefNs), st.RefWh, maxW)
			if reset {
				detail = fmt.Sprintf("meter %s: energy counter fell from %.3f Wh to %.3f Wh; as a reset to zero that is %.3f Wh drawn in %s, more than %.0f W can draw",
					r.Meter, st.RefWh, r.EnergyWh, rise, time.Duration(ns-st.RefNs), maxW)
			}
			return &meter.RejectError{Reason: meter.ReasonImplausibleEnergy, Detail: fmt.Sprintf("%s (%d such readings in a row move the counter for good: a replaced meter)", detail, rebaseAfter)}
		}
		r.HasEnergy = false // the counter moved: count from here
	}
	st.PendN = 0
	st.RefWh, st.RefNs = r.EnergyWh, ns
	return nil
}

// put stores reading r of a meter in state st, whose maximum power is maxW,
// in tx, updating st and the rollups, and returns 1 if r is a new reading,
// 0 if it replaced one (a device resending a reading it stamped). fresh,
// when not nil, receives r's record if r was appended as its meter's
// newest.
//
// The common case, a reading newer than the meter's newest, appends it and
// adds to the rollups. A reading stamped on receipt is always that case: it
// is kept in arrival order, a millisecond after the newest if the clock
// says otherwise. A device-stamped reading older than the newest, or one
// that replaces another, goes where its time is (on bbolt, raw or in a
// compressed block) and marks the minutes around it for rebuilding. One
// older than the meter's archive boundary (st.ArchivedNs) is stored the
// same way but changes no rollup: the readings around it are archived, so
// rebuilding would lose them; the next retention run adds it to its
// month's archive.
func put(tx writeTx, st *meterState, r meter.Reading, maxW float64, fresh *[]Record) (int, error) {
	ns := readingNs(st, r)
	newest := st.Readings == 0 || ns > st.LastNs
	if err := checkCounter(st, &r, ns, newest, maxW); err != nil {
		return 0, err
	}
	archived := ns < st.ArchivedNs
	if !archived && (st.Readings == 0 || (ns > st.LastNs && ns >= st.CompactedNs)) {
		id, err := tx.appendNewest(r, ns)
		if err != nil {
			return 0, err
		}
		if fresh != nil {
			*fresh = append(*fresh, Record{ID: id, Meter: r.Meter, Time: time.Unix(0, ns).UTC(), PowerW: r.PowerW,
				EnergyWh: r.EnergyWh, HasEnergy: r.HasEnergy})
		}
		appendedTo(st, tx.changes(), r, ns)
		return 1, nil
	}

	floor := st.ArchivedNs
	if archived {
		floor = -1 // no rollups to change
	}
	if !r.Stamped {
		// Received behind a reading stamped ahead: a new reading, never a
		// resend, so it takes the next free millisecond.
		var err error
		if ns, err = tx.freeNs(r.Meter, ns); err != nil {
			return 0, err
		}
	}
	added, err := tx.putLate(r, ns, floor)
	if err != nil {
		return 0, err
	}
	storedLate(st, r, ns, added)
	return added, nil
}

// arrivalSlack is how far ahead of a receive-stamped reading the meter's
// newest may be for the reading still to be put right after it: two
// readings received in the same millisecond, or a clock stepped back a
// little. A newest further ahead was stamped by a device whose clock runs
// ahead; the readings received after it keep their own times.
const arrivalSlack = time.Second

// readingNs returns the time reading r is stored at in a meter of state
// st: its own when the device stamped it, else its receive time in
// milliseconds, a millisecond after the newest if that is less than
// arrivalSlack ahead.
func readingNs(st *meterState, r meter.Reading) int64 {
	ns := r.Time.UnixNano()
	if !r.Stamped {
		ns -= ns % int64(time.Millisecond) // receive times: milliseconds are plenty, and compress
		if st.Readings > 0 && ns <= st.LastNs && st.LastNs-ns < int64(arrivalSlack) {
			ns = st.LastNs - st.LastNs%int64(time.Millisecond) + int64(time.Millisecond)
		}
	}
	return ns
}

// appendedTo updates st for reading r appended at ns as the meter's newest,
// adding it to rolls.
func appendedTo(st *meterState, rolls *rollups, r meter.Reading, ns int64) {
	var prev *sample
	if st.Readings > 0 {
		p := st.last()
		prev = &p
	} else {
		st.FirstNs = ns
	}
	rolls.appended(r.Meter, sample{ns: ns, w: r.PowerW, wh: r.EnergyWh, hasEnergy: r.HasEnergy}, prev)
	st.Readings++
	st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
}

// storedLate updates st for reading r stored at ns out of order; added is
// 1 if it was new, 0 if it replaced one.
func storedLate(st *meterState, r meter.Reading, ns int64, added int) {
	if st.Readings == 0 || ns < st.FirstNs {
		st.FirstNs = ns
	}
	st.Readings += uint64(added)
	if ns >= st.LastNs {
		st.LastNs, st.LastW, st.LastWh, st.LastHasWh = ns, r.PowerW, r.EnergyWh, r.HasEnergy
	}
}

// resend reports whether r repeats the stored reading (powerW, energyWh,
// hasEnergy) at its instant: the same power and counter, or the same power
// with a counter the store dropped (see checkCounter), which a resend must
// not bring back.
func resend(powerW, energyWh float64, hasEnergy bool, r meter.Reading) bool {
	return powerW == r.PowerW && (hasEnergy == r.HasEnergy && energyWh == r.EnergyWh || !hasEnergy && r.HasEnergy)
}
