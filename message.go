package readreceipt

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/readreceipt/readreceipt/store"
)

// releaseAll unpins entries.
func (e *embedded) releaseAll(ms []*msgEntry) {
	for _, m := range ms {
		e.entries.release(m)
	}
}

// loadEntries reads the meta of every entry not loaded yet, in one store
// call, then, in a second, the count of each message that exists: its
// counter, or its readers where the count is their size (see
// messageRecord.ownCount). A message that does not exist, as every new one
// when it is tracked, costs one lookup. Like ensureReaders it reads without
// holding the entries' locks and fills only entries still unloaded
// afterwards.
func (e *embedded) loadEntries(ctx context.Context, ms ...*msgEntry) error {
	var keys [][]byte
	var want []*msgEntry
	for _, m := range ms {
		m.mu.Lock()
		if !m.loaded {
			want = append(want, m)
			keys = append(keys, withSuffix([]byte(m.key), msgMeta))
		}
		m.mu.Unlock()
	}
	if len(want) == 0 {
		return nil
	}
	metas, err := e.st.Get(ctx, keys)
	if err != nil {
		return internalErr("read message", err)
	}
	// What the store holds of each wanted message. Most calls load one
	// message that does not exist yet (a track): they allocate nothing
	// more.
	var found []loadedMessage
	keys = keys[:0]
	var owners []int
	var like *messageRecord // the message decoded last, whose strings the next may share
	for i, m := range want {
		if metas[i] == nil {
			continue
		}
		if found == nil {
			found = make([]loadedMessage, len(want))
		}
		if found[i].rec, err = decodeMessageLike(metas[i], like); err != nil {
			return internalErr("decode message", err)
		}
		like = &found[i].rec
		if found[i].rec.ownCount() {
			keys = append(keys, withSuffix([]byte(m.key), msgCount))
		} else {
			keys = append(keys, readersKey([]byte(m.key), 0))
		}
		owners = append(owners, i)
	}
	// A C2C message's read time follows, after every count.
	var c2c []int
	for _, i := range owners {
		if found[i].rec.Incarnation == 0 {
			keys = append(keys, withSuffix([]byte(want[i].key), msgReadAt))
			c2c = append(c2c, i)
		}
	}
	if len(keys) > 0 {
		vals, err := e.st.Get(ctx, keys)
		if err != nil {
			return internalErr("read message", err)
		}
		for j, i := range c2c {
			if v := vals[len(owners)+j]; len(v) == 8 {
				found[i].readAt = int64(binary.BigEndian.Uint64(v))
			}
		}
		for j, i := range owners {
			f := &found[i]
			if f.rec.ownCount() {
				if f.count, err = store.DecodeCounter(vals[j]); err != nil {
					return internalErr("decode count", err)
				}
				continue
			}
			if f.readers, err = store.DecodeSet(vals[j]); err != nil {
				return internalErr("decode readers", err)
			}
			f.count = int64(f.readers.GetCardinality())
		}
	}
	for i, m := range want {
		var f loadedMessage
		if found != nil {
			f = found[i]
		}
		m.mu.Lock()
		added := m.load(metas[i] != nil, f.rec, f.count, f.readAt, f.readers)
		m.mu.Unlock()
		e.entries.charge(m, added)
	}
	return nil
}

// loadedMessage is what loadEntries read of one message that exists.
type loadedMessage struct {
	rec     messageRecord
	count   int64
	readAt  int64
	readers *roaring.Bitmap
}

// liveMeta returns the meta of a message that has receipt info: tracked,
// not deleted, not expired, and in the current incarnation of its group (g
// is nil for a C2C message; for a group message, g is nil when the group is
// gone). The caller holds m.mu.
func (e *embedded) liveMeta(m *msgEntry, isGroup bool, g *groupRecord, now int64) (messageRecord, error) {
	var inc uint64
	if g != nil {
		inc = g.Incarnation
	}
	if err := e.liveErr(m.exists, &m.meta, isGroup, inc, now); err != nil {
		return messageRecord{}, err
	}
	return m.meta, nil
}

// TrackMessage registers a sent message that asks for read receipts. Its
// recipients are fixed now: the C2C peer, or the group's current members
// minus the sender. Tracking a message again with the same sender is a
// no-op; with another sender it fails with ErrAlreadyTracked. Tracking costs
// the same in a group of ten and of a million: the recipients are the
// group's current membership snapshot, not a copy of it.
//
// It fails with ErrGroupNotFound for an unknown group, ErrGroupTypeDisabled
// if the group's type does not support receipts, ErrInvalidParameter for bad
// IDs or a C2C sender outside the conversation, ErrFeatureDisabled when the
// feature is off.
func (e *Engine) TrackMessage(ctx context.Context, msg Message) error {
	if err := e.enterReceipts(); err != nil {
		return err
	}
	defer e.leave()
	if err := e.validConversation(msg.Conversation); err != nil {
		return err
	}
	if err := validID("message ID", msg.ID, e.cfg.maxIDLength); err != nil {
		return err
	}
	if err := validID("sender", msg.Sender, e.cfg.maxIDLength); err != nil {
		return err
	}
	if err := e.validThread(msg.Thread); err != nil {
		return err
	}
	conv := msg.Conversation
	if conv.Type == ConversationC2C && !conv.has(msg.Sender) {
		return errorf(ErrInvalidParameter, "sender %q is not in %s", msg.Sender, conv)
	}
	return e.be.trackMessage(ctx, msg)
}

func (e *embedded) trackMessage(ctx context.Context, msg Message) error {
	conv := msg.Conversation
	isGroup := conv.Type == ConversationGroup
	// The conversation's key is copied into every key of the track and
	// kept by none: it can live on the stack.
	var ckBuf [64]byte
	ck := appendConvKey(ckBuf[:0], conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()

	// The track time is kept to the microsecond (the order keys' unit;
	// the meta takes two bytes less, see messageV2).
	now := e.now()
	now -= now % 1000
	rec := messageRecord{Sender: msg.Sender, TrackedAt: now, SenderIndex: noIndex, Recipients: 1, Nonce: rand.Uint32(), Thread: msg.Thread}
	var g *groupRecord
	if isGroup {
		gr, err := e.existingGroupRecord(ctx, conv.GroupID)
		if err != nil {
			return err
		}
		g = &gr
		if !e.groupTypeEnabled(g.Type) {
			return errorf(ErrGroupTypeDisabled, "group %q is %s", conv.GroupID, g.Type)
		}
		rec.Incarnation, rec.Version, rec.EndIndex = g.Incarnation, g.Version, g.NextIndex
		rec.Recipients = g.Members
		idx, known, err := e.memberIndex(ctx, conv.GroupID, g.Incarnation, msg.Sender)
		if err != nil {
			return err
		}
		if known {
			member, err := wasMember(ctx, e, conv.GroupID, g.Incarnation, idx, g.Version)
			if err != nil {
				return err
			}
			if member {
				rec.SenderIndex = idx
				rec.Recipients--
			}
		}
	}

	// The keys that the track writes, in one allocation: the batch keeps
	// them until the write returned. The meta key is the message prefix
	// and a suffix byte, so the prefix is its start.
	p := msgPos(rec.TrackedAt, msg.ID)
	size := timeKeyLen(ck, msg.ID) + 2 + len(ck) + 1 + len(msg.ID) + 1 + orderKeyLen(ck, "", msg.ID)
	if rec.Thread != "" {
		size += orderKeyLen(ck, rec.Thread, msg.ID)
	}
	if isGroup {
		size += versionCountKeyLen(conv.GroupID)
	}
	keys := newKeyArena(size)
	keys.b = append(appendMessagePrefix(keys.b, ck, msg.ID), msgMeta)
	metaKey := keys.take()
	prefix := metaKey[: len(metaKey)-1 : len(metaKey)-1]
	keys.b = appendTimeKey(keys.b, rec.TrackedAt, ck, msg.ID)
	timeK := keys.take()
	keys.b = appendOrderKey(keys.b, ck, "", p)
	orderK := keys.take()
	var threadK, countK []byte
	if rec.Thread != "" {
		keys.b = appendOrderKey(keys.b, ck, rec.Thread, p)
		threadK = keys.take()
	}
	if isGroup {
		keys.b = appendVersionCountKey(keys.b, conv.GroupID, rec.Version)
		countK = keys.take()
	}

	m := e.entries.acquire(prefix)
	defer e.entries.release(m)
	// m.mu is held across the write so that two calls tracking the same
	// message cannot both write it.
	m.mu.Lock()
	var freed int64
	defer func() {
		m.mu.Unlock()
		e.entries.charge(m, -freed)
	}()
	b := trackBatches.Get().(*store.Batch)
	defer func() {
		b.Reset()
		trackBatches.Put(b)
	}()
	if !m.loaded {
		// Nothing known of the message, as for nearly every track: write
		// it as new unless its meta is in the store (writeNew looks, and
		// shares the lookup with concurrent tracks); if it is, load it and
		// go on as for a known message.
		newMessageOps(b, metaKey, timeK, orderK, threadK, countK, &rec)
		present, err := e.commits.writeNew(ctx, b, e.writeOpts(), metaKey)
		if err != nil {
			return internalErr("track message", err)
		}
		if !present {
			m.load(false, messageRecord{}, 0, 0, nil)
			freed = m.track(rec)
			return nil
		}
		b.Reset()
		m.mu.Unlock()
		err = e.loadEntries(ctx, m)
		m.mu.Lock()
		if err != nil {
			return err
		}
	}
	// A dead message about to be replaced may still have receipts being
	// written (admitted just before it expired) or in the log: they go
	// before its keys do, or they would land on the new message's keys.
	for m.exists && (m.anyPending() || m.unfolded > 0) {
		if m.anyPending() {
			m.wait()
			continue
		}
		m.mu.Unlock()
		err := e.rlog.settle(ctx)
		m.mu.Lock()
		if err != nil {
			return err
		}
	}
	if m.exists {
		if _, err := e.liveMeta(m, isGroup, g, e.retentionNow()); err == nil {
			if m.meta.Sender == msg.Sender {
				return nil
			}
			return errorf(ErrAlreadyTracked, "message %q is tracked with sender %q", msg.ID, m.meta.Sender)
		}
		// The old message expired or its group was dismissed; it is not
		// swept yet. Replace it.
		b.DeleteRange(prefix, prefixEnd(prefix))
		b.Delete(timeKey(m.meta.TrackedAt, ck, msg.ID))
		deleteOrderKeys(b, ck, msg.ID, &m.meta)
		if isGroup && m.meta.Incarnation == g.Incarnation {
			b.Merge(versionCountKey(conv.GroupID, m.meta.Version), versionCountDown)
		}
	}
	newMessageOps(b, metaKey, timeK, orderK, threadK, countK, &rec)
	// Concurrent tracks share one synced write (commit.go); this returns
	// once this track's own operations are durable.
	if err := e.commits.write(ctx, b, e.writeOpts()); err != nil {
		return internalErr("track message", err)
	}
	freed = m.track(rec)
	return nil
}

// newMessageOps adds to b the keys a track writes for a new message with
// meta rec: its meta, its time key, its order keys (those of
// setOrderKeys; threadK is nil without a thread) and, for a group message
// (countK not nil), a count for its membership version, which tells the
// membership sweep that rec.Version's snapshot is still needed.
func newMessageOps(b *store.Batch, metaKey, timeK, orderK, threadK, countK []byte, rec *messageRecord) {
	meta := rec.encode()
	b.Set(metaKey, meta[:len(meta):len(meta)])
	b.Set(timeK, nil)
	b.Set(orderK, nil)
	if threadK != nil {
		b.Set(threadK, nil)
	}
	if countK != nil {
		b.Merge(countK, versionCountUp)
	}
}

// trackBatches recycles the batches of trackMessage: a track's batch is
// free again once its write returned (the store, or the committer's group,
// keeps none of the batch's own memory, only the keys and values it holds).
var trackBatches = sync.Pool{New: func() any { return new(store.Batch) }}

// DeleteMessage removes a message's receipt state, as when the message is
// recalled or deleted: afterwards every call for it answers
// ErrReceiptNotFound, and its storage is released. Deleting a message that
// is not tracked is a no-op. It works while the feature is switched off.
func (e *Engine) DeleteMessage(ctx context.Context, ref MessageRef) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if err := e.validConversation(ref.Conversation); err != nil {
		return err
	}
	if err := validID("message ID", ref.ID, e.cfg.maxIDLength); err != nil {
		return err
	}
	return e.be.deleteMessage(ctx, ref)
}

func (e *embedded) deleteMessage(ctx context.Context, ref MessageRef) error {
	ck := convKey(ref.Conversation)
	lock := e.convLock(ck)
	lock.Lock()
	defer lock.Unlock()
	_, err := e.deleteMessages(ctx, ref.Conversation, []string{ref.ID}, nil)
	return err
}

// deleteMessages deletes messages of one conversation, whose lock the
// caller holds for writing. When trackedAt is not nil, a message is deleted
// only if it is the one tracked at that time (the expiry sweep), and the
// expiry key of each given time is removed in any case. It returns how many
// messages were deleted. When group messages go, the group is marked, in the
// same batch, for the sweep to look for membership chunks nobody needs.
func (e *embedded) deleteMessages(ctx context.Context, conv Conversation, ids []string, trackedAt []int64) (int, error) {
	ck := convKey(conv)
	isGroup := conv.Type == ConversationGroup
	var g *groupRecord
	if isGroup {
		var err error
		if g, err = e.loadGroup(ctx, conv.GroupID); err != nil {
			return 0, err
		}
	}
	ms := make([]*msgEntry, len(ids))
	for i, id := range ids {
		ms[i] = e.entries.acquire(messagePrefix(ck, id))
	}
	defer e.releaseAll(ms)
	if err := e.loadEntries(ctx, ms...); err != nil {
		return 0, err
	}
	// The caller's write lock keeps receipts off these messages; their
	// receipts still in the log are folded before the keys go.
	if err := e.rlog.settleFor(ctx, ms...); err != nil {
		return 0, err
	}
	var b store.Batch
	var doomed []*msgEntry
	marked := false
	for i, m := range ms {
		id := ids[i]
		if trackedAt != nil {
			b.Delete(timeKey(trackedAt[i], ck, id))
		}
		m.mu.Lock()
		match := m.exists && (trackedAt == nil || m.meta.TrackedAt == trackedAt[i])
		meta := m.meta
		m.mu.Unlock()
		if !match {
			continue
		}
		prefix := []byte(m.key)
		b.DeleteRange(prefix, prefixEnd(prefix))
		if trackedAt == nil {
			b.Delete(timeKey(meta.TrackedAt, ck, id))
		}
		deleteOrderKeys(&b, ck, id, &meta)
		if isGroup && g != nil && g.Incarnation == meta.Incarnation {
			b.Merge(versionCountKey(conv.GroupID, meta.Version), versionCountDown)
			if !marked {
				b.Set(gcKey(conv.GroupID), nil)
				marked = true
			}
		}
		doomed = append(doomed, m)
	}
	if err := e.st.Write(ctx, &b, e.writeOpts()); err != nil {
		return 0, internalErr("delete message", err)
	}
	for _, m := range doomed {
		m.mu.Lock()
		freed := m.reset()
		m.mu.Unlock()
		e.entries.charge(m, -freed)
	}
	return len(doomed), nil
}

// setOrderKeys writes a message's keys in its conversation's order and, if
// it has one, its thread's; deleteOrderKeys deletes them.
func setOrderKeys(b *store.Batch, ck []byte, id string, meta *messageRecord) {
	p := msgPos(meta.TrackedAt, id)
	b.Set(orderKey(ck, "", p), nil)
	if meta.Thread != "" {
		b.Set(orderKey(ck, meta.Thread, p), nil)
	}
}

func deleteOrderKeys(b *store.Batch, ck []byte, id string, meta *messageRecord) {
	p := msgPos(meta.TrackedAt, id)
	b.Delete(orderKey(ck, "", p))
	if meta.Thread != "" {
		b.Delete(orderKey(ck, meta.Thread, p))
	}
}
