package redistest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestServerOutlivesStartingThread: a server started from a goroutine whose
// thread then ends (it returns while locked to it) keeps running: its
// parent-death signal is tied to the spawning thread, not to the caller's.
func TestServerOutlivesStartingThread(t *testing.T) {
	t.Parallel()
	// Skip here, not in the goroutine: Skip ends only the goroutine it is
	// called from, and the test would wait on done for ever.
	Find(t)
	done := make(chan *Server)
	go func() {
		runtime.LockOSThread() // never unlocked: Go ends the thread on return
		done <- Start(t)
	}()
	s := <-done
	time.Sleep(200 * time.Millisecond)
	if v, err := s.Do("PING"); err != nil || v != "PONG" || !s.Running() {
		t.Fatalf("server started from an ended thread: PING %v, %v; running %v", v, err, s.Running())
	}
}

const childEnv = "REDISTEST_CHILD"

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER of prctl(2).
const prSetChildSubreaper = 36

// TestNoLeakWhenTestBinaryDies: a test binary that dies without running its
// cleanups (os.Exit here; a panic or a -timeout alike) takes its servers
// with it, through the parent-death signal.
func TestNoLeakWhenTestBinaryDies(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		s := Start(t)
		fmt.Printf("pid=%d\n", s.PID)
		os.Exit(3) // no cleanups
	}
	Find(t)

	// Become the reaper of the orphaned server, so that this test can wait
	// for it to die (and it leaves no zombie where init does not reap).
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
	defer syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0)

	cmd := exec.Command(os.Args[0], "-test.run=^TestNoLeakWhenTestBinaryDies$", "-test.count=1")
	// The child's temporary directories, which its cleanups do not remove,
	// go into this test's.
	cmd.Env = append(os.Environ(), childEnv+"=1", "TMPDIR="+t.TempDir())
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var pid int
	if _, err := fmt.Sscanf(string(out), "pid=%d", &pid); err != nil || pid <= 0 {
		t.Fatalf("child output %q: %v", out, err)
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if wpid == pid {
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("redis-server pid %d ended with status %v, want SIGKILL", pid, ws)
			}
			return
		}
		if errors.Is(err, syscall.ECHILD) && !alive(pid) {
			return // reaped elsewhere
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("redis-server pid %d outlived its test binary", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
