package auth

import (
	"runtime"
	"syscall"
)

// checkLowPriority runs check on an OS thread of its own at the lowest
// scheduling priority (nice 19), so that while the machine is busy the
// kernel gives the threads serving clients the cores first. The thread is
// never given back: it ends with the goroutine, since its priority could
// not be raised again without privileges.
func checkLowPriority(check func() bool) bool {
	done := make(chan bool, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with the goroutine
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
		done <- check()
	}()
	return <-done
}
