package energy

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// docTariff is the document kind of the tariff saved on the dashboard or
// through the API, under the key savedTariffKey.
const (
	docTariff      = "tariff"
	savedTariffKey = "saved"
)

// Where the tariff in force comes from.
const (
	// FromConfig is config.yaml's tariff section: no tariff was saved.
	FromConfig = "config"
	// FromDatabase is the tariff saved on the dashboard or through the
	// API, which overrides config.yaml's until it is removed.
	FromDatabase = "database"
)

// SavedTariff is a tariff saved on the dashboard or through the API.
type SavedTariff struct {
	Tariff  tariff.Spec `json:"tariff"`
	SavedAt time.Time   `json:"saved_at"`
	SavedBy string      `json:"saved_by"`
}

// TariffState says which tariff is in force and why.
type TariffState struct {
	// Source is FromDatabase while a saved tariff is in force, else
	// FromConfig.
	Source string `json:"source"`
	// Tariff is the tariff in force.
	Tariff tariff.Spec `json:"tariff"`
	// Config is config.yaml's tariff section, in force when nothing is
	// saved.
	Config tariff.Spec `json:"config"`
	// Saved is the tariff saved, if any.
	Saved *SavedTariff `json:"saved,omitempty"`
	// TimeZone is the zone the tariff's hours and days are read in
	// (dashboard.timezone).
	TimeZone string `json:"time_zone"`
	// Problem, when set, says why a saved tariff is not in force (it can
	// no longer be read).
	Problem string `json:"problem,omitempty"`
}

// Tariffs is the tariff in force: the one saved on the dashboard or
// through the API when there is one, else config.yaml's. A saved tariff
// overrides config.yaml's because saving it is the later, deliberate act;
// removing it (Remove) brings config.yaml's back. On a store other
// processes change (PostgreSQL), every use reads the saved tariff again,
// so that one saved on any instance prices on all of them at once. It is
// safe for concurrent use.
type Tariffs struct {
	st     *store.Store // nil: a fixed tariff
	loc    *time.Location
	log    *slog.Logger
	config *tariff.Tariff

	mu sync.Mutex
	// saved is the saved tariff and built the tariff made of it; problem
	// why it cannot be used, when it cannot.
	saved   *SavedTariff
	built   *tariff.Tariff
	problem string
}

// NewTariffs returns the tariff in force in st, config (config.yaml's,
// already built in its zone) when nothing is saved. A saved tariff that
// cannot be read is reported (TariffState.Problem), not an error: config's
// prices meanwhile.
func NewTariffs(st *store.Store, config *tariff.Tariff, logger *slog.Logger) (*Tariffs, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tariffs{st: st, loc: config.Location, log: logger, config: config}
	if err := t.load(); err != nil {
		return nil, fmt.Errorf("energy: read the saved tariff: %w", err)
	}
	if t.problem != "" {
		logger.Warn("the saved tariff is not used: config.yaml's is in force", slog.String("problem", t.problem))
	}
	return t, nil
}

// FixedTariff returns tr as the tariff in force, never changed: for tests,
// and for what is built without a store.
func FixedTariff(tr *tariff.Tariff) *Tariffs {
	return &Tariffs{loc: tr.Location, config: tr, log: slog.New(slog.DiscardHandler)}
}

// load reads the saved tariff; t.mu is held, or t not yet shared.
func (t *Tariffs) load() error {
	if t.st == nil {
		return nil
	}
	v, ok, err := t.st.Doc(docTariff, savedTariffKey)
	if err != nil {
		return err
	}
	t.saved, t.built, t.problem = nil, nil, ""
	if !ok {
		return nil
	}
	var s SavedTariff
	if err := json.Unmarshal(v, &s); err != nil {
		t.problem = "the saved tariff is not readable: " + err.Error()
		return nil
	}
	t.saved = &s
	built, err := s.Tariff.Build(t.loc)
	if err != nil {
		t.problem = "the saved tariff is no longer valid: " + err.Error()
		return nil
	}
	t.built = built
	return nil
}

// fresh reads the saved tariff again where other processes may have
// changed it; a store that cannot answer leaves what t knew. t.mu is held.
func (t *Tariffs) fresh() {
	if t.st == nil || !t.st.Shared() {
		return
	}
	if err := t.load(); err != nil {
		t.log.Warn("saved tariff not read; priced as last read", slog.Any("error", err))
	}
}

// Current returns the tariff in force. It is not to be changed.
func (t *Tariffs) Current() *tariff.Tariff {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fresh()
	if t.built != nil {
		return t.built
	}
	return t.config
}

// State returns which tariff is in force and why.
func (t *Tariffs) State() TariffState {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fresh()
	out := TariffState{Source: FromConfig, Tariff: t.config.Spec(), Config: t.config.Spec(), TimeZone: t.loc.String(), Problem: t.problem}
	if t.saved != nil {
		s := *t.saved
		out.Saved = &s
	}
	if t.built != nil {
		out.Source, out.Tariff = FromDatabase, t.saved.Tariff
	}
	return out
}

// ErrFixedTariff is returned when a tariff is saved where none can be.
var ErrFixedTariff = errors.New("energy: the tariff cannot be changed here")

// Save checks spec as config.yaml's tariff is checked and, valid, makes it
// the tariff in force, saved by by at now. Its error is Build's (a
// *tariff.FieldError for each field wrong), or the store's.
func (t *Tariffs) Save(spec tariff.Spec, by string, now time.Time) (TariffState, error) {
	if t.st == nil {
		return TariffState{}, ErrFixedTariff
	}
	built, err := spec.Build(t.loc)
	if err != nil {
		return TariffState{}, err
	}
	if spec.Periods == nil {
		spec.Periods = []tariff.PeriodSpec{} // listed as [], not null
	}
	if spec.Holidays == nil {
		spec.Holidays = []string{}
	}
	s := SavedTariff{Tariff: spec, SavedAt: now.UTC(), SavedBy: by}
	v, err := json.Marshal(s)
	if err != nil {
		return TariffState{}, err
	}
	t.mu.Lock()
	if err := t.st.PutDoc(docTariff, savedTariffKey, v); err != nil {
		t.mu.Unlock()
		return TariffState{}, fmt.Errorf("energy: save the tariff: %w", err)
	}
	t.saved, t.built, t.problem = &s, built, ""
	t.mu.Unlock()
	return t.State(), nil
}

// Remove removes the saved tariff: config.yaml's is in force again.
// Removing none is no error.
func (t *Tariffs) Remove() (TariffState, error) {
	if t.st == nil {
		return TariffState{}, ErrFixedTariff
	}
	t.mu.Lock()
	if err := t.st.DeleteDoc(docTariff, savedTariffKey); err != nil {
		t.mu.Unlock()
		return TariffState{}, fmt.Errorf("energy: remove the saved tariff: %w", err)
	}
	t.saved, t.built, t.problem = nil, nil, ""
	t.mu.Unlock()
	return t.State(), nil
}
