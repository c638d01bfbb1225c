package fuzz

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt/internal/faults"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/pebblestore"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Crash points.
//
// FuzzCrash runs a history on Pebble with synced writes, over Pebble's
// in-memory file system in its crashable mode (vfs.NewCrashableMem). Every
// file system mutation (create, rename, remove, write, sync, on files and
// directories) passes through crashFS, which at a chosen mutation takes a
// crash image (MemFS.CrashClone): everything synced so far, and a random
// part of what was written but not synced, as a machine that lost power at
// that instant would leave it. The image is taken while the operation in
// flight is somewhere inside its write, so the image holds every
// acknowledged operation and the one in flight either wholly or not at
// all. The test opens a second engine on the image and compares it with
// the model before and after the operation in flight: one of the two must
// match in full. The history then goes on against the recovered engine.

// crashFS is a vfs.FS in memory that takes a crash image just before its
// at-th mutation once armed.
type crashFS struct {
	*vfs.MemFS
	cfg vfs.CrashCloneCfg

	mu    sync.Mutex
	armed bool
	n, at int
	image *vfs.MemFS
	step  int // the operation in flight when the image was taken
	// current is the operation in flight (-1 between operations).
	current atomic.Int64
}

func newCrashFS(cfg vfs.CrashCloneCfg) *crashFS {
	c := &crashFS{MemFS: vfs.NewCrashableMem(), cfg: cfg}
	c.current.Store(-1)
	return c
}

// arm makes the image be taken just before the at-th mutation from now on
// (at >= 1).
func (c *crashFS) arm(at int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.n, c.at = true, 0, at
}

// tick counts one mutation, about to happen, and takes the image when its
// turn has come. CrashClone waits for the mutations in progress on other
// goroutines and holds back new ones while it copies.
func (c *crashFS) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armed || c.image != nil {
		return
	}
	c.n++
	if c.n >= c.at {
		c.take()
	}
}

// take takes the image now. c.mu must be held.
func (c *crashFS) take() {
	c.image = c.MemFS.CrashClone(c.cfg)
	c.step = int(c.current.Load())
}

// takeNow takes the image now, if none was taken yet, and returns it.
func (c *crashFS) takeNow() *vfs.MemFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.image == nil {
		c.take()
	}
	return c.image
}

func (c *crashFS) taken() (*vfs.MemFS, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.image, c.step
}

func (c *crashFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	c.tick()
	f, err := c.MemFS.Create(name, cat)
	return c.wrap(f), err
}

func (c *crashFS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	c.tick()
	f, err := c.MemFS.OpenReadWrite(name, cat, opts...)
	return c.wrap(f), err
}

func (c *crashFS) OpenDir(name string) (vfs.File, error) {
	f, err := c.MemFS.OpenDir(name)
	return c.wrap(f), err
}

func (c *crashFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	c.tick()
	f, err := c.MemFS.ReuseForWrite(oldname, newname, cat)
	return c.wrap(f), err
}

func (c *crashFS) Link(oldname, newname string) error {
	c.tick()
	return c.MemFS.Link(oldname, newname)
}

func (c *crashFS) Remove(name string) error {
	c.tick()
	return c.MemFS.Remove(name)
}

func (c *crashFS) RemoveAll(name string) error {
	c.tick()
	return c.MemFS.RemoveAll(name)
}

func (c *crashFS) Rename(oldname, newname string) error {
	c.tick()
	return c.MemFS.Rename(oldname, newname)
}

func (c *crashFS) MkdirAll(dir string, perm os.FileMode) error {
	c.tick()
	return c.MemFS.MkdirAll(dir, perm)
}

func (c *crashFS) wrap(f vfs.File) vfs.File {
	if f == nil {
		return nil
	}
	return &crashFile{File: f, fs: c}
}

// crashFile counts the writes and syncs of one file.
type crashFile struct {
	vfs.File
	fs *crashFS
}

func (f *crashFile) Write(p []byte) (int, error) {
	f.fs.tick()
	return f.File.Write(p)
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.tick()
	return f.File.WriteAt(p, off)
}

func (f *crashFile) Sync() error {
	f.fs.tick()
	return f.File.Sync()
}

func (f *crashFile) SyncData() error {
	f.fs.tick()
	return f.File.SyncData()
}

func (f *crashFile) SyncTo(length int64) (bool, error) {
	f.fs.tick()
	return f.File.SyncTo(length)
}

// crashParams is how a FuzzCrash input chooses its crash point: the
// operation to arm at, the mutation after it to crash before, and the
// share of unsynced data the image keeps.
type crashParams struct {
	step, mutation, unsyncedPercent int
	seed                            uint64
	probe                           bool // fail by panicking (see harness.probe)
}

// runCrash runs a FuzzCrash input: a configuration byte, three crash
// bytes (operation, mutation, unsynced percent), then the history.
func runCrash(tb testing.TB, data []byte) {
	if len(data) < 4 {
		return
	}
	hash := fnv.New64a()
	hash.Write(data)
	p := crashParams{step: int(data[1]), mutation: 1 + int(data[2]), unsyncedPercent: int(data[3]) % 101, seed: hash.Sum64()}
	cfg := decodeConfig(data[0])
	cfg.syncOff = false // the point: every acknowledged operation survives
	runCrashHistory(tb, cfg, p, data[4:])
}

// runCrashHistory runs one crash history and returns which state the
// recovered engine matched ("before" or "after" the operation in flight)
// and whether an operation was in flight at the crash.
func runCrashHistory(tb testing.TB, cfg config, p crashParams, history []byte) (matched string, inFlight bool) {
	fs := newCrashFS(vfs.CrashCloneCfg{
		UnsyncedDataPercent: p.unsyncedPercent,
		RNG:                 rand.New(rand.NewPCG(p.seed, 0xc4a54)),
	})
	cfg.noMarks = true // see config.noMarks
	h := newHarnessMode(tb, cfg, p.probe, targetSpec{backend: "pebble", dir: "db", fs: fs})
	defer h.closeQuiet()
	h.logf("crash point: operation %d, mutation %d after it, %d%% of unsynced data kept", p.step, p.mutation, p.unsyncedPercent)
	// before is the state before the operation in flight, or, between
	// operations, the state then; it is kept while an image may still be
	// taken.
	var before *Model
	recovered := false
	pending := func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return fs.armed && fs.image == nil
	}
	h.beforeStep = func(n int) {
		if n == p.step {
			fs.arm(p.mutation)
		}
		if pending() {
			before = h.model.Clone()
		}
		fs.current.Store(int64(n))
	}
	h.afterStep = func(n int) {
		if img, step := fs.taken(); img != nil && !recovered {
			recovered = true
			h.recoverFrom(img, step, before, h.model)
		} else if pending() {
			// Background work between operations may still crash.
			before = h.model.Clone()
		}
		fs.current.Store(-1)
	}
	h.runOps(&decoder{b: history})
	if !recovered {
		// No crash during the history: crash after it, with every
		// operation acknowledged.
		h.recoverFrom(fs.takeNow(), -1, h.model, h.model)
	}
	h.finish()
	return h.matched, h.inFlight
}

// recoverFrom opens a second engine on a crash image and checks it against
// the model before the operation in flight (step) and after it; if no
// operation was in flight (step -1), against before alone. The engine the
// history ran on is closed, and the recovered one takes its place with the
// model that matched.
func (h *harness) recoverFrom(img *vfs.MemFS, step int, before, after *Model) {
	h.logf("crash image taken during operation %d; recover", step)
	cands := []*Model{before, after}
	names := []string{"before", "after"}
	if step < 0 {
		cands, names = cands[:1], []string{"between operations, at"}
	}
	var reports []string
	for i, m := range cands {
		report := h.checkImage(img, m)
		if report == "" {
			h.logf("recovered the state %s operation %d", names[i], step)
			h.matched, h.inFlight = names[i], step >= 0
			stat(fmt.Sprintf("crash: recovered the state %s the operation in flight (in flight: %v)", names[i], step >= 0))
			h.adopt(img, m)
			h.settleSweep(step >= 0 && h.sweeping)
			return
		}
		reports = append(reports, fmt.Sprintf("--- against the state %s operation %d:\n%s", names[i], step, report))
	}
	h.fail("the engine recovered from the crash image matches neither the state before nor after the operation in flight:\n%s", strings.Join(reports, "\n"))
}

// checkImage opens an engine on img and compares its whole state with a
// copy of m. It returns "" if they match, or the failure report.
func (h *harness) checkImage(img *vfs.MemFS, m *Model) (report string) {
	return checkStore(h.tb, h.cfg, targetSpec{backend: "pebble", dir: "db", fs: img}, m)
}

// checkStore opens an engine on the store of spec and compares its whole
// state with a copy of m. It returns "" if they match, or the failure
// report.
func checkStore(tb testing.TB, cfg config, spec targetSpec, m *Model) (report string) {
	r := &harness{tb: tb, ctx: context.Background(), cfg: cfg, probe: true, model: m.Clone(), cn: canon{ok: true}}
	r.clock.Store(m.Now)
	t := &target{targetSpec: spec}
	r.targets = []*target{t}
	defer func() {
		r.closeQuiet()
		if p := recover(); p != nil {
			f, ok := p.(*histFailure)
			if !ok {
				panic(p)
			}
			report = f.msg
		}
	}()
	r.open(t)
	r.fullCheck(false)
	r.closeAll()
	return ""
}

// settleSweep sweeps the recovered engine and the model. A sweep in
// flight at the crash deletes each expired message in a write of its own,
// so the image may hold any part of them; no call can tell (an expired
// message answers ErrReceiptNotFound either way), but the next sweep's
// count would. After a crash during a sweep the engine may delete fewer
// messages now than the model; otherwise exactly as many.
func (h *harness) settleSweep(sweepInFlight bool) {
	t := h.targets[0]
	n, err := t.eng.Sweep(h.ctx)
	want := h.model.Sweep()
	switch {
	case err != nil:
		h.fail("%s: Sweep after recovery: %v", t.backend, err)
	case n > want || (!sweepInFlight && n != want):
		h.fail("%s: Sweep after recovery deleted %d messages, want %d", t.backend, n, want)
	}
	if err := t.eng.Check(h.ctx); err != nil {
		h.fail("%s: Check after recovery and sweep: %v", t.backend, err)
	}
}

// adopt closes the engine the history ran on and goes on with one opened
// on the crash image, and with the model that matched it.
func (h *harness) adopt(img *vfs.MemFS, m *Model) {
	old := h.targets[0]
	h.close(old)
	h.model = m.Clone()
	h.clock.Store(m.Now)
	t := &target{targetSpec: targetSpec{backend: "pebble", dir: "db", fs: img}, cursors: old.cursors, next: old.next}
	h.targets = []*target{t}
	h.open(t)
}

// crashSeeds are FuzzCrash's seeds: each seed history with a few crash
// points.
func crashSeeds() [][]byte {
	var out [][]byte
	for i, s := range seeds {
		for j, c := range [][3]byte{{1, 0, 0}, {3, 2, 100}, {5, 6, 50}, {200, 0, 0}} {
			if (i+j)%2 == 1 && c[0] != 200 {
				continue
			}
			out = append(out, append([]byte{s[0], c[0], c[1], c[2]}, s[1:]...))
		}
	}
	return out
}

// FuzzCrash runs a history on Pebble with synced writes, takes a crash
// image at a point the input chooses (see crashFS), and checks that an
// engine opened on the image holds every acknowledged operation and the one
// in flight wholly or not at all, then goes on with the history on it. The
// input is a configuration byte, three crash bytes (the operation at which
// to arm, the mutation after that to crash before, the percentage of
// unsynced data the image keeps), then the history as in FuzzEngine.
func FuzzCrash(f *testing.F) {
	for _, s := range crashSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runCrash(t, data)
	})
}

// TestCrashPoints crashes the seed histories at every operation, at the
// first few mutations of each, keeping none or all of the unsynced data,
// and checks that the crash machinery does what it claims: images are
// taken while operations are in flight, and recovery finds the in-flight
// operation sometimes absent and sometimes present (all-or-nothing either
// way; runCrashHistory checks that).
func TestCrashPoints(t *testing.T) {
	outcomes := map[string]int{}
	for i, s := range seeds {
		if testing.Short() && i > 1 {
			break
		}
		cfg := decodeConfig(s[0])
		cfg.syncOff = false
		ops := len(tryHistory(t, "mem", s).starts)
		for step := 0; step <= ops; step++ {
			for mutation := 1; mutation <= 3; mutation++ {
				for _, pct := range []int{0, 100} {
					p := crashParams{step: step, mutation: mutation, unsyncedPercent: pct, seed: uint64(step)}
					matched, inFlight := runCrashHistory(t, cfg, p, s[1:])
					outcomes[fmt.Sprintf("%s, in flight %v", matched, inFlight)]++
				}
			}
		}
	}
	t.Logf("recovered states: %v", outcomes)
	if outcomes["before, in flight true"] == 0 || outcomes["after, in flight true"] == 0 {
		t.Errorf("recovery never found the operation in flight both absent and present: %v", outcomes)
	}
}

// TestCrashCatchesLostWrites checks that the crash test fails when
// acknowledged writes are lost: with synced writes off and an image that
// keeps no unsynced data, the receipts of the history are gone after the
// crash, and the recovered engine must not match the model.
func TestCrashCatchesLostWrites(t *testing.T) {
	cfg := decodeConfig(seeds[0][0])
	cfg.syncOff = true
	if report := crashProbe(t, cfg); !strings.Contains(report, "matches neither") {
		t.Fatalf("a crash that lost acknowledged writes went unnoticed; report:\n%s", report)
	}
}

// crashProbe crashes the first seed history at operation 250 with an
// image that keeps no unsynced data, and returns the harness's failure
// report ("" if the recovered engine matched the model).
func crashProbe(t *testing.T, cfg config) (report string) {
	p := crashParams{step: 250, mutation: 1, unsyncedPercent: 0, probe: true}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*histFailure)
			if !ok {
				panic(r)
			}
			report = f.msg
		}
	}()
	runCrashHistory(t, cfg, p, seeds[0][1:])
	return ""
}

// TestCrashCatchesEarlyReceiptAcks checks that the crash test fails when
// the receipt path acknowledges too early: with synced writes on but
// faults.EarlyReceiptAck, receipts reach the store only through the
// log's unsynced folds, and an image that keeps no unsynced data loses
// the receipts acknowledged since the last synced write.
func TestCrashCatchesEarlyReceiptAcks(t *testing.T) {
	faults.EarlyReceiptAck.Store(true)
	defer faults.EarlyReceiptAck.Store(false)
	cfg := decodeConfig(seeds[0][0])
	cfg.syncOff = false
	if report := crashProbe(t, cfg); !strings.Contains(report, "matches neither") {
		t.Fatalf("a crash that lost receipts acknowledged before they were durable went unnoticed; report:\n%s", report)
	}
}

// The kill test runs a history in a child process (this test binary again,
// running TestCrashKillChild) on Pebble in a real directory with synced
// writes, kills it with SIGKILL at a random moment, and checks the
// directory against the model. The child prints "ack N" once operation N
// has returned; every operation acknowledged before the kill must have
// survived, and the one in flight must be there wholly or not at all.
const (
	killDirEnv  = "READRECEIPT_FUZZ_KILL_DIR"
	killDataEnv = "READRECEIPT_FUZZ_KILL_HISTORY"
	// killFaultEnv=early-ack makes the child acknowledge receipts before
	// they are durable (faults.EarlyReceiptAck).
	killFaultEnv = "READRECEIPT_FUZZ_KILL_FAULT"
)

// TestCrashKillChild is the child of TestCrashKill; it does nothing unless
// started by it.
func TestCrashKillChild(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashKill")
	}
	data, err := hex.DecodeString(os.Getenv(killDataEnv))
	if err != nil || len(data) == 0 {
		t.Fatalf("bad %s: %v", killDataEnv, err)
	}
	cfg := decodeConfig(data[0])
	cfg.syncOff, cfg.noMarks = false, true
	if os.Getenv(killFaultEnv) == "early-ack" {
		faults.EarlyReceiptAck.Store(true)
	}
	h := newHarness(t, cfg, targetSpec{backend: "pebble", dir: dir})
	h.afterStep = func(n int) { fmt.Printf("ack %d\n", n) }
	h.runOps(&decoder{b: data[1:]})
	fmt.Println("done")
	time.Sleep(time.Minute) // wait to be killed
}

// TestCrashKill kills child processes running random histories (see
// TestCrashKillChild) and checks what they left on disk.
func TestCrashKill(t *testing.T) {
	if os.Getenv(killDirEnv) != "" {
		t.Skip("in the child")
	}
	rounds := 12
	if testing.Short() {
		rounds = 3
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6b11))
	outcomes := map[string]int{}
	for round := range rounds {
		seed := r.Uint64()
		matched, reports, acked, done := crashKillRound(t, seed, time.Duration(r.IntN(40))*time.Millisecond, false)
		if matched == "" {
			t.Fatalf("round %d (history seed %d, %d operations acknowledged): the directory matches neither the acknowledged state nor the one after the operation in flight:\n%s",
				round, seed, acked, strings.Join(reports, "\n"))
		}
		if done {
			outcomes["killed after the history"]++
		} else {
			outcomes["killed mid-history, recovered "+matched+" the operation in flight"]++
		}
	}
	t.Logf("%v", outcomes)
}

// crashKillRound runs one round of TestCrashKill: the history of seed in
// a child killed after delay (with faults.EarlyReceiptAck set in the
// child if earlyAck), then the directory against the model after the
// acknowledged operations and after the one in flight. matched says which
// matched ("without" or "with" the one in flight), or is empty, and then
// reports say why neither did.
func crashKillRound(t *testing.T, seed uint64, delay time.Duration, earlyAck bool) (matched string, reports []string, acked int, done bool) {
	data := randomHistory(seed)
	dir := t.TempDir()
	acked, done = killChild(t, dir, data, delay, earlyAck)
	cfg := decodeConfig(data[0])
	cfg.syncOff = false
	// The model after the acknowledged operations, and after the one in
	// flight, from a replay on the memory store.
	for _, n := range []int{acked, acked + 1} {
		if n == acked+1 && done {
			break
		}
		m := replayModel(t, data, n)
		if m == nil {
			break // the history has no operation n
		}
		rep := checkStore(t, cfg, targetSpec{backend: "pebble", dir: dir}, m)
		if rep == "" {
			return map[bool]string{true: "without", false: "with"}[n == acked], nil, acked, done
		}
		reports = append(reports, fmt.Sprintf("--- against the state after %d operations:\n%s", n, rep))
	}
	return "", reports, acked, done
}

// TestCrashKillCatchesEarlyAcks checks that the kill test fails when the
// receipt path acknowledges too early: with faults.EarlyReceiptAck in the
// child, receipts reach the store only when the log is folded, and a kill
// at the end of a history loses those acknowledged since the last fold.
// Some round must see it.
func TestCrashKillCatchesEarlyAcks(t *testing.T) {
	if os.Getenv(killDirEnv) != "" {
		t.Skip("in the child")
	}
	for seed := range uint64(8) {
		matched, _, acked, _ := crashKillRound(t, seed, -1, true)
		if matched == "" {
			t.Logf("history seed %d: the kill lost acknowledged receipts (%d operations acknowledged), as it must", seed, acked)
			return
		}
	}
	t.Fatal("eight kills of a child that acknowledges receipts before they are durable went unnoticed")
}

// killChild runs the child on dir and history, kills it after delay from
// its first acknowledgement (a negative delay: once it has finished), and
// returns how many operations it acknowledged and whether it had finished.
func killChild(t *testing.T, dir string, data []byte, delay time.Duration, earlyAck bool) (acked int, done bool) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKillChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir, killDataEnv+"="+hex.EncodeToString(data))
	if earlyAck {
		cmd.Env = append(cmd.Env, killFaultEnv+"=early-ack")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log []string
	started := false
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	var kill <-chan time.Time
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break wait
			}
			log = append(log, l)
			if !started && strings.HasPrefix(l, "ack ") {
				started = true
				if delay >= 0 {
					kill = time.After(delay)
				}
			}
			if l == "done" && kill == nil {
				kill = time.After(0)
			}
		case <-kill:
			_ = cmd.Process.Kill()
			kill = nil
		case <-timer.C:
			_ = cmd.Process.Kill()
			t.Fatalf("the child did not start in time:\n%s", strings.Join(log, "\n"))
		}
	}
	_ = cmd.Wait()
	acked = 0
	for _, l := range log {
		if n, ok := strings.CutPrefix(l, "ack "); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v != acked {
				t.Fatalf("child: unexpected line %q after %d acknowledgements:\n%s", l, acked, strings.Join(log, "\n"))
			}
			acked++
		}
		if l == "done" {
			done = true
		}
		if strings.HasPrefix(l, "--- FAIL") || strings.Contains(l, "FAILED:") {
			t.Fatalf("the child failed:\n%s", strings.Join(log, "\n"))
		}
	}
	return acked, done
}

// replayModel runs the first n operations of a history on the memory store
// and returns the model then, or nil if the history has fewer operations.
func replayModel(t *testing.T, data []byte, n int) *Model {
	cfg := decodeConfig(data[0])
	cfg.syncOff, cfg.noMarks = false, true
	h := newHarness(t, cfg, targetSpec{backend: "mem"})
	defer h.closeQuiet()
	h.opLimit = n
	h.runOps(&decoder{b: data[1:]})
	if len(h.opStarts) < n {
		return nil
	}
	return h.model.Clone()
}

// pebbleCrashDuringOpen writes a key to a Pebble store on a crashable file
// system and closes it, then opens it again once for each mutation of that
// open, taking a crash image just before that mutation (keeping a random
// half of the unsynced data), and checks that each image opens and holds
// the key. It returns the first failure, or "".
func pebbleCrashDuringOpen(t *testing.T, seeds int) string {
	ctx := context.Background()
	key, val := []byte("k"), []byte("v")
	open := func(fs vfs.FS) (*pebblestore.Store, error) {
		return pebblestore.Open("db", &pebblestore.Options{FS: fs})
	}
	for seed := range seeds {
		for at := 1; ; at++ {
			fs := newCrashFS(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(uint64(seed), uint64(at)))})
			st, err := open(fs)
			if err != nil {
				t.Fatal(err)
			}
			var b store.Batch
			b.Set(key, val)
			if err := st.Write(ctx, &b, store.WriteOptions{Sync: true}); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			fs.arm(at)
			st, err = open(fs)
			if err != nil {
				t.Fatal(err)
			}
			_ = st.Close()
			img, _ := fs.taken()
			if img == nil {
				break // the open made fewer mutations than at
			}
			st, err = open(img)
			if err != nil {
				return fmt.Sprintf("seed %d, crash before mutation %d of the open: %v", seed, at, err)
			}
			got, err := st.Get(ctx, [][]byte{key})
			_ = st.Close()
			if err != nil || string(got[0]) != string(val) {
				return fmt.Sprintf("seed %d, crash before mutation %d of the open: got %q, %v", seed, at, got, err)
			}
		}
	}
	return ""
}

// TestPebbleCrashDuringOpen crashes a Pebble store at every file system
// mutation of its open: every crash image must open again. Pebble v2.1.7
// alone fails it; pebblestore's markerSyncFS makes it pass
// (fuzz/FINDINGS.md, finding 3).
func TestPebbleCrashDuringOpen(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 4
	}
	if msg := pebbleCrashDuringOpen(t, seeds); msg != "" {
		t.Fatal(msg)
	}
}
