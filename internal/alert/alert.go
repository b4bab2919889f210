// Package alert raises alerts, keeps their history in the store and delivers
// them to notifiers (the log, a webhook) with retries. Delivery runs on its
// own goroutines: raising an alert never waits for a notifier, and nothing
// here is on the ingest path.
package alert

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// Severities an alert may have.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// MaxMessageLength is the longest alert message accepted, in characters.
const MaxMessageLength = 2000

// Notifier delivers alerts somewhere.
type Notifier interface {
	// Name identifies the notifier in delivery records ("log", "webhook").
	Name() string
	// Notify delivers a; an error means it should be tried again.
	Notify(ctx context.Context, a store.Alert) error
}

// InvalidError reports an alert field that is not acceptable.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

// Options configure a Service.
type Options struct {
	// Attempts is how many times a delivery is tried. Default 5.
	Attempts int
	// Backoff is the wait before the first retry, doubled on each further
	// one. Default 2s.
	Backoff time.Duration
	// Workers deliver alerts concurrently. Default 4.
	Workers int
	// Sweep is how often alerts still pending (queue overflow, restart) are
	// picked up again. Default 1 minute.
	Sweep time.Duration
	// Instance names this process in the claims of the alerts it delivers
	// (see store.Claim). Default: host name, process id and a random part.
	Instance string
	// Lease is how long a claim lasts past its last attempt's planned
	// retry; another instance takes over an alert whose claim has lapsed.
	// Default 2 minutes.
	Lease  time.Duration
	Logger *slog.Logger
}

// Service raises and delivers alerts.
type Service struct {
	store     *store.Store
	notifiers []Notifier
	opts      Options
	log       *slog.Logger
	now       func() time.Time

	queue  chan uint64
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// busy holds the ids of alerts being delivered, so a sweep does not
	// deliver one twice.
	busyMu sync.Mutex
	busy   map[uint64]bool
}

// New starts a Service delivering to notifiers; alerts left pending by an
// earlier run are delivered too. Close stops it.
func New(st *store.Store, notifiers []Notifier, opts Options) *Service {
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Sweep <= 0 {
		opts.Sweep = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Lease <= 0 {
		opts.Lease = 2 * time.Minute
	}
	if opts.Instance == "" {
		host, _ := os.Hostname()
		opts.Instance = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		store: st, notifiers: notifiers, opts: opts, log: opts.Logger, now: time.Now,
		queue: make(chan uint64, 1024), cancel: cancel, busy: map[uint64]bool{},
	}
	for i := 0; i < opts.Workers; i++ {
		s.wg.Add(1)
		go s.work(ctx)
	}
	s.wg.Add(1)
	go s.sweep(ctx)
	return s
}

// Close stops delivery. Deliveries not finished stay pending in the store
// and are resumed by the next Service.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// Raise validates, stores and queues an alert for delivery, and returns it
// as stored. Source says what raised it ("api").
func (s *Service) Raise(severity, message, meterID, source string) (store.Alert, error) {
	message = strings.TrimSpace(message)
	switch {
	case message == "":
		return store.Alert{}, &InvalidError{"message", "must not be empty"}
	case !utf8.ValidString(message):
		return store.Alert{}, &InvalidError{"message", "must be UTF-8 text"}
	case utf8.RuneCountInString(message) > MaxMessageLength:
		return store.Alert{}, &InvalidError{"message", fmt.Sprintf("longer than %d characters", MaxMessageLength)}
	}
	if severity == "" {
		severity = SeverityInfo
	}
	if severity != SeverityInfo && severity != SeverityWarning && severity != SeverityCritical {
		return store.Alert{}, &InvalidError{"severity", "must be info, warning or critical"}
	}
	if meterID != "" && !meter.ValidID(meterID) {
		return store.Alert{}, &InvalidError{"meter", "must be 1-64 letters, digits, '.', '_', ':' or '-'"}
	}
	return s.raise(store.Alert{Severity: severity, Message: message, Meter: meterID, Source: source})
}

// raise stores a (a valid alert) and queues it for delivery.
func (s *Service) raise(a store.Alert) (store.Alert, error) {
	now := s.now().UTC()
	a.Time = now
	for _, n := range s.notifiers {
		if o, ok := n.(interface{ Active() bool }); ok && !o.Active() {
			continue // off (the SMTP server without recipients): nothing to deliver
		}
		a.Deliveries = append(a.Deliveries, store.Delivery{Notifier: n.Name(), Status: store.DeliveryPending, Updated: now})
	}
	if err := s.store.AddAlert(&a); err != nil {
		return store.Alert{}, err
	}
	if len(a.Deliveries) > 0 {
		select {
		case s.queue <- a.ID:
		default:
			s.log.Warn("alert delivery queue full; the sweep will deliver it", slog.Uint64("alert", a.ID))
		}
	}
	return a, nil
}

// History returns up to limit alerts, newest first.
func (s *Service) History(limit int) ([]store.Alert, error) {
	return s.store.Alerts(limit, nil)
}

func (s *Service) work(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-s.queue:
			s.deliver(ctx, id)
		}
	}
}

// sweep queues the alerts still pending: at start (left by an earlier run)
// and then periodically (the queue was full).
func (s *Service) sweep(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Sweep)
	defer t.Stop()
	for {
		pending, err := s.store.Alerts(1000, hasPending)
		if err != nil {
			s.log.Error("alert sweep", slog.Any("error", err))
		}
		for i := len(pending) - 1; i >= 0; i-- { // oldest first
			select {
			case s.queue <- pending[i].ID:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func hasPending(a *store.Alert) bool {
	for _, d := range a.Deliveries {
		if d.Status == store.DeliveryPending {
			return true
		}
	}
	return false
}

// deliver sends alert id to each notifier still pending, retrying with
// exponential back-off, and records every attempt.
func (s *Service) deliver(ctx context.Context, id uint64) {
	s.busyMu.Lock()
	if s.busy[id] {
		s.busyMu.Unlock()
		return
	}
	s.busy[id] = true
	s.busyMu.Unlock()
	defer func() {
		s.busyMu.Lock()
		delete(s.busy, id)
		s.busyMu.Unlock()
	}()

	a, ok := s.claim(id)
	if !ok {
		return
	}
	defer s.release(id)
	for i, d := range a.Deliveries {
		if d.Status != store.DeliveryPending {
			continue
		}
		n := s.notifier(d.Notifier)
		if n == nil {
			s.record(id, i, store.DeliveryFailed, d.Attempts, "notifier no longer configured", 0)
			continue
		}
		backoff := s.opts.Backoff
		for attempt := d.Attempts + 1; ; attempt++ {
			err := n.Notify(ctx, a)
			if err == nil {
				s.record(id, i, store.DeliveryDelivered, attempt, "", 0)
				break
			}
			if ctx.Err() != nil {
				return // shutting down: stays pending for the next run
			}
			if attempt >= s.opts.Attempts {
				s.log.Error("alert delivery failed", slog.Uint64("alert", id), slog.String("notifier", n.Name()),
					slog.Int("attempts", attempt), slog.Any("error", err))
				s.record(id, i, store.DeliveryFailed, attempt, err.Error(), 0)
				break
			}
			s.record(id, i, store.DeliveryPending, attempt, err.Error(), backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff *= 2
		}
	}
}

func (s *Service) notifier(name string) Notifier {
	for _, n := range s.notifiers {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

// claim makes this instance the one delivering alert id, and returns the
// alert as stored; it reports false when there is nothing to deliver or
// another instance's claim holds it.
func (s *Service) claim(id uint64) (store.Alert, bool) {
	var out store.Alert
	ok := false
	err := s.store.UpdateAlert(id, func(a *store.Alert) {
		now := s.now().UTC()
		if !hasPending(a) || a.Claim != nil && a.Claim.Instance != s.opts.Instance && now.Before(a.Claim.Until) {
			return
		}
		a.Claim = &store.Claim{Instance: s.opts.Instance, Until: now.Add(s.opts.Lease)}
		out, ok = *a, true
	})
	if err != nil {
		s.log.Error("alert to deliver not claimed", slog.Uint64("alert", id), slog.Any("error", err))
		return store.Alert{}, false
	}
	return out, ok
}

// release ends this instance's claim on alert id.
func (s *Service) release(id uint64) {
	err := s.store.UpdateAlert(id, func(a *store.Alert) {
		if a.Claim != nil && a.Claim.Instance == s.opts.Instance {
			a.Claim = nil
		}
	})
	if err != nil {
		s.log.Error("alert claim not released; it lapses", slog.Uint64("alert", id), slog.Any("error", err))
	}
}

// record stores how delivery i of alert id went, and extends this
// instance's claim past the retry due in next.
func (s *Service) record(id uint64, i int, status string, attempts int, lastErr string, next time.Duration) {
	err := s.store.UpdateAlert(id, func(a *store.Alert) {
		now := s.now().UTC()
		if i < len(a.Deliveries) {
			a.Deliveries[i] = store.Delivery{Notifier: a.Deliveries[i].Notifier, Status: status,
				Attempts: attempts, LastError: lastErr, Updated: now}
		}
		if a.Claim != nil && a.Claim.Instance == s.opts.Instance {
			a.Claim.Until = now.Add(next + s.opts.Lease)
		}
	})
	if err != nil {
		s.log.Error("record alert delivery", slog.Uint64("alert", id), slog.Any("error", err))
	}
}
