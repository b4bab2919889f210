package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/modbus"
)

// Defaults of a Modbus device's settings left out of config.yaml.
const (
	modbusInterval = 5 * time.Second
	modbusTimeout  = time.Second
)

// modbusDevices builds the devices of config.yaml's modbus list, with
// their defaults: a profile's factory address and serial settings, a poll
// every 5 s, a second's timeout. An error names the entry's key.
func modbusDevices(list []config.ModbusDevice) ([]modbus.Device, error) {
	var out []modbus.Device
	for i, c := range list {
		d := modbus.Device{Name: c.Name, URL: c.URL, Unit: uint8(c.Unit), Profile: strings.ToLower(c.Profile),
			Interval: c.Interval, Timeout: c.Timeout,
			Serial: modbus.Serial{Speed: uint(c.Speed), Parity: c.Parity, StopBits: uint(c.StopBits)}}
		p, known := modbus.Profiles[d.Profile]
		if c.Unit == 0 {
			d.Unit = max(p.Unit, 1)
		}
		if d.Interval == 0 {
			d.Interval = modbusInterval
		}
		if d.Timeout == 0 {
			d.Timeout = modbusTimeout
		}
		factory := modbus.Serial{Speed: 9600, Parity: "none", StopBits: 1}
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
		for _, r := range c.Registers {
			d.Registers = append(d.Registers, modbus.Register{Function: modbus.Function(r.Function), Address: uint16(r.Address),
				Type: modbus.Type(r.Type), WordOrder: modbus.Order(r.WordOrder), ByteOrder: modbus.Order(r.ByteOrder),
				Scale: r.Scale, Quantity: modbus.Quantity(r.Quantity), Phase: modbus.Phase(r.Phase)})
		}
		if err := d.Check(); err != nil {
			return nil, fmt.Errorf("modbus[%d] (%s): %v", i, c.Name, err)
		}
		out = append(out, d)
	}
	return out, nil
}
