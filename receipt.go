package readreceipt

import (
	"context"

	"github.com/readreceipt/readreceipt/store"
)

// ReceiptResult is the outcome of SendMessageReadReceipt for one message.
type ReceiptResult struct {
	MessageID string
	// Recorded reports that this call recorded the reader's receipt. It is
	// false when the receipt was already recorded (not an error: receipts
	// are idempotent) and when Err is set.
	Recorded bool
	// Err says why no receipt could be recorded for this message:
	// ErrReceiptNotFound, ErrOwnMessage or ErrNotRecipient. Other messages
	// of the call are not affected.
	Err error
}

// SendMessageReadReceipt reports that reader has read messages, 1 to
// WithMaxMessagesPerCall (default 30) of one conversation. Each message's
// outcome is in the result at the same position; a message that cannot take
// the receipt (unknown, the reader's own, reader not a recipient) is
// reported there without failing the others. A receipt already recorded
// changes nothing and emits no event. Newly recorded receipts are durable
// when the call returns (unless WithSyncWrites(false)) and are then
// announced to subscribers (see Subscribe). Receipts do not touch any
// conversation's unread count; the engine keeps none.
//
// The call as a whole fails, recording nothing, on bad input
// (ErrInvalidParameter), too many messages (ErrTooManyMessages), messages
// of several conversations (ErrMixedConversations), while the feature is
// off (ErrFeatureDisabled), or when the store fails (ErrInternal).
func (e *Engine) SendMessageReadReceipt(ctx context.Context, reader string, messages []MessageRef) ([]ReceiptResult, error) {
	if err := e.enterReceipts(); err != nil {
		return nil, err
	}
	results, events, err := e.sendReceipts(ctx, reader, messages)
	e.leave()
	if len(events) > 0 {
		e.subs.publish(events)
	}
	return results, err
}

// receiptItem is one distinct message of a receipt call.
type receiptItem struct {
	pos  int // position in the call
	m    *msgEntry
	meta messageRecord
	ok   bool // the reader may send this receipt
	new  bool // the receipt is being written by this call
}

func (e *Engine) sendReceipts(ctx context.Context, reader string, refs []MessageRef) ([]ReceiptResult, []ReceiptEvent, error) {
	if err := validID("reader", reader, e.cfg.maxIDLength); err != nil {
		return nil, nil, err
	}
	conv, err := e.validRefs(refs, e.cfg.maxMessagesPerCall)
	if err != nil {
		return nil, nil, err
	}
	isGroup := conv.Type == ConversationGroup
	ck := convKey(conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()

	// The reader's member index: the same for every message of the group.
	var g *groupRecord
	var idx uint32
	var known bool
	if isGroup {
		if g, err = e.loadGroup(ctx, conv.GroupID); err != nil {
			return nil, nil, err
		}
		if g != nil {
			if idx, known, err = e.memberIndex(ctx, conv.GroupID, g.Incarnation, reader); err != nil {
				return nil, nil, err
			}
		}
	} else {
		idx, known = c2cReader, true
	}

	results := make([]ReceiptResult, len(refs))
	first := make(map[string]int, len(refs)) // message ID -> position of its first mention
	var items []*receiptItem
	for i, r := range refs {
		results[i].MessageID = r.ID
		if _, dup := first[r.ID]; dup {
			continue
		}
		first[r.ID] = i
		items = append(items, &receiptItem{pos: i, m: e.entries.acquire(messagePrefix(ck, r.ID))})
	}
	defer func() {
		for _, it := range items {
			e.entries.release(it.m)
		}
	}()
	ms := make([]*msgEntry, len(items))
	for i, it := range items {
		ms[i] = it.m
	}
	if err := e.loadEntries(ctx, ms...); err != nil {
		return nil, nil, err
	}

	// Who may send each receipt.
	for _, it := range items {
		it.m.mu.Lock()
		it.meta, err = e.liveMeta(it.m, isGroup, g)
		it.m.mu.Unlock()
		res := &results[it.pos]
		switch {
		case err != nil:
			res.Err = err
		case reader == it.meta.Sender:
			res.Err = ErrOwnMessage
		case !isGroup && !conv.has(reader):
			res.Err = errorf(ErrNotRecipient, "%q is not in %s", reader, conv)
		case isGroup && (!known || idx >= it.meta.EndIndex):
			res.Err = errorf(ErrNotRecipient, "%q was not a member when the message was sent", reader)
		default:
			if isGroup {
				member, err := e.wasMember(ctx, conv.GroupID, g.Incarnation, idx, it.meta.Version)
				if err != nil {
					return nil, nil, err
				}
				if !member {
					res.Err = errorf(ErrNotRecipient, "%q was not a member when the message was sent", reader)
					continue
				}
				if err := e.ensureReaders(ctx, it.m, chunkOf(idx)); err != nil {
					return nil, nil, err
				}
			}
			it.ok = true
		}
	}

	// Mark the new receipts pending and write them in one batch.
	var b store.Batch
	var pending []*receiptItem
	prefix := func(it *receiptItem) []byte { return []byte(it.m.key) }
	for _, it := range items {
		if !it.ok {
			continue
		}
		m := it.m
		m.mu.Lock()
		already := m.hasReader(idx) || (!isGroup && m.count > 0)
		if !already {
			if m.pending == nil {
				m.pending = make(map[uint32]struct{})
			}
			m.pending[idx] = struct{}{}
			it.new = true
			pending = append(pending, it)
		}
		m.mu.Unlock()
		if it.new {
			if isGroup {
				b.Merge(readersKey(prefix(it), chunkOf(idx)), store.EncodeSetAdd(idx))
			}
			b.Merge(withSuffix(prefix(it), msgCount), store.EncodeCounter(1))
		}
	}
	if len(pending) > 0 {
		werr := e.st.Write(ctx, &b, e.writeOpts())
		for _, it := range pending {
			m := it.m
			m.mu.Lock()
			delete(m.pending, idx)
			if werr == nil {
				if isGroup {
					m.chunks[chunkOf(idx)].Add(idx)
				}
				m.count++
			}
			m.mu.Unlock()
		}
		if werr != nil {
			return nil, nil, internalErr("record receipts", werr)
		}
	}

	// Results of repeated mentions follow the first one.
	for i, r := range refs {
		if f := first[r.ID]; f != i {
			results[i].Err = results[f].Err
		}
	}
	var events []ReceiptEvent
	for _, it := range pending {
		results[it.pos].Recorded = true
		it.m.mu.Lock()
		count := it.m.count
		it.m.mu.Unlock()
		e.entries.charge(it.m, 2)
		events = append(events, newEvent(conv, it.m, it.meta, reader, refs[it.pos].ID, count))
	}
	return results, events, nil
}
