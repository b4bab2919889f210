//go:build !linux

package store

import "os"

// fdatasync is f.Sync where the system has no fdatasync.
func fdatasync(f *os.File) error { return f.Sync() }

// dropCache does nothing where large page-cache folios are not a concern.
func dropCache(*os.File) {}

// freeBytes is unknown here.
func freeBytes(string) (int64, bool) { return 0, false }
