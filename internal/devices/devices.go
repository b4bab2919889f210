// Package devices keeps the MQTT credentials of devices and what each may
// do: a device logs in with its name and a password (argon2id, checked at
// connect and then cached), may publish only on its own topics and
// subscribe only to its command topics. Each device stays in its lane: no
// device is named after a device family's or Vatio's own topic level, and
// no device's topic filters reach into another device's topics (see
// lanes.go). Clients without credentials are accepted from loopback only,
// unless the admin allows them everywhere.
package devices

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/store"
)

const docDevices = "devices"

// Device is an MQTT client with credentials.
type Device struct {
	Name string `json:"name"`
	Hash string `json:"hash,omitempty"`
	// Publish and Subscribe are the topic filters it may publish on and
	// subscribe to.
	Publish   []string  `json:"publish"`
	Subscribe []string  `json:"subscribe"`
	Created   time.Time `json:"created"`
}

// Errors of the package.
var (
	ErrInvalid = errors.New("devices: invalid")
	ErrExists  = errors.New("devices: already exists")
	ErrUnknown = errors.New("devices: unknown device")
)

var deviceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`)

// DefaultTopics returns the topics a device called name may publish on
// (its readings, status and last will, in the layouts of Tasmota, Shelly,
// emonhub, Zigbee2MQTT and DSMR-reader, whose prefix is the name) and
// subscribe to (its commands).
func DefaultTopics(name string) (publish, subscribe []string) {
	return []string{"energy/consumption/" + name, "tele/" + name + "/#", "stat/" + name + "/#", name + "/#",
			"shellies/" + name + "/#", "emon/" + name + "/#"},
		[]string{"cmnd/" + name + "/#", "cmnd/tasmotas/#", name + "/#", "shellies/" + name + "/#", "shellies/command"}
}

// Registry is the devices. It is safe for concurrent use.
type Registry struct {
	st     *store.Store
	checks *auth.PasswordChecks
	log    *slog.Logger
	// reserved are the names no device may have, lower case: ReservedWords
	// and the first levels of the topics given with WithReserved.
	reserved map[string]bool
	// own are the topic filters only Vatio publishes under, and open the
	// topics among them that clients may publish on too (see
	// WithOwnTopics).
	own, open []string
	// AnonymousFrom reports whether a client without credentials may
	// connect from ip: loopback only by default.
	AnonymousFrom func(ip net.IP) bool
	// Refused, when set (before the broker starts), is told of each
	// CONNECT Connect refuses, but for one refused as too busy: the user
	// name given, the client's address and why.
	Refused func(user, addr string, err error)

	mu      sync.Mutex
	devices map[string]Device
	// lower indexes the devices' names by their lower case (MayWrite).
	lower map[string]string
	// verified caches, per device, the SHA-256 of the password last
	// checked right, so that a reconnecting device costs no argon2id.
	verified map[string][32]byte
	// outOfLane are the devices stored before their name was reserved,
	// with the reason: they are refused at connect. lastWarned rate-limits
	// the log line of each refusal.
	outOfLane  map[string]string
	lastWarned map[string]time.Time
	// failed are the failed CONNECTs per address (see failures).
	failed failures
}

// Option configures a Registry.
type Option func(*Registry)

// WithReserved reserves the first level of each topic or filter (a
// configured input's, a family's prefix, the energy topic): no device may
// be named so. A first level that is a wildcard reserves nothing.
func WithReserved(topics ...string) Option {
	return func(r *Registry) {
		for _, t := range topics {
			if l, _, _ := strings.Cut(t, "/"); l != "" && l != "+" && l != "#" {
				r.reserved[strings.ToLower(l)] = true
			}
		}
	}
}

// WithOwnTopics keeps the topics under each filter of own for Vatio
// itself (its Home Assistant discovery, states and availability): no
// client publishes there, whatever its credentials' topics or, for an
// anonymous client, its address. The topics in open are the exception
// (Home Assistant's own status, its birth and will): an anonymous client
// may publish on them, and a device whose publish topics include them.
func WithOwnTopics(own, open []string) Option {
	return func(r *Registry) {
		r.own = append(r.own, own...)
		r.open = append(r.open, open...)
	}
}

// WithLogger logs what the registry refuses or narrows; by default nothing
// is logged.
func WithLogger(l *slog.Logger) Option { return func(r *Registry) { r.log = l } }

// New loads the devices of st. Connects check passwords within checks
// (nil: unbounded).
//
// Devices stored before a rule of their lane existed are kept, and
// logged: one whose name is now reserved is refused at connect (remove it
// and add it under another name); topic filters of one that reach into
// another device's topics are ignored (List shows those in force).
func New(st *store.Store, checks *auth.PasswordChecks, opts ...Option) (*Registry, error) {
	r := &Registry{st: st, checks: checks, log: slog.New(slog.DiscardHandler), reserved: map[string]bool{},
		devices: map[string]Device{}, lower: map[string]string{}, verified: map[string][32]byte{}, outOfLane: map[string]string{}, lastWarned: map[string]time.Time{},
		AnonymousFrom: func(ip net.IP) bool { return ip != nil && ip.IsLoopback() }}
	for _, w := range ReservedWords {
		r.reserved[strings.ToLower(w)] = true
	}
	for _, o := range opts {
		o(r)
	}
	docs, err := st.Docs(docDevices)
	if err != nil {
		return nil, err
	}
	for k, v := range docs {
		var d Device
		if err := json.Unmarshal(v, &d); err != nil {
			return nil, fmt.Errorf("devices: %q: %w", k, err)
		}
		r.devices[k] = d
		r.lower[strings.ToLower(k)] = k
	}
	r.narrowStored()
	return r, nil
}

// Add makes a device with a new password, which it returns this once;
// empty publish or subscribe lists take DefaultTopics.
func (r *Registry) Add(name string, publish, subscribe []string) (Device, string, error) {
	if err := r.checkName(name); err != nil {
		return Device{}, "", err
	}
	dp, ds := DefaultTopics(name)
	if len(publish) == 0 {
		publish = dp
	}
	if len(subscribe) == 0 {
		subscribe = ds
	}
	for _, f := range slices.Concat(publish, subscribe) {
		if !validFilter(f) {
			return Device{}, "", fmt.Errorf("%w topic filter %q", ErrInvalid, f)
		}
	}
	b := make([]byte, 18)
	rand.Read(b)
	password := base64.RawURLEncoding.EncodeToString(b)
	d := Device{Name: name, Hash: auth.HashPassword(password), Publish: publish, Subscribe: subscribe, Created: time.Now().UTC()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.devices[name]; ok {
		return Device{}, "", fmt.Errorf("%w: %q", ErrExists, name)
	}
	if err := r.inLane(d); err != nil {
		return Device{}, "", err
	}
	v, _ := json.Marshal(d)
	if err := r.st.PutDoc(docDevices, name, v); err != nil {
		return Device{}, "", err
	}
	r.devices[name] = d
	r.lower[strings.ToLower(name)] = name
	d.Hash = ""
	return d, password, nil
}

// Remove deletes a device: it can no longer connect.
func (r *Registry) Remove(name string) error {
	r.refresh(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.devices[name]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknown, name)
	}
	if err := r.st.DeleteDoc(docDevices, name); err != nil {
		return err
	}
	delete(r.devices, name)
	delete(r.lower, strings.ToLower(name))
	delete(r.verified, name)
	delete(r.outOfLane, name)
	return nil
}

// List returns the devices, without their hashes, by name.
func (r *Registry) List() []Device {
	if r.st.Shared() {
		if docs, err := r.st.Docs(docDevices); err == nil {
			names := make([]string, 0, len(docs))
			for k := range docs {
				names = append(names, k)
			}
			r.mu.Lock()
			for k := range r.devices {
				if _, ok := docs[k]; !ok {
					names = append(names, k) // removed elsewhere
				}
			}
			r.mu.Unlock()
			for _, k := range names {
				r.refresh(k)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Device, 0, len(r.devices))
	for _, d := range r.devices {
		d.Hash = ""
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Device) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// refresh reads device name again from a store that other processes
// change (PostgreSQL: vatio device add, another instance's API), so that a
// device added or removed there is known here at its next CONNECT; on one
// bbolt file the cache is the truth.
func (r *Registry) refresh(name string) {
	if !r.st.Shared() || len(name) > 64 {
		return
	}
	v, ok, err := r.st.Doc(docDevices, name)
	if err != nil {
		return // the cache, as it is
	}
	var d Device
	if ok && json.Unmarshal(v, &d) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.devices[name]
	switch {
	case ok:
		r.devices[name] = d
		r.lower[strings.ToLower(name)] = name
		if !had || old.Hash != d.Hash {
			delete(r.verified, name)
		}
	case had:
		delete(r.devices, name)
		delete(r.lower, strings.ToLower(name))
		delete(r.verified, name)
		delete(r.outOfLane, name)
	}
}

// Connect returns nil when a client may connect: with credentials, a
// device's; without, from where AnonymousFrom allows. An error wrapping
// broker.ErrBusy says the password could not be checked now (too many
// checks at once). The argon2id check runs with no lock held.
func (r *Registry) Connect(user string, password []byte, remote string) error {
	err := r.connect(user, password, remote)
	if err != nil && r.Refused != nil && !errors.Is(err, broker.ErrBusy) {
		r.Refused(user, hostOf(remote), err)
	}
	return err
}

func (r *Registry) connect(user string, password []byte, remote string) error {
	if user == "" {
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			host = remote
		}
		if !r.AnonymousFrom(net.ParseIP(host)) {
			return errors.New("devices: a client without credentials, from an address not trusted for that")
		}
		return nil
	}
	r.refresh(user)
	r.mu.Lock()
	d, ok := r.devices[user]
	cached, seen := r.verified[user]
	why, out := r.outOfLane[user]
	r.mu.Unlock()
	if len(password) == 0 || len(password) > 256 {
		return fmt.Errorf("devices: %.64q: wrong password", user)
	}
	sum := sha256.Sum256(password)
	if !ok || !seen || subtle.ConstantTimeCompare(sum[:], cached[:]) != 1 {
		ip, now := hostOf(remote), time.Now()
		if r.failed.locked(ip, now) {
			// Answered after a while, as a password check would be: a
			// refusal at once would let the flood reconnect thousands of
			// times a second, which costs the broker more than the checks.
			time.Sleep(lockedDelay)
			return fmt.Errorf("devices: %.64q from %s: %w", user, ip, ErrLocked)
		}
		hash := d.Hash
		if !ok {
			hash = nobodysHash() // as long as a wrong password
		}
		good, err := r.checks.Check(hash, string(password))
		if err != nil {
			return fmt.Errorf("devices: %.64q: %w: %w", user, broker.ErrBusy, err)
		}
		if !ok {
			r.failed.failed(ip, now)
			return fmt.Errorf("%w: %.64q", ErrUnknown, user)
		}
		if !good {
			r.failed.failed(ip, now)
			return fmt.Errorf("devices: %q: wrong password", user)
		}
		r.failed.succeeded(ip)
		r.mu.Lock()
		if _, still := r.devices[user]; still {
			r.verified[user] = sum
		}
		r.mu.Unlock()
	}
	if out {
		// Refused and logged only now, after the right password: then
		// it is the admin's device, not a stranger filling the log.
		r.warnOutOfLane(user, why)
		return fmt.Errorf("devices: %q refused: %s", user, why)
	}
	return nil
}

// Allowed reports whether client user (a device name; "" for an anonymous
// client, which was let in from a trusted address) may publish (write) on,
// or subscribe to, topic.
//
// Topics kept for Vatio (see WithOwnTopics) are refused to every client's
// publishes.
func (r *Registry) Allowed(user, topic string, write bool) bool {
	if write && r.isOwn(topic) {
		return false
	}
	if user == "" {
		return true
	}
	r.mu.Lock()
	d, ok := r.devices[user]
	_, out := r.outOfLane[user]
	r.mu.Unlock()
	if !ok || out {
		return false
	}
	filters := d.Subscribe
	if write {
		filters = d.Publish
	}
	for _, f := range filters {
		if match(f, topic) {
			return true
		}
	}
	return false
}

var _ broker.Keeper = (*Registry)(nil)

// Kept reports whether only Vatio may publish on topic (see
// WithOwnTopics): the broker then refuses a client's publish there without
// closing its connection (broker.Keeper).
func (r *Registry) Kept(topic string) bool { return r.isOwn(topic) }

// isOwn reports whether topic is kept for Vatio: under one of r.own and
// not one of r.open.
func (r *Registry) isOwn(topic string) bool {
	if slices.Contains(r.open, topic) {
		return false
	}
	for _, f := range r.own {
		if match(f, topic) {
			return true
		}
	}
	return false
}

// validFilter reports whether f is an MQTT topic filter: '#' only last,
// '+' and '#' only as whole levels.
func validFilter(f string) bool {
	if f == "" || len(f) > 256 || strings.HasPrefix(f, "$") {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && len(l) != 1 || l == "#" && i != len(levels)-1 || strings.ContainsRune(l, 0) {
			return false
		}
	}
	return true
}

// match reports whether topic (or, for a subscription, a filter) is under
// filter: a subscription's own wildcards must sit where filter has them.
func match(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if tl[i] == "#" || (tl[i] == "+" && f != "+") {
			return false // a wider subscription than allowed
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

// Settings returns what to type into a device to connect it: host, port,
// user, password and the topics to use, per family. host is the name the
// admin reached Vatio by; addr the broker's plain listen address and
// tlsAddr its MQTTS address (for their ports; "" when off).
func Settings(name, password, host, addr, tlsAddr string) map[string]string {
	portOf := func(addr, def string) string {
		if _, port, err := net.SplitHostPort(addr); err == nil && port != "" && port != "0" {
			return port
		}
		return def
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	port := portOf(addr, "1883")
	tlsPort := ""
	if tlsAddr != "" {
		tlsPort = portOf(tlsAddr, "8883")
		if addr == "" { // only MQTTS is served
			port = tlsPort
		}
	}
	out := map[string]string{
		"host": host, "port": port, "user": name, "password": password,
		"tasmota":  "Configuration > MQTT: Host " + host + ", Port " + port + ", User " + name + ", Password <password>, Topic " + name,
		"shelly":   "Settings > MQTT: Server " + host + ":" + port + ", Client ID / prefix " + name + ", User " + name + ", Password <password>",
		"generic":  "publish on energy/consumption/" + name + " (or your own topics, given when the device is added) as user " + name,
		"commands": "cmnd/" + name + "/# (Tasmota), " + name + "/rpc (Shelly)",
	}
	if tlsPort != "" {
		out["tls_port"] = tlsPort
		out["tls"] = "MQTTS on port " + tlsPort + ": have the device trust Vatio's certificate authority " +
			"(<data_dir>/tls/ca.pem, unless tls.cert_file is set) - Shelly: Settings > MQTT > Use TLS with a custom CA; " +
			"mosquitto_pub: --cafile ca.pem -p " + tlsPort
	}
	return out
}

// MayWrite reports whether a client logged in as user ("" for an
// anonymous one) may send readings of meterID: not when the meter is named
// after another device (its id, or its id before a ':' channel suffix),
// which a gateway's topics could otherwise name (zigbee2mqtt/boiler feeds
// meter boiler). Anonymous clients, trusted by address, may.
func (r *Registry) MayWrite(user, meterID string) bool {
	if user == "" {
		return true
	}
	base, _, _ := strings.Cut(meterID, ":")
	if base == user {
		return true
	}
	r.mu.Lock()
	name, taken := r.lower[strings.ToLower(base)]
	r.mu.Unlock()
	return !taken || name == user
}
