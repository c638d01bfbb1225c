package readreceipt

import (
	"context"
	"sync"

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
	if err == nil && e.ownEventsWanted() {
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
	// settled: the call's pin on m has ended (commitReceipts), so the
	// call does not release it again.
	settled bool
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
	sc := getReceiptScratch(len(refs))
	defer putReceiptScratch(sc)
	ms := sc.ms[:len(refs)]
	firsts := sc.firsts[:len(refs)] // position of each mention's first mention
	items := sc.items[:0]
	buf := sc.buf[:0]
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
	sc.buf = buf
	defer func() {
		for k := range items {
			if !items[k].settled {
				e.entries.release(items[k].m)
			}
		}
		for i, f := range firsts {
			if f != i {
				e.entries.release(ms[i])
			}
		}
	}()
	distinct := sc.distinct[:len(items)]
	for k := range items {
		distinct[k] = items[k].m
	}
	if err := e.loadEntries(ctx, distinct...); err != nil {
		return nil, nil, err
	}

	// Who may send each receipt.
	now := e.retentionNow()
	var memo memberMemo
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
		if err := admit(ctx, e, conv, reader, idx, known, &it.meta, &memo); err != nil {
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
	pending, err := e.markPending(ctx, items, sc.pending[:0], idx, isGroup, mode)
	if err != nil {
		return nil, nil, err
	}
	readAt := e.now()
	if len(pending) > 0 {
		call := e.logCall(pending, idx, isGroup, readAt)
		werr := e.rlog.write(ctx, call)
		e.commitReceipts(pending, idx, isGroup, readAt, werr == nil)
		if werr != nil {
			call.free()
			return nil, nil, internalErr("record receipts", werr)
		}
		e.rlog.committed(call)
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
		results[it.pos].Recorded = true // charged by commitReceipts
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

// receiptScratch holds a receipt call's working slices, reused between
// calls: a call of 30 messages would otherwise allocate some 3 KB of them.
type receiptScratch struct {
	ms, distinct []*msgEntry
	firsts       []int
	items        []receiptItem
	pending      []*receiptItem
	buf          []byte
}

var receiptScratchPool sync.Pool

func getReceiptScratch(n int) *receiptScratch {
	sc, _ := receiptScratchPool.Get().(*receiptScratch)
	if sc == nil {
		sc = &receiptScratch{}
	}
	if cap(sc.ms) < n {
		sc.ms, sc.distinct = make([]*msgEntry, n), make([]*msgEntry, n)
		sc.firsts = make([]int, n)
		sc.items = make([]receiptItem, 0, n)
		sc.pending = make([]*receiptItem, 0, n)
	}
	return sc
}

// putReceiptScratch clears what sc points to (entries, records and their
// strings) and keeps it for the next call.
func putReceiptScratch(sc *receiptScratch) {
	clear(sc.ms[:cap(sc.ms)])
	clear(sc.distinct[:cap(sc.distinct)])
	clear(sc.items[:cap(sc.items)])
	clear(sc.pending[:cap(sc.pending)])
	receiptScratchPool.Put(sc)
}

// ensureFor loads what a receipt of mode by reader idx on m decides on,
// beyond the reader's chunk of readers: its chunk of D, unless dn is 0 on
// the read path (the common case: nothing to load), and of P for a private
// read.
func (e *embedded) ensureFor(ctx context.Context, m *msgEntry, idx uint32, isGroup bool, mode receiptMode) error {
	m.mu.Lock()
	delivered := mode != modeRead || m.dn() > 0
	if !delivered || !m.exists || !m.meta.ownCount() {
		// A read while dn is 0 decides on R alone; a message whose
		// recipients fit one chunk keeps D and P with its readers.
		m.mu.Unlock()
		return nil
	}
	read := m.isRead(idx, isGroup)
	m.mu.Unlock()
	if read {
		return nil
	}
	return e.ensureModel(ctx, m, chunkOf(idx), delivered, mode == modeReadPrivate)
}

// logCall is the receipt log's record of reader idx's pending receipts
// (rlog.go): what each records, and where. Folded, it writes for a read
// its reader chunk (or, C2C, the read time) and the counter; for a
// delivery or a private read D and P (in the readers' chunk 0 of a
// one-chunk message, else in their own keys) and dn (in the counter); with
// WithReadTimes, the read-time log entry of a new public or private read.
func (e *embedded) logCall(pending []*receiptItem, idx uint32, isGroup bool, readAt int64) *logCall {
	c := newLogCall(len(pending))
	c.isGroup, c.readTimes, c.idx, c.readAt = isGroup, e.cfg.readTimes, idx, readAt
	for i, it := range pending {
		c.items[i] = logItem{m: it.m, key: it.m.key, act: it.act, own: it.meta.ownCount(), trackedAt: it.meta.TrackedAt}
	}
	return c
}

// commitReceipts ends the pending marks of a write and, if it succeeded
// (written: the log record is durable), records the receipts in the cached
// state, which is now ahead of the store's per-message keys until the
// record is folded: the entry stays pinned until then, by the call's own
// pin, which passes to the receipt log. Either way it ends the call's pin
// on each entry (settled). The call still reads the entries for its
// events: the log pins them until their fold, and one the table drops
// after it is only read (nobody writes an unpinned entry), with a count
// that includes this call's receipt.
func (e *embedded) commitReceipts(pending []*receiptItem, idx uint32, isGroup bool, readAt int64, written bool) {
	for _, it := range pending {
		m := it.m
		var added int64
		keep := false
		m.mu.Lock()
		m.unmark(idx)
		if written {
			// Two bytes a receipt besides what the entry's state grew by:
			// the estimate the entry table has always charged for one.
			added = 2 + m.commit(idx, isGroup, readAt, it.act)
			keep = m.unfolded == 0
			m.unfolded++
		}
		m.mu.Unlock()
		e.entries.settle(m, keep, added)
		it.settled = true
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
func (e *embedded) markPending(ctx context.Context, items []receiptItem, pending []*receiptItem, idx uint32, isGroup bool, mode receiptMode) ([]*receiptItem, error) {
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
			if m.isPending(idx) {
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
		for busy.isPending(idx) {
			busy.wait()
		}
		busy.mu.Unlock()
	}
}

// collapseEvery is how many merge operands (one per fold that touched
// it) a message takes before its readers and count are written whole
// again. Tests lower it.
var collapseEvery = 1024

// collapseInto adds to b a hot message's loaded reader chunks, its loaded
// chunks of D and P, and its counter as whole values, so that a store that
// folds lazily (Pebble, until it flushes) never has many more merge
// operands than collapseEvery to fold when the message is read cold, after
// a restart or an eviction. The caller (fold) holds m.mu and has checked
// that the whole value is exact (see fold).
// Only loaded chunks ever take receipts (ensureReaders, ensureModel), so
// every key with operands is written. The read-time log is not collapsed:
// it is never on the receipt path's reads, and a store folds an append in
// one pass over its operands. It reports false, adding nothing, if a set
// cannot be encoded.
func (e *embedded) collapseInto(b *store.Batch, m *msgEntry) bool {
	prefix := []byte(m.key)
	var ops store.Batch
	put := func(key []byte, bm *roaring.Bitmap) bool {
		if bm == nil || bm.IsEmpty() {
			return true
		}
		v, err := store.EncodeSet(bm)
		if err != nil {
			return false
		}
		ops.Set(key, v)
		return true
	}
	own := m.meta.ownCount()
	if !m.eachReaders(func(hi uint16, s idxSet) bool {
		bm := s.roaring(hi)
		if !own && hi == 0 && m.mdl() != nil {
			bm = joinPacked(bm, m.modelChunk(0, false), m.modelChunk(0, true))
		}
		return put(readersKey(prefix, hi), bm)
	}) {
		return false
	}
	if own {
		if x := m.mdl(); x != nil {
			for _, c := range x.delivered {
				if !put(appendU16(withSuffix(prefix, msgDelivered), c.hi), c.bm) {
					return false
				}
			}
			for _, c := range x.private {
				if !put(appendU16(withSuffix(prefix, msgPrivate), c.hi), c.bm) {
					return false
				}
			}
		}
		ops.Set(withSuffix(prefix, msgCount), store.EncodeCounter(packCount(m.count, m.dn())))
	}
	for _, op := range ops.Ops() {
		b.Set(op.Key, op.Value)
	}
	return true
}
