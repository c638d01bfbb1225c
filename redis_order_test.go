package readreceipt_test

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// ordClock is a clock a test moves by hand.
type ordClock struct {
	mu sync.Mutex
	t  time.Time
}

func newOrdClock() *ordClock {
	return &ordClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *ordClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *ordClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// ordServer starts a standalone Redis and returns a client of it.
func ordServer(t *testing.T) redis.UniversalClient {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// ordTrack tracks messages of conv sent by sender, each at its time.
func ordTrack(t *testing.T, e *readreceipt.Engine, clock *ordClock, conv readreceipt.Conversation, sender string, at time.Time, thread string, ids ...string) {
	t.Helper()
	clock.set(at)
	for _, id := range ids {
		require.NoError(t, e.TrackMessage(context.Background(), readreceipt.Message{Conversation: conv, ID: id, Sender: sender, Thread: thread}))
	}
}

func ordMark(t *testing.T, e *readreceipt.Engine, reader string, req readreceipt.MarkRequest) readreceipt.MarkResult {
	t.Helper()
	res, err := e.MarkConversationRead(context.Background(), reader, req)
	require.NoError(t, err)
	return res
}

// TestRedisReadMarks: marks at a message and at a time, of the whole
// conversation and of a thread; messages of one microsecond are ordered by
// ID; marks never move back, and a mark call goes through only the messages
// after the previous mark.
func TestRedisReadMarks(t *testing.T) {
	t.Run("standalone", func(t *testing.T) { testRedisReadMarks(t, ordServer(t)) })
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.StartCluster(t, 3, 1)
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { c.Close() })
		testRedisReadMarks(t, c)
	})
}

func testRedisReadMarks(t *testing.T, c redis.UniversalClient) {
	ctx := context.Background()
	clock := newOrdClock()
	e := openRedisEngine(t, c, "marks:", readreceipt.WithClock(clock.now))
	conv := readreceipt.Group("g")
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r", "x", "y"}))
	t0 := clock.now()
	ordTrack(t, e, clock, conv, "s", t0, "", "m1")
	ordTrack(t, e, clock, conv, "s", t0.Add(time.Second), "", "m2")
	// m3 and m4 in one microsecond: m3 first (by ID), both in thread t.
	ordTrack(t, e, clock, conv, "s", t0.Add(2*time.Second), "t", "m4", "m3")
	ordTrack(t, e, clock, conv, "s", t0.Add(3*time.Second), "", "m5")
	ordTrack(t, e, clock, conv, "s", t0.Add(4*time.Second), "t", "m6")

	_, ok, err := e.GetReadMark(ctx, "r", conv, "")
	require.NoError(t, err)
	require.False(t, ok)

	// At a message.
	res := ordMark(t, e, "r", readreceipt.MarkRequest{Conversation: conv, MessageID: "m2"})
	require.Equal(t, readreceipt.MarkResult{Mark: readreceipt.ReadMark{MessageID: "m2", Time: t0.Add(time.Second)}, Messages: 2, Recorded: 2}, res)
	m, ok, err := e.GetReadMark(ctx, "r", conv, "")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, res.Mark, m)

	// Never back, whether at a message or a time.
	res = ordMark(t, e, "r", readreceipt.MarkRequest{Conversation: conv, MessageID: "m1"})
	require.Equal(t, readreceipt.MarkResult{Mark: m}, res)
	res = ordMark(t, e, "r", readreceipt.MarkRequest{Conversation: conv, Time: t0})
	require.Equal(t, readreceipt.MarkResult{Mark: m}, res)

	// At a time: every message of that microsecond, both m3 and m4.
	res = ordMark(t, e, "r", readreceipt.MarkRequest{Conversation: conv, Time: t0.Add(2 * time.Second)})
	require.Equal(t, readreceipt.MarkResult{Mark: readreceipt.ReadMark{Time: t0.Add(2 * time.Second)}, Messages: 2, Recorded: 2}, res)
	m, _, err = e.GetReadMark(ctx, "r", conv, "")
	require.NoError(t, err)
	require.Equal(t, res.Mark, m)

	// At a message of a shared microsecond: m3 but not m4; then m4 alone.
	res = ordMark(t, e, "y", readreceipt.MarkRequest{Conversation: conv, MessageID: "m3"})
	require.Equal(t, 3, res.Messages)
	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("s"), []readreceipt.MessageRef{{Conversation: conv, ID: "m3"}, {Conversation: conv, ID: "m4"}})
	require.NoError(t, err)
	require.Equal(t, 2, infos[0].ReadCount) // r and y
	require.Equal(t, 1, infos[1].ReadCount) // r
	res = ordMark(t, e, "y", readreceipt.MarkRequest{Conversation: conv, MessageID: "m4"})
	require.Equal(t, readreceipt.MarkResult{Mark: readreceipt.ReadMark{MessageID: "m4", Time: t0.Add(2 * time.Second)}, Messages: 1, Recorded: 1}, res)

	// A thread's mark goes through the thread's messages only, and is not
	// the conversation's.
	res = ordMark(t, e, "x", readreceipt.MarkRequest{Conversation: conv, Thread: "t", MessageID: "m4"})
	require.Equal(t, readreceipt.MarkResult{Mark: readreceipt.ReadMark{MessageID: "m4", Time: t0.Add(2 * time.Second)}, Messages: 2, Recorded: 2}, res)
	_, ok, err = e.GetReadMark(ctx, "x", conv, "")
	require.NoError(t, err)
	require.False(t, ok)
	m, ok, err = e.GetReadMark(ctx, "x", conv, "t")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, res.Mark, m)
	// A mark at a time after the engine's clock would be clamped to it:
	// move the clock there first.
	clock.set(t0.Add(time.Hour))
	res = ordMark(t, e, "x", readreceipt.MarkRequest{Conversation: conv, Thread: "t", Time: t0.Add(time.Hour)})
	require.Equal(t, 1, res.Messages) // m6
	_, err = e.MarkConversationRead(ctx, "x", readreceipt.MarkRequest{Conversation: conv, Thread: "t", MessageID: "m5"})
	require.ErrorIs(t, err, readreceipt.ErrReceiptNotFound)
	// The conversation's mark of x goes through everything, threads
	// included; those x read already are not recorded again.
	res = ordMark(t, e, "x", readreceipt.MarkRequest{Conversation: conv, Time: t0.Add(time.Hour)})
	require.Equal(t, readreceipt.MarkResult{Mark: readreceipt.ReadMark{Time: t0.Add(time.Hour)}, Messages: 6, Recorded: 3}, res)

	// The sender's own messages are gone through but not recorded.
	res = ordMark(t, e, "s", readreceipt.MarkRequest{Conversation: conv, Time: t0.Add(time.Hour)})
	require.Equal(t, 6, res.Messages)
	require.Equal(t, 0, res.Recorded)

	// Unknown messages.
	_, err = e.MarkConversationRead(ctx, "r", readreceipt.MarkRequest{Conversation: conv, MessageID: "nope"})
	require.ErrorIs(t, err, readreceipt.ErrReceiptNotFound)

	// A reader whose receipts are private still has marks (its reads are
	// its own).
	require.NoError(t, e.SetReceiptsPrivate(ctx, "d", true))
	p, err := e.ReceiptsPrivate(ctx, "d")
	require.NoError(t, err)
	require.True(t, p)
	require.NoError(t, e.AddGroupMembers(ctx, "g", []string{"d"}))
	ordTrack(t, e, clock, conv, "s", t0.Add(5*time.Second), "", "m7")
	res = ordMark(t, e, "d", readreceipt.MarkRequest{Conversation: conv, MessageID: "m7"})
	require.Equal(t, readreceipt.ReadMark{MessageID: "m7", Time: t0.Add(5 * time.Second)}, res.Mark)
	require.Equal(t, 7, res.Messages)

	// C2C conversations have marks too.
	c2c := readreceipt.C2C("a", "b")
	ordTrack(t, e, clock, c2c, "a", t0, "", "c1", "c2")
	ordTrack(t, e, clock, c2c, "b", t0.Add(time.Second), "", "c3")
	res = ordMark(t, e, "b", readreceipt.MarkRequest{Conversation: c2c, Time: t0.Add(time.Minute)})
	require.Equal(t, 3, res.Messages)
	require.Equal(t, 2, res.Recorded)
}

// TestRedisMarkConcurrent: marks set at once through two engines end at
// the highest.
func TestRedisMarkConcurrent(t *testing.T) {
	c := ordServer(t)
	ctx := context.Background()
	clock := newOrdClock()
	a := openRedisEngine(t, c, "cmark:", readreceipt.WithClock(clock.now))
	b := openRedisEngine(t, c, "cmark:", readreceipt.WithClock(clock.now))
	conv := readreceipt.C2C("p", "q")
	t0 := clock.now()
	for i := range 20 {
		ordTrack(t, a, clock, conv, "p", t0.Add(time.Duration(i)*time.Second), "", userList("m", 20)[i])
	}
	var wg sync.WaitGroup
	for i := range 20 {
		e := a
		if i%2 == 1 {
			e = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.MarkConversationRead(ctx, "q", readreceipt.MarkRequest{Conversation: conv, Time: t0.Add(time.Duration(i) * time.Second)})
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	m, ok, err := b.GetReadMark(ctx, "q", conv, "")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, readreceipt.ReadMark{Time: t0.Add(19 * time.Second)}, m)
	infos, err := a.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{{Conversation: conv, ID: "m19"}})
	require.NoError(t, err)
	require.True(t, infos[0].IsPeerRead)
}

// TestRedisOrderSkipsDeadMessages: deleted messages leave the orders, and
// messages gone by expiry (Redis's TTL, or the engine's clock) are skipped
// and pruned by the scans and trackings that meet them. The order sets
// expire with the retention.
func TestRedisOrderSkipsDeadMessages(t *testing.T) {
	c := ordServer(t)
	ctx := context.Background()
	clock := newOrdClock()
	const retention = time.Hour
	e := openRedisEngine(t, c, "dead:", readreceipt.WithClock(clock.now), readreceipt.WithRetention(retention))
	conv := readreceipt.Group("g")
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r", "x", "y"}))
	const order, thread = "dead:{g1:g}O0:", "dead:{g1:g}O1:t"
	members := func(key string) []string {
		ms, err := c.ZRange(ctx, key, 0, -1).Result()
		require.NoError(t, err)
		return ms
	}
	t0 := clock.now()
	// Old messages: past retention by the engine's clock once it moves.
	ordTrack(t, e, clock, conv, "s", t0, "", "o1", "o2")
	t1 := t0.Add(retention + time.Minute)
	ordTrack(t, e, clock, conv, "s", t1, "t", "m1", "m2", "m3")
	ordTrack(t, e, clock, conv, "s", t1.Add(time.Second), "", "m4", "m5")
	// The tracking of m1 pruned the two oldest entries, o1 and o2: expired
	// by the engine's clock.
	require.Equal(t, []string{"m1", "m2", "m3", "m4", "m5"}, members(order))
	require.Equal(t, []string{"m1", "m2", "m3"}, members(thread))
	for _, k := range []string{order, thread, "dead:{g1:g}OT"} {
		ttl, err := c.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.True(t, ttl > 0 && ttl <= retention, "%s: TTL %v", k, ttl)
	}

	// Deleted: out of both orders at once.
	require.NoError(t, e.DeleteMessage(ctx, readreceipt.MessageRef{Conversation: conv, ID: "m2"}))
	require.Equal(t, []string{"m1", "m3", "m4", "m5"}, members(order))
	require.Equal(t, []string{"m1", "m3"}, members(thread))

	// Gone by TTL, as Redis drops an expired message's keys: skipped by a
	// mark, and its entries pruned.
	require.NoError(t, c.Del(ctx, "dead:{g1:g}M2:m3", "dead:{g1:g}M2:m4").Err())
	res := ordMark(t, e, "r", readreceipt.MarkRequest{Conversation: conv, Time: t1.Add(time.Minute)})
	require.Equal(t, 2, res.Messages) // m1, m5
	require.Equal(t, []string{"m1", "m5"}, members(order))
	require.Equal(t, []string{"m1", "m3"}, members(thread)) // not walked yet
	res = ordMark(t, e, "x", readreceipt.MarkRequest{Conversation: conv, Thread: "t", Time: t1.Add(time.Minute)})
	require.Equal(t, 1, res.Messages)
	require.Equal(t, []string{"m1"}, members(thread))

	// A message tracked anew after its keys expired is at its new place
	// only; its old entry in another thread is skipped and pruned.
	require.NoError(t, c.Del(ctx, "dead:{g1:g}M2:m1").Err())
	ordTrack(t, e, clock, conv, "s", t1.Add(2*time.Second), "u", "m1")
	require.Equal(t, []string{"m5", "m1"}, members(order))
	require.Equal(t, []string{"m1"}, members(thread))
	res = ordMark(t, e, "y", readreceipt.MarkRequest{Conversation: conv, Thread: "t", Time: t1.Add(time.Hour)})
	require.Equal(t, 0, res.Messages)
	require.Empty(t, members(thread))
	ts, err := c.SMembers(ctx, "dead:{g1:g}OT").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"u"}, ts)
	res = ordMark(t, e, "x", readreceipt.MarkRequest{Conversation: conv, Thread: "u", MessageID: "m1"})
	require.Equal(t, 1, res.Messages)
}

// TestRedisOrderLongScan: a mark far ahead goes through many messages, in
// batches, past many dead entries, each exactly once.
func TestRedisOrderLongScan(t *testing.T) {
	c := ordServer(t)
	ctx := context.Background()
	clock := newOrdClock()
	e := openRedisEngine(t, c, "long:", readreceipt.WithClock(clock.now), readreceipt.WithRetention(24*time.Hour))
	conv := readreceipt.C2C("p", "q")
	t0 := clock.now()
	ids := userList("m", 2600)
	// Ten messages a microsecond.
	for i, id := range ids {
		ordTrack(t, e, clock, conv, "p", t0.Add(time.Duration(i/10)*time.Microsecond), "", id)
	}
	// The keys of 1,500 of them gone by TTL, in one stretch.
	var gone []string
	for _, id := range ids[500:2000] {
		gone = append(gone, "long:{c1:p1:q}M"+strconv.Itoa(len(id))+":"+id)
	}
	require.NoError(t, c.Del(ctx, gone...).Err())
	res := ordMark(t, e, "q", readreceipt.MarkRequest{Conversation: conv, MessageID: ids[2555]})
	require.Equal(t, 500+556, res.Messages)
	require.Equal(t, 500+556, res.Recorded)
	n, err := c.ZCard(ctx, "long:{c1:p1:q}O0:").Result()
	require.NoError(t, err)
	require.Equal(t, int64(1100), n)
	clock.set(t0.Add(time.Hour)) // not a mark in the engine's future
	res = ordMark(t, e, "q", readreceipt.MarkRequest{Conversation: conv, Time: t0.Add(time.Hour)})
	require.Equal(t, readreceipt.MarkResult{Mark: readreceipt.ReadMark{Time: t0.Add(time.Hour)}, Messages: 44, Recorded: 44}, res)
}

// TestRedisDismissDropsMarks: a dismissed group's orders and marks go with
// it; a group re-created with the same ID starts with none.
func TestRedisDismissDropsMarks(t *testing.T) {
	c := ordServer(t)
	ctx := context.Background()
	clock := newOrdClock()
	e := openRedisEngine(t, c, "dis:", readreceipt.WithClock(clock.now))
	conv := readreceipt.Group("g")
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r"}))
	t0 := clock.now()
	ordTrack(t, e, clock, conv, "s", t0, "", "m1")
	ordTrack(t, e, clock, conv, "s", t0.Add(time.Second), "t", "m2")
	ordMark(t, e, "r", readreceipt.MarkRequest{Conversation: conv, MessageID: "m2"})
	ordMark(t, e, "r", readreceipt.MarkRequest{Conversation: conv, Thread: "t", MessageID: "m2"})
	require.NoError(t, e.DismissGroup(ctx, "g"))
	keys, err := c.Keys(ctx, "dis:{g1:g}*").Result()
	require.NoError(t, err)
	require.Empty(t, keys)

	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r"}))
	for _, th := range []string{"", "t"} {
		_, ok, err := e.GetReadMark(ctx, "r", conv, th)
		require.NoError(t, err)
		require.False(t, ok)
	}
	ordTrack(t, e, clock, conv, "s", t0.Add(2*time.Second), "", "m3")
	res := ordMark(t, e, "r", readreceipt.MarkRequest{Conversation: conv, Time: t0.Add(time.Hour)})
	require.Equal(t, 1, res.Messages)
	require.Equal(t, 1, res.Recorded)

	// No marks for a group that is gone.
	require.NoError(t, e.DismissGroup(ctx, "g"))
	_, err = e.MarkConversationRead(ctx, "r", readreceipt.MarkRequest{Conversation: conv, Time: t0.Add(time.Hour)})
	require.ErrorIs(t, err, readreceipt.ErrGroupNotFound)
}

// TestRedisPrivacyAcrossEngines: a user's privacy setting takes effect on
// every engine as soon as it is set.
func TestRedisPrivacyAcrossEngines(t *testing.T) {
	c := ordServer(t)
	ctx := context.Background()
	a := openRedisEngine(t, c, "priv:")
	b := openRedisEngine(t, c, "priv:")
	for _, e := range []*readreceipt.Engine{a, b} {
		p, err := e.ReceiptsPrivate(ctx, "bob")
		require.NoError(t, err)
		require.False(t, p)
	}
	for _, on := range []bool{true, false, true} {
		require.NoError(t, a.SetReceiptsPrivate(ctx, "bob", on))
		p, err := b.ReceiptsPrivate(ctx, "bob")
		require.NoError(t, err)
		require.Equal(t, on, p)
	}
	p, err := b.ReceiptsPrivate(ctx, "alice")
	require.NoError(t, err)
	require.False(t, p)
	require.Equal(t, int64(1), c.Exists(ctx, "priv:p{u3:bob}").Val())
	require.NoError(t, b.SetReceiptsPrivate(ctx, "bob", false))
	require.Equal(t, int64(0), c.Exists(ctx, "priv:p{u3:bob}").Val())
}

// TestRedisEventsCrossEngines: on a Redis Cluster, the receipt events (read
// and delivered, with every count) and the own read events of calls through
// one engine reach the subscribers of another, as the first engine's own
// subscribers got them.
func TestRedisEventsCrossEngines(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1)
	ctx := context.Background()
	newClient := func() redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := openRedisEngine(t, newClient(), "xev:")
	b := openRedisEngine(t, newClient(), "xev:")
	var mu sync.Mutex
	var localEvs, remoteEvs []readreceipt.ReceiptEvent
	var localOwn, remoteOwn []readreceipt.OwnReadEvent
	a.Subscribe(func(evs []readreceipt.ReceiptEvent) {
		mu.Lock()
		defer mu.Unlock()
		localEvs = append(localEvs, evs...)
	})
	a.SubscribeOwnReads(func(evs []readreceipt.OwnReadEvent) {
		mu.Lock()
		defer mu.Unlock()
		localOwn = append(localOwn, evs...)
	})
	b.Subscribe(func(evs []readreceipt.ReceiptEvent) {
		mu.Lock()
		defer mu.Unlock()
		remoteEvs = append(remoteEvs, evs...)
	})
	b.SubscribeOwnReads(func(evs []readreceipt.OwnReadEvent) {
		mu.Lock()
		defer mu.Unlock()
		remoteOwn = append(remoteOwn, evs...)
	})
	// An engine publishes nothing to a channel that had no listener in the
	// last second (delivery is at most once): wait until both engines
	// listen on every channel.
	cc := newClient().(*redis.ClusterClient)
	deadline := time.Now().Add(30 * time.Second)
	for k := 0; k < 16; k++ {
		ch := "xev:ev{" + strconv.Itoa(k) + "}"
		for {
			m, err := cc.MasterForKey(ctx, ch)
			require.NoError(t, err)
			n, err := m.PubSubShardNumSub(ctx, ch).Result()
			require.NoError(t, err)
			if n[ch] >= 2 {
				break
			}
			require.False(t, time.Now().After(deadline), "engines not listening on %s", ch)
			time.Sleep(20 * time.Millisecond)
		}
	}

	conv := readreceipt.Group("g")
	require.NoError(t, a.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r", "d"}))
	for _, id := range []string{"m1", "m2", "m3"} {
		require.NoError(t, a.TrackMessage(ctx, readreceipt.Message{Conversation: conv, ID: id, Sender: "s"}))
	}
	c2c := readreceipt.C2C("s", "p")
	require.NoError(t, a.TrackMessage(ctx, readreceipt.Message{Conversation: c2c, ID: "c1", Sender: "s"}))
	ref := func(conv readreceipt.Conversation, id string) []readreceipt.MessageRef {
		return []readreceipt.MessageRef{{Conversation: conv, ID: id}}
	}
	_, err := a.SendMessageDeliveryReceipt(ctx, "d", ref(conv, "m1"))
	require.NoError(t, err)
	_, err = a.SendMessageDeliveryReceipt(ctx, "p", ref(c2c, "c1"))
	require.NoError(t, err)
	_, err = a.SendMessageReadReceipt(ctx, "p", ref(c2c, "c1"))
	require.NoError(t, err)
	_, err = a.SendMessageReadReceipt(ctx, "r", ref(conv, "m1"))
	require.NoError(t, err)
	_, err = a.MarkConversationRead(ctx, "r", readreceipt.MarkRequest{Conversation: conv, MessageID: "m3"})
	require.NoError(t, err)

	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := len(remoteEvs) >= len(localEvs) && len(remoteOwn) >= len(localOwn)
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	require.NotEmpty(t, localEvs)
	require.NotEmpty(t, localOwn)
	sortEvents := func(evs []readreceipt.ReceiptEvent) {
		sort.SliceStable(evs, func(i, j int) bool {
			return evs[i].MessageID+"/"+evs[i].Reader+"/"+evs[i].Kind.String() < evs[j].MessageID+"/"+evs[j].Reader+"/"+evs[j].Kind.String()
		})
	}
	sortEvents(localEvs)
	sortEvents(remoteEvs)
	require.Equal(t, localEvs, remoteEvs)
	sortOwn := func(evs []readreceipt.OwnReadEvent) {
		sort.SliceStable(evs, func(i, j int) bool {
			return evs[i].UserID+"/"+strings.Join(evs[i].MessageIDs, ",") < evs[j].UserID+"/"+strings.Join(evs[j].MessageIDs, ",")
		})
	}
	sortOwn(localOwn)
	sortOwn(remoteOwn)
	require.Equal(t, localOwn, remoteOwn)
	last := remoteOwn[len(remoteOwn)-1]
	require.Equal(t, "r", last.UserID)
	require.NotNil(t, last.Mark)
	require.Equal(t, "m3", last.Mark.MessageID)
	require.Equal(t, []string{"m2", "m3"}, last.MessageIDs)
	haveEvs, haveOwn := len(remoteEvs), len(remoteOwn)
	mu.Unlock()

	// The wire format, as another engine publishes it: a delivery event
	// and an own read event arrive with every field (at both engines: a
	// itself listens too).
	payload := `{"o":"other","e":[{"Kind":1,"Sender":"s","Conversation":{"Type":1,"GroupID":"","Users":["p","s"]},"UserID":"p","MessageID":"c9",` +
		`"ReadCount":0,"UnreadCount":1,"DeliveredCount":1,"UndeliveredCount":0,"IsPeerRead":false,"IsPeerDelivered":true,"ReadTime":"0001-01-01T00:00:00Z","Reader":"p"}]}`
	require.NoError(t, cc.SPublish(ctx, "xev:ev{3}", payload).Err())
	payload = `{"o":"other","w":[{"UserID":"r","Conversation":{"Type":2,"GroupID":"g"},"MessageIDs":["m9"],"Mark":{"MessageID":"","Time":"2026-03-01T12:00:00Z"},"Thread":"t"}]}`
	require.NoError(t, cc.SPublish(ctx, "xev:ev{5}", payload).Err())
	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, m := len(remoteEvs), len(remoteOwn)
		mu.Unlock()
		if n > haveEvs && m > haveOwn {
			break
		}
		require.False(t, time.Now().After(deadline), "crafted events not delivered")
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	ev := remoteEvs[len(remoteEvs)-1]
	own := remoteOwn[len(remoteOwn)-1]
	mu.Unlock()
	require.Equal(t, readreceipt.ReceiptEvent{Kind: readreceipt.EventDelivered, Sender: "s", Conversation: c2c, UserID: "p", MessageID: "c9",
		UnreadCount: 1, DeliveredCount: 1, IsPeerDelivered: true, Reader: "p"}, ev)
	require.Equal(t, readreceipt.OwnReadEvent{UserID: "r", Conversation: conv, MessageIDs: []string{"m9"},
		Mark: &readreceipt.ReadMark{Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, Thread: "t"}, own)
}
