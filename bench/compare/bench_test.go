package compare

// The workloads W1-W8 on every system. Names are
// BenchmarkW<id>/sys=<system>/members=<n>[/...], so that bench/report can
// pick each figure out; see doc.go for what each workload measures.
//
// Fixtures are built once per process, outside the timer, with each system's
// durability knob off (Syncer) and its fastest exact loading path (Loader);
// the durability knob is back on before anything is measured. Sizes come
// from -size (smoke, quick, full).

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rr "github.com/readreceipt/readreceipt"
)

var (
	sizeFlag   = flag.String("size", envOr("READRECEIPT_BENCH_SIZE", "quick"), "benchmark sizes: smoke (CI), quick (bench/run -quick) or full")
	goroutines = flag.Int("goroutines", 64, "concurrent callers in W1")
	sysFlag    = flag.String("systems", envOr("READRECEIPT_BENCH_SYSTEMS", strings.Join(systemNames, ",")), "systems to benchmark, comma-separated")
)

// sizes are the fixture sizes of one -size.
type sizes struct {
	groups []int          // W8: W1-W3 at each of these group sizes
	w1     int            // the group size of the W1 and W2 rows
	w3     int            // the group size of the W3 row
	w5     int            // the group size of W5
	w4     map[string]int // W4 messages per system
	w7     int            // the group size of W7
}

var sizeTable = map[string]sizes{
	"smoke": {groups: []int{100, 1_000, 10_000}, w1: 10_000, w3: 10_000, w5: 10_000, w7: 1_000,
		w4: map[string]int{"": 1_000}},
	"quick": {groups: []int{100, 1_000, 10_000, 100_000}, w1: 10_000, w3: 100_000, w5: 100_000, w7: 1_000,
		w4: map[string]int{"": 5_000, "postgres": 2_000}},
	"full": {groups: []int{100, 1_000, 10_000, 100_000, 1_000_000}, w1: 10_000, w3: 1_000_000, w5: 1_000_000, w7: 1_000,
		w4: map[string]int{"": 200_000, "map": 100_000, "redis": 100_000, "engine-redis": 100_000, "postgres": 20_000}},
}

func cfg(b *testing.B) sizes {
	s, ok := sizeTable[*sizeFlag]
	if !ok {
		b.Fatalf("-size=%q: want smoke, quick or full", *sizeFlag)
	}
	return s
}

func (s sizes) w4msgs(sys string) int {
	if n, ok := s.w4[sys]; ok {
		return n
	}
	return s.w4[""]
}

var ctx = context.Background()

var tempDir string

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	tempDir, err = os.MkdirTemp("", "readreceipt-compare-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	sysMu.Lock()
	for _, s := range openSystems {
		if err := dropSystem(ctx, s); err != nil {
			fmt.Fprintln(os.Stderr, "closing", s.Name()+":", err)
		}
	}
	sysMu.Unlock()
	os.RemoveAll(tempDir)
	os.Exit(code)
}

// User i is "u%07d"; groups are created with users(n), so user i has member
// index i. User 0 sends every message.
var (
	usersMu  sync.Mutex
	userList []string
)

func userIDs(n int) []string {
	usersMu.Lock()
	defer usersMu.Unlock()
	for len(userList) < n {
		userList = append(userList, fmt.Sprintf("u%07d", len(userList)))
	}
	return userList[:n:n]
}

func sizeName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1_000 && n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strconv.Itoa(n)
}

// --- systems, one instance of each per process (plus W4's own)

var (
	sysMu       sync.Mutex
	shared      = map[string]System{}
	openSystems []System
)

// benchSystems returns the systems of -systems, without the "+wait" ones
// unless withWait: those run W1 only.
func benchSystems(withWait bool) []string {
	var out []string
	for _, n := range strings.Split(*sysFlag, ",") {
		if slices.Contains(systemNames, n) && (withWait || !waits(n)) {
			out = append(out, n)
		}
	}
	return out
}

func openSystem(b *testing.B, name, dirName string) System {
	dir := tempDir + "/" + dirName
	s, err := newSystem(ctx, name, dir, *goroutines)
	if err != nil {
		b.Fatalf("opening %s: %v", name, err)
	}
	sysMu.Lock()
	openSystems = append(openSystems, s)
	sysMu.Unlock()
	return s
}

func sharedSystem(b *testing.B, name string) System {
	skipIfDown(b, name)
	if onRedis(name) {
		setReplica(b, waits(name))
	}
	sysMu.Lock()
	s, ok := shared[name]
	sysMu.Unlock()
	if ok {
		return s
	}
	s = openSystem(b, name, name)
	sysMu.Lock()
	shared[name] = s
	sysMu.Unlock()
	return s
}

// quiesceShared settles the shared systems that fold in the background
// (the engine's receipt log, folded up to 100 ms after the last receipt),
// so that the Go heap W4 measures against does not shrink under it when
// an earlier workload's fold frees its records. Measured right after W1
// at -size quick, W4 needs both this and goHeap's second collection: with
// neither it read -754 to -33 B/msg, with the second collection alone
// 311.3 and -9.5, with both 308.0-311.4 in five runs (310.7 alone).
func quiesceShared(b *testing.B) {
	sysMu.Lock()
	defer sysMu.Unlock()
	for name, s := range shared {
		if st, ok := s.(interface{ Settle(context.Context) error }); ok {
			if err := st.Settle(ctx); err != nil {
				b.Fatalf("%s: settle: %v", name, err)
			}
		}
	}
}

// loading runs fn with the system's durability knob off, then turns it on.
func loading(b *testing.B, s System, fn func() error) {
	if sy, ok := s.(Syncer); ok {
		if err := sy.SetSync(ctx, false); err != nil {
			b.Fatal(err)
		}
		defer func() {
			if err := sy.SetSync(ctx, true); err != nil {
				b.Fatal(err)
			}
		}()
	}
	start := time.Now()
	if err := fn(); err != nil {
		b.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		fmt.Fprintf(os.Stderr, "fixture for %s took %v\n", b.Name(), d.Round(time.Millisecond))
	}
}

// parallel runs fn(i) for i in [0, n) on workers goroutines.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// --- the group fixtures of W1-W3 and W5: group "s<n>" of users(n)

type groupFx struct {
	gid string
	n   int

	mu       sync.Mutex
	w1Tracks int   // W1 windows tracked so far
	w1Seq    int64 // next W1 call
	w2       []string
	w3       map[bool][]string // page cursors of message w3 per filter
	w5Seq    int
	w5Left   []string // W5Concurrent's Redis messages still to drop
	w7       int
}

var (
	fxMu     sync.Mutex
	groupFxs = map[string]*groupFx{}
)

func groupFixture(b *testing.B, s System, n int) *groupFx {
	key := s.Name() + "/" + strconv.Itoa(n)
	fxMu.Lock()
	defer fxMu.Unlock()
	if fx, ok := groupFxs[key]; ok {
		return fx
	}
	fx := &groupFx{gid: "s" + strconv.Itoa(n), n: n}
	loading(b, s, func() error { return s.CreateGroup(ctx, fx.gid, userIDs(n)) })
	groupFxs[key] = fx
	return fx
}

func trackAll(s System, gid string, ids []string) error {
	return parallel(len(ids), 8, func(i int) error { return s.Track(ctx, gid, ids[i], userIDs(1)[0]) })
}

// --- W1: receipts, 30 messages per call, from many goroutines, durable

// W1 tracks messages in windows of 33 batches of 30 (990 messages, the
// workload's "1,000 tracked messages"); call j of a window sends batch
// j mod 33 as reader 1 + j/33, so concurrent calls spread over the batches
// and every receipt is new. A window holds 33(n-1) calls; more are tracked
// as the benchmark needs them.
const w1Batches = 33

func (fx *groupFx) w1Msgs(window, batch int) []string {
	ids := make([]string, 30)
	for k := range ids {
		ids[k] = fmt.Sprintf("w1-%d-%d-%d", window, batch, k)
	}
	return ids
}

func BenchmarkW1(b *testing.B) {
	for _, name := range benchSystems(true) {
		for _, n := range cfg(b).groups {
			b.Run("sys="+name+"/members="+sizeName(n), func(b *testing.B) { benchW1(b, sharedSystem(b, name), n) })
		}
	}
}

func benchW1(b *testing.B, s System, n int) {
	fx := groupFixture(b, s, n)
	perWindow := int64(w1Batches * (n - 1))
	fx.mu.Lock()
	base := fx.w1Seq
	fx.w1Seq += int64(b.N)
	need := int((fx.w1Seq + perWindow - 1) / perWindow)
	if fx.w1Tracks < need {
		loading(b, s, func() error {
			var ids []string
			for w := fx.w1Tracks; w < need; w++ {
				for bt := range w1Batches {
					ids = append(ids, fx.w1Msgs(w, bt)...)
				}
			}
			return trackAll(s, fx.gid, ids)
		})
		fx.w1Tracks = need
	}
	fx.mu.Unlock()
	users := userIDs(n)
	// The calls' message IDs, made before the timer starts: building 30
	// IDs with fmt in every call cost 6% of the engine's W1 profile, for
	// every system alike.
	first := int(base / perWindow)
	msgs := make([][][]string, need-first)
	for w := range msgs {
		msgs[w] = make([][]string, w1Batches)
		for bt := range w1Batches {
			msgs[w][bt] = fx.w1Msgs(first+w, bt)
		}
	}
	var seq atomic.Int64
	seq.Store(base)
	var before redisStats
	if onRedis(s.Name()) {
		before = readRedisStats(b)
	}
	b.SetParallelism(max(1, *goroutines/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			j := seq.Add(1) - 1
			w, k := j/perWindow, j%perWindow
			reader := users[1+k/w1Batches]
			got, err := s.Receipts(ctx, fx.gid, reader, msgs[int(w)-first][k%w1Batches])
			if err != nil {
				b.Error(err)
				return
			}
			if got != 30 {
				b.Errorf("%s: call %d recorded %d receipts, want 30", s.Name(), j, got)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)*30/b.Elapsed().Seconds(), "receipts/s")
	if onRedis(s.Name()) {
		b.StopTimer()
		reportRedisCPU(b, s.Name(), before, readRedisStats(b), b.N)
	}
}

// redisStats are the master's cumulative counters that W1 reads before and
// after its loop.
type redisStats struct {
	scriptCalls, scriptUsec int64   // FCALL, FCALL_RO, EVALSHA, EVAL
	waitCalls               int64   // WAIT
	allUsec                 int64   // every command
	cpu                     float64 // used_cpu_user + used_cpu_sys, seconds
}

func readRedisStats(b *testing.B) redisStats {
	info, err := redisAdmin().Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var st redisStats
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "used_cpu_user:"); ok {
			f, _ := strconv.ParseFloat(v, 64)
			st.cpu += f
		} else if v, ok := strings.CutPrefix(line, "used_cpu_sys:"); ok {
			f, _ := strconv.ParseFloat(v, 64)
			st.cpu += f
		}
		cmd, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		var calls, usec int64
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		st.allUsec += usec
		switch cmd {
		case "fcall", "fcall_ro", "evalsha", "eval":
			st.scriptCalls += calls
			st.scriptUsec += usec
		case "wait":
			st.waitCalls += calls
		}
	}
	return st
}

// reportRedisCPU reports what W1's calls cost the Redis master, per
// receipt recorded (30 per call): the time spent in script calls (INFO
// commandstats usec: the scripts and the commands they run, not reading
// requests, writing replies, fsync or replication), what that projects per
// master core (1e6 / script usec), the time of every command, and the
// server's whole CPU time (INFO cpu, all threads: I/O, fsync, replication
// included) with its projection per core. commandstats usec is wall time:
// where the benchmark's client shares the machine's cores with Redis, a
// script preempted midway counts the time it waited, so it can exceed the
// CPU time. The master serves nothing else meanwhile. A "+wait"
// system must have sent a WAIT per call.
func reportRedisCPU(b *testing.B, name string, before, after redisStats, calls int) {
	receipts := float64(calls) * 30
	script := float64(after.scriptUsec-before.scriptUsec) / receipts
	b.ReportMetric(script, "redis-script-us/receipt")
	if script > 0 {
		b.ReportMetric(1e6/script, "receipts/s/core")
	}
	b.ReportMetric(float64(after.scriptCalls-before.scriptCalls)/float64(calls), "scripts/call")
	b.ReportMetric(float64(after.allUsec-before.allUsec)/receipts, "redis-cmd-us/receipt")
	cpu := (after.cpu - before.cpu) * 1e6 / receipts
	b.ReportMetric(cpu, "redis-cpu-us/receipt")
	if cpu > 0 {
		b.ReportMetric(1e6/cpu, "receipts/s/core-cpu")
	}
	if w := after.waitCalls - before.waitCalls; waits(name) && w < int64(calls) {
		b.Errorf("%s: %d WAITs for %d receipt calls: the replica was not waited for", name, w, calls)
	}
}

// --- W2: counts of 30 messages

func BenchmarkW2(b *testing.B) {
	for _, name := range benchSystems(false) {
		for _, n := range cfg(b).groups {
			b.Run("sys="+name+"/members="+sizeName(n), func(b *testing.B) { benchW2(b, sharedSystem(b, name), n) })
		}
	}
}

func benchW2(b *testing.B, s System, n int) {
	fx := groupFixture(b, s, n)
	fx.mu.Lock()
	if fx.w2 == nil {
		ids := make([]string, 30)
		for i := range ids {
			ids[i] = fmt.Sprintf("w2-%d", i)
		}
		loading(b, s, func() error {
			if err := trackAll(s, fx.gid, ids); err != nil {
				return err
			}
			// Message i has been read by readers 1..i+1.
			return parallel(len(ids), 4, func(i int) error {
				return loadReads(ctx, s, fx.gid, ids[i], userIDs(min(i+2, n))[1:])
			})
		})
		fx.w2 = ids
	}
	ids := fx.w2
	fx.mu.Unlock()
	cs, err := s.Counts(ctx, fx.gid, ids)
	if err != nil {
		b.Fatal(err)
	}
	for i, c := range cs {
		if r := min(i+1, n-1); c != (Count{true, r, n - 1 - r}) {
			b.Fatalf("%s: counts of %s = %v", s.Name(), ids[i], c)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Counts(ctx, fx.gid, ids); err != nil {
			b.Fatal(err)
		}
	}
}

// --- W3: one 100-member page at a random cursor, 90% read

func BenchmarkW3(b *testing.B) {
	for _, name := range benchSystems(false) {
		for _, n := range cfg(b).groups {
			for _, f := range []string{"unread", "read"} {
				b.Run("sys="+name+"/members="+sizeName(n)+"/filter="+f, func(b *testing.B) {
					benchW3(b, sharedSystem(b, name), n, f == "unread")
				})
			}
		}
	}
}

func benchW3(b *testing.B, s System, n int, unread bool) {
	fx := groupFixture(b, s, n)
	fx.mu.Lock()
	if fx.w3 == nil {
		users := userIDs(n)
		var readers []string
		for i := 1; i < n; i++ {
			if i%10 != 0 {
				readers = append(readers, users[i])
			}
		}
		loading(b, s, func() error {
			if err := s.Track(ctx, fx.gid, "w3", users[0]); err != nil {
				return err
			}
			return loadReads(ctx, s, fx.gid, "w3", readers)
		})
		// Walk every page once: the cursors to start from at random.
		fx.w3 = map[bool][]string{}
		for _, unr := range []bool{false, true} {
			cursor, total := "", 0
			for {
				fx.w3[unr] = append(fx.w3[unr], cursor)
				us, next, done, err := s.Page(ctx, fx.gid, "w3", unr, cursor, 100)
				if err != nil {
					b.Fatal(err)
				}
				total += len(us)
				if done {
					break
				}
				cursor = next
			}
			want := len(readers)
			if unr {
				want = n - 1 - len(readers)
			}
			if total != want {
				b.Fatalf("%s: walking the pages (unread %v) gave %d members, want %d", s.Name(), unr, total, want)
			}
		}
	}
	cursors := fx.w3[unread]
	fx.mu.Unlock()
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		us, _, done, err := s.Page(ctx, fx.gid, "w3", unread, cursors[rng.IntN(len(cursors))], 100)
		if err != nil {
			b.Fatal(err)
		}
		if len(us) != 100 && !done {
			b.Fatalf("%s: a page of %d members before the end", s.Name(), len(us))
		}
	}
}

// --- W4: footprint of many messages in a 200-member group, half read

type w4Fx struct {
	s         System
	msgs      []string
	disk, mem float64 // bytes per message; disk < 0: not durable
}

var (
	w4Mu  sync.Mutex
	w4Fxs = map[string]*w4Fx{}
)

func w4Fixture(b *testing.B, name string, msgs int) *w4Fx {
	skipIfDown(b, name)
	w4Mu.Lock()
	defer w4Mu.Unlock()
	if fx, ok := w4Fxs[name]; ok {
		return fx
	}
	var s System
	if name == "engine" {
		// Room for every message in the cache: "in memory when hot".
		e, err := NewEngine(tempDir+"/w4-engine", rr.WithCacheBytes(4<<30))
		if err != nil {
			b.Fatal(err)
		}
		sysMu.Lock()
		openSystems = append(openSystems, e)
		sysMu.Unlock()
		s = e
	} else {
		if onRedis(name) {
			setReplica(b, false)
		}
		s = openSystem(b, name, "w4-"+name)
	}
	fp, ok := s.(Footprint)
	if !ok {
		b.Skipf("%s cannot report its footprint", name)
	}
	users := userIDs(200)
	ids := make([]string, msgs)
	for i := range ids {
		ids[i] = fmt.Sprintf("w4-%07d", i)
	}
	var disk0, mem0 int64
	loading(b, s, func() error {
		if err := s.CreateGroup(ctx, "w4", users); err != nil {
			return err
		}
		quiesceShared(b)
		var err error
		if disk0, mem0, err = fp.Footprint(ctx); err != nil {
			return err
		}
		if err := trackAll(s, "w4", ids); err != nil {
			return err
		}
		// Each message is read by a random half (100) of its 199 recipients.
		byReader := make([][]string, 200)
		rng := rand.New(rand.NewPCG(4, 4))
		perm := make([]int, 199)
		for i := range perm {
			perm[i] = i + 1
		}
		for _, id := range ids {
			rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			for _, r := range perm[:100] {
				byReader[r] = append(byReader[r], id)
			}
		}
		// 30 messages per call, as a reader would send them.
		type call struct {
			reader string
			ids    []string
		}
		var calls []call
		for r, ms := range byReader {
			for len(ms) > 0 {
				k := min(30, len(ms))
				calls = append(calls, call{users[r], ms[:k]})
				ms = ms[k:]
			}
		}
		return parallel(len(calls), 8, func(i int) error {
			got, err := s.Receipts(ctx, "w4", calls[i].reader, calls[i].ids)
			if err == nil && got != len(calls[i].ids) {
				err = fmt.Errorf("%s: loading W4 recorded %d of %d", name, got, len(calls[i].ids))
			}
			return err
		})
	})
	// Disk first: Footprint flushes and compacts, which drops the block
	// cache of Pebble-based systems. Then make every message hot (read all
	// counts) and take memory.
	disk1, _, err := fp.Footprint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < len(ids); i += 30 {
		cs, err := s.Counts(ctx, "w4", ids[i:min(i+30, len(ids))])
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cs {
			if c != (Count{true, 100, 99}) {
				b.Fatalf("%s: W4 counts %v, want 100 read, 99 unread", name, c)
			}
		}
	}
	_, mem1, err := fp.Footprint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fx := &w4Fx{s: s, msgs: ids, disk: float64(disk1-disk0) / float64(msgs), mem: float64(mem1-mem0) / float64(msgs)}
	if name == "map" {
		fx.disk = -1
	}
	w4Fxs[name] = fx
	return fx
}

func BenchmarkW4(b *testing.B) {
	for _, name := range benchSystems(false) {
		msgs := cfg(b).w4msgs(name)
		b.Run("sys="+name+"/members=200/messages="+sizeName(msgs), func(b *testing.B) {
			fx := w4Fixture(b, name, msgs)
			rng := rand.New(rand.NewPCG(5, 5))
			ids := make([]string, 30)
			b.ReportAllocs()
			b.ResetTimer()
			// The loop reads the counts of 30 messages picked at random
			// among all: the figures that matter are the metrics below.
			for range b.N {
				for i := range ids {
					ids[i] = fx.msgs[rng.IntN(len(fx.msgs))]
				}
				if _, err := fx.s.Counts(ctx, "w4", ids); err != nil {
					b.Fatal(err)
				}
			}
			if fx.disk >= 0 {
				b.ReportMetric(fx.disk, "B/msg-disk")
			}
			b.ReportMetric(fx.mem, "B/msg-mem")
		})
	}
}

// --- W5: TrackMessage in a large group

func BenchmarkW5(b *testing.B) {
	for _, name := range benchSystems(false) {
		n := cfg(b).w5
		b.Run("sys="+name+"/members="+sizeName(n), func(b *testing.B) {
			s := sharedSystem(b, name)
			fx := groupFixture(b, s, n)
			sender := userIDs(1)[0]
			fx.mu.Lock()
			defer fx.mu.Unlock()
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("w5-%d", fx.w5Seq+i)
			}
			fx.w5Seq += b.N
			// Redis copies the member bitmap into every message (125 KB at
			// 1M members): drop them as we go, outside the timer, so that
			// a long run does not fill the server's memory.
			del, _ := s.(*Redis)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := s.Track(ctx, fx.gid, ids[i], sender); err != nil {
					b.Fatal(err)
				}
				if del != nil && i%256 == 255 {
					b.StopTimer()
					if err := del.Delete(ctx, fx.gid, ids[i-255:i+1]); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
		})
	}
}

// W5Concurrent: the same tracking from -goroutines concurrent callers
// (b.RunParallel), every message new; ns/op is wall time per call across
// all callers, tracks/s calls per second. Durable systems return only
// once the track is on disk, so going faster than one fsync per call takes
// sharing fsyncs between callers. The Redis peer's messages (125 KB each
// at 1M members) are dropped at the start of the next run, outside the
// timer: a run cannot stop its timer for one goroutine.
func BenchmarkW5Concurrent(b *testing.B) {
	for _, name := range benchSystems(false) {
		n := cfg(b).w5
		b.Run("sys="+name+"/members="+sizeName(n), func(b *testing.B) {
			s := sharedSystem(b, name)
			fx := groupFixture(b, s, n)
			sender := userIDs(1)[0]
			fx.mu.Lock()
			defer fx.mu.Unlock()
			if del, ok := s.(*Redis); ok && len(fx.w5Left) > 0 {
				for lo := 0; lo < len(fx.w5Left); lo += 256 {
					if err := del.Delete(ctx, fx.gid, fx.w5Left[lo:min(lo+256, len(fx.w5Left))]); err != nil {
						b.Fatal(err)
					}
				}
				fx.w5Left = nil
			}
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("w5c-%d", fx.w5Seq+i)
			}
			fx.w5Seq += b.N
			if _, ok := s.(*Redis); ok {
				fx.w5Left = ids
			}
			var next atomic.Int64
			b.SetParallelism(max(1, *goroutines/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					if err := s.Track(ctx, fx.gid, ids[i], sender); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tracks/s")
		})
	}
}

// --- W6: reopen a store holding W4's data, time to the first answer

func BenchmarkW6(b *testing.B) {
	for _, name := range benchSystems(false) {
		msgs := cfg(b).w4msgs(name)
		b.Run("sys="+name+"/members=200/messages="+sizeName(msgs), func(b *testing.B) {
			fx := w4Fixture(b, name, msgs)
			r, ok := fx.s.(Reopener)
			if !ok {
				b.Skipf("%s: not measured (the map keeps nothing across a restart; Redis and PostgreSQL are servers outside the benchmark's process)", name)
			}
			rng := rand.New(rand.NewPCG(6, 6))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if err := r.Stop(); err != nil {
					b.Fatal(err)
				}
				id := fx.msgs[rng.IntN(len(fx.msgs))]
				b.StartTimer()
				if err := r.Start(ctx); err != nil {
					b.Fatal(err)
				}
				cs, err := fx.s.Counts(ctx, "w4", []string{id})
				if err != nil {
					b.Fatal(err)
				}
				if cs[0] != (Count{true, 100, 99}) {
					b.Fatalf("%s: after reopening, counts %v", name, cs[0])
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/first-answer")
		})
	}
}

// --- W7: receipt sent to event received by the sender's subscriber

func BenchmarkW7(b *testing.B) {
	for _, name := range benchSystems(false) {
		n := cfg(b).w7
		b.Run("sys="+name+"/members="+sizeName(n), func(b *testing.B) {
			s := sharedSystem(b, name)
			nt, ok := s.(Notifier)
			if !ok {
				b.Skipf("%s has no events", name)
			}
			fx := groupFixture(b, s, n)
			fx.mu.Lock()
			defer fx.mu.Unlock()
			users := userIDs(n)
			// Message k takes receipts from users 1..n-1, in turn.
			first := fx.w7
			fx.w7 += b.N
			var ids []string
			for k := first / (n - 1); k <= (fx.w7-1)/(n-1); k++ {
				ids = append(ids, fmt.Sprintf("w7-%d", k))
			}
			loading(b, s, func() error { return trackAll(s, fx.gid, ids) })
			evs := make(chan Event, 16)
			stop, err := nt.Subscribe(ctx, fx.gid, func(ev Event) { evs <- ev })
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := first; i < fx.w7; i++ {
				reader := users[1+i%(n-1)]
				msg := fmt.Sprintf("w7-%d", i/(n-1))
				t0 := time.Now()
				if got, err := s.Receipts(ctx, fx.gid, reader, []string{msg}); err != nil || got != 1 {
					b.Fatalf("%s: receipt recorded %d: %v", name, got, err)
				}
				select {
				case ev := <-evs:
					lat = append(lat, time.Since(t0))
					if ev.Reader != reader || ev.MsgID != msg {
						b.Fatalf("%s: event %v for receipt of %s by %s", name, ev, msg, reader)
					}
				case <-time.After(10 * time.Second):
					b.Fatalf("%s: no event within 10s", name)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-us")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Nanoseconds())/1e3, "p99-us")
		})
	}
}
