package store

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// MeterInfo is what the registry knows of a meter beyond its readings: how
// it was first seen, and what its user said about it.
type MeterInfo struct {
	// Source is the device family of the meter's first reading ("tasmota",
	// "shelly", "import", ...); "" for a meter from before the registry.
	Source string `json:"source"`
	// Created is when the meter's first reading was stored.
	Created time.Time `json:"created"`
	// Name is a label for people; the id stays the meter's key.
	Name string `json:"name,omitempty"`
	// Site groups meters (a home, a plant). A sub-meter's site is its
	// parent's: Site is kept empty on a meter with a Parent.
	Site string `json:"site,omitempty"`
	// Parent is the meter upstream of this one, which also measures what
	// this one does: site totals count only meters without a parent.
	Parent string   `json:"parent,omitempty"`
	Tags   []string `json:"tags,omitempty"`
	// ExpectedMinW and ExpectedMaxW bound the power the user expects, in
	// watts; nil when not set. ExpectedMaxW also bounds how fast the
	// meter's energy counter may rise (see checkCounter).
	ExpectedMinW *float64 `json:"expected_min_w,omitempty"`
	ExpectedMaxW *float64 `json:"expected_max_w,omitempty"`
	// Critical marks a load that load shedding must never switch off.
	Critical bool `json:"critical,omitempty"`
}

func (m MeterInfo) clone() MeterInfo {
	m.Tags = slices.Clone(m.Tags)
	if m.ExpectedMinW != nil {
		v := *m.ExpectedMinW
		m.ExpectedMinW = &v
	}
	if m.ExpectedMaxW != nil {
		v := *m.ExpectedMaxW
		m.ExpectedMaxW = &v
	}
	return m
}

// Availability is what a device last announced of itself (an MQTT last
// will, a Shelly online topic).
type Availability struct {
	Online bool
	At     time.Time
}

// Meter statuses (see Meter.Status).
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// Why a meter is offline (see Meter.Status).
const (
	OfflineAnnounced = "announced" // the device said so (LWT)
	OfflineSilent    = "silent"    // no live reading for 3 times its usual interval
	OfflineHistory   = "history"   // never heard live: only imported or restored history
)

// minSilence is the least silence that makes a meter offline: a meter
// reading every second is not offline after three.
const minSilence = 10 * time.Second

// minNow is the least age at which a meter's newest reading is no longer
// its power now (see PowerNow), however often the meter reads: a device
// whose clock lags the server's a little still counts.
const minNow = time.Minute

// Status returns whether the meter is online at now and, when it is not,
// why: it was never heard live (only imported history), the device
// announced it went offline (and sent nothing since), or it has been silent
// for more than three times its usual interval between readings (or, while
// that interval is unknown, three times the store's MaxGap). Only live
// readings count, by when they arrived (LastHeard): imported or restored
// history never makes a meter online.
func (m Meter) Status(now time.Time) (status, why string) {
	if m.LastHeard.IsZero() {
		return StatusOffline, OfflineHistory
	}
	if a := m.Availability; a != nil && !a.Online && !m.LastHeard.After(a.At) {
		return StatusOffline, OfflineAnnounced
	}
	if now.Sub(m.LastHeard) > m.silentAfter {
		return StatusOffline, OfflineSilent
	}
	return StatusOnline, ""
}

// SilentAfter is the silence after which the meter is offline (see
// Status): three times its usual interval, at least 10 s, or three times
// the store's MaxGap while the interval is unknown.
func (m Meter) SilentAfter() time.Duration { return m.silentAfter }

// NewestLive is when the meter's newest live reading was taken, as far as
// the registry can tell: its newest reading's time, or when it was last
// heard if that is earlier (a reading stamped on receipt, late history
// newer than what it reported live); the zero time for a meter never heard
// live. History imported later than it would become the meter's power now.
func (m Meter) NewestLive() time.Time {
	if m.LastHeard.IsZero() {
		return time.Time{}
	}
	if m.Last.Before(m.LastHeard) {
		return m.Last
	}
	return m.LastHeard
}

// PowerNow returns the meter's power now at now, in watts, and whether it
// has one: it is online (heard live within its silence window) and its
// newest reading was taken within that window too, or a minute, whichever
// is longer. A meter that replays readings it buffered while cut off is
// heard, but what it sends is history until it catches up; a meter known
// only from an import is never online.
func (m Meter) PowerNow(now time.Time) (float64, bool) {
	if st, _ := m.Status(now); st != StatusOnline {
		return 0, false
	}
	if now.Sub(m.Last) > max(m.silentAfter, minNow) {
		return 0, false
	}
	return m.LastPowerW, true
}

// Since returns when the meter's data is known to begin: its oldest
// reading stored (or, once retention archived them all, its newest ever),
// or when Vatio stored its first reading, whichever is earlier. Zero for a
// meter with neither.
func (m Meter) Since() time.Time {
	since := m.Info.Created
	hasFirst := m.Readings > 0 || !m.ArchivedBefore.IsZero()
	if hasFirst && (since.IsZero() || m.First.Before(since)) {
		since = m.First
	}
	return since
}

// gapRing holds a meter's latest intervals between readings.
type gapRing struct {
	gaps [16]int64
	n, i int
}

// noteInterval records that meter id (in state st) received a reading at
// nowNs and updates its usual interval: the second longest of its latest
// 16 intervals (the longest when it has only one). Ignoring the longest
// means that one silence (a pause, a Wi-Fi drop, a restart of Vatio, a
// night without power) does not become the interval and keep the meter
// online, in Power now and unbroken on charts for three times that
// silence once it stops. Keeping the second longest means that a meter
// that reports on change and at least every teleperiod when idle (Shelly,
// Tasmota) keeps its idle period as its interval once that period showed
// twice in 16 gaps, so it is not taken for silent between two idle
// reports. A median would not do: a plug that reports each second while
// its load changes and every 5 minutes when idle would go offline in every
// idle stretch. A meter whose only long gap in 16 was one idle report is
// offline once, during its next idle stretch, until that repeats. Only the
// writer calls it; it scans 16 numbers and allocates nothing.
func (s *Store) noteInterval(id string, st *meterState, nowNs int64) {
	if st.SeenNs == 0 {
		return
	}
	gap := nowNs - st.SeenNs
	if gap < int64(100*time.Millisecond) {
		return // several readings in one burst
	}
	r := s.gaps[id]
	if r == nil {
		r = &gapRing{}
		s.gaps[id] = r
		if st.IntervalNs > 0 {
			// From before a restart, where it was the second longest:
			// twice, so that the gap across the restart is the one
			// ignored.
			r.gaps[0], r.gaps[1], r.n, r.i = st.IntervalNs, st.IntervalNs, 2, 2
		}
	}
	r.gaps[r.i] = min(gap, int64(24*time.Hour))
	r.i = (r.i + 1) % len(r.gaps)
	r.n = min(r.n+1, len(r.gaps))
	st.IntervalNs = secondLongest(r.gaps[:r.n])
}

// secondLongest returns the second largest of gaps, or the largest when
// there is only one.
func secondLongest(gaps []int64) int64 {
	var first, second int64
	for _, g := range gaps {
		if g > first {
			first, second = g, first
		} else if g > second {
			second = g
		}
	}
	if len(gaps) < 2 {
		return first
	}
	return second
}

// maxPowerW is the most power meter id can draw: its expected maximum, or
// the store's MaxPowerW. Only the writer calls it.
func (s *Store) maxPowerW(id string) float64 {
	if w, ok := expectedMaxW(s.info[id]); ok {
		return w
	}
	return s.maxPower
}

// maxPowerIn is maxPowerW as transaction tx sees meter id: by its entry
// changed in the transaction (in newInfo), else the one tx found.
func (s *Store) maxPowerIn(tx writeTx, newInfo map[string]MeterInfo, id string) float64 {
	if w, ok := expectedMaxW(newInfo[id]); ok {
		return w
	}
	if info, ok := tx.info(id); ok {
		if w, ok := expectedMaxW(info); ok {
			return w
		}
	}
	return s.maxPower
}

// expectedMaxW returns an entry's expected maximum power, if it has one.
func expectedMaxW(info MeterInfo) (float64, bool) {
	if info.ExpectedMaxW != nil && *info.ExpectedMaxW > 0 {
		return *info.ExpectedMaxW, true
	}
	return 0, false
}

// lookupInfo returns meter id's registry entry as the writer sees it:
// changed in this transaction, or committed.
func (s *Store) lookupInfo(id string, newInfo map[string]MeterInfo) (MeterInfo, bool) {
	if info, ok := newInfo[id]; ok {
		return info, true
	}
	info, ok := s.info[id]
	return info, ok
}

// ErrInvalidEdit wraps the reason an edit of a meter was refused.
var ErrInvalidEdit = errors.New("store: invalid meter edit")

// refused is an edit refused without failing its transaction; it wraps why.
type refused struct{ err error }

func (r *refused) Error() string { return r.err.Error() }

func (r *refused) Unwrap() error { return r.err }

// editJob is an edit of a meter's registry entry.
type editJob struct {
	meter  string
	apply  func(*MeterInfo) error
	result MeterInfo
}

// runEdit applies job to its meter's entry, checking the hierarchy, and
// writes the new entry with put.
func (s *Store) runEdit(put func(id string, info MeterInfo) error, job *editJob, newInfo map[string]MeterInfo) error {
	cur, ok := s.lookupInfo(job.meter, newInfo)
	if !ok {
		return &refused{fmt.Errorf("%w: %q", ErrUnknownMeter, job.meter)}
	}
	info := cur.clone()
	site := s.siteOf(job.meter, newInfo)
	if err := job.apply(&info); err != nil {
		return &refused{fmt.Errorf("%w: %w", ErrInvalidEdit, err)}
	}
	if cur.Parent != "" && info.Parent == "" && info.Site == "" && site != DefaultSite {
		info.Site = site // a sub-meter taken off its parent stays in its site
	}
	if err := s.checkHierarchy(job.meter, &info, newInfo); err != nil {
		return &refused{fmt.Errorf("%w: %w", ErrInvalidEdit, err)}
	}
	if err := put(job.meter, info); err != nil {
		return err
	}
	newInfo[job.meter] = info
	job.result = info
	return nil
}

// maxDepth bounds a hierarchy: a main meter and sub-meters below it, 8
// levels in all.
const maxDepth = 8

// checkHierarchy checks info, the new entry of meter id: its parent must be
// another known meter, not below id, and at most maxDepth levels deep. A
// sub-meter's site is its parent's: a site given with a parent must be the
// parent's, and is then dropped.
func (s *Store) checkHierarchy(id string, info *MeterInfo, newInfo map[string]MeterInfo) error {
	if info.Parent == "" {
		return nil
	}
	if info.Parent == id {
		return errors.New("parent: a meter cannot be its own parent")
	}
	// levels counts the meters from the main meter down to id.
	levels := 1
	for p := info.Parent; p != ""; levels++ {
		pi, ok := s.lookupInfo(p, newInfo)
		if !ok {
			return fmt.Errorf("parent: no meter %q", p)
		}
		if p == id {
			return fmt.Errorf("parent: %q is below %q: that would make a loop", info.Parent, id)
		}
		if levels >= maxDepth {
			return fmt.Errorf("parent: more than %d levels of meters", maxDepth)
		}
		if pi.Parent == "" && info.Site != "" && info.Site != cmp.Or(pi.Site, DefaultSite) {
			return fmt.Errorf("site: a sub-meter is in its parent's site %q, not %q", cmp.Or(pi.Site, DefaultSite), info.Site)
		}
		p = pi.Parent
	}
	// The sub-meters below id move with it.
	if levels+s.depthBelow(id, newInfo, 0) > maxDepth {
		return fmt.Errorf("parent: more than %d levels of meters", maxDepth)
	}
	info.Site = ""
	return nil
}

// depthBelow returns how many levels of sub-meters hang below id.
func (s *Store) depthBelow(id string, newInfo map[string]MeterInfo, level int) int {
	if level > maxDepth {
		return level
	}
	deepest := 0
	for _, child := range s.childrenOf(id, newInfo) {
		deepest = max(deepest, 1+s.depthBelow(child, newInfo, level+1))
	}
	return deepest
}

// childrenOf returns the meters whose parent is id, sorted, as the writer
// sees them.
func (s *Store) childrenOf(id string, newInfo map[string]MeterInfo) []string {
	var out []string
	for cid, info := range s.info {
		if _, ok := newInfo[cid]; !ok && info.Parent == id {
			out = append(out, cid)
		}
	}
	for cid, info := range newInfo {
		if info.Parent == id {
			out = append(out, cid)
		}
	}
	slices.Sort(out)
	return out
}

// EditMeter changes meter id's registry entry with apply, which gets a copy
// of the entry to change and returns an error to refuse the edit. The new
// entry's hierarchy is checked (see MeterInfo.Parent): a parent that is not
// a known meter or would make a loop is refused. Refusals wrap
// ErrInvalidEdit; an unknown meter is ErrUnknownMeter.
func (s *Store) EditMeter(id string, apply func(*MeterInfo) error) (MeterInfo, error) {
	job := &editJob{meter: id, apply: apply}
	ch := make(chan error, 1)
	if err := s.enqueue(entry{edit: job, done: func(err error) { ch <- err }}); err != nil {
		return MeterInfo{}, err
	}
	if err := <-ch; err != nil {
		if r := (*refused)(nil); errors.As(err, &r) {
			return MeterInfo{}, r.err
		}
		return MeterInfo{}, fmt.Errorf("store: edit meter %q: %w", id, err)
	}
	return job.result.clone(), nil
}

// Erased says what DeleteMeter removed.
type Erased struct {
	Readings     uint64 `json:"readings"`
	Alerts       int    `json:"alerts"`
	ArchiveFiles int    `json:"archive_files"`
}

// eraseJob erases one meter.
type eraseJob struct {
	meter  string
	result Erased
}

// reparent moves the sub-meters of meter id, whose entry is info, up to its
// parent (or makes them main meters of its site), writing their entries
// with put: id is being erased.
func (s *Store) reparent(id string, info MeterInfo, newInfo map[string]MeterInfo, put func(id string, info MeterInfo) error) error {
	site := s.siteOf(id, newInfo)
	for _, child := range s.childrenOf(id, newInfo) {
		ci, _ := s.lookupInfo(child, newInfo)
		ci = ci.clone()
		ci.Parent = info.Parent
		if ci.Parent == "" {
			ci.Site = site
		}
		if err := put(child, ci); err != nil {
			return err
		}
		newInfo[child] = ci
	}
	return nil
}

// DefaultSite is the site of a main meter that was given none.
const DefaultSite = "default"

// siteOf returns the site of meter id: its main meter's, or DefaultSite.
func (s *Store) siteOf(id string, newInfo map[string]MeterInfo) string {
	for range maxDepth + 1 {
		info, ok := s.lookupInfo(id, newInfo)
		if !ok || info.Parent == "" && info.Site == "" {
			return DefaultSite
		}
		if info.Parent == "" {
			return info.Site
		}
		id = info.Parent
	}
	return DefaultSite
}

// ErasedKind is the kind of the documents (see Docs) that record each
// erased meter, by id, with the time it was erased: copies kept elsewhere
// are erased by whoever keeps them, who then deletes the record.
const ErasedKind = "erased"

// DeleteMeter erases meter id and all its data: its readings, rollups,
// registry entry, alerts and archive files. Its sub-meters move up to its
// parent (or become main meters of its site). Backups taken before keep
// the meter until they are rotated out. A reading of the meter arriving
// afterwards creates it anew. A document of kind ErasedKind records the
// erasure for copies kept elsewhere.
func (s *Store) DeleteMeter(id string) (Erased, error) {
	// No retention run may write the meter's archive meanwhile.
	s.retentionMu.Lock()
	defer s.retentionMu.Unlock()
	job := &eraseJob{meter: id}
	ch := make(chan error, 1)
	if err := s.enqueue(entry{erase: job, done: func(err error) { ch <- err }}); err != nil {
		return Erased{}, err
	}
	if err := <-ch; err != nil {
		if r := (*refused)(nil); errors.As(err, &r) {
			return Erased{}, r.err
		}
		return Erased{}, fmt.Errorf("store: delete meter %q: %w", id, err)
	}
	dir := filepath.Join(s.archiveDir, id)
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if err := os.RemoveAll(dir); err != nil {
		return job.result, fmt.Errorf("store: delete archive of meter %q: %w", id, err)
	}
	job.result.ArchiveFiles = len(files)
	return job.result, nil
}

// availability holds what devices announced of themselves, by device (a
// meter id, or the part before the last ':' of a channel's meter id).
type availability struct {
	mu     sync.RWMutex
	device map[string]Availability
}

// maxDevices bounds the availability map against a flood of made-up ids.
const maxDevices = 100000

// SetAvailability records that device (a meter id, or the device part of
// several meters' ids, see meter.SubMeterID) announced at at whether it is
// online.
func (s *Store) SetAvailability(device string, online bool, at time.Time) {
	s.avail.mu.Lock()
	defer s.avail.mu.Unlock()
	if _, ok := s.avail.device[device]; !ok && len(s.avail.device) >= maxDevices {
		return
	}
	s.avail.device[device] = Availability{Online: online, At: at}
}

// availabilityOf returns what meter id's device last announced, if anything.
func (s *Store) availabilityOf(id string) *Availability {
	s.avail.mu.RLock()
	defer s.avail.mu.RUnlock()
	if len(s.avail.device) == 0 {
		return nil
	}
	if a, ok := s.avail.device[id]; ok {
		return &a
	}
	if i := strings.LastIndexByte(id, ':'); i > 0 {
		if a, ok := s.avail.device[id[:i]]; ok {
			return &a
		}
	}
	return nil
}
