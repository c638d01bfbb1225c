package readreceipt_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/readreceipt/readreceipt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorCodes(t *testing.T) {
	tests := []struct {
		err   *readreceipt.Error
		code  int
		alsoA *readreceipt.Error // a broader kind it belongs to
	}{
		{readreceipt.ErrFeatureDisabled, 7013, nil},
		{readreceipt.ErrInternal, 10002, nil},
		{readreceipt.ErrInvalidParameter, 10004, nil},
		{readreceipt.ErrPermissionDenied, 10007, nil},
		{readreceipt.ErrGroupNotFound, 10010, nil},
		{readreceipt.ErrInvalidGroupID, 10015, readreceipt.ErrInvalidParameter},
		{readreceipt.ErrGroupExists, 10021, nil},
		{readreceipt.ErrReceiptNotFound, 10062, nil},
		{readreceipt.ErrTooManyMessages, 91001, readreceipt.ErrInvalidParameter},
		{readreceipt.ErrPageTooLarge, 91002, readreceipt.ErrInvalidParameter},
		{readreceipt.ErrMixedConversations, 91003, readreceipt.ErrInvalidParameter},
		{readreceipt.ErrInvalidCursor, 91004, readreceipt.ErrInvalidParameter},
		{readreceipt.ErrOwnMessage, 91005, nil},
		{readreceipt.ErrNotRecipient, 91006, nil},
		{readreceipt.ErrAlreadyTracked, 91007, nil},
		{readreceipt.ErrGroupTypeDisabled, 91008, nil},
		{readreceipt.ErrClosed, 91009, nil},
	}
	seen := map[int]bool{}
	for _, tt := range tests {
		t.Run(tt.err.Message, func(t *testing.T) {
			assert.Equal(t, tt.code, tt.err.Code)
			assert.False(t, seen[tt.code], "code %d used twice", tt.code)
			seen[tt.code] = true
			assert.Contains(t, tt.err.Error(), "readreceipt: ")
			assert.Contains(t, tt.err.Error(), fmt.Sprintf("(code %d)", tt.code))

			// Wrapped by a host, the error still matches its sentinel and
			// gives up its code.
			wrapped := fmt.Errorf("host: %w", tt.err)
			assert.ErrorIs(t, wrapped, tt.err)
			var e *readreceipt.Error
			require.ErrorAs(t, wrapped, &e)
			assert.Equal(t, tt.code, e.Code)
			if tt.alsoA != nil {
				assert.ErrorIs(t, tt.err, tt.alsoA)
			}
			// No sentinel matches another one, except its broader kind.
			for _, other := range tests {
				if other.err != tt.err && other.err != tt.alsoA {
					assert.NotErrorIs(t, tt.err, other.err, "%v is %v", tt.err, other.err)
				}
			}
		})
	}
}

// Errors returned by calls carry detail yet match their sentinel.
func TestReturnedErrorsMatchSentinels(t *testing.T) {
	ctx := context.Background()
	e := openMem(t)
	err := e.AddGroupMembers(ctx, "nope", []string{"a"})
	assert.ErrorIs(t, err, readreceipt.ErrGroupNotFound)
	assert.Contains(t, err.Error(), `"nope"`)

	_, err = e.SendMessageReadReceipt(ctx, "r", []readreceipt.MessageRef{
		{Conversation: readreceipt.Group("g"), ID: "m1"},
		{Conversation: readreceipt.C2C("a", "b"), ID: "m2"},
	})
	assert.ErrorIs(t, err, readreceipt.ErrMixedConversations)
	assert.ErrorIs(t, err, readreceipt.ErrInvalidParameter)
	var re *readreceipt.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, readreceipt.CodeMixedConversations, re.Code)

	require.NoError(t, e.Close())
	_, err = e.GetGroup(ctx, "g")
	assert.ErrorIs(t, err, readreceipt.ErrClosed)
	assert.NoError(t, e.Close(), "Close is idempotent")
}
