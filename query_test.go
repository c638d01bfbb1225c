package readreceipt_test

import (
	"context"
	"testing"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/internal/redistest"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestAppendReceiptList: AppendMessageReadReceiptList appends exactly what
// GetMessageReadReceiptList returns, after dst's elements and whatever its
// spare capacity held, on a cold and a warm cache, for every kind of
// answer (counts, C2C read, not found, not allowed); a refused call
// returns dst as it was.
func TestAppendReceiptList(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, e *readreceipt.Engine, setUp bool) {
		if setUp {
			setUpReceiptList(t, e)
		}
		group, c2c := receiptListRefs()
		stale := readreceipt.ReceiptInfo{MessageID: "stale", ReadCount: 99, UnreadCount: 99, DeliveredCount: 7,
			IsPeerRead: true, IsPeerDelivered: true, Err: readreceipt.ErrInternal}
		prefix := readreceipt.ReceiptInfo{MessageID: "kept", ReadCount: 1}
		for _, caller := range []readreceipt.Caller{readreceipt.AsUser("s"), readreceipt.AsUser("r1"), readreceipt.AsAdmin()} {
			for _, refs := range [][]readreceipt.MessageRef{group, c2c} {
				// A slice with room to spare, filled with stale values.
				dst := make([]readreceipt.ReceiptInfo, 1, 1+len(refs))
				for i := range dst[:cap(dst)] {
					dst[:cap(dst)][i] = stale
				}
				dst[0] = prefix
				got, err := e.AppendMessageReadReceiptList(ctx, dst, caller, refs)
				require.NoError(t, err)
				want, err := e.GetMessageReadReceiptList(ctx, caller, refs)
				require.NoError(t, err)
				require.Len(t, got, 1+len(refs))
				require.Equal(t, prefix, got[0])
				require.Equal(t, want, got[1:], "caller %+v", caller)
				require.Same(t, &dst[0], &got[0], "dst had room: no new slice")
				// Again into the result itself: same answers.
				again, err := e.AppendMessageReadReceiptList(ctx, got[:1], caller, refs)
				require.NoError(t, err)
				require.Equal(t, want, again[1:])
				// And onto nil.
				fresh, err := e.AppendMessageReadReceiptList(ctx, nil, caller, refs)
				require.NoError(t, err)
				require.Equal(t, want, fresh)
			}
		}
		// The sender's view of the group messages, spelled out.
		infos, err := e.AppendMessageReadReceiptList(ctx, nil, readreceipt.AsUser("s"), group)
		require.NoError(t, err)
		require.Len(t, infos, 3)
		require.Equal(t, readreceipt.ReceiptInfo{MessageID: "m0", ReadCount: 2, UnreadCount: 1, DeliveredCount: 2, UndeliveredCount: 1}, infos[0])
		require.Equal(t, readreceipt.ReceiptInfo{MessageID: "m1", ReadCount: 0, UnreadCount: 3, DeliveredCount: 0, UndeliveredCount: 3}, infos[1])
		require.ErrorIs(t, infos[2].Err, readreceipt.ErrReceiptNotFound)
		require.Equal(t, "none", infos[2].MessageID)
		// Refused calls leave dst as it was.
		dst := []readreceipt.ReceiptInfo{prefix}
		for _, refs := range [][]readreceipt.MessageRef{nil, append(group[:1:1], c2c[0]), {{Conversation: readreceipt.Group("team"), ID: ""}}} {
			got, err := e.AppendMessageReadReceiptList(ctx, dst, readreceipt.AsUser("s"), refs)
			require.Error(t, err)
			require.Equal(t, []readreceipt.ReceiptInfo{prefix}, got)
		}
		got, err := e.AppendMessageReadReceiptList(ctx, nil, readreceipt.AsUser("s"), nil)
		require.Error(t, err)
		require.Nil(t, got)
	}

	t.Run("mem", func(t *testing.T) {
		st := memstore.New()
		e, err := readreceipt.Open(st)
		require.NoError(t, err)
		check(t, e, true) // warm: the writes left every entry cached
		closeChecked(t, e)
		e, err = readreceipt.Open(st)
		require.NoError(t, err)
		defer closeChecked(t, e)
		check(t, e, false) // cold: the first call loads the entries
	})
	t.Run("pebble", func(t *testing.T) { check(t, openDir(t), true) })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		c := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { c.Close() })
		check(t, openRedisEngine(t, c, "append:"), true)
	})
}

// setUpReceiptList makes the state receiptListRefs names: group "team" of
// s (the sender) and r0..r2, m0 read by r0 and r1, m1 read by nobody; a
// C2C message of s to r1 that r1 has read.
func setUpReceiptList(t *testing.T, e *readreceipt.Engine) {
	ctx := context.Background()
	require.NoError(t, e.CreateGroup(ctx, "team", readreceipt.GroupWork, []string{"s", "r0", "r1", "r2"}))
	group, c2c := receiptListRefs()
	for _, r := range group[:2] {
		require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: r.Conversation, ID: r.ID, Sender: "s"}))
	}
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: c2c[0].Conversation, ID: c2c[0].ID, Sender: "s"}))
	for _, reader := range []string{"r0", "r1"} {
		_, err := e.SendMessageReadReceipt(ctx, reader, group[:1])
		require.NoError(t, err)
	}
	_, err := e.SendMessageReadReceipt(ctx, "r1", c2c)
	require.NoError(t, err)
}

func receiptListRefs() (group, c2c []readreceipt.MessageRef) {
	g := readreceipt.Group("team")
	group = []readreceipt.MessageRef{{Conversation: g, ID: "m0"}, {Conversation: g, ID: "m1"}, {Conversation: g, ID: "none"}}
	c2c = []readreceipt.MessageRef{{Conversation: readreceipt.C2C("s", "r1"), ID: "c0"}, {Conversation: readreceipt.C2C("r1", "s"), ID: "c0"}}
	return group, c2c
}
