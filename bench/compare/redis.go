package compare

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Redis 7 server used the way a team would: the recipients and
// readers of a message as bitmaps over a per-group member index, with Lua
// scripts where a count must stay exact, one round trip per call.
//
//	<p>g:<gid>:meta   hash: next index
//	<p>g:<gid>:idx    hash: user -> member index
//	<p>g:<gid>:ids    hash: member index -> user (for pages)
//	<p>g:<gid>:cur    bitmap of the current members
//	<p>m:<gid>:<msg>:u  bitmap of the recipients who have not read it
//	<p>m:<gid>:<msg>:r  bitmap of the readers
//	<p>m:<gid>:<msg>:c  hash: recipient count, read count, sender
//
// Tracking copies the group's member bitmap (COPY, server side) into the
// message's unread bitmap and clears the sender's bit: that copy is how
// Redis keeps "the members when the message was sent" (a 1,000,000-member
// group costs 125 KB per message). A receipt is a script that, for each
// message, moves the reader's bit from u to r and increments the read count
// if the bit was set in u: so a repeated receipt, a non-recipient or the
// sender records nothing, and the count stays exact under concurrency
// (scripts run atomically). Pages walk u (unread) or r (read) with BITPOS
// from the cursor's index inside a script, and map indexes to users with the
// ids hash. Counts are one pipelined HMGET per message. Sets (SADD/SCARD/
// SSCAN) were not used for readers: SSCAN has no member order and no stable
// cursor, and "unread" would be an SDIFF over the whole group per page.
//
// Durability: NewRedis sets appendonly yes and appendfsync always, so a
// script's writes are fsynced to the AOF before the reply (Redis shares one
// fsync among the clients served in one event-loop turn). SetSync(false)
// switches appendfsync to no, for loading fixtures.
//
// With wait set (system "redis+wait"), a receipt call is its script then
// WAIT 1 <wait> on the same connection (one pipeline), and fails unless a
// replica acknowledged it: what the engine's Redis backend does without
// NoWait. Only Receipts waits; the fixtures' writes do not.
type Redis struct {
	c      *redis.Client
	p      string        // key prefix
	wait   time.Duration // WAIT timeout; 0: no WAIT
	notify atomic.Int32
}

var (
	_ System    = (*Redis)(nil)
	_ Notifier  = (*Redis)(nil)
	_ Footprint = (*Redis)(nil)
	_ Syncer    = (*Redis)(nil)
	_ Loader    = (*Redis)(nil)
	_ Deleter   = (*Redis)(nil)
)

// NewRedis connects to the Redis server at addr, with a pool of poolSize
// connections; every key it writes starts with prefix. A wait above 0 makes
// every receipt call wait that long at most for a replica (WAIT 1).
func NewRedis(ctx context.Context, addr, prefix string, poolSize int, wait time.Duration) (*Redis, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: poolSize, MinIdleConns: 1, MaxRetries: -1})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, err
	}
	s := &Redis{c: c, p: prefix, wait: wait}
	if wait > 0 {
		// The pipeline below sends EVALSHA only: the script must be there.
		if err := redisReceipts.Load(ctx, c).Err(); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		c.Close()
		return nil, err
	}
	if err := s.SetSync(ctx, true); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// Name implements System.
func (s *Redis) Name() string {
	if s.wait > 0 {
		return "redis+wait"
	}
	return "redis"
}

func (s *Redis) gk(gid, kind string) string      { return s.p + "g:" + gid + ":" + kind }
func (s *Redis) mk(gid, msg, kind string) string { return s.p + "m:" + gid + ":" + msg + ":" + kind }
func (s *Redis) channel(gid string) string       { return s.p + "ev:" + gid }

// CreateGroup implements System: the indexes go in pipelined HSETs of
// 10,000 fields, the member bitmap in one SET.
func (s *Redis) CreateGroup(ctx context.Context, gid string, members []string) error {
	members = dedupe(members)
	ok, err := s.c.HSetNX(ctx, s.gk(gid, "meta"), "next", len(members)).Result()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %q", ErrGroupExists, gid)
	}
	for i := 0; i < len(members); i += 10_000 {
		chunk := members[i:min(i+10_000, len(members))]
		byUser := make([]any, 0, 2*len(chunk))
		byIdx := make([]any, 0, 2*len(chunk))
		for j, m := range chunk {
			byUser = append(byUser, m, i+j)
			byIdx = append(byIdx, i+j, m)
		}
		p := s.c.Pipeline()
		p.HSet(ctx, s.gk(gid, "idx"), byUser...)
		p.HSet(ctx, s.gk(gid, "ids"), byIdx...)
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
	}
	bits := make([]byte, (len(members)+7)/8)
	for i := range members {
		bits[i/8] |= 0x80 >> (i % 8)
	}
	return s.c.Set(ctx, s.gk(gid, "cur"), bits, 0).Err()
}

var redisAdd = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOGROUP') end
for i = 1, #ARGV do
  local idx = redis.call('HGET', KEYS[2], ARGV[i])
  if not idx then
    idx = redis.call('HINCRBY', KEYS[1], 'next', 1) - 1
    redis.call('HSET', KEYS[2], ARGV[i], idx)
    redis.call('HSET', KEYS[3], idx, ARGV[i])
  end
  redis.call('SETBIT', KEYS[4], tonumber(idx), 1)
end
return 0`)

var redisRemove = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOGROUP') end
for i = 1, #ARGV do
  local idx = redis.call('HGET', KEYS[2], ARGV[i])
  if idx then redis.call('SETBIT', KEYS[3], tonumber(idx), 0) end
end
return 0`)

func redisErr(err error, gid string) error {
	if err != nil && strings.Contains(err.Error(), "NOGROUP") {
		return fmt.Errorf("%w: group %q", ErrNotFound, gid)
	}
	return err
}

// AddMembers implements System. A removed member who rejoins gets its old
// index back; messages tracked meanwhile have their own copies.
func (s *Redis) AddMembers(ctx context.Context, gid string, members []string) error {
	args := make([]any, 0, len(members))
	for _, m := range dedupe(members) {
		args = append(args, m)
	}
	keys := []string{s.gk(gid, "meta"), s.gk(gid, "idx"), s.gk(gid, "ids"), s.gk(gid, "cur")}
	return redisErr(redisAdd.Run(ctx, s.c, keys, args...).Err(), gid)
}

// RemoveMembers implements System.
func (s *Redis) RemoveMembers(ctx context.Context, gid string, members []string) error {
	args := make([]any, 0, len(members))
	for _, m := range members {
		args = append(args, m)
	}
	keys := []string{s.gk(gid, "meta"), s.gk(gid, "idx"), s.gk(gid, "cur")}
	return redisErr(redisRemove.Run(ctx, s.c, keys, args...).Err(), gid)
}

var redisTrack = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOGROUP') end
if redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
redis.call('COPY', KEYS[2], KEYS[4])
local idx = redis.call('HGET', KEYS[3], ARGV[1])
if idx then redis.call('SETBIT', KEYS[4], tonumber(idx), 0) end
local n = redis.call('BITCOUNT', KEYS[4])
redis.call('HSET', KEYS[6], 'n', n, 'read', 0, 's', ARGV[1])
return 1`)

// Track implements System.
func (s *Redis) Track(ctx context.Context, gid, msgID, sender string) error {
	keys := []string{s.gk(gid, "meta"), s.gk(gid, "cur"), s.gk(gid, "idx"),
		s.mk(gid, msgID, "u"), s.mk(gid, msgID, "r"), s.mk(gid, msgID, "c")}
	return redisErr(redisTrack.Run(ctx, s.c, keys, sender).Err(), gid)
}

// KEYS: idx hash, then u, r, c of each message. ARGV: reader, notify flag,
// channel, then the message IDs.
var redisReceipts = redis.NewScript(`
local idx = redis.call('HGET', KEYS[1], ARGV[1])
if not idx then return 0 end
idx = tonumber(idx)
local n = 0
for i = 2, #KEYS, 3 do
  if redis.call('GETBIT', KEYS[i], idx) == 1 then
    redis.call('SETBIT', KEYS[i], idx, 0)
    redis.call('SETBIT', KEYS[i+1], idx, 1)
    local read = redis.call('HINCRBY', KEYS[i+2], 'read', 1)
    n = n + 1
    if ARGV[2] == '1' then
      local rc = tonumber(redis.call('HGET', KEYS[i+2], 'n'))
      redis.call('PUBLISH', ARGV[3], ARGV[3 + (i+1)/3] .. '\31' .. ARGV[1] .. '\31' .. read .. '\31' .. (rc - read))
    end
  end
end
return n`)

// Receipts implements System with one script call.
func (s *Redis) Receipts(ctx context.Context, gid, reader string, msgIDs []string) (int, error) {
	msgIDs = dedupe(msgIDs)
	keys := make([]string, 0, 1+3*len(msgIDs))
	keys = append(keys, s.gk(gid, "idx"))
	args := make([]any, 0, 3+len(msgIDs))
	flag := "0"
	if s.notify.Load() > 0 {
		flag = "1"
	}
	args = append(args, reader, flag, s.channel(gid))
	for _, id := range msgIDs {
		keys = append(keys, s.mk(gid, id, "u"), s.mk(gid, id, "r"), s.mk(gid, id, "c"))
		args = append(args, id)
	}
	if s.wait <= 0 {
		n, err := redisReceipts.Run(ctx, s.c, keys, args...).Int()
		return n, err
	}
	var run, wait *redis.Cmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		run = redisReceipts.EvalSha(ctx, p, keys, args...)
		wait = p.Do(ctx, "WAIT", 1, s.wait.Milliseconds())
		return nil
	})
	n, rerr := run.Int()
	if rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, err
	}
	if acked, err := wait.Int64(); err != nil || acked < 1 {
		return 0, fmt.Errorf("compare: redis: no replica acknowledged a receipt within %v (WAIT: %d, %v)", s.wait, acked, err)
	}
	return n, nil
}

// Load implements Loader: member indexes by pipelined HMGET, then pipelined
// SETBITs and one HINCRBY, 10,000 readers at a time.
func (s *Redis) Load(ctx context.Context, gid, msgID string, readers []string) error {
	for len(readers) > 0 {
		n := min(len(readers), 10_000)
		idxs, err := s.c.HMGet(ctx, s.gk(gid, "idx"), readers[:n]...).Result()
		if err != nil {
			return err
		}
		p := s.c.Pipeline()
		for i, v := range idxs {
			str, ok := v.(string)
			if !ok {
				return fmt.Errorf("%w: %q is not a member", ErrBadInput, readers[i])
			}
			idx, _ := strconv.ParseInt(str, 10, 64)
			p.SetBit(ctx, s.mk(gid, msgID, "u"), idx, 0)
			p.SetBit(ctx, s.mk(gid, msgID, "r"), idx, 1)
		}
		p.HIncrBy(ctx, s.mk(gid, msgID, "c"), "read", int64(n))
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
		readers = readers[n:]
	}
	return nil
}

// Counts implements System with one pipeline.
func (s *Redis) Counts(ctx context.Context, gid string, msgIDs []string) ([]Count, error) {
	p := s.c.Pipeline()
	cmds := make([]*redis.SliceCmd, len(msgIDs))
	for i, id := range msgIDs {
		cmds[i] = p.HMGet(ctx, s.mk(gid, id, "c"), "n", "read")
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]Count, len(msgIDs))
	for i, c := range cmds {
		v := c.Val()
		rc, ok1 := v[0].(string)
		rd, ok2 := v[1].(string)
		if !ok1 || !ok2 {
			continue
		}
		n, _ := strconv.Atoi(rc)
		r, _ := strconv.Atoi(rd)
		out[i] = Count{Found: true, Read: r, Unread: n - r}
	}
	return out, nil
}

// KEYS: c, the bitmap to walk, ids hash. ARGV: start index, n.
// Returns {done, next, users...}.
var redisPage = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOMSG') end
local pos = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local idxs = {}
local bits = redis.call('STRLEN', KEYS[2]) * 8
while #idxs <= n and pos < bits do
  local p = redis.call('BITPOS', KEYS[2], 1, pos, -1, 'BIT')
  if p < 0 then break end
  idxs[#idxs + 1] = p
  pos = p + 1
end
local out = {1, 0}
if #idxs > n then
  out[1] = 0
  out[2] = idxs[n + 1]
  idxs[n + 1] = nil
end
if #idxs > 0 then
  local users = redis.call('HMGET', KEYS[3], unpack(idxs))
  for i = 1, #users do out[#out + 1] = users[i] end
end
return out`)

// Page implements System with one script call.
func (s *Redis) Page(ctx context.Context, gid, msgID string, unread bool, cursor string, n int) ([]string, string, bool, error) {
	if err := checkPage(n); err != nil {
		return nil, "", false, err
	}
	at, err := parseCursor(cursor)
	if err != nil {
		return nil, "", false, err
	}
	kind := "r"
	if unread {
		kind = "u"
	}
	keys := []string{s.mk(gid, msgID, "c"), s.mk(gid, msgID, kind), s.gk(gid, "ids")}
	v, err := redisPage.Run(ctx, s.c, keys, at, n).Slice()
	if err != nil {
		if strings.Contains(err.Error(), "NOMSG") {
			return nil, "", false, fmt.Errorf("%w: message %q", ErrNotFound, msgID)
		}
		return nil, "", false, err
	}
	done := v[0].(int64) == 1
	users := make([]string, 0, len(v)-2)
	for _, u := range v[2:] {
		str, ok := u.(string)
		if !ok {
			return nil, "", false, errors.New("compare: redis page names an unknown member index")
		}
		users = append(users, str)
	}
	if done {
		return users, "", true, nil
	}
	return users, formatCursor(uint32(v[1].(int64))), false, nil
}

// Subscribe implements Notifier with SUBSCRIBE on a channel per group; the
// receipt script PUBLISHes while someone is subscribed through s.
func (s *Redis) Subscribe(ctx context.Context, gid string, fn func(Event)) (func(), error) {
	ps := s.c.Subscribe(ctx, s.channel(gid))
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, err
	}
	s.notify.Add(1)
	ch := ps.Channel(redis.WithChannelSize(1024))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			f := strings.Split(m.Payload, "\x1f")
			if len(f) != 4 {
				continue
			}
			r, _ := strconv.Atoi(f[2])
			u, _ := strconv.Atoi(f[3])
			fn(Event{MsgID: f[0], Reader: f[1], Read: r, Unread: u})
		}
	}()
	return func() {
		s.notify.Add(-1)
		ps.Close()
		<-done
	}, nil
}

// Delete implements Deleter.
func (s *Redis) Delete(ctx context.Context, gid string, msgIDs []string) error {
	keys := make([]string, 0, 3*len(msgIDs))
	for _, id := range msgIDs {
		keys = append(keys, s.mk(gid, id, "u"), s.mk(gid, id, "r"), s.mk(gid, id, "c"))
	}
	return s.c.Unlink(ctx, keys...).Err()
}

// Footprint implements Footprint with redisFootprint: the server's
// used_memory and the RDB encoding of this prefix's keys.
func (s *Redis) Footprint(ctx context.Context) (int64, int64, error) {
	return redisFootprint(ctx, s.c, s.p)
}

// MessageKeys returns the keys of message msgID of gid that exist.
func (s *Redis) MessageKeys(ctx context.Context, gid, msgID string, _ int) ([]string, error) {
	return existing(ctx, s.c, []string{s.mk(gid, msgID, "u"), s.mk(gid, msgID, "r"), s.mk(gid, msgID, "c")})
}

// SetSync implements Syncer with appendfsync always or no.
func (s *Redis) SetSync(ctx context.Context, on bool) error {
	v := "no"
	if on {
		v = "always"
	}
	return s.c.ConfigSet(ctx, "appendfsync", v).Err()
}

// Close implements System.
func (s *Redis) Close() error { return s.c.Close() }
