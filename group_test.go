package readreceipt_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unreadMembers walks a message's unread member list to the end.
func unreadMembers(t *testing.T, e *readreceipt.Engine, gid, id string) []string {
	t.Helper()
	ctx := context.Background()
	var all []string
	req := readreceipt.MemberListRequest{Message: readreceipt.MessageRef{Conversation: readreceipt.Group(gid), ID: id}, Filter: readreceipt.FilterUnread, Count: 100}
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

// Membership calls of thousands of members, with repeats, on the paths
// that pack many members into one bucket or names key: every member is
// found, in join order, a former member who rejoins keeps its place, and
// the store stays consistent (Check at close). The lists are long enough
// for the bulk paths (over 1024 members per call, over 1024 buckets read).
func TestLargeMembershipCalls(t *testing.T) {
	engines(t, func(t *testing.T, open func(opts ...readreceipt.Option) *readreceipt.Engine) {
		ctx := context.Background()
		e := open()
		first := userList("m", 5000)
		withRepeats := append(append([]string{}, first...), first[100:1100]...)
		withRepeats = append(withRepeats, first[7], "longer-user-id-"+strconv.Itoa(1<<20))
		require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, withRepeats))
		info, err := e.GetGroup(ctx, "g")
		require.NoError(t, err)
		assert.Equal(t, 5001, info.Members)
		joined := append(append([]string{}, first...), "longer-user-id-"+strconv.Itoa(1<<20))

		g := readreceipt.Group("g")
		require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: g, ID: "m1", Sender: first[0]}))
		assert.Equal(t, joined[1:], unreadMembers(t, e, "g", "m1"))

		// 3000 more, 1000 of them members already.
		more := append(userList("n", 2000), first[2000:3000]...)
		require.NoError(t, e.AddGroupMembers(ctx, "g", more))
		info, err = e.GetGroup(ctx, "g")
		require.NoError(t, err)
		assert.Equal(t, 7001, info.Members)
		joined = append(joined, userList("n", 2000)...)

		// Leave and rejoin: the old places, not new ones.
		require.NoError(t, e.RemoveGroupMembers(ctx, "g", append([]string{"nobody"}, first[10:20]...)))
		require.NoError(t, e.AddGroupMembers(ctx, "g", first[10:20]))
		info, err = e.GetGroup(ctx, "g")
		require.NoError(t, err)
		assert.Equal(t, 7001, info.Members)
		require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: g, ID: "m2", Sender: first[0]}))
		assert.Equal(t, joined[1:], unreadMembers(t, e, "g", "m2"))

		ref := []readreceipt.MessageRef{{Conversation: g, ID: "m2"}}
		for _, u := range []string{first[1], first[4999], "longer-user-id-" + strconv.Itoa(1<<20), "n1999", first[15]} {
			res, err := e.SendMessageReadReceipt(ctx, u, ref)
			require.NoError(t, err)
			assert.True(t, res[0].Recorded, u)
		}
		res, err := e.SendMessageReadReceipt(ctx, "n2000", ref)
		require.NoError(t, err)
		assert.ErrorIs(t, res[0].Err, readreceipt.ErrNotRecipient)
		// n0 joined after m1: a member, but not its recipient.
		res, err = e.SendMessageReadReceipt(ctx, "n0", []readreceipt.MessageRef{{Conversation: g, ID: "m1"}})
		require.NoError(t, err)
		assert.ErrorIs(t, res[0].Err, readreceipt.ErrNotRecipient)
	})
}

// Members packed many to a key are read back by an engine that has none of
// them cached.
func TestLargeGroupAfterReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := readreceipt.OpenDir(dir)
	require.NoError(t, err)
	members := userList("u", 3000)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, members[:1500]))
	require.NoError(t, e.AddGroupMembers(ctx, "g", members[1500:]))
	require.NoError(t, e.Close())

	e, err = readreceipt.OpenDir(dir)
	require.NoError(t, err)
	defer closeChecked(t, e)
	g := readreceipt.Group("g")
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: g, ID: "m", Sender: members[0]}))
	res, err := e.SendMessageReadReceipt(ctx, members[2999], []readreceipt.MessageRef{{Conversation: g, ID: "m"}})
	require.NoError(t, err)
	assert.True(t, res[0].Recorded)
	assert.Equal(t, members[1:2999], unreadMembers(t, e, "g", "m"))
}

// A store of schema version 2, whose members are one key each, is refused
// with the internal-error code rather than read as if its groups had no
// members.
func TestOpenRefusesSchema2(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	var b store.Batch
	b.Set([]byte{0, 'v'}, []byte{2})
	b.Set([]byte{0, 's'}, make([]byte, 32))
	require.NoError(t, st.Write(ctx, &b, store.WriteOptions{}))
	_, err := readreceipt.Open(st)
	var re *readreceipt.Error
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, readreceipt.CodeInternal, re.Code)
	assert.Contains(t, err.Error(), "schema version")
}

// New members whose indexes run over a membership chunk's end (2^16
// indexes) land in both chunks.
func TestAddAcrossChunks(t *testing.T) {
	ctx := context.Background()
	e := openMem(t)
	members := userList("u", 1<<16+30)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, members[:1<<16-10]))
	g := readreceipt.Group("g")
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: g, ID: "m1", Sender: members[0]}))
	require.NoError(t, e.AddGroupMembers(ctx, "g", members[1<<16-20:]))
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: g, ID: "m2", Sender: members[0]}))
	info, err := e.GetGroup(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, 1<<16+30, info.Members)
	res, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{{Conversation: g, ID: "m1"}, {Conversation: g, ID: "m2"}})
	require.NoError(t, err)
	assert.Equal(t, []int{1<<16 - 11, 1<<16 + 29}, []int{res[0].UnreadCount, res[1].UnreadCount})
	for _, u := range []string{members[1<<16-1], members[1<<16], members[1<<16+29]} {
		r, err := e.SendMessageReadReceipt(ctx, u, []readreceipt.MessageRef{{Conversation: g, ID: "m2"}})
		require.NoError(t, err)
		assert.True(t, r[0].Recorded, u)
	}
}
