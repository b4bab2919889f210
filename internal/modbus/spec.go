package modbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Spec is a device as config.yaml, the API and the dashboard give it:
// what it leaves out takes its default (Device).
type Spec struct {
	// Name is the meter's id; a three-phase meter's phases are the meters
	// name:L1 to name:L3.
	Name string `json:"name"`
	// URL is tcp://host:port, rtu:///dev/ttyUSB0 or rtuovertcp://host:port.
	URL string `json:"url"`
	// Unit is the meter's Modbus address; 0 is its profile's factory
	// address (1 without a profile).
	Unit int `json:"unit,omitempty"`
	// Profile names the meter's model; or Registers list its values.
	Profile   string     `json:"profile,omitempty"`
	Registers []Register `json:"registers,omitempty"`
	// Interval is how often it is read (0: DefaultInterval), Timeout how
	// long each request may take (0: DefaultTimeout).
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	// Speed, Parity and StopBits are a serial line's settings (rtu://
	// only); what is left out is the profile's factory setting (9600 8N1
	// without a profile).
	Speed    int    `json:"speed,omitempty"`
	Parity   string `json:"parity,omitempty"`
	StopBits int    `json:"stop_bits,omitempty"`
}

// Defaults of a device's settings left out.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = time.Second
)

// Device returns the device s says, with its defaults, or what is wrong
// with it, naming the setting.
func (s Spec) Device() (Device, error) {
	if s.Unit < 0 || s.Unit > 255 {
		return Device{}, problemf("unit %d: use 1 to 247 (or 0 or 255 for a TCP device that ignores it)", s.Unit)
	}
	if s.Speed < 0 || s.StopBits < 0 {
		return Device{}, problemf("speed and stop_bits are positive numbers")
	}
	d := Device{Name: s.Name, URL: s.URL, Unit: uint8(s.Unit), Profile: strings.ToLower(s.Profile), Registers: s.Registers,
		Interval: time.Duration(s.Interval), Timeout: time.Duration(s.Timeout),
		Serial: Serial{Speed: uint(s.Speed), Parity: strings.ToLower(s.Parity), StopBits: uint(s.StopBits)}}
	p, known := Profiles[d.Profile]
	if s.Unit == 0 {
		d.Unit = max(p.Unit, 1)
	}
	if d.Interval == 0 {
		d.Interval = DefaultInterval
	}
	if d.Timeout == 0 {
		d.Timeout = DefaultTimeout
	}
	factory := Serial{Speed: 9600, Parity: "none", StopBits: 1}
	if known {
		factory = p.Serial
	}
	if d.Serial.Speed == 0 {
		d.Serial.Speed = factory.Speed
	}
	if d.Serial.Parity == "" {
		d.Serial.Parity = factory.Parity
	}
	if d.Serial.StopBits == 0 {
		d.Serial.StopBits = factory.StopBits
	}
	if err := d.Check(); err != nil {
		return Device{}, err
	}
	return d, nil
}

// Duration is a time.Duration written as config.yaml writes it ("5s",
// "1m30s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration is a string such as "5s" or "1m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 5s or 1m", s)
	}
	*d = Duration(v)
	return nil
}

// Summary describes s in one line, for the audit log.
func (s Spec) Summary() string {
	what := s.Profile
	if what == "" {
		what = fmt.Sprintf("%d registers", len(s.Registers))
	}
	unit := "default unit"
	if s.Unit != 0 {
		unit = fmt.Sprintf("unit %d", s.Unit)
	}
	return fmt.Sprintf("%s %s, %s", s.URL, unit, what)
}
