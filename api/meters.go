package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// meterJSON is a meter in the API: its registry entry, its latest state and
// its status.
type meterJSON struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Source       string    `json:"source"`
	Site         string    `json:"site"`
	Parent       string    `json:"parent"`
	Children     []string  `json:"children"`
	Tags         []string  `json:"tags"`
	ExpectedMinW *float64  `json:"expected_min_w"`
	ExpectedMaxW *float64  `json:"expected_max_w"`
	Critical     bool      `json:"critical"`
	Created      time.Time `json:"created"`
	First        time.Time `json:"first"`
	// Last is when the newest reading was taken; LastHeard when Vatio
	// last received a live reading of the meter (null if it never did:
	// only imported history). LastSeen is LastHeard's old name.
	Last      time.Time  `json:"last"`
	LastHeard *time.Time `json:"last_heard"`
	LastSeen  *time.Time `json:"last_seen"`
	// PowerW is the newest reading's power; PowerNowW the meter's power
	// now (null when it has none: offline, or its newest reading is
	// history, see store.Meter.PowerNow).
	PowerW    float64  `json:"power_w"`
	PowerNowW *float64 `json:"power_now_w"`
	// UnmeteredPowerW, for a meter with sub-meters, is its power less
	// theirs, from each one's latest reading.
	UnmeteredPowerW *float64 `json:"unmetered_power_w,omitempty"`
	Readings        uint64   `json:"readings"`
	Status          string   `json:"status"`
	OfflineReason   string   `json:"offline_reason,omitempty"`
	IntervalS       float64  `json:"interval_s"`
	// PowerFactor is the power-weighted mean power factor of the last 28
	// days, for a meter that sends one (GET /api/v1/meters/{id} only).
	PowerFactor *float64 `json:"power_factor,omitempty"`
}

func (s *Server) meterJSON(m store.Meter, power map[string]float64, now time.Time) meterJSON {
	status, why := m.Status(now)
	out := meterJSON{
		ID: m.ID, Name: m.Info.Name, Source: m.Info.Source, Site: m.Site, Parent: m.Info.Parent,
		Children: m.Children, Tags: m.Info.Tags, ExpectedMinW: m.Info.ExpectedMinW, ExpectedMaxW: m.Info.ExpectedMaxW,
		Critical: m.Info.Critical, Created: m.Info.Created, First: m.First, Last: m.Last,
		PowerW: m.LastPowerW, Readings: m.Readings, Status: status, OfflineReason: why, IntervalS: m.Interval.Seconds(),
	}
	if !m.LastHeard.IsZero() {
		heard := m.LastHeard
		out.LastHeard, out.LastSeen = &heard, &heard
	}
	if w, ok := m.PowerNow(now); ok {
		out.PowerNowW = &w
	}
	if out.Children == nil {
		out.Children = []string{}
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if len(m.Children) > 0 {
		rest := m.LastPowerW
		for _, c := range m.Children {
			rest -= power[c]
		}
		out.UnmeteredPowerW = &rest
	}
	return out
}

// powers maps each meter to its latest power.
func powers(ms []store.Meter) map[string]float64 {
	out := make(map[string]float64, len(ms))
	for _, m := range ms {
		out[m.ID] = m.LastPowerW
	}
	return out
}

// meters serves GET /api/v1/meters, optionally of one site.
func (s *Server) meters(c *fiber.Ctx) error {
	site := c.Query("site")
	if site != "" && !validSite(site) {
		return &paramError{Name: "site", Detail: siteRule}
	}
	ms := s.store.Meters()
	p, now := powers(ms), s.now()
	out := make([]meterJSON, 0, len(ms))
	for _, m := range ms {
		if site == "" || m.Site == site {
			out = append(out, s.meterJSON(m, p, now))
		}
	}
	return c.JSON(fiber.Map{"meters": out})
}

// meterID returns the path's meter id. Fiber's parameters point into a
// buffer it reuses for the next request: the id is copied, since the store
// may keep it (as a new meter's key).
func meterID(c *fiber.Ctx) (string, error) {
	id, err := url.PathUnescape(c.Params("id")) // a copy, unless nothing was escaped
	if err != nil || !meter.ValidID(id) {
		return "", &paramError{Name: "id", Detail: "not a meter id"}
	}
	return strings.Clone(id), nil
}

// getMeter serves GET /api/v1/meters/{id}.
func (s *Server) getMeter(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	return s.answerMeter(c, id)
}

func (s *Server) answerMeter(c *fiber.Ctx, id string) error {
	m, err := s.store.Meter(id)
	if err != nil {
		return err
	}
	p := map[string]float64{}
	for _, child := range m.Children {
		if cm, err := s.store.Meter(child); err == nil {
			p[child] = cm.LastPowerW
		}
	}
	out := s.meterJSON(m, p, s.now())
	if st, err := s.store.PowerFactor(id, s.now().Add(-28*24*time.Hour), s.now().Add(24*time.Hour)); err == nil && st.Readings > 0 {
		pf := math.Round(st.Mean*1000) / 1000
		out.PowerFactor = &pf
	}
	return c.JSON(out)
}

// Limits of what a user can say about a meter.
const (
	maxNameLen = 100
	maxSiteLen = 64
	maxTags    = 32
	maxTagLen  = 32
)

const siteRule = "1 to 64 letters, digits, spaces, '.', '_' or '-'"

// validSite reports whether s can name a site.
func validSite(s string) bool {
	if s == "" || utf8.RuneCountInString(s) > maxSiteLen || strings.TrimSpace(s) != s || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" ._-", r) {
			return false
		}
	}
	return true
}

// validLabel reports whether s is printable text of at most n characters.
func validLabel(s string, n int) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > n {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// patchFields are the fields PATCH takes.
var patchFields = []string{"name", "site", "parent", "tags", "expected_min_w", "expected_max_w", "critical"}

// patchMeter serves PATCH /api/v1/meters/{id}: a JSON merge patch (RFC 7396)
// of the meter's user fields. A field left out is kept; null clears it.
func (s *Server) patchMeter(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	ct := c.Get(fiber.HeaderContentType)
	if ct != "" && !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) && !strings.HasPrefix(ct, "application/merge-patch+json") {
		return fiber.NewError(fiber.StatusUnsupportedMediaType, "send the changes as application/json or application/merge-patch+json")
	}
	apply, err := parsePatch(c.Body())
	if err != nil {
		return err
	}
	if err := s.checkTenants(id, apply); err != nil {
		return err
	}
	if _, err := s.store.EditMeter(id, apply); err != nil {
		if errors.Is(err, store.ErrInvalidEdit) {
			field, detail, _ := strings.Cut(strings.TrimPrefix(err.Error(), store.ErrInvalidEdit.Error()+": "), ": ")
			return &paramError{Name: field, Detail: detail}
		}
		return err
	}
	return s.answerMeter(c, id)
}

// checkTenants refuses (409) an edit of meter id that would leave a
// tenant billed twice for one energy or across two sites: its parent or
// site moved under, over or away from another tenant's meters.
func (s *Server) checkTenants(id string, apply func(*store.MeterInfo) error) error {
	if s.tenants == nil {
		return nil
	}
	m, err := s.store.Meter(id)
	if err != nil {
		return nil // EditMeter says so
	}
	info := m.Info
	info.Tags = slices.Clone(info.Tags)
	if apply(&info) != nil {
		return nil // EditMeter says so
	}
	if m.Info.Parent != "" && info.Parent == "" && info.Site == "" {
		info.Site = m.Site // a sub-meter taken off its parent stays in its site (as EditMeter does)
	}
	if err := s.tenants.CheckEdit(id, info); errors.Is(err, statement.ErrTenantConflict) {
		return fiber.NewError(fiber.StatusConflict, strings.TrimPrefix(err.Error(), "statement: ")+" (change the tenant first)")
	} else if err != nil {
		return err
	}
	return nil
}

// parsePatch checks a PATCH body and returns the edit it makes.
func parsePatch(body []byte) (func(*store.MeterInfo) error, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, &paramError{Name: "body", Detail: "not a JSON object of the fields to change (" + strings.Join(patchFields, ", ") + ")"}
	}
	if dec.More() {
		return nil, &paramError{Name: "body", Detail: "more than one JSON value"}
	}
	var edits []func(*store.MeterInfo)
	_, siteGiven := fields["site"]
	_, parentGiven := fields["parent"]
	for name, raw := range fields {
		null := string(raw) == "null"
		bad := func(detail string) error { return &paramError{Name: name, Detail: detail} }
		switch name {
		case "name", "site", "parent":
			var v string
			if !null && json.Unmarshal(raw, &v) != nil {
				return nil, bad("must be a string or null")
			}
			switch {
			case name == "name" && !validLabel(v, maxNameLen):
				return nil, bad(fmt.Sprintf("at most %d printable characters", maxNameLen))
			case name == "site" && v != "" && !validSite(v):
				return nil, bad(siteRule)
			case name == "parent" && v != "" && !meter.ValidID(v):
				return nil, bad("not a meter id")
			}
			v = strings.TrimSpace(v)
			edits = append(edits, func(m *store.MeterInfo) {
				switch name {
				case "name":
					m.Name = v
				case "site":
					m.Site = v
				case "parent":
					m.Parent = v
				}
			})
		case "tags":
			var tags []string
			if !null && json.Unmarshal(raw, &tags) != nil {
				return nil, bad("must be an array of strings or null")
			}
			if len(tags) > maxTags {
				return nil, bad(fmt.Sprintf("at most %d tags", maxTags))
			}
			for _, tag := range tags {
				if tag == "" || strings.TrimSpace(tag) != tag || !validLabel(tag, maxTagLen) {
					return nil, bad(fmt.Sprintf("%q: a tag is 1 to %d printable characters, no spaces around", clip(tag), maxTagLen))
				}
			}
			slices.Sort(tags)
			tags = slices.Compact(tags)
			edits = append(edits, func(m *store.MeterInfo) { m.Tags = tags })
		case "expected_min_w", "expected_max_w":
			var v *float64
			if !null {
				var f float64
				if json.Unmarshal(raw, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e9 {
					return nil, bad("must be a number of watts (at most 1e9 either way) or null")
				}
				v = &f
			}
			edits = append(edits, func(m *store.MeterInfo) {
				if name == "expected_min_w" {
					m.ExpectedMinW = v
				} else {
					m.ExpectedMaxW = v
				}
			})
		case "critical":
			var v bool
			if !null && json.Unmarshal(raw, &v) != nil {
				return nil, bad("must be true, false or null")
			}
			edits = append(edits, func(m *store.MeterInfo) { m.Critical = v })
		default:
			return nil, &paramError{Name: "body", Detail: fmt.Sprintf("%q is not a field a meter has; use %s", clip(name), strings.Join(patchFields, ", "))}
		}
	}
	return func(m *store.MeterInfo) error {
		for _, e := range edits {
			e(m)
		}
		if parentGiven && m.Parent != "" && !siteGiven {
			m.Site = "" // a sub-meter is in its parent's site
		}
		if lo, hi := m.ExpectedMinW, m.ExpectedMaxW; lo != nil && hi != nil && !(*lo < *hi) {
			return fmt.Errorf("expected_min_w: %g must be below expected_max_w (%g)", *lo, *hi)
		}
		return nil
	}, nil
}

// deleteMeter serves DELETE /api/v1/meters/{id}: the meter and all its data
// are erased.
func (s *Server) deleteMeter(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	erased, err := s.store.DeleteMeter(id)
	if err != nil {
		return err
	}
	if s.tenants != nil {
		// Its tenant bills it no more; one that comes back by the same
		// id joins no tenant unasked.
		if tid, err := s.tenants.ForgetMeter(id); err != nil {
			s.log.Warn("deleted meter left in its tenant", "meter", id, "error", err)
		} else if tid != "" {
			audit.Note(c.UserContext(), "meter "+id+" taken out of tenant "+tid)
		}
	}
	s.log.Info("meter deleted", "meter", id, "readings", erased.Readings, "alerts", erased.Alerts, "archive_files", erased.ArchiveFiles)
	return c.JSON(fiber.Map{"deleted": id, "readings": erased.Readings, "alerts": erased.Alerts, "archive_files": erased.ArchiveFiles})
}

// energyPoint is one calendar bucket of an energy answer.
type energyPoint struct {
	T   time.Time `json:"t"`
	End time.Time `json:"end"`
	// EnergyKWh is the energy drawn in the bucket, ExportKWh the energy sent
	// to the grid; Cost is what it cost less what the export earned, in the
	// tariff's currency; CO2Kg the carbon of the energy drawn.
	EnergyKWh float64 `json:"energy_kwh"`
	ExportKWh float64 `json:"export_kwh"`
	Cost      float64 `json:"cost"`
	CO2Kg     float64 `json:"co2_kg"`
	// ChildrenKWh and UnmeteredKWh, for a meter with sub-meters: their net
	// energy (drawn less exported), and the parent's net energy less theirs.
	ChildrenKWh  *float64 `json:"children_kwh,omitempty"`
	UnmeteredKWh *float64 `json:"unmetered_kwh,omitempty"`
}

type energyTotal struct {
	EnergyKWh    float64  `json:"energy_kwh"`
	ExportKWh    float64  `json:"export_kwh"`
	Cost         float64  `json:"cost"`
	CO2Kg        float64  `json:"co2_kg"`
	ChildrenKWh  *float64 `json:"children_kwh,omitempty"`
	UnmeteredKWh *float64 `json:"unmetered_kwh,omitempty"`
}

// energyAnswer is the answer of the energy routes.
type energyAnswer struct {
	Meter    string        `json:"meter,omitempty"`
	Site     string        `json:"site,omitempty"`
	Interval string        `json:"interval"`
	TimeZone string        `json:"time_zone"`
	Currency string        `json:"currency"`
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Children *[]string     `json:"children,omitempty"` // a meter's sub-meters
	Meters   *[]string     `json:"meters,omitempty"`   // a site's main meters
	Points   []energyPoint `json:"points"`
	Total    energyTotal   `json:"total"`
}

// energyParams parses from, to and interval of an energy request: by
// default the last 24 hours by hour. from is rounded down to its bucket.
func (s *Server) energyParams(c *fiber.Ctx) (from, to time.Time, iv energy.Interval, err error) {
	now := s.now()
	if to, err = parseTime("to", c.Query("to"), now); err != nil {
		return
	}
	if from, err = parseTime("from", c.Query("from"), to.Add(-24*time.Hour)); err != nil {
		return
	}
	if !from.Before(to) {
		err = &paramError{Name: "from", Detail: "must be before to"}
		return
	}
	name := c.Query("interval", "hour")
	iv, ok := energy.ParseInterval(name)
	if !ok {
		err = &paramError{Name: "interval", Detail: fmt.Sprintf("%q is not hour, day or month", clip(name))}
	}
	return
}

// series returns the energy buckets of ids, mapping too many to a 400.
func (s *Server) series(tr *tariff.Tariff, ids []string, iv energy.Interval, from, to time.Time) ([]energy.Bucket, error) {
	bs, err := energy.Series(s.store, ids, iv, from, to, tr)
	if errors.Is(err, energy.ErrTooMany) {
		return nil, &paramError{Name: "interval", Detail: err.Error() + ": use a longer interval or a shorter range"}
	}
	return bs, err
}

// answerEnergy builds an energy answer from buckets, with the net energy of
// children when kids is not nil.
func (s *Server) answerEnergy(tr *tariff.Tariff, out *energyAnswer, iv energy.Interval, from, to time.Time, own, kids []energy.Bucket) {
	out.Interval, out.TimeZone, out.Currency = iv.String(), tr.Location.String(), tr.Currency
	out.From, out.To = from, to
	out.Points = make([]energyPoint, len(own))
	if kids != nil {
		out.Total.ChildrenKWh, out.Total.UnmeteredKWh = new(float64), new(float64)
	}
	for i, b := range own {
		p := energyPoint{T: b.Start, End: b.End, EnergyKWh: energy.RoundKWh(b.InKWh), ExportKWh: energy.RoundKWh(b.OutKWh), Cost: tariff.Round(b.Cost), CO2Kg: b.CO2Kg}
		if kids != nil {
			ch := energy.RoundKWh(kids[i].InKWh - kids[i].OutKWh)
			rest := energy.RoundKWh(b.InKWh - b.OutKWh - ch)
			p.ChildrenKWh, p.UnmeteredKWh = &ch, &rest
			*out.Total.ChildrenKWh += ch
			*out.Total.UnmeteredKWh += rest
		}
		out.Points[i] = p
		out.Total.EnergyKWh += b.InKWh
		out.Total.ExportKWh += b.OutKWh
		out.Total.Cost += b.Cost
		out.Total.CO2Kg += b.CO2Kg
	}
	out.Total.Cost = tariff.Round(out.Total.Cost)
	out.Total.EnergyKWh, out.Total.ExportKWh = energy.RoundKWh(out.Total.EnergyKWh), energy.RoundKWh(out.Total.ExportKWh)
	if kids != nil {
		*out.Total.ChildrenKWh, *out.Total.UnmeteredKWh = energy.RoundKWh(*out.Total.ChildrenKWh), energy.RoundKWh(*out.Total.UnmeteredKWh)
	}
}

// meterEnergy serves GET /api/v1/meters/{id}/energy: the meter's energy,
// cost and CO2 per calendar hour, day or month in the configured time zone;
// for a meter with sub-meters also theirs and the unmetered remainder.
func (s *Server) meterEnergy(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	from, to, iv, err := s.energyParams(c)
	if err != nil {
		return err
	}
	m, err := s.store.Meter(id)
	if err != nil {
		return err
	}
	tr := s.tariffs.Current()
	own, err := s.series(tr, []string{id}, iv, from, to)
	if err != nil {
		return err
	}
	var kids []energy.Bucket
	if len(m.Children) > 0 {
		if kids, err = s.series(tr, m.Children, iv, from, to); err != nil {
			return err
		}
	}
	kidIDs := m.Children
	if kidIDs == nil {
		kidIDs = []string{}
	}
	out := energyAnswer{Meter: id, Children: &kidIDs}
	s.answerEnergy(tr, &out, iv, from, to, own, kids)
	return c.JSON(out)
}

// siteJSON is a site: its main meters (those without a parent) make its
// totals, so that no sub-meter is counted twice.
type siteJSON struct {
	Site      string   `json:"site"`
	Meters    []string `json:"meters"`
	SubMeters []string `json:"sub_meters"`
	PowerW    float64  `json:"power_w"`
	Online    int      `json:"online"`
	Offline   int      `json:"offline"`
}

// sites serves GET /api/v1/sites.
func (s *Server) sites(c *fiber.Ctx) error {
	now := s.now()
	bySite := map[string]*siteJSON{}
	for _, m := range s.store.Meters() {
		st := bySite[m.Site]
		if st == nil {
			st = &siteJSON{Site: m.Site, Meters: []string{}, SubMeters: []string{}}
			bySite[m.Site] = st
		}
		if status, _ := m.Status(now); status == store.StatusOnline {
			st.Online++
		} else {
			st.Offline++
		}
		if m.Info.Parent != "" {
			st.SubMeters = append(st.SubMeters, m.ID)
			continue
		}
		st.Meters = append(st.Meters, m.ID)
		if w, ok := m.PowerNow(now); ok {
			st.PowerW += w
		}
	}
	out := make([]*siteJSON, 0, len(bySite))
	for _, st := range bySite {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *siteJSON) int { return strings.Compare(a.Site, b.Site) })
	return c.JSON(fiber.Map{"sites": out})
}

// siteParam returns the path's site.
func siteParam(c *fiber.Ctx) (string, error) {
	site, err := url.PathUnescape(strings.Clone(c.Params("site")))
	if err != nil || !validSite(site) {
		return "", &paramError{Name: "site", Detail: siteRule}
	}
	return site, nil
}

// mainMeters returns the main meters of site (of every site when site is
// ""), and the sites they are in.
func (s *Server) mainMeters(site string) (ids []string, sites map[string][]string) {
	sites = map[string][]string{}
	for _, m := range s.store.Meters() {
		if m.Info.Parent == "" && (site == "" || m.Site == site) {
			ids = append(ids, m.ID)
			sites[m.Site] = append(sites[m.Site], m.ID)
		}
	}
	return ids, sites
}

// siteEnergy serves GET /api/v1/sites/{site}/energy: the energy, cost and
// CO2 of the site's main meters per calendar hour, day or month, so that
// no sub-meter is counted twice.
func (s *Server) siteEnergy(c *fiber.Ctx) error {
	site, err := siteParam(c)
	if err != nil {
		return err
	}
	from, to, iv, err := s.energyParams(c)
	if err != nil {
		return err
	}
	mains, _ := s.mainMeters(site)
	if mains == nil {
		return fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("no meter in site %q", site))
	}
	tr := s.tariffs.Current()
	bs, err := s.series(tr, mains, iv, from, to)
	if err != nil {
		return err
	}
	out := energyAnswer{Site: site, Meters: &mains}
	s.answerEnergy(tr, &out, iv, from, to, bs, nil)
	return c.JSON(out)
}
