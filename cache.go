package readreceipt

import (
	"hash/maphash"
	"sync"
)

// The engine caches these kinds of state, all bounded in bytes:
//   - membership chunks and member indexes, which never change once written
//     (a new membership version writes new chunks), so any copy is valid;
//   - group records, read under the group's conversation lock and dropped
//     by the membership calls, which hold that lock for writing;
//   - per-message state (meta, read count, readers, and the delivered and
//     private sets with dn), which the engine itself keeps current: see
//     msgEntry.

const cacheShards = 16

var cacheSeed = maphash.MakeSeed()

func shardOf(key []byte) int {
	return int(maphash.Bytes(cacheSeed, key) % cacheShards)
}

// lru is a sharded, size-bounded least-recently-used cache of immutable
// values. It is safe for concurrent use.
type lru[V any] struct {
	shards [cacheShards]lruShard[V]
}

type lruShard[V any] struct {
	mu    sync.Mutex
	items map[string]*lruNode[V]
	list  lruNode[V] // sentinel: list.next is the most recently used
	bytes int64
	cap   int64
}

type lruNode[V any] struct {
	key        string
	val        V
	size       int64
	prev, next *lruNode[V]
}

func newLRU[V any](capBytes int64) *lru[V] {
	c := &lru[V]{}
	for i := range c.shards {
		s := &c.shards[i]
		s.items = make(map[string]*lruNode[V])
		s.list.next, s.list.prev = &s.list, &s.list
		s.cap = max(capBytes/cacheShards, 1)
	}
	return c
}

func (s *lruShard[V]) unlink(n *lruNode[V]) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (s *lruShard[V]) pushFront(n *lruNode[V]) {
	n.prev, n.next = &s.list, s.list.next
	s.list.next.prev = n
	s.list.next = n
}

// get returns the value cached under key.
func (c *lru[V]) get(key []byte) (V, bool) {
	s := &c.shards[shardOf(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.items[string(key)]
	if !ok {
		var zero V
		return zero, false
	}
	s.unlink(n)
	s.pushFront(n)
	return n.val, true
}

// add caches val under key, charging size bytes, and evicts the least
// recently used values while the shard is over its share of the bound.
func (c *lru[V]) add(key []byte, val V, size int64) {
	s := &c.shards[shardOf(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.items[string(key)]; ok {
		s.bytes += size - n.size
		n.val, n.size = val, size
		s.unlink(n)
		s.pushFront(n)
	} else {
		n := &lruNode[V]{key: string(key), val: val, size: size}
		s.items[n.key] = n
		s.bytes += size
		s.pushFront(n)
	}
	for s.bytes > s.cap && s.list.prev != s.list.next {
		old := s.list.prev
		s.unlink(old)
		delete(s.items, old.key)
		s.bytes -= old.size
	}
}

// remove drops the value cached under key, if any.
func (c *lru[V]) remove(key []byte) {
	s := &c.shards[shardOf(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.items[string(key)]; ok {
		s.unlink(n)
		delete(s.items, n.key)
		s.bytes -= n.size
	}
}

// each calls fn for every cached value; it is meant for checks.
func (c *lru[V]) each(fn func(key string, val V)) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, n := range s.items {
			fn(k, n.val)
		}
		s.mu.Unlock()
	}
}

// entryTable holds the per-message state of messages in use or recently
// used. An entry is pinned while a call uses it (refs > 0) and is only
// evicted when unpinned, so that state a call relies on (in particular
// receipts in flight) is never dropped under it.
type entryTable struct {
	shards [cacheShards]entryShard
}

type entryShard struct {
	mu    sync.Mutex
	items map[string]*msgEntry
	list  msgEntry // sentinel: list.next is the most recently used
	bytes int64
	cap   int64
}

func newEntryTable(capBytes int64) *entryTable {
	t := &entryTable{}
	for i := range t.shards {
		s := &t.shards[i]
		s.items = make(map[string]*msgEntry)
		s.list.next, s.list.prev = &s.list, &s.list
		s.cap = max(capBytes/cacheShards, 1)
	}
	return t
}

// entryOverhead is the approximate memory of an entry without readers.
const entryOverhead = 256

// acquire returns the entry for the message with key prefix, creating an
// empty one if needed, pinned until release.
func (t *entryTable) acquire(prefix []byte) *msgEntry {
	shard := shardOf(prefix)
	s := &t.shards[shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[string(prefix)]
	if ok {
		e.prev.next, e.next.prev = e.next, e.prev
	} else {
		e = &msgEntry{key: string(prefix), shard: uint8(shard), size: entryOverhead}
		s.items[e.key] = e
		s.bytes += entryOverhead
	}
	e.refs++
	e.prev, e.next = &s.list, s.list.next
	s.list.next.prev = e
	s.list.next = e
	return e
}

// peek calls fn with the loaded entry of the message with key prefix and
// its lock held, and reports whether it did: a lookup without pinning, for
// calls that only read an entry. It holds the shard's lock while fn runs,
// so fn must be short; it gives up (false) rather than wait for an entry
// someone else holds, as a write may, and then the caller takes the
// pinning path (acquire, lock, release).
func (t *entryTable) peek(prefix []byte, fn func(m *msgEntry)) bool {
	s := &t.shards[shardOf(prefix)]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[string(prefix)]
	if !ok || !e.mu.TryLock() {
		return false
	}
	if e.loaded {
		fn(e)
	}
	e.mu.Unlock()
	if !e.loaded {
		return false
	}
	s.touch(e)
	return true
}

// touchLeeway is how many of a shard's most recently used entries peek
// leaves where they are.
const touchLeeway = 4

// touch makes e, in s's list, the most recently used entry, unless it is
// among the touchLeeway most recent already: a query of the same messages
// again, the common case, then writes no pointers (six a move, each a
// write barrier while the GC marks), and e loses at most touchLeeway-1
// places of recency. That leeway is taken only where those places cannot
// decide an eviction soon: in a shard of more than twice as many entries,
// or one less than half full; a full shard of a few entries keeps the
// exact order. The caller holds s.mu.
func (s *entryShard) touch(e *msgEntry) {
	if len(s.items) > 2*touchLeeway || 2*s.bytes < s.cap {
		p := e.prev
		for range touchLeeway {
			if p == &s.list {
				return
			}
			p = p.prev
		}
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &s.list, s.list.next
	s.list.next.prev = e
	s.list.next = e
}

// pin pins e once more, as acquire does, for a holder that does not look
// it up: the receipt log, while e has receipts not folded.
func (t *entryTable) pin(e *msgEntry) {
	s := &t.shards[e.shard]
	s.mu.Lock()
	e.refs++
	s.mu.Unlock()
}

// release unpins e.
func (t *entryTable) release(e *msgEntry) {
	s := &t.shards[e.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	e.refs--
	s.evict()
}

// charge adds delta bytes to e's accounted size.
func (t *entryTable) charge(e *msgEntry, delta int64) {
	if delta == 0 {
		return
	}
	s := &t.shards[e.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	e.size += int32(delta)
	s.bytes += delta
}

// evict drops unpinned entries, least recently used first, while the shard
// is over its bound. The caller holds s.mu.
func (s *entryShard) evict() {
	for n := s.list.prev; s.bytes > s.cap && n != &s.list; {
		prev := n.prev
		if n.refs == 0 {
			n.prev.next, n.next.prev = n.next, n.prev
			delete(s.items, n.key)
			s.bytes -= int64(n.size)
		}
		n = prev
	}
}

// each calls fn for every cached entry, pinned during the call. It is meant
// for checks, not for hot paths.
func (t *entryTable) each(fn func(e *msgEntry)) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		entries := make([]*msgEntry, 0, len(s.items))
		for _, e := range s.items {
			e.refs++
			entries = append(entries, e)
		}
		s.mu.Unlock()
		for _, e := range entries {
			fn(e)
			t.release(e)
		}
	}
}
