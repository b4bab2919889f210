package modbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Docs is where devices saved through the API and the dashboard are kept:
// package store's documents.
type Docs interface {
	PutDoc(kind, key string, v []byte) error
	DeleteDoc(kind, key string) error
	Docs(kind string) (map[string][]byte, error)
	// Shared reports whether other processes change the documents too.
	Shared() bool
}

// docDevices is the document kind of a saved device, keyed by its name.
const docDevices = "modbus_devices"

// MaxDevices bounds the devices, config.yaml's and saved ones.
const MaxDevices = 1000

// Where a device comes from.
const (
	FromConfig   = "config"
	FromDatabase = "database"
)

// Errors of Devices.
var (
	ErrUnknownDevice = errors.New("modbus: no such device")
	ErrConfigDevice  = errors.New("modbus: the device is in config.yaml: change it there")
	ErrTooMany       = fmt.Errorf("modbus: at most %d devices", MaxDevices)
)

// InvalidError is a device refused: what is wrong with it (Say words it
// in another language).
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return "invalid modbus device: " + e.Err.Error() }

func (e *InvalidError) Unwrap() error { return e.Err }

// Entry is a device as listed: its settings, where they come from, and
// why it is not polled, when it is not.
type Entry struct {
	Spec
	Source  string    `json:"source"`
	SavedAt time.Time `json:"saved_at,omitzero"`
	SavedBy string    `json:"saved_by,omitempty"`
	// Problem says why a saved device is not polled: it no longer fits
	// the others (a device of config.yaml took its name or its unit on
	// its line) or can no longer be read.
	Problem string `json:"problem,omitempty"`
	// problem is Problem as an error, for Explain.
	problem error
}

// Explain says e's Problem with formats (see Say).
func (e Entry) Explain(formats map[string]string) string {
	if e.problem == nil {
		return e.Problem
	}
	return Say(e.problem, formats)
}

// Devices are the devices polled: config.yaml's, read-only, and those
// saved through the API and the dashboard. A change is polled at once by
// this instance's poller (which polls while this instance leads); on a
// store other processes change, the leader reads the saved devices again
// every RefreshEvery. It is safe for concurrent use.
type Devices struct {
	docs   Docs
	poller *Poller
	log    *slog.Logger
	config []Entry
	// MeterSource, when set, says which device family feeds meter id, if
	// it exists: a device saved may not take the name of a meter another
	// family feeds (their readings would mix, and good ones be refused).
	MeterSource func(id string) (source string, ok bool)

	mu    sync.Mutex
	saved map[string]Entry
}

// RefreshEvery is how often Refresh is worth calling on a shared store.
const RefreshEvery = 10 * time.Second

// NewDevices returns the devices of config (checked by the caller, as
// config.yaml's) and those saved in docs, and makes them poller's. A saved
// device that no longer fits is listed with its problem, not polled.
func NewDevices(docs Docs, config []Spec, poller *Poller, logger *slog.Logger) (*Devices, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Devices{docs: docs, poller: poller, log: logger}
	for _, s := range config {
		d.config = append(d.config, Entry{Spec: s, Source: FromConfig})
	}
	saved, err := d.load()
	if err != nil {
		return nil, fmt.Errorf("modbus: read the saved devices: %w", err)
	}
	if d.saved, err = d.apply(saved); err != nil {
		return nil, err
	}
	return d, nil
}

// load reads the saved devices.
func (d *Devices) load() (map[string]Entry, error) {
	out := map[string]Entry{}
	docs, err := d.docs.Docs(docDevices)
	if err != nil {
		return nil, err
	}
	for name, v := range docs {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			e = Entry{Spec: Spec{Name: name}, Problem: "not readable: " + err.Error()} // SavedAt zero marks it
		}
		e.Source = FromDatabase
		out[name] = e
	}
	return out, nil
}

// fit returns the devices to poll: config's first, then the saved ones
// by name, each that fits with those before it; and saved with each one's
// problem set. It fails only when config's own do not fit together.
func (d *Devices) fit(saved map[string]Entry) ([]Device, map[string]Entry, error) {
	lay := NewLayout()
	var devices []Device
	for _, e := range d.config {
		dev, err := e.Spec.Device()
		if err == nil {
			err = lay.Add(dev)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("modbus %s: %v", e.Name, err)
		}
		devices = append(devices, dev)
	}
	out := make(map[string]Entry, len(saved))
	for _, name := range slices.Sorted(maps.Keys(saved)) {
		e := saved[name]
		if e.Problem != "" && e.SavedAt.IsZero() { // not readable
			out[name] = e
			continue
		}
		e.Problem = ""
		dev, err := e.Spec.Device()
		if err == nil {
			err = lay.Add(dev)
		}
		e.problem = nil
		switch {
		case err != nil && d.inConfig(name):
			e.problem = problemf("config.yaml has a device of this name, which is polled instead")
		case err != nil:
			e.problem = err
		default:
			devices = append(devices, dev)
		}
		if e.problem != nil {
			e.Problem = e.problem.Error()
		}
		out[name] = e
	}
	return devices, out, nil
}

// apply polls config's devices and those of saved that fit, and returns
// saved with each one's problem set.
func (d *Devices) apply(saved map[string]Entry) (map[string]Entry, error) {
	devices, saved, err := d.fit(saved)
	if err != nil {
		return nil, err
	}
	if err := d.poller.Set(devices); err != nil {
		return nil, err // fit said they fit: not reached
	}
	return saved, nil
}

func (d *Devices) inConfig(name string) bool {
	return slices.ContainsFunc(d.config, func(e Entry) bool { return e.Name == name })
}

// List returns every device: config.yaml's in its order, then the saved
// ones by name.
func (d *Devices) List() []Entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fresh()
	out := make([]Entry, 0, len(d.config)+len(d.saved))
	out = append(out, d.config...)
	for _, name := range slices.Sorted(maps.Keys(d.saved)) {
		out = append(out, d.saved[name])
	}
	return out
}

// Get returns the device name: config.yaml's, else the saved one.
func (d *Devices) Get(name string) (Entry, error) {
	list := d.List()
	if i := slices.IndexFunc(list, func(e Entry) bool { return e.Name == name }); i >= 0 {
		return list[i], nil
	}
	return Entry{}, fmt.Errorf("%w: %q", ErrUnknownDevice, name)
}

// Put saves spec as the device of its name, made or replaced, saved by
// by at now, and polls it at once. A device of config.yaml's is refused
// (ErrConfigDevice), as is one that is invalid or does not fit with the
// others (InvalidError), or one more than MaxDevices (ErrTooMany).
func (d *Devices) Put(spec Spec, by string, now time.Time) (e Entry, created bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fresh()
	if d.inConfig(spec.Name) {
		return Entry{}, false, ErrConfigDevice
	}
	spec.Profile, spec.Parity = strings.ToLower(spec.Profile), strings.ToLower(spec.Parity)
	if _, err := spec.Device(); err != nil {
		return Entry{}, false, &InvalidError{Err: err}
	}
	_, had := d.saved[spec.Name]
	if d.MeterSource != nil && !had { // once polled, its meter is its own
		for _, id := range []string{spec.Name, spec.Name + ":L1", spec.Name + ":L2", spec.Name + ":L3"} {
			if src, ok := d.MeterSource(id); ok && src != "" && src != "modbus" && src != "import" {
				return Entry{}, false, &InvalidError{Err: problemf("name %q: meter %s exists, fed by %s: its readings and this device's would mix; choose another name, or delete that meter first", spec.Name, id, src)}
			}
		}
	}
	if !had && len(d.config)+len(d.saved) >= MaxDevices {
		return Entry{}, false, ErrTooMany
	}
	e = Entry{Spec: spec, Source: FromDatabase, SavedAt: now.UTC(), SavedBy: by}
	// It must fit beside every device polled now, whatever their names:
	// it takes no unit or line from one of them.
	others := maps.Clone(d.saved)
	delete(others, spec.Name)
	polled, _, err := d.fit(others)
	if err != nil {
		return Entry{}, false, err
	}
	lay := NewLayout()
	for _, dev := range polled {
		if err := lay.Add(dev); err != nil {
			return Entry{}, false, err // fit said they fit: not reached
		}
	}
	dev, _ := spec.Device()
	if err := lay.Add(dev); err != nil {
		return Entry{}, false, &InvalidError{Err: err}
	}
	next := maps.Clone(d.saved)
	next[spec.Name] = e
	v, err := json.Marshal(e)
	if err != nil {
		return Entry{}, false, err
	}
	if err := d.docs.PutDoc(docDevices, spec.Name, v); err != nil {
		return Entry{}, false, fmt.Errorf("modbus: save device %s: %w", spec.Name, err)
	}
	if d.saved, err = d.apply(next); err != nil {
		return Entry{}, false, err
	}
	return e, !had, nil
}

// Delete removes the saved device name: it is no longer polled. Its
// meters and their readings stay.
func (d *Devices) Delete(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fresh()
	if _, ok := d.saved[name]; !ok {
		if d.inConfig(name) {
			return ErrConfigDevice
		}
		return fmt.Errorf("%w: %q", ErrUnknownDevice, name)
	}
	if err := d.docs.DeleteDoc(docDevices, name); err != nil {
		return fmt.Errorf("modbus: delete device %s: %w", name, err)
	}
	next := maps.Clone(d.saved)
	delete(next, name)
	next, err := d.apply(next)
	if err != nil {
		return err
	}
	d.saved = next
	return nil
}

// Refresh reads the saved devices again, for those another process saved
// or deleted (a shared store), and polls what changed.
func (d *Devices) Refresh() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reload()
}

// fresh reads the saved devices again where other processes may have
// changed them; d.mu is held.
func (d *Devices) fresh() {
	if d.docs.Shared() {
		d.reload()
	}
}

// reload reads the saved devices and applies them if they changed; d.mu
// is held. A store that cannot answer leaves what d knew.
func (d *Devices) reload() {
	saved, err := d.load()
	if err != nil {
		d.log.Warn("saved modbus devices not read; polling those last read", slog.Any("error", err))
		return
	}
	if sameSaved(saved, d.saved) {
		return
	}
	if saved, err = d.apply(saved); err != nil {
		d.log.Warn("saved modbus devices not applied", slog.Any("error", err))
		return
	}
	d.saved = saved
}

// sameSaved reports whether a and b save the same devices (their problems
// aside, which apply decides).
func sameSaved(a, b map[string]Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for name, e := range a {
		o, ok := b[name]
		if !ok || e.SavedAt != o.SavedAt || e.SavedBy != o.SavedBy || !e.Spec.same(o.Spec) {
			return false
		}
	}
	return true
}

// same reports whether s and o are the same settings.
func (s Spec) same(o Spec) bool {
	return s.Name == o.Name && s.URL == o.URL && s.Unit == o.Unit && s.Profile == o.Profile && slices.Equal(s.Registers, o.Registers) &&
		s.Interval == o.Interval && s.Timeout == o.Timeout && s.Speed == o.Speed && s.Parity == o.Parity && s.StopBits == o.StopBits
}
