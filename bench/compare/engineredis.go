package compare

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	rr "github.com/readreceipt/readreceipt"
	"github.com/redis/go-redis/v9"
)

// EngineRedis is the readreceipt engine on its Redis backend
// (readreceipt.OpenRedis), on the same Redis server and with the same
// durability settings as the hand-written Redis peer (appendonly yes,
// appendfsync always), under its own key prefix. Queries are made as an
// administrator, like Engine's.
//
// With wait set (system "engine-redis+wait") it is opened with NoWait false:
// every write then waits (WAIT 1) for the master's replica, where the master
// has one; the benchmarks attach one before using it. Without (system
// "engine-redis") it is opened with NoWait true, so that it never waits.
type EngineRedis struct {
	engineOps
	c    *redis.Client
	e    *rr.Engine
	p    string
	wait bool
}

var (
	_ System    = (*EngineRedis)(nil)
	_ Notifier  = (*EngineRedis)(nil)
	_ Footprint = (*EngineRedis)(nil)
	_ Syncer    = (*EngineRedis)(nil)
	_ Loader    = (*EngineRedis)(nil)
	_ Deleter   = (*EngineRedis)(nil)
)

// NewEngineRedis connects to the Redis server at addr with a pool of
// poolSize connections and opens the engine on it with key prefix prefix;
// opts are added to the engine's options.
func NewEngineRedis(ctx context.Context, addr, prefix string, poolSize int, wait bool, opts ...rr.Option) (*EngineRedis, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: poolSize, MinIdleConns: 1, MaxRetries: -1})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, err
	}
	s := &EngineRedis{c: c, p: prefix, wait: wait}
	if err := c.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		c.Close()
		return nil, err
	}
	if err := s.SetSync(ctx, true); err != nil {
		c.Close()
		return nil, err
	}
	e, err := rr.OpenRedis(ctx, rr.RedisOptions{Client: c, Prefix: prefix, NoWait: !wait}, opts...)
	if err != nil {
		c.Close()
		return nil, err
	}
	s.e = e
	s.engineOps = engineOps{get: func() *rr.Engine { return s.e }}
	return s, nil
}

// Name implements System.
func (s *EngineRedis) Name() string {
	if s.wait {
		return "engine-redis+wait"
	}
	return "engine-redis"
}

// Load implements Loader with Receipts from 32 goroutines: the engine has
// no faster exact path, and a receipt is two round trips.
func (s *EngineRedis) Load(ctx context.Context, gid, msgID string, readers []string) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(readers) {
					return
				}
				n, err := s.Receipts(ctx, gid, readers[i], []string{msgID})
				if err == nil && n != 1 {
					err = fmt.Errorf("loading %s: receipt of %s recorded %d", msgID, readers[i], n)
				}
				if err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
					next.Store(int64(len(readers)))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// Footprint implements Footprint as Redis's does: the server's used_memory
// and the RDB encoding of this prefix's keys. The engine's own cache, in
// the benchmark's process, is not counted.
func (s *EngineRedis) Footprint(ctx context.Context) (int64, int64, error) {
	return redisFootprint(ctx, s.c, s.p)
}

// SetSync implements Syncer with appendfsync always or no, as Redis's does.
func (s *EngineRedis) SetSync(ctx context.Context, on bool) error {
	v := "no"
	if on {
		v = "always"
	}
	return s.c.ConfigSet(ctx, "appendfsync", v).Err()
}

// MessageKeys returns the Redis keys of message msgID of group gid that
// exist, by the layout redis.go documents: the message hash
// <prefix>{g<len>:<gid>}M<len>:<id> and its reader chunks
// ...R<len>:<id>:<hi>, for the chunks of a group of up to members members.
func (s *EngineRedis) MessageKeys(ctx context.Context, gid, msgID string, members int) ([]string, error) {
	base := s.p + "{g" + strconv.Itoa(len(gid)) + ":" + gid + "}"
	lp := strconv.Itoa(len(msgID)) + ":" + msgID
	cands := []string{base + "M" + lp, base + "S" + lp}
	for hi := 0; hi <= (members-1)/65536; hi++ {
		cands = append(cands, base+"R"+lp+":"+strconv.Itoa(hi))
	}
	return existing(ctx, s.c, cands)
}

// Close implements System.
func (s *EngineRedis) Close() error {
	err := s.e.Close()
	if err2 := s.c.Close(); err == nil {
		err = err2
	}
	return err
}

// existing returns those of keys that exist.
func existing(ctx context.Context, c *redis.Client, keys []string) ([]string, error) {
	p := c.Pipeline()
	cmds := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		cmds[i] = p.Exists(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, err
	}
	var out []string
	for i, c := range cmds {
		if c.Val() == 1 {
			out = append(out, keys[i])
		}
	}
	return out, nil
}

// redisFootprint is Footprint for a system whose keys all start with
// prefix. Memory is the server's used_memory. Disk is the RDB encoding of
// the prefix's keys (DUMP, less its 10-byte trailer, plus the key and its
// type byte): what the AOF holds for them after a rewrite, which starts the
// AOF with an RDB image.
func redisFootprint(ctx context.Context, c *redis.Client, prefix string) (int64, int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, 0, err
	}
	mem, _ := infoField(info, "used_memory")
	var disk int64
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	flush := func() error {
		p := c.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for i, k := range batch {
			cmds[i] = p.Dump(ctx, k)
		}
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i, c := range cmds {
			disk += int64(len(c.Val()) - 10 + len(batch[i]) + 2)
		}
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return 0, 0, err
	}
	if err := flush(); err != nil {
		return 0, 0, err
	}
	return disk, mem, nil
}

// infoField returns the integer field name of an INFO reply.
func infoField(info, name string) (int64, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
