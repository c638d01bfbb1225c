package readreceipt

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/redis/go-redis/v9"
)

// The Redis backend.
//
// Every key of a conversation shares its hash tag, so that all of them live
// on one slot and every change is one atomic function call there (the
// functions are in redis.lua, loaded on every master). With base =
// <prefix>{<tag>}, where the tag is g<len>:<group> or c<len>:<a><len>:<b>:
//
//	base G                 hash: the group record (t type, i incarnation, v version,
//	                       n next index, m members, c created, lv version of the
//	                       newest message, s state: c creating, d dismissing)
//	base U                 hash: user -> member index
//	base I                 hash: member index -> user
//	base C<hi>             sorted set of the versions chunk hi was written at
//	base C<hi>:<version>   membership chunk hi at version: a bitmap, bit i = index hi*65536+i
//	base X                 set of the group's message IDs
//	base M<len>:<id>       hash: a message (h meta, n read count, t C2C read time,
//	                       r its readers' bitmap when its indexes stay within 512,
//	                       sp its sparse limit when it started sparse; and once
//	                       someone reported it delivered or read it privately:
//	                       dn the recipients in D but not R, dc |D|, pc |P|, d and
//	                       p the bitmaps of D and P kept inline as r is)
//	base S<len>:<id>       set: the readers of a message in the sparse form
//	base R<len>:<id>:<hi>  bitmap: the message's readers in chunk hi (dense form)
//	base D<len>:<id>       set: D (delivered without a public read) in the sparse form
//	base D<len>:<id>:<hi>  bitmap: D in chunk hi (dense form)
//	base P<len>:<id>       set, and P<len>:<id>:<hi> bitmaps: P, the private readers
//	base L<len>:<id>       string: the read-time log (model.go), APPENDed to
//	base O0:               sorted set: the conversation's order, every message
//	                       (score: tracked at, Unix µs; member: ID)
//	base O<len>:<thread>   sorted set: the order of one thread's messages
//	base OT                set: the threads that have an order
//	base K                 hash: read-up-to marks, <len>:<thread><reader> -> the
//	                       encoded position (orderPos.encode; thread "" for the
//	                       whole conversation)
//	<prefix>p{u<len>:<user>}  "1" while the user's receipts are private
//	<prefix>secret         the cursor secret
//
// D and P take the forms R takes, decided the same way (by the message's
// sp and the set's own count, dc or pc; see redis.lua), so that a
// delivery to a few members of a huge group costs bytes, not 8 KiB
// chunks, and every message of a group of up to 512 keeps R, D and P in
// its hash. A C2C message keeps R as n, D and P inline at index 0. The
// log and every key of D and P expire with the message.
//
// Message keys expire with the retention (by Redis's clock); an engine
// judges expiry by its own clock, so a message past retention answers
// ErrReceiptNotFound whether or not Redis has dropped it yet. The order
// sets (O, OT) take the retention as their TTL again at every tracking, so
// they go with their newest message; the entries of messages gone before
// are pruned by the next tracking (the two oldest of each set) and by every
// scan that walks over them (redis.lua, rr_scan). Marks and privacy flags
// have no TTL; a group's marks go with its dismissal.
//
// The engine caches only what never changes once written: member indexes
// and membership chunks by (group, incarnation, version).

//go:embed redis.lua
var redisLibrary string

// redisLibraryName is the name redis.lua declares.
const redisLibraryName = "readreceipt_v1"

// RedisOptions configures OpenRedis.
type RedisOptions struct {
	// Client is the connection to Redis: a *redis.Client for a standalone
	// server or a *redis.ClusterClient for a cluster (redis.NewUniversalClient
	// gives either). Required. The engine does not close it.
	Client redis.UniversalClient
	// Prefix starts every key the engine writes; engines that share one
	// state use the same. It must not contain '{' or '}'. Default "rr:".
	Prefix string
	// NoWait turns off waiting for replicas: by default a write succeeds
	// only once it reached at least one replica of its master (WAIT), where
	// the master has one.
	NoWait bool
	// WaitTimeout bounds the wait for a replica; past it the call fails
	// with ErrUnavailable. Default one second.
	WaitTimeout time.Duration
	// SparseAbove and SparseLimit shape how a group message's readers are
	// kept: a message whose recipients' member indexes reach past
	// SparseAbove keeps its readers as a set of indexes (4 bytes a reader)
	// until it has SparseLimit readers, and then, like every other message,
	// as a bitmap per chunk of 65,536 indexes (up to 8 KiB a chunk). So a
	// message of a million-member group that ten have read takes a few
	// hundred bytes, not tens of kilobytes. Defaults 8,192 and 256; a
	// negative SparseAbove turns the set form off. They apply to messages
	// tracked from then on: a message keeps the form it was tracked with,
	// so engines with different settings may share one state.
	SparseAbove, SparseLimit int
}

// The defaults of the sparse form of readers (see RedisOptions).
const (
	defaultSparseAbove = 8192
	defaultSparseLimit = 256
)

// redisCreateSlice is how many members one call of a group's creation
// writes, so that creating a huge group never blocks a shard for long.
const redisCreateSlice = 10_000

// redisDismissSlice is about how many messages one call of a dismissal
// deletes.
const redisDismissSlice = 1_000

// OpenRedis returns an engine whose state lives in Redis, standalone or
// Cluster. Any number of engines, on any number of hosts, may open the same
// Redis with the same Prefix: they share one state and give the same
// answers. It loads the engine's Redis functions on every master.
func OpenRedis(ctx context.Context, ro RedisOptions, opts ...Option) (*Engine, error) {
	if ro.Client == nil {
		return nil, errorf(ErrInvalidParameter, "no Redis client")
	}
	if ro.Prefix == "" {
		ro.Prefix = "rr:"
	}
	if strings.ContainsAny(ro.Prefix, "{}") {
		return nil, errorf(ErrInvalidParameter, "Redis prefix %q has a brace", ro.Prefix)
	}
	if ro.WaitTimeout <= 0 {
		ro.WaitTimeout = time.Second
	}
	if ro.SparseAbove == 0 {
		ro.SparseAbove = defaultSparseAbove
	}
	if ro.SparseLimit <= 0 {
		ro.SparseLimit = defaultSparseLimit
	}
	if ro.SparseAbove < 0 {
		ro.SparseAbove, ro.SparseLimit = math.MaxInt32, 0
	}
	e, err := newEngine(opts)
	if err != nil {
		return nil, err
	}
	b := &redisBackend{
		Engine:   e,
		c:        ro.Client,
		p:        ro.Prefix,
		noWait:   ro.NoWait,
		sparse:   [2]int{ro.SparseAbove, ro.SparseLimit},
		waitFor:  ro.WaitTimeout,
		chunks:   newLRU[*roaring.Bitmap](e.cfg.cacheBytes / 2),
		indexes:  newLRU[uint32](e.cfg.cacheBytes / 4),
		metas:    newLRU[messageRecord](e.cfg.cacheBytes / 4),
		replicas: map[string]replicaCount{},
	}
	if err := b.loadFunctions(ctx); err != nil {
		return nil, err
	}
	if err := b.loadSecret(ctx); err != nil {
		return nil, err
	}
	b.events = newRedisEvents(b)
	e.start(b)
	return e, nil
}

type redisBackend struct {
	*Engine
	c       redis.UniversalClient
	p       string
	noWait  bool
	waitFor time.Duration
	sparse  [2]int // SparseAbove, SparseLimit
	secret  []byte
	events  *redisEvents

	chunks  *lru[*roaring.Bitmap] // (group, incarnation, hi, version) -> membership chunk
	indexes *lru[uint32]          // (group, incarnation, user) -> member index
	// metas holds message metas by (conversation, ID). A meta never
	// changes, but a message can be deleted or tracked anew: every use is
	// checked by the function it is used with (the nonce and the group's
	// incarnation).
	metas *lru[messageRecord]

	mu       sync.Mutex
	replicas map[string]replicaCount // master address -> its connected replicas
}

type replicaCount struct {
	n    int
	when time.Time
}

var _ backend = (*redisBackend)(nil)

func (b *redisBackend) cursorSecret() []byte { return b.secret }
func (b *redisBackend) close() error         { b.events.close(); return nil }

func (b *redisBackend) ping(ctx context.Context) error {
	var err error
	if cc, ok := b.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() })
		if err == nil {
			// Every slot must have a master.
			var info string
			if info, err = cc.ClusterInfo(ctx).Result(); err == nil && !strings.Contains(info, "cluster_state:ok") {
				err = errors.New("CLUSTERDOWN: cluster_state is not ok")
			}
		}
	} else {
		err = b.c.Ping(ctx).Err()
	}
	if err != nil {
		return &Error{Code: CodeUnavailable, Message: ErrUnavailable.Message + ": ping", err: err}
	}
	return nil
}

func (b *redisBackend) announce(events []ReceiptEvent, own []OwnReadEvent) {
	b.events.publish(events, own)
}
func (b *redisBackend) listen() { b.events.listen() }

func (b *redisBackend) loadFunctions(ctx context.Context) error {
	load := func(ctx context.Context, c *redis.Client) error {
		return c.FunctionLoadReplace(ctx, redisLibrary).Err()
	}
	var err error
	if cc, ok := b.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, load)
	} else if c, ok := b.c.(*redis.Client); ok {
		err = load(ctx, c)
	} else {
		err = b.c.FunctionLoadReplace(ctx, redisLibrary).Err()
	}
	return b.fail("load functions", err)
}

func (b *redisBackend) loadSecret(ctx context.Context) error {
	key := b.p + "secret"
	s := make([]byte, 32)
	if _, err := rand.Read(s); err != nil {
		return internalErr("cursor secret", err)
	}
	if err := b.c.SetNX(ctx, key, s, 0).Err(); err != nil {
		return b.fail("cursor secret", err)
	}
	v, err := b.c.Get(ctx, key).Bytes()
	if err != nil {
		return b.fail("cursor secret", err)
	}
	if len(v) != 32 {
		return errorf(ErrInternal, "Redis key %q holds no cursor secret", key)
	}
	b.secret = v
	return nil
}

// tag returns the hash tag of a conversation: readable, and telling any
// two conversations apart.
func redisTag(c Conversation) string {
	if c.Type == ConversationGroup {
		return "g" + strconv.Itoa(len(c.GroupID)) + ":" + c.GroupID
	}
	a, u := c.canonicalUsers()
	return "c" + strconv.Itoa(len(a)) + ":" + a + strconv.Itoa(len(u)) + ":" + u
}

func (b *redisBackend) base(c Conversation) string { return b.p + "{" + redisTag(c) + "}" }

func redisLP(s string) string { return strconv.Itoa(len(s)) + ":" + s }

// ErrUnavailable-class failures: Redis could not be reached, or is failing
// over. A call that fails so may or may not have been applied; receipts
// and membership calls can be retried.
func isUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, redis.ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK", "LOADING", "MASTERDOWN", "READONLY", "NOREPLICAS", "connection refused", "connection reset", "EOF", "i/o timeout", "broken pipe", "pool timeout"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// fail turns a Redis failure into an engine error.
func (b *redisBackend) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) || errors.Is(err, context.Canceled) {
		return err
	}
	if isUnavailable(err) {
		if cc, ok := b.c.(*redis.ClusterClient); ok {
			cc.ReloadState(context.Background())
		}
		return &Error{Code: CodeUnavailable, Message: ErrUnavailable.Message + ": " + op, err: err}
	}
	return internalErr(op, err)
}

// node returns the client of the master that holds key.
func (b *redisBackend) node(ctx context.Context, key string) (*redis.Client, error) {
	switch c := b.c.(type) {
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, key)
	case *redis.Client:
		return c, nil
	}
	return nil, fmt.Errorf("unsupported Redis client %T", b.c)
}

// replicasOf returns how many replicas the master behind c has connected,
// as last seen (at most a second ago).
func (b *redisBackend) replicasOf(ctx context.Context, c *redis.Client) int {
	addr := c.Options().Addr
	b.mu.Lock()
	rc, ok := b.replicas[addr]
	b.mu.Unlock()
	if ok && time.Since(rc.when) < time.Second {
		return rc.n
	}
	n := 0
	if info, err := c.Info(ctx, "replication").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
				n, _ = strconv.Atoi(v)
			}
		}
	} else if ok {
		n = rc.n
	}
	b.mu.Lock()
	b.replicas[addr] = replicaCount{n: n, when: time.Now()}
	b.mu.Unlock()
	return n
}

// call runs function fn on the slot of base. A write (write set) returns
// only once it reached a replica of its master, where the master has one
// (WAIT on the connection that carried it); if none acknowledges in time,
// the call fails with ErrUnavailable.
func (b *redisBackend) call(ctx context.Context, op, fn, base string, write bool, args ...any) (any, error) {
	for attempt := 0; ; attempt++ {
		v, err := b.callOnce(ctx, fn, base, write, args)
		if err != nil && attempt == 0 && strings.Contains(err.Error(), "Function not found") {
			if lerr := b.loadFunctions(ctx); lerr == nil {
				continue
			}
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			var re redis.Error
			if errors.As(err, &re) && !isUnavailable(err) {
				return nil, err // a reply of the function's own: the caller reads it
			}
			return nil, b.fail(op, err)
		}
		return v, nil
	}
}

func (b *redisBackend) callOnce(ctx context.Context, fn, base string, write bool, args []any) (any, error) {
	c, err := b.node(ctx, base)
	if err != nil {
		return nil, err
	}
	wait := write && !b.noWait && b.replicasOf(ctx, c) > 0
	if !wait {
		v, err := c.FCall(ctx, fn, []string{base}, args...).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return v, err
	}
	var fc *redis.Cmd
	var wc *redis.Cmd
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		fc = p.FCall(ctx, fn, []string{base}, args...)
		wc = p.Do(ctx, "WAIT", 1, b.waitFor.Milliseconds())
		return nil
	})
	v, ferr := fc.Result()
	if ferr != nil && !errors.Is(ferr, redis.Nil) {
		return nil, ferr
	}
	acked, werr := wc.Int64()
	if werr != nil {
		return nil, werr
	}
	if acked < 1 {
		b.mu.Lock()
		delete(b.replicas, c.Options().Addr)
		b.mu.Unlock()
		return nil, &Error{Code: CodeUnavailable, Message: ErrUnavailable.Message + ": no replica acknowledged the write in " + b.waitFor.String()}
	}
	return v, nil
}

// replyIs reports whether err is the function's error reply code.
func replyIs(err error, code string) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(strings.TrimPrefix(re.Error(), "ERR "), code)
}

// Groups.

func (b *redisBackend) groupRecord(ctx context.Context, gid string) (*groupRecord, error) {
	vals, err := b.c.HMGet(ctx, b.base(Group(gid))+"G", "t", "i", "v", "n", "m", "c", "s").Result()
	if err != nil {
		return nil, b.fail("read group", err)
	}
	if vals[1] == nil || vals[6] != nil {
		return nil, nil
	}
	num := func(i int) uint64 {
		s, _ := vals[i].(string)
		n, _ := strconv.ParseUint(s, 10, 64)
		return n
	}
	g := &groupRecord{Type: GroupType(num(0)), Incarnation: num(1), Version: num(2), NextIndex: uint32(num(3)), Members: uint32(num(4)), CreatedAt: int64(num(5))}
	return g, nil
}

func (b *redisBackend) getGroup(ctx context.Context, gid string) (GroupInfo, error) {
	g, err := b.groupRecord(ctx, gid)
	if err != nil {
		return GroupInfo{}, err
	}
	if g == nil {
		return GroupInfo{}, errorf(ErrGroupNotFound, "%q", gid)
	}
	return GroupInfo{ID: gid, Type: g.Type, Members: int(g.Members), Version: g.Version}, nil
}

// redisCreateLease is how long a creation may make no progress before
// another CreateGroup of the same ID takes its place.
const redisCreateLease = 10 * time.Second

// redisStepRetry bounds how long one step of a multi-step call (a slice
// of a group's creation) is sent again after ErrUnavailable.
const redisStepRetry = 5 * time.Second

// step runs one idempotent step, sending it again while it fails with
// ErrUnavailable, for up to redisStepRetry.
func (b *redisBackend) step(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(redisStepRetry)
	wait := 50 * time.Millisecond
	for {
		err := fn()
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func (b *redisBackend) createGroup(ctx context.Context, gid string, typ GroupType, members []string, _ []uint16) error {
	base := b.base(Group(gid))
	var incb [8]byte
	if _, err := rand.Read(incb[:]); err != nil {
		return internalErr("create group", err)
	}
	// 52 bits, so that the functions' numbers (doubles) hold it exactly.
	inc := strconv.FormatUint(binary.BigEndian.Uint64(incb[:])>>12|1, 10)
	first := members[:min(len(members), redisCreateSlice)]
	args := []any{int(typ), inc, b.now(), len(members), int(redisCreateLease / time.Second)}
	for _, u := range first {
		args = append(args, u)
	}
	for tries := 0; ; tries++ {
		err := b.step(ctx, func() error {
			_, err := b.call(ctx, "create group", "rr_create", base, true, args...)
			return b.fail("create group", err)
		})
		switch {
		case err == nil:
		case replyIs(err, "EXISTS"):
			return errorf(ErrGroupExists, "%q", gid)
		case replyIs(err, "BUSY"):
			return &Error{Code: CodeUnavailable, Message: ErrUnavailable.Message + ": group " + strconv.Quote(gid) + " is being created by another call"}
		case (replyIs(err, "DISMISSING") || replyIs(err, "STALE")) && tries == 0:
			// A dismissal or a creation cut short: finish it, then create.
			if err := b.dismissSlices(ctx, base); err != nil {
				return err
			}
			continue
		default:
			return b.fail("create group", err)
		}
		break
	}
	for start := len(first); start < len(members); {
		slice := members[start:min(len(members), start+redisCreateSlice)]
		args := []any{inc, start}
		for _, u := range slice {
			args = append(args, u)
		}
		err := b.step(ctx, func() error {
			_, err := b.call(ctx, "create group", "rr_create_more", base, true, args...)
			return b.fail("create group", err)
		})
		if err != nil {
			return err
		}
		start += len(slice)
	}
	return b.step(ctx, func() error {
		_, err := b.call(ctx, "create group", "rr_create_done", base, true, inc)
		return b.fail("create group", err)
	})
}

func (b *redisBackend) changeMembers(ctx context.Context, gid string, members []string, _ []uint16, add bool) error {
	flag := "0"
	if add {
		flag = "1"
	}
	args := []any{flag, b.cfg.retention.Milliseconds()}
	for _, u := range members {
		args = append(args, u)
	}
	_, err := b.call(ctx, "change members", "rr_members", b.base(Group(gid)), true, args...)
	switch {
	case replyIs(err, "NOGROUP"):
		return errorf(ErrGroupNotFound, "%q", gid)
	case replyIs(err, "FULL"):
		return errorf(ErrInvalidParameter, "group %q has used every member index", gid)
	}
	return b.fail("change members", err)
}

func (b *redisBackend) dismissGroup(ctx context.Context, gid string) error {
	base := b.base(Group(gid))
	g, err := b.groupRecord(ctx, gid)
	if err != nil {
		return err
	}
	if g == nil {
		// Not found, unless a dismissal or creation was cut short: finish it.
		s, err := b.c.HGet(ctx, base+"G", "s").Result()
		if errors.Is(err, redis.Nil) {
			return errorf(ErrGroupNotFound, "%q", gid)
		}
		if err != nil {
			return b.fail("dismiss group", err)
		}
		if s != "d" && s != "c" {
			return errorf(ErrGroupNotFound, "%q", gid)
		}
	}
	return b.dismissSlices(ctx, base)
}

// dismissSlices deletes a group in slices, hiding it at the first.
func (b *redisBackend) dismissSlices(ctx context.Context, base string) error {
	for {
		v, err := b.call(ctx, "dismiss group", "rr_dismiss", base, true, redisDismissSlice)
		if replyIs(err, "NOGROUP") {
			return nil
		}
		if err != nil {
			return b.fail("dismiss group", err)
		}
		if n, _ := v.(int64); n == 1 {
			return nil
		}
	}
}

// Membership (cached: it never changes once written).

func (b *redisBackend) memberIndex(ctx context.Context, gid string, inc uint64, uid string) (uint32, bool, error) {
	ck := memberCacheKey(gid, inc, uid)
	if idx, ok := b.indexes.get(ck); ok {
		return idx, true, nil
	}
	// Two plain reads in one pipeline: the index of a user, once given,
	// never changes, so it only matters that it is of this incarnation.
	base := b.base(Group(gid))
	c, err := b.node(ctx, base)
	if err != nil {
		return 0, false, b.fail("read member", err)
	}
	var gi, ui *redis.StringCmd
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		gi = p.HGet(ctx, base+"G", "i")
		ui = p.HGet(ctx, base+"U", uid)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, false, b.fail("read member", err)
	}
	if gi.Val() != strconv.FormatUint(inc, 10) || ui.Err() != nil {
		return 0, false, nil // another incarnation, or no such member
	}
	n, err := strconv.ParseUint(ui.Val(), 10, 32)
	if err != nil {
		return 0, false, internalErr("read member", err)
	}
	b.indexes.add(ck, uint32(n), int64(len(ck))+48)
	return uint32(n), true, nil
}

func (b *redisBackend) memberChunk(ctx context.Context, gid string, inc uint64, hi uint16, version uint64) (*roaring.Bitmap, error) {
	qk := chunkCacheKey(gid, inc, hi, version)
	if bm, ok := b.chunks.get(qk); ok {
		return bm, nil
	}
	v, err := b.call(ctx, "read membership", "rr_chunk", b.base(Group(gid)), false, strconv.FormatUint(inc, 10), int(hi), version)
	if replyIs(err, "GONE") {
		return emptyChunk, nil // another incarnation: nobody's a member of this one now
	}
	if err != nil {
		return nil, b.fail("read membership", err)
	}
	s, _ := v.(string)
	bm := bitsToBitmap(s, uint32(hi)<<chunkBits)
	b.chunks.add(qk, bm, bitmapBytes(bm))
	return bm, nil
}

// bitsToBitmap converts a Redis bitmap (bit 0 is the high bit of byte 0)
// of members from base on.
func bitsToBitmap(s string, base uint32) *roaring.Bitmap {
	bm := roaring.New()
	for i := 0; i < len(s); i++ {
		c := s[i]
		for c != 0 {
			j := 7 - bitsLen8(c)
			bm.Add(base + uint32(i)*8 + uint32(j))
			c &^= 0x80 >> j
		}
	}
	return bm
}

// bitsLen8 returns the index (0 = lowest) of the highest set bit of c.
func bitsLen8(c byte) int {
	n := 0
	for c > 1 {
		c >>= 1
		n++
	}
	return n
}

// Messages.

// decodeRedisMeta reads a meta record as redis.lua packs it.
func decodeRedisMeta(h string) (messageRecord, error) {
	var m messageRecord
	if len(h) < 44 {
		return m, errBadRecord
	}
	u32 := func(i int) uint32 { return binary.BigEndian.Uint32([]byte(h[i : i+4])) }
	u64 := func(i int) uint64 { return binary.BigEndian.Uint64([]byte(h[i : i+8])) }
	m.Nonce = u32(0)
	m.EndIndex = u32(4)
	m.SenderIndex = u32(8)
	m.Recipients = u32(12)
	m.TrackedAt = int64(u64(16))*1e9 + int64(u32(24))
	m.Incarnation = u64(28)
	m.Version = u64(36)
	// The sender, then (a message of a thread) 0xff and the thread: 0xff
	// never occurs in UTF-8, so it cannot be in an ID.
	m.Sender, m.Thread, _ = strings.Cut(h[44:], "\xff")
	return m, nil
}

func nonceBytes(n uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return string(b[:])
}

// cutoff returns the expiry cutoff (tracked at or before it: expired) as
// seconds and nanoseconds, or -1, 0 when nothing expires.
func (b *redisBackend) cutoff(now int64) (int64, int64) {
	if b.cfg.retention <= 0 {
		return -1, 0
	}
	c := now - int64(b.cfg.retention)
	return c / 1e9, c % 1e9
}

func (b *redisBackend) trackMessage(ctx context.Context, msg Message) error {
	conv := msg.Conversation
	isGroup := conv.Type == ConversationGroup
	now := b.now()
	mask := 0
	for _, t := range *b.types.Load() {
		mask |= 1 << t
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return internalErr("track message", err)
	}
	csec, cnsec := b.cutoff(now)
	g := "0"
	if isGroup {
		g = "1"
	}
	v, err := b.call(ctx, "track message", "rr_track", b.base(conv), true,
		msg.ID, msg.Sender, now/1e9, now%1e9, binary.BigEndian.Uint32(nb[:]), b.cfg.retention.Milliseconds(), mask, csec, cnsec, g,
		b.sparse[0], b.sparse[1], msg.Thread)
	if replyIs(err, "NOGROUP") {
		return errorf(ErrGroupNotFound, "%q", conv.GroupID)
	}
	if err != nil {
		return b.fail("track message", err)
	}
	r, _ := v.([]any)
	if len(r) != 2 {
		return internalErr("track message", fmt.Errorf("unexpected reply %v", v))
	}
	switch r[0] {
	case "OK", "SAME":
		if h, ok := r[1].(string); ok {
			if m, err := decodeRedisMeta(h); err == nil {
				b.metas.add(b.metaKey(conv, msg.ID), m, int64(len(h))+96)
			}
		}
		return nil
	case "OTHER":
		return errorf(ErrAlreadyTracked, "message %q is tracked with sender %q", msg.ID, r[1])
	case "TYPE":
		t, _ := r[1].(int64)
		return errorf(ErrGroupTypeDisabled, "group %q is %s", conv.GroupID, GroupType(t))
	}
	return internalErr("track message", fmt.Errorf("unexpected reply %v", v))
}

// metaKey is the key of a message in the meta cache.
func (b *redisBackend) metaKey(conv Conversation, id string) []byte {
	return []byte(redisTag(conv) + "\x00" + id)
}

// cachedMetas returns the cached metas of ids, if it has every one and
// they share one group incarnation, on the first attempt of a call.
func (b *redisBackend) cachedMetas(conv Conversation, ids []string, attempt int) (uint64, []redisMsg, bool) {
	if attempt > 0 {
		return 0, nil, false
	}
	msgs := make([]redisMsg, len(ids))
	for i, id := range ids {
		m, ok := b.metas.get(b.metaKey(conv, id))
		if !ok || i > 0 && m.Incarnation != msgs[0].meta.Incarnation {
			return 0, nil, false
		}
		msgs[i] = redisMsg{exists: true, meta: m}
	}
	inc := uint64(0)
	if conv.Type == ConversationGroup {
		inc = msgs[0].meta.Incarnation
	}
	return inc, msgs, true
}

// redisMsg is one message as rr_load returns it.
type redisMsg struct {
	exists bool
	meta   messageRecord
	count  int64
	dn     int64 // recipients in D but not in R
	readAt int64 // C2C: when the peer's receipt was recorded (ns)
}

// load returns the current incarnation of a group conversation's group (0
// if none) and the messages ids. It reads with plain commands in one
// pipeline to the conversation's master, not a function: each read is of
// one key, atomic on its own, and whatever changes between them is checked
// again by the function a write goes through.
func (b *redisBackend) load(ctx context.Context, conv Conversation, ids []string) (uint64, []redisMsg, error) {
	base := b.base(conv)
	c, err := b.node(ctx, base)
	if err != nil {
		return 0, nil, b.fail("read messages", err)
	}
	isGroup := conv.Type == ConversationGroup
	var gc *redis.SliceCmd
	mcs := make([]*redis.SliceCmd, len(ids))
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if isGroup {
			gc = p.HMGet(ctx, base+"G", "i", "s")
		}
		fields := []string{"h", "n", "dn", "t"} // t: the read time of a C2C message
		if isGroup {
			fields = fields[:3]
		}
		for i, id := range ids {
			mcs[i] = p.HMGet(ctx, base+"M"+redisLP(id), fields...)
		}
		return nil
	})
	if err != nil {
		return 0, nil, b.fail("read messages", err)
	}
	var inc uint64
	if isGroup {
		if v := gc.Val(); len(v) == 2 && v[1] == nil {
			if s, ok := v[0].(string); ok {
				inc, _ = strconv.ParseUint(s, 10, 64)
			}
		}
	}
	out := make([]redisMsg, len(ids))
	for i, mc := range mcs {
		v := mc.Val()
		h, ok := v[0].(string)
		if !ok {
			continue
		}
		m, err := decodeRedisMeta(h)
		if err != nil {
			return 0, nil, internalErr("decode message", err)
		}
		out[i] = redisMsg{exists: true, meta: m}
		if n, ok := v[1].(string); ok {
			out[i].count, _ = strconv.ParseInt(n, 10, 64)
		}
		if n, ok := v[2].(string); ok {
			out[i].dn, _ = strconv.ParseInt(n, 10, 64)
		}
		if len(v) > 3 {
			if t, ok := v[3].(string); ok {
				out[i].readAt, _ = strconv.ParseInt(t, 10, 64)
			}
		}
		b.metas.add(b.metaKey(conv, ids[i]), m, int64(len(h))+96)
	}
	return inc, out, nil
}

func (b *redisBackend) receipts(ctx context.Context, conv Conversation, reader string, refs []MessageRef, mode receiptMode) ([]ReceiptResult, []ReceiptEvent, error) {
	isGroup := conv.Type == ConversationGroup
	results := make([]ReceiptResult, len(refs))
	// Distinct messages, in order of first mention.
	ids := make([]string, 0, len(refs))
	first := make(map[string]int, len(refs))
	for i, r := range refs {
		results[i].MessageID = r.ID
		if _, ok := first[r.ID]; !ok {
			first[r.ID] = len(ids)
			ids = append(ids, r.ID)
		}
	}
	outcome := make([]ReceiptResult, len(ids))
	var events []ReceiptEvent
	// A message tracked anew or gone between the read and the write is
	// read again; twice is plenty (each retry needs a concurrent change).
	todo := make([]int, len(ids))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		want := make([]string, len(todo))
		for j, i := range todo {
			want[j] = ids[i]
		}
		// The first attempt takes the messages' metas from the cache when
		// it has them all: rr_receipt checks that each is still the one
		// tracked, in the group's current incarnation, and a receipt it
		// refuses so is tried again from a fresh read.
		inc, msgs, ok := b.cachedMetas(conv, want, attempt)
		if !ok {
			var err error
			if inc, msgs, err = b.load(ctx, conv, want); err != nil {
				return nil, nil, err
			}
		}
		now := b.retentionNow()
		var err error
		var idx uint32
		var known bool
		if isGroup && inc != 0 {
			if idx, known, err = b.memberIndex(ctx, conv.GroupID, inc, reader); err != nil {
				return nil, nil, err
			}
		}
		admitted := make([]int, 0, len(todo)) // positions in todo
		var memo memberMemo
		for j, i := range todo {
			m := &msgs[j]
			outcome[i] = ReceiptResult{MessageID: ids[i]}
			if err := b.liveErr(m.exists, &m.meta, isGroup, inc, now); err != nil {
				outcome[i].Err = err
				continue
			}
			if err := admit(ctx, b, conv, reader, idx, known, &m.meta, &memo); err != nil {
				if !perMessage(err) {
					return nil, nil, err
				}
				outcome[i].Err = err
				continue
			}
			admitted = append(admitted, j)
		}
		if ok && len(admitted) < len(todo) {
			// A refusal judged on cached metas may be stale (the message
			// deleted, tracked anew, its group gone): judge again on a
			// fresh read.
			continue
		}
		if len(admitted) == 0 {
			break
		}
		args := make([]any, 0, 5+3*len(admitted))
		if isGroup {
			args = append(args, "1", strconv.FormatUint(inc, 10), idx)
		} else {
			idx = 0 // the C2C recipient's index in D and P, and in the log
			args = append(args, "0", "0", 0)
		}
		readAt := b.now()
		args = append(args, readAt, int(mode))
		for _, j := range admitted {
			// The read-time log's entry, appended by rr_receipt to a
			// new public or private read's log.
			var entry []byte
			if b.cfg.readTimes && mode != modeDeliver {
				entry = appendReadTime(nil, idx, mode == modeReadPrivate, msgs[j].meta.TrackedAt, readAt)
			}
			args = append(args, want[j], nonceBytes(msgs[j].meta.Nonce), entry)
		}
		v, err := b.call(ctx, "record receipts", "rr_receipt", b.base(conv), true, args...)
		if err != nil {
			return nil, nil, b.fail("record receipts", err)
		}
		r, _ := v.([]any)
		if len(r) != 3*len(admitted) {
			return nil, nil, internalErr("record receipts", fmt.Errorf("unexpected reply of %d items", len(r)))
		}
		var retry []int
		for k, j := range admitted {
			i := todo[j]
			status, _ := r[3*k].(int64)
			count, _ := r[3*k+1].(int64)
			dn, _ := r[3*k+2].(int64)
			m := &msgs[j]
			switch status {
			case 1:
				outcome[i].Recorded = true
				events = append(events, newEvent(EventRead, conv, m.meta, reader, ids[i], count, count+dn, readAt))
			case 2:
				outcome[i].Recorded = true
				events = append(events, newEvent(EventDelivered, conv, m.meta, reader, ids[i], count, count+dn, readAt))
			case 3:
				outcome[i].Recorded = true
			case 0:
			default:
				b.metas.remove(b.metaKey(conv, ids[i]))
				if attempt < 2 {
					retry = append(retry, i)
				} else {
					outcome[i].Err = ErrReceiptNotFound
				}
			}
		}
		todo = retry
	}
	// Repeated mentions take the first one's error; only the first is
	// reported recorded.
	seen := make(map[string]bool, len(ids))
	for i, r := range refs {
		o := outcome[first[r.ID]]
		results[i].Recorded = o.Recorded && !seen[r.ID]
		results[i].Err = o.Err
		seen[r.ID] = true
	}
	return results, events, nil
}

func (b *redisBackend) counts(ctx context.Context, caller Caller, conv Conversation, refs []MessageRef) ([]ReceiptInfo, error) {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	inc, msgs, err := b.load(ctx, conv, ids)
	if err != nil {
		return nil, err
	}
	now := b.retentionNow()
	out := make([]ReceiptInfo, len(refs))
	for i := range refs {
		m := &msgs[i]
		out[i].MessageID = ids[i]
		lerr := b.liveErr(m.exists, &m.meta, conv.Type == ConversationGroup, inc, now)
		b.receiptInfo(ctx, b, &out[i], caller, conv, &m.meta, m.count, m.count+m.dn, m.readAt, lerr)
		if out[i].Err != nil && !perMessage(out[i].Err) {
			return nil, out[i].Err
		}
	}
	return out, nil
}

func (b *redisBackend) page(ctx context.Context, caller Caller, conv Conversation, req MemberListRequest) (MemberPage, error) {
	gid := conv.GroupID
	inc, msgs, err := b.load(ctx, conv, []string{req.Message.ID})
	if err != nil {
		return MemberPage{}, err
	}
	m := &msgs[0]
	if err := b.liveErr(m.exists, &m.meta, true, inc, b.retentionNow()); err != nil {
		return MemberPage{}, err
	}
	meta := m.meta
	if err := b.authorize(ctx, b, caller, conv, &meta); err != nil {
		return MemberPage{}, err
	}
	prefix := messagePrefix(convKey(conv), req.Message.ID)
	var pos uint32
	if req.Cursor != "" {
		if pos, err = b.decodeCursor(req.Cursor, prefix, &meta, req.Filter); err != nil {
			return MemberPage{}, err
		}
	}
	base := b.base(conv)
	incs := strconv.FormatUint(inc, 10)
	nonce := nonceBytes(meta.Nonce)
	// The sets a filter is made of: readers R, and for the delivery
	// filters the deliveries D too (delivered = R union D).
	sets := "R"
	if req.Filter == FilterDelivered || req.Filter == FilterUndelivered {
		sets = "RD"
	}
	// The listed filters skip chunks where their sets hold nobody; the
	// complements read every chunk's membership.
	listed := req.Filter == FilterRead || req.Filter == FilterDelivered
	want := req.Count + 1
	idxs := make([]uint32, 0, want)
	last, some := lastChunk(meta.EndIndex)
	for hi := int(chunkOf(pos)); some && pos < meta.EndIndex && hi <= int(last) && len(idxs) < want; hi++ {
		stop := hi
		if listed {
			stop = int(last)
		}
		v, err := b.call(ctx, "read readers", "rr_readers", base, false, incs, req.Message.ID, nonce, hi, stop, sets)
		if replyIs(err, "GONE") {
			return MemberPage{}, ErrReceiptNotFound
		}
		if err != nil {
			return MemberPage{}, b.fail("read readers", err)
		}
		r, _ := v.([]any)
		at := int64(-1)
		if len(r) > 0 {
			at, _ = r[0].(int64)
		}
		set := roaring.New()
		if at >= 0 {
			if listed {
				hi = int(at)
			}
			for _, x := range r[1:] {
				set.Or(redisChunkSet(x, uint32(hi)<<chunkBits))
			}
		} else if listed {
			break
		}
		if !listed {
			snap, err := b.memberChunk(ctx, gid, inc, uint16(hi), meta.Version)
			if err != nil {
				return MemberPage{}, err
			}
			set = roaring.AndNot(snap, set)
			set.Remove(meta.SenderIndex)
		}
		it := set.Iterator()
		it.AdvanceIfNeeded(max(pos, uint32(hi)<<chunkBits))
		for it.HasNext() && len(idxs) < want {
			idx := it.Next()
			if uint64(idx) >= uint64(hi+1)<<chunkBits {
				break
			}
			idxs = append(idxs, idx)
		}
	}
	page := MemberPage{MessageID: req.Message.ID, IsCompleted: len(idxs) <= req.Count}
	if !page.IsCompleted {
		page.Cursor = b.encodeCursor(prefix, &meta, req.Filter, idxs[req.Count])
		idxs = idxs[:req.Count]
	}
	withTimes := b.cfg.readTimes && req.Filter == FilterRead && len(idxs) > 0
	users := make([]string, len(idxs))
	var log []byte
	if len(idxs) > 0 {
		fields := make([]string, len(idxs))
		for i, idx := range idxs {
			fields[i] = strconv.FormatUint(uint64(idx), 10)
		}
		c, err := b.node(ctx, base)
		if err != nil {
			return MemberPage{}, b.fail("read members", err)
		}
		var names *redis.SliceCmd
		var lc *redis.StringCmd
		_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			names = p.HMGet(ctx, base+"I", fields...)
			if withTimes {
				lc = p.Get(ctx, base+"L"+redisLP(req.Message.ID))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return MemberPage{}, b.fail("read members", err)
		}
		for i, v := range names.Val() {
			s, ok := v.(string)
			if !ok {
				return MemberPage{}, internalErr("read members", fmt.Errorf("member index %d of group %q has no user", idxs[i], gid))
			}
			users[i] = s
		}
		if withTimes {
			log, _ = lc.Bytes()
		}
	}
	switch req.Filter {
	case FilterRead:
		page.ReadUserIDList = users
		if b.cfg.readTimes {
			times, err := readTimesOf(log, meta.TrackedAt, idxs, false)
			if err != nil {
				return MemberPage{}, internalErr("read times", err)
			}
			page.ReadTimes = times
		}
	case FilterUnread:
		page.UnreadUserIDList = users
	case FilterDelivered:
		page.DeliveredUserIDList = users
	default:
		page.UndeliveredUserIDList = users
	}
	return page, nil
}

// redisChunkSet reads one set's members of a chunk as rr_readers gives
// them: a bitmap from base on, an array of indexes, or nil for none.
func redisChunkSet(x any, base uint32) *roaring.Bitmap {
	switch x := x.(type) {
	case string:
		return bitsToBitmap(x, base)
	case []any:
		bm := roaring.New()
		for _, y := range x {
			n, _ := y.(int64)
			bm.Add(uint32(n))
		}
		return bm
	}
	return roaring.New()
}

func (b *redisBackend) deleteMessage(ctx context.Context, ref MessageRef) error {
	_, err := b.call(ctx, "delete message", "rr_delete", b.base(ref.Conversation), true, ref.ID)
	return b.fail("delete message", err)
}

// sweep deletes nothing: Redis drops expired messages itself (their keys
// expire with the retention), and expiry is judged by the engine's clock
// before that.
func (b *redisBackend) sweep(ctx context.Context) (int, error) { return 0, nil }
