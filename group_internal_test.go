package readreceipt

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// uniqueMembers keeps the first of each ID in order, with its bucket, on
// both of its paths (a map up to 1024 IDs, hash radix sort above).
func TestUniqueIDs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 1024, 1025, 100_000} {
		for _, distinct := range []int{n, n/3 + 1} {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = "u" + strconv.Itoa(rng.IntN(distinct))
				if distinct == n {
					ids[i] = "u" + strconv.Itoa(i)
				}
			}
			var want []string
			seen := map[string]bool{}
			for _, u := range ids {
				if !seen[u] {
					seen[u] = true
					want = append(want, u)
				}
			}
			got, bkts := uniqueMembers(ids)
			assert.Equal(t, len(want), len(got), "n=%d distinct=%d", n, distinct)
			assert.Equal(t, want, append([]string(nil), got...), "n=%d distinct=%d", n, distinct)
			require.Len(t, bkts, len(got), "n=%d distinct=%d", n, distinct)
			for i, u := range got {
				if bkts[i] != memberBucket(u) {
					t.Fatalf("n=%d distinct=%d: bucket of %q (%d) is %d, not %d", n, distinct, u, i, bkts[i], memberBucket(u))
				}
			}
		}
	}
}

// markDups, which uniqueMembers runs on IDs whose hashes tie, marks the later
// repeats only.
func TestMarkDups(t *testing.T) {
	ids := []string{"a", "b", "a", "c", "b", "a"}
	dup := markDups(nil, ids, []int{0, 1, 2, 4, 5}, func(i int) uint32 { return uint32(i) })
	assert.Equal(t, []bool{false, false, true, false, true, true}, dup)
	assert.Nil(t, markDups(nil, ids, []int{0, 1, 3}, func(i int) uint32 { return uint32(i) }))
}

// The bucket of a user is part of the stored layout: a change of the hash
// would make every stored group lose its members.
func TestMemberBucketIsStable(t *testing.T) {
	got := []uint16{memberBucket("u0000000"), memberBucket("u0000001"), memberBucket("alice"), memberBucket("群成员")}
	assert.Equal(t, []uint16{0x377d, 0x7c83, 0x3507, 0x4d8d}, got)
}

// Bucket and names values round-trip, and malformed ones are errors, not
// panics.
func TestMemberValues(t *testing.T) {
	v := appendBucketEntry(appendBucketEntry(nil, "a", 1), "bb", 300_000)
	idx, ok, err := bucketFind(v, "bb")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, uint32(300_000), idx)
	_, ok, err = bucketFind(v, "c")
	require.NoError(t, err)
	assert.False(t, ok)
	for _, bad := range [][]byte{{5, 'a'}, {1, 'a'}, {1, 'a', 0x80}} {
		_, _, err := bucketFind(bad, "zz")
		assert.Error(t, err, "%q", bad)
	}
	nb, err := decodeNameBlock(appendLP(appendLP(nil, "x"), "yz"))
	require.NoError(t, err)
	assert.Equal(t, []string{"x", "yz", ""}, []string{nb.user(0), nb.user(1), nb.user(2)})
	for _, bad := range [][]byte{{3, 'a'}, {0}} {
		_, err := decodeNameBlock(bad)
		assert.Error(t, err, "%q", bad)
	}
	head, err := namesPrefix(appendLP(appendLP(nil, "x"), "yz"), 1)
	require.NoError(t, err)
	assert.Equal(t, appendLP(nil, "x"), head)
	_, err = namesPrefix(appendLP(nil, "x"), 2)
	assert.Error(t, err)
}

// putBuckets (the path for more than 1024 new members) writes the same
// buckets as appending each new member's entry, in index order, to its
// bucket's stored value: the layout every lookup (bucketFind) reads.
func TestPutBucketsMatchesAppending(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1025, 5000, 300_000} {
		for _, withStored := range []bool{false, true} {
			users := make([]string, n)
			bkts := make([]uint16, n)
			for i := range users {
				// IDs of 1 to 255 bytes: every length a bucket entry takes.
				users[i] = fmt.Sprintf("u%d-", i) + string(make([]byte, rng.IntN(240)))
				if i%7 == 0 {
					users[i] = users[i][:1]
				}
				bkts[i] = memberBucket(users[i])
			}
			// Indexes from 100,000 on: varints of three bytes, and of two
			// with first near 16,384.
			first := uint32(100_000)
			if withStored {
				first = 16_000
			}
			stored := map[uint16][]byte{}
			if withStored {
				for k := 0; k < memberBuckets; k += 3 {
					stored[uint16(k)] = appendBucketEntry(nil, "old"+strconv.Itoa(k), uint32(k))
				}
			}
			want := map[uint16][]byte{}
			for i, u := range users {
				v, ok := want[bkts[i]]
				if !ok {
					v = slices.Clone(stored[bkts[i]])
				}
				want[bkts[i]] = appendBucketEntry(v, u, first+uint32(i))
			}
			var b store.Batch
			putBuckets(&b, "g", first, users, bkts, func(bk uint16) []byte { return stored[bk] })
			require.Equal(t, len(want), b.Len(), "n=%d stored=%v", n, withStored)
			byKey := map[string]uint16{}
			for k := range want {
				byKey[string(bucketKey("g", k))] = k
			}
			var last []byte
			for _, op := range b.Ops() {
				require.Equal(t, store.OpSet, op.Kind)
				require.Less(t, string(last), string(op.Key), "keys in ascending order")
				last = op.Key
				bk, ok := byKey[string(op.Key)]
				require.True(t, ok, "key %q of no bucket written to", op.Key)
				require.Equal(t, want[bk], op.Value, "bucket %d, n=%d stored=%v", bk, n, withStored)
			}
		}
	}
}

// BenchmarkPutBuckets: the lookup buckets of a new group of a million
// members, as CreateGroup writes them.
func BenchmarkPutBuckets(b *testing.B) {
	users := make([]string, 1_000_000)
	bkts := make([]uint16, len(users))
	for i := range users {
		users[i] = fmt.Sprintf("v%07d", i)
		bkts[i] = memberBucket(users[i])
	}
	b.ReportAllocs()
	for b.Loop() {
		var bt store.Batch
		putBuckets(&bt, "big", 0, users, bkts, func(uint16) []byte { return nil })
	}
}

// BenchmarkUniqueIDs: uniqueMembers, the duplicate check of a million-member list
// without repeats, as CreateGroup runs it.
func BenchmarkUniqueIDs(b *testing.B) {
	users := make([]string, 1_000_000)
	for i := range users {
		users[i] = fmt.Sprintf("v%07d", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if out, _ := uniqueMembers(users); len(out) != len(users) {
			b.Fatalf("%d of %d kept", len(out), len(users))
		}
	}
}

// A group's member indexes end below 2^32-1: an add that needs more fails
// with ErrInvalidParameter and changes nothing, counted over the users who
// join, not those who are members already.
func TestAddMembersUpToTheLastIndex(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	e, err := Open(mem)
	require.NoError(t, err)
	require.NoError(t, e.CreateGroup(ctx, "g", GroupWork, []string{"a", "b"}))
	require.NoError(t, e.Close())

	// Move the group's next index to the start of the last names block
	// (whose key is not there yet, as after a jump).
	vals, err := mem.Get(ctx, [][]byte{groupMetaKey("g")})
	require.NoError(t, err)
	g, err := decodeGroup(vals[0])
	require.NoError(t, err)
	g.NextIndex = math.MaxUint32 - 511
	var b store.Batch
	b.Set(groupMetaKey("g"), g.encode())
	require.NoError(t, mem.Write(ctx, &b, store.WriteOptions{Sync: true}))

	e, err = Open(mem)
	require.NoError(t, err)
	defer e.Close()
	info := func() GroupInfo {
		info, err := e.GetGroup(ctx, "g")
		require.NoError(t, err)
		return info
	}
	var fill []string
	for i := range 509 {
		fill = append(fill, fmt.Sprint("f", i))
	}
	require.NoError(t, e.AddGroupMembers(ctx, "g", append(fill, "a")))       // 2^32-512 to 2^32-4
	require.NoError(t, e.AddGroupMembers(ctx, "g", []string{"a", "c", "b"})) // 2^32-3
	require.NoError(t, e.RemoveGroupMembers(ctx, "g", fill))
	require.Equal(t, 3, info().Members)
	full := func(users ...string) {
		before := info()
		err := e.AddGroupMembers(ctx, "g", users)
		require.ErrorIs(t, err, ErrInvalidParameter, "%v", users)
		require.Equal(t, before, info(), "%v", users)
	}
	full("d", "e") // 2^32-2 and 2^32-1
	full("c", "d", "a", "e")
	require.NoError(t, e.AddGroupMembers(ctx, "g", []string{"c", "d", "a"})) // 2^32-2, the last
	require.Equal(t, 4, info().Members)
	require.NoError(t, e.AddGroupMembers(ctx, "g", []string{"a", "b", "c", "d"})) // none joins
	full("e")
	require.NoError(t, e.RemoveGroupMembers(ctx, "g", []string{"d", "x"}))
	require.Equal(t, 3, info().Members)
	full("e")
	require.NoError(t, e.AddGroupMembers(ctx, "g", []string{"d"})) // back, with its index
	require.Equal(t, 4, info().Members)
	full("e")

	// The members are the users added, each with its index.
	err = e.TrackMessage(ctx, Message{Conversation: Group("g"), ID: "m", Sender: "a"})
	require.NoError(t, err)
	for _, u := range []string{"b", "c", "d"} {
		_, err := e.SendMessageReadReceipt(ctx, u, []MessageRef{{Conversation: Group("g"), ID: "m"}})
		require.NoError(t, err)
	}
	infos, err := e.GetMessageReadReceiptList(ctx, AsUser("a"), []MessageRef{{Conversation: Group("g"), ID: "m"}})
	require.NoError(t, err)
	require.Equal(t, 3, infos[0].ReadCount)
	require.Equal(t, 0, infos[0].UnreadCount)
}
