package readreceipt_test

import (
	"context"
	"slices"
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

// openRedisEngine opens an engine on c under prefix, checked and closed
// when the test ends.
func openRedisEngine(t *testing.T, c redis.UniversalClient, prefix string, opts ...readreceipt.Option) *readreceipt.Engine {
	t.Helper()
	e, err := readreceipt.OpenRedis(context.Background(), readreceipt.RedisOptions{Client: c, Prefix: prefix}, append([]readreceipt.Option{readreceipt.WithSweepInterval(0)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { closeChecked(t, e) })
	return e
}

// TestRedisEnginesShareState runs two engines, as two hosts would, on one
// Redis Cluster (three masters, a replica each): whichever engine a call
// goes through, each receipt is recorded once, counts are exact, pages and
// cursors are the same, membership indexes never collide, and the sender's
// engine gets the event of a receipt recorded through the other.
func TestRedisEnginesShareState(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1)
	ctx := context.Background()
	newClient := func() redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := openRedisEngine(t, newClient(), "share:")
	b := openRedisEngine(t, newClient(), "share:")
	hosts := []*readreceipt.Engine{a, b}

	var mu sync.Mutex
	var gotA []readreceipt.ReceiptEvent
	a.Subscribe(func(evs []readreceipt.ReceiptEvent) {
		mu.Lock()
		defer mu.Unlock()
		gotA = append(gotA, evs...)
	})

	readers := userList("r", 20)
	require.NoError(t, a.CreateGroup(ctx, "team", readreceipt.GroupWork, append([]string{"s"}, readers[:10]...)))
	// Members added through both hosts at once get distinct indexes.
	var wg sync.WaitGroup
	for i, e := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, e.AddGroupMembers(ctx, "team", readers[10+5*i:15+5*i]))
		}()
	}
	wg.Wait()
	g, err := b.GetGroup(ctx, "team")
	require.NoError(t, err)
	require.Equal(t, 21, g.Members)

	msg := readreceipt.Message{Conversation: readreceipt.Group("team"), ID: "m1", Sender: "s"}
	require.NoError(t, a.TrackMessage(ctx, msg))
	require.NoError(t, b.TrackMessage(ctx, msg)) // the same sender again: a no-op
	refs := []readreceipt.MessageRef{msg.Ref()}

	// Every reader sends its receipt through both hosts at once: exactly
	// one of the two records it.
	recorded := make([]int, len(readers))
	for i, r := range readers {
		for _, e := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.SendMessageReadReceipt(ctx, r, refs)
				require.NoError(t, err)
				require.NoError(t, res[0].Err)
				if res[0].Recorded {
					mu.Lock()
					recorded[i]++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for i, n := range recorded {
		require.Equal(t, 1, n, "receipt of %s recorded %d times", readers[i], n)
	}
	for _, e := range hosts {
		infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("s"), refs)
		require.NoError(t, err)
		require.Equal(t, 20, infos[0].ReadCount)
		require.Equal(t, 0, infos[0].UnreadCount)
	}

	// Pages are the same from both hosts, and a cursor made on one works on
	// the other.
	walk := func(first, next *readreceipt.Engine) []string {
		var out []string
		req := readreceipt.MemberListRequest{Message: msg.Ref(), Filter: readreceipt.FilterRead, Count: 3}
		for i := 0; ; i++ {
			e := first
			if i%2 == 1 {
				e = next
			}
			p, err := e.GetGroupMessageReadMemberList(ctx, readreceipt.AsUser("s"), req)
			require.NoError(t, err)
			out = append(out, p.ReadUserIDList...)
			if p.IsCompleted {
				return out
			}
			req.Cursor = p.Cursor
		}
	}
	wantReaders := append(readers[:10:10], readers[10:]...)
	require.ElementsMatch(t, wantReaders, walk(a, b))
	require.Equal(t, walk(a, b), walk(b, a))

	// A C2C receipt sent through both hosts is counted once.
	c2c := readreceipt.Message{Conversation: readreceipt.C2C("s", "p"), ID: "c1", Sender: "s"}
	require.NoError(t, b.TrackMessage(ctx, c2c))
	n := 0
	for _, e := range hosts {
		res, err := e.SendMessageReadReceipt(ctx, "p", []readreceipt.MessageRef{c2c.Ref()})
		require.NoError(t, err)
		if res[0].Recorded {
			n++
		}
	}
	require.Equal(t, 1, n)

	// The sender's host got an event for every receipt, including those
	// recorded through the other host, and none twice.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(gotA)
		mu.Unlock()
		if got >= 21 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var names []string
	for _, ev := range gotA {
		require.Equal(t, "s", ev.Sender)
		names = append(names, ev.MessageID+"/"+ev.Reader)
	}
	slices.Sort(names)
	var want []string
	for _, r := range readers {
		want = append(want, "m1/"+r)
	}
	want = append(want, "c1/p")
	slices.Sort(want)
	require.Equal(t, want, names)
}

// TestRedisExpiry shows how the Redis backend reclaims expired state: the
// keys of a message expire with the retention, by Redis's clock, while the
// engine answers by its own clock (ErrReceiptNotFound once past retention).
func TestRedisExpiry(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	const retention = 1500 * time.Millisecond
	e := openRedisEngine(t, c, "exp:", readreceipt.WithRetention(retention))
	// More members than a message keeps readers for in its own hash, so
	// that its readers have a key of their own, which must expire too.
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, append([]string{"s", "r"}, userList("u", 600)...)))
	msg := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m", Sender: "s"}
	require.NoError(t, e.TrackMessage(ctx, msg))
	res, err := e.SendMessageReadReceipt(ctx, "r", []readreceipt.MessageRef{msg.Ref()})
	require.NoError(t, err)
	require.True(t, res[0].Recorded)

	keys, err := c.Keys(ctx, "exp:*").Result()
	require.NoError(t, err)
	var msgKeys []string
	for _, k := range keys {
		if strings.Contains(k, "}M") || strings.Contains(k, "}R") {
			msgKeys = append(msgKeys, k)
			ttl, err := c.PTTL(ctx, k).Result()
			require.NoError(t, err)
			require.True(t, ttl > 0 && ttl <= retention, "%s: TTL %v", k, ttl)
		}
	}
	require.Len(t, msgKeys, 2, "the message and its readers: %v", keys)

	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := c.Exists(ctx, msgKeys...).Result()
		require.NoError(t, err)
		if n == 0 {
			break
		}
		require.False(t, time.Now().After(deadline), "message keys still there: %v", msgKeys)
		time.Sleep(100 * time.Millisecond)
	}
	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{msg.Ref()})
	require.NoError(t, err)
	require.ErrorIs(t, infos[0].Err, readreceipt.ErrReceiptNotFound)
}

// TestRedisSparseReaders: a message of a big group that few have read
// keeps its readers as a set, a few bytes a reader; at the sparse limit it
// turns into bitmaps; pages list the same members in either form.
func TestRedisSparseReaders(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	e := openRedisEngine(t, c, "sparse:")
	members := userList("u", 100_000)
	require.NoError(t, e.CreateGroup(ctx, "big", readreceipt.GroupWork, members))
	msg := readreceipt.Message{Conversation: readreceipt.Group("big"), ID: "m", Sender: "u0"}
	require.NoError(t, e.TrackMessage(ctx, msg))
	refs := []readreceipt.MessageRef{msg.Ref()}
	read := func(idxs ...int) {
		for _, i := range idxs {
			res, err := e.SendMessageReadReceipt(ctx, members[i], refs)
			require.NoError(t, err)
			require.True(t, res[0].Recorded, members[i])
		}
	}
	walk := func(f readreceipt.MemberFilter, count int) []string {
		var out []string
		req := readreceipt.MemberListRequest{Message: msg.Ref(), Filter: f, Count: count}
		for {
			p, err := e.GetGroupMessageReadMemberList(ctx, readreceipt.AsUser("u0"), req)
			require.NoError(t, err)
			out = append(out, p.ReadUserIDList...)
			out = append(out, p.UnreadUserIDList...)
			if p.IsCompleted {
				return out
			}
			req.Cursor = p.Cursor
		}
	}
	messageBytes := func() int64 {
		keys, err := c.Keys(ctx, "sparse:{g3:big}[MRS]*").Result()
		require.NoError(t, err)
		var n int64
		for _, k := range keys {
			n += c.MemoryUsage(ctx, k).Val()
		}
		return n
	}

	ten := []int{99_999, 1, 65_535, 65_536, 5, 77_777, 42, 65_537, 12_345, 98_765}
	read(ten...)
	slices.Sort(ten)
	var want []string
	for _, i := range ten {
		want = append(want, members[i])
	}
	require.Equal(t, want, walk(readreceipt.FilterRead, 3))
	unread := walk(readreceipt.FilterUnread, 100)
	require.Len(t, unread, 100_000-1-10)
	sparseBytes := messageBytes()
	t.Logf("a message of a 100,000-member group with 10 readers: %d bytes in Redis (MEMORY USAGE of its keys)", sparseBytes)
	require.Less(t, sparseBytes, int64(1024), "a message of a 100,000-member group with 10 readers")

	// Past the sparse limit (256 readers) the readers are bitmaps.
	var more []int
	for i := 100; len(more) < 300; i += 333 {
		more = append(more, i)
	}
	read(more...)
	all := append(slices.Clone(ten), more...)
	slices.Sort(all)
	want = want[:0]
	for _, i := range all {
		want = append(want, members[i])
	}
	require.Equal(t, want, walk(readreceipt.FilterRead, 100))
	require.Len(t, walk(readreceipt.FilterUnread, 100), 100_000-1-len(all))
	t.Logf("the same with %d readers, as bitmaps: %d bytes", len(all), messageBytes())
	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("u0"), refs)
	require.NoError(t, err)
	require.Equal(t, len(all), infos[0].ReadCount)
}

// TestRedisMessageListStaysBounded: Redis drops expired messages' keys by
// itself, and tracking prunes their IDs from the group's message list, so
// that the list does not grow with every message ever tracked.
func TestRedisMessageListStaysBounded(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	e := openRedisEngine(t, c, "list:", readreceipt.WithRetention(300*time.Millisecond))
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r"}))
	track := func(prefix string, n int) {
		for i := range n {
			require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: readreceipt.Group("g"), ID: prefix + strconv.Itoa(i), Sender: "s"}))
		}
	}
	track("old", 100)
	// Wait until Redis has dropped every old message.
	deadline := time.Now().Add(30 * time.Second)
	for {
		keys, err := c.Keys(ctx, "list:{g1:g}M*").Result()
		require.NoError(t, err)
		if len(keys) == 0 {
			break
		}
		require.False(t, time.Now().After(deadline), "old messages still there")
		time.Sleep(100 * time.Millisecond)
	}
	track("new", 200)
	n, err := c.SCard(ctx, "list:{g1:g}X").Result()
	require.NoError(t, err)
	// 300 IDs were listed; pruning two random IDs a tracking removes most
	// of the 100 dead ones (the live ones, at most 200, stay listed).
	require.Less(t, n, int64(250), "the message list holds %d IDs", n)
	t.Logf("after 100 expired and 200 live messages the list holds %d IDs", n)
}
