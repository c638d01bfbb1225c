package readreceipt

import (
	"bytes"
	"context"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/readreceipt/readreceipt/store"
)

// The embedded backend's privacy settings, conversation orders and read-up-to
// marks (model.go).
//
// Privacy. A user's flag is one system key (\x00 'p' user), present only
// while the user's receipts are private. Every read receipt call asks for
// it, so the flags are cached (privacyFlags), "public" as well as
// "private": once a user was seen, privacy() reads nothing. The cache is a
// size-bounded LRU (privacyCacheBytes), so a miss costs one point read and
// memory stays bounded however many users come by. A flag and its cached
// copy change together under the flag's key lock: setPrivacy writes the
// store first (durably), then the cache; a miss reads the store and fills
// the cache under the same lock, so a stale read never overwrites a newer
// setting in the cache.
//
// Orders. trackMessage writes one key per message in its conversation's
// order, and one in its thread's ('o' conv lp(thread) pos, keys.go), in the
// batch that writes the meta; deleteMessages (DeleteMessage, expiry), a
// stale message replaced and DismissGroup delete them with the message. So
// an order only holds stored messages; scanOrder still checks that each one
// is live (expired ones wait for the sweep).
//
// Marks. One key per (conversation, thread, reader), holding the encoded
// position. setMark is a read-compare-write under the mark's key lock
// (keyLocks) and the conversation's read lock (DismissGroup, which deletes
// a group's marks, holds it for writing, so no mark is written for a group
// being dismissed).

// keyLockStripes is the number of key locks (embedded.keyLocks).
const keyLockStripes = 64

// privacyCacheBytes is the share of the cache bound the privacy flags get,
// on top of the others: about 1/32, and at least 64 KiB.
func privacyCacheBytes(cacheBytes int64) int64 { return max(cacheBytes/32, 64<<10) }

// privacyEntryBytes is what one cached flag is charged: the user ID and
// the LRU's node and map entry.
const privacyEntryBytes = 96

func (e *embedded) keyLock(key []byte) *sync.Mutex {
	return &e.keyLocks[maphash.Bytes(lockSeed, key)%keyLockStripes]
}

func (e *embedded) privacy(ctx context.Context, user string) (bool, error) {
	if p, ok := e.privacyFlags.get([]byte(user)); ok {
		return p, nil
	}
	key := privacyKey(user)
	l := e.keyLock(key)
	l.Lock()
	defer l.Unlock()
	if p, ok := e.privacyFlags.get([]byte(user)); ok {
		return p, nil // filled while this call waited
	}
	vals, err := e.st.Get(ctx, [][]byte{key})
	if err != nil {
		return false, internalErr("read privacy", err)
	}
	p := vals[0] != nil
	e.privacyFlags.add([]byte(user), p, int64(len(user))+privacyEntryBytes)
	return p, nil
}

func (e *embedded) setPrivacy(ctx context.Context, user string, private bool) error {
	key := privacyKey(user)
	l := e.keyLock(key)
	l.Lock()
	defer l.Unlock()
	var b store.Batch
	if private {
		b.Set(key, []byte{1})
	} else {
		b.Delete(key)
	}
	// Durable whatever WithSyncWrites says: a user who asked for privacy
	// must not find their reads public after a crash.
	if err := e.st.Write(ctx, &b, store.WriteOptions{Sync: true}); err != nil {
		// The store may or may not hold the new flag: forget the cached one.
		e.privacyFlags.remove([]byte(user))
		return internalErr("set privacy", err)
	}
	e.privacyFlags.add([]byte(user), private, int64(len(user))+privacyEntryBytes)
	return nil
}

func (e *embedded) position(ctx context.Context, ref MessageRef) (orderPos, string, error) {
	conv := ref.Conversation
	isGroup := conv.Type == ConversationGroup
	ck := convKey(conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()
	var g *groupRecord
	if isGroup {
		var err error
		if g, err = e.loadGroup(ctx, conv.GroupID); err != nil {
			return orderPos{}, "", err
		}
	}
	m := e.entries.acquire(messagePrefix(ck, ref.ID))
	defer e.entries.release(m)
	if err := e.loadEntries(ctx, m); err != nil {
		return orderPos{}, "", err
	}
	m.mu.Lock()
	meta, err := e.liveMeta(m, isGroup, g, e.retentionNow())
	m.mu.Unlock()
	if err != nil {
		return orderPos{}, "", err
	}
	return msgPos(meta.TrackedAt, ref.ID), meta.Thread, nil
}

// scanChunk is the fewest order keys scanOrder reads at a time.
const scanChunk = 32

// scanOrder walks the order from after on, a slice of keys at a time:
// each slice is one seek, then one batched read of the entries of the
// messages not cached. Its cost is the number of keys walked: the live
// messages returned, and expired ones the sweep has not reached yet only
// within the microsecond of the retention cutoff (the walk starts there).
func (e *embedded) scanOrder(ctx context.Context, conv Conversation, thread string, after, upTo orderPos, limit int) ([]orderItem, error) {
	if limit <= 0 || upTo.cmp(after) <= 0 {
		return nil, nil
	}
	isGroup := conv.Type == ConversationGroup
	ck := convKey(conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()
	var g *groupRecord
	if isGroup {
		var err error
		if g, err = e.loadGroup(ctx, conv.GroupID); err != nil {
			return nil, err
		}
		if g == nil {
			return nil, errorf(ErrGroupNotFound, "%q", conv.GroupID)
		}
	}
	now := e.retentionNow()
	if cutoff := now - int64(e.cfg.retention); e.cfg.retention > 0 && cutoff > 0 {
		// Every message tracked in a microsecond before the cutoff's has
		// expired: start after them, swept or not.
		if expired := (orderPos{at: cutoff/1000 - 1, id: maxID}); after.cmp(expired) < 0 {
			after = expired
		}
	}
	prefix := orderPrefix(ck, thread)
	start := append(after.encode(bytes.Clone(prefix)), 0) // just after after
	end := append(upTo.encode(bytes.Clone(prefix)), 0)    // just after upTo
	var out []orderItem
	for len(out) < limit && start != nil {
		want := max(limit-len(out), scanChunk)
		var found []orderPos
		var next []byte
		err := e.st.Scan(ctx, start, end, func(k, _ []byte) bool {
			if len(found) == want {
				next = append([]byte(nil), k...)
				return false
			}
			p, err := decodeOrderPos(k[len(prefix):])
			if err == nil && p.id != "" {
				found = append(found, p)
			}
			return true
		})
		if err != nil {
			return nil, internalErr("read order", err)
		}
		start = next
		if len(found) == 0 {
			break
		}
		ms := make([]*msgEntry, len(found))
		for i, p := range found {
			ms[i] = e.entries.acquire(messagePrefix(ck, p.id))
		}
		if err := e.loadEntries(ctx, ms...); err != nil {
			e.releaseAll(ms)
			return nil, err
		}
		for i, m := range ms {
			if len(out) == limit {
				break
			}
			m.mu.Lock()
			meta, lerr := e.liveMeta(m, isGroup, g, now)
			m.mu.Unlock()
			p := found[i]
			// An entry whose message is not the one it was written for
			// (tracked again since) is not that message's.
			if lerr != nil || msgPos(meta.TrackedAt, p.id) != p || thread != "" && meta.Thread != thread {
				continue
			}
			out = append(out, orderItem{pos: p, id: p.id})
		}
		e.releaseAll(ms)
	}
	return out, nil
}

func (e *embedded) mark(ctx context.Context, conv Conversation, thread, reader string) (orderPos, bool, error) {
	vals, err := e.st.Get(ctx, [][]byte{markKey(convKey(conv), thread, reader)})
	if err != nil {
		return orderPos{}, false, internalErr("read mark", err)
	}
	if vals[0] == nil {
		return orderPos{}, false, nil
	}
	p, err := decodeOrderPos(vals[0])
	if err != nil {
		return orderPos{}, false, internalErr("decode mark", err)
	}
	return p, true, nil
}

func (e *embedded) setMark(ctx context.Context, conv Conversation, thread, reader string, p orderPos) (orderPos, error) {
	ck := convKey(conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()
	if conv.Type == ConversationGroup {
		g, err := e.loadGroup(ctx, conv.GroupID)
		if err != nil {
			return orderPos{}, err
		}
		if g == nil {
			return orderPos{}, errorf(ErrGroupNotFound, "%q", conv.GroupID)
		}
	}
	key := markKey(ck, thread, reader)
	l := e.keyLock(key)
	l.Lock()
	defer l.Unlock()
	vals, err := e.st.Get(ctx, [][]byte{key})
	if err != nil {
		return orderPos{}, internalErr("read mark", err)
	}
	if vals[0] != nil {
		stored, err := decodeOrderPos(vals[0])
		if err != nil {
			return orderPos{}, internalErr("decode mark", err)
		}
		if stored.cmp(p) >= 0 {
			return stored, nil
		}
	}
	var b store.Batch
	b.Set(key, p.encode(nil))
	if err := e.st.Write(ctx, &b, e.writeOpts()); err != nil {
		return orderPos{}, internalErr("set mark", err)
	}
	return p, nil
}

// orderCheck is what Check (check.go) gathers of the orders, marks and
// privacy flags, to verify with verifyOrders: every order key names a
// stored message at its position, in its thread; every stored message has
// its order keys; every mark is well formed and its group exists; every
// privacy flag is 1, and every cached flag is the stored one.
type orderCheck struct {
	orders  map[string][]string // message prefix -> the threads its order keys are in
	marks   int
	privacy map[string]bool
}

func (c *checker) loadOrderKey(k, v []byte) {
	if c.ord.orders == nil {
		c.ord.orders = map[string][]string{}
		c.ord.privacy = map[string]bool{}
	}
	switch k[0] {
	case prefixSystem: // a privacy flag
		if !bytes.Equal(v, []byte{1}) {
			c.fail("privacy flag of %q: value %q", k[len(keyPrivacyPrefix):], v)
		}
		c.ord.privacy[string(k[len(keyPrivacyPrefix):])] = true
	case prefixOrder:
		conv, thread, p, err := parseOrderKey(k)
		if err != nil {
			c.fail("malformed order key %q", k)
			return
		}
		mp := string(messagePrefix(convKey(conv), p.id))
		m := c.msgs[mp]
		// Message keys sort before order keys: every message is loaded.
		if m == nil || m.meta == nil || msgPos(m.meta.TrackedAt, p.id) != p {
			c.fail("order key of %s/%s (thread %q) names no such message", conv, p.id, thread)
			return
		}
		if thread != "" && m.meta.Thread != thread {
			c.fail("order key of %s/%s in thread %q, the message's is %q", conv, p.id, thread, m.meta.Thread)
			return
		}
		c.ord.orders[mp] = append(c.ord.orders[mp], thread)
	case prefixMark:
		conv, thread, reader, err := parseMarkKey(k)
		if _, derr := decodeOrderPos(v); err != nil || derr != nil {
			c.fail("malformed mark %q", k)
			return
		}
		c.ord.marks++
		if conv.Type == ConversationGroup {
			// Group keys sort before mark keys: every group is loaded.
			if g := c.groups[conv.GroupID]; g == nil || g.meta == nil {
				c.fail("mark of %q in %s (thread %q): no such group", reader, conv, thread)
			}
		}
	}
}

func (c *checker) verifyOrders() {
	for mp, m := range c.msgs {
		if m.meta == nil {
			continue
		}
		threads := c.ord.orders[mp]
		want := []string{""}
		if m.meta.Thread != "" {
			want = append(want, m.meta.Thread)
		}
		if !slices.Equal(threads, want) { // keys of thread "" sort first
			c.fail("message %s/%s: order keys in threads %q, want %q", m.conv, m.id, threads, want)
		}
	}
	c.e.privacyFlags.each(func(user string, p bool) {
		if p != c.ord.privacy[user] {
			c.fail("cached privacy of %q is %v, stored %v", user, p, c.ord.privacy[user])
		}
	})
}
