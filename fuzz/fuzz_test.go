package fuzz

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/readreceipt/readreceipt/internal/redistest"
	"github.com/redis/go-redis/v9"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// How a history is encoded. The first byte picks the engine configuration
// (decodeConfig: retention 10s, 5s or forever; query access; tiny caches;
// all group types on; synced writes). Every following operation is one
// byte, taken modulo 64 (see harness.step), then its arguments, mostly one
// byte each, drawn from small pools so that IDs collide often: 3 groups, 8
// users, 6 message IDs, 5 C2C pairs, with a few invalid IDs and
// conversations near the top of each byte's range. Argument bytes in
// 128..247 often steer towards what exists: the conversation or ID of a
// recently tracked message, a current member as reader or sender, the
// message's sender as caller. Past the end of the input every byte reads as
// zero. The operation bytes below are the first of each operation's range.
const (
	opCreate   = 0  // gid, type, n, n×user
	opAdd      = 3  // gid, n, n×user
	opRemove   = 7  // gid, n, n×user
	opDismiss  = 9  // gid
	opTrack    = 10 // conv, msg, sender
	opReceipt  = 22 // reader, n, conv, n×msg (≥250: msg of another conv, then conv)
	opCounts   = 38 // caller, n, conv, n×msg
	opPage     = 42 // caller, conv [, msg], filter, count, cursor kind [, pick]
	opDelete   = 49 // conv [, msg]
	opAdvance  = 51 // seconds (0..7)
	opSweep    = 53 //
	opFeature  = 54 // on unless 0 mod 8
	opTypes    = 55 // bit set of types (Work added unless 0x20; ≥0xf0 adds an invalid one)
	opReopen   = 56 //
	opCheck    = 57 // page size (even: 1)
	opGetGroup = 59 // gid
)

// Argument bytes used by the seeds (see beyond_test.go for the
// operations beyond the seed, opExt).
const (
	cfgDefault = 0x00 // retention 10s, sender access, default cache, default types, unsynced
	cfgAll     = 0x10 // every group type on
	cfgSync    = 0x20 // synced writes

	cG0, cG1   = 0, 1 // conversations: groups g0, g1
	cC01       = 10   // C2C u0,u1
	cC01Rev    = 15   // the same, users unsorted
	nOne, nTwo = 1, 2 // ref-list sizes 1 and 2
	nFour      = 4    // 4
	nFive      = 31   // 5: over the limit
	admin      = 0    // caller byte: administrator
	callerU0   = 1    // caller byte: u0
	callerU1   = 6    // caller byte: u1
	fRead      = 0    // filter read
	fUnread    = 1    // filter unread
	count1     = 0    // count byte: 1
	kFresh     = 0    // cursor kind: ""
	kNext      = 3    // continue the last walk
	kPool      = 6    // a cursor from the pool (then a pick byte)
	kGarble    = 7    // a garbled cursor (then a byte)
	badCount   = 252  // count maxPage+1
	zeroCount  = 250  // count 0
	badFilter  = 250  // filter 2
	badUser    = 252  // ""
	mixedRef   = 252  // m0 of the conversation named by the next byte
	c2cPick    = cC01 // conv byte for mixed refs
	typeComm   = 9    // type byte: Community
	typeWork   = 0    // type byte: Work
	typePublic = 6    // type byte: Public
	typesWPM   = 0x07 // Work, Public, Meeting
	typesBad   = 0xff // all five plus an invalid one
	on, off    = 1, 0 // feature
	sec5, sec7 = 5, 7 // advance
)

// seeds are meaningful histories for the corpus.
var seeds = [][]byte{
	// Group basics: receipts, repeats, own message, join after tracking,
	// leave after tracking, duplicates in a batch, pages with cursors.
	{cfgDefault,
		opCreate, 0, typeWork, 4, 0, 1, 2, 3,
		opTrack, cG0, 0, 0,
		opReceipt, 1, nOne, cG0, 0,
		opReceipt, 1, nOne, cG0, 0,
		opReceipt, 0, nOne, cG0, 0,
		opAdd, 0, 1, 5,
		opReceipt, 5, nOne, cG0, 0,
		opRemove, 0, 1, 2,
		opReceipt, 2, nOne, cG0, 0,
		opReceipt, 3, nFour, cG0, 0, 0, 1, 0,
		opPage, admin, cG0, 0, fRead, count1, kFresh,
		opPage, admin, cG0, 0, fRead, count1, kNext,
		opPage, admin, cG0, 0, fUnread, count1, kPool, 0,
		opPage, admin, cG0, 0, fRead, count1, kGarble, 3,
		opCheck, 0,
	},
	// C2C: the peer reads, the literal with unsorted users is the same
	// conversation, outsiders and the sender are refused, no member pages,
	// delete and re-track.
	{cfgDefault,
		opTrack, cC01, 0, 0,
		opReceipt, 1, nOne, cC01, 0,
		opReceipt, 1, nOne, cC01Rev, 0,
		opReceipt, 2, nOne, cC01, 0,
		opReceipt, 0, nOne, cC01, 0,
		opCounts, callerU1, nOne, cC01, 0,
		opCounts, callerU0, nOne, cC01, 0,
		opPage, admin, cC01, 0, fRead, count1, kFresh,
		opDelete, cC01, 0,
		opReceipt, 1, nOne, cC01, 0,
		opTrack, cC01, 0, 1,
		opReceipt, 0, nOne, cC01, 0,
		opCheck, 1,
	},
	// Dismiss and recreate with the same ID: old messages stay gone until
	// tracked again.
	{cfgDefault,
		opCreate, 1, typePublic, 3, 0, 1, 2,
		opTrack, cG1, 0, 0,
		opReceipt, 1, nOne, cG1, 0,
		opPage, admin, cG1, 0, fUnread, count1, kFresh,
		opDismiss, 1,
		opReceipt, 2, nOne, cG1, 0,
		opCreate, 1, typeWork, 3, 2, 1, 0,
		opReceipt, 2, nOne, cG1, 0,
		opTrack, cG1, 0, 2,
		opPage, admin, cG1, 0, fUnread, count1, kPool, 0,
		opReceipt, 0, nOne, cG1, 0,
		opCheck, 1,
	},
	// Retention: a message expires exactly at the retention, the sweep
	// reclaims it, and it can be tracked again.
	{cfgDefault,
		opCreate, 0, typeWork, 2, 0, 1,
		opTrack, cG0, 0, 0,
		opAdvance, sec5,
		opTrack, cG0, 1, 0,
		opAdvance, sec5,
		opReceipt, 1, nFour, cG0, 0, 1, 2, 0,
		opSweep,
		opTrack, cG0, 0, 1,
		opAdvance, sec7,
		opSweep,
		opCheck, 0,
	},
	// Switches: group types gate tracking only; with the feature off every
	// receipt call fails but membership and deletion work.
	{cfgAll,
		opCreate, 0, typeComm, 2, 0, 1,
		opTrack, cG0, 0, 0,
		opTypes, typesWPM,
		opTrack, cG0, 1, 0,
		opTrack, cG0, 0, 0,
		opTrack, cG0, 0, 1,
		opReceipt, 1, nOne, cG0, 0,
		opFeature, off,
		opReceipt, 1, nOne, cG0, 0,
		opCounts, admin, nOne, cG0, 0,
		opAdd, 0, 1, 2,
		opDelete, cG0, 0,
		opFeature, on,
		opReceipt, 1, nOne, cG0, 0,
		opTypes, typesBad,
		opCheck, 0,
	},
	// Limits and bad input: too many messages, mixed conversations, empty
	// lists, bad reader, page counts and filters out of range.
	{cfgDefault,
		opCreate, 0, typeWork, 4, 0, 1, 2, 3,
		opTrack, cG0, 0, 0,
		opTrack, cG0, 1, 0,
		opReceipt, 1, nFive, cG0, 0, 1, 2, 3, 4,
		opReceipt, 1, nTwo, cG0, 0, mixedRef, c2cPick,
		opReceipt, 1, 0, cG0,
		opReceipt, badUser, nOne, cG0, 0,
		opPage, admin, cG0, 0, fRead, zeroCount, kFresh,
		opPage, admin, cG0, 0, fRead, badCount, kFresh,
		opPage, admin, cG0, 0, badFilter, count1, kFresh,
		opCounts, admin, nFive, cG0, 0, 1, 2, 3, 4,
		opCheck, 1,
	},
	// Reopen in the middle of a walk: the cursor still works.
	{cfgSync,
		opCreate, 0, typeWork, 4, 0, 1, 2, 3,
		opTrack, cG0, 0, 0,
		opReceipt, 1, nOne, cG0, 0,
		opPage, admin, cG0, 0, fUnread, count1, kFresh,
		opReopen,
		opPage, admin, cG0, 0, fUnread, count1, kNext,
		opCheck, 0,
	},
	// Beyond the seed (beyond_test.go), with read times: delivery, then a
	// read; a private read counts as delivered, not read; switched off,
	// the next receipt is public; own state, delivery pages, read times.
	{cfgReadTimes,
		opCreate, 0, typeWork, 4, 0, 1, 2, 3,
		opTrack, cG0, 0, 0,
		opExt, extDeliver, 1, nOne, cG0, 0,
		opExt, extDeliver, 1, nOne, cG0, 0,
		opAdvance, sec5,
		opReceipt, 1, nOne, cG0, 0,
		opExt, extPrivate, 2, on,
		opExt, extGetPrivate, 2,
		opReceipt, 2, nOne, cG0, 0,
		opExt, extReadState, 2, nOne, cG0, 0,
		opPage, admin, cG0, 0, fDelivered, count1, kFresh,
		opPage, admin, cG0, 0, fUndelivered, count1, kFresh,
		opExt, extPrivate, 2, off,
		opAdvance, sec7,
		opReceipt, 2, nOne, cG0, 0,
		opExt, extReadTimes, admin, cG0, 0, 3, 1, 2, 3,
		opPage, admin, cG0, 0, fRead, count1, kFresh,
		opCheck, 0,
	},
	// Marks, with reciprocal privacy: a thread's mark, the conversation's
	// at a time (ties: both messages tracked in one microsecond), at now,
	// and back (no move); a private sender sees no reads; a C2C mark, one
	// by an outsider; a dismissed group's marks go.
	{cfgReciprocal,
		opCreate, 0, typeWork, 3, 0, 1, 2,
		opTrack, cG0, 0, 0,
		opExt, extTrackTh, cG0, 1, 0, thT0,
		opAdvance, 1,
		opExt, extTrackTh, cG0, 2, 1, thT1,
		opExt, extMark, 2, cG0, thT0, markMsg, 1,
		opExt, extMark, 2, cG0, thNone, markAt, 0, 0,
		opExt, extMark, 2, cG0, thNone, markNow,
		opExt, extMark, 2, cG0, thNone, markMsg, 0,
		opExt, extGetMark, 2, cG0, thT0,
		opExt, extPrivate, 0, on,
		opReceipt, 1, nOne, cG0, 0,
		opCounts, callerU0, nOne, cG0, 0,
		opTrack, cC01, 0, 0,
		opExt, extMark, 1, cC01, thNone, markNow,
		opExt, extMark, 3, cC01, thNone, markNow,
		opExt, extMark, 1, cG0, thNone, markBoth,
		opCheck, 1,
		opDismiss, 0,
		opExt, extGetMark, 2, cG0, thNone,
		opCheck, 0,
	},
}

// Argument bytes of the seeds beyond the seed.
const (
	cfgReadTimes  = 0x40 // WithReadTimes
	cfgReciprocal = 0x80 // WithReciprocalPrivacy
	fDelivered    = 240  // filter delivered
	fUndelivered  = 241  // filter undelivered
	thNone        = 0    // no thread
	thT0, thT1    = 2, 3 // threads t0, t1
	markMsg       = 0    // mark at a message (then its ID byte)
	markNow       = 1    // mark at the time now
	markBoth      = 0x82 // a message and a time: invalid
	markAt        = 3    // mark at a time, two bytes of seconds after the epoch
)

// backends returns the stores FuzzEngine runs its histories on, from
// READRECEIPT_FUZZ_BACKEND: "both" (the default: memstore and Pebble in
// lockstep), "mem" or "pebble".
func backends() string {
	if b := os.Getenv("READRECEIPT_FUZZ_BACKEND"); b != "" {
		return b
	}
	return "both"
}

// fuzzOnDisk reports whether FuzzEngine runs Pebble in a temporary
// directory (READRECEIPT_FUZZ_PEBBLE_FS=disk) instead of on Pebble's
// in-memory file system.
func fuzzOnDisk() bool { return os.Getenv("READRECEIPT_FUZZ_PEBBLE_FS") == "disk" }

// specs returns the targets of a history on the stores named by which
// ("both", "mem" or "pebble"). Pebble runs in a directory from dir, or, if
// dir is nil, on an in-memory file system of its own.
func specs(which string, dir func() string) []targetSpec {
	var out []targetSpec
	if which == "redis" || which == "mem+redis" {
		if which == "mem+redis" {
			out = append(out, targetSpec{backend: "mem"})
		}
		prefix, n := fuzzRedis.prefix()
		return append(out, targetSpec{backend: "redis", redis: fuzzRedis.client(), prefix: prefix, sparse: n%2 == 0})
	}
	if which == "both" || which == "mem" {
		out = append(out, targetSpec{backend: "mem"})
	}
	if which == "both" || which == "pebble" {
		if dir == nil {
			out = append(out, targetSpec{backend: "pebble", dir: "db", fs: vfs.NewMem()})
		} else {
			out = append(out, targetSpec{backend: "pebble", dir: dir()})
		}
	}
	if len(out) == 0 {
		panic(fmt.Sprintf("unknown backend %q: want both, mem, pebble, redis or mem+redis", which))
	}
	return out
}

// runHistory runs a history (its first byte is the configuration, the rest
// the operations) on the stores named by which, Pebble in a temporary
// directory, or on an in-memory file system if memFS is set.
func runHistory(t testing.TB, which string, memFS bool, data []byte) {
	if len(data) == 0 {
		return
	}
	dir := t.TempDir
	if memFS {
		dir = nil
	}
	h := newHarness(t, decodeConfig(data[0]), specs(which, dir)...)
	h.run(data[1:])
}

// FuzzEngine runs a history decoded from the input against the model and
// against the engine over each store, memstore and Pebble, in lockstep, and
// fails at the first difference in results, errors, events or state.
//
// Pebble runs on its in-memory file system (vfs.NewMem), ten times faster
// per history than a temporary directory on this machine, and the
// configuration byte leaves synced writes off in most histories: neither
// changes anything the model can see, and both let the fuzzer try many
// more histories. READRECEIPT_FUZZ_PEBBLE_FS=disk runs Pebble in a
// temporary directory instead; TestSeeds and TestEngineMatchesModel always
// do.
func FuzzEngine(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	which, memFS := backends(), !fuzzOnDisk()
	if strings.Contains(which, "redis") {
		fuzzRedis.start(f)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runHistory(t, which, memFS, data)
	})
}

// TestSeeds runs the seed histories on both stores in lockstep, and on each
// store alone.
func TestSeeds(t *testing.T) {
	fuzzRedis.start(t)
	for i, s := range seeds {
		for _, which := range []string{"both", "mem", "pebble", "mem+redis"} {
			if which == "mem+redis" && !fuzzRedis.available() {
				continue
			}
			t.Run(fmt.Sprintf("%d/%s", i, which), func(t *testing.T) {
				runHistory(t, which, false, s)
			})
		}
	}
}

// TestEngineMatchesModel runs seeded random histories: many on the memory
// store alone, fewer on memstore and Pebble in lockstep (with reopens). A
// failing history is shrunk to the shortest one found that still fails the
// same way, which is printed as a corpus entry for FuzzEngine.
// READRECEIPT_FUZZ_RUNS=n runs n memory histories (and n/25 lockstep ones)
// instead, for a longer soak.
func TestEngineMatchesModel(t *testing.T) {
	memRuns, bothRuns, redisRuns := 1000, 40, 60
	switch {
	case testing.Short():
		memRuns, bothRuns, redisRuns = 100, 6, 10
	case raceEnabled:
		memRuns, bothRuns, redisRuns = 300, 12, 20
	}
	if n, err := strconv.Atoi(os.Getenv("READRECEIPT_FUZZ_RUNS")); err == nil {
		memRuns, bothRuns, redisRuns = n, max(1, n/25), max(1, n/15) // a longer soak
	}
	fuzzRedis.start(t)
	for _, c := range []struct {
		which string
		runs  int
	}{{"mem", memRuns}, {"both", bothRuns}, {"mem+redis", redisRuns}} {
		t.Run(c.which, func(t *testing.T) {
			if c.which == "mem+redis" && !fuzzRedis.available() {
				t.Skip(redistest.NotFoundMessage)
			}
			for seed := range c.runs {
				data := randomHistory(uint64(seed))
				r := tryHistory(t, c.which, data)
				if r.fail == "" {
					continue
				}
				short := shrink(t, c.which, data, r)
				t.Errorf("random history %d fails; the shortest history found that fails the same way has %d of its %d operations.\n"+
					"Corpus entry for testdata/fuzz/FuzzEngine:\ngo test fuzz v1\n[]byte(%q)\n\nThe original history's failure:\n%s",
					seed, len(tryHistory(t, c.which, short).starts), len(r.starts), short, lastLine(r.fail))
				runHistory(t, c.which, false, short) // fails with the short history's trace
				return
			}
		})
	}
	if testing.Verbose() {
		t.Logf("outcomes:\n%s", statsReport())
	}
}

// randomHistory returns the bytes of a random history. Half the bytes are
// drawn from 128..247, where arguments steer towards what exists.
func randomHistory(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	data := make([]byte, 200+r.IntN(1000))
	for i := range data {
		if r.IntN(2) == 0 {
			data[i] = byte(128 + r.IntN(120))
		} else {
			data[i] = byte(r.Uint32())
		}
	}
	return data
}

// fuzzRedis is the Redis server the Redis targets of one top-level test
// (or fuzz run) share, each history under a key prefix of its own.
var fuzzRedis redisFixture

type redisFixture struct {
	mu   sync.Mutex
	srv  *redistest.Server
	c    redis.UniversalClient
	next int
}

// start starts the server for tb's lifetime, unless Redis tests are off
// or there is no redis-server (then available reports false).
func (f *redisFixture) start(tb testing.TB) {
	if _, err := exec.LookPath("redis-server"); err != nil || os.Getenv(redistest.EnvVar) == "off" {
		return
	}
	srv := redistest.Start(tb, redistest.AppendFsync("no"))
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	f.mu.Lock()
	f.srv, f.c = srv, c
	f.mu.Unlock()
	tb.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		_ = f.c.Close()
		f.srv, f.c = nil, nil
	})
}

func (f *redisFixture) available() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c != nil
}

func (f *redisFixture) client() redis.UniversalClient {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c == nil {
		panic("fuzz: no Redis server: set READRECEIPT_FUZZ_BACKEND to mem, pebble or both, or install redis-server")
	}
	return f.c
}

// prefix returns a key prefix no other history of this process uses, and
// its number.
func (f *redisFixture) prefix() (string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	return fmt.Sprintf("h%d:", f.next), f.next
}
