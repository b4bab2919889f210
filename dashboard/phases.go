package dashboard

import (
	"time"

	"github.com/vatio-energy/vatio/internal/modbus"
)

// phasesData is the meter page's Phases panel: a Modbus meter's last
// answer, per phase, and their imbalance.
type phasesData struct {
	Online bool
	At     time.Time // of the last answer
	Error  string    // why the last poll failed
	Rows   []phaseRow
	// CurrentImbalance and PowerImbalance are in percent; Has* say
	// whether there are three phases to compare.
	CurrentImbalance, PowerImbalance       float64
	HasCurrentImbalance, HasPowerImbalance bool
	// Frequency is the line's, when the meter gives it.
	Frequency    float64
	HasFrequency bool
}

// phaseRow is one phase's values; a value the meter does not give has
// its Has* false.
type phaseRow struct {
	Phase, Meter                            string
	VoltageV, CurrentA, PowerW, PF          float64
	HasVoltage, HasCurrent, HasPower, HasPF bool
}

// phasesOf returns the Phases panel of meter id, read by the Modbus
// poller; nil when the poller does not read it, or it has no phases.
func (d *Dashboard) phasesOf(id string) *phasesData {
	if d.modbus == nil {
		return nil
	}
	for _, st := range d.modbus.Status() {
		if st.Name != id {
			continue
		}
		p := &phasesData{Online: st.Online, At: st.LastAnswer, Error: st.LastError}
		for _, ph := range modbus.Phases {
			v, ok := st.Values[ph]
			if !ok {
				continue
			}
			r := phaseRow{Phase: string(ph), Meter: id + ":" + string(ph)}
			r.VoltageV, r.HasVoltage = v[modbus.VoltageV]
			r.CurrentA, r.HasCurrent = v[modbus.CurrentA]
			r.PowerW, r.HasPower = v[modbus.PowerW]
			r.PF, r.HasPF = v[modbus.PowerFactor]
			p.Rows = append(p.Rows, r)
		}
		if len(p.Rows) == 0 && st.Online {
			return nil // a single-phase meter
		}
		p.CurrentImbalance, p.HasCurrentImbalance = modbus.Imbalance(st.Values, modbus.CurrentA)
		p.PowerImbalance, p.HasPowerImbalance = modbus.Imbalance(st.Values, modbus.PowerW)
		p.Frequency, p.HasFrequency = st.Values[modbus.Total][modbus.FrequencyHz]
		return p
	}
	return nil
}
