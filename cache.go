package readreceipt

import (
	"math/bits"
	"math/rand/v2"
	"sync"
	"unsafe"
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

func shardOf(key []byte) int { return int(keyHash(key) % cacheShards) }

// The cache's hash of a key. Every count or receipt list hashes each
// message's key once to find its entry, and with hash/maphash over the
// key that countsInto had just written into its buffer that was a
// quarter of AppendReceiptList's CPU (30 messages of a 1K group, 26% in a
// profile): the hash's loads of the bytes just stored waited for the
// stores (no store-to-load forwarding across several stores), then its
// AES rounds came one after the other. So a message key prefix
// 'm' conv lp(id) is hashed in two parts, the conversation's (once a
// call in countsInto) and the ID's, read where the caller keeps it; and
// the hash takes one 64x64->128 multiply per 16 bytes. Its seeds are
// random per process and enter both operands of every multiply, so that
// IDs chosen without knowing them can neither make an operand zero
// (every key with those bytes would collide) nor collide on purpose.
var hashSeed0, hashSeed1, hashSeed2 = rand.Uint64(), rand.Uint64(), rand.Uint64()

// keyHash returns the hash of key: for a message key prefix,
// idHash(convHash(its conversation part), its ID).
func keyHash(key []byte) uint64 {
	if s := msgSplit(key); s >= 0 {
		return idHash(convHash(key[:s]), bytesString(key[s+1:]))
	}
	return strHash(hashSeed2, bytesString(key))
}

func keyHashString(key string) uint64 { return keyHash(unsafe.Slice(unsafe.StringData(key), len(key))) }

// convHash is the part of a message key's hash that the messages of one
// conversation share: head is 'm' and the conversation's key.
func convHash(head []byte) uint64 { return strHash(hashSeed1, bytesString(head)) }

// idHash returns the hash of the key prefix of message id, from its
// conversation's convHash ch.
func idHash(ch uint64, id string) uint64 { return strHash(ch, id) }

// msgSplit returns where lp(id) starts in a message key prefix
// 'm' conv lp(id), or -1 if key is not one.
func msgSplit(key []byte) int {
	if len(key) < 3 || key[0] != prefixMessage {
		return -1
	}
	s := 3 + int(key[2]) // after 'g' lp(group), or after 'c' lp(userA)
	if key[1] == convC2C && s < len(key) {
		s += 1 + int(key[s])
	} else if key[1] != convGroup {
		return -1
	}
	if s >= len(key) || int(key[s]) != len(key)-s-1 {
		return -1
	}
	return s
}

func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// strHash hashes k from seed.
func strHash(seed uint64, k string) uint64 {
	n := len(k)
	h := seed ^ uint64(n)*0x9e3779b97f4a7c15
	var a, b uint64
	switch {
	case n > 16:
		for p := k; len(p) > 16; p = p[16:] {
			h = hashMix(le64(p)^hashSeed0, le64(p[8:])^h)
		}
		// The last 16 bytes, which overlap the loop's last block unless
		// n is a multiple of 16.
		a, b = le64(k[n-16:]), le64(k[n-8:])
	case n >= 8:
		a, b = le64(k), le64(k[n-8:]) // overlapping below 16
	case n >= 4:
		a, b = uint64(le32(k)), uint64(le32(k[n-4:]))
	case n > 0:
		a = uint64(k[0])<<16 | uint64(k[n>>1])<<8 | uint64(k[n-1])
	}
	return hashMix(hashMix(a^hashSeed0, b^h)^hashSeed1, h^0xd6e8feb86659fd93)
}

func hashMix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
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
//
// Eviction is CLOCK over the slots of each shard's index: a use of an entry
// sets its used bit; the hand sweeps the slots, clears the bits it finds
// set and evicts the first unpinned entry whose bit is clear. Where a
// least-recently-used list took two pointers an entry (sixteen bytes, and
// six pointer writes a use, each a write barrier while the GC marks), a
// use here sets one byte.
type entryTable struct {
	shards [cacheShards]entryShard
}

type entryShard struct {
	mu    sync.Mutex
	items entryIndex
	hand  int   // the slot of items the next sweep starts at
	bytes int64 // the entries' sizes and the records' charges
	cap   int64
	hot   int // the entries kept unpacked while within cap (hotLimit)

	idle     idleIndex // the packed entries (packed.go)
	idleHand int       // the slot of idle the next drop starts at
	buf      []byte    // pack's scratch
	view     msgEntry  // peek's view of a record
}

func newEntryTable(capBytes int64) *entryTable {
	t := &entryTable{}
	for i := range t.shards {
		s := &t.shards[i]
		s.cap = max(capBytes/cacheShards, 1)
		s.hot = hotLimit(s.cap)
	}
	return t
}

// entryIndex finds a shard's entries by key: an open-addressing table of
// entry pointers (linear probing, at most 3/4 full), twelve bytes a slot
// where a Go map of string keys takes some forty an entry (W4's heap
// profile). The hash of a key picks its shard in its low bits (shardOf)
// and its first slot in the others. Each slot keeps those other bits
// beside its pointer: a probe compares them before it touches an entry,
// and remove and growth place entries again without hashing their keys
// (remove rehashed every entry it moved back: 1.15 s of 30.8 in a profile
// of 64 concurrent TrackMessage callers).
type entryIndex struct {
	slots []*msgEntry // a power of two of them, or none
	hs    []uint32    // slotHash of each slot's entry
	n     int
}

// slotHash is the part of hash h that places a key in a shard's index.
func slotHash(h uint64) uint32 { return uint32(h / cacheShards) }

// home returns the first slot of hash h in a table of mask+1 slots.
func home(h uint64, mask int) int { return int(slotHash(h)) & mask }

// get returns the entry of key, whose hash is h, or nil.
func (x *entryIndex) get(key []byte, h uint64) *msgEntry {
	if x.n == 0 {
		return nil
	}
	mask := len(x.slots) - 1
	sh := slotHash(h)
	for i := int(sh) & mask; ; i = (i + 1) & mask {
		e := x.slots[i]
		if e == nil || x.hs[i] == sh && e.key == string(key) {
			return e
		}
	}
}

// add adds e, whose key (of hash h) is not in x.
func (x *entryIndex) add(e *msgEntry, h uint64) { x.place(e, slotHash(h)) }

func (x *entryIndex) place(e *msgEntry, sh uint32) {
	if 4*(x.n+1) > 3*len(x.slots) {
		old, oldHs := x.slots, x.hs
		n := max(8, 2*len(old))
		x.slots, x.hs, x.n = make([]*msgEntry, n), make([]uint32, n), 0
		for i, o := range old {
			if o != nil {
				x.place(o, oldHs[i])
			}
		}
	}
	mask := len(x.slots) - 1
	i := int(sh) & mask
	for x.slots[i] != nil {
		i = (i + 1) & mask
	}
	x.slots[i], x.hs[i] = e, sh
	x.n++
}

// remove removes e, which is in x.
func (x *entryIndex) remove(e *msgEntry) {
	mask := len(x.slots) - 1
	i := home(keyHashString(e.key), mask)
	for x.slots[i] != e {
		i = (i + 1) & mask
	}
	x.removeAt(i)
}

// removeAt removes the entry in slot i and moves back the entries after
// it that would no longer be found (no tombstones). The hand, which knows
// the slot, removes with it: finding the slot from the key took a hash of
// the key, 1.6% of the CPU of 64 concurrent TrackMessage callers.
func (x *entryIndex) removeAt(i int) {
	mask := len(x.slots) - 1
	for j := (i + 1) & mask; x.slots[j] != nil; j = (j + 1) & mask {
		if movesBack(i, j, int(x.hs[j])&mask) {
			x.slots[i], x.hs[i] = x.slots[j], x.hs[j]
			i = j
		}
	}
	x.slots[i], x.hs[i] = nil, 0
	x.n--
}

// each calls fn for every entry.
func (x *entryIndex) each(fn func(e *msgEntry)) {
	for _, e := range x.slots {
		if e != nil {
			fn(e)
		}
	}
}

// entryOverhead is the approximate memory of an entry without readers:
// the msgEntry (160 bytes, TestEntrySize), its key (16 bytes for W4's
// short IDs, 48 for a UUID's), its index slot (12 bytes: 16 at 3/4 load,
// 32 right after a growth).
const entryOverhead = 224

// acquire returns the entry for the message with key prefix, creating an
// empty one if needed, pinned until release.
func (t *entryTable) acquire(prefix []byte) *msgEntry {
	h := keyHash(prefix)
	shard := int(h % cacheShards)
	s := &t.shards[shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.items.get(prefix, h)
	if e != nil {
		e.used = true
	} else if i := s.idle.get(prefix, h); i >= 0 {
		// Packed: an entry again, as it was; unused, as a new one.
		e = s.unpackAt(i, shard)
		s.items.add(e, h)
	} else {
		// A new entry starts unused: one that no call uses again goes
		// first, before those used since the hand passed.
		e = &msgEntry{key: string(prefix), shard: uint8(shard), size: entryOverhead}
		s.items.add(e, h)
		s.bytes += entryOverhead
	}
	e.refs++
	return e
}

// peek calls fn with the loaded entry of the message with key prefix, whose
// keyHash the caller has (countsInto makes it of the conversation's and
// the ID's parts: h), and its lock held, and reports whether it did: a lookup without pinning, for
// calls that only read an entry. It holds the shard's lock while fn runs,
// so fn must be short; it gives up (false) rather than wait for an entry
// someone else holds, as a write may, and then the caller takes the
// pinning path (acquire, lock, release). A packed entry is read in place:
// fn gets a view of its record, with the meta and counts but no readers,
// whose strings fn must copy to keep (a copy of the meta does).
func (t *entryTable) peek(prefix []byte, h uint64, fn func(m *msgEntry)) bool {
	s := &t.shards[h%cacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.items.get(prefix, h)
	if e == nil {
		if i := s.idle.get(prefix, h); i >= 0 {
			p := s.idle.slots[i]
			*recUsed(p) = 1
			unpack(recBytes(p), &s.view, true)
			fn(&s.view)
			return true
		}
	}
	if e == nil || !e.mu.TryLock() {
		return false
	}
	if e.loaded {
		fn(e)
	}
	e.mu.Unlock()
	if !e.loaded {
		return false
	}
	e.used = true
	return true
}

// release unpins e.
func (t *entryTable) release(e *msgEntry) {
	s := &t.shards[e.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	e.refs--
	s.evict(e)
}

// settle ends a receipt call's pin on e once its write is done, in one
// trip to the shard where pin, charge and release took three: it adds
// delta bytes to e's accounted size and unpins e, unless keep: then the
// call's pin passes to the receipt log, which releases it once e's
// receipts are folded (rlog.go).
func (t *entryTable) settle(e *msgEntry, keep bool, delta int64) {
	s := &t.shards[e.shard]
	s.mu.Lock()
	defer s.mu.Unlock()
	e.size += int32(delta)
	s.bytes += delta
	if !keep {
		e.refs--
	}
	s.evict(e)
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

// evict keeps the shard within its bounds. Over its bytes, it drops
// packed entries first that were not read since the idle hand passed
// (none was acquired since it was packed), then unpinned entries: the
// hand sweeps the slots, clearing used bits, and drops the first unpinned
// entry it finds unused. It spares keep, the entry just released, while
// it can: the newest entry would otherwise go first, before it could be
// used again. After two turns of the hand (the first clears every bit)
// every other entry is pinned; then the packed entries go, read or not,
// and keep if the shard is still over. Within its bytes but over its hot
// bound, the hand moves packSteps slots and packs the unused entries it
// finds that can be (packed.go). The caller holds s.mu.
func (s *entryShard) evict(keep *msgEntry) {
	for s.bytes > s.cap && s.idle.n > 0 && s.dropIdle(false) {
	}
	slots := s.items.slots
	mask := len(slots) - 1
	for moves, steps := 0, 0; moves < 2*len(slots); {
		over := s.bytes > s.cap
		if !over && (s.items.n <= s.hot || steps == packSteps) {
			break
		}
		i := s.hand & mask
		e := slots[i]
		switch {
		case e == nil || e.refs > 0 || e == keep:
		case e.used:
			e.used = false
		case over || e.packable():
			// The slot takes the next entry of its run, if any (removeAt's
			// moves back): the hand looks at it before moving on.
			s.items.removeAt(i)
			s.bytes -= int64(e.size)
			if !over {
				s.pack(e)
				steps++
			}
			continue
		}
		s.hand = i + 1
		moves++
		if !over {
			steps++
		}
	}
	for s.bytes > s.cap && s.idle.n > 0 {
		s.dropIdle(true)
	}
	if s.bytes > s.cap && keep.refs == 0 {
		s.items.remove(keep)
		s.bytes -= int64(keep.size)
	}
}

// each calls fn for every cached entry, pinned during the call, and for a
// copy of every packed one (unpacked, not cached). It is meant for checks,
// not for hot paths.
func (t *entryTable) each(fn func(e *msgEntry)) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		entries := make([]*msgEntry, 0, s.items.n)
		s.items.each(func(e *msgEntry) {
			e.refs++
			entries = append(entries, e)
		})
		var packed []*msgEntry
		for _, p := range s.idle.slots {
			if p != nil {
				e := &msgEntry{shard: uint8(i)}
				unpack(recBytes(p), e, false)
				packed = append(packed, e)
			}
		}
		s.mu.Unlock()
		for _, e := range entries {
			fn(e)
			t.release(e)
		}
		for _, e := range packed {
			fn(e)
		}
	}
}
