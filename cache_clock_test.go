package readreceipt

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestEntrySize: an entry stays in the 160-byte size class (W4's heap
// profile: one entry a hot message).
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(msgEntry{}); n > 160 {
		t.Fatalf("msgEntry takes %d bytes, want at most 160", n)
	}
}

// oneShardKeys returns n keys of shard 0.
func oneShardKeys(n int) [][]byte {
	var keys [][]byte
	for i := 0; len(keys) < n; i++ {
		k := []byte(fmt.Sprintf("c%d", i))
		if shardOf(k) == 0 {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestEntryTableClock: the hand never drops a pinned entry, keeps an entry
// used again and again (acquired, not only peeked) while new ones come,
// and holds the shard to its bound whenever an entry is unpinned.
func TestEntryTableClock(t *testing.T) {
	const perShard = 4
	tab := newEntryTable(int64(cacheShards * perShard * entryOverhead))
	s := &tab.shards[0]
	keys := oneShardKeys(300)
	use := func(k []byte) *msgEntry {
		e := tab.acquire(k)
		tab.release(e)
		return e
	}

	// Pinned entries stay, over the bound; released, they go down to it.
	var pinned []*msgEntry
	for _, k := range keys[:3*perShard] {
		pinned = append(pinned, tab.acquire(k))
	}
	for _, e := range pinned {
		if s.items.get([]byte(e.key), keyHash([]byte(e.key))) != e {
			t.Fatalf("pinned entry %s was evicted", e.key)
		}
	}
	for _, e := range pinned {
		tab.release(e)
	}
	if s.bytes > s.cap || s.items.n > perShard {
		t.Fatalf("after releasing every entry: %d entries, %d bytes, bound %d", s.items.n, s.bytes, s.cap)
	}

	// An entry acquired before each new one stays.
	hot := keys[3*perShard]
	h := use(hot)
	for i, k := range keys[3*perShard+1:] {
		if e := use(hot); e != h {
			t.Fatalf("after %d new entries, the entry used before each of them was evicted", i)
		}
		use(k)
		if s.items.n > perShard {
			t.Fatalf("%d entries in a shard bounded to %d", s.items.n, perShard)
		}
	}

	// Random pins and releases: over the bound only while all but the
	// entry released are pinned.
	rng := rand.New(rand.NewPCG(3, 3))
	held := map[*msgEntry]int{}
	for range 5000 {
		if len(held) > 0 && rng.IntN(2) == 0 {
			for e := range held {
				tab.release(e)
				if held[e]--; held[e] == 0 {
					delete(held, e)
				}
				break
			}
		} else {
			e := tab.acquire(keys[rng.IntN(len(keys))])
			held[e]++
			continue
		}
		unpinned := 0
		s.items.each(func(e *msgEntry) {
			if e.refs == 0 {
				unpinned++
			}
		})
		if s.bytes > s.cap && unpinned > 0 {
			t.Fatalf("%d bytes over a bound of %d with %d entries unpinned", s.bytes, s.cap, unpinned)
		}
	}
}
