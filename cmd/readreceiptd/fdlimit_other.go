//go:build !unix

package main

// fdLimit is unknown on this system.
func fdLimit() uint64 { return 0 }
