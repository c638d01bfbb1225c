package readreceipt

import (
	"context"
	"errors"
	"fmt"
)

// Error is the error type of every failure the engine reports. Code is a
// stable number a host can pass on to its clients: where the IM platform
// behind the read-receipt SDK defines a code for the condition, Error uses
// that code (10004, 10007, 10010, 10015, 10021, 10062, 7013); the others are
// this engine's own, in the 91000 range.
//
// Errors returned by the engine wrap one of the sentinel errors below with
// call-specific detail, so errors.Is(err, ErrReceiptNotFound) and
// errors.As(err, &e) both work. A few sentinels refine a broader one:
// errors.Is(err, ErrInvalidParameter) also holds for ErrTooManyMessages,
// ErrPageTooLarge, ErrMixedConversations and ErrInvalidCursor.
type Error struct {
	// Code is the numeric error code.
	Code int
	// Message describes the condition, prefixed with "readreceipt: ".
	Message string

	class int   // the Code of the broader sentinel this one refines, or 0
	err   error // the wrapped cause, if any
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s (code %d): %v", e.Message, e.Code, e.err)
	}
	return fmt.Sprintf("%s (code %d)", e.Message, e.Code)
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.err }

// Is reports whether target is an *Error with the same code, or with the
// code of the broader kind e belongs to.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code || (e.class != 0 && t.Code == e.class)
}

func newSentinel(code int, class int, msg string) *Error {
	return &Error{Code: code, Message: "readreceipt: " + msg, class: class}
}

// The numeric codes of the sentinel errors.
const (
	CodeFeatureDisabled    = 7013
	CodeInternal           = 10002
	CodeInvalidParameter   = 10004
	CodePermissionDenied   = 10007
	CodeGroupNotFound      = 10010
	CodeInvalidGroupID     = 10015
	CodeGroupExists        = 10021
	CodeReceiptNotFound    = 10062
	CodeTooManyMessages    = 91001
	CodePageTooLarge       = 91002
	CodeMixedConversations = 91003
	CodeInvalidCursor      = 91004
	CodeOwnMessage         = 91005
	CodeNotRecipient       = 91006
	CodeAlreadyTracked     = 91007
	CodeGroupTypeDisabled  = 91008
	CodeClosed             = 91009
	CodeUnavailable        = 91010
	CodePrivateReceipts    = 91011
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrFeatureDisabled is returned by every receipt call (TrackMessage,
	// SendMessageReadReceipt, GetMessageReadReceiptList,
	// GetGroupMessageReadMemberList) while the read-receipt feature is
	// switched off; nothing is recorded.
	ErrFeatureDisabled = newSentinel(CodeFeatureDisabled, 0, "read receipts are not enabled for this app")

	// ErrInternal is returned when the store fails. The call had no effect
	// unless the store itself reports otherwise.
	ErrInternal = newSentinel(CodeInternal, 0, "internal error")

	// ErrInvalidParameter is returned for bad input: an empty, oversized or
	// non-UTF-8 ID, an unknown conversation or group type, a count <= 0, an
	// unknown filter. Nothing is recorded.
	ErrInvalidParameter = newSentinel(CodeInvalidParameter, 0, "invalid parameter")

	// ErrPermissionDenied is returned, per message, when the caller may not
	// see a message's receipts (see WithQueryAccess).
	ErrPermissionDenied = newSentinel(CodePermissionDenied, 0, "permission denied")

	// ErrGroupNotFound is returned by membership calls and TrackMessage for a
	// group that was never created or has been dismissed.
	ErrGroupNotFound = newSentinel(CodeGroupNotFound, 0, "group not found")

	// ErrInvalidGroupID is returned when a group ID is empty, too long or
	// not UTF-8.
	ErrInvalidGroupID = newSentinel(CodeInvalidGroupID, CodeInvalidParameter, "invalid group ID")

	// ErrGroupExists is returned by CreateGroup for a group ID in use.
	ErrGroupExists = newSentinel(CodeGroupExists, 0, "group already exists")

	// ErrReceiptNotFound (10062) is returned, per message, when the engine
	// has no receipt information for a message: it was never tracked, was
	// deleted, has expired, or its group was dismissed.
	ErrReceiptNotFound = newSentinel(CodeReceiptNotFound, 0, "no read receipt info for the message")

	// ErrTooManyMessages is returned when a call names more messages than
	// the configured limit (see WithMaxMessagesPerCall). Nothing is recorded.
	ErrTooManyMessages = newSentinel(CodeTooManyMessages, CodeInvalidParameter, "too many messages in one call")

	// ErrPageTooLarge is returned when a member page asks for more members
	// than the configured limit (see WithMaxPageSize).
	ErrPageTooLarge = newSentinel(CodePageTooLarge, CodeInvalidParameter, "page count over the limit")

	// ErrMixedConversations is returned when the messages of one call belong
	// to more than one conversation. Nothing is recorded.
	ErrMixedConversations = newSentinel(CodeMixedConversations, CodeInvalidParameter, "messages are not all in one conversation")

	// ErrInvalidCursor is returned for a member-page cursor that is garbled,
	// forged, or was made for another message or filter.
	ErrInvalidCursor = newSentinel(CodeInvalidCursor, CodeInvalidParameter, "invalid cursor")

	// ErrOwnMessage is returned, per message, when a sender reports a
	// receipt for its own message.
	ErrOwnMessage = newSentinel(CodeOwnMessage, 0, "a sender cannot send a receipt for its own message")

	// ErrNotRecipient is returned, per message, when the reader was not a
	// recipient of the message: not the C2C peer, or not a group member when
	// the message was tracked.
	ErrNotRecipient = newSentinel(CodeNotRecipient, 0, "reader is not a recipient of the message")

	// ErrAlreadyTracked is returned by TrackMessage when the message ID is
	// already tracked in the conversation with a different sender.
	ErrAlreadyTracked = newSentinel(CodeAlreadyTracked, 0, "message already tracked with another sender")

	// ErrGroupTypeDisabled is returned by TrackMessage for a group whose type
	// does not support read receipts (see WithGroupTypes).
	ErrGroupTypeDisabled = newSentinel(CodeGroupTypeDisabled, 0, "read receipts are not enabled for this group type")

	// ErrUnavailable is returned, on the Redis backend, when Redis cannot be
	// reached, is failing over, or no replica acknowledged a write in time.
	// The call may or may not have been applied; it is safe to retry
	// (receipts are idempotent), and calls succeed again by themselves once
	// Redis is back. Servers answer it with HTTP 503.
	ErrUnavailable = newSentinel(CodeUnavailable, 0, "state backend unavailable, retry")

	// ErrPrivateReceipts is returned, per message, to a user whose receipts
	// are private asking for others' reads (counts, read and unread lists,
	// read times) while privacy is reciprocal (WithReciprocalPrivacy).
	ErrPrivateReceipts = newSentinel(CodePrivateReceipts, 0, "your receipts are private, so others' are hidden from you")

	// ErrClosed is returned by every call after Close.
	ErrClosed = newSentinel(CodeClosed, 0, "engine closed")
)

// errorf returns an error of the sentinel's code with call-specific detail.
func errorf(sentinel *Error, format string, args ...any) error {
	return &Error{
		Code:    sentinel.Code,
		Message: sentinel.Message + ": " + fmt.Sprintf(format, args...),
		class:   sentinel.class,
	}
}

// internalErr wraps a store failure. Engine errors and context errors pass
// through unchanged.
func internalErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &Error{Code: CodeInternal, Message: ErrInternal.Message + ": " + op, err: err}
}
