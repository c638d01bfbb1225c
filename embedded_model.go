package readreceipt

import "context"

// The embedded backend's part of the receipt model beyond the seed
// (model.go). Not built yet: each method fails.

func (e *embedded) readState(ctx context.Context, conv Conversation, user string, refs []MessageRef) ([]ReadState, error) {
	return nil, errorf(ErrInternal, "readState: not built yet")
}

func (e *embedded) readTimes(ctx context.Context, caller Caller, conv Conversation, ref MessageRef, users []string) ([]MemberReadTime, error) {
	return nil, errorf(ErrInternal, "readTimes: not built yet")
}
