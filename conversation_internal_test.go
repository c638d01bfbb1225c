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
