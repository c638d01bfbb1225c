package readreceipt

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestKeyHashOfParts: the hash countsInto computes from a conversation's
// head and each ID is keyHash of the message's key prefix. Were they to
// differ, every count would miss the cached entries and load them again
// (still right, so no other test would notice).
func TestKeyHashOfParts(t *testing.T) {
	convs := []Conversation{Group("g"), Group(strings.Repeat("G", 255)), C2C("alice", "bob"), C2C("b", strings.Repeat("a", 200))}
	for _, c := range convs {
		head := conversationMessagesPrefix(convKey(c))
		ch := convHash(head)
		for n := 1; n <= 255; n++ {
			id := strings.Repeat("x", n-1) + "z"
			key := messagePrefix(convKey(c), id)
			if got, want := idHash(ch, id), keyHash(key); got != want {
				t.Fatalf("%v, ID of %d bytes: idHash %x, keyHash %x", c, n, got, want)
			}
			if s := msgSplit(key); s != len(head) {
				t.Fatalf("%v, ID of %d bytes: split at %d, want %d", c, n, s, len(head))
			}
		}
	}
}

// TestMsgSplit: keys that are not message key prefixes are hashed whole.
func TestMsgSplit(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"", -1},
		{"m", -1},
		{"mg", -1},
		{"mg\x01g", -1},             // no ID
		{"mg\x01g\x01a", 4},         // 'm' 'g' lp("g") lp("a")
		{"mg\x01g\x02a", -1},        // the ID's length says 2
		{"mg\x01g\x00", 4},          // an empty ID
		{"mg\x05g\x01a", -1},        // the group's length runs past the end
		{"mc\x01a\x01b\x01x", 6},    // C2C
		{"mc\x01a\x01b", -1},        // C2C without an ID
		{"mc\x01a", -1},             // C2C without the second user
		{"mc\x01a\x05b\x01x", -1},   // the second user runs past the end
		{"mx\x01a\x01b", -1},        // neither group nor C2C
		{"gg\x01g\x01a", -1},        // not a message key
		{"mg\x01g\x01ab", -1},       // trailing bytes
		{"mc\x00\x00\x03abc", 4},    // empty users
		{"mg\x03abc\x03def", 6},     // longer parts
		{"mc\x02ab\x02cd\x02ef", 8}, // longer parts
	} {
		if got := msgSplit([]byte(tc.key)); got != tc.want {
			t.Errorf("msgSplit(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// TestKeyHashSeesEveryByte: changing any one bit of a key of any length
// changes its hash (a byte the loads skip would not).
func TestKeyHashSeesEveryByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for n := 0; n <= 100; n++ {
		k := make([]byte, n)
		for i := range k {
			k[i] = byte(rng.Uint32())
		}
		for _, seed := range []uint64{0, hashSeed1, 1 << 63} {
			h := strHash(seed, string(k))
			for i := range n {
				for bit := range 8 {
					k[i] ^= 1 << bit
					if strHash(seed, string(k)) == h {
						t.Fatalf("length %d, seed %x: flipping bit %d of byte %d leaves the hash", n, seed, bit, i)
					}
					k[i] ^= 1 << bit
				}
			}
			if n > 0 && strHash(seed, string(k[:n-1])) == strHash(seed, string(k[:n-1])+"\x00") {
				t.Fatalf("length %d: a trailing zero byte leaves the hash", n-1)
			}
		}
	}
}

// TestKeyHashSpreads: the IDs a host makes (a counter) spread evenly over
// every part of the hash the cache uses: the shard (low bits), the slot
// (the bits above) and the packed index's tag (the top byte).
func TestKeyHashSpreads(t *testing.T) {
	const n = 1 << 16
	for _, c := range []Conversation{Group("team"), C2C("u1", "u2")} {
		var shards [cacheShards]int
		var tags [256]int
		slots := make(map[int]bool)
		ch := convHash(conversationMessagesPrefix(convKey(c)))
		for i := range n {
			h := idHash(ch, fmt.Sprintf("m-%08d", i))
			shards[h%cacheShards]++
			tags[tagOf(h)]++
			slots[home(h, n-1)] = true
		}
		for s, k := range shards {
			if k < n/cacheShards*9/10 || k > n/cacheShards*11/10 {
				t.Errorf("%v: shard %d has %d of %d keys", c, s, k, n)
			}
		}
		for tag, k := range tags {
			if k < 160 || k > 352 { // 256 +- 6 standard deviations
				t.Errorf("%v: tag %d has %d of %d keys", c, tag, k, n)
			}
		}
		// n keys in n slots at random: n(1-1/e) ~ 41,427 distinct.
		if d := len(slots); d < 40_500 || d > 42_300 {
			t.Errorf("%v: %d distinct home slots of %d keys in %d slots", c, d, n, n)
		}
	}
}
