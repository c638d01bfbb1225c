package storetest

import (
	"fmt"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/readreceipt/readreceipt/store"
)

// RunReopen runs the persistence tests of a backend that keeps its data in
// a directory: what was written before Close, synced or not, is all there
// when the same directory is opened again, merged counters and sets folded
// correctly, including merges made across several openings. open must open
// (creating if needed) the store in dir; RunReopen closes what it opens.
func RunReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("ReopenManyMerges", func(t *testing.T) { testReopenManyMerges(t, open) })
	t.Run("ReopenIngested", func(t *testing.T) { testReopenIngested(t, open) })
}

// testReopenIngested: what Ingest applied is there after a reopen, over
// and under ordinary writes.
func testReopenIngested(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	in, ok := s.(store.Ingester)
	if !ok {
		closeStore(t, s)
		t.Skipf("%T does not implement store.Ingester", s)
	}
	set(t, s, "before", "b")
	set(t, s, "over", "written")
	var b store.Batch
	for i := range 100 {
		b.Set(fmt.Appendf(nil, "g/%03d", i), fmt.Appendf(nil, "%d", i))
	}
	b.Set(bs("over"), bs("ingested"))
	b.Delete(bs("before"))
	if err := in.Ingest(bg, &b); err != nil {
		t.Fatal(err)
	}
	set(t, s, "g/050", "after")
	closeStore(t, s)
	s = open(t, dir)
	defer closeStore(t, s)
	want := map[string]any{"before": missing{}, "over": raw("ingested"), "g/050": raw("after")}
	for i := range 100 {
		if i != 50 {
			want[fmt.Sprintf("g/%03d", i)] = raw(fmt.Sprint(i))
		}
	}
	check(t, s, want)
}

// reopenState is what testReopen expects to find, by key.
type reopenState map[string]any

func testReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	want := reopenState{}
	setMembers := roaring.New()

	s := open(t, dir)
	write(t, s, func(b *store.Batch) {
		for i := range 50 {
			b.Set(fmt.Appendf(nil, "o/%02d", i), fmt.Appendf(nil, "v%d", i))
		}
		b.Set(bs("empty"), []byte{})
		b.Set(bs("base"), store.EncodeCounter(10))
	})
	if err := tryWrite(s, withSync, func(b *store.Batch) {
		b.DeleteRange(bs("o/10"), bs("o/20"))
		b.Delete(bs("o/30"))
		b.Set(bs("o/15"), bs("again"))
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if i >= 10 && i < 20 || i == 30 {
			want[fmt.Sprintf("o/%02d", i)] = missing{}
		} else {
			want[fmt.Sprintf("o/%02d", i)] = raw(fmt.Sprint("v", i))
		}
	}
	want["o/15"] = raw("again")
	want["empty"] = raw("")
	for i := range 40 {
		opts := noSync
		if i%10 == 0 {
			opts = withSync
		}
		if err := tryWrite(s, opts, func(b *store.Batch) {
			b.Merge(bs("ctr"), store.EncodeCounter(int64(i)))
			b.Merge(bs("base"), store.EncodeCounter(-1))
			b.Merge(bs("set"), store.EncodeSetAdd(uint32(i), uint32(i*1000)))
		}); err != nil {
			t.Fatal(err)
		}
		setMembers.AddMany([]uint32{uint32(i), uint32(i * 1000)})
	}
	big := roaring.New()
	big.AddRange(1_000_000, 1_100_000)
	enc, err := store.EncodeSet(big.Clone())
	if err != nil {
		t.Fatal(err)
	}
	merge(t, s, "set", enc)
	setMembers.Or(big)
	want["ctr"] = count(40 * 39 / 2)
	want["base"] = count(10 - 40)
	want["set"] = members(setMembers.ToArray())
	check(t, s, want)
	closeStore(t, s)

	s = open(t, dir)
	check(t, s, want)
	// More merges on the reopened store fold with the old ones.
	for i := range 10 {
		write(t, s, func(b *store.Batch) {
			b.Merge(bs("ctr"), store.EncodeCounter(1))
			b.Merge(bs("set"), store.EncodeSetAdd(uint32(5_000_000+i)))
		})
		setMembers.Add(uint32(5_000_000 + i))
	}
	want["ctr"] = count(40*39/2 + 10)
	want["set"] = members(setMembers.ToArray())
	check(t, s, want)
	closeStore(t, s)

	s = open(t, dir)
	defer closeStore(t, s)
	check(t, s, want)
	// 50 o/ keys, 11 deleted, 1 set again; empty, base, ctr, set.
	if n, want := len(scanAll(t, s)), 50-11+1+4; n != want {
		t.Errorf("reopened store holds %d keys, want %d", n, want)
	}
}

// testReopenManyMerges: thousands of unsynced merges into a few keys, across
// three openings, fold to the right values.
func testReopenManyMerges(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	const rounds, perRound = 3, 2000
	for round := range rounds {
		s := open(t, dir)
		for i := range perRound {
			write(t, s, func(b *store.Batch) {
				b.Merge(fmt.Appendf(nil, "ctr/%d", i%4), store.EncodeCounter(1))
				b.Merge(fmt.Appendf(nil, "set/%d", i%4), store.EncodeSetAdd(uint32(round*perRound+i)))
				b.Merge(fmt.Appendf(nil, "log/%d", i%4), store.EncodeAppend(fmt.Appendf(nil, "%d,", round*perRound+i)))
			})
		}
		closeStore(t, s)
	}
	s := open(t, dir)
	defer closeStore(t, s)
	for k := range 4 {
		want := roaring.New()
		for v := k; v < rounds*perRound; v += 4 {
			want.Add(uint32(v))
		}
		check(t, s, map[string]any{fmt.Sprint("ctr/", k): count(rounds * perRound / 4)})
		wantMembers(t, s, fmt.Sprint("set/", k), want)
		var log []byte
		for v := k; v < rounds*perRound; v += 4 {
			log = fmt.Appendf(log, "%d,", v)
		}
		check(t, s, map[string]any{fmt.Sprint("log/", k): appended(log)})
	}
}

// closeStore closes s, failing the test on error.
func closeStore(t *testing.T, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
