package readreceipt

import (
	"context"
	"fmt"
	"strconv"
)

// The Redis backend's part of the receipt model beyond the seed
// (model.go): a user's own read state and read times. Each is one call of
// a function (rr_state, rr_times in redis.lua) that reads, on the
// conversation's slot, the messages' metas with the sets the answer needs;
// the engine then decides admission and access as for receipts and
// counts.

// redisInc parses the incarnation a function returns ("0" for none).
func redisInc(v any) uint64 {
	s, _ := v.(string)
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func (b *redisBackend) readState(ctx context.Context, conv Conversation, user string, refs []MessageRef) ([]ReadState, error) {
	isGroup := conv.Type == ConversationGroup
	// Distinct messages, in order of first mention.
	ids := make([]string, 0, len(refs))
	first := make(map[string]int, len(refs))
	for _, r := range refs {
		if _, ok := first[r.ID]; !ok {
			first[r.ID] = len(ids)
			ids = append(ids, r.ID)
		}
	}
	g, log := "0", "0"
	if isGroup {
		g = "1"
	}
	if b.cfg.readTimes {
		log = "1"
	}
	args := make([]any, 0, 3+len(ids))
	args = append(args, g, user, log)
	for _, id := range ids {
		args = append(args, id)
	}
	v, err := b.call(ctx, "read state", "rr_state", b.base(conv), false, args...)
	if err != nil {
		return nil, b.fail("read state", err)
	}
	r, _ := v.([]any)
	if len(r) != 2+6*len(ids) {
		return nil, internalErr("read state", fmt.Errorf("unexpected reply of %d items", len(r)))
	}
	inc := redisInc(r[0])
	idx64, _ := r[1].(int64)
	idx, known := uint32(idx64), idx64 >= 0
	if !isGroup {
		idx, known = 0, true
	}
	now := b.retentionNow()
	states := make([]ReadState, len(ids))
	var memo memberMemo
	for i, id := range ids {
		st := &states[i]
		st.MessageID = id
		x := r[2+6*i : 8+6*i]
		h, exists := x[0].(string)
		var meta messageRecord
		if exists {
			if meta, err = decodeRedisMeta(h); err != nil {
				return nil, internalErr("decode message", err)
			}
		}
		if err := b.liveErr(exists, &meta, isGroup, inc, now); err != nil {
			st.Err = err
			continue
		}
		if err := admit(ctx, b, conv, user, idx, known, &meta, &memo); err != nil {
			if !perMessage(err) {
				return nil, err
			}
			st.Err = err
			continue
		}
		inR, inP, inD := x[1] == int64(1), x[2] == int64(1), x[3] == int64(1)
		st.Read = inR || inP
		st.Private = inP && !inR
		st.Delivered = st.Read || inD
		if !st.Read {
			continue
		}
		if !isGroup && inR {
			// A C2C read's time is the message's own (t).
			var readAt int64
			if t, ok := x[4].(string); ok {
				readAt, _ = strconv.ParseInt(t, 10, 64)
			}
			st.ReadTime = readTime(conv, 1, readAt)
			continue
		}
		if lg, ok := x[5].(string); ok && b.cfg.readTimes {
			ts, err := readTimesOf([]byte(lg), meta.TrackedAt, []uint32{idx}, !inR)
			if err != nil {
				return nil, internalErr("read times", err)
			}
			st.ReadTime = ts[0]
		}
	}
	out := make([]ReadState, len(refs))
	for i, ref := range refs {
		out[i] = states[first[ref.ID]]
	}
	return out, nil
}

func (b *redisBackend) readTimes(ctx context.Context, caller Caller, conv Conversation, ref MessageRef, users []string) ([]MemberReadTime, error) {
	isGroup := conv.Type == ConversationGroup
	g, log := "0", "0"
	if isGroup {
		g = "1"
	}
	if b.cfg.readTimes && isGroup {
		log = "1"
	}
	args := make([]any, 0, 3+len(users))
	args = append(args, g, ref.ID, log)
	for _, u := range users {
		args = append(args, u)
	}
	v, err := b.call(ctx, "read times", "rr_times", b.base(conv), false, args...)
	if err != nil {
		return nil, b.fail("read times", err)
	}
	r, _ := v.([]any)
	h, exists := r[1].(string)
	if len(r) < 5 || exists && len(r) != 5+len(users) {
		return nil, internalErr("read times", fmt.Errorf("unexpected reply of %d items", len(r)))
	}
	var meta messageRecord
	if exists {
		if meta, err = decodeRedisMeta(h); err != nil {
			return nil, internalErr("decode message", err)
		}
	}
	if err := b.liveErr(exists, &meta, isGroup, redisInc(r[0]), b.retentionNow()); err != nil {
		return nil, err
	}
	if err := b.authorize(ctx, b, caller, conv, &meta); err != nil {
		return nil, err
	}
	out := make([]MemberReadTime, len(users))
	if !isGroup {
		count, _ := r[2].(int64)
		var readAt int64
		if t, ok := r[3].(string); ok {
			readAt, _ = strconv.ParseInt(t, 10, 64)
		}
		peer := conv.other(meta.Sender)
		for i, u := range users {
			out[i].UserID = u
			if u == peer && count > 0 {
				out[i].Read = true
				out[i].ReadTime = readTime(conv, count, readAt)
			}
		}
		return out, nil
	}
	// The readers' member indexes, for their entries in the log.
	var idxs []uint32
	var at []int
	for i, u := range users {
		out[i].UserID = u
		idx, _ := r[5+i].(int64)
		if idx < 0 {
			continue
		}
		out[i].Read = true
		idxs = append(idxs, uint32(idx))
		at = append(at, i)
	}
	if lg, ok := r[4].(string); ok && len(idxs) > 0 {
		ts, err := readTimesOf([]byte(lg), meta.TrackedAt, idxs, false)
		if err != nil {
			return nil, internalErr("read times", err)
		}
		for k, i := range at {
			out[i].ReadTime = ts[k]
		}
	}
	return out, nil
}
