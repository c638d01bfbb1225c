//go:build !linux

package redistest

import (
	"os/exec"
	"syscall"
)

// sysProcAttr: outside Linux there is no parent-death signal; the cleanups
// registered with testing.TB are what stops the servers.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func startCmd(cmd *exec.Cmd) error { return cmd.Start() }
