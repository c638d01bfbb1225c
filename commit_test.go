package readreceipt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
)

// WriteGate is a store whose synced writes, once Shut is called, wait
// at the gate: each is announced on Held and goes on to the store, or
// fails, when the test answers it. Unsynced writes and reads pass.
type WriteGate struct {
	store.Store
	mu   sync.Mutex
	shut bool
	Held chan *HeldWrite
}

// HeldWrite is one synced write waiting at the gate.
type HeldWrite struct {
	Batch *store.Batch
	reply chan error
}

// Release lets the write go on to the store (err nil) or fail with err.
func (w *HeldWrite) Release(err error) { w.reply <- err }

func NewWriteGate(st store.Store) *WriteGate {
	return &WriteGate{Store: st, Held: make(chan *HeldWrite, 64)}
}

// Shut makes every later synced write wait at the gate.
func (g *WriteGate) Shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = true
}

func (g *WriteGate) Write(ctx context.Context, b *store.Batch, opts store.WriteOptions) error {
	g.mu.Lock()
	hold := g.shut && opts.Sync
	g.mu.Unlock()
	if hold {
		w := &HeldWrite{Batch: b, reply: make(chan error)}
		g.Held <- w
		if err := <-w.reply; err != nil {
			return err
		}
	}
	return g.Store.Write(ctx, b, opts)
}

// NextHeld returns the next write held at the gate; it fails the test if
// none comes (a hang guard, not a timing assertion).
func (g *WriteGate) NextHeld(t testing.TB) *HeldWrite {
	t.Helper()
	select {
	case w := <-g.Held:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("no synced write reached the store")
		return nil
	}
}

func oneKey(k string) *store.Batch {
	var b store.Batch
	b.Set([]byte(k), []byte("v-"+k))
	return &b
}

// TestCommitterGroupsWritesInFlight: while a synced write is in flight,
// the writes that come meanwhile wait, go to the store together in one
// write once it returned, and each returns only that write's result:
// failure for all of them if it fails, and nothing of theirs stored.
func TestCommitterGroupsWritesInFlight(t *testing.T) {
	for _, fail := range []bool{true, false} {
		t.Run(fmt.Sprintf("group-write-fails=%t", fail), func(t *testing.T) {
			ctx := context.Background()
			mem := memstore.New()
			gate := NewWriteGate(mem)
			gate.Shut()
			c := newCommitter(gate)
			synced := store.WriteOptions{Sync: true}

			first := make(chan error, 1)
			go func() { first <- c.write(ctx, oneKey("a"), synced) }()
			w1 := gate.NextHeld(t)
			if w1.Batch.Len() != 1 {
				t.Fatalf("the first write carries %d operations, want its own 1", w1.Batch.Len())
			}

			const n = 10
			results := make(chan error, n)
			for i := range n {
				go func() { results <- c.write(ctx, oneKey(fmt.Sprint("k", i)), synced) }()
			}
			waitJoined(t, c, n)
			select {
			case err := <-results:
				t.Fatalf("a write returned (%v) while the write before it was in flight", err)
			default:
			}

			w1.Release(nil)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			w2 := gate.NextHeld(t)
			if w2.Batch.Len() != n {
				t.Fatalf("the group write carries %d operations, want %d", w2.Batch.Len(), n)
			}
			select {
			case err := <-results:
				t.Fatalf("a write returned (%v) before its group's write did", err)
			default:
			}
			var groupErr error
			if fail {
				groupErr = errors.New("disk on fire")
			}
			w2.Release(groupErr)
			for range n {
				if err := <-results; err != groupErr {
					t.Fatalf("a member of the group returned %v, want %v", err, groupErr)
				}
			}
			keys := [][]byte{[]byte("a")}
			for i := range n {
				keys = append(keys, fmt.Append(nil, "k", i))
			}
			vals, err := mem.Get(ctx, keys)
			if err != nil {
				t.Fatal(err)
			}
			if vals[0] == nil {
				t.Error("the first write returned success but is not stored")
			}
			for i, v := range vals[1:] {
				if (v != nil) == fail {
					t.Errorf("key k%d stored = %t after a group write that failed = %t", i, v != nil, fail)
				}
			}

			// The committer is idle again: the next write is its own.
			done := make(chan error, 1)
			go func() { done <- c.write(ctx, oneKey("z"), synced) }()
			w3 := gate.NextHeld(t)
			if w3.Batch.Len() != 1 {
				t.Fatalf("a lone write after the group carries %d operations, want 1", w3.Batch.Len())
			}
			w3.Release(nil)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// waitJoined waits (a hang guard, not a timing) until n writes joined the
// committer's pending group.
func waitJoined(t *testing.T, c *committer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		joined := 0
		if c.pending != nil {
			joined = c.pending.members
		}
		c.mu.Unlock()
		if joined == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes joined the group", joined, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCommitterSumsCounterMerges: the counter merges of a group's members
// into one key reach the store as one merge of their sum; a Delete of the
// key in the group ends the sum, so merges before and after it stay on
// their side of it; merges of other kinds pass as they are. The store ends
// where the members' operations in order would have left it.
func TestCommitterSumsCounterMerges(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	gate := NewWriteGate(mem)
	gate.Shut()
	c := newCommitter(gate)
	synced := store.WriteOptions{Sync: true}
	n, m, s, x := []byte("n"), []byte("m"), []byte("s"), []byte("x")

	first := make(chan error, 1)
	go func() { first <- c.write(ctx, oneKey("a"), synced) }()
	w1 := gate.NextHeld(t)

	batch := func(add func(b *store.Batch)) *store.Batch {
		var b store.Batch
		add(&b)
		return &b
	}
	members := []*store.Batch{
		batch(func(b *store.Batch) { b.Merge(n, store.EncodeCounter(1)) }),
		batch(func(b *store.Batch) { b.Merge(n, store.EncodeCounter(2)); b.Set(x, []byte("x")) }),
		batch(func(b *store.Batch) { b.Delete(n) }),
		batch(func(b *store.Batch) { b.Merge(n, store.EncodeCounter(5)) }),
		batch(func(b *store.Batch) { b.Merge(n, store.EncodeCounter(-1)); b.Merge(m, store.EncodeCounter(1)) }),
		batch(func(b *store.Batch) { b.Merge(s, store.EncodeSetAdd(5)) }),
		batch(func(b *store.Batch) { b.Merge(s, store.EncodeSetAdd(7)) }),
	}
	results := make(chan error, len(members))
	for i, b := range members {
		go func() { results <- c.write(ctx, b, synced) }()
		waitJoined(t, c, i+1) // in this order
	}
	w1.Release(nil)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	w2 := gate.NextHeld(t)
	// What the group write carries: per key, its operations in order.
	got := map[string][]string{}
	for _, op := range w2.Batch.Ops() {
		var d string
		switch op.Kind {
		case store.OpMerge:
			if v, err := store.DecodeCounter(op.Value); err == nil {
				d = fmt.Sprint("+", v)
			} else {
				d = "set-merge"
			}
		case store.OpDelete:
			d = "delete"
		case store.OpSet:
			d = "set"
		default:
			d = fmt.Sprint("op", op.Kind)
		}
		got[string(op.Key)] = append(got[string(op.Key)], d)
	}
	want := map[string][]string{
		"n": {"+3", "delete", "+4"},
		"m": {"+1"},
		"s": {"set-merge", "set-merge"},
		"x": {"set"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the group write carries %v, want %v", got, want)
	}
	w2.Release(nil)
	for range members {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	vals, err := mem.Get(ctx, [][]byte{n, m, s})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{4, 1} {
		if v, err := store.DecodeCounter(vals[i]); err != nil || v != want {
			t.Errorf("counter %s = %d (%v), want %d", []string{"n", "m"}[i], v, err, want)
		}
	}
	if set, err := store.DecodeSet(vals[2]); err != nil || set.GetCardinality() != 2 || !set.Contains(5) || !set.Contains(7) {
		t.Errorf("set s = %v (%v), want {5, 7}", set, err)
	}
}

// TestCommitterConcurrentWrites: many goroutines writing at once through
// the committer all succeed, each write lands, and none waits forever.
func TestCommitterConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	c := newCommitter(mem)
	const workers, each = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var b store.Batch
				b.Set(fmt.Append(nil, "w", w, "-", i), []byte("x"))
				b.Delete(fmt.Append(nil, "gone", w, "-", i))
				if err := c.write(ctx, &b, store.WriteOptions{Sync: true}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range workers {
		keys := make([][]byte, each)
		for i := range keys {
			keys[i] = fmt.Append(nil, "w", w, "-", i)
		}
		vals, err := mem.Get(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if v == nil {
				t.Fatalf("write w%d-%d returned success and is not stored", w, i)
			}
		}
	}
	if c.busy || c.pending != nil {
		t.Error("the committer is not idle after every write returned")
	}
}

// TestCommitterCancelledBeforeJoining: a write whose context is already
// done is not written.
func TestCommitterCancelledBeforeJoining(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	mem := memstore.New()
	c := newCommitter(mem)
	if err := c.write(ctx, oneKey("a"), store.WriteOptions{Sync: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("write with a cancelled context = %v, want context.Canceled", err)
	}
	vals, err := mem.Get(context.Background(), [][]byte{[]byte("a")})
	if err != nil || vals[0] != nil {
		t.Fatalf("a cancelled write was stored (%v)", err)
	}
}

// panicStore panics in its next synced write once armed.
type panicStore struct {
	store.Store
	mu    sync.Mutex
	armed bool
}

func (s *panicStore) Write(ctx context.Context, b *store.Batch, opts store.WriteOptions) error {
	s.mu.Lock()
	boom := s.armed && opts.Sync
	s.armed = s.armed && !boom
	s.mu.Unlock()
	if boom {
		panic("store write panicked")
	}
	return s.Store.Write(ctx, b, opts)
}

// TestCommitterSurvivesPanickingWrite: a synced write that panics (and is
// recovered by its caller, as net/http recovers a handler) leaves the
// committer able to write.
func TestCommitterSurvivesPanickingWrite(t *testing.T) {
	ctx := context.Background()
	st := &panicStore{Store: memstore.New(), armed: true}
	c := newCommitter(st)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the store's panic did not reach the caller")
			}
		}()
		_ = c.write(ctx, oneKey("a"), store.WriteOptions{Sync: true})
	}()
	done := make(chan error, 1)
	go func() { done <- c.write(ctx, oneKey("b"), store.WriteOptions{Sync: true}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write after a panicking one never returned")
	}
}

// getCounter is a store that counts its Get calls and can fail them.
type getCounter struct {
	store.Store
	mu    sync.Mutex
	calls int
	keys  int
	fail  error
}

func (g *getCounter) Get(ctx context.Context, keys [][]byte) ([][]byte, error) {
	g.mu.Lock()
	g.calls++
	g.keys += len(keys)
	fail := g.fail
	g.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	return g.Store.Get(ctx, keys)
}

// TestCommitterWriteNew: a batch that creates a key is written only if the
// key is absent, and its caller told whether it was present: alone (its
// own lookup), and in a group, whose writer looks up every member's key in
// one Get before the one write, which carries the plain members and the
// new ones whose keys were absent, and nothing of those whose keys were
// present; when that Get fails, every member fails and nothing is written.
func TestCommitterWriteNew(t *testing.T) {
	ctx := context.Background()
	synced := store.WriteOptions{Sync: true}
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("alone/sync=%t", sync), func(t *testing.T) {
			mem := memstore.New()
			c := newCommitter(mem)
			opts := store.WriteOptions{Sync: sync}
			if present, err := c.writeNew(ctx, oneKey("a"), opts, []byte("a")); err != nil || present {
				t.Fatalf("new key: present=%t, %v", present, err)
			}
			var again store.Batch
			again.Set([]byte("a"), []byte("overwritten"))
			again.Set([]byte("other"), []byte("x"))
			if present, err := c.writeNew(ctx, &again, opts, []byte("a")); err != nil || !present {
				t.Fatalf("present key: present=%t, %v", present, err)
			}
			vals, _ := mem.Get(ctx, [][]byte{[]byte("a"), []byte("other")})
			if string(vals[0]) != "v-a" || vals[1] != nil {
				t.Fatalf("after a writeNew of a present key: a=%q other=%q, want v-a and nothing", vals[0], vals[1])
			}
		})
	}
	for _, getFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("group/get-fails=%t", getFails), func(t *testing.T) {
			mem := memstore.New()
			if err := mem.Write(ctx, oneKey("old1"), synced); err != nil {
				t.Fatal(err)
			}
			if err := mem.Write(ctx, oneKey("old2"), synced); err != nil {
				t.Fatal(err)
			}
			counted := &getCounter{Store: mem}
			gate := NewWriteGate(counted)
			gate.Shut()
			c := newCommitter(gate)

			first := make(chan error, 1)
			go func() { first <- c.write(ctx, oneKey("first"), synced) }()
			w1 := gate.NextHeld(t)

			type result struct {
				key     string
				present bool
				err     error
			}
			news := []string{"n1", "old1", "n2", "old2", "n3"}
			results := make(chan result, len(news)+1)
			for _, k := range news {
				go func() {
					b := oneKey(k)
					b.Set([]byte(k+"-side"), []byte("s")) // a key of its own, written with it
					present, err := c.writeNew(ctx, b, synced, []byte(k))
					results <- result{k, present, err}
				}()
			}
			go func() { results <- result{"plain", false, c.write(ctx, oneKey("plain"), synced)} }()
			waitJoined(t, c, len(news)+1)
			counted.mu.Lock()
			calls0 := counted.calls
			if getFails {
				counted.fail = errors.New("read failed")
			}
			counted.mu.Unlock()

			w1.Release(nil)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			if !getFails {
				w2 := gate.NextHeld(t)
				// plain's 1 operation, and 2 of each absent new key's.
				if w2.Batch.Len() != 1+2*3 {
					t.Fatalf("the group write carries %d operations, want 7", w2.Batch.Len())
				}
				w2.Release(nil)
			}
			got := map[string]result{}
			for range len(news) + 1 {
				r := <-results
				got[r.key] = r
			}
			counted.mu.Lock()
			if calls := counted.calls - calls0; calls != 1 {
				t.Errorf("the group's writer made %d Gets, want 1 for all %d new keys", calls, len(news))
			}
			counted.mu.Unlock()
			for _, k := range news {
				r := got[k]
				wantPresent := k == "old1" || k == "old2"
				switch {
				case getFails:
					// Present or not, the writer could not tell.
					if r.err == nil {
						t.Errorf("%s: no error after the group's Get failed", k)
					}
				case r.err != nil || r.present != wantPresent:
					t.Errorf("%s: present=%t, %v; want present=%t", k, r.present, r.err, wantPresent)
				}
				vals, _ := mem.Get(ctx, [][]byte{[]byte(k), []byte(k + "-side")})
				wantStored := !getFails && !wantPresent
				if (vals[1] != nil) != wantStored {
					t.Errorf("%s: its own side key stored = %t, want %t", k, vals[1] != nil, wantStored)
				}
				if wantPresent && string(vals[0]) != "v-"+k {
					t.Errorf("%s: present key now %q", k, vals[0])
				}
			}
			if pl := got["plain"]; (pl.err != nil) != getFails {
				t.Errorf("plain member: %v with the group's Get failing = %t", pl.err, getFails)
			}
		})
	}
}

// TestTracksInAGroupOfWrites: tracks that queue behind a synced write in
// flight, on an engine that knows nothing of their messages (a new engine
// on a store that holds some of them), learn which exist from their
// group's one lookup: a known message tracked again by its sender is a
// no-op that keeps its receipts, by another sender ErrAlreadyTracked, and
// a new one is tracked with no reads; the group writes the new ones only.
func TestTracksInAGroupOfWrites(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	gate := NewWriteGate(mem)
	e, err := Open(gate, WithSweepInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CreateGroup(ctx, "g", GroupWork, []string{"s", "t", "r"}); err != nil {
		t.Fatal(err)
	}
	msg := func(id, sender string) Message {
		return Message{Conversation: Group("g"), ID: id, Sender: sender}
	}
	for i := range 8 {
		if err := e.TrackMessage(ctx, msg(fmt.Sprint("old", i), "s")); err != nil {
			t.Fatal(err)
		}
		if _, err := e.SendMessageReadReceipt(ctx, "r", []MessageRef{msg(fmt.Sprint("old", i), "s").Ref()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = Open(gate, WithSweepInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	gate.Shut()
	first := make(chan error, 1)
	go func() { first <- e.TrackMessage(ctx, msg("first", "s")) }()
	w1 := gate.NextHeld(t)

	type call struct {
		m    Message
		want error
	}
	var calls []call
	for i := range 8 {
		old := msg(fmt.Sprint("old", i), "s")
		if i%3 == 0 {
			old.Sender = "t"
			calls = append(calls, call{old, ErrAlreadyTracked})
		} else {
			calls = append(calls, call{old, nil})
		}
		calls = append(calls, call{msg(fmt.Sprint("new", i), "t"), nil})
	}
	errs := make([]chan error, len(calls))
	for i, c := range calls {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- e.TrackMessage(ctx, c.m) }()
	}
	waitJoined(t, e.be.(*embedded).commits, len(calls))
	w1.Release(nil)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	w2 := gate.NextHeld(t)
	// A new group message's meta, time key and order key, and the version
	// counts of all, summed over the group into one merge.
	if got, want := w2.Batch.Len(), 8*3+1; got != want {
		t.Errorf("the group's write carries %d operations, want %d (the new messages' only)", got, want)
	}
	w2.Release(nil)
	for i, c := range calls {
		if err := <-errs[i]; !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("track %s by %s: %v, want %v", c.m.ID, c.m.Sender, err, c.want)
		}
	}
	for _, c := range calls {
		infos, err := e.GetMessageReadReceiptList(ctx, AsAdmin(), []MessageRef{c.m.Ref()})
		if err != nil || infos[0].Err != nil {
			t.Fatalf("%s: %v %+v", c.m.ID, err, infos)
		}
		wantRead := 0
		if c.m.ID[:3] == "old" {
			wantRead = 1
		}
		if infos[0].ReadCount != wantRead {
			t.Errorf("%s: %d read, want %d", c.m.ID, infos[0].ReadCount, wantRead)
		}
	}
}
