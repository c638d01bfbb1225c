// Command report turns the output of the comparison benchmarks
// (go test -bench . ./bench/compare/) into the table bench/run prints:
// a markdown table of each workload's figure on the engine and on each peer,
// with the engine's advantage over each peer (medians over -count runs), and
// then one line per row for scripts:
//
//	W<id> <metric> engine=<n> redis=<n> ... ratio_redis=<x> ...
//
// A ratio above 1 means the engine does better. Usage:
//
//	go run ./bench/report [FILE]   (standard input without FILE)
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/readreceipt/readreceipt/bench/compare"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	in := stdin
	switch len(args) {
	case 0:
	case 1:
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	default:
		return fmt.Errorf("usage: report [FILE]")
	}
	res, err := compare.ParseResults(in)
	if err != nil {
		return err
	}
	if len(res.Values) == 0 {
		return fmt.Errorf("no benchmark results in the input")
	}
	return res.WriteReport(stdout)
}
