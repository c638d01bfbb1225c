package readreceipt_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The embedded backend's orders, read-up-to marks and privacy flags.

// orderClock is a test clock that moves a millisecond at every tracking
// the test makes (tick), so that messages have distinct positions.
type orderClock struct{ ns atomic.Int64 }

func newOrderClock() *orderClock {
	c := &orderClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *orderClock) now() time.Time             { return time.Unix(0, c.ns.Load()).UTC() }
func (c *orderClock) advance(d time.Duration)    { c.ns.Add(int64(d)) }
func (c *orderClock) tick() time.Time            { c.advance(time.Millisecond); return c.now() }
func (c *orderClock) option() readreceipt.Option { return readreceipt.WithClock(c.now) }

// orderStore counts what reaches the store: the order keys scans visit,
// and the reads of privacy flags.
type orderStore struct {
	store.Store
	orderKeys   atomic.Int64
	privacyGets atomic.Int64
}

func (s *orderStore) Scan(ctx context.Context, start, end []byte, fn func(k, v []byte) bool) error {
	return s.Store.Scan(ctx, start, end, func(k, v []byte) bool {
		if len(k) > 0 && k[0] == 'o' {
			s.orderKeys.Add(1)
		}
		return fn(k, v)
	})
}

func (s *orderStore) Get(ctx context.Context, keys [][]byte) ([][]byte, error) {
	for _, k := range keys {
		if len(k) > 1 && k[0] == 0 && k[1] == 'p' {
			s.privacyGets.Add(1)
		}
	}
	return s.Store.Get(ctx, keys)
}

// countKeys counts the stored keys that start with prefix.
func countKeys(t *testing.T, st store.Store, prefix byte) int {
	t.Helper()
	n := 0
	require.NoError(t, st.Scan(context.Background(), []byte{prefix}, []byte{prefix + 1}, func(k, v []byte) bool {
		n++
		return true
	}))
	return n
}

type orderFixture struct {
	t     *testing.T
	ctx   context.Context
	e     *readreceipt.Engine
	st    *orderStore
	clock *orderClock
	conv  readreceipt.Conversation
}

func newOrderFixture(t *testing.T, opts ...readreceipt.Option) *orderFixture {
	f := &orderFixture{t: t, ctx: context.Background(), clock: newOrderClock(), conv: readreceipt.Group("g")}
	f.st = &orderStore{Store: memstore.New()}
	opts = append([]readreceipt.Option{f.clock.option(), readreceipt.WithSweepInterval(0)}, opts...)
	e, err := readreceipt.Open(f.st, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { closeChecked(t, e) })
	f.e = e
	require.NoError(t, e.CreateGroup(f.ctx, "g", readreceipt.GroupWork, []string{"s", "a", "b"}))
	return f
}

// track tracks messages from sender in thread, a clock tick apart, and
// returns when the last one was tracked.
func (f *orderFixture) track(sender, thread string, ids ...string) time.Time {
	f.t.Helper()
	var at time.Time
	for _, id := range ids {
		at = f.clock.tick()
		require.NoError(f.t, f.e.TrackMessage(f.ctx, readreceipt.Message{Conversation: f.conv, ID: id, Sender: sender, Thread: thread}))
	}
	return at
}

func (f *orderFixture) mark(reader string, req readreceipt.MarkRequest) readreceipt.MarkResult {
	f.t.Helper()
	res := f.markUnchecked(reader, req)
	require.NoError(f.t, f.e.Check(f.ctx))
	return res
}

// markUnchecked is mark without the Check after, whose scan would count.
func (f *orderFixture) markUnchecked(reader string, req readreceipt.MarkRequest) readreceipt.MarkResult {
	f.t.Helper()
	req.Conversation = f.conv
	res, err := f.e.MarkConversationRead(f.ctx, reader, req)
	require.NoError(f.t, err)
	return res
}

// readCounts returns the read count of each message, -1 for an error.
func (f *orderFixture) readCounts(ids ...string) []int {
	f.t.Helper()
	refs := make([]readreceipt.MessageRef, len(ids))
	for i, id := range ids {
		refs[i] = readreceipt.MessageRef{Conversation: f.conv, ID: id}
	}
	infos, err := f.e.GetMessageReadReceiptList(f.ctx, readreceipt.Caller{Admin: true}, refs)
	require.NoError(f.t, err)
	out := make([]int, len(infos))
	for i, in := range infos {
		out[i] = in.ReadCount
		if in.Err != nil {
			out[i] = -1
		}
	}
	return out
}

func TestMarkUpToMessageAndTime(t *testing.T) {
	f := newOrderFixture(t)
	f.track("s", "", "m1", "m2", "m3")
	f.track("a", "", "own")
	at4 := f.track("s", "", "m4")
	f.clock.advance(time.Second)
	between := f.clock.now()
	f.track("s", "", "m5")

	_, ok, err := f.e.GetReadMark(f.ctx, "a", f.conv, "")
	require.NoError(t, err)
	assert.False(t, ok, "no mark yet")

	res := f.mark("a", readreceipt.MarkRequest{MessageID: "m2"})
	assert.Equal(t, 2, res.Messages)
	assert.Equal(t, 2, res.Recorded)
	assert.Equal(t, "m2", res.Mark.MessageID)
	assert.Equal(t, []int{1, 1, 0, 0, 0}, f.readCounts("m1", "m2", "m3", "m4", "m5"))

	// Up to a time: m3, a's own message (not recorded) and m4.
	res = f.mark("a", readreceipt.MarkRequest{Time: between})
	assert.Equal(t, 3, res.Messages)
	assert.Equal(t, 2, res.Recorded)
	assert.Equal(t, "", res.Mark.MessageID)
	assert.True(t, res.Mark.Time.Equal(between.Truncate(time.Microsecond)), "mark at %v, want %v", res.Mark.Time, between)
	assert.True(t, res.Mark.Time.After(at4))
	assert.Equal(t, []int{1, 1, 1, 1, 0}, f.readCounts("m1", "m2", "m3", "m4", "m5"))

	m, ok, err := f.e.GetReadMark(f.ctx, "a", f.conv, "")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, res.Mark, m)

	// A mark never moves back: an earlier message or time leaves it.
	res = f.mark("a", readreceipt.MarkRequest{MessageID: "m1"})
	assert.Equal(t, readreceipt.MarkResult{Mark: m}, res)
	res = f.mark("a", readreceipt.MarkRequest{Time: at4})
	assert.Equal(t, readreceipt.MarkResult{Mark: m}, res)

	// b's marks are b's own.
	_, ok, err = f.e.GetReadMark(f.ctx, "b", f.conv, "")
	require.NoError(t, err)
	assert.False(t, ok)

	// A time after now marks up to now: messages tracked later are not
	// covered.
	res = f.mark("b", readreceipt.MarkRequest{Time: f.clock.now().Add(time.Hour)})
	assert.Equal(t, 6, res.Messages)
	assert.Equal(t, 6, res.Recorded)
	assert.True(t, res.Mark.Time.Equal(f.clock.now()), "clamped to now")
	f.track("s", "", "m6")
	res = f.mark("b", readreceipt.MarkRequest{MessageID: "m6"})
	assert.Equal(t, 1, res.Recorded, "m6 is after the mark")

	_, err = f.e.MarkConversationRead(f.ctx, "a", readreceipt.MarkRequest{Conversation: f.conv, MessageID: "nope"})
	assert.ErrorIs(t, err, readreceipt.ErrReceiptNotFound)
	_, err = f.e.MarkConversationRead(f.ctx, "a", readreceipt.MarkRequest{Conversation: f.conv, MessageID: "m1", Time: at4})
	assert.ErrorIs(t, err, readreceipt.ErrInvalidParameter)
	_, err = f.e.MarkConversationRead(f.ctx, "a", readreceipt.MarkRequest{Conversation: readreceipt.Group("nope"), Time: at4})
	assert.ErrorIs(t, err, readreceipt.ErrGroupNotFound)
}

func TestMarkC2C(t *testing.T) {
	f := newOrderFixture(t)
	f.conv = readreceipt.C2C("a", "b")
	f.track("a", "", "c1")
	f.track("b", "", "c2")
	f.track("a", "", "c3")
	res := f.mark("b", readreceipt.MarkRequest{Time: f.clock.now()})
	assert.Equal(t, 3, res.Messages)
	assert.Equal(t, 2, res.Recorded, "c2 is b's own")
	assert.Equal(t, []int{1, 0, 1}, f.readCounts("c1", "c2", "c3"))
	res = f.mark("a", readreceipt.MarkRequest{MessageID: "c2"})
	assert.Equal(t, 1, res.Recorded)
	_, err := f.e.MarkConversationRead(f.ctx, "s", readreceipt.MarkRequest{Conversation: f.conv, Time: f.clock.now()})
	assert.ErrorIs(t, err, readreceipt.ErrInvalidParameter, "s is not in the conversation")
}

func TestMarkThreads(t *testing.T) {
	f := newOrderFixture(t)
	f.track("s", "", "m1")
	f.track("s", "T", "t1")
	f.track("s", "", "m2")
	f.track("s", "T", "t2")
	f.track("s", "U", "u1")

	res := f.mark("a", readreceipt.MarkRequest{Thread: "T", MessageID: "t2"})
	assert.Equal(t, 2, res.Messages, "the thread's messages only")
	assert.Equal(t, 2, res.Recorded)
	assert.Equal(t, []int{0, 1, 0, 1, 0}, f.readCounts("m1", "t1", "m2", "t2", "u1"))

	_, err := f.e.MarkConversationRead(f.ctx, "a", readreceipt.MarkRequest{Conversation: f.conv, Thread: "T", MessageID: "m2"})
	assert.ErrorIs(t, err, readreceipt.ErrReceiptNotFound, "m2 is not in thread T")
	_, err = f.e.MarkConversationRead(f.ctx, "a", readreceipt.MarkRequest{Conversation: f.conv, Thread: "U", MessageID: "t1"})
	assert.ErrorIs(t, err, readreceipt.ErrReceiptNotFound)

	// The thread mark is the thread's: no conversation mark, none in U.
	for _, th := range []string{"", "U"} {
		_, ok, err := f.e.GetReadMark(f.ctx, "a", f.conv, th)
		require.NoError(t, err)
		assert.False(t, ok, "thread %q", th)
	}

	// The conversation's mark covers every thread.
	res = f.mark("a", readreceipt.MarkRequest{MessageID: "u1"})
	assert.Equal(t, 5, res.Messages)
	assert.Equal(t, 3, res.Recorded, "t1 and t2 were read already")
	assert.Equal(t, []int{1, 1, 1, 1, 1}, f.readCounts("m1", "t1", "m2", "t2", "u1"))
	_, ok, err := f.e.GetReadMark(f.ctx, "a", f.conv, "U")
	require.NoError(t, err)
	assert.False(t, ok, "a conversation mark sets no thread mark")

	// A thread mark at a time covers that thread's messages only.
	f.track("s", "", "m3")
	f.track("s", "U", "u2")
	res = f.mark("b", readreceipt.MarkRequest{Thread: "U", Time: f.clock.now()})
	assert.Equal(t, 2, res.Messages)
	assert.Equal(t, 2, res.Recorded)
	assert.Equal(t, []int{0, 2, 1}, f.readCounts("m3", "u1", "u2"))
}

// A mark's cost grows with the messages tracked since the previous mark,
// not with the conversation's history.
func TestMarkCostFollowsNewMessages(t *testing.T) {
	f := newOrderFixture(t)
	ids := make([]string, 700)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%03d", i)
	}
	f.track("s", "", ids...)
	f.track("s", "T", "t1", "t2")

	f.st.orderKeys.Store(0)
	res := f.markUnchecked("a", readreceipt.MarkRequest{MessageID: "t2"})
	assert.Equal(t, 702, res.Messages)
	assert.Equal(t, 702, res.Recorded)
	assert.LessOrEqual(t, f.st.orderKeys.Load(), int64(702+10), "about one key per message")

	f.track("s", "", "n1", "n2", "n3")
	f.st.orderKeys.Store(0)
	res = f.markUnchecked("a", readreceipt.MarkRequest{MessageID: "n3"})
	assert.Equal(t, 3, res.Messages)
	assert.Equal(t, 3, res.Recorded)
	assert.LessOrEqual(t, f.st.orderKeys.Load(), int64(3+1), "the three new messages")

	// A thread mark walks the thread's order, not the conversation's.
	f.st.orderKeys.Store(0)
	res = f.markUnchecked("b", readreceipt.MarkRequest{Thread: "T", Time: f.clock.now()})
	assert.Equal(t, 2, res.Messages)
	assert.LessOrEqual(t, f.st.orderKeys.Load(), int64(2+1))
}

// Deleted and expired messages are skipped, and their order keys go with
// them.
func TestMarkSkipsDeletedAndExpired(t *testing.T) {
	f := newOrderFixture(t, readreceipt.WithRetention(time.Hour))
	f.track("s", "T", "old")
	f.clock.advance(40 * time.Minute)
	f.track("s", "", "gone")
	f.track("s", "T", "kept")
	require.NoError(t, f.e.DeleteMessage(f.ctx, readreceipt.MessageRef{Conversation: f.conv, ID: "gone"}))
	assert.Equal(t, 4, countKeys(t, f.st, 'o'), "old and kept, in the conversation and thread T")
	f.clock.advance(25 * time.Minute) // old expired

	f.st.orderKeys.Store(0)
	res := f.markUnchecked("a", readreceipt.MarkRequest{Time: f.clock.now()})
	assert.Equal(t, 1, res.Messages)
	assert.Equal(t, 1, res.Recorded)
	assert.Equal(t, int64(1), f.st.orderKeys.Load(), "the walk starts after the expired, not yet swept")
	require.NoError(t, f.e.Check(f.ctx))
	assert.Equal(t, []int{-1, -1, 1}, f.readCounts("old", "gone", "kept"))
	_, err := f.e.MarkConversationRead(f.ctx, "b", readreceipt.MarkRequest{Conversation: f.conv, MessageID: "old"})
	assert.ErrorIs(t, err, readreceipt.ErrReceiptNotFound)
	_, err = f.e.MarkConversationRead(f.ctx, "b", readreceipt.MarkRequest{Conversation: f.conv, MessageID: "gone"})
	assert.ErrorIs(t, err, readreceipt.ErrReceiptNotFound)

	n, err := f.e.Sweep(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.NoError(t, f.e.Check(f.ctx))
	assert.Equal(t, 2, countKeys(t, f.st, 'o'), "kept only")

	require.NoError(t, f.e.DeleteMessage(f.ctx, readreceipt.MessageRef{Conversation: f.conv, ID: "kept"}))
	assert.Equal(t, 0, countKeys(t, f.st, 'o'))
}

// An expired message not swept yet, tracked again, replaces its order keys.
func TestMarkStaleMessageTrackedAgain(t *testing.T) {
	f := newOrderFixture(t, readreceipt.WithRetention(time.Hour))
	f.track("s", "T", "x")
	f.clock.advance(2 * time.Hour)
	f.track("a", "U", "x")
	require.NoError(t, f.e.Check(f.ctx))
	assert.Equal(t, 2, countKeys(t, f.st, 'o'), "the new x's, in the conversation and U")
	res := f.mark("b", readreceipt.MarkRequest{Thread: "U", MessageID: "x"})
	assert.Equal(t, 1, res.Recorded)
	_, err := f.e.MarkConversationRead(f.ctx, "b", readreceipt.MarkRequest{Conversation: f.conv, Thread: "T", MessageID: "x"})
	assert.ErrorIs(t, err, readreceipt.ErrReceiptNotFound)
}

// Dismissing a group drops its orders and marks: created again, it starts
// with none.
func TestMarkDismissDropsMarks(t *testing.T) {
	f := newOrderFixture(t)
	f.track("s", "T", "m1")
	f.mark("a", readreceipt.MarkRequest{MessageID: "m1"})
	f.mark("a", readreceipt.MarkRequest{Thread: "T", MessageID: "m1"})
	assert.Equal(t, 2, countKeys(t, f.st, 'k'))

	// Another conversation's marks stay.
	other := orderFixture{t: t, ctx: f.ctx, e: f.e, st: f.st, clock: f.clock, conv: readreceipt.C2C("a", "s")}
	other.track("s", "", "c1")
	other.mark("a", readreceipt.MarkRequest{MessageID: "c1"})

	require.NoError(t, f.e.DismissGroup(f.ctx, "g"))
	require.NoError(t, f.e.Check(f.ctx))
	assert.Equal(t, 1, countKeys(t, f.st, 'k'), "the C2C mark")
	assert.Equal(t, 1, countKeys(t, f.st, 'o'), "the C2C message")
	_, err := f.e.MarkConversationRead(f.ctx, "a", readreceipt.MarkRequest{Conversation: f.conv, Time: f.clock.now()})
	assert.ErrorIs(t, err, readreceipt.ErrGroupNotFound)

	require.NoError(t, f.e.CreateGroup(f.ctx, "g", readreceipt.GroupWork, []string{"s", "a"}))
	for _, th := range []string{"", "T"} {
		_, ok, err := f.e.GetReadMark(f.ctx, "a", f.conv, th)
		require.NoError(t, err)
		assert.False(t, ok, "thread %q", th)
	}
	f.track("s", "T", "m2")
	res := f.mark("a", readreceipt.MarkRequest{Thread: "T", Time: f.clock.now()})
	assert.Equal(t, 1, res.Messages, "m1 went with the old group")
	m, ok, err := f.e.GetReadMark(f.ctx, "a", other.conv, "")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "c1", m.MessageID)
}

// Concurrent marks end at the furthest: a mark never moves back.
func TestMarkConcurrentNeverMovesBack(t *testing.T) {
	f := newOrderFixture(t)
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%02d", i)
	}
	f.track("s", "", ids...)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ids); i += 4 {
				_, err := f.e.MarkConversationRead(f.ctx, "a", readreceipt.MarkRequest{Conversation: f.conv, MessageID: ids[len(ids)-1-i]})
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	m, ok, err := f.e.GetReadMark(f.ctx, "a", f.conv, "")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, ids[len(ids)-1], m.MessageID)
	counts := f.readCounts(ids...)
	for i, n := range counts {
		assert.Equal(t, 1, n, ids[i])
	}
}

// MarkConversationRead tells the reader's devices what it recorded.
func TestMarkOwnEvent(t *testing.T) {
	f := newOrderFixture(t)
	f.track("s", "T", "m1", "m2")
	f.track("a", "T", "m3")
	var mu sync.Mutex
	var got []readreceipt.OwnReadEvent
	unsub := f.e.SubscribeOwnReads(func(evs []readreceipt.OwnReadEvent) {
		mu.Lock()
		got = append(got, evs...)
		mu.Unlock()
	})
	defer unsub()
	res := f.mark("a", readreceipt.MarkRequest{Thread: "T", MessageID: "m3"})
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	}, 10*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	ev := got[0]
	assert.Equal(t, "a", ev.UserID)
	assert.Equal(t, "T", ev.Thread)
	assert.Equal(t, []string{"m1", "m2"}, ev.MessageIDs)
	require.NotNil(t, ev.Mark)
	assert.Equal(t, res.Mark, *ev.Mark)
}

// A user's privacy flag is durable, and survives a reopen, as do threads.
func TestPrivacySurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *readreceipt.Engine {
		e, err := readreceipt.OpenDir(dir, readreceipt.WithSweepInterval(0))
		require.NoError(t, err)
		return e
	}
	e := open()
	private := func(user string) bool {
		p, err := e.ReceiptsPrivate(ctx, user)
		require.NoError(t, err)
		return p
	}
	assert.False(t, private("u"))
	require.NoError(t, e.SetReceiptsPrivate(ctx, "u", true))
	require.NoError(t, e.SetReceiptsPrivate(ctx, "v", true))
	require.NoError(t, e.SetReceiptsPrivate(ctx, "v", false))
	assert.True(t, private("u"))
	assert.False(t, private("v"))
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "a"}))
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m1", Sender: "s", Thread: "T"}))
	require.NoError(t, e.Check(ctx))
	require.NoError(t, e.Close())

	e = open()
	assert.True(t, private("u"))
	assert.False(t, private("v"))
	assert.False(t, private("w"))
	res, err := e.MarkConversationRead(ctx, "a", readreceipt.MarkRequest{Conversation: readreceipt.Group("g"), Thread: "T", MessageID: "m1"})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Recorded)
	require.NoError(t, e.SetReceiptsPrivate(ctx, "u", false))
	require.NoError(t, e.Check(ctx))
	require.NoError(t, e.Close())

	e = open()
	assert.False(t, private("u"))
	m, ok, err := e.GetReadMark(ctx, "a", readreceipt.Group("g"), "T")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "m1", m.MessageID)
	require.NoError(t, e.Check(ctx))
	require.NoError(t, e.Close())
}

// Once a user's flag was read or set, asking again reads no store: every
// read receipt call asks.
func TestPrivacyCached(t *testing.T) {
	f := newOrderFixture(t)
	f.track("s", "", "m1", "m2")
	ref := func(id string) []readreceipt.MessageRef {
		return []readreceipt.MessageRef{{Conversation: f.conv, ID: id}}
	}
	_, err := f.e.SendMessageReadReceipt(f.ctx, "a", ref("m1"))
	require.NoError(t, err)
	gets := f.st.privacyGets.Load()
	assert.LessOrEqual(t, gets, int64(1))
	_, err = f.e.SendMessageReadReceipt(f.ctx, "a", ref("m2"))
	require.NoError(t, err)
	p, err := f.e.ReceiptsPrivate(f.ctx, "a")
	require.NoError(t, err)
	assert.False(t, p)
	assert.Equal(t, gets, f.st.privacyGets.Load(), "a public user is cached too")

	require.NoError(t, f.e.SetReceiptsPrivate(f.ctx, "b", true))
	p, err = f.e.ReceiptsPrivate(f.ctx, "b")
	require.NoError(t, err)
	assert.True(t, p)
	require.NoError(t, f.e.SetReceiptsPrivate(f.ctx, "a", true))
	p, err = f.e.ReceiptsPrivate(f.ctx, "a")
	require.NoError(t, err)
	assert.True(t, p, "the cache follows the setting")
	assert.Equal(t, gets, f.st.privacyGets.Load(), "set flags are cached")

	_, err = f.e.ReceiptsPrivate(f.ctx, "")
	assert.ErrorIs(t, err, readreceipt.ErrInvalidParameter)
}

// The flag cache is bounded: with a small cache, many users still get the
// right answer, from the store once evicted.
func TestPrivacyCacheBounded(t *testing.T) {
	f := newOrderFixture(t, readreceipt.WithCacheBytes(1<<20))
	const users = 5000
	for i := 0; i < users; i += 7 {
		require.NoError(t, f.e.SetReceiptsPrivate(f.ctx, fmt.Sprintf("user-%05d", i), true))
	}
	for round := 0; round < 2; round++ {
		for i := 0; i < users; i++ {
			p, err := f.e.ReceiptsPrivate(f.ctx, fmt.Sprintf("user-%05d", i))
			require.NoError(t, err)
			if p != (i%7 == 0) {
				t.Fatalf("user %d: private=%v", i, p)
			}
		}
	}
	// 64 KiB of flags at about 100 bytes each: the second round missed.
	assert.Greater(t, f.st.privacyGets.Load(), int64(users+users/2))
}

// Setting and reading a flag concurrently never leaves a stale cached
// flag: the last setting wins, in the store and in the cache (Check
// compares them).
func TestPrivacyConcurrent(t *testing.T) {
	f := newOrderFixture(t)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if w%2 == 0 {
					assert.NoError(t, f.e.SetReceiptsPrivate(f.ctx, "u", (i+w)%3 == 0))
				} else if _, err := f.e.ReceiptsPrivate(f.ctx, "u"); err != nil {
					assert.NoError(t, err)
				}
			}
		}()
	}
	wg.Wait()
	require.NoError(t, f.e.Check(f.ctx))
	require.NoError(t, f.e.SetReceiptsPrivate(f.ctx, "u", true))
	p, err := f.e.ReceiptsPrivate(f.ctx, "u")
	require.NoError(t, err)
	assert.True(t, p)
}

// A private reader's mark records private reads: others see deliveries,
// not reads; the reader's own state has them. Switching privacy off makes
// the next mark's reads public, and never rewrites the earlier ones.
func TestMarkPrivateReader(t *testing.T) {
	f := newOrderFixture(t)
	f.track("s", "", "m1", "m2")
	require.NoError(t, f.e.SetReceiptsPrivate(f.ctx, "a", true))
	var mu sync.Mutex
	var kinds []readreceipt.EventKind
	unsub := f.e.Subscribe(func(evs []readreceipt.ReceiptEvent) {
		mu.Lock()
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
		}
		mu.Unlock()
	})
	defer unsub()
	res := f.mark("a", readreceipt.MarkRequest{MessageID: "m2"})
	assert.Equal(t, 2, res.Recorded)

	refs := []readreceipt.MessageRef{{Conversation: f.conv, ID: "m1"}, {Conversation: f.conv, ID: "m2"}}
	infos, err := f.e.GetMessageReadReceiptList(f.ctx, readreceipt.Caller{UserID: "s"}, refs)
	require.NoError(t, err)
	for _, in := range infos {
		require.NoError(t, in.Err)
		assert.Equal(t, 0, in.ReadCount, in.MessageID)
		assert.Equal(t, 1, in.DeliveredCount, in.MessageID)
	}
	states, err := f.e.GetMessageReadState(f.ctx, "a", refs)
	require.NoError(t, err)
	for _, st := range states {
		require.NoError(t, st.Err)
		assert.True(t, st.Read && st.Private && st.Delivered, "%+v", st)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(kinds) == 2
	}, 10*time.Second, time.Millisecond)
	mu.Lock()
	assert.Equal(t, []readreceipt.EventKind{readreceipt.EventDelivered, readreceipt.EventDelivered}, kinds)
	mu.Unlock()

	require.NoError(t, f.e.SetReceiptsPrivate(f.ctx, "a", false))
	f.track("s", "", "m3")
	res = f.mark("a", readreceipt.MarkRequest{MessageID: "m3"})
	assert.Equal(t, 1, res.Messages, "m1 and m2 are behind the mark")
	assert.Equal(t, 1, res.Recorded)
	assert.Equal(t, []int{0, 0, 1}, f.readCounts("m1", "m2", "m3"))
}

// Marks racing a dismissal never outlive the group: Check finds no mark of
// a missing group, and a group created again starts with none.
func TestMarkRacesDismiss(t *testing.T) {
	f := newOrderFixture(t)
	for round := 0; round < 20; round++ {
		f.track("s", "T", "m1", "m2")
		var wg sync.WaitGroup
		for _, reader := range []string{"a", "b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.e.MarkConversationRead(f.ctx, reader, readreceipt.MarkRequest{Conversation: f.conv, Thread: "T", Time: f.clock.now()})
				if err != nil && !errors.Is(err, readreceipt.ErrGroupNotFound) {
					t.Errorf("mark: %v", err)
				}
			}()
		}
		require.NoError(t, f.e.DismissGroup(f.ctx, "g"))
		wg.Wait()
		require.NoError(t, f.e.Check(f.ctx))
		assert.Equal(t, 0, countKeys(t, f.st, 'k'), "round %d", round)
		require.NoError(t, f.e.CreateGroup(f.ctx, "g", readreceipt.GroupWork, []string{"s", "a", "b"}))
	}
}
