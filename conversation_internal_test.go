package readreceipt

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// validIDModel is validID as the rules say it, without the ASCII fast path.
func validIDModel(id string, max int) bool {
	return id != "" && len(id) <= max && utf8.ValidString(id)
}

// TestValidID: validID's ASCII fast path (eight bytes a step, then the
// rest) and its fallback agree with the rules for a byte >= 0x80 at every
// position of IDs up to 20 bytes, valid or not as UTF-8, at and around the
// length limit, and the errors keep their codes and messages.
func TestValidID(t *testing.T) {
	const max = 16
	var ids []string
	for n := 0; n <= 20; n++ {
		base := strings.Repeat("a", n)
		ids = append(ids, base)
		for i := range n {
			for _, bad := range []string{"\xff", "\x80", "\xc3"} {
				ids = append(ids, base[:i]+bad+base[i+1:])
			}
			if i+2 <= n {
				ids = append(ids, base[:i]+"é"+base[i+2:]) // valid, two bytes
			}
			if i+3 <= n {
				ids = append(ids, base[:i]+"€"+base[i+3:]) // valid, three bytes
			}
		}
	}
	for _, id := range ids {
		err := validID("message ID", id, max)
		require.Equal(t, validIDModel(id, max), err == nil, "%q: %v", id, err)
		if err != nil {
			require.True(t, errors.Is(err, ErrInvalidParameter), "%q: %v", id, err)
		}
	}
	for _, c := range []struct{ kind, id, want string }{
		{"message ID", "", "readreceipt: invalid parameter: empty message ID (code 10004)"},
		{"message ID", strings.Repeat("a", max+1), "readreceipt: invalid parameter: message ID of 17 bytes, limit 16 (code 10004)"},
		{"message ID", "abcdefgh\xffbc", "readreceipt: invalid parameter: message ID is not valid UTF-8 (code 10004)"},
		{"group ID", "g\xc3", "readreceipt: invalid group ID: group ID is not valid UTF-8 (code 10015)"},
	} {
		err := validID(c.kind, c.id, max)
		require.Error(t, err)
		require.Equal(t, c.want, err.Error())
	}
	require.ErrorIs(t, validID("group ID", "", max), ErrInvalidGroupID)
}

// TestValidRefs: a message list is one conversation whether its refs share
// the conversation's strings (the fast path compares where they are) or
// hold equal copies, and a ref whose strings start at the same place but
// are shorter or longer is another conversation; the IDs are checked in
// order with validID's rules.
func TestValidRefs(t *testing.T) {
	e := &Engine{cfg: defaultConfig()}
	gid := "group-abc"
	copied := string([]byte(gid)) // equal bytes, elsewhere
	shorter := gid[:5]            // same start, another group
	refs := func(convs ...Conversation) []MessageRef {
		rs := make([]MessageRef, len(convs))
		for i, c := range convs {
			rs[i] = MessageRef{Conversation: c, ID: "m" + strings.Repeat("x", i)}
		}
		return rs
	}
	for _, c := range []struct {
		name string
		refs []MessageRef
		want error // nil: valid
	}{
		{"shared strings", refs(Group(gid), Group(gid), Group(gid)), nil},
		{"equal copies", refs(Group(gid), Group(copied), Group(gid)), nil},
		{"shorter group at the same place", refs(Group(gid), Group(shorter)), ErrMixedConversations},
		{"longer group at the same place", refs(Group(shorter), Group(gid)), ErrMixedConversations},
		{"C2C either order", refs(C2C("ann", "bob"), Conversation{Type: ConversationC2C, Users: [2]string{"bob", "ann"}}), nil},
		{"C2C and group", refs(C2C("ann", "bob"), Group(gid)), ErrMixedConversations},
		{"C2C sharing a user", refs(C2C("ann", "bob"), C2C("ann", "bo")), ErrMixedConversations},
		{"bad second group", refs(Group(gid), Group("")), ErrInvalidGroupID},
	} {
		t.Run(c.name, func(t *testing.T) {
			conv, err := e.validRefs(c.refs, 100)
			if c.want == nil {
				require.NoError(t, err)
				require.Equal(t, string(convKey(c.refs[0].Conversation)), string(convKey(conv)))
				return
			}
			require.ErrorIs(t, err, c.want)
		})
	}
	ids := func(ids ...string) []MessageRef {
		rs := make([]MessageRef, len(ids))
		for i, id := range ids {
			rs[i] = MessageRef{Conversation: Group(gid), ID: id}
		}
		return rs
	}
	_, err := e.validRefs(ids("a", "é-valid", strings.Repeat("z", 40)), 100)
	require.NoError(t, err, "UTF-8 IDs beyond ASCII and longer than a word are valid")
	_, err = e.validRefs(ids("a", "b\xff", ""), 100)
	require.EqualError(t, err, "readreceipt: invalid parameter: message ID is not valid UTF-8 (code 10004)", "the first bad ID is the one reported")
	_, err = e.validRefs(ids("a", strings.Repeat("z", e.cfg.maxIDLength+1)), 100)
	require.ErrorIs(t, err, ErrInvalidParameter)
	_, err = e.validRefs(ids("a", "b", "c"), 2)
	require.ErrorIs(t, err, ErrTooManyMessages)
}
