package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/readreceipt/readreceipt/internal/yield"
	"github.com/readreceipt/readreceipt/store"
)

// ingestPrefix starts the names of the tables Ingest writes before Pebble
// takes them in. Pebble links an ingested file under a name of its own,
// so the temporary one is removed right after; one left by a crash is
// removed by Open (Pebble ignores files whose names it does not know).
const ingestPrefix = "ingest-"

// Ingest implements [store.Ingester]. It sorts the batch's operations by
// key (the last one of a key wins), writes them as tables in the
// database's directory (a large batch as up to maxIngestParts tables of
// adjacent keys, written side by side), syncs them and has Pebble ingest
// them: the tables enter the tree with a sequence number above every
// write before it, in one atomic, synced edit of Pebble's manifest.
// Nothing goes through the write-ahead log or the memtables, so synced
// writes running at the same time wait at most for that manifest edit,
// not for the batch's bytes. Where a memtable holds keys a table overlaps,
// Pebble queues the tables behind it (or flushes it first); the result is
// the same as a Write.
func (s *Store) Ingest(ctx context.Context, b *store.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if b == nil || b.Len() == 0 {
		return nil
	}
	ops := b.Ops()
	for _, op := range ops {
		if op.Kind != store.OpSet && op.Kind != store.OpDelete {
			return fmt.Errorf("pebblestore: ingest: operation %d on %q: only sets and deletes can be ingested", op.Kind, op.Key)
		}
	}
	// Sort by key, keeping the order of a key's operations, and keep each
	// key's last: a table holds one entry per key.
	order := make([]int32, len(ops))
	for i := range order {
		order[i] = int32(i)
	}
	cmp := func(a, b int32) int { return bytes.Compare(ops[a].Key, ops[b].Key) }
	if !slices.IsSortedFunc(order, cmp) { // the engine's large batches come sorted
		slices.SortStableFunc(order, cmp)
	}

	// The table is cut into parts of adjacent keys, written side by side
	// (compression is most of a table's writing: a million-member group's
	// ~16 MB took ~100 ms on one core) and ingested together, in one
	// atomic edit.
	parts := min(runtime.GOMAXPROCS(0), maxIngestParts, max(1, len(order)/ingestPartMin))
	cuts := make([]int, 0, parts+1)
	cuts = append(cuts, 0)
	for p := 1; p < parts; p++ {
		c := max(len(order)*p/parts, cuts[len(cuts)-1])
		// A key's operations stay in one part, which keeps the last.
		for c < len(order) && c > 0 && bytes.Equal(ops[order[c-1]].Key, ops[order[c]].Key) {
			c++
		}
		if c > cuts[len(cuts)-1] && c < len(order) {
			cuts = append(cuts, c)
		}
	}
	cuts = append(cuts, len(order))
	names := make([]string, len(cuts)-1)
	errs := make([]error, len(names))
	for i := range names {
		names[i] = s.opts.FS.PathJoin(s.dir, fmt.Sprintf("%s%d.sst", ingestPrefix, s.ingestSeq.Add(1)))
	}
	defer func() {
		for _, n := range names {
			s.opts.FS.Remove(n) // Pebble has linked it, or the ingest failed
		}
	}()
	var wg sync.WaitGroup
	for i := 1; i < len(names); i++ {
		wg.Go(func() { errs[i] = s.writeTable(names[i], ops, order[cuts[i]:cuts[i+1]]) })
	}
	errs[0] = s.writeTable(names[0], ops, order[cuts[0]:cuts[1]])
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pebblestore: ingest: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.db.Ingest(ctx, names); err != nil {
		return fmt.Errorf("pebblestore: ingest: %w", err)
	}
	return nil
}

// maxIngestParts is the most tables one Ingest writes side by side, and
// ingestPartMin the fewest operations a part has. Tests lower it.
const maxIngestParts = 4

var ingestPartMin = 8192

// writeTable writes the operations order picks of ops, sorted by key, as
// the table name, synced; of a key's operations, the last is kept.
func (s *Store) writeTable(name string, ops []store.Op, order []int32) error {
	fs := s.opts.FS
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	// The table goes to disk as it is written, BytesPerSync at a time, as
	// Pebble's own tables do: written whole and synced at the end, its
	// megabytes would reach the disk in one burst, and every synced write
	// meanwhile (a receipt's log record) would wait behind that burst in
	// the disk's queue.
	f = vfs.NewSyncingFile(f, vfs.SyncingFileOptions{BytesPerSync: s.opts.BytesPerSync})
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), s.opts.MakeWriterOptions(0, s.db.TableFormat()))
	var y yield.Yielder
	for j, i := range order {
		y.Tick()
		if j+1 < len(order) && bytes.Equal(ops[i].Key, ops[order[j+1]].Key) {
			continue // a later operation of the same key wins
		}
		if ops[i].Kind == store.OpSet {
			err = w.Set(ops[i].Key, ops[i].Value)
		} else {
			err = w.Delete(ops[i].Key)
		}
		if err != nil {
			w.Close()
			return err
		}
	}
	// Close writes the table out and syncs it: Pebble ingests only synced
	// tables.
	return w.Close()
}

// removeIngestLeftovers removes the temporary tables of ingests that a
// crash interrupted.
func removeIngestLeftovers(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, ingestPrefix) {
			if err := fs.Remove(fs.PathJoin(dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}
