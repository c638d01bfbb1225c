// Package storetest is the conformance suite and the shared benchmarks of
// [store.Store] backends.
//
// A backend's test file runs the suite and the benchmarks on fresh stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
//	}
//
//	func BenchmarkStore(b *testing.B) {
//		storetest.RunBenchmarks(b, func(b *testing.B) store.Store { return memstore.New() })
//	}
//
// A persistent backend also runs [RunReopen]. The suite asserts what the
// engine relies on, as documented in package store; where the documentation
// leaves backends a choice (when a bad merge is reported), the test says
// exactly which behaviours it accepts.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/readreceipt/readreceipt/store"
)

// Run runs the conformance suite on stores made by newStore, one fresh,
// empty store for each subtest. The suite closes every store it is given;
// newStore may also arrange to close it (Close is idempotent).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"GetEmptyValue", testGetEmptyValue},
		{"GetOrder", testGetOrder},
		{"GetMany", testGetMany},
		{"GetReturnsCallerOwnedSlices", testGetCallerOwned},
		{"WriteDoesNotRetainBatch", testBatchNotRetained},
		{"EmptyBatch", testEmptyBatch},
		{"SyncWrite", testSyncWrite},
		{"ScanOrder", testScanOrder},
		{"ScanBounds", testScanBounds},
		{"ScanStops", testScanStops},
		{"ScanReentrant", testScanReentrant},
		{"BatchOrder", testBatchOrder},
		{"DeleteRangeExact", testDeleteRangeExact},
		{"ManyKeys", testManyKeys},
		{"Counters", testCounters},
		{"CounterRunningSum", testCounterRunningSum},
		{"Sets", testSets},
		{"SetRunningUnion", testSetRunningUnion},
		{"Appends", testAppends},
		{"BadMerge", testBadMerge},
		{"LargeValues", testLargeValues},
		{"Atomicity", testAtomicity},
		{"ConcurrentMerges", testConcurrentMerges},
		{"ContextDone", testContextDone},
		{"Closed", testClosed},
		{"CloseConcurrent", testCloseConcurrent},
		{"Ingest", testIngest},
		{"IngestRejects", testIngestRejects},
		{"IngestConcurrent", testIngestConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// bg is the context of calls that are not about contexts.
var bg = context.Background()

// noSync and withSync are the two WriteOptions.
var (
	noSync   = store.WriteOptions{}
	withSync = store.WriteOptions{Sync: true}
)

// kv is a key and its value as Scan reports them.
type kv struct{ key, value string }

func (p kv) String() string { return fmt.Sprintf("%q=%q", p.key, p.value) }

// write builds a batch with fill and writes it, failing the test on error.
func write(t testing.TB, s store.Store, fill func(b *store.Batch)) {
	t.Helper()
	if err := tryWrite(s, noSync, fill); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// tryWrite builds a batch with fill and writes it with opts.
func tryWrite(s store.Store, opts store.WriteOptions, fill func(b *store.Batch)) error {
	var b store.Batch
	fill(&b)
	return s.Write(bg, &b, opts)
}

// set writes key=value.
func set(t testing.TB, s store.Store, key, value string) {
	t.Helper()
	write(t, s, func(b *store.Batch) { b.Set([]byte(key), []byte(value)) })
}

// merge merges operand into key.
func merge(t testing.TB, s store.Store, key string, operand []byte) {
	t.Helper()
	write(t, s, func(b *store.Batch) { b.Merge([]byte(key), operand) })
}

// get reads keys, failing the test on error.
func get(t testing.TB, s store.Store, keys ...string) [][]byte {
	t.Helper()
	bk := make([][]byte, len(keys))
	for i, k := range keys {
		bk[i] = []byte(k)
	}
	vals, err := s.Get(bg, bk)
	if err != nil {
		t.Fatalf("Get(%q): %v", keys, err)
	}
	if len(vals) != len(keys) {
		t.Fatalf("Get(%q) returned %d values, want %d", keys, len(vals), len(keys))
	}
	return vals
}

// get1 reads one key.
func get1(t testing.TB, s store.Store, key string) []byte {
	t.Helper()
	return get(t, s, key)[0]
}

// scan returns what Scan(start, end) reports, failing the test on error.
// A nil start or end is passed as nil.
func scan(t testing.TB, s store.Store, start, end []byte) []kv {
	t.Helper()
	var out []kv
	err := s.Scan(bg, start, end, func(k, v []byte) bool {
		out = append(out, kv{string(k), string(v)})
		return true
	})
	if err != nil {
		t.Fatalf("Scan(%q, %q): %v", start, end, err)
	}
	return out
}

// scanAll returns every key and value of s.
func scanAll(t testing.TB, s store.Store) []kv {
	t.Helper()
	return scan(t, s, nil, nil)
}

// counter reads the counter at key.
func counter(t testing.TB, s store.Store, key string) int64 {
	t.Helper()
	n, err := store.DecodeCounter(get1(t, s, key))
	if err != nil {
		t.Fatalf("counter %q: %v", key, err)
	}
	return n
}

// readSet reads the set at key, checking that it is in a folded form ('s'
// or 'b'), not a list of deltas.
func readSet(t testing.TB, s store.Store, key string) *roaring.Bitmap {
	t.Helper()
	v := get1(t, s, key)
	if v == nil {
		t.Fatalf("set %q is missing", key)
	}
	if v[0] != 's' && v[0] != 'b' {
		t.Fatalf("set %q read back with tag %q, want a folded form ('s' or 'b')", key, v[0])
	}
	bm, err := store.DecodeSet(v)
	if err != nil {
		t.Fatalf("set %q: %v", key, err)
	}
	return bm
}

// encodeSet is store.EncodeSet of vals, failing the test on error.
func encodeSet(t testing.TB, vals ...uint32) []byte {
	t.Helper()
	v, err := store.EncodeSet(roaring.BitmapOf(vals...))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantMembers checks that the set at key is exactly want.
func wantMembers(t testing.TB, s store.Store, key string, want *roaring.Bitmap) {
	t.Helper()
	got := readSet(t, s, key)
	if !got.Equals(want) {
		t.Fatalf("set %q = %s, want %s", key, abbrev(got), abbrev(want))
	}
}

// abbrev formats a bitmap without printing a million numbers.
func abbrev(bm *roaring.Bitmap) string {
	if bm.GetCardinality() <= 20 {
		return fmt.Sprint(bm.ToArray())
	}
	return fmt.Sprintf("{%d values from %d to %d}", bm.GetCardinality(), bm.Minimum(), bm.Maximum())
}

// within runs fn and fails the test if it has not returned after d: a
// deadlock then fails fast instead of hanging the test binary.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v (deadlock?)", what, d)
	}
}

// sameKVs fails the test unless got equals want.
func sameKVs(t testing.TB, what string, got, want []kv) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// isErr reports whether err is target, for readable assertions.
func isErr(err, target error) bool { return errors.Is(err, target) }
