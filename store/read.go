package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrUnknownMeter is returned for a meter that has no readings.
var ErrUnknownMeter = errors.New("store: unknown meter")

// Record is a stored reading.
type Record struct {
	// ID numbers readings in the order they were first stored, across meters.
	ID     uint64
	Meter  string
	Time   time.Time
	PowerW float64
	// EnergyWh is the device's energy counter, when HasEnergy.
	EnergyWh  float64
	HasEnergy bool
}

// Meter summarises one meter's stored readings.
type Meter struct {
	ID string
	// First and Last are the timestamps of the oldest and newest readings
	// stored. Once retention has archived all of a meter's readings, the
	// meter stays, with its rollups, Readings 0 and First equal to Last, the
	// time of its newest reading ever.
	First, Last time.Time
	// LastPowerW is the power of the newest reading, in watts.
	LastPowerW float64
	// LastHeard is when Vatio last heard from the meter: the server time at
	// which its newest live reading (MQTT, or the bridge from an external
	// broker) was stored. Imported and restored history leave it as it was;
	// zero for a meter never heard live (only imported). Last, by contrast,
	// is when the newest reading was taken, whatever brought it.
	LastHeard time.Time
	// Readings counts the raw readings stored, not those archived.
	Readings uint64
	// ArchivedBefore is the meter's archive boundary: its readings before it
	// have been written to archive files and deleted (see ApplyRetention),
	// and readings arriving for that time are archived at the next run
	// without changing the rollups. Zero when none were archived.
	ArchivedBefore time.Time
	// Info is the meter's registry entry.
	Info MeterInfo
	// Site is the meter's site: its own, or its main meter's.
	Site string
	// Children are the meters whose parent it is, sorted.
	Children []string
	// Interval is the meter's usual time between readings; 0 while unknown.
	Interval time.Duration
	// Availability is what its device last announced, if anything.
	Availability *Availability
	// silentAfter is the silence that makes it offline (see Status).
	silentAfter time.Duration
}

// meter returns meter id's summary; metersMu must be held.
func (s *Store) meter(id string, st meterState, children map[string][]string) Meter {
	m := Meter{
		ID:         id,
		First:      time.Unix(0, st.FirstNs).UTC(),
		Last:       time.Unix(0, st.LastNs).UTC(),
		LastPowerW: st.LastW,
		Readings:   st.Readings,
		Interval:   time.Duration(st.IntervalNs),
		Info:       s.info[id].clone(),
		Site:       s.siteOf(id, nil),
		Children:   children[id],
	}
	if st.SeenNs != 0 {
		m.LastHeard = time.Unix(0, st.SeenNs).UTC()
	}
	if st.ArchivedNs != 0 {
		m.ArchivedBefore = time.Unix(0, st.ArchivedNs).UTC()
	}
	m.silentAfter = max(3*m.Interval, minSilence)
	if m.Interval == 0 {
		m.silentAfter = 3 * s.maxGap
	}
	m.Availability = s.availabilityOf(id)
	return m
}

// childIndex returns the children of every meter with some, sorted;
// metersMu must be held.
func (s *Store) childIndex() map[string][]string {
	out := map[string][]string{}
	for id, info := range s.info {
		if info.Parent != "" {
			out[info.Parent] = append(out[info.Parent], id)
		}
	}
	for _, c := range out {
		slices.Sort(c)
	}
	return out
}

// Meters returns every meter with readings, sorted by id. It reads memory
// only: the states are kept up to date by each commit.
func (s *Store) Meters() []Meter {
	s.eng.refresh()
	s.metersMu.RLock()
	out := make([]Meter, 0, len(s.meters))
	children := s.childIndex()
	for id, st := range s.meters {
		out = append(out, s.meter(id, st, children))
	}
	s.metersMu.RUnlock()
	slices.SortFunc(out, func(a, b Meter) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Meter returns one meter's summary, or ErrUnknownMeter.
func (s *Store) Meter(id string) (Meter, error) {
	s.eng.refresh()
	s.metersMu.RLock()
	defer s.metersMu.RUnlock()
	st, ok := s.meters[id]
	if !ok {
		return Meter{}, fmt.Errorf("%w: %q", ErrUnknownMeter, id)
	}
	return s.meter(id, st, map[string][]string{id: s.childrenOf(id, nil)}), nil
}

// Range returns the readings of meter with from <= Time < to, oldest first,
// at most limit of them (the oldest ones), and whether more remain in the range.
func (s *Store) Range(meterID string, from, to time.Time, limit int) ([]Record, bool, error) {
	return s.eng.readings(meterID, from, to, limit)
}

// Latest returns the limit newest readings, newest first, of one meter or,
// with meterID "", of all meters merged by time (equal times by meter id).
func (s *Store) Latest(meterID string, limit int) ([]Record, error) {
	return s.eng.latest(meterID, limit)
}
