package readreceipt

import (
	"context"
	"time"
)

// ReceiptInfo is the read state of one message, as returned by
// GetMessageReadReceiptList.
type ReceiptInfo struct {
	MessageID string
	// ReadCount and UnreadCount add up to the number of recipients: the
	// group's members when the message was tracked, minus the sender; 1 for
	// C2C.
	ReadCount   int
	UnreadCount int
	// DeliveredCount and UndeliveredCount also add up to the recipients:
	// a recipient is delivered once a device of theirs reported it
	// (SendMessageDeliveryReceipt) or they read it.
	DeliveredCount   int
	UndeliveredCount int
	// IsPeerRead reports, for a C2C message, that the peer has read it;
	// IsPeerDelivered that it reached the peer.
	IsPeerRead      bool
	IsPeerDelivered bool
	// ReadTime is, for a C2C message the peer has read, when its receipt
	// was recorded (the SDK's timestamp); zero otherwise, and for group
	// messages.
	ReadTime time.Time
	// Err is set, and the counts are zero, when the message's state cannot
	// be given: ErrReceiptNotFound, ErrPermissionDenied, or
	// ErrPrivateReceipts.
	Err error
}

// GetMessageReadReceiptList returns the read state of messages of one
// conversation, in the order given; up to WithMaxQueryMessages (default 100)
// messages a call. Counts are kept, not recomputed: each message costs the
// same whatever its group's size. A message the engine has no state for, or
// that caller may not see, gets its own error in its ReceiptInfo; the call
// fails as a whole only on bad input, on messages of several conversations,
// while the feature is off, or when the store fails.
func (e *Engine) GetMessageReadReceiptList(ctx context.Context, caller Caller, messages []MessageRef) ([]ReceiptInfo, error) {
	if err := e.enterReceipts(); err != nil {
		return nil, err
	}
	defer e.leave()
	if err := e.validCaller(caller); err != nil {
		return nil, err
	}
	conv, err := e.validRefs(messages, e.cfg.maxQueryMessages)
	if err != nil {
		return nil, err
	}
	if err := e.reciprocalErr(ctx, caller); err != nil {
		if !perMessage(err) {
			return nil, err
		}
		out := make([]ReceiptInfo, len(messages))
		for i, m := range messages {
			out[i] = ReceiptInfo{MessageID: m.ID, Err: err}
		}
		return out, nil
	}
	return e.be.counts(ctx, caller, conv, messages)
}

func (e *embedded) counts(ctx context.Context, caller Caller, conv Conversation, messages []MessageRef) ([]ReceiptInfo, error) {
	var err error
	isGroup := conv.Type == ConversationGroup
	ck := convKey(conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()

	var g *groupRecord
	if isGroup {
		if g, err = e.loadGroup(ctx, conv.GroupID); err != nil {
			return nil, err
		}
	}
	out := make([]ReceiptInfo, len(messages))
	now := e.retentionNow()

	// Cached messages are read in place; the others are loaded below.
	var missed []int
	var buf []byte
	for i, r := range messages {
		out[i].MessageID = r.ID
		buf = appendMessagePrefix(buf[:0], ck, r.ID)
		var meta messageRecord
		var count, dn, readAt int64
		var lerr error
		if !e.entries.peek(buf, func(m *msgEntry) {
			meta, lerr = e.liveMeta(m, isGroup, g, now)
			count, dn, readAt = m.count, m.dn(), m.readAt
		}) {
			missed = append(missed, i)
			continue
		}
		e.receiptInfo(ctx, e, &out[i], caller, conv, &meta, count, count+dn, readAt, lerr)
	}
	if len(missed) == 0 {
		return out, nil
	}
	ms := make([]*msgEntry, len(missed))
	for j, i := range missed {
		ms[j] = e.entries.acquire(messagePrefix(ck, messages[i].ID))
	}
	defer e.releaseAll(ms)
	if err := e.loadEntries(ctx, ms...); err != nil {
		return nil, err
	}
	for j, i := range missed {
		m := ms[j]
		m.mu.Lock()
		meta, lerr := e.liveMeta(m, isGroup, g, now)
		count, dn, readAt := m.count, m.dn(), m.readAt
		m.mu.Unlock()
		e.receiptInfo(ctx, e, &out[i], caller, conv, &meta, count, count+dn, readAt, lerr)
	}
	return out, nil
}

func (e *Engine) validCaller(c Caller) error {
	if c.Admin {
		return nil
	}
	return validID("caller", c.UserID, e.cfg.maxIDLength)
}
