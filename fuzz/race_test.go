//go:build race

package fuzz

// raceEnabled shortens TestEngineMatchesModel under the race detector,
// which slows every history down several times.
const raceEnabled = true
