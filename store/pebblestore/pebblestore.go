// Package pebblestore is the default [store.Store]: a Pebble database
// (github.com/cockroachdb/pebble/v2) in one directory.
//
// Merges are folded lazily by a Pebble merge operator named [MergerName],
// which folds with [store.Folder]: when a key is read and when Pebble flushes
// or compacts it. Write rejects a malformed merge operand with an error
// wrapping [store.ErrBadMerge] and applies nothing of its batch. Operands of
// different kinds on one key (or a merge into a key that holds an opaque
// value) cannot be seen at Write time without a read; Write accepts them, and
// from then on until the key is Set or Deleted, Get and Scan report the key
// with an error wrapping [store.ErrBadMerge]. Such a key never makes
// Pebble's background work fail.
//
// A synced Write ([store.WriteOptions].Sync) returns once its batch is in
// the write-ahead log and the log is fsynced. Pebble's commit pipeline
// shares one fsync among all the synced writes that are waiting for it
// (group commit), so many concurrent synced writers cost far less than one
// fsync each. An unsynced Write may be lost in a crash of the machine, or
// of the process (Pebble writes the log out from memory in the background),
// but is never applied in part, and Close loses nothing.
//
// Besides [store.Store], a [Store] offers a few extras for operators and
// tests: [Store.Flush], [Store.Compact] and [Store.Metrics].
package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/readreceipt/readreceipt/store"
)

// Defaults of [Options].
const (
	// DefaultCacheSize is the default size of the block cache, in bytes.
	DefaultCacheSize = 64 << 20
	// DefaultMemTableSize is the default size of one memtable, in bytes.
	DefaultMemTableSize = 16 << 20
	// BlockSize is the size Open gives the tables' data blocks (before
	// compression), instead of Pebble's 4 KiB.
	BlockSize = 16 << 10
)

// scanCheckEvery is how many keys Scan visits between two checks of its
// context.
const scanCheckEvery = 256

// Options configures [Open]. The zero value (or a nil *Options) gives the
// defaults documented on each field.
type Options struct {
	// CacheSize is the size in bytes of Pebble's block cache, which holds
	// uncompressed blocks of the on-disk tables. Zero means
	// DefaultCacheSize (64 MiB).
	CacheSize int64

	// MemTableSize is the largest size in bytes of a memtable, the
	// in-memory buffer of recent writes that Pebble flushes to disk when it
	// is full (Pebble starts small and doubles up to this size). Writes
	// stall while two full memtables wait to be flushed, so memory use can
	// reach about twice this. Larger memtables mean fewer, larger flushes
	// when loading a lot of data. Zero means DefaultMemTableSize (16 MiB).
	MemTableSize uint64

	// Logger receives Pebble's log messages. Nil means a quiet logger:
	// informational messages are dropped; errors go to the standard
	// library's log (stderr by default); a fatal message is logged and then
	// exits the process, as Pebble's DefaultLogger does (Pebble calls Fatalf
	// only for states it cannot continue from, such as detected on-disk
	// corruption). Set it to pebble.DefaultLogger to see everything.
	Logger pebble.Logger

	// FS is the file system holding the database. Nil means the operating
	// system's (vfs.Default). Tests may pass vfs.NewMem() for a database
	// that lives in memory.
	FS vfs.FS

	// Tune, if not nil, is called with the Pebble options that Open is
	// about to use, after the fields above are applied, to change anything
	// else (compaction concurrency, L0 thresholds, ...). It must not change
	// Merger or Comparer; Open puts back its own merger and the default
	// bytewise comparer after Tune returns.
	Tune func(*pebble.Options)
}

// Store is a [store.Store] on a Pebble database. All methods are safe for
// concurrent use, including with Close.
type Store struct {
	db   *pebble.DB
	dir  string
	opts *pebble.Options // as Open gave them to Pebble: Ingest writes tables with them
	// ingestSeq names Ingest's temporary tables (ingestPrefix).
	ingestSeq atomic.Uint64

	// mu guards closed. Every method registers in inflight while holding
	// mu for reading, and Close waits for inflight after setting closed,
	// so the database is closed only once no call is using it. A call in
	// flight does not hold mu, so fn of a Scan may call Get or Scan while
	// Close is waiting: they return store.ErrClosed.
	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	// done is closed, and closeErr set, once the database is closed.
	done     chan struct{}
	closeErr error
}

var _ store.Ingester = (*Store)(nil)

// Open opens the database in dir, creating it if it does not exist. opts
// may be nil.
func Open(dir string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	po := &pebble.Options{
		CacheSize:          o.CacheSize,
		MemTableSize:       o.MemTableSize,
		Logger:             o.Logger,
		FS:                 o.FS,
		FormatMajorVersion: pebble.FormatNewest,
	}
	if po.FS == nil {
		po.FS = vfs.Default
	}
	po.FS = markerSyncFS{po.FS}
	if po.CacheSize <= 0 {
		po.CacheSize = DefaultCacheSize
	}
	if po.MemTableSize == 0 {
		po.MemTableSize = DefaultMemTableSize
	}
	if po.Logger == nil {
		po.Logger = quietLogger{}
	}
	// Bloom filters on every level: the engine looks up keys that are not
	// there on every new message (is it tracked already?), and a filter
	// answers that for a table without reading its index and data blocks.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// The data at rest: after compaction nearly every key is in the bottom
	// level, which zstd compresses (level 3; level 1 one level up) where
	// Pebble's default is snappy; the upper levels, which flushes write,
	// keep Pebble's fastest compression. Blocks of BlockSize compress
	// better than 4 KiB ones (the engine's keys share long prefixes, and
	// a block holds whole messages' keys). The block cache holds blocks
	// uncompressed, so reads of cached blocks cost the same. Measured with
	// bench/compare W4 (5,000 messages, 200 members, half read): 83.6
	// B/msg on disk with snappy and 4 KiB blocks, 67.0 with zstd, 63.9
	// with zstd and 16 KiB.
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionGood })
	for i := range po.Levels {
		po.Levels[i].BlockSize = BlockSize
	}
	if o.Tune != nil {
		o.Tune(po)
	}
	po.Merger = merger
	po.Comparer = nil // Pebble's default: bytewise.
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	if err := removeIngestLeftovers(po.FS, dir); err != nil {
		db.Close()
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	// Ingest's tables are written with the options Pebble gives its own
	// (Open fills in the defaults on a copy of po).
	wo := po.Clone()
	wo.EnsureDefaults()
	return &Store{db: db, dir: dir, opts: wo, done: make(chan struct{})}, nil
}

// enter registers a call, or fails with store.ErrClosed.
func (s *Store) enter() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

// leave ends a call registered by enter.
func (s *Store) leave() { s.inflight.Done() }

// Get implements [store.Store.Get]. A few keys are read with a Pebble
// point lookup each, so they may be read at slightly different instants;
// getIterMin keys or more with one iterator, which reads one view.
func (s *Store) Get(ctx context.Context, keys [][]byte) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if len(keys) >= getIterMin {
		return s.getIter(keys)
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		var err error
		if out[i], err = s.getPoint(k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// getPoint reads key k with a Pebble point lookup: a copy of its value,
// nil if it has none.
func (s *Store) getPoint(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get %q: %w", k, err)
	}
	c, perr := ownValue(k, v)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("pebblestore: get %q: %w", k, err)
	}
	return c, perr
}

// getIterMin is the fewest keys Get reads with one iterator. A point
// lookup builds an iterator stack over every memtable and every level
// whose tables' range holds the key (about 1 us for a key that is not
// there, on an idle store); one iterator positioned at each key in turn
// with SeekPrefixGE (the bloom filters still apply: the whole key is the
// prefix) builds the stack once, about 2.5 us, and then takes about
// 0.25 us a key.
const getIterMin = 4

// getIter is Get with one iterator, seeking to the keys in ascending order.
func (s *Store) getIter(keys [][]byte) ([][]byte, error) {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get: %w", err)
	}
	out := make([][]byte, len(keys))
	for _, i := range order {
		k := keys[i]
		if len(k) == 0 {
			// Pebble's invariant checks (race builds) index a sought
			// key's first byte: the empty key takes a point lookup.
			if out[i], err = s.getPoint(k); err != nil {
				return nil, errors.Join(err, it.Close())
			}
			continue
		}
		if !it.SeekPrefixGE(k) || !bytes.Equal(it.Key(), k) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, errors.Join(fmt.Errorf("pebblestore: get %q: %w", k, err), it.Close())
		}
		if out[i], err = ownValue(k, v); err != nil {
			return nil, errors.Join(err, it.Close())
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("pebblestore: get: %w", err)
	}
	return out, nil
}

// ownValue returns a copy of v, the value Pebble read for key k, or the
// error of a poison value (poisonError, as it is).
func ownValue(k, v []byte) ([]byte, error) {
	// make, not append to nil: an empty value must come back non-nil.
	c := make([]byte, len(v))
	copy(c, v)
	if isPoison(c) {
		return nil, poisonError(k, c)
	}
	return c, nil
}

// Scan implements [store.Store.Scan] with a Pebble iterator, which reads
// one point-in-time view of the database. Besides the checks the interface
// requires, Scan checks ctx every few hundred keys and stops with ctx.Err()
// once it is done. The key and value passed to fn may be Pebble's own
// memory: fn must not modify them.
func (s *Store) Scan(ctx context.Context, start, end []byte, fn func(key, value []byte) bool) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	if len(start) == 0 {
		// The empty key is the smallest; Pebble's race-build invariant
		// checks read key[0] of an empty non-nil lower bound.
		start = nil
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return fmt.Errorf("pebblestore: scan: %w", err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("pebblestore: scan: %w", cerr)
		}
	}()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
		if n%scanCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("pebblestore: scan at %q: %w", it.Key(), err)
		}
		if isPoison(v) {
			return poisonError(it.Key(), v)
		}
		if !fn(it.Key(), v) {
			return nil
		}
	}
	// Close (deferred) reports the iterator's error, if any.
	return nil
}

// Write implements [store.Store.Write]. The operations are copied into a
// Pebble batch, which is committed atomically. Every merge operand is
// checked first; a malformed one fails the Write, wrapping
// store.ErrBadMerge, before anything is committed.
func (s *Store) Write(ctx context.Context, b *store.Batch, opts store.WriteOptions) error {
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
	// Pebble's batch encoding adds a few bytes of header to every record.
	pb := s.db.NewBatchWithSize(b.Size() + 16*len(ops))
	defer pb.Close()
	for _, op := range ops {
		var err error
		switch op.Kind {
		case store.OpSet:
			err = pb.Set(op.Key, op.Value, nil)
		case store.OpDelete:
			err = pb.Delete(op.Key, nil)
		case store.OpDeleteRange:
			if bytes.Compare(op.Key, op.Value) >= 0 {
				continue // an empty range
			}
			err = pb.DeleteRange(op.Key, op.Value, nil)
		case store.OpMerge:
			if err = store.CheckOperand(op.Value); err != nil {
				return fmt.Errorf("pebblestore: merge into %q: %w", op.Key, err)
			}
			err = pb.Merge(op.Key, op.Value, nil)
		default:
			return fmt.Errorf("pebblestore: unknown batch operation %d", op.Kind)
		}
		if err != nil {
			return fmt.Errorf("pebblestore: write: %w", err)
		}
	}
	wo := pebble.NoSync
	if opts.Sync {
		wo = pebble.Sync
	}
	if err := pb.Commit(wo); err != nil {
		return fmt.Errorf("pebblestore: write: %w", err)
	}
	return nil
}

// Close implements [store.Store.Close]. It waits for the calls in flight to
// return, then closes the database; writes that Write has returned, synced
// or not, are not lost by closing. Once Close has started, every other
// method returns store.ErrClosed. Calling Close again waits for the first
// Close to finish and returns its result.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return s.closeErr
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	if err := s.db.Close(); err != nil {
		s.closeErr = fmt.Errorf("pebblestore: close: %w", err)
	}
	close(s.done)
	return s.closeErr
}

// Flush writes the memtables to on-disk tables and waits until that is
// done; afterwards, every write made so far is durable, synced or not. It
// is an extra beyond [store.Store]. It returns store.ErrClosed after Close.
func (s *Store) Flush() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Flush(); err != nil {
		return fmt.Errorf("pebblestore: flush: %w", err)
	}
	return nil
}

// Compact compacts the keys in [start, end), a nil end meaning no upper
// bound, down to the bottom level of the database, and waits until that is
// done. It folds pending merges and drops deleted data, so it reclaims disk
// space after large deletions (DeleteRange) sooner than Pebble's background
// compactions would. It is an extra beyond [store.Store]; it can take long
// on a large range, and Close waits for it.
func (s *Store) Compact(ctx context.Context, start, end []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if end == nil {
		// Pebble needs an upper bound: use one past the largest key of any
		// table, after flushing so that every key is in some table.
		if err := s.db.Flush(); err != nil {
			return fmt.Errorf("pebblestore: compact: %w", err)
		}
		levels, err := s.db.SSTables()
		if err != nil {
			return fmt.Errorf("pebblestore: compact: %w", err)
		}
		var largest []byte
		for _, level := range levels {
			for _, t := range level {
				if k := t.Largest.UserKey; largest == nil || bytes.Compare(k, largest) > 0 {
					largest = k
				}
			}
		}
		if largest == nil {
			return nil // no table: nothing to compact
		}
		end = append(bytes.Clone(largest), 0)
	}
	if bytes.Compare(start, end) >= 0 {
		return nil
	}
	if err := s.db.Compact(ctx, start, end, true); err != nil {
		return fmt.Errorf("pebblestore: compact: %w", err)
	}
	return nil
}

// Metrics returns Pebble's metrics (levels, compactions, cache hit rates,
// disk usage: see pebble.Metrics.DiskSpaceUsage), or nil after Close. It is
// an extra beyond [store.Store].
func (s *Store) Metrics() *pebble.Metrics {
	if s.enter() != nil {
		return nil
	}
	defer s.leave()
	return s.db.Metrics()
}

// quietLogger is the default pebble.Logger: it drops informational
// messages and passes errors and fatal messages to pebble.DefaultLogger.
type quietLogger struct{}

func (quietLogger) Infof(format string, args ...any) {}

func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}

func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
