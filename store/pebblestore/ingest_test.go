package pebblestore_test

import (
	"context"
	"os"
	"path/filepath"
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
