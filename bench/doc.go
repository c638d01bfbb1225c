// Package bench holds the engine's user-facing benchmarks (bench_test.go)
// and their results (BENCHMARKS.md). It has no code of its own: run
//
//	go test -run XXX -bench . ./bench/
//
// Without -bench, `go test ./bench/` runs nothing heavy: every fixture is
// built lazily, by the first benchmark that needs it.
package bench
