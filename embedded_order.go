package readreceipt

import "context"

// The embedded backend's privacy settings, conversation orders and read-up-to
// marks (model.go). Not built yet: each method fails.

func (e *embedded) privacy(ctx context.Context, user string) (bool, error) { return false, nil } // not built yet: nobody is private

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
