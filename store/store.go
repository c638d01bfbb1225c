// Package store defines the storage interface behind the readreceipt engine
// and the value semantics every backend must share.
//
// A Store is an ordered key-value map with batched, atomic writes. The engine
// encodes all of its state (groups, membership snapshots, messages, readers)
// into keys and values; a backend only has to keep bytes in order, apply a
// batch all-or-nothing, and fold merge operands with [Fold]. That keeps the
// interface small enough to put on an embedded engine (Pebble, the default,
// in store/pebblestore), on a map in memory (store/memstore, for tests and
// ephemeral use) or, later, on a distributed database.
//
// Every backend is held to the same contract by the conformance suite in
// store/storetest: a backend's test file calls storetest.Run.
package store

import (
	"context"
	"errors"
	"slices"
)

// ErrClosed is returned by every method of a Store after Close.
var ErrClosed = errors.New("store: closed")

// Store is an ordered map from byte-string keys to byte-string values.
//
// Keys are compared bytewise (bytes.Compare). Values written with Batch.Set
// are opaque; values written with Batch.Merge follow the merge semantics of
// this package (see Fold).
//
// All methods are safe for concurrent use by multiple goroutines. Each method
// honours ctx: if ctx is done before the work starts, the method returns
// ctx.Err() and has no effect. A Write that has started either applies the
// whole batch or none of it.
type Store interface {
	// Get returns one value for each key, in the order of keys. A key that is
	// not present yields a nil entry (not an error); a key that is present
	// with an empty value yields a non-nil, zero-length entry. Keys written
	// with Merge read as the folded value. The returned slices belong to the
	// caller, who may keep and modify them. The keys slice is not retained.
	// Each value reflects whole batches only; a Get of several keys may see
	// them at slightly different instants while writes run concurrently.
	Get(ctx context.Context, keys [][]byte) ([][]byte, error)

	// Scan calls fn for every key k with start <= k < end, in ascending key
	// order, until fn returns false. A nil end means no upper bound. The key
	// and value passed to fn belong to the store and are only valid during
	// that call: fn must not modify them and must copy what it keeps. Scan observes one consistent view of the store: writes
	// that complete while it runs may or may not be seen, but no write is
	// seen in part. fn may call Get and Scan on the same store; it must not
	// call Write or Close.
	Scan(ctx context.Context, start, end []byte, fn func(key, value []byte) bool) error

	// Write applies every operation of b atomically, in order: either all of
	// them become visible or none do. When opts.Sync is set, Write returns only
	// after the batch is durable, that is, it survives a crash of the process
	// and of the machine; concurrent synced writes may share one sync (group
	// commit). Without Sync, a batch may be lost in a machine crash, but never
	// partially applied. Write does not retain b after it returns. An empty
	// batch is a no-op.
	Write(ctx context.Context, b *Batch, opts WriteOptions) error

	// Close releases the store. Calls made after Close return ErrClosed.
	// Close is idempotent.
	Close() error
}

// Ingester is a Store that can also apply a large batch of Sets and
// Deletes without passing it through a write-ahead log, so that writes
// running at the same time do not queue behind it: Pebble writes the
// batch as a table of its own and adds it to the tree (ingestion), where
// Write would copy it into the log, sync it and then flush it through the
// memtables. The engine uses it for membership changes of many members.
type Ingester interface {
	Store
	// Ingest applies every operation of b atomically, like Write with
	// Sync: it returns once the batch is durable, and either all of it
	// becomes visible or none does. b may hold only OpSet and OpDelete
	// operations; where it holds several for one key, the last one wins,
	// as with Write. Any other kind of operation is an error and nothing
	// is applied. An empty batch is a no-op.
	Ingest(ctx context.Context, b *Batch) error
}

// WriteOptions controls a single Write.
type WriteOptions struct {
	// Sync makes Write wait until the batch is durable.
	Sync bool
}

// OpKind says what a batch operation does.
type OpKind uint8

// The operations a Batch can hold.
const (
	// OpSet stores Value at Key, replacing any previous value.
	OpSet OpKind = iota + 1
	// OpDelete removes Key. Deleting a missing key is not an error.
	OpDelete
	// OpDeleteRange removes every key k with Key <= k < Value. Unlike
	// Scan's end, a nil Value is the empty key, so the range is empty.
	OpDeleteRange
	// OpMerge folds Value into the value at Key (see Fold). If Key is
	// missing, Value becomes its value (folded on its own). A malformed
	// operand, or operands that cannot be folded together (different
	// kinds, or a merge into a value written with Set), is reported with an
	// error wrapping ErrBadMerge: either by Write, which then applies
	// nothing of the batch, or, for backends that fold lazily, by every
	// read of that key until it is Set or Deleted. Other keys are never
	// affected.
	OpMerge
)

// Op is one operation of a Batch.
type Op struct {
	Kind OpKind
	// Key is the key, or the inclusive start of an OpDeleteRange.
	Key []byte
	// Value is the value, the merge operand, or the exclusive end of an
	// OpDeleteRange.
	Value []byte
}

// Batch is an ordered list of operations applied together by Store.Write.
// Operations apply in the order they were added: a Set after a DeleteRange
// that covers its key survives; a Merge after a Delete starts afresh.
//
// A Batch keeps the slices it is given, without copying them: the caller
// must not modify them until Write has returned. A Batch is not safe for
// concurrent use.
type Batch struct {
	ops   []Op
	bytes int
}

// Set adds an operation that stores value at key.
func (b *Batch) Set(key, value []byte) { b.add(Op{Kind: OpSet, Key: key, Value: value}) }

// Delete adds an operation that removes key.
func (b *Batch) Delete(key []byte) { b.add(Op{Kind: OpDelete, Key: key}) }

// DeleteRange adds an operation that removes every key in [start, end).
func (b *Batch) DeleteRange(start, end []byte) {
	b.add(Op{Kind: OpDeleteRange, Key: start, Value: end})
}

// Merge adds an operation that folds operand into the value at key.
func (b *Batch) Merge(key, operand []byte) { b.add(Op{Kind: OpMerge, Key: key, Value: operand}) }

func (b *Batch) add(op Op) {
	b.ops = append(b.ops, op)
	b.bytes += len(op.Key) + len(op.Value)
}

// Grow makes room for n more operations, so that a caller who knows how
// many it will add (a million-member group's 65,536 buckets) does not
// copy the list as it grows.
func (b *Batch) Grow(n int) { b.ops = slices.Grow(b.ops, n) }

// Ops returns the operations in the order they were added. The slice is
// the batch's own; callers must not modify it.
func (b *Batch) Ops() []Op { return b.ops }

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Size returns the total length of all keys and values in the batch.
func (b *Batch) Size() int { return b.bytes }

// Reset empties the batch so that it can be reused.
func (b *Batch) Reset() {
	clear(b.ops)
	b.ops = b.ops[:0]
	b.bytes = 0
}
