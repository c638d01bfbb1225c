package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/readreceipt/readreceipt/store"
)

// The Ingest tests run on every store; a store that does not implement
// store.Ingester skips them.

func ingester(t *testing.T, s store.Store) store.Ingester {
	t.Helper()
	in, ok := s.(store.Ingester)
	if !ok {
		t.Skipf("%T does not implement store.Ingester", s)
	}
	return in
}

// testIngest: an ingested batch reads like the same batch written: sets
// replace, deletes remove (missing keys too), the last operation of a key
// wins whatever the key order, keys outside the batch keep their values
// (a counter keeps folding), and a Write after the ingest wins over it.
func testIngest(t *testing.T, s store.Store) {
	in := ingester(t, s)
	write(t, s, func(b *store.Batch) {
		b.Set(bs("a"), bs("old-a"))
		b.Set(bs("b"), bs("old-b"))
		b.Set(bs("keep"), bs("kept"))
		b.Merge(bs("ctr"), store.EncodeCounter(5))
	})
	var b store.Batch
	b.Set(bs("z"), bs("z1"))
	b.Set(bs("a"), bs("new-a"))
	b.Delete(bs("b"))
	b.Delete(bs("never"))
	b.Set(bs("twice"), bs("first"))
	b.Set(bs("m"), bs("m"))
	b.Set(bs("twice"), bs("second"))
	b.Set(bs("gone"), bs("x"))
	b.Delete(bs("gone"))
	b.Delete(bs("back"))
	b.Set(bs("back"), bs("again"))
	b.Set(bs("empty"), []byte{})
	if err := in.Ingest(bg, &b); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	want := []kv{
		{"a", "new-a"}, {"back", "again"}, {"ctr", string(store.EncodeCounter(5))},
		{"empty", ""}, {"keep", "kept"}, {"m", "m"}, {"twice", "second"}, {"z", "z1"},
	}
	sameKVs(t, "after Ingest", scanAll(t, s), want)
	check(t, s, map[string]any{"b": missing{}, "gone": missing{}, "never": missing{}, "empty": raw("")})

	merge(t, s, "ctr", store.EncodeCounter(2))
	set(t, s, "a", "written-after")
	write(t, s, func(b *store.Batch) { b.Delete(bs("m")) })
	check(t, s, map[string]any{"ctr": count(7), "a": raw("written-after"), "m": missing{}})

	// A second ingest over the first.
	var b2 store.Batch
	b2.Set(bs("z"), bs("z2"))
	b2.Delete(bs("twice"))
	if err := in.Ingest(bg, &b2); err != nil {
		t.Fatalf("second Ingest: %v", err)
	}
	check(t, s, map[string]any{"z": raw("z2"), "twice": missing{}, "keep": raw("kept")})

	// Empty and nil batches are no-ops.
	if err := in.Ingest(bg, &store.Batch{}); err != nil {
		t.Errorf("Ingest of an empty batch: %v", err)
	}
	if err := in.Ingest(bg, nil); err != nil {
		t.Errorf("Ingest(nil): %v", err)
	}
}

// testIngestRejects: a batch with a merge or a range deletion is refused
// whole; a done context applies nothing.
func testIngestRejects(t *testing.T, s store.Store) {
	in := ingester(t, s)
	set(t, s, "k", "v")
	for _, tc := range []struct {
		name string
		fill func(b *store.Batch)
	}{
		{"merge", func(b *store.Batch) { b.Merge(bs("ctr"), store.EncodeCounter(1)) }},
		{"delete range", func(b *store.Batch) { b.DeleteRange(bs("a"), bs("z")) }},
	} {
		var b store.Batch
		b.Set(bs("new"), bs("x"))
		b.Delete(bs("k"))
		tc.fill(&b)
		if err := in.Ingest(bg, &b); err == nil {
			t.Errorf("Ingest of a batch with a %s: no error", tc.name)
		}
		check(t, s, map[string]any{"new": missing{}, "k": raw("v"), "ctr": missing{}})
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	var b store.Batch
	b.Set(bs("new"), bs("x"))
	if err := in.Ingest(ctx, &b); err == nil {
		t.Error("Ingest with a done context: no error")
	}
	check(t, s, map[string]any{"new": missing{}})
}

// testIngestConcurrent: ingests and synced writes of other keys at the
// same time all land, and readers never see an ingest in part.
func testIngestConcurrent(t *testing.T, s store.Store) {
	in := ingester(t, s)
	const ingests, keys = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range ingests {
			var b store.Batch
			for k := range keys {
				b.Set(fmt.Appendf(nil, "i/%04d", k), fmt.Appendf(nil, "%d", i))
			}
			if err := in.Ingest(bg, &b); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 200 {
			if err := tryWrite(s, withSync, func(b *store.Batch) {
				b.Set(fmt.Appendf(nil, "w/%04d", i), bs("w"))
			}); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		// Every scan sees all keys of one ingest, never a mix.
		for range 50 {
			var first string
			n := 0
			err := s.Scan(bg, bs("i/"), bs("i0"), func(k, v []byte) bool {
				if n == 0 {
					first = string(v)
				} else if string(v) != first {
					errs <- fmt.Errorf("scan saw ingests %q and %q together", first, v)
					return false
				}
				n++
				return true
			})
			if err != nil {
				errs <- err
				return
			}
			if n != 0 && n != keys {
				errs <- fmt.Errorf("scan saw %d keys of an ingest of %d", n, keys)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(scan(t, s, bs("w/"), bs("w0"))); got != 200 {
		t.Errorf("%d synced writes visible, want 200", got)
	}
	if got := scan(t, s, bs("i/"), bs("i0")); len(got) != keys || got[0].value != fmt.Sprint(ingests-1) {
		t.Errorf("after the ingests: %d keys, first %v; want %d keys of ingest %d", len(got), got[:min(1, len(got))], keys, ingests-1)
	}
}
