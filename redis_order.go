package readreceipt

import "context"

// The Redis backend's privacy settings, conversation orders and read-up-to
// marks (model.go). Not built yet: each method fails.

func (b *redisBackend) privacy(ctx context.Context, user string) (bool, error) { return false, nil }

func (b *redisBackend) setPrivacy(ctx context.Context, user string, private bool) error {
	return errorf(ErrInternal, "setPrivacy: not built yet")
}

func (b *redisBackend) position(ctx context.Context, ref MessageRef) (orderPos, string, error) {
	return orderPos{}, "", errorf(ErrInternal, "position: not built yet")
}

func (b *redisBackend) scanOrder(ctx context.Context, conv Conversation, thread string, after, upTo orderPos, limit int) ([]orderItem, error) {
	return nil, errorf(ErrInternal, "scanOrder: not built yet")
}

func (b *redisBackend) mark(ctx context.Context, conv Conversation, thread, reader string) (orderPos, bool, error) {
	return orderPos{}, false, errorf(ErrInternal, "mark: not built yet")
}

func (b *redisBackend) setMark(ctx context.Context, conv Conversation, thread, reader string, p orderPos) (orderPos, error) {
	return orderPos{}, errorf(ErrInternal, "setMark: not built yet")
}
