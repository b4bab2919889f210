package main

import (
	"fmt"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/modbus"
)

// modbusSpecs returns config.yaml's modbus list as package modbus takes
// it, each device checked with its defaults (a profile's factory address
// and serial settings, a poll every 5 s, a second's timeout). An error
// names the entry's key.
func modbusSpecs(list []config.ModbusDevice) ([]modbus.Spec, error) {
	var out []modbus.Spec
	for i, c := range list {
		s := modbus.Spec{Name: c.Name, URL: c.URL, Unit: c.Unit, Profile: c.Profile,
			Interval: modbus.Duration(c.Interval), Timeout: modbus.Duration(c.Timeout),
			Speed: c.Speed, Parity: c.Parity, StopBits: c.StopBits}
		for _, r := range c.Registers {
			s.Registers = append(s.Registers, modbus.Register{Function: modbus.Function(r.Function), Address: uint16(r.Address),
				Type: modbus.Type(r.Type), WordOrder: modbus.Order(r.WordOrder), ByteOrder: modbus.Order(r.ByteOrder),
				Scale: r.Scale, Quantity: modbus.Quantity(r.Quantity), Phase: modbus.Phase(r.Phase)})
		}
		if _, err := s.Device(); err != nil {
			return nil, fmt.Errorf("modbus[%d] (%s): %v", i, c.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}
