package memstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/readreceipt/readreceipt/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
}

func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store { return memstore.New() })
}

// TestLen checks that Len counts keys and that deletions reclaim them.
func TestLen(t *testing.T) {
	s := memstore.New()
	defer s.Close()
	ctx := context.Background()
	var b store.Batch
	for i := range 1000 {
		b.Set(fmt.Appendf(nil, "k%04d", i), nil)
	}
	b.Merge([]byte("n"), store.EncodeCounter(1))
	if err := s.Write(ctx, &b, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := s.Len(); n != 1001 {
		t.Fatalf("Len = %d, want 1001", n)
	}
	b.Reset()
	b.DeleteRange([]byte("k"), []byte("k0500"))
	b.Delete([]byte("n"))
	if err := s.Write(ctx, &b, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := s.Len(); n != 500 {
		t.Fatalf("Len after deletions = %d, want 500", n)
	}
	s.Close()
	if n := s.Len(); n != 0 {
		t.Fatalf("Len after Close = %d, want 0", n)
	}
}
