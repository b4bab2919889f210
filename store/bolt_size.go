package store

import "strconv"

// MaxSize32 caps the database on 32-bit systems. bbolt maps the whole file
// into the address space, which a 32-bit process has 2 to 3 GB of for
// everything; in practice mapping fails past about 1 GB.
const MaxSize32 = 1 << 30

// Is32Bit reports whether this build is for a 32-bit system (armv6, armv7,
// 386), where the database is capped at MaxSize32.
const Is32Bit = strconv.IntSize == 32

// defaultMaxSize is the database's size cap when Options.MaxSizeBytes is 0:
// MaxSize32 on 32-bit systems, none elsewhere.
func defaultMaxSize() int {
	if Is32Bit {
		return MaxSize32
	}
	return 0
}
