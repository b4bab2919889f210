package homeassistant

import (
	"cmp"
	"encoding/json"
	"fmt"

	"github.com/vatio-energy/vatio/store"
)

// The discovery payload of a sensor, in Home Assistant's MQTT sensor schema
// (homeassistant/components/mqtt/sensor.py and schemas.py): full key names,
// no abbreviations, and no object_id, which Home Assistant 2025.10
// deprecated and 2026.4 removed in favour of default_entity_id.

type device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model,omitempty"`
}

type origin struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version,omitempty"`
	SupportURL string `json:"support_url"`
}

type availability struct {
	Topic               string `json:"topic"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

type sensorConfig struct {
	Name              string         `json:"name"`
	UniqueID          string         `json:"unique_id"`
	DefaultEntityID   string         `json:"default_entity_id"`
	StateTopic        string         `json:"state_topic"`
	ValueTemplate     string         `json:"value_template"`
	UnitOfMeasurement string         `json:"unit_of_measurement"`
	DeviceClass       string         `json:"device_class"`
	StateClass        string         `json:"state_class"`
	Availability      []availability `json:"availability"`
	AvailabilityMode  string         `json:"availability_mode"`
	Device            device         `json:"device"`
	Origin            origin         `json:"origin"`
}

// config is one discovery message: its topic and payload.
type config struct {
	topic   string
	payload []byte
}

// configsOf returns m's discovery messages: its power and energy sensors,
// each available while Vatio and m both are (availability_mode all).
func (p *Publisher) configsOf(m store.Meter) []config {
	oid := ObjectID(m.ID)
	dev := device{Identifiers: []string{oid}, Name: cmp.Or(m.Info.Name, m.ID), Manufacturer: "Vatio", Model: m.Info.Source}
	avail := []availability{
		{Topic: p.StatusTopic(), PayloadAvailable: Online, PayloadNotAvailable: Offline},
		{Topic: p.AvailabilityTopic(m.ID), PayloadAvailable: Online, PayloadNotAvailable: Offline},
	}
	org := origin{Name: "Vatio", SWVersion: p.opts.Version, SupportURL: "https://github.com/vatio-energy/vatio"}
	state := p.StateTopic(m.ID)
	var out []config
	for _, c := range []struct {
		kind, name, template, unit, deviceClass, stateClass string
	}{
		{"power", "Power", "{{ value_json.power_w }}", "W", "power", "measurement"},
		{"energy", "Energy", "{{ value_json.energy_kwh }}", "kWh", "energy", "total_increasing"},
	} {
		payload, err := json.Marshal(sensorConfig{Name: c.name, UniqueID: oid + "_" + c.kind, DefaultEntityID: EntityID(oid, c.kind),
			StateTopic: state, ValueTemplate: c.template, UnitOfMeasurement: c.unit, DeviceClass: c.deviceClass, StateClass: c.stateClass,
			Availability: avail, AvailabilityMode: "all", Device: dev, Origin: org})
		if err != nil {
			panic(fmt.Sprintf("homeassistant: marshal a config: %v", err)) // strings only: cannot fail
		}
		out = append(out, config{topic: p.opts.Prefix + "/sensor/" + oid + "/" + c.kind + "/config", payload: payload})
	}
	return out
}

// statePayload is a meter's state message.
func statePayload(powerW, energyKWh float64) []byte {
	b, _ := json.Marshal(struct {
		PowerW    float64 `json:"power_w"`
		EnergyKWh float64 `json:"energy_kwh"`
	}{powerW, energyKWh})
	return b
}
