package storetest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/readreceipt/readreceipt/store"
)

// Expected contents of a key, for table tests.
type (
	// missing: the key is absent.
	missing struct{}
	// raw: the key holds exactly this opaque value.
	raw string
	// count: the key holds a counter with this total.
	count int64
	// members: the key holds a set with exactly these values.
	members []uint32
	// appended: the key holds an append log with exactly these bytes.
	appended []byte
)

// check fails the test unless every key of want holds what want says.
func check(t testing.TB, s store.Store, want map[string]any) {
	t.Helper()
	for key, w := range want {
		switch w := w.(type) {
		case missing:
			if v := get1(t, s, key); v != nil {
				t.Errorf("%q = %q, want missing", key, v)
			}
		case raw:
			if v := get1(t, s, key); v == nil || string(v) != string(w) {
				t.Errorf("%q = %q, want %q", key, v, string(w))
			}
		case count:
			if v := get1(t, s, key); v == nil {
				t.Errorf("%q is missing, want counter %d", key, w)
			} else if n, err := store.DecodeCounter(v); err != nil || n != int64(w) {
				t.Errorf("%q = counter %d (err %v), want %d", key, n, err, w)
			}
		case members:
			wantMembers(t, s, key, roaring.BitmapOf(w...))
		case appended:
			v := get1(t, s, key)
			if got, err := store.DecodeAppend(v); v == nil || err != nil || string(got) != string(w) {
				t.Errorf("%q = %q (err %v), want log %q", key, v, err, string(w))
			}
		default:
			panic(fmt.Sprintf("check: bad expectation %T", w))
		}
	}
}

// bs is shorthand for []byte(s).
func bs(s string) []byte { return []byte(s) }

// testBatchOrder: the operations of one batch apply in order.
func testBatchOrder(t *testing.T, s store.Store) {
	ctr := store.EncodeCounter
	cases := []struct {
		name  string
		setup func(b *store.Batch) // written first, in its own batch
		batch func(b *store.Batch)
		want  map[string]any
	}{
		{
			name: "Set inside a DeleteRange before it survives",
			setup: func(b *store.Batch) {
				b.Set(bs("r/a"), bs("old"))
				b.Set(bs("r/b"), bs("old"))
				b.Set(bs("r/c"), bs("old"))
			},
			batch: func(b *store.Batch) {
				b.DeleteRange(bs("r/"), bs("r0"))
				b.Set(bs("r/b"), bs("new"))
			},
			want: map[string]any{"r/a": missing{}, "r/b": raw("new"), "r/c": missing{}},
		},
		{
			name: "Set before a DeleteRange is removed",
			batch: func(b *store.Batch) {
				b.Set(bs("r/b"), bs("new"))
				b.DeleteRange(bs("r/a"), bs("r/z"))
				b.Set(bs("r/z"), bs("kept"))
			},
			want: map[string]any{"r/b": missing{}, "r/z": raw("kept")},
		},
		{
			name:  "Delete then Set",
			setup: func(b *store.Batch) { b.Set(bs("k"), bs("old")) },
			batch: func(b *store.Batch) {
				b.Delete(bs("k"))
				b.Set(bs("k"), bs("new"))
			},
			want: map[string]any{"k": raw("new")},
		},
		{
			name: "last Set wins",
			batch: func(b *store.Batch) {
				b.Set(bs("k"), bs("1"))
				b.Set(bs("k"), bs("2"))
				b.Set(bs("k"), bs("3"))
			},
			want: map[string]any{"k": raw("3")},
		},
		{
			name:  "Delete of a missing key",
			batch: func(b *store.Batch) { b.Delete(bs("nothing")) },
			want:  map[string]any{"nothing": missing{}},
		},
		{
			name:  "Merge after Delete starts afresh",
			setup: func(b *store.Batch) { b.Merge(bs("n"), ctr(5)) },
			batch: func(b *store.Batch) {
				b.Delete(bs("n"))
				b.Merge(bs("n"), ctr(1))
			},
			want: map[string]any{"n": count(1)},
		},
		{
			name:  "Merge after DeleteRange starts afresh",
			setup: func(b *store.Batch) { b.Merge(bs("n"), ctr(5)) },
			batch: func(b *store.Batch) {
				b.DeleteRange(bs("n"), bs("n\x00"))
				b.Merge(bs("n"), ctr(2))
			},
			want: map[string]any{"n": count(2)},
		},
		{
			name:  "Merge after Delete of a set starts afresh",
			setup: func(b *store.Batch) { b.Merge(bs("s"), store.EncodeSetAdd(1, 2)) },
			batch: func(b *store.Batch) {
				b.Delete(bs("s"))
				b.Merge(bs("s"), store.EncodeSetAdd(3))
			},
			want: map[string]any{"s": members{3}},
		},
		{
			name: "Merge adds to a counter value Set in the same batch",
			batch: func(b *store.Batch) {
				b.Set(bs("n"), ctr(5))
				b.Merge(bs("n"), ctr(3))
			},
			want: map[string]any{"n": count(8)},
		},
		{
			name:  "Merge adds to a counter value Set before",
			setup: func(b *store.Batch) { b.Set(bs("n"), ctr(5)) },
			batch: func(b *store.Batch) { b.Merge(bs("n"), ctr(-2)) },
			want:  map[string]any{"n": count(3)},
		},
		{
			name: "Merge unions into a set value Set in the same batch",
			batch: func(b *store.Batch) {
				b.Set(bs("s"), encodeSet(t, 1, 2))
				b.Merge(bs("s"), store.EncodeSetAdd(3))
			},
			want: map[string]any{"s": members{1, 2, 3}},
		},
		{
			name:  "Set after Merge replaces",
			setup: func(b *store.Batch) { b.Merge(bs("n"), ctr(5)) },
			batch: func(b *store.Batch) {
				b.Merge(bs("n"), ctr(1))
				b.Set(bs("n"), ctr(100))
			},
			want: map[string]any{"n": count(100)},
		},
		{
			name: "Delete after Merge removes",
			batch: func(b *store.Batch) {
				b.Merge(bs("n"), ctr(1))
				b.Delete(bs("n"))
			},
			want: map[string]any{"n": missing{}},
		},
		{
			name: "DeleteRange after Merge removes",
			batch: func(b *store.Batch) {
				b.Merge(bs("m/1"), ctr(1))
				b.Merge(bs("m/2"), store.EncodeSetAdd(1))
				b.Merge(bs("m0"), ctr(1))
				b.DeleteRange(bs("m/"), bs("m0"))
			},
			want: map[string]any{"m/1": missing{}, "m/2": missing{}, "m0": count(1)},
		},
		{
			name:  "Merge, Delete, Merge",
			setup: func(b *store.Batch) { b.Merge(bs("n"), ctr(5)) },
			batch: func(b *store.Batch) {
				b.Merge(bs("n"), ctr(1))
				b.Delete(bs("n"))
				b.Merge(bs("n"), ctr(2))
				b.Merge(bs("n"), ctr(3))
			},
			want: map[string]any{"n": count(5)},
		},
		{
			name:  "many Merges of one key in one batch",
			setup: func(b *store.Batch) { b.Merge(bs("n"), ctr(1000)) },
			batch: func(b *store.Batch) {
				for range 100 {
					b.Merge(bs("n"), ctr(1))
				}
			},
			want: map[string]any{"n": count(1100)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(t, s, func(b *store.Batch) { b.DeleteRange(nil, bs("\xff")) })
			if tc.setup != nil {
				write(t, s, tc.setup)
			}
			write(t, s, tc.batch)
			check(t, s, tc.want)
		})
	}
}

// testCounters: counter operands add, negative deltas included, whether
// they arrive in one batch or in many.
func testCounters(t *testing.T, s store.Store) {
	cases := []struct {
		name   string
		deltas []int64
	}{
		{"one", []int64{1}},
		{"zero is a value", []int64{0}},
		{"add", []int64{5, 3, 1}},
		{"negative", []int64{5, -3}},
		{"below zero", []int64{-7, 2}},
		{"back to zero", []int64{4, -4}},
		{"large", []int64{math.MaxInt64 - 1, 1}},
		{"large negative", []int64{math.MinInt64 + 1, -1}},
	}
	for _, tc := range cases {
		var sum int64
		for _, d := range tc.deltas {
			sum += d
		}
		t.Run(tc.name, func(t *testing.T) {
			apart, together := "apart/"+tc.name, "together/"+tc.name
			for _, d := range tc.deltas {
				merge(t, s, apart, store.EncodeCounter(d))
			}
			write(t, s, func(b *store.Batch) {
				for _, d := range tc.deltas {
					b.Merge(bs(together), store.EncodeCounter(d))
				}
			})
			check(t, s, map[string]any{apart: count(sum), together: count(sum)})
		})
	}
}

// testCounterRunningSum: many merges across many writes fold to the right
// value, and a read after each write sees the folded value.
func testCounterRunningSum(t *testing.T, s store.Store) {
	rng := rand.New(rand.NewPCG(5, 6))
	keys := []string{"c/a", "c/b", "c/c"}
	sums := map[string]int64{}
	for i := range 300 {
		key := keys[rng.IntN(len(keys))]
		d := rng.Int64N(2001) - 1000
		sums[key] += d
		merge(t, s, key, store.EncodeCounter(d))
		if got := counter(t, s, key); got != sums[key] {
			t.Fatalf("after write %d, %q = %d, want %d", i, key, got, sums[key])
		}
	}
	for _, k := range keys {
		if got := counter(t, s, k); got != sums[k] {
			t.Errorf("%q = %d, want %d", k, got, sums[k])
		}
	}
}

// testAppends: append operands concatenate in write order, within one
// batch and across batches, whatever the backend folds and when.
func testAppends(t *testing.T, s store.Store) {
	app := store.EncodeAppend
	var want []byte
	for i := range 500 {
		piece := fmt.Appendf(nil, "<%d>", i)
		want = append(want, piece...)
		if i%3 == 0 {
			write(t, s, func(b *store.Batch) {
				b.Merge(bs("log"), app(piece[:1]))
				b.Merge(bs("log"), app(piece[1:]))
			})
		} else {
			merge(t, s, "log", app(piece))
		}
		if i%97 == 0 {
			check(t, s, map[string]any{"log": appended(want)})
		}
	}
	merge(t, s, "log", app(nil))
	check(t, s, map[string]any{"log": appended(want)})
	write(t, s, func(b *store.Batch) {
		b.Delete(bs("log"))
		b.Merge(bs("log"), app(bs("new")))
	})
	check(t, s, map[string]any{"log": appended("new")})
}

// testSets: set operands union, as 'l' deltas (EncodeSetAdd) and as 's'
// values (EncodeSet), and always read back in a folded form.
func testSets(t *testing.T, s store.Store) {
	add := store.EncodeSetAdd
	cases := []struct {
		name     string
		operands [][]byte
		want     members
	}{
		{"one delta", [][]byte{add(7)}, members{7}},
		{"empty delta", [][]byte{add()}, members{}},
		{"deltas", [][]byte{add(1, 2), add(3), add()}, members{1, 2, 3}},
		{"duplicates", [][]byte{add(5, 5), add(5, 6), add(6)}, members{5, 6}},
		{"extremes", [][]byte{add(0), add(math.MaxUint32), add(1 << 31)}, members{0, 1 << 31, math.MaxUint32}},
		{"one set value", [][]byte{encodeSet(t, 9, 10)}, members{9, 10}},
		{"empty set value", [][]byte{encodeSet(t)}, members{}},
		{"set values", [][]byte{encodeSet(t, 1, 2), encodeSet(t, 2, 3)}, members{1, 2, 3}},
		{"delta then set value", [][]byte{add(1, 100000), encodeSet(t, 2, 70000)}, members{1, 2, 70000, 100000}},
		{"set value then delta", [][]byte{encodeSet(t, 2, 70000), add(1, 70000)}, members{1, 2, 70000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			apart, together := "apart/"+tc.name, "together/"+tc.name
			for _, op := range tc.operands {
				merge(t, s, apart, op)
			}
			write(t, s, func(b *store.Batch) {
				for _, op := range tc.operands {
					b.Merge(bs(together), op)
				}
			})
			check(t, s, map[string]any{apart: tc.want, together: tc.want})
		})
	}
}

// testSetRunningUnion: many set merges across many writes fold to the
// right set, and a read after each write sees it.
func testSetRunningUnion(t *testing.T, s store.Store) {
	rng := rand.New(rand.NewPCG(7, 8))
	keys := []string{"s/a", "s/b", "s/c"}
	want := map[string]*roaring.Bitmap{}
	for _, k := range keys {
		want[k] = roaring.New()
	}
	for i := range 300 {
		key := keys[rng.IntN(len(keys))]
		vals := make([]uint32, rng.IntN(4))
		for j := range vals {
			vals[j] = rng.Uint32N(500) // small range: many duplicates
		}
		want[key].AddMany(vals)
		op := store.EncodeSetAdd(vals...)
		if i%10 == 0 {
			op = encodeSet(t, vals...)
		}
		merge(t, s, key, op)
		wantMembers(t, s, key, want[key])
	}
	for _, k := range keys {
		wantMembers(t, s, k, want[k])
	}
}

// testBadMerge: operands that cannot be folded are reported with an error
// wrapping store.ErrBadMerge, and never corrupt anything else.
//
// The store package leaves a backend a choice of when to report them, so
// exactly two behaviours pass:
//
//   - Write fails with an error wrapping store.ErrBadMerge and applies
//     nothing of the batch (eager backends such as memstore); or
//   - Write succeeds and applies the whole batch, and from then on, until
//     the key is Set or Deleted, every Get that includes the key and every
//     Scan that reaches it fails with an error wrapping store.ErrBadMerge,
//     even after further valid merges (lazy backends such as pebblestore,
//     for operands of different kinds).
//
// In both cases other keys read normally, and a Delete of the key, or a Set,
// makes it usable again. Silently dropping or reinterpreting operands,
// returning a value for the key, or panicking all fail.
func testBadMerge(t *testing.T, s store.Store) {
	ctr, add := store.EncodeCounter, store.EncodeSetAdd
	cases := []struct {
		name    string
		prepare func(b *store.Batch) // a valid history for the key "k"
		bad     func(b *store.Batch) // the bad operations on "k"
	}{
		{"set delta into counter",
			func(b *store.Batch) { b.Merge(bs("k"), ctr(1)) },
			func(b *store.Batch) { b.Merge(bs("k"), add(1)) }},
		{"counter into set",
			func(b *store.Batch) { b.Merge(bs("k"), add(1)) },
			func(b *store.Batch) { b.Merge(bs("k"), ctr(1)) }},
		{"append into counter",
			func(b *store.Batch) { b.Merge(bs("k"), ctr(1)) },
			func(b *store.Batch) { b.Merge(bs("k"), store.EncodeAppend(bs("x"))) }},
		{"set delta into append log",
			func(b *store.Batch) { b.Merge(bs("k"), store.EncodeAppend(bs("x"))) },
			func(b *store.Batch) { b.Merge(bs("k"), add(1)) }},
		{"counter into set value",
			func(b *store.Batch) { b.Merge(bs("k"), encodeSet(t, 1, 2)) },
			func(b *store.Batch) { b.Merge(bs("k"), ctr(1)) }},
		{"mixed kinds in one batch",
			nil,
			func(b *store.Batch) {
				b.Merge(bs("k"), ctr(1))
				b.Merge(bs("k"), add(1))
			}},
		{"merge into opaque value",
			func(b *store.Batch) { b.Set(bs("k"), bs("hello")) },
			func(b *store.Batch) { b.Merge(bs("k"), ctr(1)) }},
		{"merge into empty value",
			func(b *store.Batch) { b.Set(bs("k"), []byte{}) },
			func(b *store.Batch) { b.Merge(bs("k"), add(1)) }},
		{"set delta into counter value Set before",
			func(b *store.Batch) { b.Set(bs("k"), ctr(3)) },
			func(b *store.Batch) { b.Merge(bs("k"), add(1)) }},
		{"empty operand", nil,
			func(b *store.Batch) { b.Merge(bs("k"), []byte{}) }},
		{"unknown tag", nil,
			func(b *store.Batch) { b.Merge(bs("k"), bs("x123")) }},
		{"short counter", nil,
			func(b *store.Batch) { b.Merge(bs("k"), bs("n\x01")) }},
		{"bad delta length", nil,
			func(b *store.Batch) { b.Merge(bs("k"), bs("l\x01\x02")) }},
		{"garbage set value", nil,
			func(b *store.Batch) { b.Merge(bs("k"), bs("sgarbage")) }},
		{"malformed operand into counter",
			func(b *store.Batch) { b.Merge(bs("k"), ctr(1)) },
			func(b *store.Batch) { b.Merge(bs("k"), bs("n")) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(t, s, func(b *store.Batch) {
				b.DeleteRange(nil, bs("\xff"))
				b.Set(bs("a"), bs("before"))
				b.Merge(bs("z"), ctr(1))
				if tc.prepare != nil {
					tc.prepare(b)
				}
			})
			before := scanAll(t, s)
			err := tryWrite(s, noSync, func(b *store.Batch) {
				b.Set(bs("a"), bs("after"))
				tc.bad(b)
				b.Merge(bs("z"), ctr(1))
			})
			if err != nil {
				// Reported by Write: nothing of the batch may be applied.
				if !isErr(err, store.ErrBadMerge) {
					t.Fatalf("Write failed with %v, want an error wrapping store.ErrBadMerge", err)
				}
				sameKVs(t, "store after a failed Write", scanAll(t, s), before)
			} else {
				// Reported by reads: the rest of the batch is applied, and
				// the key fails to read, before and after more merges.
				check(t, s, map[string]any{"a": raw("after"), "z": count(2)})
				wantBadRead(t, s, "after the bad Write")
				if err := tryWrite(s, noSync, func(b *store.Batch) { b.Merge(bs("k"), ctr(1)) }); err != nil && !isErr(err, store.ErrBadMerge) {
					t.Fatalf("Merge into a bad key failed with %v, want nil or an error wrapping store.ErrBadMerge", err)
				}
				wantBadRead(t, s, "after a further Merge")
			}
			// Delete makes k usable again, and so does Set.
			write(t, s, func(b *store.Batch) { b.Delete(bs("k")) })
			merge(t, s, "k", ctr(4))
			check(t, s, map[string]any{"k": count(4)})
			if err := tryWrite(s, noSync, tc.bad); err != nil && !isErr(err, store.ErrBadMerge) {
				t.Fatalf("bad Write again: %v, want nil or an error wrapping store.ErrBadMerge", err)
			}
			write(t, s, func(b *store.Batch) { b.Set(bs("k"), bs("reset")) })
			check(t, s, map[string]any{"k": raw("reset")})
		})
	}
}

// wantBadRead checks that reading key "k" fails with store.ErrBadMerge, and
// that reading around it does not.
func wantBadRead(t *testing.T, s store.Store, when string) {
	t.Helper()
	if v, err := s.Get(bg, [][]byte{bs("k")}); !isErr(err, store.ErrBadMerge) {
		t.Fatalf("%s, Get(k) = %q, %v; want an error wrapping store.ErrBadMerge", when, v, err)
	}
	if v, err := s.Get(bg, [][]byte{bs("a"), bs("k")}); !isErr(err, store.ErrBadMerge) {
		t.Fatalf("%s, Get(a, k) = %q, %v; want an error wrapping store.ErrBadMerge", when, v, err)
	}
	err := s.Scan(bg, nil, nil, func(k, v []byte) bool { return true })
	if !isErr(err, store.ErrBadMerge) {
		t.Fatalf("%s, Scan over k = %v; want an error wrapping store.ErrBadMerge", when, err)
	}
	if got := scan(t, s, nil, bs("k")); len(got) == 0 {
		t.Fatalf("%s, Scan(nil, k) found nothing", when)
	}
	check(t, s, map[string]any{"a": raw("after")})
}

// testLargeValues: large opaque values and a 1,000,000-element set
// round-trip, as values and as merge operands.
func testLargeValues(t *testing.T, s store.Store) {
	big := make([]byte, 4<<20)
	_, _ = rand.NewChaCha8([32]byte{9, 10}).Read(big)
	set(t, s, "blob", string(big))
	if v := get1(t, s, "blob"); string(v) != string(big) {
		t.Fatalf("4 MiB value read back as %d different bytes", len(v))
	}
	if got := scan(t, s, bs("blob"), nil); len(got) != 1 || got[0].value != string(big) {
		t.Fatal("Scan did not return the 4 MiB value")
	}

	vals := make([]uint32, 1_000_000)
	for i := range vals {
		vals[i] = uint32(i)*3 + uint32(i%7) // irregular, so not a few runs
	}
	want := roaring.BitmapOf(vals...)
	enc, err := store.EncodeSet(want.Clone())
	if err != nil {
		t.Fatal(err)
	}
	set(t, s, "set/value", string(enc))
	wantMembers(t, s, "set/value", want)

	merge(t, s, "set/merged", enc)
	merge(t, s, "set/merged", store.EncodeSetAdd(1, 2, 4_000_000_000))
	merge(t, s, "set/merged", enc)
	want.AddMany([]uint32{1, 2, 4_000_000_000})
	wantMembers(t, s, "set/merged", want)
	if n := readSet(t, s, "set/merged").GetCardinality(); n < 1_000_000 {
		t.Fatalf("cardinality %d", n)
	}
}
