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
	return e.AppendMessageReadReceiptList(ctx, nil, caller, messages)
}

// AppendMessageReadReceiptList is GetMessageReadReceiptList appending the
// read states to dst: it returns the extended slice, or dst and the error.
// A host that passes the same slice again (dst[:0]) saves allocating the
// results; on the embedded backend a call whose messages are all cached
// then allocates nothing. The appended elements are written whole, whatever
// dst held in its spare capacity.
func (e *Engine) AppendMessageReadReceiptList(ctx context.Context, dst []ReceiptInfo, caller Caller, messages []MessageRef) ([]ReceiptInfo, error) {
	if err := e.enterReceipts(); err != nil {
		return dst, err
	}
	defer e.leave()
	if err := e.validCaller(caller); err != nil {
		return dst, err
	}
	conv, err := e.validRefs(messages, e.cfg.maxQueryMessages)
	if err != nil {
		return dst, err
	}
	if err := e.reciprocalErr(ctx, caller); err != nil {
		if !perMessage(err) {
			return dst, err
		}
		out, res := extend(dst, len(messages))
		for i, m := range messages {
			res[i] = ReceiptInfo{MessageID: m.ID, Err: err}
		}
		return out, nil
	}
	if f, ok := e.be.(countFiller); ok {
		out, res := extend(dst, len(messages))
		if err := f.countsInto(ctx, caller, conv, messages, res); err != nil {
			return dst, err
		}
		return out, nil
	}
	infos, err := e.be.counts(ctx, caller, conv, messages)
	if err != nil {
		return dst, err
	}
	if dst == nil {
		return infos, nil
	}
	return append(dst, infos...), nil
}

// extend returns dst extended by n zero elements, and those elements.
// Only reused room is cleared: new memory is zero already, and clearing
// memory with pointers is slow while the GC marks (a write barrier per
// pointer).
func extend(dst []ReceiptInfo, n int) (out, added []ReceiptInfo) {
	l := len(dst)
	if cap(dst)-l < n {
		out = make([]ReceiptInfo, l+n)
		copy(out, dst)
		return out, out[l:]
	}
	out = dst[:l+n]
	added = out[l:]
	clear(added)
	return out, added
}

// countFiller is a backend whose counts can fill the caller's slice, as
// the embedded one does; the others' results are appended.
type countFiller interface {
	// countsInto is counts writing into out, one zeroed element per
	// message.
	countsInto(ctx context.Context, caller Caller, conv Conversation, messages []MessageRef, out []ReceiptInfo) error
}

var _ countFiller = (*embedded)(nil)

func (e *embedded) counts(ctx context.Context, caller Caller, conv Conversation, messages []MessageRef) ([]ReceiptInfo, error) {
	out := make([]ReceiptInfo, len(messages))
	if err := e.countsInto(ctx, caller, conv, messages, out); err != nil {
		return nil, err
	}
	return out, nil
}

// countKeyBuf is the room on the stack for a message's key prefix in
// countsInto; longer keys (IDs near the length limit) go to the heap.
const countKeyBuf = 96

// countView is what countsInto copies out of a cached entry under its
// lock: for a caller who may read the message's receipts anyway (mayRead),
// only the counts; the meta only for the others, whom authorize asks
// about after the lock is released.
type countView struct {
	lerr              error // liveErr; nothing else is set when it is not nil
	mine              bool  // mayRead: meta is not copied
	recipients        uint32
	count, dn, readAt int64
	meta              messageRecord // when !mine
}

// countsInto implements countFiller. A cached message costs one lookup in
// the entry table, under its shard's lock and its own, and no allocation;
// the conversation's key, the group, the clock and the closure the table
// calls are made once a call.
func (e *embedded) countsInto(ctx context.Context, caller Caller, conv Conversation, messages []MessageRef, out []ReceiptInfo) error {
	isGroup := conv.Type == ConversationGroup
	c2c := !isGroup
	ck := convKey(conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()

	var g *groupRecord
	var inc uint64 // g's incarnation, 0 for none (see liveErr)
	if isGroup {
		var err error
		if g, err = e.queryGroup(ctx, conv.GroupID); err != nil {
			return err
		}
		if g != nil {
			inc = g.Incarnation
		}
	}
	now := e.retentionNow()

	// Cached messages are read in place; the others are loaded below.
	var missed []int
	var kb [countKeyBuf]byte
	buf := appendConversationMessagesPrefix(kb[:0], ck)
	n := len(buf) // every message's key starts with buf[:n]
	ch := convHash(buf)
	var v countView
	read := func(m *msgEntry) {
		// liveMeta, reading from m only what the call needs.
		if !e.live(m.exists, &m.meta, isGroup, inc, now) {
			v.lerr = e.liveErr(m.exists, &m.meta, isGroup, inc, now)
			return
		}
		v.lerr = nil
		v.recipients, v.count, v.dn, v.readAt = m.meta.Recipients, m.count, m.dn(), m.readAt
		if v.mine = mayRead(&caller, m.meta.Sender); !v.mine {
			v.meta = m.meta
		}
	}
	for i := range messages {
		id := messages[i].ID
		info := &out[i]
		info.MessageID = id
		buf = appendLP(buf[:n], id)
		if !e.entries.peek(buf, idHash(ch, id), read) {
			missed = append(missed, i)
			continue
		}
		switch {
		case v.lerr != nil:
			info.Err = v.lerr
		case v.mine:
			setCounts(info, v.recipients, v.count, v.count+v.dn)
			if c2c {
				setPeer(info, v.count, v.count+v.dn, v.readAt)
			}
		default:
			e.receiptInfo(ctx, e, info, caller, conv, &v.meta, v.count, v.count+v.dn, v.readAt, nil)
		}
	}
	if len(missed) == 0 {
		return nil
	}
	ms := make([]*msgEntry, len(missed))
	for j, i := range missed {
		ms[j] = e.entries.acquire(messagePrefix(ck, messages[i].ID))
	}
	defer e.releaseAll(ms)
	if err := e.loadEntries(ctx, ms...); err != nil {
		return err
	}
	for j, i := range missed {
		m := ms[j]
		m.mu.Lock()
		meta, lerr := e.liveMeta(m, isGroup, g, now)
		count, dn, readAt := m.count, m.dn(), m.readAt
		m.mu.Unlock()
		e.receiptInfo(ctx, e, &out[i], caller, conv, &meta, count, count+dn, readAt, lerr)
	}
	return nil
}

// queryGroup is loadGroup for a call that only reads the record: a cached
// record is returned itself, not a copy (cached records are never
// modified). The caller holds the group's conversation lock.
func (e *embedded) queryGroup(ctx context.Context, gid string) (*groupRecord, error) {
	if g, ok := e.groups.get([]byte(gid)); ok {
		return g, nil
	}
	return e.loadGroup(ctx, gid)
}

func (e *Engine) validCaller(c Caller) error {
	if c.Admin {
		return nil
	}
	return validID("caller", c.UserID, e.cfg.maxIDLength)
}
