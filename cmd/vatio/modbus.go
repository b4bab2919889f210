package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/modbus"
	"github.com/vatio-energy/vatio/store"
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

// adoptPhase makes the phase meter phase (device:L1) a sub-meter of its
// device's meter whenever it is not one: a site's totals add only its main
// meters, and a phase counted beside its meter would count twice. It is
// checked at each poll (a read of the registry), so that a phase made a
// main meter again (its meter deleted and made anew by the next poll) is
// adopted again. The edit goes through the store's queue after the poll's
// readings, so both meters exist by then; a poll whose readings were
// refused leaves it for the next.
func adoptPhase(st *store.Store, device, phase string, logger *slog.Logger) {
	if m, err := st.Meter(phase); err == nil && m.Info.Parent != "" {
		return
	}
	_, err := st.EditMeter(phase, func(i *store.MeterInfo) error {
		if i.Parent == "" {
			i.Parent, i.Site = device, ""
		}
		return nil
	})
	switch {
	case err == nil:
	case errors.Is(err, store.ErrUnknownMeter), errors.Is(err, store.ErrInvalidEdit):
		// Its reading, or its meter's, was refused: the next poll tries
		// again.
	default:
		logger.Warn("phase meter not made a sub-meter of its meter", slog.String("meter", phase), slog.String("parent", device), slog.Any("error", err))
	}
}
