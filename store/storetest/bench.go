package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/readreceipt/readreceipt/store"
)

// Sizes of the benchmark data set.
const (
	benchKeys      = 10_000 // keys preloaded for the read benchmarks
	benchValueSize = 100    // bytes in a preloaded value
	benchMergeKeys = 64     // keys the merge benchmarks spread over
)

// benchKeyList holds the keys of the benchmark data set, so that
// benchmarks do not count the allocation of keys.
var benchKeyList = func() [][]byte {
	keys := make([][]byte, benchKeys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "bench/k%09d", i)
	}
	return keys
}()

// benchKey returns the i-th key of the benchmark data set (16 bytes),
// cycling through benchKeys keys.
func benchKey(i int) []byte { return benchKeyList[i%benchKeys] }

// RunBenchmarks runs the shared benchmarks on stores made by newStore, one
// fresh, empty store for each benchmark; RunBenchmarks closes them. Each
// benchmark is named by what one operation is:
//
//   - Get/1key, Get/64keys: a Get of 1 or 64 random keys of 10,000;
//   - Get/setOf100deltas: a Get of a set key written as 100 merges;
//   - Scan/100keys: a Scan from a random key that stops after 100 keys;
//   - Set/nosync, Set/sync: a Write of one Set of a 100-byte value;
//   - MergeSetDelta/nosync, MergeSetDelta/sync: a Write of one Merge of a
//     one-value set delta (EncodeSetAdd), over 64 keys;
//   - MergeCounter/nosync: a Write of one Merge of a counter delta;
//   - MergeSetDelta/sync-parallel: the same synced merge from many
//     goroutines at once (b.RunParallel, 8 per GOMAXPROCS); with group
//     commit its ns/op is well below that of MergeSetDelta/sync.
func RunBenchmarks(b *testing.B, newStore func(b *testing.B) store.Store) {
	open := func(b *testing.B) store.Store {
		s := newStore(b)
		b.Cleanup(func() {
			if err := s.Close(); err != nil {
				b.Errorf("Close: %v", err)
			}
		})
		return s
	}
	b.Run("Get/1key", func(b *testing.B) {
		s := open(b)
		preload(b, s)
		rng := rand.New(rand.NewPCG(1, 1))
		keys := [][]byte{nil}
		b.ReportAllocs()
		for b.Loop() {
			keys[0] = benchKey(rng.IntN(benchKeys))
			vals, err := s.Get(bg, keys)
			if err != nil || vals[0] == nil {
				b.Fatalf("Get: %v, %q", err, vals)
			}
		}
	})
	b.Run("Get/64keys", func(b *testing.B) {
		s := open(b)
		preload(b, s)
		rng := rand.New(rand.NewPCG(2, 2))
		keys := make([][]byte, 64)
		b.ReportAllocs()
		for b.Loop() {
			for i := range keys {
				keys[i] = benchKey(rng.IntN(benchKeys))
			}
			if _, err := s.Get(bg, keys); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Get/setOf100deltas", func(b *testing.B) {
		s := open(b)
		for i := range 100 {
			merge(b, s, "set", store.EncodeSetAdd(uint32(i*7)))
		}
		keys := [][]byte{bs("set")}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(bg, keys); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Scan/100keys", func(b *testing.B) {
		s := open(b)
		preload(b, s)
		rng := rand.New(rand.NewPCG(3, 3))
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			err := s.Scan(bg, benchKey(rng.IntN(benchKeys-100)), nil, func(k, v []byte) bool {
				n++
				return n < 100
			})
			if err != nil || n != 100 {
				b.Fatalf("Scan: %v after %d keys", err, n)
			}
		}
	})
	for _, opts := range []store.WriteOptions{noSync, withSync} {
		name := syncName(opts)
		b.Run("Set/"+name, func(b *testing.B) {
			s := open(b)
			value := make([]byte, benchValueSize)
			var batch store.Batch
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				batch.Reset()
				batch.Set(benchKey(i), value)
				i++
				if err := s.Write(bg, &batch, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("MergeSetDelta/"+name, func(b *testing.B) {
			s := open(b)
			var batch store.Batch
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				batch.Reset()
				batch.Merge(benchKey(i%benchMergeKeys), store.EncodeSetAdd(uint32(i)))
				i++
				if err := s.Write(bg, &batch, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("MergeCounter/nosync", func(b *testing.B) {
		s := open(b)
		var batch store.Batch
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			batch.Reset()
			batch.Merge(benchKey(i%benchMergeKeys), store.EncodeCounter(1))
			i++
			if err := s.Write(bg, &batch, noSync); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("MergeSetDelta/sync-parallel", func(b *testing.B) {
		s := open(b)
		var next atomic.Uint32
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var batch store.Batch
			for pb.Next() {
				v := next.Add(1)
				batch.Reset()
				batch.Merge(benchKey(int(v)%benchMergeKeys), store.EncodeSetAdd(v))
				if err := s.Write(bg, &batch, withSync); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// preload writes benchKeys keys with benchValueSize-byte values.
func preload(b *testing.B, s store.Store) {
	b.Helper()
	value := make([]byte, benchValueSize)
	for i := 0; i < benchKeys; i += 1000 {
		write(b, s, func(batch *store.Batch) {
			for j := i; j < i+1000; j++ {
				batch.Set(benchKey(j), value)
			}
		})
	}
}

func syncName(opts store.WriteOptions) string {
	if opts.Sync {
		return "sync"
	}
	return "nosync"
}
