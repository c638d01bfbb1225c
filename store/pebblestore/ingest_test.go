package pebblestore_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/pebblestore"
)

// TestIngestLeavesNoFiles: Ingest's temporary table is gone once it
// returns, and one a crash left behind is removed by Open, while Pebble's
// own files and the data stay.
func TestIngestLeavesNoFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := pebblestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.Set([]byte("k"), []byte("v"))
	if err := s.Ingest(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "ingest-*")); len(m) != 0 {
		t.Errorf("after Ingest: %v left in the directory", m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, "ingest-7.sst")
	if err := os.WriteFile(left, []byte("half a table"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = pebblestore.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open with a leftover ingest file: %v", err)
	}
	defer s.Close()
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("Open left %s in place (stat: %v)", left, err)
	}
	vals, err := s.Get(context.Background(), [][]byte{[]byte("k")})
	if err != nil || string(vals[0]) != "v" {
		t.Errorf("after reopening, k = %q (err %v), want v", vals[0], err)
	}
}

// TestIngestInParts: a batch ingested as several tables reads like the
// same batch written, including keys whose operations straddle a cut,
// and leaves no temporary table behind.
func TestIngestInParts(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	defer pebblestore.SetIngestPartMin(2)()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	for round := range 30 {
		dir := t.TempDir()
		s, err := pebblestore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		var b store.Batch
		keys := 1 + rng.IntN(12)
		for i := range 2 + rng.IntN(60) {
			k := fmt.Sprintf("k%02d", rng.IntN(keys))
			if rng.IntN(4) == 0 {
				b.Delete([]byte(k))
				delete(want, k)
			} else {
				v := fmt.Sprintf("v%d-%d", round, i)
				b.Set([]byte(k), []byte(v))
				want[k] = v
			}
		}
		if err := s.Ingest(ctx, &b); err != nil {
			t.Fatalf("round %d: Ingest: %v", round, err)
		}
		got := map[string]string{}
		if err := s.Scan(ctx, nil, nil, func(k, v []byte) bool {
			got[string(k)] = string(v)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("round %d: after Ingest %v, want %v", round, got, want)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "ingest-*")); len(m) != 0 {
			t.Fatalf("round %d: %v left in the directory", round, m)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIngestWritesParts: a batch of many keys is ingested as several
// tables, in one ingestion.
func TestIngestWritesParts(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	defer pebblestore.SetIngestPartMin(100)()
	s, err := pebblestore.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b store.Batch
	for i := range 1000 {
		b.Set(fmt.Appendf(nil, "k%04d", i), []byte("v"))
	}
	if err := s.Ingest(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	m := s.Metrics()
	var tables uint64
	for _, l := range m.Levels {
		tables += l.TablesIngested
	}
	if m.Ingest.Count != 1 || tables != 4 {
		t.Fatalf("%d ingestions of %d tables, want 1 of 4", m.Ingest.Count, tables)
	}
}
