package compare

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store/pebblestore"
)

// Engine is the readreceipt engine on its default Pebble store, opened as
// readreceipt.OpenDir opens it (pebblestore.Open(dir, nil), then
// readreceipt.Open), with sync writes on unless SetSync turns them off.
// Queries are made as an administrator, who may read every message.
type Engine struct {
	engineOps
	dir  string
	opts []rr.Option
	sync bool

	mu sync.RWMutex // guards e and st against Reopen
	e  *rr.Engine
	st *pebblestore.Store
}

var (
	_ System    = (*Engine)(nil)
	_ Notifier  = (*Engine)(nil)
	_ Footprint = (*Engine)(nil)
	_ Reopener  = (*Engine)(nil)
	_ Syncer    = (*Engine)(nil)
	_ Deleter   = (*Engine)(nil)
)

// NewEngine opens the engine in dir with sync writes on; opts are added to
// the engine's options.
func NewEngine(dir string, opts ...rr.Option) (*Engine, error) {
	s := &Engine{dir: dir, opts: opts, sync: true}
	s.engineOps = engineOps{get: s.engine}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Engine) open() error {
	st, err := pebblestore.Open(s.dir, nil)
	if err != nil {
		return err
	}
	opts := append([]rr.Option{rr.WithSyncWrites(s.sync)}, s.opts...)
	e, err := rr.Open(st, opts...)
	if err != nil {
		st.Close()
		return err
	}
	s.e, s.st = e, st
	return nil
}

func (s *Engine) closeLocked() error {
	err := s.e.Close()
	if err2 := s.st.Close(); err == nil {
		err = err2
	}
	return err
}

// Name implements System.
func (s *Engine) Name() string { return "engine" }

func (s *Engine) engine() *rr.Engine {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.e
}

// Footprint implements Footprint: disk is the data at rest, the directory
// after the engine settled (Settle: its receipt log folded into the
// per-message keys), a flush and a full compaction, once Pebble has deleted
// the tables the compaction made obsolete (it deletes them in the
// background, paced: a large compaction's inputs can stay on disk for
// seconds, and counting them made the figure depend on timing); memory is
// the Go heap (after a GC) plus Pebble's block cache, which Pebble
// allocates outside the Go heap. (The memtables are empty after the flush;
// their arenas are not counted.)
func (s *Engine) Footprint(ctx context.Context) (int64, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.e.Settle(ctx); err != nil {
		return 0, 0, err
	}
	if err := s.st.Flush(); err != nil {
		return 0, 0, err
	}
	if err := s.st.Compact(ctx, nil, nil); err != nil {
		return 0, 0, err
	}
	obsolete, err := s.awaitObsoleteDeleted(ctx)
	if err != nil {
		return 0, 0, err
	}
	disk, err := dirSize(s.dir)
	if err != nil {
		return 0, 0, err
	}
	m := s.st.Metrics()
	return disk - obsolete, goHeap() + m.BlockCache.Size, nil
}

// Settle folds the engine's receipt log into its per-message keys (see
// quiesceShared).
func (s *Engine) Settle(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.e.Settle(ctx)
}

// awaitObsoleteDeleted waits, up to obsoleteWait, until Pebble holds no
// obsolete or zombie table, and returns the bytes of those still left then
// (which the caller does not count).
func (s *Engine) awaitObsoleteDeleted(ctx context.Context) (int64, error) {
	deadline := time.Now().Add(obsoleteWait)
	for {
		m := s.st.Metrics()
		left := int64(m.Table.ObsoleteSize + m.Table.ZombieSize)
		if left == 0 || time.Now().After(deadline) {
			return left, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// obsoleteWait bounds awaitObsoleteDeleted: a hang guard, not a timing.
const obsoleteWait = 60 * time.Second

// goHeap is the live Go heap. It collects twice: objects in sync.Pools
// (a receipt call's scratch, of every earlier workload too) survive one
// collection, in the pools' victim caches, and go with the second.
func goHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// Stop implements Reopener.
func (s *Engine) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

// Start implements Reopener.
func (s *Engine) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open()
}

// SetSync implements Syncer by reopening the engine with WithSyncWrites(on).
func (s *Engine) SetSync(_ context.Context, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sync == on {
		return nil
	}
	if err := s.closeLocked(); err != nil {
		return err
	}
	s.sync = on
	if err := s.open(); err != nil {
		return fmt.Errorf("compare: reopening the engine: %w", err)
	}
	return nil
}

// Close implements System.
func (s *Engine) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}
