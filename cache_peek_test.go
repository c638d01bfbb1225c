package readreceipt

import (
	"fmt"
	"testing"
)

// TestPeekKeepsReadEntriesCached: an entry that only queries read (peek)
// stays cached while new entries push the shard over its bound, however
// near the front touch leaves it; one nobody reads is evicted.
func TestPeekKeepsReadEntriesCached(t *testing.T) {
	for _, perShard := range []int{2, 3, 5, 8, 9, 16} {
		t.Run(fmt.Sprintf("entries=%d", perShard), func(t *testing.T) { testPeekKeeps(t, perShard) })
	}
}

func testPeekKeeps(t *testing.T, perShard int) {
	tab := newEntryTable(int64(cacheShards * perShard * entryOverhead))
	// Keys of one shard, so that every new entry evicts from it.
	var keys [][]byte
	for i := 0; len(keys) < 200; i++ {
		k := []byte(fmt.Sprintf("k%d", i))
		if shardOf(k) == 0 {
			keys = append(keys, k)
		}
	}
	add := func(k []byte) {
		e := tab.acquire(k)
		e.mu.Lock()
		e.loaded = true
		e.mu.Unlock()
		tab.release(e)
	}
	peek := func(k []byte) bool { return tab.peek(k, keyHash(k), func(*msgEntry) {}) }

	hot, cold := keys[0], keys[1]
	add(cold)
	add(hot)
	for i, k := range keys[2:] {
		if !peek(hot) {
			t.Fatalf("after %d new entries, the entry read before each of them was evicted", i)
		}
		add(k)
	}
	if peek(cold) {
		t.Errorf("the entry nobody read is still cached after %d new ones in a shard of %d", len(keys)-2, perShard)
	}
	if n := tab.shards[0].items.n; n > perShard {
		t.Errorf("%d entries in a shard bounded to %d", n, perShard)
	}
}
