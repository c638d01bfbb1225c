//go:build !race

package main

// raceEnabled reports a build with the race detector, which makes the
// engine several times slower.
const raceEnabled = false
