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

func (e *embedded) privacy(ctx context.Context, user string) (bool, error) { return false, nil }

func (e *embedded) setPrivacy(ctx context.Context, user string, private bool) error {
	return errorf(ErrInternal, "setPrivacy: not built yet")
}

func (e *embedded) position(ctx context.Context, ref MessageRef) (orderPos, string, error) {
	return orderPos{}, "", errorf(ErrInternal, "position: not built yet")
}

func (e *embedded) scanOrder(ctx context.Context, conv Conversation, thread string, after, upTo orderPos, limit int) ([]orderItem, error) {
	return nil, errorf(ErrInternal, "scanOrder: not built yet")
}

func (e *embedded) mark(ctx context.Context, conv Conversation, thread, reader string) (orderPos, bool, error) {
	return orderPos{}, false, errorf(ErrInternal, "mark: not built yet")
}

func (e *embedded) setMark(ctx context.Context, conv Conversation, thread, reader string, p orderPos) (orderPos, error) {
	return orderPos{}, errorf(ErrInternal, "setMark: not built yet")
}
