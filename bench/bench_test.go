package bench

// User-facing benchmarks of the read-receipt engine. See BENCHMARKS.md for
// the results and how they were taken.
//
// Every benchmark ends in /store=pebble, /store=mem and, for the write
// benchmarks, /store=pebble-nosync. Pebble is the shipped default
// (readreceipt.OpenDir, sync writes on); pebble-nosync is the same store
// and engine with WithSyncWrites(false), which takes the fsync out; memstore
// runs the same engine code without any disk, which separates engine cost
// from store cost.
//
// Fixtures (groups of 10 to 1,000,000 members, messages with many readers)
// are expensive, so they are built lazily, once per process, by the first
// benchmark that needs them, outside the timer, and shared by every later
// benchmark and -count repetition. Pebble fixtures live in one directory
// made with os.MkdirTemp (a b.TempDir would be removed at the end of the
// benchmark that made it) and removed by TestMain. The Pebble store is
// opened as readreceipt.OpenDir opens it (pebblestore.Open(dir, nil), then
// readreceipt.Open), but by the benchmarks, so that they can let Pebble's
// background work after a large setup finish before measuring. All groups
// of one store kind live in the same store, so that a comparison between
// group sizes is not a comparison between store sizes.

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/readreceipt/readreceipt/store/pebblestore"
)

var ctx = context.Background()

type size struct {
	name string
	n    int
}

var (
	size10   = size{"10", 10}
	size1K   = size{"1K", 1_000}
	size100K = size{"100K", 100_000}
	size1M   = size{"1M", 1_000_000}
)

// kinds are the store kinds every benchmark runs on, the default first.
var kinds = []string{"pebble", "mem"}

// writeKinds adds, for the write benchmarks, the Pebble store with
// WithSyncWrites(false): Pebble's cost without the fsync.
var writeKinds = []string{"pebble", "pebble-nosync", "mem"}

// User IDs: user i is "u%07d" and has member index i in every group (groups
// are created with users(n) in order). User 0 sends every message.
var (
	usersMu  sync.Mutex
	userList []string
)

func users(n int) []string {
	usersMu.Lock()
	defer usersMu.Unlock()
	for len(userList) < n {
		userList = append(userList, fmt.Sprintf("u%07d", len(userList)))
	}
	return userList[:n:n]
}

func sender() string { return users(1)[0] }

// fixture is one store with one engine over it, and the state built in it.
type fixture struct {
	kind string
	st   store.Store        // kept across engine reopens
	pst  *pebblestore.Store // st, for kind "pebble"
	e    *rr.Engine

	groups   map[string]bool
	receipts map[string]*receiptState
	lists    map[int][]rr.MessageRef
	pages    map[int]*pageState
	seq      atomic.Int64 // for unique message and user IDs
}

var (
	rootDir  string
	fixtures = map[string]*fixture{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, fx := range fixtures {
		if err := fx.e.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close:", err)
		}
		if err := fx.st.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close:", err)
		}
	}
	for _, st := range nameStores {
		_ = st.Close()
	}
	if rootDir != "" {
		_ = os.RemoveAll(rootDir)
	}
	os.Exit(code)
}

// getFixture returns the fixture of a store kind. "pebble-nosync" is the
// "pebble" fixture with its engine reopened WithSyncWrites(false) until the
// benchmark ends.
func getFixture(b *testing.B, kind string) *fixture {
	if kind == "pebble-nosync" {
		fx := getFixture(b, "pebble")
		fx.reopen(b, rr.WithSyncWrites(false))
		b.Cleanup(func() { fx.reopen(b) })
		return fx
	}
	if fx := fixtures[kind]; fx != nil {
		return fx
	}
	fx := &fixture{
		kind:     kind,
		groups:   map[string]bool{},
		receipts: map[string]*receiptState{},
		lists:    map[int][]rr.MessageRef{},
		pages:    map[int]*pageState{},
	}
	switch kind {
	case "pebble":
		if rootDir == "" {
			d, err := os.MkdirTemp("", "readreceipt-bench-")
			if err != nil {
				b.Fatal(err)
			}
			rootDir = d
		}
		// What OpenDir does, keeping the store at hand for settle.
		pst, err := pebblestore.Open(filepath.Join(rootDir, "pebble"), nil)
		if err != nil {
			b.Fatal(err)
		}
		fx.st, fx.pst = pst, pst
	case "mem":
		fx.st = memstore.New()
	default:
		b.Fatalf("unknown store kind %q", kind)
	}
	fx.open(b)
	fixtures[kind] = fx
	return fx
}

// benchCache is the engine cache of every warm benchmark: sized, as a host
// serving million-member groups would size it (see WithCacheBytes), to hold
// the hot state of the fixtures (the user IDs of a 1M group alone take
// about 12 MiB), where the shipped default (64 MiB) is meant for smaller
// deployments.
const benchCache = 512 << 20

// open opens the fixture's engine with benchCache and then opts.
func (fx *fixture) open(b *testing.B, opts ...rr.Option) {
	var err error
	if fx.e, err = rr.Open(fx.st, append([]rr.Option{rr.WithCacheBytes(benchCache)}, opts...)...); err != nil {
		b.Fatal(err)
	}
}

// settle, after a large setup, flushes Pebble's memtables and waits for
// the flushes and compactions that setup started, so that they do not run
// (and slow fsyncs) during the next measurement.
func (fx *fixture) settle(b *testing.B) {
	if fx.pst == nil {
		return
	}
	start := time.Now()
	if err := fx.pst.Flush(); err != nil {
		b.Fatal(err)
	}
	for time.Since(start) < time.Minute {
		m := fx.pst.Metrics()
		if m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	logf(b, "setup %s: settled in %v", fx.kind, time.Since(start).Round(time.Millisecond))
}

// reopen closes the engine and opens it again with opts. The store's
// contents, and so every fixture, survive; the engine's caches do not.
func (fx *fixture) reopen(b *testing.B, opts ...rr.Option) {
	if err := fx.e.Close(); err != nil {
		b.Fatal(err)
	}
	fx.open(b, opts...)
}

// coldEngine reopens the engine with (practically) no cache, so that every
// call reads its state from the store, until the benchmark ends. Pebble's
// own block cache stays warm.
func (fx *fixture) coldEngine(b *testing.B) {
	fx.reopen(b, rr.WithCacheBytes(1))
	b.Cleanup(func() { fx.reopen(b) })
}

// group returns the ID of the fixture's group of n members, creating it.
func (fx *fixture) group(b *testing.B, n int) string { return fx.namedGroup(b, "g", n) }

// namedGroup returns the ID of the fixture's group of n members named
// prefix+n, creating it.
func (fx *fixture) namedGroup(b *testing.B, prefix string, n int) string {
	gid := prefix + strconv.Itoa(n)
	if _, ok := fx.groups[gid]; ok {
		return gid
	}
	start := time.Now()
	if err := fx.e.CreateGroup(ctx, gid, rr.GroupWork, users(n)); err != nil {
		b.Fatal(err)
	}
	logf(b, "setup %s: CreateGroup of %d members: %v", fx.kind, n, time.Since(start).Round(time.Millisecond))
	if n >= 100_000 {
		fx.settle(b)
	}
	fx.groups[gid] = true
	return gid
}

func logf(b *testing.B, format string, args ...any) {
	if testing.Verbose() {
		b.Logf(format, args...)
	}
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first
// error.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := fn(int(i)); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// sendAll records, with the engine reopened without sync writes (setup
// only: it is several times faster), one receipt call per reader: reader
// readers[i] reads refsOf(i).
func (fx *fixture) sendAll(b *testing.B, readers []string, refsOf func(i int) []rr.MessageRef) {
	start := time.Now()
	fx.reopen(b, rr.WithSyncWrites(false))
	err := parallel(len(readers), 2*runtime.GOMAXPROCS(0), func(i int) error {
		refs := refsOf(i)
		if len(refs) == 0 {
			return nil
		}
		res, err := fx.e.SendMessageReadReceipt(ctx, readers[i], refs)
		if err != nil {
			return err
		}
		for _, r := range res {
			if !r.Recorded {
				return fmt.Errorf("receipt of %s for %s not recorded: %v", readers[i], r.MessageID, r.Err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	fx.reopen(b)
	logf(b, "setup %s: %d receipt calls: %v", fx.kind, len(readers), time.Since(start).Round(time.Millisecond))
	fx.settle(b)
}

func track(e *rr.Engine, gid, id string) (rr.MessageRef, error) {
	msg := rr.Message{Conversation: rr.Group(gid), ID: id, Sender: sender()}
	return msg.Ref(), e.TrackMessage(ctx, msg)
}

// BenchmarkTrackMessage: TrackMessage of one new message in a group of 10
// to 1M members. Each iteration makes one message ID (one allocation of
// the benchmark's own).
func BenchmarkTrackMessage(b *testing.B) {
	for _, sz := range []size{size10, size1K, size100K, size1M} {
		b.Run("members="+sz.name, func(b *testing.B) {
			for _, kind := range writeKinds {
				b.Run("store="+kind, func(b *testing.B) {
					fx := getFixture(b, kind)
					gid := fx.group(b, sz.n)
					msg := rr.Message{Conversation: rr.Group(gid), Sender: sender()}
					b.ReportAllocs()
					for b.Loop() {
						msg.ID = "t" + strconv.FormatInt(fx.seq.Add(1), 10)
						if err := fx.e.TrackMessage(ctx, msg); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// receiptState hands out new (reader, messages) pairs for receipts in one
// group: the global sequence number s names reader 1 + s%(n-1) and batch
// s/(n-1) of `batch` messages, tracked when first needed. Every receipt is
// therefore new, from goroutines too.
type receiptState struct {
	gid     string
	batch   int
	readers int64
	uids    []string
	seq     atomic.Int64

	mu      sync.Mutex
	batches [][]rr.MessageRef
}

func (fx *fixture) receiptState(b *testing.B, sz size, batch int) *receiptState {
	key := sz.name + "/" + strconv.Itoa(batch)
	if s, ok := fx.receipts[key]; ok {
		return s
	}
	s := &receiptState{gid: fx.group(b, sz.n), batch: batch, readers: int64(sz.n - 1), uids: users(sz.n)}
	fx.receipts[key] = s
	return s
}

// refs returns batch k's messages, tracking them if needed.
func (s *receiptState) refs(e *rr.Engine, k int) ([]rr.MessageRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.batches) <= k {
		j := len(s.batches)
		refs := make([]rr.MessageRef, s.batch)
		for i := range refs {
			ref, err := track(e, s.gid, fmt.Sprintf("r%d-%d-%d", s.batch, j, i))
			if err != nil {
				return nil, err
			}
			refs[i] = ref
		}
		s.batches = append(s.batches, refs)
	}
	return s.batches[k], nil
}

// receiptWorker sends receipts for one goroutine.
type receiptWorker struct {
	s    *receiptState
	e    *rr.Engine
	k    int64
	refs []rr.MessageRef
}

func (s *receiptState) worker(e *rr.Engine) *receiptWorker {
	return &receiptWorker{s: s, e: e, k: -1}
}

// send sends one new receipt call. Once per n-1 calls it tracks the next
// batch of messages (a cost of at most 1/999 of a call per message).
func (w *receiptWorker) send() error {
	seq := w.s.seq.Add(1) - 1
	if k := seq / w.s.readers; k != w.k {
		refs, err := w.s.refs(w.e, int(k))
		if err != nil {
			return err
		}
		w.k, w.refs = k, refs
	}
	reader := w.s.uids[1+seq%w.s.readers]
	res, err := w.e.SendMessageReadReceipt(ctx, reader, w.refs)
	if err != nil {
		return err
	}
	for _, r := range res {
		if !r.Recorded {
			return fmt.Errorf("receipt of %s for %s not recorded: %v", reader, r.MessageID, r.Err)
		}
	}
	return nil
}

// BenchmarkSendReceipt: one SendMessageReadReceipt call of one reader for
// `batch` messages, each receipt new. goroutines=1 is one caller in a loop;
// more goroutines call concurrently (b.RunParallel), and ns/op is then wall
// time per call across all of them: with sync writes, concurrent receipts
// share fsyncs (group commit). receipts/s counts receipts, not calls.
// cache=cold reopens the engine with no cache: every call loads the group,
// member index, membership chunk, message and reader chunk from the store.
func BenchmarkSendReceipt(b *testing.B) {
	type tc struct {
		sz         size
		batch      int
		goroutines int
		cold       bool
		kinds      []string
	}
	cases := []tc{
		{size1K, 1, 1, false, writeKinds},
		{size1M, 1, 1, false, writeKinds},
		{size1M, 30, 1, false, writeKinds},
		{size1M, 1, 1, true, kinds},
	}
	procs := runtime.GOMAXPROCS(0)
	for _, g := range []int{procs, 8 * procs, 32 * procs} {
		cases = append(cases, tc{size1K, 1, g, false, []string{"pebble"}}, tc{size1M, 1, g, false, kinds})
	}
	cases = append(cases, tc{size1K, 30, 8 * procs, false, []string{"pebble"}}, tc{size1K, 30, 64 * procs, false, []string{"pebble"}}, tc{size1M, 30, 8 * procs, false, []string{"pebble"}})
	for _, c := range cases {
		cache := "warm"
		if c.cold {
			cache = "cold"
		}
		name := fmt.Sprintf("members=%s/batch=%d/goroutines=%d/cache=%s", c.sz.name, c.batch, c.goroutines, cache)
		b.Run(name, func(b *testing.B) {
			for _, kind := range c.kinds {
				b.Run("store="+kind, func(b *testing.B) {
					fx := getFixture(b, kind)
					s := fx.receiptState(b, c.sz, c.batch)
					if _, err := s.refs(fx.e, int(s.seq.Load()/s.readers)); err != nil {
						b.Fatal(err)
					}
					if c.cold {
						fx.coldEngine(b)
					}
					b.ReportAllocs()
					if c.goroutines == 1 {
						w := s.worker(fx.e)
						for b.Loop() {
							if err := w.send(); err != nil {
								b.Fatal(err)
							}
						}
					} else {
						b.SetParallelism(c.goroutines / procs)
						var failed atomic.Bool
						b.RunParallel(func(pb *testing.PB) {
							w := s.worker(fx.e)
							for pb.Next() {
								if failed.Load() {
									continue
								}
								if err := w.send(); err != nil {
									failed.Store(true)
									b.Error(err)
								}
							}
						})
					}
					b.ReportMetric(float64(b.N*c.batch)/b.Elapsed().Seconds(), "receipts/s")
				})
			}
		})
	}
}

// receiptList returns the 30 messages of the GetReceiptList benchmark in
// the group of sz: message j has been read by readers 1..10*j (0 to 290).
func (fx *fixture) receiptList(b *testing.B, sz size) []rr.MessageRef {
	if refs, ok := fx.lists[sz.n]; ok {
		return refs
	}
	gid := fx.group(b, sz.n)
	refs := make([]rr.MessageRef, 30)
	for j := range refs {
		ref, err := track(fx.e, gid, fmt.Sprintf("q%d", j))
		if err != nil {
			b.Fatal(err)
		}
		refs[j] = ref
	}
	readers := users(10*len(refs) - 9)[1:] // readers 1..290
	fx.sendAll(b, readers, func(i int) []rr.MessageRef {
		r := i + 1
		return refs[(r+9)/10:] // messages j with 10*j >= r
	})
	fx.lists[sz.n] = refs
	return refs
}

// BenchmarkGetReceiptList: GetMessageReadReceiptList of 30 messages with
// 0 to 290 readers each, by their sender. cache=cold: engine without cache.
func BenchmarkGetReceiptList(b *testing.B) {
	for _, sz := range []size{size1K, size1M} {
		for _, cache := range []string{"warm", "cold"} {
			b.Run(fmt.Sprintf("messages=30/members=%s/cache=%s", sz.name, cache), func(b *testing.B) {
				for _, kind := range kinds {
					b.Run("store="+kind, func(b *testing.B) {
						fx, refs := receiptListFixture(b, kind, sz, cache == "cold")
						caller := rr.AsUser(sender())
						b.ReportAllocs()
						for b.Loop() {
							if _, err := fx.e.GetMessageReadReceiptList(ctx, caller, refs); err != nil {
								b.Fatal(err)
							}
						}
					})
				}
			})
		}
	}
}

// BenchmarkAppendReceiptList: GetReceiptList's calls with
// AppendMessageReadReceiptList into one reused slice, as a host that keeps
// its buffer between calls makes them.
func BenchmarkAppendReceiptList(b *testing.B) {
	for _, sz := range []size{size1K, size1M} {
		b.Run(fmt.Sprintf("messages=30/members=%s/cache=warm", sz.name), func(b *testing.B) {
			for _, kind := range kinds {
				b.Run("store="+kind, func(b *testing.B) {
					fx, refs := receiptListFixture(b, kind, sz, false)
					caller := rr.AsUser(sender())
					buf := make([]rr.ReceiptInfo, 0, len(refs))
					b.ReportAllocs()
					for b.Loop() {
						var err error
						if buf, err = fx.e.AppendMessageReadReceiptList(ctx, buf[:0], caller, refs); err != nil {
							b.Fatal(err)
						}
					}
					checkReceiptList(b, sz, buf)
				})
			}
		})
	}
}

// receiptListFixture returns the fixture of kind and the messages of the
// GetReceiptList benchmark in the group of sz, with the engine's cache
// dropped if cold, after checking the counts their sender gets.
func receiptListFixture(b *testing.B, kind string, sz size, cold bool) (*fixture, []rr.MessageRef) {
	fx := getFixture(b, kind)
	refs := fx.receiptList(b, sz)
	if cold {
		fx.coldEngine(b)
	}
	infos, err := fx.e.GetMessageReadReceiptList(ctx, rr.AsUser(sender()), refs)
	if err != nil {
		b.Fatal(err)
	}
	checkReceiptList(b, sz, infos)
	return fx, refs
}

// checkReceiptList checks the counts of the GetReceiptList messages.
func checkReceiptList(b *testing.B, sz size, infos []rr.ReceiptInfo) {
	if len(infos) != 30 {
		b.Fatalf("%d results, want 30", len(infos))
	}
	for j, in := range infos {
		if in.Err != nil || in.MessageID != fmt.Sprintf("q%d", j) || in.ReadCount != 10*j || in.ReadCount+in.UnreadCount != sz.n-1 {
			b.Fatalf("message %d: %+v", j, in)
		}
	}
}

// pageState is the message of the MemberPage benchmark in one group: read
// by every member with an odd index (n/2 receipts, 50% of the recipients),
// and the cursors of the page walks, kept across runs.
type pageState struct {
	ref     rr.MessageRef
	cursors [2]string
	pages   [2]int64 // pages fetched, by filter
	walks   [2]int64 // walks completed, by filter
}

func (fx *fixture) pageState(b *testing.B, sz size) *pageState {
	if p, ok := fx.pages[sz.n]; ok {
		return p
	}
	gid := fx.group(b, sz.n)
	ref, err := track(fx.e, gid, "p")
	if err != nil {
		b.Fatal(err)
	}
	all := users(sz.n)
	readers := make([]string, 0, sz.n/2)
	for i := 1; i < sz.n; i += 2 {
		readers = append(readers, all[i])
	}
	one := []rr.MessageRef{ref}
	fx.sendAll(b, readers, func(int) []rr.MessageRef { return one })
	// Check the first page of each list.
	for _, f := range []rr.MemberFilter{rr.FilterRead, rr.FilterUnread} {
		page, err := fx.e.GetGroupMessageReadMemberList(ctx, rr.AsUser(sender()), rr.MemberListRequest{Message: ref, Filter: f, Count: 3})
		if err != nil {
			b.Fatal(err)
		}
		got, want := page.ReadUserIDList, []string{all[1], all[3], all[5]}
		if f == rr.FilterUnread {
			got, want = page.UnreadUserIDList, []string{all[2], all[4], all[6]}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || page.IsCompleted {
			b.Fatalf("filter %d: first page %v, want %v", f, got, want)
		}
	}
	p := &pageState{ref: ref}
	fx.pages[sz.n] = p
	return p
}

// BenchmarkMemberPage: one GetGroupMessageReadMemberList page of 100 for a
// message read by 50% of the group, walking the list from "" to the end,
// then again, the cursor kept across iterations and runs.
func BenchmarkMemberPage(b *testing.B) {
	for _, sz := range []size{size1K, size1M} {
		for _, filter := range []rr.MemberFilter{rr.FilterRead, rr.FilterUnread} {
			fname := map[rr.MemberFilter]string{rr.FilterRead: "read", rr.FilterUnread: "unread"}[filter]
			for _, cache := range []string{"warm", "cold"} {
				b.Run(fmt.Sprintf("members=%s/filter=%s/count=100/cache=%s", sz.name, fname, cache), func(b *testing.B) {
					for _, kind := range kinds {
						b.Run("store="+kind, func(b *testing.B) {
							fx := getFixture(b, kind)
							p := fx.pageState(b, sz)
							if cache == "cold" {
								fx.coldEngine(b)
							}
							caller := rr.AsUser(sender())
							req := rr.MemberListRequest{Message: p.ref, Filter: filter, Count: 100}
							b.ReportAllocs()
							for b.Loop() {
								req.Cursor = p.cursors[filter]
								page, err := fx.e.GetGroupMessageReadMemberList(ctx, caller, req)
								if err != nil {
									b.Fatal(err)
								}
								n := len(page.ReadUserIDList) + len(page.UnreadUserIDList)
								if n != 100 && !page.IsCompleted {
									b.Fatalf("page of %d", n)
								}
								p.cursors[filter] = page.Cursor
								p.pages[filter]++
								if page.IsCompleted {
									p.walks[filter]++
								}
							}
						})
					}
				})
			}
		}
	}
}

// BenchmarkAddGroupMembers: AddGroupMembers of one new user, into a group
// of its own (made with the given size; it grows by one member an
// iteration, by some thousands over a run) in which one message is tracked
// between runs, so that the membership chunk being replaced is kept for it
// once per run.
func BenchmarkAddGroupMembers(b *testing.B) {
	for _, sz := range []size{size1K, size1M} {
		b.Run("add=1/members="+sz.name, func(b *testing.B) {
			for _, kind := range kinds {
				b.Run("store="+kind, func(b *testing.B) {
					fx := getFixture(b, kind)
					gid := fx.namedGroup(b, "a", sz.n)
					if _, err := track(fx.e, gid, "a"+strconv.FormatInt(fx.seq.Add(1), 10)); err != nil {
						b.Fatal(err)
					}
					add := []string{""}
					b.ReportAllocs()
					for b.Loop() {
						add[0] = "x" + strconv.FormatInt(fx.seq.Add(1), 10)
						if err := fx.e.AddGroupMembers(ctx, gid, add); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkStoreNameLookup is not an engine benchmark: it measures, on a
// bare Pebble store, the two ways to read the user IDs of one member page
// of a 1M-member group, to size a possible engine change. A page of 100
// members at 50% density spans about 200 member indexes, whose index ->
// user ID records ('g' lp(group) 'i' index32, as in keys.go) are adjacent:
//
//   - op=get-100: one Store.Get of the 100 keys of the page (what userIDs
//     does on a cache miss: 100 point lookups);
//   - op=scan-200: one Store.Scan over the ~200 adjacent records, keeping
//     every other one.
//
// Pages walk the 1M records in order, as a cursor walk does.
func BenchmarkStoreNameLookup(b *testing.B) {
	const n = 1_000_000
	st := nameStore(b, n)
	prefix := append(append([]byte{'g', byte(len("names"))}, "names"...), 'i')
	key := func(i int) []byte { return binary.BigEndian.AppendUint32(slices.Clip(prefix), uint32(i)) }
	b.Run("keys=1M/op=get-100", func(b *testing.B) {
		keys := make([][]byte, 100)
		pos := 0
		b.ReportAllocs()
		for b.Loop() {
			if pos+200 > n {
				pos = 0
			}
			for j := range keys {
				keys[j] = key(pos + 2*j + 1)
			}
			vals, err := st.Get(ctx, keys)
			if err != nil || vals[99] == nil {
				b.Fatal(err)
			}
			pos += 200
		}
	})
	b.Run("keys=1M/op=scan-200", func(b *testing.B) {
		out := make([]string, 0, 100)
		pos := 0
		b.ReportAllocs()
		for b.Loop() {
			if pos+200 > n {
				pos = 0
			}
			out = out[:0]
			i := 0
			err := st.Scan(ctx, key(pos), key(pos+200), func(k, v []byte) bool {
				if i%2 == 1 {
					out = append(out, string(v))
				}
				i++
				return true
			})
			if err != nil || len(out) != 100 {
				b.Fatal(err, len(out))
			}
			pos += 200
		}
	})
}

var nameStores = map[int]store.Store{}

// nameStore returns a Pebble store holding n index -> user ID records of
// one group, flushed and settled.
func nameStore(b *testing.B, n int) store.Store {
	if st, ok := nameStores[n]; ok {
		return st
	}
	if rootDir == "" {
		d, err := os.MkdirTemp("", "readreceipt-bench-")
		if err != nil {
			b.Fatal(err)
		}
		rootDir = d
	}
	pst, err := pebblestore.Open(filepath.Join(rootDir, "names-"+strconv.Itoa(n)), nil)
	if err != nil {
		b.Fatal(err)
	}
	prefix := append(append([]byte{'g', byte(len("names"))}, "names"...), 'i')
	uids := users(n)
	for lo := 0; lo < n; lo += 100_000 {
		var batch store.Batch
		for i := lo; i < min(lo+100_000, n); i++ {
			batch.Set(binary.BigEndian.AppendUint32(slices.Clip(prefix), uint32(i)), []byte(uids[i]))
		}
		if err := pst.Write(ctx, &batch, store.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	fx := &fixture{kind: "names", pst: pst}
	fx.settle(b)
	nameStores[n] = pst
	return pst
}

// BenchmarkStoreMergedGet is not an engine benchmark either: it measures a
// Pebble Get of one reader-set key that holds `operands` set-delta merges
// (store.EncodeSetAdd of one member each, as a receipt writes), still in
// the memtable (flushed=false) or after a flush, which folds them into one
// value (flushed=true). An engine call that loads a message's reader chunk
// or count from the store (a cold message entry) pays this Get.
func BenchmarkStoreMergedGet(b *testing.B) {
	for _, ops := range []int{1_000, 10_000, 100_000} {
		for _, flushed := range []bool{false, true} {
			b.Run(fmt.Sprintf("operands=%dK/flushed=%t", ops/1000, flushed), func(b *testing.B) {
				pst, err := pebblestore.Open(b.TempDir(), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer pst.Close()
				key := []byte("m\x01g\x05group\x01pr\x00\x00")
				for lo := 0; lo < ops; lo += 1000 {
					var batch store.Batch
					for i := lo; i < min(lo+1000, ops); i++ {
						batch.Merge(key, store.EncodeSetAdd(uint32(2*i+1)))
					}
					if err := pst.Write(ctx, &batch, store.WriteOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				if flushed {
					if err := pst.Flush(); err != nil {
						b.Fatal(err)
					}
				}
				keys := [][]byte{key}
				b.ReportAllocs()
				for b.Loop() {
					vals, err := pst.Get(ctx, keys)
					if err != nil || vals[0] == nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
