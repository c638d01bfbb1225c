package readreceipt

import (
	"context"
	"errors"
	"sync"

	"github.com/readreceipt/readreceipt/store"
)

// committer writes synced batches for many goroutines at once: group
// commit. A caller that finds no synced write in flight writes its own
// batch, as if there were no committer (no copy, no hand-off: a lone
// caller pays one store write). A caller that finds one in flight adds
// its batch's operations to the pending group and waits; when the write in
// flight returns, one member of the pending group writes the whole group
// in one store write, and every member returns that write's result. So
// concurrent callers share one fsync per group instead of paying one each,
// and a call returns only once its own operations are durable, never on
// the strength of someone else's write.
//
// The operations of different callers must be independent (no two touch
// the same key: the engine's locks see to that) and each caller's batch
// valid on its own: a group is one store write, and it succeeds or fails
// as a whole, for all its members. A member's operations stay in its
// group's order, and a group is written after the write that was in flight
// when it formed.
//
// Unsynced writes (WithSyncWrites(false)) go straight to the store: they
// wait for no disk, so there is nothing to share.
type committer struct {
	st store.Store

	mu      sync.Mutex
	busy    bool         // a synced write is in flight
	pending *commitGroup // the group that the next synced write carries
	spare   store.Batch  // a written group's batch, emptied, for the next group
}

// commitGroup is the operations of the callers that joined while a write
// was in flight.
type commitGroup struct {
	b       store.Batch
	members int
	turn    chan struct{} // sent once: the receiving member writes the group
	done    chan struct{} // closed once the group's write returned
	err     error         // the write's result, set before done closes
}

func newCommitter(st store.Store) *committer { return &committer{st: st} }

// write writes b with opts, sharing a synced write with concurrent
// callers, and returns once b's operations are written (and, with
// opts.Sync, durable) or the write failed. The caller must not modify b,
// or the slices it holds, until write returns. ctx is checked before b
// joins a group; once it has joined, the call waits for the group's write,
// whose outcome cancellation can no longer change.
func (c *committer) write(ctx context.Context, b *store.Batch, opts store.WriteOptions) error {
	if !opts.Sync || b.Len() == 0 {
		return c.st.Write(ctx, b, opts)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if !c.busy {
		c.busy = true
		c.mu.Unlock()
		// Deferred, so that a write that panics (the caller may recover,
		// as net/http does) does not leave the committer busy forever.
		defer c.handOff()
		return c.st.Write(ctx, b, opts)
	}
	g := c.pending
	if g == nil {
		g = &commitGroup{b: c.spare, turn: make(chan struct{}, 1), done: make(chan struct{})}
		c.spare = store.Batch{}
		c.pending = g
	}
	appendOps(&g.b, b)
	g.members++
	c.mu.Unlock()
	select {
	case <-g.done:
		return g.err
	case <-g.turn:
		g.err = errCommitAborted // what the members get if the write panics
		defer c.finish(g)
		g.err = c.st.Write(context.WithoutCancel(ctx), &g.b, opts)
		return g.err
	}
}

// errCommitAborted is what the members of a group get when the write of
// their group panicked.
var errCommitAborted = errors.New("the shared write panicked")

// finish is called by the member that wrote g, once the write returned:
// the next group goes on, and g's members return g.err.
func (c *committer) finish(g *commitGroup) {
	// The store has done with the batch, and no member touches it after
	// joining: keep its memory for a later group.
	g.b.Reset()
	c.mu.Lock()
	c.spare = g.b
	c.mu.Unlock()
	c.handOff()
	close(g.done)
}

// handOff is called when a synced write returned: the pending group, if
// any, is written next, by one of its members; otherwise the committer is
// idle.
func (c *committer) handOff() {
	c.mu.Lock()
	g := c.pending
	c.pending = nil
	if g == nil {
		c.busy = false
	}
	c.mu.Unlock()
	if g != nil {
		g.turn <- struct{}{}
	}
}

// appendOps adds b's operations to dst, in order. dst keeps b's slices.
func appendOps(dst, b *store.Batch) {
	for _, op := range b.Ops() {
		switch op.Kind {
		case store.OpSet:
			dst.Set(op.Key, op.Value)
		case store.OpDelete:
			dst.Delete(op.Key)
		case store.OpDeleteRange:
			dst.DeleteRange(op.Key, op.Value)
		case store.OpMerge:
			dst.Merge(op.Key, op.Value)
		}
	}
}
