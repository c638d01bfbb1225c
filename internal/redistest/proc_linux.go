package redistest

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// sysProcAttr makes the kernel SIGKILL the server if the test binary dies
// (a panic, a -timeout, a SIGKILL) before its cleanups run, so that no
// redis-server outlives the test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// The parent-death signal comes when the thread that forked the child
// exits, not the process, and Go ends a thread when a goroutine locked to
// it returns. So every server is started by one goroutine locked to its
// thread for good: the signal comes only with the test binary's end.
var (
	spawnOnce sync.Once
	spawns    chan spawn
)

type spawn struct {
	cmd  *exec.Cmd
	done chan error
}

// startCmd starts cmd from the spawning thread.
func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawns = make(chan spawn)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must not end
			for s := range spawns {
				s.done <- s.cmd.Start()
			}
		}()
	})
	s := spawn{cmd: cmd, done: make(chan error, 1)}
	spawns <- s
	return <-s.done
}
