package storetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/readreceipt/readreceipt/store"
)

// testGetMissing: a missing key reads as a nil entry, not an error.
func testGetMissing(t *testing.T, s store.Store) {
	vals, err := s.Get(bg, nil)
	if err != nil || len(vals) != 0 {
		t.Fatalf("Get(no keys) = %q, %v; want no values, no error", vals, err)
	}
	set(t, s, "present", "x")
	got := get(t, s, "absent", "", "present\x00", "presen")
	for i, v := range got {
		if v != nil {
			t.Errorf("Get of missing key #%d = %q, want nil", i, v)
		}
	}
}

// testGetEmptyValue: a key present with an empty value reads as a non-nil,
// zero-length entry, whether it was Set with []byte{} or with nil.
func testGetEmptyValue(t *testing.T, s store.Store) {
	write(t, s, func(b *store.Batch) {
		b.Set([]byte("empty"), []byte{})
		b.Set([]byte("nil"), nil)
	})
	for i, v := range get(t, s, "empty", "nil") {
		if v == nil || len(v) != 0 {
			t.Errorf("Get of empty value #%d = %#v, want non-nil []byte{}", i, v)
		}
	}
	sameKVs(t, "Scan", scanAll(t, s), []kv{{"empty", ""}, {"nil", ""}})
}

// testGetOrder: values come back in the order of keys, duplicates and
// missing keys included.
func testGetOrder(t *testing.T, s store.Store) {
	write(t, s, func(b *store.Batch) {
		b.Set([]byte("a"), []byte("1"))
		b.Set([]byte("b"), []byte("2"))
		b.Set([]byte("c"), []byte("3"))
	})
	got := get(t, s, "c", "missing", "a", "b", "a")
	want := []string{"3", "", "1", "2", "1"}
	for i := range want {
		if i == 1 {
			if got[i] != nil {
				t.Errorf("value #%d = %q, want nil", i, got[i])
			}
			continue
		}
		if string(got[i]) != want[i] {
			t.Errorf("value #%d = %q, want %q", i, got[i], want[i])
		}
	}
}

// testGetMany: a Get of many keys (stores may read them another way than
// a few, as pebblestore does with one iterator) reads what a Get of each
// key alone reads: set, overwritten, empty, deleted, range-deleted, folded
// merges, keys that extend or cut a present one, missing ones, repeats, in
// any order.
func testGetMany(t *testing.T, s store.Store) {
	rng := rand.New(rand.NewPCG(7, 7))
	var keys []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("k%03d", i))
	}
	write(t, s, func(b *store.Batch) {
		for i, k := range keys {
			b.Set([]byte(k), []byte(strings.Repeat("v", i%5)))
		}
	})
	write(t, s, func(b *store.Batch) {
		b.Set([]byte("k001"), []byte("again"))
		b.Delete([]byte("k002"))
		b.DeleteRange([]byte("k010"), []byte("k015"))
		b.Merge([]byte("n1"), store.EncodeCounter(3))
	})
	merge(t, s, "n1", store.EncodeCounter(4))
	merge(t, s, "n2", store.EncodeCounter(-2))
	asked := append(slices.Clone(keys), "n1", "n2", "k", "k0011", "k01", "missing", "", "k001", "k003")
	rng.Shuffle(len(asked), func(i, j int) { asked[i], asked[j] = asked[j], asked[i] })
	got := get(t, s, asked...)
	for i, k := range asked {
		want := get1(t, s, k)
		if (got[i] == nil) != (want == nil) || !bytes.Equal(got[i], want) {
			t.Errorf("Get of %d keys: %q = %q, alone %q", len(asked), k, got[i], want)
		}
	}
	for _, k := range []string{"k002", "k010", "k014", "missing", ""} {
		if v := get1(t, s, k); v != nil {
			t.Errorf("%q = %q, want none", k, v)
		}
	}
	if n := counter(t, s, "n1"); n != 7 {
		t.Errorf("n1 = %d, want 7", n)
	}
}

// testGetCallerOwned: the slices Get returns belong to the caller; changing
// them changes nothing in the store, nor in other returned slices.
func testGetCallerOwned(t *testing.T, s store.Store) {
	set(t, s, "k", "value")
	merge(t, s, "n", store.EncodeCounter(7))
	got := get(t, s, "k", "k", "n")
	got[0][0] = 'X'
	_ = append(got[0][:1], "YYYY"...)
	if string(got[1]) != "value" {
		t.Fatalf("changing one returned slice changed another: %q", got[1])
	}
	got[2][8] ^= 0xff
	if v := get1(t, s, "k"); string(v) != "value" {
		t.Fatalf("after changing a returned slice, Get = %q, want %q", v, "value")
	}
	if n := counter(t, s, "n"); n != 7 {
		t.Fatalf("after changing a returned slice, counter = %d, want 7", n)
	}
}

// testBatchNotRetained: Write does not keep the batch's slices; changing
// them afterwards, or reusing the batch, changes nothing in the store.
func testBatchNotRetained(t *testing.T, s store.Store) {
	key := []byte("k1")
	val := []byte("v1")
	ctr := store.EncodeCounter(5)
	delta := store.EncodeSetAdd(1, 2)
	var b store.Batch
	b.Set(key, val)
	b.Merge([]byte("ctr"), ctr)
	b.Merge([]byte("set"), delta)
	if err := s.Write(bg, &b, noSync); err != nil {
		t.Fatal(err)
	}
	key[1] = 'X'
	val[0] = 'Z'
	ctr[8] = 99
	delta[1] = 7
	b.Reset()
	b.Set([]byte("k2"), []byte("v2"))
	if err := s.Write(bg, &b, noSync); err != nil {
		t.Fatal(err)
	}
	sameKVs(t, "keys after changing the batch's slices", keysOnly(scanAll(t, s)),
		[]kv{{"ctr", ""}, {"k1", ""}, {"k2", ""}, {"set", ""}})
	if v := get1(t, s, "k1"); string(v) != "v1" {
		t.Errorf("k1 = %q, want %q", v, "v1")
	}
	if n := counter(t, s, "ctr"); n != 5 {
		t.Errorf("ctr = %d, want 5", n)
	}
	wantMembers(t, s, "set", roaring.BitmapOf(1, 2))
}

// keysOnly drops the values, for comparing key sets.
func keysOnly(kvs []kv) []kv {
	out := make([]kv, len(kvs))
	for i, p := range kvs {
		out[i] = kv{key: p.key}
	}
	return out
}

// testEmptyBatch: writing an empty batch is a no-op, not an error.
func testEmptyBatch(t *testing.T, s store.Store) {
	var b store.Batch
	if err := s.Write(bg, &b, noSync); err != nil {
		t.Fatalf("Write(empty batch): %v", err)
	}
	b.Set([]byte("k"), []byte("v"))
	b.Reset()
	if err := s.Write(bg, &b, withSync); err != nil {
		t.Fatalf("Write(reset batch): %v", err)
	}
	if got := scanAll(t, s); len(got) != 0 {
		t.Fatalf("store holds %v after empty writes", got)
	}
}

// testSyncWrite: synced writes work like unsynced ones.
func testSyncWrite(t *testing.T, s store.Store) {
	for i := range 3 {
		err := tryWrite(s, withSync, func(b *store.Batch) {
			b.Set([]byte(fmt.Sprint("k", i)), []byte("v"))
			b.Merge([]byte("n"), store.EncodeCounter(1))
		})
		if err != nil {
			t.Fatalf("synced Write: %v", err)
		}
	}
	if n := counter(t, s, "n"); n != 3 {
		t.Fatalf("counter = %d, want 3", n)
	}
	sameKVs(t, "keys", keysOnly(scan(t, s, []byte("k"), []byte("l"))),
		[]kv{{key: "k0"}, {key: "k1"}, {key: "k2"}})
}

// orderedKeys are distinct keys in ascending bytewise order, including the
// empty key, prefixes of one another and bytes above 0x7f.
var orderedKeys = []string{"", "\x00", "\x00\x00", "\x01", "a", "a\x00", "aa", "ab", "b", "ba", "\x7f", "\x80", "\xff", "\xff\x00", "\xff\xff"}

// testScanOrder: Scan reports keys in ascending bytewise order.
func testScanOrder(t *testing.T, s store.Store) {
	shuffled := slices.Clone(orderedKeys)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	// One key per write, then again in one batch: both must sort.
	for _, k := range shuffled[:len(shuffled)/2] {
		set(t, s, k, k+"!")
	}
	write(t, s, func(b *store.Batch) {
		for _, k := range shuffled[len(shuffled)/2:] {
			b.Set([]byte(k), []byte(k+"!"))
		}
	})
	var want []kv
	for _, k := range orderedKeys {
		want = append(want, kv{k, k + "!"})
	}
	sameKVs(t, "Scan(nil, nil)", scanAll(t, s), want)
}

// testScanBounds: Scan honours [start, end), with a nil end unbounded.
func testScanBounds(t *testing.T, s store.Store) {
	for _, k := range []string{"a", "b", "bb", "c", "d", "e"} {
		set(t, s, k, "v"+k)
	}
	cases := []struct {
		name       string
		start, end []byte
		want       string // keys, space-separated
	}{
		{"all", nil, nil, "a b bb c d e"},
		{"empty start", []byte{}, nil, "a b bb c d e"},
		{"start inclusive end exclusive", []byte("b"), []byte("d"), "b bb c"},
		{"nil end is unbounded", []byte("bb"), nil, "bb c d e"},
		{"nil start", nil, []byte("c"), "a b bb"},
		{"bounds between keys", []byte("ba"), []byte("cc"), "bb c"},
		{"end just past a key", []byte("a"), []byte("a\x00"), "a"},
		{"start past last key", []byte("f"), nil, ""},
		{"end before first key", nil, []byte("a"), ""},
		{"start equals end", []byte("c"), []byte("c"), ""},
		{"start after end", []byte("d"), []byte("b"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range scan(t, s, tc.start, tc.end) {
				if p.value != "v"+p.key {
					t.Errorf("Scan reported %s", p)
				}
				got = append(got, p.key)
			}
			var want []string
			if tc.want != "" {
				want = strings.Fields(tc.want)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Scan(%q, %q) keys = %q, want %q", tc.start, tc.end, got, want)
			}
		})
	}
}

// testScanStops: Scan stops as soon as fn returns false.
func testScanStops(t *testing.T, s store.Store) {
	write(t, s, func(b *store.Batch) {
		for i := range 20 {
			b.Set(fmt.Appendf(nil, "k%02d", i), []byte("v"))
		}
	})
	for _, stopAt := range []int{1, 5, 20} {
		calls := 0
		var last string
		err := s.Scan(bg, nil, nil, func(k, v []byte) bool {
			calls++
			last = string(k)
			return calls < stopAt
		})
		if err != nil {
			t.Fatal(err)
		}
		if calls != stopAt || last != fmt.Sprintf("k%02d", stopAt-1) {
			t.Errorf("stopping at call %d: fn called %d times, last key %q", stopAt, calls, last)
		}
	}
}

// testScanReentrant: fn may call Get and Scan on the same store.
func testScanReentrant(t *testing.T, s store.Store) {
	write(t, s, func(b *store.Batch) {
		for i := range 10 {
			b.Set(fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i))
		}
	})
	within(t, 30*time.Second, "Scan calling Get and Scan", func() {
		seen := 0
		err := s.Scan(bg, nil, nil, func(k, v []byte) bool {
			seen++
			got, err := s.Get(bg, [][]byte{k, []byte("k0")})
			if err != nil {
				t.Errorf("Get inside Scan: %v", err)
				return false
			}
			if !bytes.Equal(got[0], v) || string(got[1]) != "v0" {
				t.Errorf("Get inside Scan at %q = %q", k, got)
			}
			rest := 0
			err = s.Scan(bg, k, nil, func(k2, v2 []byte) bool {
				rest++
				return true
			})
			if err != nil {
				t.Errorf("Scan inside Scan: %v", err)
				return false
			}
			if want := 10 - (seen - 1); rest != want {
				t.Errorf("Scan inside Scan at %q saw %d keys, want %d", k, rest, want)
			}
			return true
		})
		if err != nil || seen != 10 {
			t.Errorf("outer Scan: saw %d keys, err %v", seen, err)
		}
	})
}

// testDeleteRangeExact: DeleteRange removes exactly [start, end); an empty
// or inverted range, and a nil end (which, unlike Scan's, is the empty key
// and so bounds an empty range), remove nothing.
func testDeleteRangeExact(t *testing.T, s store.Store) {
	all := []string{"a", "b", "b\x00", "ba", "bzzz", "c", "c\x00", "d"}
	reset := func() {
		write(t, s, func(b *store.Batch) {
			b.DeleteRange(nil, []byte("\xff"))
			for _, k := range all {
				b.Set([]byte(k), []byte("v"))
			}
		})
	}
	cases := []struct {
		name       string
		start, end []byte
		left       []string
	}{
		{"inner range", []byte("b"), []byte("c"), []string{"a", "c", "c\x00", "d"}},
		{"one key", []byte("b"), []byte("b\x00"), []string{"a", "b\x00", "ba", "bzzz", "c", "c\x00", "d"}},
		{"bounds between keys", []byte("a\x00"), []byte("bzz"), []string{"a", "bzzz", "c", "c\x00", "d"}},
		{"everything", nil, []byte("e"), nil},
		{"start equals end", []byte("b"), []byte("b"), all},
		{"start after end", []byte("c"), []byte("a"), all},
		{"nil end", []byte("b"), nil, all},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reset()
			write(t, s, func(b *store.Batch) { b.DeleteRange(tc.start, tc.end) })
			var got []string
			for _, p := range scanAll(t, s) {
				got = append(got, p.key)
			}
			if !slices.Equal(got, tc.left) {
				t.Fatalf("DeleteRange(%q, %q) left %q, want %q", tc.start, tc.end, got, tc.left)
			}
		})
	}
}

// testManyKeys: thousands of keys written in batches scan back in order and
// range deletions remove exactly their share.
func testManyKeys(t *testing.T, s store.Store) {
	const n, per = 20000, 1000
	order := rand.New(rand.NewPCG(3, 4)).Perm(n)
	for i := 0; i < n; i += per {
		write(t, s, func(b *store.Batch) {
			for _, k := range order[i : i+per] {
				b.Set(fmt.Appendf(nil, "k%06d", k), fmt.Appendf(nil, "%d", k))
			}
		})
	}
	checkRun := func(what string, from, to int) {
		t.Helper()
		i := from
		err := s.Scan(bg, nil, nil, func(k, v []byte) bool {
			if string(k) != fmt.Sprintf("k%06d", i) || string(v) != fmt.Sprint(i) {
				t.Errorf("%s: key #%d is %q=%q", what, i-from, k, v)
				return false
			}
			i++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if i != to {
			t.Fatalf("%s: scanned keys %d..%d, want %d..%d", what, from, i, from, to)
		}
	}
	checkRun("after load", 0, n)
	write(t, s, func(b *store.Batch) {
		b.DeleteRange([]byte("k"), fmt.Appendf(nil, "k%06d", n/2))
	})
	checkRun("after deleting the first half", n/2, n)
}
