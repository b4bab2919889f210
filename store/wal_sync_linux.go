package store

import (
	"os"
	"syscall"
)

// fdatasync writes f's data, and its size only if it changed: a log
// segment written in place costs its data pages alone.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
