package pebblestore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/pebblestore"
	"github.com/readreceipt/readreceipt/store/storetest"
)

func open(tb testing.TB, dir string, opts *pebblestore.Options) *pebblestore.Store {
	tb.Helper()
	s, err := pebblestore.Open(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, t.TempDir(), nil) })
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store { return open(t, dir, nil) })
}

func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store { return open(b, b.TempDir(), nil) })
}

// TestMalformedOperandRejected checks that Write, not a later read, rejects
// a malformed merge operand, and applies nothing of its batch.
func TestMalformedOperandRejected(t *testing.T) {
	s := open(t, "db", &pebblestore.Options{FS: vfs.NewMem()})
	defer s.Close()
	ctx := context.Background()
	for _, op := range []string{"", "x", "n\x01", "l\x01\x02", "sgarbage"} {
		var b store.Batch
		b.Set([]byte("a"), []byte("v"))
		b.Merge([]byte("k"), []byte(op))
		if err := s.Write(ctx, &b, store.WriteOptions{}); !errors.Is(err, store.ErrBadMerge) {
			t.Errorf("Write of operand %q = %v, want an error wrapping store.ErrBadMerge", op, err)
		}
	}
	vals, err := s.Get(ctx, [][]byte{[]byte("a"), []byte("k")})
	if err != nil || vals[0] != nil || vals[1] != nil {
		t.Fatalf("after rejected Writes, Get = %q, %v; want nothing", vals, err)
	}
}

// TestMergesAcrossFlushAndCompaction checks that merges fold the same way
// whether their operands sit in memtables or in tables, and that a key with
// operands of different kinds does not make flushes or compactions fail:
// the key keeps reading as store.ErrBadMerge and everything else works.
func TestMergesAcrossFlushAndCompaction(t *testing.T) {
	s := open(t, "db", &pebblestore.Options{FS: vfs.NewMem()})
	defer s.Close()
	ctx := context.Background()
	write := func(fill func(b *store.Batch)) {
		t.Helper()
		var b store.Batch
		fill(&b)
		if err := s.Write(ctx, &b, store.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// step runs a Flush or a Compact, which would never return if the
	// merge operator failed in Pebble's background work.
	step := func(name string, fn func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not return within 30s: a merge failing in a flush or compaction?", name)
		}
	}
	want := roaring.New()
	for round := range 4 {
		for i := range 50 {
			v := uint32(round*50 + i)
			want.Add(v)
			write(func(b *store.Batch) {
				b.Merge([]byte("ctr"), store.EncodeCounter(2))
				b.Merge([]byte("set"), store.EncodeSetAdd(v))
				b.Merge([]byte("bad"), store.EncodeCounter(1))
				if i == 25 {
					b.Merge([]byte("bad"), store.EncodeSetAdd(1))
				}
			})
		}
		switch round {
		case 0:
			step("Flush", s.Flush)
		case 1:
			step("Compact", func() error { return s.Compact(ctx, nil, nil) })
		case 2:
			step("Compact range", func() error { return s.Compact(ctx, []byte("a"), []byte("z")) })
		}
	}
	step("Flush", s.Flush)
	step("Compact", func() error { return s.Compact(ctx, nil, nil) })

	vals, err := s.Get(ctx, [][]byte{[]byte("ctr"), []byte("set")})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := store.DecodeCounter(vals[0]); err != nil || n != 400 {
		t.Errorf("ctr = %d, %v; want 400", n, err)
	}
	if got, err := store.DecodeSet(vals[1]); err != nil || !got.Equals(want) {
		t.Errorf("set = %v, %v; want %d values", got.GetCardinality(), err, want.GetCardinality())
	}
	if _, err := s.Get(ctx, [][]byte{[]byte("bad")}); !errors.Is(err, store.ErrBadMerge) {
		t.Errorf("Get(bad) = %v, want an error wrapping store.ErrBadMerge", err)
	}
	write(func(b *store.Batch) { b.Delete([]byte("bad")) })
	step("Compact after Delete", func() error { return s.Compact(ctx, nil, nil) })
	if vals, err := s.Get(ctx, [][]byte{[]byte("bad")}); err != nil || vals[0] != nil {
		t.Errorf("Get(bad) after Delete = %q, %v; want nil, nil", vals, err)
	}
	if m := s.Metrics(); m == nil || m.DiskSpaceUsage() == 0 {
		t.Errorf("Metrics = %v", m)
	}
}

// TestExtrasAfterClose checks that the extras beyond store.Store also
// report store.ErrClosed.
func TestExtrasAfterClose(t *testing.T) {
	s := open(t, "db", &pebblestore.Options{FS: vfs.NewMem()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Flush = %v", err)
	}
	if err := s.Compact(context.Background(), nil, nil); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Compact = %v", err)
	}
	if m := s.Metrics(); m != nil {
		t.Errorf("Metrics = %v, want nil", m)
	}
}
