package redistest

import "syscall"

// sysProcAttr makes the kernel SIGKILL the server if the test binary dies
// (a panic, a -timeout, a SIGKILL) before its cleanups run, so that no
// redis-server outlives the test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
