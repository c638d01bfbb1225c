package readreceipt

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"

	"github.com/stretchr/testify/require"
)

// A receipt log record reads back as written, and no byte string makes
// decodeLogCall panic; what it accepts reads back the same once written
// again.
func FuzzLogRecord(f *testing.F) {
	c := &logCall{isGroup: true, readTimes: true, idx: 70000, readAt: 1_700_000_000_000_000_000, items: []logItem{
		{key: "mg\x01sm\x01a", act: actRead, trackedAt: 5},
		{key: "mg\x01sm\x01b", act: actRead | actUndeliver, own: true, trackedAt: -1},
		{key: "mc\x01a\x01bm\x01c", act: actPrivate | actDeliver},
	}}
	f.Add(c.encode(nil))
	f.Add((&logCall{}).encode(nil))
	f.Add([]byte{logRecordVersion, 3, 0x80})
	f.Add(v1Record)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeLogCall(7, data)
		if err != nil {
			return
		}
		require.Equal(t, uint64(7), got.seq)
		again, err := decodeLogCall(7, got.encode(nil))
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

func TestLogRecordRoundTrip(t *testing.T) {
	for _, c := range []*logCall{
		{seq: 3, isGroup: true, readTimes: true, idx: 1<<32 - 1, readAt: -5, items: []logItem{
			{key: "k1", act: actRead, trackedAt: 1 << 62},
			{key: "k2", act: actDeliver, own: true},
		}},
		// Without read times no track time is written (nor read back).
		{seq: 3, isGroup: true, idx: 9, readAt: 5, items: []logItem{
			{key: "mg\x03grpm\x02m1", act: actRead | actUndeliver, own: true},
			{key: "mg\x03grpm\x02m2", act: actPrivate},
			{key: "mg\x03grpm\x03m20", act: actRead},
		}},
		// One item: the whole key is the common prefix.
		{seq: 3, items: []logItem{{key: "mc", act: actRead}}},
		// A key that is the others' prefix.
		{seq: 3, items: []logItem{{key: "ab", act: actRead}, {key: "abc", act: actRead}}},
	} {
		got, err := decodeLogCall(3, c.encode(nil))
		require.NoError(t, err)
		require.Equal(t, c, got)
	}
	c := &logCall{isGroup: true, items: []logItem{{key: "mg\x03grpm\x02m1", act: actRead}, {key: "mg\x03grpm\x02m2", act: actRead}}}
	rec := c.encode(nil)
	for _, bad := range [][]byte{nil, {3, 0}, {logRecordVersion, 4}, append(rec, 0), rec[:len(rec)-1],
		{logRecordVersion, 0, 0, 0, 1, 0, 0, byte(actRead)}, // an empty key
		{logRecordVersion, 0, 0, 0, 1, 1, 'k', 0, 0},        // no act
		{logRecordVersion, 0, 0, 0, 1, 1, 'k', 0, 0x40},     // an act that does not exist
	} {
		_, err := decodeLogCall(1, bad)
		require.ErrorIs(t, err, errBadLogRecord, "%x", bad)
	}
}

// v1Record is a record in format 1, as the engine wrote them before
// format 2: a group call of reader 5 read at 1000, two receipts (key "ka",
// a read tracked at 7; key "kb", a read of a reader who had reported
// delivery, own count, tracked at -1).
var v1Record = []byte{logRecordV1, 1, 5, 0xd0, 0x0f, 2,
	2, 'k', 'a', byte(actRead), 0, 14,
	2, 'k', 'b', byte(actRead | actUndeliver), 1, 1}

// Records of format 1 (left in the log by a crash of an older engine) are
// read as ever; their track times are dropped where no read-time log
// takes them.
func TestLogRecordV1(t *testing.T) {
	got, err := decodeLogCall(4, v1Record)
	require.NoError(t, err)
	require.Equal(t, &logCall{seq: 4, isGroup: true, idx: 5, readAt: 1000, items: []logItem{
		{key: "ka", act: actRead},
		{key: "kb", act: actRead | actUndeliver, own: true},
	}}, got)
	withTimes := append([]byte(nil), v1Record...)
	withTimes[1] |= 2
	got, err = decodeLogCall(4, withTimes)
	require.NoError(t, err)
	require.Equal(t, int64(7), got.items[0].trackedAt)
	require.Equal(t, int64(-1), got.items[1].trackedAt)
	require.True(t, got.readTimes)
	_, err = decodeLogCall(4, v1Record[:len(v1Record)-1])
	require.ErrorIs(t, err, errBadLogRecord)
}

// Pending marks: two inline, more in a map; any order of marks and unmarks
// leaves exactly the marked readers pending.
func TestPendingMarks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var m msgEntry
		want := map[uint32]bool{}
		for range 40 {
			idx := uint32(rng.IntN(6))
			if want[idx] {
				m.unmark(idx)
				delete(want, idx)
			} else {
				m.mark(idx)
				want[idx] = true
			}
			for i := range uint32(6) {
				require.Equal(t, want[i], m.isPending(i), "round %d reader %d", round, i)
			}
			require.Equal(t, len(want) > 0, m.anyPending())
			if len(want) <= 2 {
				require.Nil(t, m.x, "round %d: two marks or fewer keep nothing beyond the entry", round)
			}
		}
	}
}

// An engine opened on a store whose log holds a format-1 record (a crash
// of an older engine came before its fold) counts the record's receipts.
func TestLogRecordV1Replays(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	e, err := Open(st)
	require.NoError(t, err)
	require.NoError(t, e.CreateGroup(ctx, "g", GroupWork, []string{"u0", "u1", "u2"}))
	require.NoError(t, e.TrackMessage(ctx, Message{Conversation: Group("g"), ID: "m", Sender: "u0"}))
	require.NoError(t, e.Close())

	key := messagePrefix(convKey(Group("g")), "m")
	rec := []byte{logRecordV1, 1, 2} // a group call of member index 2 (u2)
	rec = binary.AppendVarint(rec, 1_000_000)
	rec = append(rec, 1)
	rec = binary.AppendUvarint(rec, uint64(len(key)))
	rec = append(rec, key...)
	rec = append(rec, byte(actRead), 0)
	rec = binary.AppendVarint(rec, 0)
	var b store.Batch
	b.Set(logKey(1), rec)
	require.NoError(t, st.Write(ctx, &b, store.WriteOptions{Sync: true}))

	e, err = Open(st)
	require.NoError(t, err)
	defer e.Close()
	infos, err := e.GetMessageReadReceiptList(ctx, AsAdmin(), []MessageRef{{Conversation: Group("g"), ID: "m"}})
	require.NoError(t, err)
	require.NoError(t, infos[0].Err)
	require.Equal(t, 1, infos[0].ReadCount)
	require.Equal(t, 1, infos[0].UnreadCount)
	page, err := e.GetGroupMessageReadMemberList(ctx, AsAdmin(), MemberListRequest{Message: MessageRef{Conversation: Group("g"), ID: "m"}, Filter: FilterRead, Count: 10})
	require.NoError(t, err)
	require.Equal(t, []string{"u2"}, page.ReadUserIDList)
}

// A folder reused from fold to fold (reset) emits what a new one emits
// for the same records: nothing of an earlier fold leaks into the next.
func TestFolderReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	acts := []receiptAct{actRead, actRead | actUndeliver, actDeliver, actPrivate, actPrivate | actDeliver}
	var reused folder
	for round := range 50 {
		var calls []*logCall
		for range 1 + rng.IntN(20) {
			c := &logCall{isGroup: rng.IntN(4) > 0, readTimes: rng.IntN(2) == 0, idx: uint32(rng.IntN(3 << 16)), readAt: int64(rng.IntN(1e9))}
			for range 1 + rng.IntN(5) {
				c.items = append(c.items, logItem{key: "m" + string(rune('a'+rng.IntN(8))), act: acts[rng.IntN(len(acts))], own: rng.IntN(3) == 0, trackedAt: int64(rng.IntN(1e6))})
			}
			calls = append(calls, c)
		}
		var fresh folder
		var want, got store.Batch
		for _, c := range calls {
			fresh.add(c, nil)
		}
		fresh.emit(&want)
		reused.reset()
		for _, c := range calls {
			reused.add(c, nil)
		}
		reused.emit(&got)
		require.Equal(t, want.Ops(), got.Ops(), "round %d", round)
	}
}

// A message whose receipts are committed but not folded stays in memory,
// where they are, however many other messages go through a small cache:
// the store's per-message keys do not have them until the fold.
func TestUnfoldedEntryStaysPinned(t *testing.T) {
	ctx := context.Background()
	defer SetFoldEvery(1 << 30)()
	oldInterval := foldInterval
	foldInterval = time.Hour
	defer func() { foldInterval = oldInterval }()
	e, err := Open(memstore.New(), WithCacheBytes(64<<10), WithSweepInterval(0))
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.CreateGroup(ctx, "g", GroupWork, []string{"s", "r"}))
	msg := Message{Conversation: Group("g"), ID: "m", Sender: "s"}
	require.NoError(t, e.TrackMessage(ctx, msg))
	refs := []MessageRef{msg.Ref()}
	res, err := e.SendMessageReadReceipt(ctx, "r", refs)
	require.NoError(t, err)
	require.True(t, res[0].Recorded)
	for i := range 2000 {
		other := Message{Conversation: Group("g"), ID: fmt.Sprintf("o%d", i), Sender: "s"}
		require.NoError(t, e.TrackMessage(ctx, other))
		_, err := e.GetMessageReadReceiptList(ctx, AsUser("s"), []MessageRef{other.Ref()})
		require.NoError(t, err)
	}
	infos, err := e.GetMessageReadReceiptList(ctx, AsUser("s"), refs)
	require.NoError(t, err)
	require.Equal(t, 1, infos[0].ReadCount)
	res, err = e.SendMessageReadReceipt(ctx, "r", refs)
	require.NoError(t, err)
	require.False(t, res[0].Recorded, "already recorded")
}
