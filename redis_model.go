package readreceipt

import "context"

// The Redis backend's part of the receipt model beyond the seed
// (model.go). Not built yet: each method fails.

func (b *redisBackend) readState(ctx context.Context, conv Conversation, user string, refs []MessageRef) ([]ReadState, error) {
	return nil, errorf(ErrInternal, "readState: not built yet")
}

func (b *redisBackend) readTimes(ctx context.Context, caller Caller, conv Conversation, ref MessageRef, users []string) ([]MemberReadTime, error) {
	return nil, errorf(ErrInternal, "readTimes: not built yet")
}
