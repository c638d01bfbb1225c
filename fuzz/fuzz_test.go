package fuzz

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
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

// Argument bytes used by the seeds.
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
}

// backend is the store FuzzEngine runs on: memstore unless
// READRECEIPT_FUZZ_BACKEND=pebble.
func backend() string {
	if b := os.Getenv("READRECEIPT_FUZZ_BACKEND"); b != "" {
		return b
	}
	return "mem"
}

func runHistory(t testing.TB, backend, dir string, data []byte) {
	if len(data) == 0 {
		return
	}
	h := newHarness(t, backend, dir, decodeConfig(data[0]))
	h.run(data[1:])
}

// FuzzEngine runs a history decoded from the input against the engine and
// the model and fails at the first difference.
func FuzzEngine(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	be := backend()
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := ""
		if be == "pebble" {
			dir = t.TempDir()
		}
		runHistory(t, be, dir, data)
	})
}

// TestSeeds runs the seed histories on both stores.
func TestSeeds(t *testing.T) {
	for i, s := range seeds {
		for _, be := range []string{"mem", "pebble"} {
			t.Run(fmt.Sprintf("%d/%s", i, be), func(t *testing.T) {
				runHistory(t, be, t.TempDir(), s)
			})
		}
	}
}

// TestEngineMatchesModel runs seeded random histories: many on the memory
// store, fewer on Pebble (with reopens). READRECEIPT_FUZZ_RUNS=n runs n
// memory histories (and n/25 Pebble ones) instead, for a longer soak.
func TestEngineMatchesModel(t *testing.T) {
	memRuns, pebbleRuns := 1000, 40
	switch {
	case testing.Short():
		memRuns, pebbleRuns = 100, 6
	case raceEnabled:
		memRuns, pebbleRuns = 300, 12
	}
	if n, err := strconv.Atoi(os.Getenv("READRECEIPT_FUZZ_RUNS")); err == nil {
		memRuns, pebbleRuns = n, max(1, n/25) // a longer soak
	}
	for _, c := range []struct {
		backend string
		runs    int
	}{{"mem", memRuns}, {"pebble", pebbleRuns}} {
		t.Run(c.backend, func(t *testing.T) {
			for seed := range c.runs {
				data := randomHistory(uint64(seed))
				ok := t.Run(fmt.Sprint(seed), func(t *testing.T) {
					dir := ""
					if c.backend == "pebble" {
						dir = t.TempDir()
					}
					runHistory(t, c.backend, dir, data)
				})
				if !ok {
					t.Logf("corpus entry for testdata/fuzz/FuzzEngine:\ngo test fuzz v1\n[]byte(%q)", data)
					return
				}
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
