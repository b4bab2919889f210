package modbus

import (
	"maps"
	"slices"
)

// Profile is the register map of a meter model, from its maker's public
// Modbus documentation.
type Profile struct {
	// Model names the meters it reads.
	Model string
	// Document cites where the map comes from.
	Document string
	// Phases is 3 for a three-phase meter, 1 for a single-phase one.
	Phases int
	// Serial is the model's factory serial settings and Unit its factory
	// address, what a new meter answers with.
	Serial Serial
	Unit   uint8
	// MaxWords is the most registers the meter answers in one request; 0
	// is Modbus's 125.
	MaxWords  int
	Registers []Register
}

// Profiles are the meters Vatio knows, by the name a device's profile
// gives. Their maps come from the makers' Modbus documents named in each,
// checked against independent drivers (volkszaehler/mbmd, Victron's
// dbus-cgwacs and dbus-modbus-client, openWB, evcc, ESPHome).
var Profiles = map[string]Profile{
	"sdm120": eastron1("Eastron SDM120-Modbus",
		"Eastron SDM120M Smart Meter Modbus Protocol Implementation V2.5, input registers 30001-30343", 2400),
	"sdm230": eastron1("Eastron SDM230-Modbus",
		"Eastron SDM230Modbus Protocol V1.1, input registers 30001-30343", 9600),
	"sdm630": {
		Model:    "Eastron SDM630-Modbus (V2), SDM72 V2",
		Document: "Eastron SDM630Modbus Smart Meter Modbus Protocol Implementation V1.8 (and V2.0, 2018), input registers 30001-30346",
		Phases:   3,
		Serial:   Serial{Speed: 9600, Parity: "none", StopBits: 1},
		Unit:     1,
		// Input registers, IEEE 754 floats, high word first. Energy in
		// kWh (the meter may be set to MWh: holding register 40031).
		// 30343, "Total kWh", is import plus export: not read.
		Registers: eastron([]Register{
			{Address: 0x0000, Quantity: VoltageV, Phase: L1},
			{Address: 0x0002, Quantity: VoltageV, Phase: L2},
			{Address: 0x0004, Quantity: VoltageV, Phase: L3},
			{Address: 0x0006, Quantity: CurrentA, Phase: L1},
			{Address: 0x0008, Quantity: CurrentA, Phase: L2},
			{Address: 0x000A, Quantity: CurrentA, Phase: L3},
			{Address: 0x000C, Quantity: PowerW, Phase: L1},
			{Address: 0x000E, Quantity: PowerW, Phase: L2},
			{Address: 0x0010, Quantity: PowerW, Phase: L3},
			{Address: 0x001E, Quantity: PowerFactor, Phase: L1},
			{Address: 0x0020, Quantity: PowerFactor, Phase: L2},
			{Address: 0x0022, Quantity: PowerFactor, Phase: L3},
			{Address: 0x0034, Quantity: PowerW},
			{Address: 0x003E, Quantity: PowerFactor},
			{Address: 0x0046, Quantity: FrequencyHz},
			{Address: 0x0048, Quantity: ImportWh, Scale: 1000},
			{Address: 0x004A, Quantity: ExportWh, Scale: 1000},
		}),
	},
	// The EM24-DIN's RS-485 models: the EM24 with Ethernet has the EM340's
	// map (em340).
	"em24": {
		Model:    "Carlo Gavazzi EM24-DIN (RS-485: PFA, PFB, X)",
		Document: "Carlo Gavazzi EM24-DIN PFA, PFB & X models Communication Protocol, Version 4 Revision 0 (3 Dec 2012)",
		Phases:   3,
		Serial:   Serial{Speed: 9600, Parity: "none", StopBits: 1},
		Unit:     1,
		// At most 11 registers a request, as the document says. Signed
		// power and export need a PFB or X model in application E, F or
		// H (holding register 0x1101).
		MaxWords: 11,
		Registers: gavazzi([]Register{
			{Address: 0x0000, Quantity: VoltageV, Phase: L1, Scale: 0.1},
			{Address: 0x0002, Quantity: VoltageV, Phase: L2, Scale: 0.1},
			{Address: 0x0004, Quantity: VoltageV, Phase: L3, Scale: 0.1},
			{Address: 0x000C, Quantity: CurrentA, Phase: L1, Scale: 0.001},
			{Address: 0x000E, Quantity: CurrentA, Phase: L2, Scale: 0.001},
			{Address: 0x0010, Quantity: CurrentA, Phase: L3, Scale: 0.001},
			{Address: 0x0012, Quantity: PowerW, Phase: L1, Scale: 0.1},
			{Address: 0x0014, Quantity: PowerW, Phase: L2, Scale: 0.1},
			{Address: 0x0016, Quantity: PowerW, Phase: L3, Scale: 0.1},
			{Address: 0x0028, Quantity: PowerW, Scale: 0.1},
			{Address: 0x0035, Type: Int16, Quantity: PowerFactor, Scale: 0.001},
			{Address: 0x0037, Type: Int16, Quantity: FrequencyHz, Scale: 0.1},
			{Address: 0x003E, Quantity: ImportWh, Scale: 100},
			{Address: 0x005C, Quantity: ExportWh, Scale: 100},
		}),
	},
	"em340": {
		Model:    "Carlo Gavazzi EM340, EM330, ET330, ET340, EM24 Ethernet",
		Document: "Carlo Gavazzi EM300 Series and ET300 Series Communication Protocol, Version 2 Revision 6 (14-11-14)",
		Phases:   3,
		Serial:   Serial{Speed: 9600, Parity: "none", StopBits: 1},
		Unit:     1,
		// At most 50 words a request (register 0x2004). Signed power and
		// export need measurement mode B (register 0x1103).
		MaxWords: 50,
		Registers: gavazzi([]Register{
			{Address: 0x0000, Quantity: VoltageV, Phase: L1, Scale: 0.1},
			{Address: 0x0002, Quantity: VoltageV, Phase: L2, Scale: 0.1},
			{Address: 0x0004, Quantity: VoltageV, Phase: L3, Scale: 0.1},
			{Address: 0x000C, Quantity: CurrentA, Phase: L1, Scale: 0.001},
			{Address: 0x000E, Quantity: CurrentA, Phase: L2, Scale: 0.001},
			{Address: 0x0010, Quantity: CurrentA, Phase: L3, Scale: 0.001},
			{Address: 0x0012, Quantity: PowerW, Phase: L1, Scale: 0.1},
			{Address: 0x0014, Quantity: PowerW, Phase: L2, Scale: 0.1},
			{Address: 0x0016, Quantity: PowerW, Phase: L3, Scale: 0.1},
			{Address: 0x0028, Quantity: PowerW, Scale: 0.1},
			{Address: 0x0031, Type: Int16, Quantity: PowerFactor, Scale: 0.001},
			{Address: 0x0033, Type: Int16, Quantity: FrequencyHz, Scale: 0.1},
			{Address: 0x0034, Quantity: ImportWh, Scale: 100},
			{Address: 0x004E, Quantity: ExportWh, Scale: 100},
		}),
	},
	// The iEM3150 and iEM3250 have no export register: their devices use
	// "registers" without it, or profile iem3000 and get exception 2
	// (the status says which register).
	"iem3000": {
		Model:    "Schneider Electric iEM3155, iEM3255 (iEM3000 series)",
		Document: "Schneider Electric iEM3100 / iEM3200 / iEM3300 series Energy meters User manual, DOCA0005EN, Modbus register list (registers 3000-3208)",
		Phases:   3,
		Serial:   Serial{Speed: 19200, Parity: "even", StopBits: 1},
		Unit:     1,
		// Holding registers, floats and 64-bit integers high word first;
		// the manual's register numbers less one. The power factor
		// (3084) is in Schneider's four-quadrant form: not read.
		Registers: []Register{
			{Function: Holding, Address: 2999, Type: Float32, Quantity: CurrentA, Phase: L1},
			{Function: Holding, Address: 3001, Type: Float32, Quantity: CurrentA, Phase: L2},
			{Function: Holding, Address: 3003, Type: Float32, Quantity: CurrentA, Phase: L3},
			{Function: Holding, Address: 3027, Type: Float32, Quantity: VoltageV, Phase: L1},
			{Function: Holding, Address: 3029, Type: Float32, Quantity: VoltageV, Phase: L2},
			{Function: Holding, Address: 3031, Type: Float32, Quantity: VoltageV, Phase: L3},
			{Function: Holding, Address: 3053, Type: Float32, Quantity: PowerW, Phase: L1, Scale: 1000},
			{Function: Holding, Address: 3055, Type: Float32, Quantity: PowerW, Phase: L2, Scale: 1000},
			{Function: Holding, Address: 3057, Type: Float32, Quantity: PowerW, Phase: L3, Scale: 1000},
			{Function: Holding, Address: 3059, Type: Float32, Quantity: PowerW, Scale: 1000},
			{Function: Holding, Address: 3109, Type: Float32, Quantity: FrequencyHz},
			{Function: Holding, Address: 3203, Type: Int64, Quantity: ImportWh},
			{Function: Holding, Address: 3207, Type: Int64, Quantity: ExportWh},
		},
	},
	"abb-b2x": {
		Model:    "ABB B23, B24 (B-series; A43, A44)",
		Document: "ABB B21/B23/B24 User Manual 2CMC485003M0201, Modbus register map (0x5000-0x5B3A)",
		Phases:   3,
		Serial:   Serial{Speed: 9600, Parity: "none", StopBits: 1},
		Unit:     1,
		// Holding registers, integers high word first. All bits set
		// (unsigned) or the largest value (signed) is "not available":
		// export on an import-only model.
		Registers: []Register{
			{Function: Holding, Address: 0x5000, Type: Uint64, Quantity: ImportWh, Scale: 10},
			{Function: Holding, Address: 0x5004, Type: Uint64, Quantity: ExportWh, Scale: 10},
			{Function: Holding, Address: 0x5B00, Type: Uint32, Quantity: VoltageV, Phase: L1, Scale: 0.1},
			{Function: Holding, Address: 0x5B02, Type: Uint32, Quantity: VoltageV, Phase: L2, Scale: 0.1},
			{Function: Holding, Address: 0x5B04, Type: Uint32, Quantity: VoltageV, Phase: L3, Scale: 0.1},
			{Function: Holding, Address: 0x5B0C, Type: Uint32, Quantity: CurrentA, Phase: L1, Scale: 0.01},
			{Function: Holding, Address: 0x5B0E, Type: Uint32, Quantity: CurrentA, Phase: L2, Scale: 0.01},
			{Function: Holding, Address: 0x5B10, Type: Uint32, Quantity: CurrentA, Phase: L3, Scale: 0.01},
			{Function: Holding, Address: 0x5B14, Type: Int32, Quantity: PowerW, Scale: 0.01},
			{Function: Holding, Address: 0x5B16, Type: Int32, Quantity: PowerW, Phase: L1, Scale: 0.01},
			{Function: Holding, Address: 0x5B18, Type: Int32, Quantity: PowerW, Phase: L2, Scale: 0.01},
			{Function: Holding, Address: 0x5B1A, Type: Int32, Quantity: PowerW, Phase: L3, Scale: 0.01},
			{Function: Holding, Address: 0x5B2C, Type: Uint16, Quantity: FrequencyHz, Scale: 0.01},
			{Function: Holding, Address: 0x5B3A, Type: Int16, Quantity: PowerFactor, Scale: 0.001},
		},
	},
	"dtsu666": dtsu666(0x101E, "energy at 0x101E/0x1028, as manual ZTY0.464.1267 (July 2020) and ZTY0.464.1002 v1.5 give it"),
	// Meters whose manual ("Quick operation manual of DTSU666-□ series")
	// puts energy at 0x401E/0x4028.
	"dtsu666-4000": dtsu666(0x401E, "energy at 0x401E/0x4028, as the Quick operation manual of DTSU666-□ and DSSU666-□ series gives it"),
}

// dtsu666 is the profile of a Chint DTSU666, whose energy is at
// energy (import) and energy+10 (export) depending on the variant.
func dtsu666(energy uint16, which string) Profile {
	r := func(addr uint16, q Quantity, ph Phase, scale float64) Register {
		return Register{Function: Holding, Address: addr, Type: Float32, Quantity: q, Phase: ph, Scale: scale}
	}
	return Profile{
		Model:    "Chint DTSU666 (three-phase, Modbus)",
		Document: "CHINT DTSU666 and DTSU666-CT three phase Smart meter Manual ZTY0.464.1267 (July 2020), Modbus register list 2000H-2044H; " + which,
		Phases:   3,
		Serial:   Serial{Speed: 9600, Parity: "none", StopBits: 1},
		Unit:     1,
		// Holding registers, floats high word first, in tenths of a volt,
		// thousandths of an ampere, tenths of a watt and kWh.
		Registers: []Register{
			r(0x2006, VoltageV, L1, 0.1), r(0x2008, VoltageV, L2, 0.1), r(0x200A, VoltageV, L3, 0.1),
			r(0x200C, CurrentA, L1, 0.001), r(0x200E, CurrentA, L2, 0.001), r(0x2010, CurrentA, L3, 0.001),
			r(0x2012, PowerW, Total, 0.1), r(0x2014, PowerW, L1, 0.1), r(0x2016, PowerW, L2, 0.1), r(0x2018, PowerW, L3, 0.1),
			r(0x202A, PowerFactor, Total, 0.001), r(0x2044, FrequencyHz, Total, 0.01),
			r(energy, ImportWh, Total, 1000), r(energy+10, ExportWh, Total, 1000),
		},
	}
}

// gavazzi gives Carlo Gavazzi's registers their encoding: input registers,
// 32-bit integers low word first (an INT16's type is given).
func gavazzi(regs []Register) []Register {
	for i := range regs {
		regs[i].Function = Input
		if regs[i].Type == "" {
			regs[i].Type, regs[i].WordOrder = Int32, LowFirst
		}
	}
	return regs
}

// eastron1 is the profile of Eastron's single-phase meters, whose first
// registers share one map.
func eastron1(model, doc string, speed uint) Profile {
	return Profile{
		Model: model, Document: doc, Phases: 1,
		Serial: Serial{Speed: speed, Parity: "none", StopBits: 1}, Unit: 1,
		Registers: eastron([]Register{
			{Address: 0x0000, Quantity: VoltageV},
			{Address: 0x0006, Quantity: CurrentA},
			{Address: 0x000C, Quantity: PowerW},
			{Address: 0x001E, Quantity: PowerFactor},
			{Address: 0x0046, Quantity: FrequencyHz},
			{Address: 0x0048, Quantity: ImportWh, Scale: 1000},
			{Address: 0x004A, Quantity: ExportWh, Scale: 1000},
		}),
	}
}

// eastron gives Eastron's registers their encoding: input registers,
// floats, high word first.
func eastron(regs []Register) []Register {
	for i := range regs {
		regs[i].Function, regs[i].Type = Input, Float32
	}
	return regs
}

// ProfileNames returns the names of Profiles, sorted.
func ProfileNames() []string {
	return slices.Sorted(maps.Keys(Profiles))
}
