package readreceipt

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/readreceipt/readreceipt/store"
)

// Retention.
//
// Every tracked message has an expiry key ordered by tracking time. A
// message past retention answers ErrReceiptNotFound at once; the sweep
// deletes it later, a slice of keys at a time, so that it never holds a
// conversation's lock for long. Deleting group messages may leave membership
// chunks that no live message needs; the sweep drops those too. A message's
// order keys (embedded_order.go) go in the batch that deletes it
// (deleteMessages); until then, scanOrder skips an expired message as
// every other call does.

// sweepSlice is how many expiry keys one sweep step handles.
const sweepSlice = 256

func (e *Engine) sweepLoop() {
	defer close(e.sweepDone)
	t := time.NewTicker(e.cfg.sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stopSweep:
			return
		case <-t.C:
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-e.stopSweep:
					cancel()
				case <-ctx.Done():
				}
			}()
			_, _ = e.Sweep(ctx)
			cancel()
		}
	}
}

// Sweep deletes the receipt state of every message past retention and
// reclaims membership snapshots no live message needs. It returns how many
// messages it deleted. The engine runs it every WithSweepInterval; a host
// that disabled that calls it itself. Sweep is safe to run concurrently with
// every other call.
func (e *Engine) Sweep(ctx context.Context) (int, error) {
	if err := e.enter(); err != nil {
		return 0, err
	}
	defer e.leave()
	return e.be.sweep(ctx)
}

func (e *embedded) sweep(ctx context.Context) (int, error) {
	deleted := 0
	if e.cfg.retention > 0 {
		cutoff := e.now() - int64(e.cfg.retention) // tracked at or before: expired
		end := appendU64([]byte{prefixTime}, uint64(cutoff)+1)
		if cutoff < 0 {
			end = []byte{prefixTime}
		}
		start := []byte{prefixTime}
		for {
			n, next, err := e.sweepStep(ctx, start, end)
			deleted += n
			if err != nil {
				return deleted, err
			}
			if next == nil {
				break
			}
			start = next
		}
	}
	return deleted, e.collectGarbage(ctx)
}

// sweepStep deletes the expired messages of up to sweepSlice expiry keys
// from start on, and returns where the next step starts (nil when done).
func (e *embedded) sweepStep(ctx context.Context, start, end []byte) (int, []byte, error) {
	type expiring struct {
		conv      Conversation
		ids       []string
		trackedAt []int64
	}
	var order []string
	byConv := make(map[string]*expiring)
	var next []byte
	seen := 0
	err := e.st.Scan(ctx, start, end, func(k, _ []byte) bool {
		if seen == sweepSlice {
			next = append([]byte(nil), k...)
			return false
		}
		seen++
		ts, conv, id, err := parseTimeKey(k)
		if err != nil {
			return true // not ours to judge; Check reports it
		}
		ck := string(convKey(conv))
		x, ok := byConv[ck]
		if !ok {
			x = &expiring{conv: conv}
			byConv[ck] = x
			order = append(order, ck)
		}
		x.ids = append(x.ids, id)
		x.trackedAt = append(x.trackedAt, ts)
		return true
	})
	if err != nil {
		return 0, nil, internalErr("sweep", err)
	}
	deleted := 0
	for _, ck := range order {
		x := byConv[ck]
		n, err := e.expireMessages(ctx, x.conv, x.ids, x.trackedAt)
		deleted += n
		if err != nil {
			return deleted, nil, err
		}
	}
	return deleted, next, nil
}

func (e *embedded) expireMessages(ctx context.Context, conv Conversation, ids []string, trackedAt []int64) (int, error) {
	lock := e.convLock(convKey(conv))
	lock.Lock()
	defer lock.Unlock()
	return e.deleteMessages(ctx, conv, ids, trackedAt)
}

// collectGarbage runs gcGroup for every group marked since (the marks are
// stored, so a restart loses none).
func (e *embedded) collectGarbage(ctx context.Context) error {
	var groups []string
	err := e.st.Scan(ctx, keyGCPrefix, prefixEnd(keyGCPrefix), func(k, _ []byte) bool {
		groups = append(groups, string(k[len(keyGCPrefix):]))
		return true
	})
	if err != nil {
		return internalErr("sweep", err)
	}
	for _, gid := range groups {
		if err := e.gcGroup(ctx, gid); err != nil {
			return err
		}
	}
	return nil
}

// gcGroup deletes the membership chunks of group gid that no live message
// needs: for each chunk position, every version older than the one in force
// at the oldest live message (or, with none, at the current version).
func (e *embedded) gcGroup(ctx context.Context, gid string) error {
	lock := e.convLock(convKey(Group(gid)))
	lock.Lock()
	defer lock.Unlock()
	g, err := e.loadGroup(ctx, gid)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Delete(gcKey(gid))
	if g == nil {
		return internalErr("sweep", e.st.Write(ctx, &b, store.WriteOptions{}))
	}
	// The oldest version with a live message is the first counter above
	// zero; the zero ones before it go (the write lock keeps tracks, which
	// add to them, out).
	oldest := g.Version
	vp := groupKey(gid, groupVersion)
	err = e.st.Scan(ctx, vp, prefixEnd(vp), func(k, v []byte) bool {
		if len(k) != len(vp)+8 {
			return true // not ours to judge; Check reports it
		}
		n, derr := store.DecodeCounter(v)
		if derr != nil {
			return true
		}
		if n == 0 {
			b.Delete(append([]byte(nil), k...))
			return true
		}
		oldest = min(oldest, binary.BigEndian.Uint64(k[len(vp):]))
		return false
	})
	if err != nil {
		return internalErr("sweep", err)
	}
	cp := groupKey(gid, groupChunk)
	keep := -1 // the chunk position whose version in force is found
	err = e.st.Scan(ctx, cp, prefixEnd(cp), func(k, _ []byte) bool {
		hi, version, perr := parseChunkSuffix(k[len(cp):])
		if perr != nil {
			return true
		}
		// Versions of one position come newest first.
		switch {
		case version > oldest:
		case keep != int(hi):
			keep = int(hi) // the version in force at oldest
		default:
			b.Delete(append([]byte(nil), k...))
		}
		return true
	})
	if err != nil {
		return internalErr("sweep", err)
	}
	return internalErr("sweep", e.st.Write(ctx, &b, store.WriteOptions{}))
}
