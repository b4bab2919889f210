package devices

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// ReservedWords are the topic levels no device may be named: the device
// families' prefixes, Vatio's and Home Assistant's own, the group topics
// of the default command topics, and $SYS. Any name starting with
// "shelly" is reserved too (Shelly's own device ids). Names are compared
// without regard to case. A device named so would get, through its
// default topics (NAME/#), every device of that family.
var ReservedWords = []string{"energy", "tele", "stat", "cmnd", "shellies", "emon", "zigbee2mqtt", "dsmr",
	"vatio", "homeassistant", "$SYS", "tasmotas", "command"}

// reservedPrefix starts the reserved names of Shelly's device ids.
const reservedPrefix = "shelly"

// A device's lane is the topics its default topics give it, which name it
// at a fixed level: NAME/..., tele/NAME/..., stat/NAME/..., cmnd/NAME/...,
// shellies/NAME/..., emon/NAME/... and energy/consumption/NAME. A topic
// filter of a device may not reach into another device's lane:
//
//   - its first level is never a wildcard (# or +/... reach every lane);
//   - after tele, stat, cmnd, shellies or emon, the second level is a
//     literal; after energy/consumption, the third;
//   - the level so found (or else the first level) is the device's own
//     name or no other device's; the name is then the filter's, and no
//     device may be added under it later.
//
// So emonhub gets emon/emontx4/# (per node) rather than emon/#, a gateway
// factory/+/telemetry, Zigbee2MQTT zigbee2mqtt/#, Home Assistant
// homeassistant/# and vatio/# (reserved first levels, no device's lane).

// laneLevel maps a family prefix to the level at which its topics name a
// device.
var laneLevel = map[string]int{"tele": 1, "stat": 1, "cmnd": 1, "shellies": 1, "emon": 1}

// laneOf returns the device name whose lane filter falls in ("" for none),
// or an error when filter reaches into every device's lane.
func laneOf(filter string) (string, error) {
	levels := strings.Split(filter, "/")
	wild := func(l string) bool { return l == "+" || l == "#" }
	if wild(levels[0]) {
		return "", fmt.Errorf("%w topic filter %q: a wildcard first level reaches every device's topics", ErrInvalid, filter)
	}
	at := 0
	if n, ok := laneLevel[levels[0]]; ok {
		at = n
	} else if levels[0] == "energy" {
		if len(levels) > 1 && wild(levels[1]) {
			return "", fmt.Errorf("%w topic filter %q: a wildcard after energy/ reaches every device's topics", ErrInvalid, filter)
		}
		if len(levels) < 2 || levels[1] != "consumption" {
			return "", nil
		}
		at = 2
	}
	if at >= len(levels) {
		return "", nil // the family's own topic (tele, energy/consumption): no device's lane
	}
	if wild(levels[at]) {
		return "", fmt.Errorf("%w topic filter %q: a wildcard where %s/ names a device reaches every device's topics",
			ErrInvalid, filter, strings.Join(levels[:at], "/"))
	}
	return levels[at], nil
}

// checkName returns why name may not name a device, or nil.
func (r *Registry) checkName(name string) error {
	if !deviceName.MatchString(name) {
		return fmt.Errorf("%w name: 1-64 letters, digits, '_' or '-', starting with a letter or digit", ErrInvalid)
	}
	if why := r.reservedName(name); why != "" {
		return fmt.Errorf("%w name %q: %s; pick another name and give the device its topics", ErrInvalid, name, why)
	}
	return nil
}

// reservedName says why name is reserved, or "".
func (r *Registry) reservedName(name string) string {
	lower := strings.ToLower(name)
	if r.reserved[lower] {
		return fmt.Sprintf("%q is a reserved topic level (a device family's, Vatio's or a configured input's)", lower)
	}
	if strings.HasPrefix(lower, reservedPrefix) {
		return fmt.Sprintf("names starting with %q are reserved (Shelly's own device ids)", reservedPrefix)
	}
	return ""
}

// inLane returns why d, about to be added, would leave its lane: a topic
// filter reaching into another device's, or its name claimed by another
// device's filters. r.mu is held.
func (r *Registry) inLane(d Device) error {
	for _, f := range slices.Concat(d.Publish, d.Subscribe) {
		name, err := laneOf(f)
		if err != nil {
			return err
		}
		if _, other := r.devices[name]; other && name != d.Name {
			return fmt.Errorf("%w topic filter %q: it is in device %q's topics", ErrInvalid, f, name)
		}
	}
	for _, o := range r.devices {
		for _, f := range slices.Concat(o.Publish, o.Subscribe) {
			if name, _ := laneOf(f); name == d.Name {
				return fmt.Errorf("%w name %q: device %q's topic filter %q is in that name's topics", ErrInvalid, d.Name, o.Name, f)
			}
		}
	}
	return nil
}

// narrowStored applies the lane rules to the devices loaded from the
// store, some of which may predate them: a device with a reserved name is
// refused at connect; a filter that reaches into another device's topics,
// or every device's, is dropped from what the device may do. Each is
// logged.
func (r *Registry) narrowStored() {
	for name, d := range r.devices {
		if why := r.reservedName(name); why != "" {
			r.outOfLane[name] = why
			r.log.Warn("device refused at connect: its name is reserved; remove it and add it under another name",
				slog.String("device", name), slog.String("reason", why))
			continue
		}
		keep := func(f string) bool {
			lane, err := laneOf(f)
			if _, other := r.devices[lane]; err == nil && (!other || lane == name) {
				return true
			}
			why := "it reaches into every device's topics"
			if err == nil {
				why = fmt.Sprintf("it is in device %q's topics", lane)
			}
			r.log.Warn("device topic filter ignored: "+why,
				slog.String("device", name), slog.String("filter", f))
			return false
		}
		d.Publish = slices.DeleteFunc(slices.Clone(d.Publish), func(f string) bool { return !keep(f) })
		d.Subscribe = slices.DeleteFunc(slices.Clone(d.Subscribe), func(f string) bool { return !keep(f) })
		r.devices[name] = d
	}
}

// outOfLaneLogInterval is the least time between two log lines about one
// refused out-of-lane device.
const outOfLaneLogInterval = time.Minute

// warnOutOfLane logs that device, which knew its password, was refused for
// why.
func (r *Registry) warnOutOfLane(device, why string) {
	now := time.Now()
	r.mu.Lock()
	quiet := now.Sub(r.lastWarned[device]) < outOfLaneLogInterval
	if !quiet {
		r.lastWarned[device] = now
	}
	r.mu.Unlock()
	if !quiet {
		r.log.Warn("device refused: its name is reserved; remove it and add it under another name",
			slog.String("device", device), slog.String("reason", why))
	}
}
