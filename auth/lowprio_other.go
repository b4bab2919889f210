//go:build !linux

package auth

// checkLowPriority runs check; only Linux lowers the priority of a thread.
func checkLowPriority(check func() bool) bool { return check() }
