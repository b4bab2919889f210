package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrUnknownAlert is returned for an alert id that is not stored.
var ErrUnknownAlert = errors.New("store: unknown alert")

// Alert is a stored alert with the state of its deliveries.
type Alert struct {
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"`
	Message  string    `json:"message"`
	// Key names the message's text in the dashboard's catalogues and Args
	// its values (see alert.Message), for the dashboard to show the alert
	// in its reader's language; Message keeps the English text, for
	// notifiers and API clients. Alerts raised through the API, and those
	// stored before keys, have none: their Message is shown as it is.
	Key   string            `json:"key,omitempty"`
	Args  map[string]string `json:"args,omitempty"`
	Meter string            `json:"meter,omitempty"`
	// Source says what raised it: "api" for POST /api/alert, "rule" for an
	// alert rule.
	Source string `json:"source"`
	// Rule is the id of the rule that raised it; State is "firing" until
	// the condition clears, then "resolved" at ResolvedAt. Alerts not from
	// a rule have neither.
	Rule       string     `json:"rule,omitempty"`
	State      string     `json:"state,omitempty"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Actions records how the rule's actions went ("cmnd/plug/POWER: sent").
	Actions    []string   `json:"actions,omitempty"`
	Deliveries []Delivery `json:"deliveries"`
	// Claim is the instance delivering the alert now. Instances sharing a
	// store deliver each alert from one of them; another takes the alert
	// over once Until has passed (the instance stopped mid-delivery).
	Claim *Claim `json:"claim,omitempty"`
}

// Claim says who delivers an alert, until when.
type Claim struct {
	Instance string    `json:"instance"`
	Until    time.Time `json:"until"`
}

// Alert states (see Alert.State).
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// Delivery is the state of an alert's delivery to one notifier.
type Delivery struct {
	Notifier string `json:"notifier"`
	// Status is pending, delivered or failed.
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// AddAlert stores a as a new alert, setting its ID.
func (s *Store) AddAlert(a *Alert) error {
	return s.eng.addAlert(a)
}

// UpdateAlert changes the stored alert id with fn in one transaction.
func (s *Store) UpdateAlert(id uint64, fn func(*Alert)) error {
	return s.eng.updateAlert(id, fn)
}

// Alerts returns up to limit alerts, newest first, that match keep (nil keeps
// all).
func (s *Store) Alerts(limit int, keep func(*Alert) bool) ([]Alert, error) {
	return s.eng.alerts(limit, keep)
}

// changeAlert changes alert id, stored as v, with fn, and returns it and
// what to store.
func changeAlert(id uint64, v []byte, fn func(*Alert)) (Alert, []byte, error) {
	var a Alert
	if err := json.Unmarshal(v, &a); err != nil {
		return a, nil, fmt.Errorf("alert %d: %w", id, err)
	}
	fn(&a)
	a.ID = id
	nv, err := json.Marshal(&a)
	return a, nv, err
}
