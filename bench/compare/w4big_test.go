package compare

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// --- W4Big: the Redis memory of one message in a 1,000,000-member group
// with 10 readers, for the systems on Redis: MEMORY USAGE (SAMPLES 0) of
// every key of the message. The engine's Redis backend keeps a message hash
// and, while it has fewer than 256 readers, a set of their indexes (then
// one reader bitmap per 65,536-member chunk that has a reader, up to 8 KiB
// each); the hand-written peer keeps a copy of the member bitmap (125 KB)
// besides. Two placements of the readers: spread (10 at random
// among all members) and front (members 1 to 10). Not counted: the
// engine's entry of the message ID in the group's message set (X), and the
// group's own keys, which every message shares.

// messageKeyer is a Redis system that can name the keys of one message.
type messageKeyer interface {
	MessageKeys(ctx context.Context, gid, msgID string, members int) ([]string, error)
}

type w4BigFx struct {
	s       System
	gid     string
	n       int
	mem     map[string]int64 // placement -> bytes of the message's keys
	keys    map[string]int
	spreadM string
}

var (
	w4BigMu  sync.Mutex
	w4BigFxs = map[string]*w4BigFx{}
)

func w4BigMembers() int {
	if *sizeFlag == "smoke" {
		return 10_000
	}
	return 1_000_000
}

func w4BigFixture(b *testing.B, name string) *w4BigFx {
	skipIfDown(b, name)
	w4BigMu.Lock()
	defer w4BigMu.Unlock()
	if fx, ok := w4BigFxs[name]; ok {
		return fx
	}
	setReplica(b, false)
	s := openSystem(b, name, "w4big-"+name)
	mk, ok := s.(messageKeyer)
	if !ok {
		b.Skipf("%s cannot name a message's keys", name)
	}
	n := w4BigMembers()
	users := userIDs(n)
	fx := &w4BigFx{s: s, gid: "big", n: n, mem: map[string]int64{}, keys: map[string]int{}, spreadM: "m-spread"}
	rng := rand.New(rand.NewPCG(7, 7))
	placements := map[string][]string{"front": users[1:11]}
	seen := map[int]bool{}
	for len(placements["spread"]) < 10 {
		i := 1 + rng.IntN(n-1)
		if !seen[i] {
			seen[i] = true
			placements["spread"] = append(placements["spread"], users[i])
		}
	}
	loading(b, s, func() error { return s.CreateGroup(ctx, fx.gid, users) })
	for _, pl := range []string{"spread", "front"} {
		msg := "m-" + pl
		if err := s.Track(ctx, fx.gid, msg, users[0]); err != nil {
			b.Fatal(err)
		}
		for _, r := range placements[pl] {
			if got, err := s.Receipts(ctx, fx.gid, r, []string{msg}); err != nil || got != 1 {
				b.Fatalf("%s: receipt of %s for %s recorded %d: %v", name, r, msg, got, err)
			}
		}
		keys, err := mk.MessageKeys(ctx, fx.gid, msg, n)
		if err != nil {
			b.Fatal(err)
		}
		var parts []string
		for _, k := range keys {
			v, err := redisAdmin().MemoryUsage(ctx, k, 0).Result()
			if err != nil {
				b.Fatalf("MEMORY USAGE %s: %v", k, err)
			}
			fx.mem[pl] += v
			parts = append(parts, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, prefixOf(s)), v))
		}
		sort.Strings(parts)
		fx.keys[pl] = len(keys)
		fmt.Fprintf(os.Stderr, "W4Big %s members=%d readers=10 (%s): %d keys, %d B: %s\n", name, n, pl, len(keys), fx.mem[pl], strings.Join(parts, " "))
	}
	w4BigFxs[name] = fx
	return fx
}

func prefixOf(s System) string {
	switch s := s.(type) {
	case *Redis:
		return s.p
	case *EngineRedis:
		return s.p
	}
	return ""
}

func BenchmarkW4Big(b *testing.B) {
	for _, name := range benchSystems(false) {
		if !onRedis(name) {
			continue
		}
		b.Run("sys="+name+"/members="+sizeName(w4BigMembers())+"/readers=10", func(b *testing.B) {
			fx := w4BigFixture(b, name)
			b.ReportAllocs()
			b.ResetTimer()
			// The loop reads the message's counts; the figures that
			// matter are the metrics below.
			for range b.N {
				cs, err := fx.s.Counts(ctx, fx.gid, []string{fx.spreadM})
				if err != nil {
					b.Fatal(err)
				}
				if cs[0] != (Count{true, 10, fx.n - 11}) {
					b.Fatalf("%s: counts %v", name, cs[0])
				}
			}
			b.ReportMetric(float64(fx.mem["spread"]), "B/msg-spread")
			b.ReportMetric(float64(fx.keys["spread"]), "keys/msg-spread")
			b.ReportMetric(float64(fx.mem["front"]), "B/msg-front")
			b.ReportMetric(float64(fx.keys["front"]), "keys/msg-front")
		})
	}
}
