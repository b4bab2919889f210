package statement

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// Tenant is a named group of meters billed together: an office's tenant,
// a plant's line.
type Tenant struct {
	// ID names it in URLs and subjects (tenant:ID).
	ID string `json:"id"`
	// Name and Address are what its statement is made out to.
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	// Meters are its meters; a meter belongs to at most one tenant, and
	// none is another's sub-meter (it would count twice).
	Meters []string `json:"meters"`
	// FixedShare is how much of its site's fixed and demand charges it
	// bears: ShareEnergy, its part of the site's energy drawn, or
	// SharePercent, FixedPercent of them.
	FixedShare   string  `json:"fixed_share"`
	FixedPercent float64 `json:"fixed_percent,omitempty"`
}

// The ways a tenant shares its site's fixed charges.
const (
	ShareEnergy  = "energy"
	SharePercent = "percent"
)

// Limits of tenants.
const (
	MaxTenants       = 500
	MaxTenantMeters  = 500
	maxTenantName    = 200
	maxTenantAddress = 1000
)

var tenantID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Errors of Tenants.
var (
	ErrUnknownTenant = errors.New("statement: no such tenant")
	ErrTooMany       = fmt.Errorf("statement: at most %d tenants", MaxTenants)
)

// InvalidError is a tenant refused: the field wrong, and why, in English
// (Reason) and as a message key and its arguments for other languages.
type InvalidError struct {
	Field, Reason string
	Key           string
	Args          []any
}

// invalid makes an InvalidError of field whose reason is format's, with
// key naming the message.
func invalid(field, key, format string, args ...any) *InvalidError {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...), Key: key, Args: args}
}

func (e *InvalidError) Error() string { return "invalid tenant: " + e.Field + ": " + e.Reason }

// docTenants is the document kind of a tenant, keyed by its id.
const docTenants = "tenants"

// Tenants are the tenants, kept in the store. It is safe for concurrent
// use; on a store other processes change, each use reads them again.
type Tenants struct {
	st *store.Store
	mu sync.Mutex
	// all are the tenants by id, as last read.
	all map[string]Tenant
	// edit, while CheckEdit runs, is a meter's registry entry as an edit
	// would leave it: the checks read it instead of the store's. t.mu is
	// held.
	edit map[string]store.MeterInfo
}

// NewTenants returns the tenants saved in st.
func NewTenants(st *store.Store) (*Tenants, error) {
	t := &Tenants{st: st}
	if err := t.load(); err != nil {
		return nil, fmt.Errorf("statement: read the tenants: %w", err)
	}
	return t, nil
}

func (t *Tenants) load() error {
	docs, err := t.st.Docs(docTenants)
	if err != nil {
		return err
	}
	all := make(map[string]Tenant, len(docs))
	for id, v := range docs {
		var x Tenant
		if json.Unmarshal(v, &x) == nil {
			all[id] = x
		}
	}
	t.all = all
	return nil
}

// fresh reads the tenants again on a shared store; t.mu is held.
func (t *Tenants) fresh() error {
	if t.st.Shared() {
		return t.load()
	}
	return nil
}

// List returns the tenants by id.
func (t *Tenants) List() ([]Tenant, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.fresh(); err != nil {
		return nil, err
	}
	out := make([]Tenant, 0, len(t.all))
	for _, id := range slices.Sorted(maps.Keys(t.all)) {
		out = append(out, t.all[id])
	}
	return out, nil
}

// Get returns the tenant id.
func (t *Tenants) Get(id string) (Tenant, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.fresh(); err != nil {
		return Tenant{}, err
	}
	x, ok := t.all[id]
	if !ok {
		return Tenant{}, fmt.Errorf("%w: %q", ErrUnknownTenant, id)
	}
	return x, nil
}

// Of returns the tenant meter id belongs to, if any.
func (t *Tenants) Of(id string) (Tenant, bool) {
	list, err := t.List()
	if err != nil {
		return Tenant{}, false
	}
	for _, x := range list {
		if slices.Contains(x.Meters, id) {
			return x, true
		}
	}
	return Tenant{}, false
}

// Put saves x, made (created) or replaced, after checking it: its id and
// name, meters that exist, belong to no other tenant and are none of
// them another's sub-meter, and its share of the fixed charges.
func (t *Tenants) Put(x Tenant) (saved Tenant, created bool, err error) {
	x.Name, x.Address = strings.TrimSpace(x.Name), strings.TrimSpace(x.Address)
	if x.FixedShare == "" {
		x.FixedShare = ShareEnergy
	}
	if x.Meters == nil {
		x.Meters = []string{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.fresh(); err != nil {
		return Tenant{}, false, err
	}
	if err := t.check(x); err != nil {
		return Tenant{}, false, err
	}
	_, had := t.all[x.ID]
	if !had && len(t.all) >= MaxTenants {
		return Tenant{}, false, ErrTooMany
	}
	v, err := json.Marshal(x)
	if err != nil {
		return Tenant{}, false, err
	}
	if err := t.st.PutDoc(docTenants, x.ID, v); err != nil {
		return Tenant{}, false, fmt.Errorf("statement: save tenant %s: %w", x.ID, err)
	}
	t.all[x.ID] = x
	return x, !had, nil
}

// check says what is wrong with x; t.mu is held.
func (t *Tenants) check(x Tenant) error {
	switch {
	case !tenantID.MatchString(x.ID):
		return invalid("id", "id", "1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit")
	case x.Name == "" || utf8.RuneCountInString(x.Name) > maxTenantName || !utf8.ValidString(x.Name):
		return invalid("name", "name", "the name its statements are made out to, 1 to %d characters", maxTenantName)
	case utf8.RuneCountInString(x.Address) > maxTenantAddress || !utf8.ValidString(x.Address):
		return invalid("address", "address", "at most %d characters", maxTenantAddress)
	case unprintable(x.Name, false):
		return invalid("name", "printable", "letters, digits, spaces and punctuation: no control or text-direction characters")
	case unprintable(x.Address, true):
		return invalid("address", "printable", "letters, digits, spaces and punctuation: no control or text-direction characters")
	case len(x.Meters) == 0 || len(x.Meters) > MaxTenantMeters:
		return invalid("meters", "meters", "the meters it is billed for, 1 to %d", MaxTenantMeters)
	}
	return t.checkMeters(x)
}

// checkMeters says what is wrong with x's share and meters as the
// registry stands (or as t.edit would leave it); t.mu is held.
func (t *Tenants) checkMeters(x Tenant) error {
	switch x.FixedShare {
	case ShareEnergy:
		if x.FixedPercent != 0 {
			return invalid("fixed_percent", "percent_only", "give it only with fixed_share percent")
		}
	case SharePercent:
		if math.IsNaN(x.FixedPercent) || x.FixedPercent < 0 || x.FixedPercent > 100 {
			return invalid("fixed_percent", "percent", "0 to 100")
		}
	default:
		return invalid("fixed_share", "share", "energy (its part of the site's energy) or percent (fixed_percent of the site's charges)")
	}
	site := ""
	for i, id := range x.Meters {
		if !meter.ValidID(id) {
			return invalid(fmt.Sprintf("meters[%d]", i), "not_id", "%q is no meter id", clip(id))
		}
		if slices.Index(x.Meters, id) != i {
			return invalid(fmt.Sprintf("meters[%d]", i), "twice", "%s is listed twice", id)
		}
		m, err := t.meter(id)
		if err != nil {
			return invalid(fmt.Sprintf("meters[%d]", i), "no_meter", "no meter %s", id)
		}
		if site == "" {
			site = m.Site
		} else if m.Site != site {
			return invalid(fmt.Sprintf("meters[%d]", i), "other_site", "%s is in site %s, the tenant's others in %s: a tenant is billed within one site", id, m.Site, site)
		}
		for p := m.Info.Parent; p != ""; {
			if slices.Contains(x.Meters, p) {
				return invalid(fmt.Sprintf("meters[%d]", i), "sub_meter", "%s is a sub-meter of %s, also listed: it would count twice", id, p)
			}
			pm, err := t.meter(p)
			if err != nil {
				break
			}
			p = pm.Info.Parent
		}
		for oid, o := range t.all {
			if oid == x.ID {
				continue
			}
			if slices.Contains(o.Meters, id) {
				return invalid(fmt.Sprintf("meters[%d]", i), "other_tenant", "%s belongs to tenant %s: a meter belongs to one tenant at most", id, oid)
			}
			// Neither above nor below another tenant's meter: one
			// energy would be billed to two tenants.
			for _, up := range t.ancestors(id) {
				if slices.Contains(o.Meters, up) {
					return invalid(fmt.Sprintf("meters[%d]", i), "under_other", "%s is a sub-meter of %s, tenant %s's: it would be billed twice", id, up, oid)
				}
			}
			for _, om := range o.Meters {
				if slices.Contains(t.ancestors(om), id) {
					return invalid(fmt.Sprintf("meters[%d]", i), "over_other", "%s measures %s, tenant %s's: it would be billed twice", id, om, oid)
				}
			}
		}
	}
	// Fixed percentages of one site's charges: at most all of them.
	if x.FixedShare == SharePercent {
		sum := x.FixedPercent
		for oid, o := range t.all {
			if oid == x.ID || o.FixedShare != SharePercent || len(o.Meters) == 0 {
				continue
			}
			if m, err := t.meter(o.Meters[0]); err == nil && m.Site == site {
				sum += o.FixedPercent
			}
		}
		if sum > 100+1e-9 {
			return invalid("fixed_percent", "percent_sum", "with the other tenants of site %s, %s %% of its charges: at most 100", site, strconv.FormatFloat(sum, 'f', -1, 64))
		}
	}
	return nil
}

// unprintable reports whether s holds a control character (C0 but, with
// lines, a line break; DEL; C1) or one that turns the text's direction,
// which a CSV, a terminal or a PDF would show as something else.
func unprintable(s string, lines bool) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		switch {
		case lines && (r == '\n' || r == '\r'):
			return false
		case r < 0x20, r >= 0x7f && r <= 0x9f:
			return true
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return true
		case r == 0x2028, r == 0x2029, r == 0xfeff: // line and paragraph separators, a byte-order mark
			return true
		}
		return false
	})
}

// ancestors returns the meters upstream of id, its parent first.
func (t *Tenants) ancestors(id string) []string {
	var out []string
	m, err := t.meter(id)
	for err == nil && m.Info.Parent != "" && len(out) < 64 {
		out = append(out, m.Info.Parent)
		m, err = t.meter(m.Info.Parent)
	}
	return out
}

// Delete removes tenant id; its meters stay.
func (t *Tenants) Delete(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.fresh(); err != nil {
		return err
	}
	if _, ok := t.all[id]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTenant, id)
	}
	if err := t.st.DeleteDoc(docTenants, id); err != nil {
		return fmt.Errorf("statement: delete tenant %s: %w", id, err)
	}
	delete(t.all, id)
	return nil
}

// clip cuts s to 64 characters, for an error quoting it.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= 64 {
		return s
	}
	return string([]rune(s)[:64]) + "…"
}

// ForgetMeter takes meter id, deleted, out of its tenant, and returns the
// tenant's id ("" when none had it). A tenant left without meters stays,
// with its billing name and address, until it is given others or
// deleted.
func (t *Tenants) ForgetMeter(id string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.fresh(); err != nil {
		return "", err
	}
	for tid, x := range t.all {
		i := slices.Index(x.Meters, id)
		if i < 0 {
			continue
		}
		x.Meters = slices.Delete(slices.Clone(x.Meters), i, i+1)
		v, err := json.Marshal(x)
		if err == nil {
			err = t.st.PutDoc(docTenants, tid, v)
		}
		if err != nil {
			return "", fmt.Errorf("statement: take meter %s out of tenant %s: %w", id, tid, err)
		}
		t.all[tid] = x
		return tid, nil
	}
	return "", nil
}

// meter is meter id as the registry has it, or as t.edit would leave it;
// t.mu is held.
func (t *Tenants) meter(id string) (store.Meter, error) {
	m, err := t.st.Meter(id)
	if err != nil || t.edit == nil {
		return m, err
	}
	if info, ok := t.edit[id]; ok {
		m.Info = info
	}
	// The site is the main meter's, up the parents as edited.
	m.Site = store.DefaultSite
	for up, n := m, 0; n < 16; n++ {
		if up.Info.Parent == "" {
			m.Site = cmp.Or(up.Info.Site, store.DefaultSite)
			break
		}
		parent := up.Info.Parent
		if up, err = t.st.Meter(parent); err != nil {
			break
		}
		if info, ok := t.edit[parent]; ok {
			up.Info = info
		}
	}
	return m, nil
}

// ErrTenantConflict is returned by CheckEdit: the edit would leave a
// tenant billed twice for one energy, or across two sites.
var ErrTenantConflict = errors.New("statement: the change breaks a tenant")

// CheckEdit says whether meter id's registry entry, edited to info (its
// parent, its site), leaves every tenant as it must be: a meter billed
// once, a tenant within one site. Only a tenant the edit would break is
// reported (one already wrong, say a meter since gone, is not the edit's).
func (t *Tenants) CheckEdit(id string, info store.MeterInfo) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.fresh(); err != nil {
		return err
	}
	// The tenants of the meter first: a refusal names the tenant moved,
	// not one its move upsets.
	ids := slices.Sorted(maps.Keys(t.all))
	slices.SortStableFunc(ids, func(a, b string) int {
		return cmp.Compare(b2i(!slices.Contains(t.all[a].Meters, id)), b2i(!slices.Contains(t.all[b].Meters, id)))
	})
	for _, tid := range ids {
		x := t.all[tid]
		if t.checkMeters(x) != nil {
			continue
		}
		t.edit = map[string]store.MeterInfo{id: info}
		err := t.checkMeters(x)
		t.edit = nil
		var ie *InvalidError
		if errors.As(err, &ie) {
			return fmt.Errorf("%w %s: %s", ErrTenantConflict, tid, ie.Reason)
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
