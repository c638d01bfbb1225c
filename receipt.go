package readreceipt

import (
	"context"
	"encoding/binary"

	"github.com/RoaringBitmap/roaring/v2"
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
// While reader's receipts are private (SetReceiptsPrivate) the reads are
// recorded for the reader's own state only, and Recorded reports that the
// reader's own state changed. Every call that recorded a read also sends
// the reader's devices an OwnReadEvent (SubscribeOwnReads).
//
// The call as a whole fails, recording nothing, on bad input
// (ErrInvalidParameter), too many messages (ErrTooManyMessages), messages
// of several conversations (ErrMixedConversations), while the feature is
// off (ErrFeatureDisabled), or when the store fails (ErrInternal).
func (e *Engine) SendMessageReadReceipt(ctx context.Context, reader string, messages []MessageRef) ([]ReceiptResult, error) {
	if err := e.enterReceipts(); err != nil {
		return nil, err
	}
	defer e.leave()
	if err := validID("reader", reader, e.cfg.maxIDLength); err != nil {
		return nil, err
	}
	conv, err := e.validRefs(messages, e.cfg.maxMessagesPerCall)
	if err != nil {
		return nil, err
	}
	mode, err := e.readMode(ctx, reader)
	if err != nil {
		return nil, err
	}
	results, events, err := e.be.receipts(ctx, conv, reader, messages, mode)
	var own []OwnReadEvent
	if err == nil {
		if ev, ok := ownEvent(reader, conv, messages, results); ok {
			own = []OwnReadEvent{ev}
		}
	}
	e.deliver(ctx, events, own)
	return results, err
}

// receiptItem is one distinct message of a receipt call.
type receiptItem struct {
	pos  int // position in the call
	m    *msgEntry
	meta messageRecord
	ok   bool       // the reader may send this receipt
	act  receiptAct // what it records, once pending
}

func (e *embedded) receipts(ctx context.Context, conv Conversation, reader string, refs []MessageRef, mode receiptMode) ([]ReceiptResult, []ReceiptEvent, error) {
	var err error
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

	// One item per distinct message: a repeated mention pins the same
	// entry again, and takes its first mention's outcome.
	results := make([]ReceiptResult, len(refs))
	ms := make([]*msgEntry, len(refs))
	firsts := make([]int, len(refs)) // position of each mention's first mention
	items := make([]receiptItem, 0, len(refs))
	var buf []byte
	for i, r := range refs {
		results[i].MessageID = r.ID
		buf = appendMessagePrefix(buf[:0], ck, r.ID)
		ms[i] = e.entries.acquire(buf)
		firsts[i] = i
		for j := range i {
			if ms[j] == ms[i] {
				firsts[i] = firsts[j]
				break
			}
		}
		if firsts[i] == i {
			items = append(items, receiptItem{pos: i, m: ms[i]})
		}
	}
	defer e.releaseAll(ms)
	distinct := make([]*msgEntry, len(items))
	for k := range items {
		distinct[k] = items[k].m
	}
	if err := e.loadEntries(ctx, distinct...); err != nil {
		return nil, nil, err
	}

	// Who may send each receipt.
	now := e.retentionNow()
	for k := range items {
		it := &items[k]
		it.m.mu.Lock()
		it.meta, err = e.liveMeta(it.m, isGroup, g, now)
		it.m.mu.Unlock()
		res := &results[it.pos]
		if err != nil {
			res.Err = err
			continue
		}
		if err := admit(ctx, e, conv, reader, idx, known, &it.meta); err != nil {
			if !perMessage(err) {
				return nil, nil, err
			}
			res.Err = err
			continue
		}
		if isGroup {
			if err := e.ensureReaders(ctx, it.m, chunkOf(idx)); err != nil {
				return nil, nil, err
			}
		}
		if err := e.ensureFor(ctx, it.m, idx, isGroup, mode); err != nil {
			return nil, nil, err
		}
		it.ok = true
	}

	// Mark the new receipts pending, write them in one batch, and commit
	// them to the cached state once the write succeeded.
	pending, err := e.markPending(ctx, items, idx, isGroup, mode)
	if err != nil {
		return nil, nil, err
	}
	readAt := e.now()
	if len(pending) > 0 {
		werr := e.writeReceipts(ctx, pending, idx, isGroup, readAt)
		e.commitReceipts(pending, idx, isGroup, readAt, werr == nil)
		if werr != nil {
			return nil, nil, internalErr("record receipts", werr)
		}
		for _, it := range pending {
			e.collapse(ctx, it.m)
		}
	}

	// Results of repeated mentions follow the first one.
	for i, f := range firsts {
		if f != i {
			results[i].Err = results[f].Err
		}
	}
	var events []ReceiptEvent
	if e.subs.any() {
		events = make([]ReceiptEvent, 0, len(pending))
	}
	for _, it := range pending {
		results[it.pos].Recorded = true
		e.entries.charge(it.m, 2)
		if events != nil && it.act&(actRead|actDeliver) != 0 {
			it.m.mu.Lock()
			count, dn := it.m.count, it.m.dn()
			it.m.mu.Unlock()
			kind := EventRead
			if it.act&actRead == 0 {
				kind = EventDelivered // a private read tells the sender only this
			}
			events = append(events, newEvent(kind, conv, it.meta, reader, refs[it.pos].ID, count, count+dn, readAt))
		}
	}
	return results, events, nil
}

// ensureFor loads what a receipt of mode by reader idx on m decides on,
// beyond the reader's chunk of readers: its chunk of D, unless dn is 0 on
// the read path (the common case: nothing to load), and of P for a private
// read.
func (e *embedded) ensureFor(ctx context.Context, m *msgEntry, idx uint32, isGroup bool, mode receiptMode) error {
	m.mu.Lock()
	read := m.isRead(idx, isGroup)
	delivered := mode != modeRead || m.dn() > 0
	m.mu.Unlock()
	if read {
		return nil
	}
	return e.ensureModel(ctx, m, chunkOf(idx), delivered, mode == modeReadPrivate)
}

// writeReceipts writes reader idx's pending receipts in one batch: for a
// read its reader chunk (or, C2C, the read time) and the counter; for a
// delivery or a private read D and P (in the readers' chunk 0 of a
// one-chunk message, else in their own keys) and dn (in the counter); with
// WithReadTimes, the read-time log entry of a new public or private read.
// A read of a message with dn 0 writes exactly what it wrote before D
// existed.
func (e *embedded) writeReceipts(ctx context.Context, pending []*receiptItem, idx uint32, isGroup bool, readAt int64) error {
	// Every receipt of the call adds the same reader: one operand serves
	// them all, and the keys share one allocation.
	var b store.Batch
	hi := chunkOf(idx)
	add, one := store.EncodeSetAdd(idx), store.EncodeCounter(1)
	size := 0
	for _, it := range pending {
		size += writeKeys(it.act, it.meta.ownCount(), isGroup, e.cfg.readTimes) * (len(it.m.key) + 3)
	}
	var at []byte
	keys := make([]byte, 0, size)
	key := func(m *msgEntry, suffix ...byte) []byte {
		start := len(keys)
		keys = append(keys, m.key...)
		keys = append(keys, suffix...)
		return keys[start:len(keys):len(keys)]
	}
	for _, it := range pending {
		act, own := it.act, it.meta.ownCount()
		if isGroup && act&actRead != 0 {
			b.Merge(key(it.m, msgReaders, byte(hi>>8), byte(hi)), add)
		}
		if isGroup && !own && act&(actDeliver|actPrivate) != 0 {
			var vals []uint32
			if act&actDeliver != 0 {
				vals = append(vals, idx+packDelivered)
			}
			if act&actPrivate != 0 {
				vals = append(vals, idx+packPrivate)
			}
			b.Merge(key(it.m, msgReaders, 0, 0), store.EncodeSetAdd(vals...))
		}
		if own {
			var d int64
			if act&actRead != 0 {
				d++
			}
			if act&actDeliver != 0 {
				d += 1 << 32
			}
			if act&actUndeliver != 0 {
				d -= 1 << 32
			}
			switch d {
			case 0:
			case 1:
				b.Merge(key(it.m, msgCount), one)
			default:
				b.Merge(key(it.m, msgCount), store.EncodeCounter(d))
			}
			if isGroup && act&actDeliver != 0 {
				b.Merge(key(it.m, msgDelivered, byte(hi>>8), byte(hi)), add)
			}
			if act&actPrivate != 0 {
				b.Merge(key(it.m, msgPrivate, byte(hi>>8), byte(hi)), add)
			}
		}
		if !isGroup && act&actRead != 0 {
			if at == nil {
				at = binary.BigEndian.AppendUint64(nil, uint64(readAt))
			}
			b.Set(key(it.m, msgReadAt), at)
		}
		if e.cfg.readTimes && act&(actRead|actPrivate) != 0 {
			entry := appendReadTime(nil, idx, act&actRead == 0, it.meta.TrackedAt, readAt)
			b.Merge(key(it.m, msgReadLog), store.EncodeAppend(entry))
		}
	}
	return e.st.Write(ctx, &b, e.writeOpts())
}

// writeKeys is how many keys writeReceipts writes for a receipt act.
func writeKeys(act receiptAct, own, isGroup, readTimes bool) int {
	n := 0
	if act&actRead != 0 {
		n++ // readers, or the C2C read time
	}
	if own {
		n++ // the counter
	}
	if act&actDeliver != 0 {
		n++
	}
	if act&actPrivate != 0 {
		n++
	}
	if readTimes && act&(actRead|actPrivate) != 0 {
		n++
	}
	return n
}

// commitReceipts ends the pending marks of a write and, if it succeeded
// (written), records the receipts in the cached state.
func (e *embedded) commitReceipts(pending []*receiptItem, idx uint32, isGroup bool, readAt int64, written bool) {
	for _, it := range pending {
		m := it.m
		var added int64
		m.mu.Lock()
		m.unmark(idx)
		if written {
			added = m.commit(idx, isGroup, readAt, it.act)
		}
		m.mu.Unlock()
		e.entries.charge(m, added)
	}
}

// markPending marks reader idx pending on every message of items that may
// take its receipt of mode and has not yet, and returns those items with
// what each records (decide).
//
// A receipt of the same reader already pending in another call is not yet
// durable: answering "already recorded" now would acknowledge a write that
// may still fail or be lost in a crash. So, like a message being collapsed
// (which takes no new marks), it makes the call give back the marks it
// made, wait until that message is free again and start over: then the
// receipt is either committed (already recorded, and durable) or gone (the
// call marks and writes it itself). A call never waits while holding marks,
// so two calls never wait for each other. The same holds for deliveries
// and private reads: D, P and dn change only through receipts marked
// pending, so two calls never both count one reader in dn.
//
// A receipt that depends on a chunk of D or P not loaded (dn rose since
// ensureFor looked) also makes the call give back its marks, load it and
// start over.
func (e *embedded) markPending(ctx context.Context, items []receiptItem, idx uint32, isGroup bool, mode receiptMode) ([]*receiptItem, error) {
	pending := make([]*receiptItem, 0, len(items))
	for {
		pending = pending[:0]
		var busy, unloaded *msgEntry
		for k := range items {
			it := &items[k]
			if !it.ok {
				continue
			}
			m := it.m
			m.mu.Lock()
			if m.collapsing || m.isPending(idx) {
				m.mu.Unlock()
				busy = m
				break
			}
			act, known := m.decide(idx, isGroup, mode)
			if !known {
				m.mu.Unlock()
				unloaded = m
				break
			}
			if act != 0 {
				m.mark(idx)
				it.act = act
				pending = append(pending, it)
			}
			m.mu.Unlock()
		}
		if busy == nil && unloaded == nil {
			return pending, nil
		}
		for _, it := range pending {
			it.m.mu.Lock()
			it.m.unmark(idx)
			it.m.mu.Unlock()
		}
		if unloaded != nil {
			if err := e.ensureFor(ctx, unloaded, idx, isGroup, mode); err != nil {
				return nil, err
			}
			continue
		}
		busy.mu.Lock()
		for busy.collapsing || busy.isPending(idx) {
			busy.wait()
		}
		busy.mu.Unlock()
	}
}

// collapseEvery is how many receipts a message takes as merge deltas before
// its readers and count are written whole again. Tests lower it.
var collapseEvery = 1024

// collapse writes a hot message's loaded reader chunks, its loaded chunks
// of D and P, and its counter as whole values once it has taken
// collapseEvery deltas, so that a store that
// folds lazily (Pebble, until it flushes) never has many more deltas than
// that to fold when the message is read cold, after a restart or an
// eviction.
//
// A whole value must not overtake a delta still being written, or it would
// hide it; so the collapse stops new marks (markPending), waits until no
// receipt of m is pending, and writes while holding m.mu: the cached state
// is then exactly what the store's deltas add up to. The write carries no
// new information, so it is not synced, and if it fails the deltas simply
// stay (the next receipt tries again). Only loaded chunks ever take deltas
// (ensureReaders, ensureModel), so every key with deltas is written. The
// read-time log is not collapsed: it is never on the receipt path's reads,
// and a store folds an append in one pass over its operands.
func (e *embedded) collapse(ctx context.Context, m *msgEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(m.deltas) < collapseEvery || m.collapsing || !m.exists {
		return
	}
	m.collapsing = true
	defer func() {
		m.collapsing = false
		if m.cond != nil {
			m.cond.Broadcast()
		}
	}()
	for len(m.pending) > 0 {
		m.wait()
	}
	if !m.exists {
		return
	}
	prefix := []byte(m.key)
	var b store.Batch
	put := func(key []byte, bm *roaring.Bitmap) bool {
		if bm == nil || bm.IsEmpty() {
			return true
		}
		v, err := store.EncodeSet(bm)
		if err != nil {
			return false
		}
		b.Set(key, v)
		return true
	}
	own := m.meta.ownCount()
	for _, c := range m.chunks {
		bm := c.bm
		if !own && c.hi == 0 && m.model != nil {
			bm = joinPacked(bm, m.model.delivered.get(0), m.model.private.get(0))
		}
		if !put(readersKey(prefix, c.hi), bm) {
			return
		}
	}
	if own {
		if x := m.model; x != nil {
			for _, c := range x.delivered {
				if !put(appendU16(withSuffix(prefix, msgDelivered), c.hi), c.bm) {
					return
				}
			}
			for _, c := range x.private {
				if !put(appendU16(withSuffix(prefix, msgPrivate), c.hi), c.bm) {
					return
				}
			}
		}
		b.Set(withSuffix(prefix, msgCount), store.EncodeCounter(packCount(m.count, m.dn())))
	}
	if e.st.Write(context.WithoutCancel(ctx), &b, store.WriteOptions{}) == nil {
		m.collapsed()
	}
}
