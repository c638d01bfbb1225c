// Package memstore is an in-memory [store.Store], for tests and for
// ephemeral use.
//
// Keys live in a copy-on-write B-tree (github.com/google/btree), so a write
// costs O(log n) per key even with millions of keys, and a Scan reads an O(1)
// point-in-time clone of the tree: writes that complete while it runs are
// never seen, in whole or in part, and fn may call Get and Scan freely.
//
// Merge operands are folded eagerly, on Write, with [store.Folder]. A Write
// whose merges cannot be folded (operands of different kinds, a malformed
// operand, a merge into a key holding an opaque value) fails with an error
// wrapping [store.ErrBadMerge] and applies nothing of its batch; reads never
// fail for that reason.
//
// Nothing is ever durable: [store.WriteOptions].Sync is accepted and has no
// effect, and everything is lost when the Store is closed or the process
// ends.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/google/btree"

	"github.com/readreceipt/readreceipt/store"
)

// degree is the B-tree's minimum degree: nodes hold up to 2*degree-1 items.
const degree = 32

// scanCheckEvery is how many keys Scan visits between two checks of its
// context.
const scanCheckEvery = 256

// item is one key and its value. Both share one allocation that the item
// owns; key has its capacity clipped so that appending to it never writes
// over value.
type item struct {
	key, value []byte
}

func lessItem(a, b item) bool { return bytes.Compare(a.key, b.key) < 0 }

// newItem returns an item holding copies of key and value.
func newItem(key, value []byte) item {
	buf := make([]byte, len(key)+len(value))
	n := copy(buf, key)
	copy(buf[n:], value)
	return item{key: buf[:n:n], value: buf[n:]}
}

// Store is an in-memory [store.Store]. The zero value is not usable; call
// [New]. All methods are safe for concurrent use.
type Store struct {
	// mu guards tree and closed. Get holds it shared; Write holds it
	// exclusively; Scan holds it exclusively only while it clones the tree
	// (BTreeG.Clone updates the tree it clones).
	mu     sync.RWMutex
	tree   *btree.BTreeG[item]
	closed bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty, open Store.
func New() *Store {
	return &Store{tree: btree.NewG(degree, lessItem)}
}

// Len returns the number of keys in the store, or 0 once it is closed. It
// is O(1); tests use it to check that deletions reclaim keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0
	}
	return s.tree.Len()
}

// Get implements [store.Store.Get]. All keys are read at one instant.
func (s *Store) Get(ctx context.Context, keys [][]byte) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if it, ok := s.tree.Get(item{key: k}); ok {
			// make, not append to nil: an empty value must come back non-nil.
			v := make([]byte, len(it.value))
			copy(v, it.value)
			out[i] = v
		}
	}
	return out, nil
}

// Scan implements [store.Store.Scan] on a point-in-time clone of the tree.
// Besides the checks the interface requires, Scan checks ctx every few
// hundred keys and stops with ctx.Err() once it is done. The key and value
// passed to fn are the store's own memory: fn must not modify them.
func (s *Store) Scan(ctx context.Context, start, end []byte, fn func(key, value []byte) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	snap := s.tree.Clone()
	s.mu.Unlock()

	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	var err error
	n := 0
	visit := func(it item) bool {
		n++
		if n%scanCheckEvery == 0 {
			if err = ctx.Err(); err != nil {
				return false
			}
		}
		return fn(it.key, it.value)
	}
	if end == nil {
		snap.AscendGreaterOrEqual(item{key: start}, visit)
	} else {
		snap.AscendRange(item{key: start}, item{key: end}, visit)
	}
	return err
}

// Write implements [store.Store.Write]. opts.Sync has no effect: memory is
// never durable. Keys and values are copied; the store keeps no reference
// to b or to its slices.
func (s *Store) Write(ctx context.Context, b *store.Batch, opts store.WriteOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	ops := b.Ops()
	// Fold every merge first, without touching the tree, so that a bad
	// operand fails the whole batch before any of it is applied.
	merged, err := foldMerges(s.tree, ops)
	if err != nil {
		return err
	}
	for _, op := range ops {
		switch op.Kind {
		case store.OpSet:
			s.tree.ReplaceOrInsert(newItem(op.Key, op.Value))
		case store.OpDelete:
			s.tree.Delete(item{key: op.Key})
		case store.OpDeleteRange:
			deleteRange(s.tree, op.Key, op.Value)
		}
	}
	// A folded value that is still pending was computed after the last Set,
	// Delete or DeleteRange of its key in this batch, so it is the key's
	// final value and goes in last.
	for k, v := range merged {
		s.tree.ReplaceOrInsert(item{key: []byte(k), value: v})
	}
	return nil
}

// Close implements [store.Store.Close]. It drops every key; Scans already
// running finish on their clone.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.tree = nil
	return nil
}

// deleteRange removes every key in [start, end) from t.
func deleteRange(t *btree.BTreeG[item], start, end []byte) {
	if bytes.Compare(start, end) >= 0 {
		return
	}
	var doomed []item
	t.AscendRange(item{key: start}, item{key: end}, func(it item) bool {
		doomed = append(doomed, it)
		return true
	})
	for _, it := range doomed {
		t.Delete(it)
	}
}

// overlayEntry is what the ops of a batch seen so far did to one key.
type overlayEntry struct {
	value   []byte
	present bool
}

// foldMerges computes, without modifying t, the value that every key merged
// by ops ends up with, folding in order with the Sets, Deletes and
// DeleteRanges of the same batch. It returns the folded values of the keys
// whose last write in ops is a Merge, by key; these values are new
// allocations. It fails, wrapping store.ErrBadMerge, if a merge cannot be
// folded.
func foldMerges(t *btree.BTreeG[item], ops []store.Op) (map[string][]byte, error) {
	hasMerge := false
	for _, op := range ops {
		if op.Kind == store.OpMerge {
			hasMerge = true
			break
		}
	}
	if !hasMerge {
		return nil, nil
	}

	var (
		pending = map[string]*store.Folder{} // keys whose latest op is a Merge
		overlay = map[string]overlayEntry{}  // keys Set or Deleted by ops so far
		ranges  [][2][]byte                  // DeleteRanges seen so far
	)
	// current returns the value of key as of the ops seen so far, ignoring
	// pending merges.
	current := func(key []byte) ([]byte, bool) {
		if e, ok := overlay[string(key)]; ok {
			return e.value, e.present
		}
		for _, r := range ranges {
			if bytes.Compare(r[0], key) <= 0 && bytes.Compare(key, r[1]) < 0 {
				return nil, false
			}
		}
		if it, ok := t.Get(item{key: key}); ok {
			return it.value, true
		}
		return nil, false
	}
	for _, op := range ops {
		switch op.Kind {
		case store.OpSet:
			delete(pending, string(op.Key))
			overlay[string(op.Key)] = overlayEntry{value: op.Value, present: true}
		case store.OpDelete:
			delete(pending, string(op.Key))
			overlay[string(op.Key)] = overlayEntry{}
		case store.OpDeleteRange:
			start, end := op.Key, op.Value
			if bytes.Compare(start, end) >= 0 {
				continue
			}
			inRange := func(k string) bool { return k >= string(start) && k < string(end) }
			for k := range pending {
				if inRange(k) {
					delete(pending, k)
				}
			}
			for k := range overlay {
				if inRange(k) {
					overlay[k] = overlayEntry{}
				}
			}
			ranges = append(ranges, [2][]byte{start, end})
		case store.OpMerge:
			f := pending[string(op.Key)]
			if f == nil {
				f = new(store.Folder)
				if base, ok := current(op.Key); ok {
					if err := f.Add(base); err != nil {
						return nil, fmt.Errorf("memstore: merge into %q: %w", op.Key, err)
					}
				}
				pending[string(op.Key)] = f
			}
			if err := f.Add(op.Value); err != nil {
				return nil, fmt.Errorf("memstore: merge into %q: %w", op.Key, err)
			}
		default:
			return nil, fmt.Errorf("memstore: unknown batch operation %d", op.Kind)
		}
	}
	out := make(map[string][]byte, len(pending))
	for k, f := range pending {
		v, err := f.Value()
		if err != nil {
			return nil, fmt.Errorf("memstore: merge into %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}
