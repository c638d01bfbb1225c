package fuzz

import (
	"fmt"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// tryResult is how one history went.
type tryResult struct {
	fail   string // the failure report, or "" if the history passed
	starts []int  // offsets in the history (after its first byte) of the operations run
	end    int    // offset where decoding stopped
	// canon is the history in canonical form (see canon), up to where it
	// stopped, or nil if some argument had no canonical spelling.
	canon []byte
	bad   string // why there is no canonical form
}

// tryHistory runs a history in probe mode: a failure, or a panic of the
// engine, is returned instead of failing tb. Pebble runs in a temporary
// directory removed afterwards.
func tryHistory(tb testing.TB, which string, data []byte) (r tryResult) {
	if len(data) == 0 {
		return r
	}
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	mkdir := func() string {
		d, err := os.MkdirTemp("", "readreceipt-fuzz-")
		if err != nil {
			tb.Fatal(err)
		}
		dirs = append(dirs, d)
		return d
	}
	var h *harness
	d := &decoder{b: data[1:]}
	defer func() {
		if h != nil {
			r.starts = h.opStarts
			if h.cn.ok {
				r.canon = append([]byte{data[0]}, h.cn.b...)
			}
			r.bad = h.cn.bad
			h.closeQuiet()
		}
		r.end = d.i
		if p := recover(); p != nil {
			if f, ok := p.(*histFailure); ok {
				r.fail = f.msg
				return
			}
			r.fail = fmt.Sprintf("FAILED: panic: %v\n%s", p, debug.Stack())
		}
	}()
	h = newHarnessMode(tb, decodeConfig(data[0]), true, specs(which, mkdir)...)
	h.runOps(d)
	h.finish()
	return r
}

// failureKind is what a failure is about: the first two fields of its
// FAILED line (the store and the call, or "panic" and its value), so that
// shrinking keeps a history failing for the same reason.
func failureKind(report string) string {
	line := lastLine(report)
	if i := strings.Index(report, "FAILED: "); i >= 0 {
		line = report[i+len("FAILED: "):]
		if j := strings.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
	}
	fields := strings.SplitN(line, ": ", 3)
	if len(fields) > 2 {
		fields = fields[:2]
	}
	// "result 2", "info 5": the position in a call may change as the
	// history shrinks.
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '#'
		}
		return r
	}, strings.Join(fields, ": "))
}

// lastLine returns the FAILED line of a failure report.
func lastLine(report string) string {
	if i := strings.Index(report, "FAILED: "); i >= 0 {
		report = report[i:]
	}
	if j := strings.IndexByte(report, '\n'); j >= 0 {
		return report[:j]
	}
	return report
}

// maxShrinkTries bounds the histories shrink runs.
const maxShrinkTries = 3000

// shrink returns the shortest history it finds that still fails the way
// data failed (r): it cuts the history after the failing operation, turns
// it into its canonical form (if that fails the same way), then drops runs
// of whole operations, halving the run length down to one operation, for
// as long as that keeps the failure (delta debugging over operations).
// Operations are cut at the offsets the decoder reported, so every
// candidate is a well-formed history.
func shrink(tb testing.TB, which string, data []byte, r tryResult) []byte {
	kind := failureKind(r.fail)
	// The decoder read nothing past r.end: the bytes after it change
	// nothing.
	best := data[:1+r.end]
	if r.canon != nil {
		if c := tryHistory(tb, which, r.canon); c.fail != "" && failureKind(c.fail) == kind {
			best, r = r.canon[:1+c.end], c
		}
	} else {
		tb.Logf("shrinking the history as it is, without a canonical form: %s", r.bad)
	}
	tries := 0
	for n := max(1, len(r.starts)/2); n >= 1 && tries < maxShrinkTries; {
		removed := false
		for i := 0; i+n <= len(r.starts) && tries < maxShrinkTries; {
			cand := dropOps(best, r.starts, i, n)
			tries++
			c := tryHistory(tb, which, cand)
			if c.fail != "" && failureKind(c.fail) == kind {
				best, r, removed = cand[:1+c.end], c, true
				continue // the same i now names the next operations
			}
			i += n
		}
		if !removed {
			n /= 2
		}
		n = min(n, max(1, len(r.starts)/2))
	}
	return best
}

// dropOps returns data without operations i..i+n-1 (starts are their
// offsets after the configuration byte).
func dropOps(data []byte, starts []int, i, n int) []byte {
	body := data[1:]
	from := starts[i]
	to := len(body)
	if i+n < len(starts) {
		to = starts[i+n]
	}
	out := append([]byte{data[0]}, body[:from]...)
	return append(out, body[to:]...)
}

// TestShrinkFindsShortHistory plants a fault in the model (once a message
// has two readers, the model forgets one) and checks that the shrinker
// turns a long random history that shows it into a short one that still
// does: a group, a message, two receipts, at most a couple of operations
// more.
func TestShrinkFindsShortHistory(t *testing.T) {
	// The fault forgets the first reader (by ID) of the first message (by
	// key) with two readers: a map's order would make the shrinker's
	// result change from run to run.
	injectFault = func(h *harness) {
		keys := slices.SortedFunc(maps.Keys(h.model.Msgs), func(a, b MsgKey) int {
			return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
		})
		for _, k := range keys {
			msg := h.model.Msgs[k]
			if len(msg.Readers) >= 2 {
				delete(msg.Readers, slices.Sorted(maps.Keys(msg.Readers))[0])
				return
			}
		}
	}
	defer func() { injectFault = nil }()
	for seed := range 50 {
		data := randomHistory(uint64(seed))
		r := tryHistory(t, "mem", data)
		if r.fail == "" {
			continue
		}
		short := shrink(t, "mem", data, r)
		s := tryHistory(t, "mem", short)
		if s.fail == "" || failureKind(s.fail) != failureKind(r.fail) {
			t.Fatalf("shrunk history %q does not fail as %q did:\n%s", short, failureKind(r.fail), s.fail)
		}
		if len(s.starts) > 6 || len(s.starts) >= len(r.starts) {
			t.Fatalf("shrunk history has %d operations (the original %d), want at most 6:\n%s", len(s.starts), len(r.starts), s.fail)
		}
		t.Logf("history %d: %d operations shrunk to %d (%d bytes):\n%s", seed, len(r.starts), len(s.starts), len(short), s.fail)
		return
	}
	t.Fatal("no random history showed the planted fault")
}
