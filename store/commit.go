package store

// meterState is what the store keeps per meter beside its readings, updated
// in the same transaction as them.
type meterState struct {
	FirstNs   int64   // timestamp of the oldest reading
	LastNs    int64   // timestamp of the newest reading
	LastW     float64 // power of the newest reading
	LastWh    float64 // energy counter of the newest reading, if LastHasWh
	LastHasWh bool
	SeenNs    int64  // when a reading was last committed (server clock)
	Readings  uint64 // readings stored
	// CompactedNs is where the compactor stopped: readings before it are in
	// compressed blocks, readings at or after it are raw.
	CompactedNs int64
	// ArchivedNs is where retention stopped: the readings before it were
	// written to archive files and deleted (see ApplyRetention), and the
	// rollups before it are history that readings arriving late no longer
	// change. 0 when retention never deleted any.
	ArchivedNs int64
	// RefWh and RefNs are the newest non-zero energy counter taken and its
	// reading's time (RefNs 0: none yet): the reference a new counter is
	// checked against (see checkCounter).
	RefWh float64
	RefNs int64
	// PendWh, PendNs and PendN track counters rejected as implausible jumps:
	// the newest one, its time, and how many in a row agreed with each
	// other. After rebaseAfter of them the meter's counter is taken to have
	// moved for good (a replaced device).
	PendWh float64
	PendNs int64
	PendN  uint64
	// IntervalNs is the meter's usual time between readings, as received
	// (see noteInterval); 0 while unknown.
	IntervalNs int64
}

func (m meterState) last() sample {
	return sample{ns: m.LastNs, w: m.LastW, wh: m.LastWh, hasEnergy: m.LastHasWh}
}
