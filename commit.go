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
// Counter merges into one key are summed within a group: the group batch
// carries one merge per counter key, not one per member (every track in a
// group adds one to the same version counter, and Pebble keeps each
// operand until a flush, for every read of the counter to fold). Another
// operation on the key in the group ends its sum (the merge of the sum goes
// before it), so that the group applies as its members' operations in
// order would. A lone write is written as it is.
//
// A write that creates a key (writeNew: a track writes a new message's
// meta) is only made if the key is absent. In a group, the writer looks up
// every such key of the group with one store Get before the write, where
// each caller made its own point lookup before: a quarter of the CPU of 64
// concurrent TrackMessage callers went to those lookups. A member whose
// key is present writes nothing, and is told so.
//
// Unsynced writes (WithSyncWrites(false)) go straight to the store: they
// wait for no disk, so there is nothing to share.
type committer struct {
	st store.Store

	mu      sync.Mutex
	busy    bool                   // a synced write is in flight
	pending *commitGroup           // the group that the next synced write carries
	spare   store.Batch            // a written group's batch, emptied, for the next group
	sums    map[string]*counterSum // a written group's sums, emptied, for the next group
}

// commitGroup is the operations of the callers that joined while a write
// was in flight.
type commitGroup struct {
	b       store.Batch
	sums    map[string]*counterSum // the group's counter merges, by key
	members int
	news    []*newWrite   // the writeNew members, added to b by the writer
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
	g := c.pendingGroup()
	g.add(b)
	g.members++
	c.mu.Unlock()
	select {
	case <-g.done:
		return g.err
	case <-g.turn:
		return c.writeGroup(ctx, g, opts)
	}
}

// pendingGroup returns the group the next synced write carries, starting
// it with the last written group's memory if there is none. The caller
// holds c.mu.
func (c *committer) pendingGroup() *commitGroup {
	if c.pending == nil {
		c.pending = &commitGroup{b: c.spare, sums: c.sums, turn: make(chan struct{}, 1), done: make(chan struct{})}
		c.spare, c.sums = store.Batch{}, nil
	}
	return c.pending
}

// writeGroup writes group g, for the member that got its turn: the
// writeNew members whose keys are absent join the batch, and the batch is
// written.
func (c *committer) writeGroup(ctx context.Context, g *commitGroup, opts store.WriteOptions) error {
	g.err = errCommitAborted // what the members get if the write panics
	defer c.finish(g)
	ctx = context.WithoutCancel(ctx)
	if len(g.news) > 0 {
		keys := make([][]byte, len(g.news))
		for i, n := range g.news {
			keys[i] = n.key
		}
		vals, err := c.st.Get(ctx, keys)
		if err != nil {
			g.err = err
			return err
		}
		for i, n := range g.news {
			if n.present = vals[i] != nil; !n.present {
				g.add(n.b)
			}
		}
	}
	g.sealSums()
	if g.b.Len() == 0 {
		g.err = nil // every member's key was present: nothing to write
		return nil
	}
	g.err = c.st.Write(ctx, &g.b, opts)
	return g.err
}

// newWrite is a writeNew member of a group.
type newWrite struct {
	b       *store.Batch
	key     []byte
	present bool // set by the writer: key was present, b not written
}

// writeNew is write for a batch b that creates key: b is written only if
// key is absent then. It reports whether key was present (and nothing
// written). A lone caller looks key up itself; in a group the writer looks
// up every member's key with one Get (see committer). The caller must keep
// any other write of key from running meanwhile (trackMessage holds the
// message's lock).
func (c *committer) writeNew(ctx context.Context, b *store.Batch, opts store.WriteOptions, key []byte) (present bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if opts.Sync {
		c.mu.Lock()
		if c.busy {
			g := c.pendingGroup()
			n := &newWrite{b: b, key: key}
			g.news = append(g.news, n)
			g.members++
			c.mu.Unlock()
			select {
			case <-g.done:
			case <-g.turn:
				c.writeGroup(ctx, g, opts)
			}
			if n.present {
				return true, nil
			}
			return false, g.err
		}
		c.mu.Unlock()
	}
	vals, err := c.st.Get(ctx, [][]byte{key})
	if err != nil || vals[0] != nil {
		return err == nil, err
	}
	return false, c.write(ctx, b, opts)
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
	clear(g.sums)
	c.mu.Lock()
	c.spare, c.sums = g.b, g.sums
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

// counterSum is the summed counter merges of one key in a group.
type counterSum struct {
	key   []byte
	delta int64
}

// add adds b's operations to the group's batch, in order, except that
// counter merges are summed per key: the merge of a sum goes into the
// batch when an operation on its key ends it, or when the group is sealed
// (sealSums). Moving a merge past operations on other keys changes
// nothing: a group is written as one batch. The batch keeps b's slices.
func (g *commitGroup) add(b *store.Batch) {
	for _, op := range b.Ops() {
		switch op.Kind {
		case store.OpSet:
			g.endSum(op.Key)
			g.b.Set(op.Key, op.Value)
		case store.OpDelete:
			g.endSum(op.Key)
			g.b.Delete(op.Key)
		case store.OpDeleteRange:
			g.endSums(op.Key, op.Value)
			g.b.DeleteRange(op.Key, op.Value)
		case store.OpMerge:
			delta, ok := counterDelta(op.Value)
			if !ok {
				g.endSum(op.Key)
				g.b.Merge(op.Key, op.Value)
				continue
			}
			if cs := g.sums[string(op.Key)]; cs != nil {
				cs.delta += delta
				continue
			}
			if g.sums == nil {
				g.sums = make(map[string]*counterSum)
			}
			g.sums[string(op.Key)] = &counterSum{key: op.Key, delta: delta}
		}
	}
}

// endSum puts the merge of key's sum, if there is one, into the batch: a
// later counter merge into key starts a new sum.
func (g *commitGroup) endSum(key []byte) {
	if len(g.sums) == 0 {
		return
	}
	if cs := g.sums[string(key)]; cs != nil {
		g.b.Merge(cs.key, store.EncodeCounter(cs.delta))
		delete(g.sums, string(key))
	}
}

// endSums ends the sums of the keys in [start, end).
func (g *commitGroup) endSums(start, end []byte) {
	for k, cs := range g.sums {
		if k >= string(start) && k < string(end) {
			g.b.Merge(cs.key, store.EncodeCounter(cs.delta))
			delete(g.sums, k)
		}
	}
}

// sealSums ends every sum: the batch is then the group's whole write.
func (g *commitGroup) sealSums() {
	for k, cs := range g.sums {
		g.b.Merge(cs.key, store.EncodeCounter(cs.delta))
		delete(g.sums, k)
	}
}

// counterDelta returns the delta of a counter merge operand, and whether v
// is one.
func counterDelta(v []byte) (int64, bool) {
	if v == nil {
		return 0, false
	}
	n, err := store.DecodeCounter(v)
	return n, err == nil
}
