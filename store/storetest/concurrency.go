package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/readreceipt/readreceipt/store"
)

// testAtomicity: a concurrent reader sees each batch whole or not at all.
//
// Each batch of the writer replaces 20 keys (a DeleteRange, then 20 Sets,
// all with the batch's number) and merges +1 into two counters. Concurrent
// Scans must always see 20 keys with one number, and equal counters.
func testAtomicity(t *testing.T, s store.Store) {
	const keys, writes = 20, 300
	fill := func(b *store.Batch, gen int) {
		b.DeleteRange(bs("g/"), bs("g0"))
		for i := range keys {
			b.Set(fmt.Appendf(nil, "g/%02d", i), fmt.Appendf(nil, "%d", gen))
		}
		b.Merge(bs("p/1"), store.EncodeCounter(1))
		b.Merge(bs("p/2"), store.EncodeCounter(1))
	}
	write(t, s, func(b *store.Batch) { fill(b, 0) })

	var (
		done  atomic.Bool
		wg    sync.WaitGroup
		reads atomic.Int64
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				var vals []string
				err := s.Scan(bg, bs("g/"), bs("g0"), func(k, v []byte) bool {
					vals = append(vals, string(v))
					return true
				})
				if err != nil {
					t.Errorf("Scan: %v", err)
					return
				}
				if len(vals) != keys {
					t.Errorf("Scan saw %d keys of a batch, want %d", len(vals), keys)
					return
				}
				for _, v := range vals {
					if v != vals[0] {
						t.Errorf("Scan saw keys of two batches: %q", vals)
						return
					}
				}
				var ctrs []int64
				err = s.Scan(bg, bs("p/"), bs("p0"), func(k, v []byte) bool {
					n, err := store.DecodeCounter(v)
					if err != nil {
						t.Errorf("counter %q: %v", k, err)
					}
					ctrs = append(ctrs, n)
					return true
				})
				if err != nil {
					t.Errorf("Scan: %v", err)
					return
				}
				if len(ctrs) != 2 || ctrs[0] != ctrs[1] {
					t.Errorf("Scan saw counters %v, want two equal ones", ctrs)
					return
				}
				reads.Add(1)
			}
		}()
	}
	// The writer lets the readers catch up every 30 batches, so scans run
	// between writes however the scheduler orders the goroutines (a fast
	// in-memory store can otherwise finish all its writes first).
	seen := int64(0)
	for gen := 1; gen <= writes; gen++ {
		if gen%30 == 1 {
			for reads.Load() <= seen && !t.Failed() {
				runtime.Gosched()
			}
			seen = reads.Load()
		}
		if err := tryWrite(s, noSync, func(b *store.Batch) { fill(b, gen) }); err != nil {
			t.Errorf("Write: %v", err)
			break
		}
		if t.Failed() {
			break
		}
	}
	done.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Error("no read completed")
	}
	check(t, s, map[string]any{"g/00": raw(fmt.Sprint(writes)), "p/1": count(writes + 1), "p/2": count(writes + 1)})
}

// testConcurrentMerges: concurrent writers merging into the same keys lose
// nothing. Some of the writes are synced, to exercise group commit.
func testConcurrentMerges(t *testing.T, s store.Store) {
	const writers, each = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				opts := noSync
				if i%25 == 0 {
					opts = withSync
				}
				err := tryWrite(s, opts, func(b *store.Batch) {
					b.Merge(bs("ctr"), store.EncodeCounter(1))
					b.Merge(bs("set"), store.EncodeSetAdd(uint32(w*each+i)))
				})
				if err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		}()
	}
	// A reader runs meanwhile; what it sees must decode.
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			vals, err := s.Get(bg, [][]byte{bs("ctr"), bs("set")})
			if err != nil {
				t.Errorf("Get: %v", err)
				return
			}
			if _, err := store.DecodeCounter(vals[0]); err != nil {
				t.Errorf("counter: %v", err)
				return
			}
			if _, err := store.DecodeSet(vals[1]); err != nil {
				t.Errorf("set: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rwg.Wait()
	want := roaring.New()
	want.AddRange(0, writers*each)
	check(t, s, map[string]any{"ctr": count(writers * each)})
	wantMembers(t, s, "set", want)
}

// testContextDone: a call whose context is done before it starts returns
// ctx.Err() and has no effect.
func testContextDone(t *testing.T, s store.Store) {
	set(t, s, "k", "v")
	canceled, cancel := context.WithCancel(bg)
	cancel()
	expired, cancel2 := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer cancel2()
	for _, ctx := range []context.Context{canceled, expired} {
		t.Run(fmt.Sprint(ctx.Err()), func(t *testing.T) {
			if _, err := s.Get(ctx, [][]byte{bs("k")}); !isErr(err, ctx.Err()) {
				t.Errorf("Get = %v, want %v", err, ctx.Err())
			}
			called := false
			err := s.Scan(ctx, nil, nil, func(k, v []byte) bool {
				called = true
				return true
			})
			if !isErr(err, ctx.Err()) || called {
				t.Errorf("Scan = %v (fn called: %v), want %v and no call", err, called, ctx.Err())
			}
			var b store.Batch
			b.Set(bs("k"), bs("changed"))
			b.Set(bs("new"), bs("v"))
			b.Merge(bs("n"), store.EncodeCounter(1))
			b.Delete(bs("k"))
			for _, opts := range []store.WriteOptions{noSync, withSync} {
				if err := s.Write(ctx, &b, opts); !isErr(err, ctx.Err()) {
					t.Errorf("Write = %v, want %v", err, ctx.Err())
				}
			}
			sameKVs(t, "store after Writes with a done context", scanAll(t, s), []kv{{"k", "v"}})
		})
	}
}

// testClosed: after Close, every method returns store.ErrClosed, and Close
// may be called again.
func testClosed(t *testing.T, s store.Store) {
	set(t, s, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Get(bg, [][]byte{bs("k")}); !isErr(err, store.ErrClosed) {
		t.Errorf("Get after Close = %v, want store.ErrClosed", err)
	}
	called := false
	if err := s.Scan(bg, nil, nil, func(k, v []byte) bool { called = true; return true }); !isErr(err, store.ErrClosed) || called {
		t.Errorf("Scan after Close = %v (fn called: %v), want store.ErrClosed", err, called)
	}
	var b store.Batch
	if err := s.Write(bg, &b, noSync); !isErr(err, store.ErrClosed) {
		t.Errorf("Write(empty batch) after Close = %v, want store.ErrClosed", err)
	}
	b.Set(bs("k"), bs("v2"))
	for _, opts := range []store.WriteOptions{noSync, withSync} {
		if err := s.Write(bg, &b, opts); !isErr(err, store.ErrClosed) {
			t.Errorf("Write after Close = %v, want store.ErrClosed", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// testCloseConcurrent: Close while other goroutines use the store makes
// their calls return nil or store.ErrClosed, never anything else, and never
// panics; a Scan whose fn calls Get while Close waits does not deadlock.
func testCloseConcurrent(t *testing.T, s store.Store) {
	write(t, s, func(b *store.Batch) {
		for i := range 100 {
			b.Set(fmt.Appendf(nil, "k%03d", i), bs("v"))
		}
	})
	ok := func(err error) bool { return err == nil || isErr(err, store.ErrClosed) }
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
	)
	for g := range 4 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			markStarted := func() { once.Do(started.Done) }
			defer markStarted()
			for i := 0; ; i++ {
				if i == 10 {
					markStarted()
				}
				var err error
				switch (g + i) % 3 {
				case 0:
					_, err = s.Get(bg, [][]byte{bs("k001"), bs("k050")})
				case 1:
					// A slow Scan, so that one is likely in flight when
					// Close is called.
					err = s.Scan(bg, nil, nil, func(k, v []byte) bool {
						_, gerr := s.Get(bg, [][]byte{k})
						if !ok(gerr) {
							t.Errorf("Get inside Scan during Close: %v", gerr)
						}
						time.Sleep(20 * time.Microsecond)
						return true
					})
				case 2:
					err = tryWrite(s, noSync, func(b *store.Batch) {
						b.Merge(bs("n"), store.EncodeCounter(1))
						b.Set(fmt.Appendf(nil, "k%03d", i%100), bs("w"))
					})
				}
				if !ok(err) {
					t.Errorf("call during Close: %v", err)
					return
				}
				if err != nil {
					return // closed
				}
			}
		}()
	}
	started.Wait()
	within(t, 30*time.Second, "Close with calls in flight", func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		wg.Wait()
	})
}
