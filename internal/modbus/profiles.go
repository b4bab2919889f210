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
	Serial    Serial
	Unit      uint8
	Registers []Register
}

// Profiles are the meters Vatio knows, by the name a device's profile
// gives.
var Profiles = map[string]Profile{
	"sdm120": eastron1("Eastron SDM120-Modbus", "Eastron SDM120 Modbus Protocol (SDM120-Modbus Smart Meter protocol, V2.x), input registers 30001-30344"),
	"sdm230": eastron1("Eastron SDM230-Modbus", "Eastron SDM230 Modbus Protocol (SDM230-Modbus Smart Meter protocol, V1.x), input registers 30001-30344"),
	"sdm630": {
		Model:    "Eastron SDM630-Modbus (V2)",
		Document: "Eastron SDM630 Modbus Protocol (SDM630-Modbus V2 Smart Meter protocol, V1.8), input registers 30001-30346",
		Phases:   3,
		Serial:   Serial{Speed: 9600, Parity: "none", StopBits: 1},
		Unit:     1,
		// Input registers, IEEE 754 floats, high word first.
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
}

// eastron1 is the profile of Eastron's single-phase meters, whose first
// registers share one map.
func eastron1(model, doc string) Profile {
	return Profile{
		Model: model, Document: doc, Phases: 1,
		Serial: Serial{Speed: 2400, Parity: "none", StopBits: 1}, Unit: 1,
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
