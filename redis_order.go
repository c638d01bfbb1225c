package readreceipt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The Redis backend's privacy settings, conversation orders and read-up-to
// marks (model.go; the key layout is in redis.go).
//
// Privacy is one key per user, outside every conversation's slot, read with
// one GET on every call that needs it: nothing is cached, so a change takes
// effect on every engine as soon as setPrivacy returns.
//
// Orders are sorted sets on the conversation's slot, written by rr_track in
// the same call as the message's meta, emptied of a message by rr_delete,
// dropped with a dismissed group, and read by rr_scan, which skips and
// prunes the entries of messages that are gone. Marks are a hash on the
// slot, raised by rr_mark.

// redisScanBudget is the most order entries one rr_scan call walks: a scan
// over many dead entries goes on in further calls rather than block the
// shard.
const redisScanBudget = 1000

func (b *redisBackend) privacyKey(user string) string {
	return b.p + "p{u" + redisLP(user) + "}"
}

// isPrivacyKey reports whether k is a user's privacy key.
func (b *redisBackend) isPrivacyKey(k string) bool {
	rest, ok := strings.CutPrefix(k, b.p+"p{u")
	if !ok {
		return false
	}
	user, tail, ok := cutLP(rest)
	return ok && tail == "}" && user != ""
}

func (b *redisBackend) privacy(ctx context.Context, user string) (bool, error) {
	v, err := b.c.Get(ctx, b.privacyKey(user)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, b.fail("read privacy", err)
	}
	return v == "1", nil
}

func (b *redisBackend) setPrivacy(ctx context.Context, user string, private bool) error {
	on := "0"
	if private {
		on = "1"
	}
	_, err := b.call(ctx, "set privacy", "rr_privacy", b.privacyKey(user), true, on)
	return b.fail("set privacy", err)
}

// metaOf reads one message's meta and, for a group message, its group's
// current incarnation (0 if none), with plain reads in one pipeline, as
// load does.
func (b *redisBackend) metaOf(ctx context.Context, conv Conversation, id string) (uint64, messageRecord, bool, error) {
	base := b.base(conv)
	c, err := b.node(ctx, base)
	if err != nil {
		return 0, messageRecord{}, false, b.fail("read message", err)
	}
	isGroup := conv.Type == ConversationGroup
	var gc *redis.SliceCmd
	var mc *redis.StringCmd
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if isGroup {
			gc = p.HMGet(ctx, base+"G", "i", "s")
		}
		mc = p.HGet(ctx, base+"M"+redisLP(id), "h")
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, messageRecord{}, false, b.fail("read message", err)
	}
	var inc uint64
	if isGroup {
		if v := gc.Val(); len(v) == 2 && v[1] == nil {
			if s, ok := v[0].(string); ok {
				inc, _ = strconv.ParseUint(s, 10, 64)
			}
		}
	}
	h, err := mc.Result()
	if errors.Is(err, redis.Nil) {
		return inc, messageRecord{}, false, nil
	}
	m, err := decodeRedisMeta(h)
	if err != nil {
		return 0, messageRecord{}, false, internalErr("decode message", err)
	}
	b.metas.add(b.metaKey(conv, id), m, int64(len(h))+96)
	return inc, m, true, nil
}

func (b *redisBackend) position(ctx context.Context, ref MessageRef) (orderPos, string, error) {
	conv := ref.Conversation
	inc, m, exists, err := b.metaOf(ctx, conv, ref.ID)
	if err != nil {
		return orderPos{}, "", err
	}
	if err := b.liveErr(exists, &m, conv.Type == ConversationGroup, inc, b.retentionNow()); err != nil {
		return orderPos{}, "", err
	}
	return msgPos(m.TrackedAt, ref.ID), m.Thread, nil
}

func (b *redisBackend) scanOrder(ctx context.Context, conv Conversation, thread string, after, upTo orderPos, limit int) ([]orderItem, error) {
	if limit <= 0 || upTo.cmp(after) <= 0 {
		return nil, nil
	}
	isGroup := conv.Type == ConversationGroup
	g := "0"
	if isGroup {
		g = "1"
	}
	base := b.base(conv)
	var out []orderItem
	for len(out) < limit {
		// One clock reading for the function's cutoff and liveErr, so
		// that both judge expiry alike.
		now := b.now()
		csec, cnsec := b.cutoff(now)
		rnow := int64(0)
		if b.cfg.retention > 0 {
			rnow = now
		}
		from := "-inf"
		if after != minPos {
			from = strconv.FormatInt(after.at, 10)
		}
		want := limit - len(out)
		v, err := b.call(ctx, "scan order", "rr_scan", base, false,
			thread, from, after.id, strconv.FormatInt(upTo.at, 10), upTo.id,
			want, max(limit, redisScanBudget), g, csec, cnsec)
		if err != nil {
			return nil, b.fail("scan order", err)
		}
		r, _ := v.([]any)
		if len(r) < 4 || (len(r)-4)%3 != 0 {
			return nil, internalErr("scan order", fmt.Errorf("unexpected reply %v", v))
		}
		more, _ := r[0].(int64)
		inc, _ := r[1].(int64)
		lastUS, _ := r[2].(int64)
		lastID, _ := r[3].(string)
		for i := 4; i < len(r); i += 3 {
			id, _ := r[i].(string)
			h, _ := r[i+2].(string)
			m, err := decodeRedisMeta(h)
			if err != nil {
				return nil, internalErr("decode message", err)
			}
			b.metas.add(b.metaKey(conv, id), m, int64(len(h))+96)
			if b.liveErr(true, &m, isGroup, uint64(inc), rnow) != nil {
				continue
			}
			out = append(out, orderItem{pos: msgPos(m.TrackedAt, id), id: id})
		}
		// The walk stopped at its budget, or found want messages of which
		// liveErr refused some: go on after the last entry it walked.
		if more == 0 && (len(r)-4)/3 < want {
			break
		}
		after = orderPos{at: lastUS, id: lastID}
	}
	return out, nil
}

// markField is the field of reader's mark in thread in a conversation's
// marks.
func markField(thread, reader string) string { return redisLP(thread) + reader }

func (b *redisBackend) mark(ctx context.Context, conv Conversation, thread, reader string) (orderPos, bool, error) {
	v, err := b.c.HGet(ctx, b.base(conv)+"K", markField(thread, reader)).Result()
	if errors.Is(err, redis.Nil) {
		return orderPos{}, false, nil
	}
	if err != nil {
		return orderPos{}, false, b.fail("read mark", err)
	}
	p, err := decodeOrderPos([]byte(v))
	if err != nil {
		return orderPos{}, false, internalErr("decode mark", err)
	}
	return p, true, nil
}

func (b *redisBackend) setMark(ctx context.Context, conv Conversation, thread, reader string, p orderPos) (orderPos, error) {
	g := "0"
	if conv.Type == ConversationGroup {
		g = "1"
	}
	v, err := b.call(ctx, "set mark", "rr_mark", b.base(conv), true, markField(thread, reader), string(p.encode(nil)), g)
	if replyIs(err, "NOGROUP") {
		return orderPos{}, errorf(ErrGroupNotFound, "%q", conv.GroupID)
	}
	if err != nil {
		return orderPos{}, b.fail("set mark", err)
	}
	s, ok := v.(string)
	if !ok {
		return orderPos{}, internalErr("set mark", fmt.Errorf("unexpected reply %v", v))
	}
	stored, err := decodeOrderPos([]byte(s))
	if err != nil {
		return orderPos{}, internalErr("decode mark", err)
	}
	return stored, nil
}

// orders checks a conversation's orders and marks, for Engine.Check. Every
// order entry is of a message with the entry's position (and thread), or,
// with a retention, of a message gone by expiry (Redis drops a message's
// keys by TTL; its entries stay until pruned); every thread's order is
// listed in OT; every live message is in its conversation's order and in
// its thread's; marks decode, and a group's need the group.
func (c *redisChecker) orders(base string, suffixes map[string]bool, isGroup bool, g *groupRecord) {
	ctx, r := c.ctx, c.b.c
	expiring := c.b.cfg.retention > 0
	var threads map[string]bool
	if suffixes["OT"] {
		ts, err := r.SMembers(ctx, base+"OT").Result()
		if err != nil {
			c.errorf("%s: %v", base+"OT", err)
		}
		threads = map[string]bool{}
		for _, t := range ts {
			threads[t] = true
		}
	}
	if (suffixes["OT"] || suffixes["K"]) && isGroup && g == nil {
		c.errorf("%s: orders or marks without a group", base)
	}
	if suffixes["K"] {
		marks, err := r.HGetAll(ctx, base+"K").Result()
		if err != nil {
			c.errorf("%s: %v", base+"K", err)
		}
		for f, v := range marks {
			if _, reader, ok := cutLP(f); !ok || reader == "" {
				c.errorf("%s: bad mark field %q", base+"K", f)
			}
			if _, err := decodeOrderPos([]byte(v)); err != nil {
				c.errorf("%s: bad mark %q of %q", base+"K", v, f)
			}
		}
	}
	for s := range suffixes {
		if !strings.HasPrefix(s, "O") || s == "OT" {
			continue
		}
		thread, rest, ok := cutLP(s[1:])
		if !ok || rest != "" {
			c.errorf("%s: bad key suffix %q", base, s)
			continue
		}
		if isGroup && g == nil {
			c.errorf("%s: order %q without a group", base, s)
			continue
		}
		if thread != "" && !threads[thread] {
			c.errorf("%s: order of thread %q not listed", base, thread)
		}
		entries, err := r.ZRangeWithScores(ctx, base+s, 0, -1).Result()
		if err != nil {
			c.errorf("%s: %v", base+s, err)
			continue
		}
		for _, z := range entries {
			id, _ := z.Member.(string)
			h, err := r.HGet(ctx, base+"M"+redisLP(id), "h").Result()
			if errors.Is(err, redis.Nil) {
				if !expiring {
					c.errorf("%s: entry %q of no message", base+s, id)
				}
				continue
			}
			m, err := decodeRedisMeta(h)
			if err != nil {
				continue // c.message reports it
			}
			us := float64(m.TrackedAt / 1000)
			switch {
			case z.Score == us && (thread == "" || m.Thread == thread):
			case expiring && z.Score < us:
				// An earlier tracking of the ID, expired since.
			default:
				c.errorf("%s: entry %q at %v, its message at %v in thread %q", base+s, id, z.Score, us, m.Thread)
			}
		}
	}
	rnow := c.b.retentionNow()
	for s := range suffixes {
		if !strings.HasPrefix(s, "M") {
			continue
		}
		id, rest, ok := cutLP(s[1:])
		if !ok || rest != "" {
			continue
		}
		h, err := r.HGet(ctx, base+s, "h").Result()
		if err != nil {
			continue
		}
		m, err := decodeRedisMeta(h)
		if err != nil || c.b.expiredAt(m.TrackedAt, rnow) || isGroup && (g == nil || g.Incarnation != m.Incarnation) {
			continue
		}
		us := float64(m.TrackedAt / 1000)
		orders := []string{""}
		if m.Thread != "" {
			orders = append(orders, m.Thread)
		}
		for _, t := range orders {
			score, err := r.ZScore(ctx, base+"O"+redisLP(t), id).Result()
			if err != nil || score != us {
				c.errorf("%s: message %q not at %v in the order of thread %q (%v, %v)", base, id, us, t, score, err)
			}
		}
	}
}
