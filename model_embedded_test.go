package readreceipt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tests of the embedded backend's receipt model (model.go): deliveries,
// private reads, dn, delivered pages and read times. Privacy settings are
// another area's; private reads are recorded here through the backend's
// receipts in modeReadPrivate, as SendMessageReadReceipt does for a user
// whose receipts are private.

var bgc = context.Background()

func modelOpen(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	e, err := Open(memstore.New(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { modelClose(t, e) })
	return e
}

func modelClose(t testing.TB, e *Engine) {
	t.Helper()
	if err := e.Check(bgc); err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("check: %v", err)
	}
	_ = e.Close()
}

func members(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// record sends one receipt of mode through the backend and returns its
// result and events.
func record(t testing.TB, e *Engine, mode receiptMode, reader string, refs ...MessageRef) ([]ReceiptResult, []ReceiptEvent) {
	t.Helper()
	res, evs, err := e.be.receipts(bgc, refs[0].Conversation, reader, refs, mode)
	require.NoError(t, err)
	return res, evs
}

func info(t testing.TB, e *Engine, ref MessageRef) ReceiptInfo {
	t.Helper()
	out, err := e.GetMessageReadReceiptList(bgc, Caller{Admin: true}, []MessageRef{ref})
	require.NoError(t, err)
	require.NoError(t, out[0].Err)
	return out[0]
}

func state(t testing.TB, e *Engine, user string, ref MessageRef) ReadState {
	t.Helper()
	out, err := e.GetMessageReadState(bgc, user, []MessageRef{ref})
	require.NoError(t, err)
	return out[0]
}

// walk lists every member of filter by pages of count.
func walk(t testing.TB, e *Engine, ref MessageRef, filter MemberFilter, count int) []string {
	t.Helper()
	var all []string
	cursor := ""
	for range 100000 {
		p, err := e.GetGroupMessageReadMemberList(bgc, Caller{Admin: true}, MemberListRequest{Message: ref, Filter: filter, Cursor: cursor, Count: count})
		require.NoError(t, err)
		got := [][]string{p.ReadUserIDList, p.UnreadUserIDList, p.DeliveredUserIDList, p.UndeliveredUserIDList}
		for f, l := range got {
			if MemberFilter(f) != filter {
				require.Empty(t, l, "filter %d filled list %d", filter, f)
			}
		}
		all = append(all, got[filter]...)
		if p.IsCompleted {
			return all
		}
		cursor = p.Cursor
	}
	t.Fatal("no end of pages")
	return nil
}

// step is one receipt of a table test and what it must give.
type step struct {
	mode     receiptMode
	reader   string
	recorded bool
	events   []EventKind
	// counts afterwards
	read, delivered int
}

var (
	read    = modeRead
	private = modeReadPrivate
	deliver = modeDeliver
)

func TestModelModes(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
		// the reader's own state at the end
		want ReadState
	}{
		{"deliver then read: delivered stays, dn moves to n", []step{
			{deliver, "u1", true, []EventKind{EventDelivered}, 0, 1},
			{read, "u1", true, []EventKind{EventRead}, 1, 1},
			{read, "u1", false, nil, 1, 1},
		}, ReadState{Read: true, Delivered: true}},
		{"deliver twice", []step{
			{deliver, "u1", true, []EventKind{EventDelivered}, 0, 1},
			{deliver, "u1", false, nil, 0, 1},
		}, ReadState{Delivered: true}},
		{"read then deliver", []step{
			{read, "u1", true, []EventKind{EventRead}, 1, 1},
			{deliver, "u1", false, nil, 1, 1},
			{private, "u1", false, nil, 1, 1},
		}, ReadState{Read: true, Delivered: true}},
		{"private read: delivered only", []step{
			{private, "u1", true, []EventKind{EventDelivered}, 0, 1},
			{private, "u1", false, nil, 0, 1},
			{deliver, "u1", false, nil, 0, 1},
		}, ReadState{Read: true, Private: true, Delivered: true}},
		{"deliver then private read: no event", []step{
			{deliver, "u1", true, []EventKind{EventDelivered}, 0, 1},
			{private, "u1", true, nil, 0, 1},
		}, ReadState{Read: true, Private: true, Delivered: true}},
		{"private then public read", []step{
			{private, "u1", true, []EventKind{EventDelivered}, 0, 1},
			{read, "u1", true, []EventKind{EventRead}, 1, 1},
			{read, "u1", false, nil, 1, 1},
		}, ReadState{Read: true, Delivered: true}},
	}
	convs := map[string]func(e *Engine) MessageRef{
		"group": func(e *Engine) MessageRef {
			require.NoError(t, e.CreateGroup(bgc, "g", GroupWork, members("u", 5)))
			ref := MessageRef{Conversation: Group("g"), ID: "m"}
			require.NoError(t, e.TrackMessage(bgc, Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "u0"}))
			return ref
		},
		"c2c": func(e *Engine) MessageRef {
			ref := MessageRef{Conversation: C2C("u0", "u1"), ID: "m"}
			require.NoError(t, e.TrackMessage(bgc, Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "u0"}))
			return ref
		},
	}
	for cname, mk := range convs {
		for _, tc := range cases {
			t.Run(cname+"/"+tc.name, func(t *testing.T) {
				e := modelOpen(t)
				e.Subscribe(func([]ReceiptEvent) {})
				ref := mk(e)
				for i, s := range tc.steps {
					res, evs := record(t, e, s.mode, s.reader, ref)
					require.NoError(t, res[0].Err)
					assert.Equal(t, s.recorded, res[0].Recorded, "step %d", i)
					var kinds []EventKind
					for _, ev := range evs {
						kinds = append(kinds, ev.Kind)
						assert.Equal(t, s.read, ev.ReadCount, "step %d event", i)
						assert.Equal(t, s.delivered, ev.DeliveredCount, "step %d event", i)
					}
					assert.Equal(t, s.events, kinds, "step %d", i)
					in := info(t, e, ref)
					assert.Equal(t, s.read, in.ReadCount, "step %d", i)
					assert.Equal(t, s.delivered, in.DeliveredCount, "step %d", i)
					assert.Equal(t, in.UnreadCount+in.ReadCount, in.DeliveredCount+in.UndeliveredCount)
					if cname == "c2c" {
						assert.Equal(t, s.read > 0, in.IsPeerRead)
						assert.Equal(t, s.delivered > 0, in.IsPeerDelivered)
					}
				}
				got := state(t, e, "u1", ref)
				tc.want.MessageID = "m"
				if cname == "c2c" && got.Read && !got.Private {
					assert.False(t, got.ReadTime.IsZero())
					got.ReadTime = time.Time{}
				}
				assert.Equal(t, tc.want, got)
				if cname == "group" {
					// Private reads are in nobody's lists but the reader's.
					wantRead := []string(nil)
					if tc.want.Read && !tc.want.Private {
						wantRead = []string{"u1"}
					}
					assert.Equal(t, wantRead, walk(t, e, ref, FilterRead, 10))
					assert.Equal(t, []string{"u1"}, walk(t, e, ref, FilterDelivered, 10))
					assert.Equal(t, []string{"u2", "u3", "u4"}, walk(t, e, ref, FilterUndelivered, 10))
					unread := []string{"u2", "u3", "u4"}
					if wantRead == nil {
						unread = []string{"u1", "u2", "u3", "u4"}
					}
					assert.Equal(t, unread, walk(t, e, ref, FilterUnread, 10))
					// Others see nothing of the private state.
					assert.Equal(t, ReadState{MessageID: "m"}, state(t, e, "u2", ref))
				}
				require.NoError(t, e.Check(bgc))
			})
		}
	}
}

func TestModelReadStateErrors(t *testing.T) {
	e := modelOpen(t)
	require.NoError(t, e.CreateGroup(bgc, "g", GroupWork, members("u", 3)))
	g := Group("g")
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: g, ID: "m", Sender: "u0"}))
	out, err := e.GetMessageReadState(bgc, "u0", []MessageRef{{g, "m"}, {g, "nope"}})
	require.NoError(t, err)
	assert.ErrorIs(t, out[0].Err, ErrOwnMessage)
	assert.ErrorIs(t, out[1].Err, ErrReceiptNotFound)
	out, err = e.GetMessageReadState(bgc, "stranger", []MessageRef{{g, "m"}})
	require.NoError(t, err)
	assert.ErrorIs(t, out[0].Err, ErrNotRecipient)
	res, err := e.SendMessageDeliveryReceipt(bgc, "u1", []MessageRef{{g, "m"}, {g, "m"}, {g, "nope"}})
	require.NoError(t, err)
	assert.True(t, res[0].Recorded)
	assert.False(t, res[1].Recorded)
	assert.ErrorIs(t, res[2].Err, ErrReceiptNotFound)
	assert.Equal(t, 1, info(t, e, MessageRef{g, "m"}).DeliveredCount)

	// A deleted message takes its D along.
	require.NoError(t, e.DeleteMessage(bgc, MessageRef{g, "m"}))
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: g, ID: "m", Sender: "u0"}))
	in := info(t, e, MessageRef{g, "m"})
	assert.Equal(t, 0, in.DeliveredCount)
	assert.Equal(t, ReadState{MessageID: "m"}, state(t, e, "u1", MessageRef{g, "m"}))
}

// bigGroup creates group gid of n members u0.. and tracks message m sent by
// u0.
func bigGroup(t testing.TB, e *Engine, gid string, n int) MessageRef {
	t.Helper()
	all := members("u", n)
	for i := 0; i < n; i += 50000 {
		batch := all[i:min(i+50000, n)]
		if i == 0 {
			require.NoError(t, e.CreateGroup(bgc, gid, GroupWork, batch))
		} else {
			require.NoError(t, e.AddGroupMembers(bgc, gid, batch))
		}
	}
	ref := MessageRef{Conversation: Group(gid), ID: "m"}
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "u0"}))
	return ref
}

func TestModelDeliveredPagesAcrossChunks(t *testing.T) {
	restore := SetCollapseEvery(7) // collapses with D and P loaded, too
	defer restore()
	mem := memstore.New()
	e, err := Open(nopClose{mem}, WithMaxPageSize(5000), WithCacheBytes(1<<30))
	require.NoError(t, err)
	const n = 70000
	ref := bigGroup(t, e, "big", n)
	readers := []int{3, 10, 65535, 65536, 65540, 69999}
	delivered := []int{1, 2, 3, 65535, 65537, 65538, 69998}
	privates := []int{5, 65539, 65538}
	for _, i := range delivered {
		record(t, e, deliver, "u"+strconv.Itoa(i), ref)
	}
	for _, i := range privates {
		record(t, e, private, "u"+strconv.Itoa(i), ref)
	}
	for _, i := range readers {
		record(t, e, read, "u"+strconv.Itoa(i), ref)
	}
	names := func(idxs ...[]int) []string {
		var all []int
		for _, l := range idxs {
			all = append(all, l...)
		}
		slices.Sort(all)
		all = slices.Compact(all)
		out := make([]string, len(all))
		for i, x := range all {
			out[i] = "u" + strconv.Itoa(x)
		}
		return out
	}
	wantDelivered := names(readers, delivered, privates)
	in := info(t, e, ref)
	assert.Equal(t, len(readers), in.ReadCount)
	assert.Equal(t, len(wantDelivered), in.DeliveredCount)
	assert.Equal(t, n-1-len(wantDelivered), in.UndeliveredCount)
	for _, count := range []int{1, 3, 100} {
		assert.Equal(t, wantDelivered, walk(t, e, ref, FilterDelivered, count), "count %d", count)
		assert.Equal(t, names(readers), walk(t, e, ref, FilterRead, count), "count %d", count)
	}
	und := walk(t, e, ref, FilterUndelivered, 5000)
	assert.Len(t, und, n-1-len(wantDelivered))
	for _, u := range append(wantDelivered, "u0") {
		assert.NotContains(t, und, u)
	}
	assert.Len(t, walk(t, e, ref, FilterUnread, 5000), n-1-len(readers))
	for _, i := range privates {
		st := state(t, e, "u"+strconv.Itoa(i), ref)
		assert.Equal(t, !slices.Contains(readers, i), st.Private, i)
		assert.True(t, st.Read && st.Delivered, i)
	}
	require.NoError(t, e.Check(bgc))

	// The same, read cold: a new engine on the same store loads every
	// chunk of D and P from their keys.
	require.NoError(t, e.Close())
	e2, err := Open(mem, WithMaxPageSize(5000))
	require.NoError(t, err)
	defer modelClose(t, e2)
	in2 := info(t, e2, ref)
	assert.Equal(t, in, in2)
	record(t, e2, read, "u65537", ref) // in D: dn moves to n
	in2 = info(t, e2, ref)
	assert.Equal(t, len(readers)+1, in2.ReadCount)
	assert.Equal(t, len(wantDelivered), in2.DeliveredCount)
	assert.Equal(t, wantDelivered, walk(t, e2, ref, FilterDelivered, 2))
	res, _ := record(t, e2, deliver, "u65538", ref)
	assert.False(t, res[0].Recorded)
	require.NoError(t, e2.Check(bgc))
}

// nopClose lets two engines share one store in turn.
type nopClose struct{ store.Store }

func (nopClose) Close() error { return nil }

func TestModelReadTimes(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("readTimes=", on), func(t *testing.T) {
			var mu sync.Mutex
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			e := modelOpen(t, WithReadTimes(on), WithClock(clock))
			require.NoError(t, e.CreateGroup(bgc, "g", GroupWork, members("u", 6)))
			g := MessageRef{Conversation: Group("g"), ID: "m"}
			require.NoError(t, e.TrackMessage(bgc, Message{Conversation: g.Conversation, ID: g.ID, Sender: "u0"}))
			c := MessageRef{Conversation: C2C("u0", "u1"), ID: "c"}
			require.NoError(t, e.TrackMessage(bgc, Message{Conversation: c.Conversation, ID: c.ID, Sender: "u0"}))
			t0 := clock()
			advance(10 * time.Second)
			record(t, e, read, "u3", g)
			record(t, e, private, "u1", c)
			advance(time.Hour)
			record(t, e, private, "u2", g)
			record(t, e, deliver, "u4", g)
			advance(time.Minute)
			record(t, e, read, "u1", g)
			record(t, e, read, "u2", g) // after a private read: a public entry too
			record(t, e, read, "u1", c)
			at := func(d time.Duration) time.Time {
				if !on {
					return time.Time{}
				}
				return t0.Add(d)
			}
			p, err := e.GetGroupMessageReadMemberList(bgc, Caller{Admin: true}, MemberListRequest{Message: g, Filter: FilterRead, Count: 10})
			require.NoError(t, err)
			assert.Equal(t, []string{"u1", "u2", "u3"}, p.ReadUserIDList)
			if on {
				assert.Equal(t, []time.Time{at(10*time.Second + time.Hour + time.Minute), at(10*time.Second + time.Hour + time.Minute), at(10 * time.Second)}, p.ReadTimes)
			} else {
				assert.Nil(t, p.ReadTimes)
			}
			rt, err := e.GetMessageReadTimes(bgc, Caller{UserID: "u0"}, g, []string{"u3", "u2", "u4", "u5", "stranger"})
			require.NoError(t, err)
			assert.Equal(t, []MemberReadTime{
				{UserID: "u3", Read: true, ReadTime: at(10 * time.Second)},
				{UserID: "u2", Read: true, ReadTime: at(10*time.Second + time.Hour + time.Minute)},
				{UserID: "u4"}, {UserID: "u5"}, {UserID: "stranger"},
			}, rt)
			_, err = e.GetMessageReadTimes(bgc, Caller{UserID: "stranger"}, g, []string{"u3"})
			assert.ErrorIs(t, err, ErrPermissionDenied)
			_, err = e.GetMessageReadTimes(bgc, Caller{UserID: "u0"}, MessageRef{Conversation: g.Conversation, ID: "nope"}, []string{"u3"})
			assert.ErrorIs(t, err, ErrReceiptNotFound)

			// Own state: the private read's time for the private reader.
			record(t, e, private, "u5", g)
			st := state(t, e, "u5", g)
			assert.Equal(t, ReadState{MessageID: "m", Read: true, Private: true, Delivered: true, ReadTime: at(10*time.Second + time.Hour + time.Minute)}, st)
			assert.Equal(t, at(10*time.Second+time.Hour+time.Minute), state(t, e, "u2", g).ReadTime)
			// C2C: the public read time is readAt, on or off.
			assert.Equal(t, t0.Add(10*time.Second+time.Hour+time.Minute), state(t, e, "u1", c).ReadTime)
			crt, err := e.GetMessageReadTimes(bgc, Caller{UserID: "u0"}, c, []string{"u1", "u0"})
			require.NoError(t, err)
			assert.Equal(t, []MemberReadTime{{UserID: "u1", Read: true, ReadTime: t0.Add(10*time.Second + time.Hour + time.Minute)}, {UserID: "u0"}}, crt)
			require.NoError(t, e.Check(bgc))
		})
	}
}

func TestModelReopenKeepsDeliveries(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	opts := []Option{WithReadTimes(true), WithClock(func() time.Time { return now }), WithMaxPageSize(1000)}
	e, err := OpenDir(dir, opts...)
	require.NoError(t, err)
	small := MessageRef{Conversation: Group("s"), ID: "m"}
	require.NoError(t, e.CreateGroup(bgc, "s", GroupWork, members("u", 10)))
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: small.Conversation, ID: "m", Sender: "u0"}))
	big := bigGroup(t, e, "b", 65600)
	c := MessageRef{Conversation: C2C("u0", "u1"), ID: "c"}
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: c.Conversation, ID: "c", Sender: "u0"}))
	c2 := MessageRef{Conversation: C2C("u0", "u1"), ID: "c2"}
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: c2.Conversation, ID: "c2", Sender: "u0"}))
	now = now.Add(time.Minute)
	for _, ref := range []MessageRef{small, big} {
		record(t, e, deliver, "u1", ref)
		record(t, e, deliver, "u2", ref)
		record(t, e, private, "u3", ref)
		record(t, e, read, "u2", ref)
		record(t, e, read, "u4", ref)
	}
	record(t, e, read, "u65599", big)
	record(t, e, deliver, "u65598", big)
	record(t, e, deliver, "u1", c)
	record(t, e, private, "u1", c2)
	snapshot := func(e *Engine) []any {
		var out []any
		for _, ref := range []MessageRef{small, big, c, c2} {
			out = append(out, info(t, e, ref))
			for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
				if ref.Conversation.Type == ConversationC2C && u != "u1" {
					continue
				}
				out = append(out, state(t, e, u, ref))
			}
			if ref.Conversation.Type == ConversationGroup {
				for f := FilterRead; f <= FilterUndelivered; f++ {
					out = append(out, walk(t, e, ref, f, 1000))
				}
				rt, err := e.GetMessageReadTimes(bgc, Caller{Admin: true}, ref, []string{"u2", "u4", "u3"})
				require.NoError(t, err)
				out = append(out, rt)
			}
		}
		return out
	}
	before := snapshot(e)
	require.NoError(t, e.Check(bgc))
	require.NoError(t, e.Close())

	e, err = OpenDir(dir, opts...)
	require.NoError(t, err)
	defer modelClose(t, e)
	assert.Equal(t, before, snapshot(e))
	in := info(t, e, small)
	assert.Equal(t, 2, in.ReadCount)
	assert.Equal(t, 4, in.DeliveredCount)
	in = info(t, e, big)
	assert.Equal(t, 3, in.ReadCount)
	assert.Equal(t, 6, in.DeliveredCount)
	assert.True(t, info(t, e, c).IsPeerDelivered)
	assert.False(t, info(t, e, c).IsPeerRead)
	assert.Equal(t, ReadState{MessageID: "c2", Read: true, Private: true, Delivered: true, ReadTime: now.Truncate(time.Second)}, state(t, e, "u1", c2))
	// The reopened state goes on: deliveries after a reload count once.
	res, _ := record(t, e, deliver, "u1", small)
	assert.False(t, res[0].Recorded)
	record(t, e, read, "u1", big)
	assert.Equal(t, 6, info(t, e, big).DeliveredCount)
	assert.Equal(t, 4, info(t, e, big).ReadCount)
}

// TestModelConcurrentDeliverRead races deliveries, private and public reads
// of the same readers on the same messages (a one-chunk group, one of two
// chunks and a C2C message), then compares counts with a sequential model:
// read = |R|, delivered = |R ∪ D ∪ P|.
func TestModelConcurrentDeliverRead(t *testing.T) {
	restore := SetCollapseEvery(5)
	defer restore()
	e := modelOpen(t, WithCacheBytes(1<<30))
	require.NoError(t, e.CreateGroup(bgc, "s", GroupWork, members("u", 40)))
	small := MessageRef{Conversation: Group("s"), ID: "m"}
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: small.Conversation, ID: "m", Sender: "u0"}))
	big := bigGroup(t, e, "b", 65600)
	c := MessageRef{Conversation: C2C("u0", "u1"), ID: "c"}
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: c.Conversation, ID: "c", Sender: "u0"}))
	events := map[string]map[EventKind]int{}
	e.Subscribe(func([]ReceiptEvent) {}) // so that receipts makes events
	bigReaders := []string{"u1", "u2", "u3", "u65590", "u65591", "u65592", "u65599"}
	smallReaders := members("u", 40)[1:]
	type op struct {
		mode   receiptMode
		reader string
		ref    MessageRef
	}
	var ops []op
	for round := range 3 {
		for _, m := range []receiptMode{deliver, private, read} {
			for _, u := range smallReaders {
				ops = append(ops, op{m, u, small})
			}
			for _, u := range bigReaders {
				ops = append(ops, op{m, u, big})
			}
			ops = append(ops, op{m, "u1", c})
		}
		_ = round
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	// The model: which modes each reader got on each message, by the
	// outcome the engine gave (Recorded), checked against the rules.
	var wg sync.WaitGroup
	work := make(chan op)
	var recMu sync.Mutex
	recorded := map[string]map[receiptMode]int{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				res, evs, err := e.be.receipts(bgc, o.ref.Conversation, o.reader, []MessageRef{o.ref}, o.mode)
				if err != nil {
					t.Error(err)
					continue
				}
				recMu.Lock()
				k := o.ref.Conversation.String() + "/" + o.ref.ID + "/" + o.reader
				if recorded[k] == nil {
					recorded[k] = map[receiptMode]int{}
					events[k] = map[EventKind]int{}
				}
				for _, ev := range evs {
					events[k][ev.Kind]++
				}
				if res[0].Recorded {
					recorded[k][o.mode]++
				}
				recMu.Unlock()
			}
		}()
	}
	for _, o := range ops {
		work <- o
	}
	close(work)
	wg.Wait()
	// Every reader got every mode 3 times: exactly one public read
	// recorded; a delivery only if it came before the reads; private at
	// most once; delivered exactly once (a delivery or the first private
	// read, or only the read).
	for k, by := range recorded {
		assert.Equal(t, 1, by[read], k)
		assert.LessOrEqual(t, by[deliver], 1, k)
		assert.LessOrEqual(t, by[private], 1, k)
		ev := events[k]
		assert.Equal(t, 1, ev[EventRead], k)
		assert.LessOrEqual(t, ev[EventDelivered], 1, k)
		assert.GreaterOrEqual(t, ev[EventDelivered], by[deliver], k)
	}
	in := info(t, e, small)
	assert.Equal(t, len(smallReaders), in.ReadCount)
	assert.Equal(t, len(smallReaders), in.DeliveredCount)
	in = info(t, e, big)
	assert.Equal(t, len(bigReaders), in.ReadCount)
	assert.Equal(t, len(bigReaders), in.DeliveredCount)
	in = info(t, e, c)
	assert.True(t, in.IsPeerRead && in.IsPeerDelivered)
	require.NoError(t, e.Check(bgc))
}

// TestModelConcurrentDeliveries races only deliveries and private reads,
// so that dn ends above 0, and checks dn against the model.
func TestModelConcurrentDeliveries(t *testing.T) {
	restore := SetCollapseEvery(3)
	defer restore()
	e := modelOpen(t)
	require.NoError(t, e.CreateGroup(bgc, "s", GroupWork, members("u", 30)))
	refs := []MessageRef{{Group("s"), "a"}, {Group("s"), "b"}}
	for _, r := range refs {
		require.NoError(t, e.TrackMessage(bgc, Message{Conversation: r.Conversation, ID: r.ID, Sender: "u0"}))
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i < 30; i++ {
				u := "u" + strconv.Itoa(i)
				mode := deliver
				if (i+w)%2 == 0 {
					mode = private
				}
				if _, _, err := e.be.receipts(bgc, refs[0].Conversation, u, refs, mode); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					if _, _, err := e.be.receipts(bgc, refs[0].Conversation, u, refs[1:], read); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, r := range refs {
		in := info(t, e, r)
		assert.Equal(t, 29, in.DeliveredCount)
	}
	assert.Equal(t, 0, info(t, e, refs[0]).ReadCount)
	assert.Equal(t, 9, info(t, e, refs[1]).ReadCount)
	require.NoError(t, e.Check(bgc))
}

// BenchmarkReceiptModes compares read receipts on messages nobody reported
// delivered (the common path, which must cost what it cost before D
// existed) with reads of messages every reader's device reported
// delivered first, and deliveries; then it measures the read-time log's
// bytes per receipt in groups of 200 and of a million members.
func BenchmarkReceiptModes(b *testing.B) {
	const size = 200
	setup := func(b *testing.B, opts ...Option) (*Engine, []string) {
		e, err := Open(memstore.New(), append([]Option{WithCacheBytes(1 << 30)}, opts...)...)
		require.NoError(b, err)
		b.Cleanup(func() { _ = e.Close() })
		users := members("u", size)
		require.NoError(b, e.CreateGroup(bgc, "g", GroupWork, users))
		return e, users[1:]
	}
	// receipts sends b.N receipts of mode over messages of size-1
	// readers each, after pre (if any) on every one of them.
	run := func(b *testing.B, mode receiptMode, pre []receiptMode, opts ...Option) {
		e, readers := setup(b, opts...)
		msgs := b.N/len(readers) + 1
		refs := make([]MessageRef, msgs)
		for i := range refs {
			refs[i] = MessageRef{Conversation: Group("g"), ID: "m" + strconv.Itoa(i)}
			require.NoError(b, e.TrackMessage(bgc, Message{Conversation: refs[i].Conversation, ID: refs[i].ID, Sender: "u0"}))
			for _, p := range pre {
				for _, u := range readers {
					if _, _, err := e.be.receipts(bgc, refs[i].Conversation, u, refs[i:i+1], p); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			ref := refs[i/len(readers)]
			res, _, err := e.be.receipts(bgc, ref.Conversation, readers[i%len(readers)], []MessageRef{ref}, mode)
			if err != nil || !res[0].Recorded {
				b.Fatal(err, res)
			}
		}
	}
	b.Run("read/undelivered", func(b *testing.B) { run(b, modeRead, nil) })
	b.Run("read/delivered", func(b *testing.B) { run(b, modeRead, []receiptMode{modeDeliver}) })
	b.Run("read/undelivered/readtimes", func(b *testing.B) { run(b, modeRead, nil, WithReadTimes(true)) })
	b.Run("deliver", func(b *testing.B) { run(b, modeDeliver, nil) })
	b.Run("private", func(b *testing.B) { run(b, modeReadPrivate, nil) })

	// Read-time log size: reads spread over a day after the message.
	logBytes := func(b *testing.B, e *Engine, clock *benchClock, n, reads int) {
		rng := rand.New(rand.NewPCG(7, 8))
		var bytes, receipts int
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			ref := MessageRef{Conversation: Group("g"), ID: "log" + strconv.Itoa(i)}
			clock.set(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
			require.NoError(b, e.TrackMessage(bgc, Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "u0"}))
			picked := rng.Perm(n - 1)[:reads]
			slices.Sort(picked) // reads come spread over the day, by member
			for k, j := range picked {
				clock.set(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(k) * 24 * time.Hour / time.Duration(reads)))
				res, _, err := e.be.receipts(bgc, ref.Conversation, "u"+strconv.Itoa(j+1), []MessageRef{ref}, modeRead)
				if err != nil || !res[0].Recorded {
					b.Fatal(err, res)
				}
			}
			m := e.be.(*embedded).entries.acquire(messagePrefix(convKey(ref.Conversation), ref.ID))
			log, err := e.be.(*embedded).readLog(bgc, m)
			e.be.(*embedded).entries.release(m)
			require.NoError(b, err)
			bytes += len(log)
			receipts += reads
		}
		b.ReportMetric(float64(bytes)/float64(receipts), "B/receipt")
	}
	// On Pebble, the default store, which folds the appends lazily
	// (memstore folds on every write: a copy of the log per receipt).
	pebble := func(b *testing.B, n int, clock *benchClock) *Engine {
		e, err := OpenDir(b.TempDir(), WithReadTimes(true), WithClock(clock.now), WithCacheBytes(1<<30), WithSyncWrites(false))
		require.NoError(b, err)
		b.Cleanup(func() { _ = e.Close() })
		all := members("u", n)
		for i := 0; i < n; i += 100000 {
			if i == 0 {
				require.NoError(b, e.CreateGroup(bgc, "g", GroupWork, all[:min(n, 100000)]))
			} else {
				require.NoError(b, e.AddGroupMembers(bgc, "g", all[i:min(n, i+100000)]))
			}
		}
		return e
	}
	b.Run("readlog/200", func(b *testing.B) {
		clock := &benchClock{}
		logBytes(b, pebble(b, size, clock), clock, size, size-1)
	})
	b.Run("readlog/1M", func(b *testing.B) {
		clock := &benchClock{}
		logBytes(b, pebble(b, 1_000_000, clock), clock, 1_000_000, 10000)
	})
}

type benchClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *benchClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

func (c *benchClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// countStore counts the store calls and operations the engine makes.
type countStore struct {
	store.Store
	mu                    sync.Mutex
	gets, getKeys, writes int
	logWrites             int      // writes of receipt log records only
	ops                   []string // kind byte of each message key written, but the log's
}

func (c *countStore) Get(ctx context.Context, keys [][]byte) ([][]byte, error) {
	c.mu.Lock()
	c.gets++
	c.getKeys += len(keys)
	c.mu.Unlock()
	return c.Store.Get(ctx, keys)
}

func (c *countStore) Write(ctx context.Context, b *store.Batch, o store.WriteOptions) error {
	c.mu.Lock()
	logOnly := true
	for _, op := range b.Ops() {
		if bytes.HasPrefix(op.Key, keyLogPrefix) {
			continue // the receipt log's records and their deletion by a fold
		}
		logOnly = false
		c.ops = append(c.ops, fmt.Sprintf("%d:%q", op.Kind, op.Key[len(op.Key)-1:]))
	}
	if logOnly {
		c.logWrites++
	} else {
		c.writes++
	}
	c.mu.Unlock()
	return c.Store.Write(ctx, b, o)
}

func (c *countStore) take() (gets, getKeys, writes int, ops []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gets, getKeys, writes, ops = c.gets, c.getKeys, c.writes, c.ops
	c.gets, c.getKeys, c.writes, c.ops = 0, 0, 0, nil
	c.logWrites = 0
	return
}

// recordFolded is record, then a fold of the receipt log: the call wrote
// exactly one log record.
func recordFolded(t testing.TB, e *Engine, cs *countStore, mode receiptMode, reader string, refs ...MessageRef) {
	t.Helper()
	record(t, e, mode, reader, refs...)
	cs.mu.Lock()
	logWrites := cs.logWrites
	cs.mu.Unlock()
	assert.Equal(t, 1, logWrites, "log records written by one call")
	require.NoError(t, e.be.(*embedded).rlog.fold(bgc))
}

// TestModelReadPathCost: a read of a message nobody reported delivered
// makes the store calls and writes the keys it made before D existed, cold
// and warm (the numbers are issue12's, measured with this test); once a
// delivery is recorded, a read of another reader still reads nothing more
// while warm. Each group receipt's first Get here is the new reader's
// member index (group.go caches it).
func TestModelReadPathCost(t *testing.T) {
	cs := &countStore{Store: memstore.New()}
	e, err := Open(cs)
	require.NoError(t, err)
	defer modelClose(t, e)
	require.NoError(t, e.CreateGroup(bgc, "s", GroupWork, members("u", 10)))
	small := MessageRef{Conversation: Group("s"), ID: "m"}
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: small.Conversation, ID: "m", Sender: "u0"}))
	big := bigGroup(t, e, "b", 65600)
	c := MessageRef{Conversation: C2C("u0", "u1"), ID: "c"}
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: c.Conversation, ID: "c", Sender: "u0"}))
	e.be.(*embedded).entries = newEntryTable(1 << 30) // every message cold
	for _, tc := range []struct {
		ref              MessageRef
		coldGets, coldKs int
		ops              []string
	}{
		// index, meta, then readers chunk 0 (with D and P)
		{small, 3, 3, []string{`4:"\x00"`}},
		// index, meta, then the counter (with dn); readers chunk 0 of u1
		{big, 4, 4, []string{`4:"\x00"`, `4:"n"`}},
		// meta, then the counter and the read time
		{c, 2, 3, []string{`4:"n"`, `1:"t"`}},
	} {
		u := "u1"
		cs.take()
		recordFolded(t, e, cs, read, u, tc.ref)
		gets, keys, writes, ops := cs.take()
		assert.Equal(t, []int{tc.coldGets, tc.coldKs, 1}, []int{gets, keys, writes}, tc.ref)
		assert.Equal(t, tc.ops, ops, tc.ref)
		if tc.ref.Conversation.Type == ConversationGroup {
			recordFolded(t, e, cs, read, "u2", tc.ref)
			gets, _, writes, ops = cs.take()
			assert.Equal(t, []int{1, 1}, []int{gets, writes}, "warm %v", tc.ref)
			assert.Equal(t, tc.ops, ops, tc.ref)
		}
	}
	// With a delivery, dn > 0: a read of another reader of the same
	// chunk needs no more reads once the chunk of D is loaded.
	recordFolded(t, e, cs, deliver, "u3", big)
	cs.take()
	recordFolded(t, e, cs, read, "u4", big)
	gets, _, _, ops := cs.take()
	assert.Equal(t, 1, gets) // u4's index
	assert.Equal(t, []string{`4:"\x00"`, `4:"n"`}, ops)
	recordFolded(t, e, cs, read, "u3", big) // dn moves to n in the same counter delta
	_, _, _, ops = cs.take()
	assert.Equal(t, []string{`4:"\x00"`, `4:"n"`}, ops)
	assert.LessOrEqual(t, unsafe.Sizeof(msgEntry{}), uintptr(192), "an entry stays in the 192-byte size class")
}

// TestModelPrivateEndToEnd: through the public API, a user whose receipts
// are private reads: the sender hears of a delivery only, the counts and
// lists show no read, the reader's own state and own events do.
func TestModelPrivateEndToEnd(t *testing.T) {
	e := modelOpen(t, WithReadTimes(true))
	require.NoError(t, e.CreateGroup(bgc, "g", GroupWork, members("u", 4)))
	ref := MessageRef{Conversation: Group("g"), ID: "m"}
	require.NoError(t, e.TrackMessage(bgc, Message{Conversation: ref.Conversation, ID: "m", Sender: "u0"}))
	var mu sync.Mutex
	var kinds []EventKind
	var own []OwnReadEvent
	e.Subscribe(func(evs []ReceiptEvent) {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
		}
	})
	e.SubscribeOwnReads(func(evs []OwnReadEvent) { mu.Lock(); own = append(own, evs...); mu.Unlock() })
	require.NoError(t, e.SetReceiptsPrivate(bgc, "u1", true))
	res, err := e.SendMessageReadReceipt(bgc, "u1", []MessageRef{ref})
	require.NoError(t, err)
	assert.True(t, res[0].Recorded)
	res, err = e.SendMessageReadReceipt(bgc, "u1", []MessageRef{ref})
	require.NoError(t, err)
	assert.False(t, res[0].Recorded)
	in := info(t, e, ref)
	assert.Equal(t, 0, in.ReadCount)
	assert.Equal(t, 1, in.DeliveredCount)
	assert.Empty(t, walk(t, e, ref, FilterRead, 10))
	assert.Equal(t, []string{"u1"}, walk(t, e, ref, FilterDelivered, 10))
	rt, err := e.GetMessageReadTimes(bgc, Caller{UserID: "u0"}, ref, []string{"u1"})
	require.NoError(t, err)
	assert.False(t, rt[0].Read)
	st := state(t, e, "u1", ref)
	assert.True(t, st.Read && st.Private && st.Delivered && !st.ReadTime.IsZero())
	mu.Lock()
	assert.Equal(t, []EventKind{EventDelivered}, kinds)
	require.Len(t, own, 1)
	assert.Equal(t, []string{"m"}, own[0].MessageIDs)
	mu.Unlock()

	// Public again: the next read is public and counts, once.
	require.NoError(t, e.SetReceiptsPrivate(bgc, "u1", false))
	res, err = e.SendMessageReadReceipt(bgc, "u1", []MessageRef{ref})
	require.NoError(t, err)
	assert.True(t, res[0].Recorded)
	in = info(t, e, ref)
	assert.Equal(t, 1, in.ReadCount)
	assert.Equal(t, 1, in.DeliveredCount)
	st = state(t, e, "u1", ref)
	assert.True(t, st.Read && !st.Private && st.Delivered)
	mu.Lock()
	assert.Equal(t, []EventKind{EventDelivered, EventRead}, kinds)
	mu.Unlock()
	require.NoError(t, e.Check(bgc))
}
