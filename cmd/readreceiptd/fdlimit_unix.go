//go:build unix

package main

import "syscall"

// fdLimit returns the process's limit on open files (Go raises the soft
// limit to the hard one at start), or 0 if it cannot be read.
func fdLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}
