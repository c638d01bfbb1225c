package compare

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store/pebblestore"
)

// Engine is the readreceipt engine on its default Pebble store, opened as
// readreceipt.OpenDir opens it (pebblestore.Open(dir, nil), then
// readreceipt.Open), with sync writes on unless SetSync turns them off.
// Queries are made as an administrator, who may read every message.
type Engine struct {
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

// CreateGroup implements System.
func (s *Engine) CreateGroup(ctx context.Context, gid string, members []string) error {
	return s.engine().CreateGroup(ctx, gid, rr.GroupWork, members)
}

// AddMembers implements System.
func (s *Engine) AddMembers(ctx context.Context, gid string, members []string) error {
	return s.engine().AddGroupMembers(ctx, gid, members)
}

// RemoveMembers implements System.
func (s *Engine) RemoveMembers(ctx context.Context, gid string, members []string) error {
	return s.engine().RemoveGroupMembers(ctx, gid, members)
}

// Track implements System.
func (s *Engine) Track(ctx context.Context, gid, msgID, sender string) error {
	return s.engine().TrackMessage(ctx, rr.Message{Conversation: rr.Group(gid), ID: msgID, Sender: sender})
}

func refs(gid string, msgIDs []string) []rr.MessageRef {
	c := rr.Group(gid)
	out := make([]rr.MessageRef, len(msgIDs))
	for i, id := range msgIDs {
		out[i] = rr.MessageRef{Conversation: c, ID: id}
	}
	return out
}

// Receipts implements System.
func (s *Engine) Receipts(ctx context.Context, gid, reader string, msgIDs []string) (int, error) {
	res, err := s.engine().SendMessageReadReceipt(ctx, reader, refs(gid, msgIDs))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range res {
		if r.Recorded {
			n++
		}
	}
	return n, nil
}

// Counts implements System.
func (s *Engine) Counts(ctx context.Context, gid string, msgIDs []string) ([]Count, error) {
	infos, err := s.engine().GetMessageReadReceiptList(ctx, rr.AsAdmin(), refs(gid, msgIDs))
	if err != nil {
		return nil, err
	}
	out := make([]Count, len(infos))
	for i, in := range infos {
		if in.Err == nil {
			out[i] = Count{Found: true, Read: in.ReadCount, Unread: in.UnreadCount}
		}
	}
	return out, nil
}

// Page implements System.
func (s *Engine) Page(ctx context.Context, gid, msgID string, unread bool, cursor string, n int) ([]string, string, bool, error) {
	f := rr.FilterRead
	if unread {
		f = rr.FilterUnread
	}
	p, err := s.engine().GetGroupMessageReadMemberList(ctx, rr.AsAdmin(), rr.MemberListRequest{
		Message: rr.MessageRef{Conversation: rr.Group(gid), ID: msgID},
		Filter:  f, Cursor: cursor, Count: n,
	})
	if err != nil {
		return nil, "", false, err
	}
	users := p.ReadUserIDList
	if unread {
		users = p.UnreadUserIDList
	}
	return users, p.Cursor, p.IsCompleted, nil
}

// Subscribe implements Notifier with Engine.Subscribe.
func (s *Engine) Subscribe(_ context.Context, gid string, fn func(Event)) (func(), error) {
	return s.engine().Subscribe(func(evs []rr.ReceiptEvent) {
		for _, ev := range evs {
			if ev.GroupID == gid {
				fn(Event{MsgID: ev.MessageID, Reader: ev.Reader, Read: ev.ReadCount, Unread: ev.UnreadCount})
			}
		}
	}), nil
}

// Delete implements Deleter.
func (s *Engine) Delete(ctx context.Context, gid string, msgIDs []string) error {
	for _, r := range refs(gid, msgIDs) {
		if err := s.engine().DeleteMessage(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Footprint implements Footprint: disk is the directory after a flush and a
// full compaction; memory is the Go heap (after a GC) plus Pebble's block
// cache, which Pebble allocates outside the Go heap. (The memtables are empty
// after the flush; their arenas are not counted.)
func (s *Engine) Footprint(ctx context.Context) (int64, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.st.Flush(); err != nil {
		return 0, 0, err
	}
	if err := s.st.Compact(ctx, nil, nil); err != nil {
		return 0, 0, err
	}
	disk, err := dirSize(s.dir)
	if err != nil {
		return 0, 0, err
	}
	m := s.st.Metrics()
	return disk, goHeap() + m.BlockCache.Size, nil
}

func goHeap() int64 {
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
