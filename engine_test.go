package readreceipt_test

import (
	"context"
	"errors"
	"strconv"
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

// openMem opens an engine on a fresh in-memory store and checks its
// invariants when the test ends.
func openMem(t testing.TB, opts ...readreceipt.Option) *readreceipt.Engine {
	t.Helper()
	e, err := readreceipt.Open(memstore.New(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { closeChecked(t, e) })
	return e
}

// openDir opens an engine on a fresh Pebble directory.
func openDir(t testing.TB, opts ...readreceipt.Option) *readreceipt.Engine {
	t.Helper()
	e, err := readreceipt.OpenDir(t.TempDir(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { closeChecked(t, e) })
	return e
}

func closeChecked(t testing.TB, e *readreceipt.Engine) {
	t.Helper()
	if err := e.Check(context.Background()); err != nil && !errors.Is(err, readreceipt.ErrClosed) {
		t.Errorf("check: %v", err)
	}
	assert.NoError(t, e.Close())
}

func userList(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// engines runs fn on the memory store, on Pebble, and on the memory store
// with a cache that keeps nearly every message no call uses packed.
func engines(t *testing.T, fn func(t *testing.T, open func(opts ...readreceipt.Option) *readreceipt.Engine)) {
	t.Run("mem", func(t *testing.T) {
		fn(t, func(opts ...readreceipt.Option) *readreceipt.Engine { return openMem(t, opts...) })
	})
	t.Run("pebble", func(t *testing.T) {
		fn(t, func(opts ...readreceipt.Option) *readreceipt.Engine { return openDir(t, opts...) })
	})
	t.Run("mem-packed", func(t *testing.T) {
		fn(t, func(opts ...readreceipt.Option) *readreceipt.Engine {
			return openMem(t, append([]readreceipt.Option{readreceipt.WithCacheBytes(readreceipt.PackingCache)}, opts...)...)
		})
	})
}

// Many goroutines send the same receipts at once: each reader counts once
// and the sender gets exactly one event per reader.
func TestConcurrentReceiptsCountOnce(t *testing.T) {
	engines(t, func(t *testing.T, open func(...readreceipt.Option) *readreceipt.Engine) {
		ctx := context.Background()
		e := open()
		members := userList("u", 300)
		require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, members))
		msgs := []readreceipt.MessageRef{}
		for i := 0; i < 3; i++ {
			m := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m" + strconv.Itoa(i), Sender: "u0"}
			require.NoError(t, e.TrackMessage(ctx, m))
			msgs = append(msgs, m.Ref())
		}
		var events atomic.Int64
		perReader := make([]atomic.Int64, len(members))
		e.Subscribe(func(evs []readreceipt.ReceiptEvent) {
			events.Add(int64(len(evs)))
			for _, ev := range evs {
				i, _ := strconv.Atoi(ev.Reader[1:])
				perReader[i].Add(1)
				assert.Equal(t, len(members)-1, ev.ReadCount+ev.UnreadCount)
			}
		})
		var recorded atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 1; i < len(members); i++ {
					r := members[(i*7+w)%(len(members)-1)+1]
					res, err := e.SendMessageReadReceipt(ctx, r, msgs)
					if !assert.NoError(t, err) {
						return
					}
					for _, x := range res {
						assert.NoError(t, x.Err)
						if x.Recorded {
							recorded.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		want := int64(len(msgs) * (len(members) - 1))
		assert.Equal(t, want, recorded.Load(), "each receipt recorded exactly once")
		assert.Equal(t, want, events.Load(), "one event per recorded receipt")
		for i := 1; i < len(members); i++ {
			assert.Equal(t, int64(len(msgs)), perReader[i].Load(), "events for reader %d", i)
		}
		infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("u0"), msgs)
		require.NoError(t, err)
		for _, in := range infos {
			assert.Equal(t, len(members)-1, in.ReadCount)
			assert.Equal(t, 0, in.UnreadCount)
		}
		require.NoError(t, e.Check(ctx))
	})
}

// Membership changes, tracking, receipts and queries run at once; the
// invariants hold throughout and at the end.
func TestConcurrentMixedCalls(t *testing.T) {
	engines(t, func(t *testing.T, open func(...readreceipt.Option) *readreceipt.Engine) {
		ctx := context.Background()
		e := open()
		require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, userList("u", 50)))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var tracked atomic.Int64
		wg.Add(1)
		go func() { // joins and leaves
			defer wg.Done()
			for i := 0; i < 40; i++ {
				assert.NoError(t, e.AddGroupMembers(ctx, "g", []string{"n" + strconv.Itoa(i)}))
				assert.NoError(t, e.RemoveGroupMembers(ctx, "g", []string{"u" + strconv.Itoa(i)}))
			}
		}()
		wg.Add(1)
		go func() { // tracking
			defer wg.Done()
			for i := 0; i < 60; i++ {
				err := e.TrackMessage(ctx, readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m" + strconv.Itoa(i), Sender: "u49"})
				assert.NoError(t, err)
				tracked.Store(int64(i + 1))
			}
		}()
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() { // receipts and queries
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					n := tracked.Load()
					if n == 0 {
						continue
					}
					ref := readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: "m" + strconv.Itoa(i%int(n))}
					reader := []string{"u", "n"}[i%2] + strconv.Itoa((i*13+w)%50)
					res, err := e.SendMessageReadReceipt(ctx, reader, []readreceipt.MessageRef{ref})
					assert.NoError(t, err)
					if err == nil && res[0].Err != nil && reader != "u49" {
						assert.ErrorIs(t, res[0].Err, readreceipt.ErrNotRecipient)
					}
					infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{ref})
					if assert.NoError(t, err) && assert.NoError(t, infos[0].Err) {
						assert.GreaterOrEqual(t, infos[0].UnreadCount, 0)
					}
					_, err = e.GetGroupMessageReadMemberList(ctx, readreceipt.AsAdmin(), readreceipt.MemberListRequest{Message: ref, Filter: readreceipt.FilterUnread, Count: 20})
					assert.NoError(t, err)
				}
			}()
		}
		for tracked.Load() < 60 {
			runtimeGosched()
		}
		close(stop)
		wg.Wait()
		require.NoError(t, e.Check(ctx))
	})
}

// Counts from GetMessageReadReceiptList always agree with the member lists.
func TestCountsAgreeWithMemberLists(t *testing.T) {
	ctx := context.Background()
	e := openMem(t, readreceipt.WithMaxPageSize(7))
	members := userList("u", 40)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, members))
	ref := readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: "m"}
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "u3"}))
	for i := 0; i < 40; i += 3 {
		_, err := e.SendMessageReadReceipt(ctx, members[i], []readreceipt.MessageRef{ref})
		require.NoError(t, err)
		walk := func(f readreceipt.MemberFilter) []string {
			var all []string
			req := readreceipt.MemberListRequest{Message: ref, Filter: f, Count: 7}
			for {
				p, err := e.GetGroupMessageReadMemberList(ctx, readreceipt.AsUser("u3"), req)
				require.NoError(t, err)
				all = append(all, p.ReadUserIDList...)
				all = append(all, p.UnreadUserIDList...)
				if p.IsCompleted {
					return all
				}
				req.Cursor = p.Cursor
			}
		}
		read, unread := walk(readreceipt.FilterRead), walk(readreceipt.FilterUnread)
		infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("u3"), []readreceipt.MessageRef{ref})
		require.NoError(t, err)
		assert.Len(t, read, infos[0].ReadCount)
		assert.Len(t, unread, infos[0].UnreadCount)
		assert.Equal(t, 39, len(read)+len(unread))
		assert.NotContains(t, append(read, unread...), "u3", "the sender is never listed")
	}
}

// Calls racing with Close either finish or fail with ErrClosed; none
// panics and Close waits for the ones in progress.
// TestCloseWhileBusy: Close waits for the calls in progress, which finish
// and are durable, and every call after it fails with ErrClosed. A receipt
// call is held inside its synced write while Close runs: Close must not
// return before the held call has, and the receipt it acknowledged must be
// in the store.
func TestCloseWhileBusy(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	st := &holdStore{Store: mem}
	e, err := readreceipt.Open(st, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r"}))
	msg := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m", Sender: "s"}
	require.NoError(t, e.TrackMessage(ctx, msg))

	st.arm()
	type outcome struct {
		res []readreceipt.ReceiptResult
		err error
	}
	call := make(chan outcome, 1)
	go func() {
		res, err := e.SendMessageReadReceipt(ctx, "r", []readreceipt.MessageRef{msg.Ref()})
		call <- outcome{res, err}
	}()
	<-st.held

	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	// A Close that does not wait returns at once; one that waits cannot
	// return until the write is let go. Give it a moment to show which it
	// is (a slow machine only makes a broken Close harder to catch, never
	// a correct one fail).
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a receipt call's write was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	st.release <- nil
	out := <-call
	require.NoError(t, out.err)
	require.True(t, out.res[0].Recorded)
	require.NoError(t, <-closed)
	_, err = e.SendMessageReadReceipt(ctx, "r", []readreceipt.MessageRef{msg.Ref()})
	require.ErrorIs(t, err, readreceipt.ErrClosed)

	// The acknowledged receipt is in the store: a new engine on it sees it.
	e2, err := readreceipt.Open(mem, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	defer e2.Close()
	infos, err := e2.GetMessageReadReceiptList(ctx, readreceipt.AsUser("s"), []readreceipt.MessageRef{msg.Ref()})
	require.NoError(t, err)
	require.Equal(t, 1, infos[0].ReadCount)
}

// A canceled context fails a call before it records anything.
func TestCanceledContextRecordsNothing(t *testing.T) {
	e := openMem(t)
	ctx := context.Background()
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r"}))
	ref := readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: "m"}
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "s"}))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := e.SendMessageReadReceipt(canceled, "r", []readreceipt.MessageRef{ref})
	require.ErrorIs(t, err, context.Canceled)
	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("s"), []readreceipt.MessageRef{ref})
	require.NoError(t, err)
	assert.Equal(t, 0, infos[0].ReadCount)
	res, err := e.SendMessageReadReceipt(ctx, "r", []readreceipt.MessageRef{ref})
	require.NoError(t, err)
	assert.True(t, res[0].Recorded, "the canceled call left no pending state behind")
}

func TestOptionsRejectBadValues(t *testing.T) {
	for name, opt := range map[string]readreceipt.Option{
		"negative retention":  readreceipt.WithRetention(-1),
		"zero messages":       readreceipt.WithMaxMessagesPerCall(0),
		"zero query messages": readreceipt.WithMaxQueryMessages(0),
		"zero page":           readreceipt.WithMaxPageSize(0),
		"id length 256":       readreceipt.WithMaxIDLength(256),
		"unknown group type":  readreceipt.WithGroupTypes(readreceipt.GroupType(9)),
		"unknown access":      readreceipt.WithQueryAccess(readreceipt.QueryAccess(5)),
		"nil clock":           readreceipt.WithClock(nil),
		"zero cache":          readreceipt.WithCacheBytes(0),
		"negative sweep":      readreceipt.WithSweepInterval(-1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readreceipt.Open(memstore.New(), opt)
			require.Error(t, err)
			assert.ErrorIs(t, err, readreceipt.ErrInvalidParameter)
			var re *readreceipt.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, readreceipt.CodeInvalidParameter, re.Code)
		})
	}
}

// A message list whose later entry has an unknown conversation type is bad
// input, even when its users match the first entry's.
func TestUnknownConversationTypeInList(t *testing.T) {
	ctx := context.Background()
	e := openMem(t)
	conv := readreceipt.C2C("a", "b")
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: conv, ID: "m", Sender: "a"}))
	odd := conv
	odd.Type = 7
	_, err := e.SendMessageReadReceipt(ctx, "b", []readreceipt.MessageRef{{Conversation: conv, ID: "m"}, {Conversation: odd, ID: "m"}})
	assert.ErrorIs(t, err, readreceipt.ErrInvalidParameter)
	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("a"), []readreceipt.MessageRef{{Conversation: conv, ID: "m"}})
	require.NoError(t, err)
	assert.False(t, infos[0].IsPeerRead, "nothing recorded")
}

// Membership snapshots kept only for a deleted message are reclaimed by the
// sweep, even when the engine restarted in between.
func TestSnapshotsReclaimedAcrossRestart(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	chunks := func() int {
		n := 0
		require.NoError(t, st.Scan(ctx, []byte("g\x01g"), []byte("g\x01h"), func(k, _ []byte) bool {
			if len(k) > 3 && k[3] == 'c' {
				n++
			}
			return true
		}))
		return n
	}
	e, err := readreceipt.Open(st, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "a"}))
	ref := readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: "m"}
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "s"}))
	require.NoError(t, e.AddGroupMembers(ctx, "g", []string{"b"}))
	assert.Equal(t, 2, chunks(), "the message keeps the snapshot it was tracked at")
	require.NoError(t, e.AddGroupMembers(ctx, "g", []string{"c"}))
	assert.Equal(t, 2, chunks(), "a snapshot no message uses is dropped at once")
	require.NoError(t, e.DeleteMessage(ctx, ref))
	require.NoError(t, e.Close())

	e, err = readreceipt.Open(st, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	defer closeChecked(t, e)
	_, err = e.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, chunks(), "only the current snapshot is left")
	g, err := e.GetGroup(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, 4, g.Members)
}

// countingStore counts the readers-chunk writes that reach a store: merge
// deltas, and whole values (Set).
type countingStore struct {
	store.Store
	merges, sets atomic.Int64
}

func (c *countingStore) Write(ctx context.Context, b *store.Batch, o store.WriteOptions) error {
	for _, op := range b.Ops() {
		// Reader chunk keys are the only message keys whose values are sets
		// (the receipt log's keys start with 0).
		if op.Key[0] != 'm' || len(op.Value) == 0 {
			continue
		}
		switch {
		case op.Kind == store.OpMerge && op.Value[0] == 'l':
			c.merges.Add(1)
		case op.Kind == store.OpSet && (op.Value[0] == 's' || op.Value[0] == 'b'):
			c.sets.Add(1)
		}
	}
	return c.Store.Write(ctx, b, o)
}

// A message that takes many receipts has its readers written whole every
// so often, so that a cold read never folds more than about a thousand
// deltas; counts and lists stay exact through it, and across a reopen.
func TestHotMessageCollapsesDeltas(t *testing.T) {
	// Rounds of 32 receipts from 4 goroutines, a fold after each round,
	// and a collapse every 16 deltas: about 94 folds, 5 collapses.
	defer readreceipt.SetCollapseEvery(16)()
	ctx := context.Background()
	mem := memstore.New()
	cs := &countingStore{Store: mem}
	e, err := readreceipt.Open(cs, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	members := userList("u", 3000)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupPublic, members))
	ref := readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: "hot"}
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "u0"}))
	const round = 32
	for start := 1; start < len(members); start += round {
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := start + w; i < min(start+round, len(members)); i += 4 {
					_, err := e.SendMessageReadReceipt(ctx, members[i], []readreceipt.MessageRef{ref})
					assert.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		require.NoError(t, readreceipt.FoldReceiptLog(e))
	}
	// Folds add up the receipts waiting in the log: far fewer deltas than
	// receipts reach the message's keys (the background folds may add a
	// few).
	rounds := int64((len(members) - 2 + round) / round)
	assert.Greater(t, cs.merges.Load(), int64(0))
	assert.LessOrEqual(t, cs.merges.Load(), 2*rounds, "deltas for %d receipts", len(members)-1)
	assert.GreaterOrEqual(t, cs.sets.Load(), int64(2), "collapsed at least twice in %d receipts", len(members)-1)
	require.NoError(t, e.Check(ctx))
	require.NoError(t, e.Close())

	e, err = readreceipt.Open(mem, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	defer closeChecked(t, e)
	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("u0"), []readreceipt.MessageRef{ref})
	require.NoError(t, err)
	assert.Equal(t, len(members)-1, infos[0].ReadCount)
	assert.Equal(t, 0, infos[0].UnreadCount)
}

// Receipt calls naming several messages, in different orders, from many
// goroutines, while those messages collapse every few receipts: no call
// waits forever (a collapse waits for pending receipts, and a call never
// waits for a collapse while holding any), and every count stays exact.
func TestCollapseUnderMultiMessageCalls(t *testing.T) {
	defer readreceipt.SetCollapseEvery(3)()
	engines(t, func(t *testing.T, open func(...readreceipt.Option) *readreceipt.Engine) {
		ctx := context.Background()
		e := open()
		members := userList("u", 200)
		require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, members))
		var refs []readreceipt.MessageRef
		for i := 0; i < 5; i++ {
			m := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m" + strconv.Itoa(i), Sender: "u0"}
			require.NoError(t, e.TrackMessage(ctx, m))
			refs = append(refs, m.Ref())
		}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 1; i < len(members); i++ {
					// Each worker names the messages in its own rotation.
					batch := append(append([]readreceipt.MessageRef{}, refs[w%5:]...), refs[:w%5]...)
					_, err := e.SendMessageReadReceipt(ctx, members[(i+w*25)%199+1], batch)
					assert.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), refs)
		require.NoError(t, err)
		for _, in := range infos {
			assert.Equal(t, 199, in.ReadCount, in.MessageID)
		}
		require.NoError(t, e.Check(ctx))
	})
}

// TestMemberPagesAfterJoins pages a message's unread members (which caches
// the user IDs of the group's first indexes), adds members, and pages a
// later message: the joiners, whose indexes fall in the cached block, are
// listed by name, and the earlier message still lists only its recipients.
func TestMemberPagesAfterJoins(t *testing.T) {
	ctx := context.Background()
	e := openMem(t)
	g := readreceipt.Group("g")
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "a", "b"}))
	unread := func(id string) []string {
		t.Helper()
		var all []string
		req := readreceipt.MemberListRequest{Message: readreceipt.MessageRef{Conversation: g, ID: id}, Filter: readreceipt.FilterUnread, Count: 2}
		for {
			p, err := e.GetGroupMessageReadMemberList(ctx, readreceipt.AsAdmin(), req)
			require.NoError(t, err)
			all = append(all, p.UnreadUserIDList...)
			if p.IsCompleted {
				return all
			}
			req.Cursor = p.Cursor
		}
	}
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: g, ID: "m1", Sender: "s"}))
	assert.Equal(t, []string{"a", "b"}, unread("m1"))
	require.NoError(t, e.AddGroupMembers(ctx, "g", []string{"c", "d"}))
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: g, ID: "m2", Sender: "s"}))
	assert.Equal(t, []string{"a", "b", "c", "d"}, unread("m2"))
	assert.Equal(t, []string{"a", "b"}, unread("m1"))
	require.NoError(t, e.DismissGroup(ctx, "g"))
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "x", "y"}))
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: g, ID: "m3", Sender: "s"}))
	assert.Equal(t, []string{"x", "y"}, unread("m3"), "a re-created group must not see the old one's names")
}

// A store written by an engine of another schema version is refused at
// Open, untouched, rather than misread.
func TestOpenRefusesOtherSchemaVersion(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	var b store.Batch
	b.Set([]byte{0, 'v'}, []byte{1})
	require.NoError(t, st.Write(ctx, &b, store.WriteOptions{}))
	_, err := readreceipt.Open(st)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "schema version")
	vals, err := st.Get(ctx, [][]byte{{0, 'v'}, {0, 's'}})
	require.NoError(t, err)
	assert.Equal(t, []byte{1}, vals[0], "the version is left alone")
	assert.Nil(t, vals[1], "nothing was written")
}

// TestOneEnginePerStore: a second engine over the state of an open one is
// refused, not allowed to keep a diverging copy of it; once the first is
// closed the store can be opened again.
func TestOneEnginePerStore(t *testing.T) {
	st := memstore.New()
	e1, err := readreceipt.Open(st)
	require.NoError(t, err)
	_, err = readreceipt.Open(st)
	require.ErrorIs(t, err, readreceipt.ErrInvalidParameter)
	require.NoError(t, e1.Close())
	e2, err := readreceipt.Open(st)
	require.NoError(t, err)
	require.NoError(t, e2.Close())

	dir := t.TempDir()
	d1, err := readreceipt.OpenDir(dir)
	require.NoError(t, err)
	defer d1.Close()
	_, err = readreceipt.OpenDir(dir)
	require.Error(t, err, "a second engine on the same directory")
}
