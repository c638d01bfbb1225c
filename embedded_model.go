package readreceipt

import (
	"context"

	"github.com/readreceipt/readreceipt/store"
)

// The embedded backend's part of the receipt model beyond the seed
// (model.go): a user's own read state and members' read times. The
// receipt path (receipt.go) records D, P and the read-time log; these
// calls read them.

func (e *embedded) readState(ctx context.Context, conv Conversation, user string, refs []MessageRef) ([]ReadState, error) {
	var err error
	isGroup := conv.Type == ConversationGroup
	ck := convKey(conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()

	var g *groupRecord
	var idx uint32
	var known bool
	if isGroup {
		if g, err = e.loadGroup(ctx, conv.GroupID); err != nil {
			return nil, err
		}
		if g != nil {
			if idx, known, err = e.memberIndex(ctx, conv.GroupID, g.Incarnation, user); err != nil {
				return nil, err
			}
		}
	} else {
		idx, known = c2cReader, true
	}
	out := make([]ReadState, len(refs))
	ms := make([]*msgEntry, len(refs))
	for i, r := range refs {
		out[i].MessageID = r.ID
		ms[i] = e.entries.acquire(messagePrefix(ck, r.ID))
	}
	defer e.releaseAll(ms)
	if err := e.loadEntries(ctx, ms...); err != nil {
		return nil, err
	}

	now := e.retentionNow()
	metas := make([]messageRecord, len(refs))
	var logs []int // messages whose read time is in their log
	var memo memberMemo
	for i, m := range ms {
		m.mu.Lock()
		metas[i], err = e.liveMeta(m, isGroup, g, now)
		m.mu.Unlock()
		if err != nil {
			out[i].Err = err
			continue
		}
		if err := admit(ctx, e, conv, user, idx, known, &metas[i], &memo); err != nil {
			if !perMessage(err) {
				return nil, err
			}
			out[i].Err = err
			continue
		}
		if isGroup {
			if err := e.ensureReaders(ctx, m, chunkOf(idx)); err != nil {
				return nil, err
			}
		}
		m.mu.Lock()
		delivered := m.dn() > 0
		m.mu.Unlock()
		if err := e.ensureModel(ctx, m, chunkOf(idx), delivered, true); err != nil {
			return nil, err
		}
		st := &out[i]
		m.mu.Lock()
		inR := m.isRead(idx, isGroup)
		inP, _ := m.inModel(idx, true)
		inD, _ := m.inDelivered(idx, isGroup)
		count, readAt := m.count, m.readAt
		m.mu.Unlock()
		st.Read = inR || inP
		st.Private = inP && !inR
		st.Delivered = st.Read || inD
		switch {
		case !isGroup && inR:
			st.ReadTime = readTime(conv, count, readAt)
		case e.cfg.readTimes && st.Read:
			logs = append(logs, i)
		}
	}
	if len(logs) == 0 {
		return out, nil
	}
	keys := make([][]byte, len(logs))
	logged := make([]*msgEntry, len(logs))
	for j, i := range logs {
		keys[j] = withSuffix([]byte(ms[i].key), msgReadLog)
		logged[j] = ms[i]
	}
	if err := e.rlog.settleFor(ctx, logged...); err != nil {
		return nil, err
	}
	vals, err := e.st.Get(ctx, keys)
	if err != nil {
		return nil, internalErr("read read times", err)
	}
	for j, i := range logs {
		log, err := decodeReadLog(vals[j])
		if err != nil {
			return nil, err
		}
		ts, err := readTimesOf(log, metas[i].TrackedAt, []uint32{idx}, out[i].Private)
		if err != nil {
			return nil, internalErr("decode read times", err)
		}
		out[i].ReadTime = ts[0]
	}
	return out, nil
}

func (e *embedded) readTimes(ctx context.Context, caller Caller, conv Conversation, ref MessageRef, users []string) ([]MemberReadTime, error) {
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
	m := e.entries.acquire(messagePrefix(ck, ref.ID))
	defer e.entries.release(m)
	if err := e.loadEntries(ctx, m); err != nil {
		return nil, err
	}
	m.mu.Lock()
	meta, err := e.liveMeta(m, isGroup, g, e.retentionNow())
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := e.authorize(ctx, e, caller, conv, &meta); err != nil {
		return nil, err
	}

	out := make([]MemberReadTime, len(users))
	if !isGroup {
		m.mu.Lock()
		count, readAt := m.count, m.readAt
		m.mu.Unlock()
		for i, u := range users {
			out[i].UserID = u
			if u != meta.Sender && conv.has(u) && count > 0 {
				out[i].Read = true
				out[i].ReadTime = readTime(conv, count, readAt)
			}
		}
		return out, nil
	}
	var idxs []uint32 // of the readers, for the log
	var at []int      // their positions in out
	for i, u := range users {
		out[i].UserID = u
		idx, known, err := e.memberIndex(ctx, conv.GroupID, meta.Incarnation, u)
		if err != nil {
			return nil, err
		}
		if !known || idx >= meta.EndIndex {
			continue
		}
		if err := e.ensureReaders(ctx, m, chunkOf(idx)); err != nil {
			return nil, err
		}
		m.mu.Lock()
		read := m.hasReader(idx)
		m.mu.Unlock()
		if read {
			out[i].Read = true
			idxs = append(idxs, idx)
			at = append(at, i)
		}
	}
	if !e.cfg.readTimes || len(idxs) == 0 {
		return out, nil
	}
	log, err := e.readLog(ctx, m)
	if err != nil {
		return nil, err
	}
	ts, err := readTimesOf(log, meta.TrackedAt, idxs, false)
	if err != nil {
		return nil, internalErr("decode read times", err)
	}
	for j, i := range at {
		out[i].ReadTime = ts[j]
	}
	return out, nil
}

// decodeReadLog decodes a stored read-time log (nil when there is none).
func decodeReadLog(v []byte) ([]byte, error) {
	log, err := store.DecodeAppend(v)
	if err != nil {
		return nil, internalErr("decode read times", err)
	}
	return log, nil
}
