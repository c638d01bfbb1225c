package readreceipt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/readreceipt/readreceipt/store"
)

// Check verifies the engine's invariants over everything it has stored, and
// that its caches agree with the store. It returns nil or an error listing
// the first violations found. It reads the whole store and holds every
// conversation lock while it runs, so it is meant for tests and offline
// checks, not for a serving engine. The invariants:
//
//   - a group's member indexes and user IDs map one to one, every index
//     below the group's next index; its member count is the size of its
//     current membership;
//   - a message's read count equals the size of its reader set; its readers
//     are among its recipients (the membership at its version, minus the
//     sender); its recipient count equals that recipient set's size; it has
//     an expiry key, and its group exists in the incarnation it was tracked
//     in;
//   - a message's delivered set D and private set P are among its
//     recipients, and its stored dn (the high half of its counter) is the
//     size of D minus its readers; P may meet the readers (a user who read
//     privately, then publicly); a message whose recipients fit one chunk
//     keeps D and P in its readers' chunk 0, no other message does;
//   - a read-time log decodes, names recipients only, public entries for
//     readers and private ones for members of P, each at most once;
//   - a C2C message's count is 0 or 1, its dn 0 or 1 and 0 once read, and
//     it keeps no D;
//   - every expiry key points at the message it names;
//   - each of a group's version counters equals the number of its messages
//     tracked at that version, and every version a message is tracked at
//     has one;
//   - every message is in its conversation's order and its thread's, and
//     every order key names a stored message; marks are well formed, a
//     group's only while the group exists (embedded_order.go);
//   - every cached group record and message state equals the stored one.
func (e *Engine) Check(ctx context.Context) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	return e.be.check(ctx)
}

func (e *embedded) check(ctx context.Context) error {
	for i := range e.convLocks {
		e.convLocks[i].Lock()
	}
	defer func() {
		for i := range e.convLocks {
			e.convLocks[i].Unlock()
		}
	}()
	// The store's keys are checked against the cache: the receipts still
	// in the log go to them first.
	if err := e.rlog.settle(ctx); err != nil {
		return err
	}
	c := checker{e: e, groups: map[string]*checkGroup{}, msgs: map[string]*checkMsg{}}
	if err := c.load(ctx); err != nil {
		return err
	}
	c.verify()
	c.verifyCache()
	c.verifyOrders()
	return c.result()
}

type checkGroup struct {
	meta     *groupRecord
	users    map[string]uint32
	indexes  map[uint32]string
	chunks   map[uint16][]checkChunk // newest first
	versions map[uint64]int64        // version -> its counter of live messages
}

type checkChunk struct {
	version uint64
	bm      *roaring.Bitmap
}

type checkMsg struct {
	conv      Conversation
	id        string
	meta      *messageRecord
	count     int64
	dn        int64 // from the counter; for a one-chunk message, |D \ R|
	hasCount  bool
	readAt    int64 // a C2C message's read time, 0 without one
	readers   map[uint16]*roaring.Bitmap
	delivered map[uint16]*roaring.Bitmap // D, by chunk
	private   map[uint16]*roaring.Bitmap // P, by chunk
	log       []byte                     // the read-time log
	timeKey   bool
}

type checker struct {
	e       *embedded
	groups  map[string]*checkGroup
	msgs    map[string]*checkMsg // by message prefix
	times   [][]byte
	gcMarks []string
	errs    []error
	ord     orderCheck // orders, marks and privacy flags (embedded_order.go)
}

func (c *checker) fail(format string, args ...any) {
	if len(c.errs) < 20 {
		c.errs = append(c.errs, fmt.Errorf(format, args...))
	}
}

func (c *checker) result() error {
	if len(c.errs) == 0 {
		return nil
	}
	return fmt.Errorf("readreceipt: check: %w", errors.Join(c.errs...))
}

func (c *checker) group(gid string) *checkGroup {
	g, ok := c.groups[gid]
	if !ok {
		g = &checkGroup{users: map[string]uint32{}, indexes: map[uint32]string{},
			chunks: map[uint16][]checkChunk{}, versions: map[uint64]int64{}}
		c.groups[gid] = g
	}
	return g
}

func (c *checker) msg(prefix []byte) *checkMsg {
	m, ok := c.msgs[string(prefix)]
	if !ok {
		m = &checkMsg{readers: map[uint16]*roaring.Bitmap{}, delivered: map[uint16]*roaring.Bitmap{}, private: map[uint16]*roaring.Bitmap{}}
		c.msgs[string(prefix)] = m
	}
	return m
}

func (c *checker) load(ctx context.Context) error {
	err := c.e.st.Scan(ctx, nil, nil, func(k, v []byte) bool {
		switch {
		case len(k) == 0:
			c.fail("empty key")
		case k[0] == prefixSystem:
			switch {
			case bytes.HasPrefix(k, keyGCPrefix):
				c.gcMarks = append(c.gcMarks, string(k[len(keyGCPrefix):]))
			case bytes.HasPrefix(k, keyPrivacyPrefix):
				c.loadOrderKey(k, v)
			case !bytes.Equal(k, keySchemaVersion) && !bytes.Equal(k, keySecret):
				c.fail("unknown system key %q", k)
			}
		case k[0] == prefixGroup:
			c.loadGroupKey(k, v)
		case k[0] == prefixMessage:
			c.loadMessageKey(k, v)
		case k[0] == prefixTime:
			c.times = append(c.times, append([]byte(nil), k...))
		case k[0] == prefixOrder, k[0] == prefixMark:
			c.loadOrderKey(k, v)
		default:
			c.fail("unknown key %q", k)
		}
		return len(c.errs) < 20
	})
	if err != nil {
		return internalErr("check", err)
	}
	return nil
}

func (c *checker) loadGroupKey(k, v []byte) {
	gid, rest, err := readLP(k[1:])
	if err != nil || len(rest) == 0 {
		c.fail("malformed group key %q", k)
		return
	}
	g := c.group(gid)
	kind, rest := rest[0], rest[1:]
	switch kind {
	case groupMeta:
		rec, err := decodeGroup(v)
		if err != nil || len(rest) != 0 {
			c.fail("group %q: bad meta", gid)
			return
		}
		g.meta = &rec
	case groupChunk:
		hi, version, err := parseChunkSuffix(rest)
		bm, derr := store.DecodeSet(v)
		if err != nil || derr != nil {
			c.fail("group %q: bad chunk key or value %q", gid, k)
			return
		}
		g.chunks[hi] = append(g.chunks[hi], checkChunk{version: version, bm: bm})
	case groupNames:
		if len(rest) != 4 {
			c.fail("group %q: bad names key", gid)
			return
		}
		nb, err := decodeNameBlock(v)
		if err != nil {
			c.fail("group %q: bad names value at %q", gid, k)
			return
		}
		first := binary.BigEndian.Uint32(rest) * nameBlockSize
		for i := range uint32(nameBlockSize) {
			if u := nb.user(i); u != "" {
				if i > 0 && nb.user(i-1) == "" {
					c.fail("group %q: names block of index %d has a gap", gid, first)
				}
				g.indexes[first+i] = u
			}
		}
	case groupBucket:
		if len(rest) != 2 || len(v) == 0 {
			c.fail("group %q: bad bucket key or empty bucket %q", gid, k)
			return
		}
		bk := binary.BigEndian.Uint16(rest)
		err := walkBucket(v, func(u []byte, idx uint32) bool {
			if memberBucket(string(u)) != bk {
				c.fail("group %q: user %q in bucket %d, not %d", gid, u, bk, memberBucket(string(u)))
			}
			if _, dup := g.users[string(u)]; dup {
				c.fail("group %q: user %q twice in its bucket", gid, u)
			}
			g.users[string(u)] = idx
			return true
		})
		if err != nil {
			c.fail("group %q: bad bucket value for %d", gid, bk)
		}
	case groupVersion:
		n, err := store.DecodeCounter(v)
		if len(rest) != 8 || err != nil {
			c.fail("group %q: bad version counter %q", gid, k)
			return
		}
		g.versions[binary.BigEndian.Uint64(rest)] = n
	default:
		c.fail("group %q: unknown key kind %q", gid, kind)
	}
}

func (c *checker) loadMessageKey(k, v []byte) {
	conv, rest, err := parseConv(k[1:])
	if err != nil {
		c.fail("malformed message key %q", k)
		return
	}
	id, rest, err := readLP(rest)
	if err != nil || len(rest) == 0 {
		c.fail("malformed message key %q", k)
		return
	}
	prefix := k[:len(k)-len(rest)]
	m := c.msg(prefix)
	m.conv, m.id = conv, id
	switch rest[0] {
	case msgMeta:
		rec, err := decodeMessage(v)
		if err != nil || len(rest) != 1 {
			c.fail("message %s/%s: bad meta", conv, id)
			return
		}
		m.meta = &rec
	case msgCount:
		n, err := store.DecodeCounter(v)
		if err != nil || len(rest) != 1 {
			c.fail("message %s/%s: bad count", conv, id)
			return
		}
		m.count, m.dn, m.hasCount = n&countMask, n>>32, true
	case msgReaders, msgDelivered, msgPrivate:
		bm, err := store.DecodeSet(v)
		if err != nil || len(rest) != 3 {
			c.fail("message %s/%s: bad set %q", conv, id, rest[0])
			return
		}
		sets := map[byte]map[uint16]*roaring.Bitmap{msgReaders: m.readers, msgDelivered: m.delivered, msgPrivate: m.private}
		sets[rest[0]][binary.BigEndian.Uint16(rest[1:])] = bm
	case msgReadLog:
		log, err := store.DecodeAppend(v)
		if err != nil || len(rest) != 1 {
			c.fail("message %s/%s: bad read-time log", conv, id)
			return
		}
		m.log = append([]byte(nil), log...)
	case msgReadAt:
		if len(v) != 8 || len(rest) != 1 {
			c.fail("message %s/%s: bad read time", conv, id)
			return
		}
		m.readAt = int64(binary.BigEndian.Uint64(v))
	default:
		c.fail("message %s/%s: unknown key kind %q", conv, id, rest[0])
	}
}

// snapshot is a group's membership at version.
func (g *checkGroup) snapshot(version uint64) *roaring.Bitmap {
	out := roaring.New()
	for _, versions := range g.chunks {
		for _, ch := range versions {
			if ch.version <= version {
				out.Or(ch.bm)
				break
			}
		}
	}
	return out
}

func (c *checker) verify() {
	for gid, g := range c.groups {
		if g.meta == nil {
			c.fail("group %q: keys without meta", gid)
			continue
		}
		if len(g.users) != len(g.indexes) || uint32(len(g.indexes)) != g.meta.NextIndex {
			c.fail("group %q: %d users, %d indexes, next index %d", gid, len(g.users), len(g.indexes), g.meta.NextIndex)
		}
		for u, idx := range g.users {
			if g.indexes[idx] != u {
				c.fail("group %q: user %q has index %d, which maps to %q", gid, u, idx, g.indexes[idx])
			}
		}
		for hi, versions := range g.chunks {
			slices.SortFunc(versions, func(a, b checkChunk) int { return -cmpU64(a.version, b.version) })
			for _, ch := range versions {
				if ch.version > g.meta.Version {
					c.fail("group %q: chunk %d at version %d after the group's %d", gid, hi, ch.version, g.meta.Version)
				}
				if !ch.bm.IsEmpty() && (chunkOf(ch.bm.Minimum()) != hi || chunkOf(ch.bm.Maximum()) != hi || ch.bm.Maximum() >= g.meta.NextIndex) {
					c.fail("group %q: chunk %d at version %d holds indexes out of place", gid, hi, ch.version)
				}
			}
		}
		if n := g.snapshot(g.meta.Version).GetCardinality(); n != uint64(g.meta.Members) {
			c.fail("group %q: %d members in its snapshot, %d in its meta", gid, n, g.meta.Members)
		}
	}
	for _, m := range c.msgs {
		c.verifyMessage(m)
	}
	for _, gid := range c.gcMarks {
		if g := c.groups[gid]; g == nil || g.meta == nil {
			c.fail("garbage-collection mark for group %q, which does not exist", gid)
		}
	}
	for _, k := range c.times {
		ts, conv, id, err := parseTimeKey(k)
		if err != nil {
			c.fail("malformed expiry key %q", k)
			continue
		}
		m := c.msgs[string(messagePrefix(convKey(conv), id))]
		if m == nil || m.meta == nil || m.meta.TrackedAt != ts {
			c.fail("expiry key of %s/%s at %d names no such message", conv, id, ts)
			continue
		}
		m.timeKey = true
	}
	for _, m := range c.msgs {
		if m.meta != nil && !m.timeKey {
			c.fail("message %s/%s: no expiry key", m.conv, m.id)
		}
	}
	c.verifyVersionCounts()
}

// verifyVersionCounts checks every group's version counters against its
// messages: each counts the messages of the group's incarnation tracked at
// its version (a zero counter may stay until the sweep drops it).
func (c *checker) verifyVersionCounts() {
	live := map[string]map[uint64]int64{}
	for _, m := range c.msgs {
		if m.meta == nil || m.conv.Type != ConversationGroup {
			continue
		}
		g := c.groups[m.conv.GroupID]
		if g == nil || g.meta == nil || g.meta.Incarnation != m.meta.Incarnation {
			continue
		}
		if live[m.conv.GroupID] == nil {
			live[m.conv.GroupID] = map[uint64]int64{}
		}
		live[m.conv.GroupID][m.meta.Version]++
	}
	for gid, g := range c.groups {
		for v, n := range g.versions {
			if n != live[gid][v] {
				c.fail("group %q: version %d counts %d messages, %d are tracked at it", gid, v, n, live[gid][v])
			}
		}
		for v, n := range live[gid] {
			if _, ok := g.versions[v]; !ok {
				c.fail("group %q: version %d has no counter, %d messages are tracked at it", gid, v, n)
			}
		}
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *checker) verifyMessage(m *checkMsg) {
	name := m.conv.String() + "/" + m.id
	if m.meta == nil {
		c.fail("message %s: keys without meta", name)
		return
	}
	if m.conv.Type == ConversationC2C {
		if !m.conv.has(m.meta.Sender) || len(m.readers) != 0 || m.count < 0 || m.count > 1 || m.meta.Recipients != 1 {
			c.fail("message %s: bad C2C state (sender %q, count %d)", name, m.meta.Sender, m.count)
		}
		if m.readAt != 0 && m.count != 1 {
			c.fail("message %s: a read time without a receipt", name)
		}
		if m.dn < 0 || m.dn > 1 || m.dn == 1 && m.count != 0 || len(m.delivered) != 0 {
			c.fail("message %s: bad C2C delivery state (count %d, dn %d)", name, m.count, m.dn)
		}
		if p := m.private[0]; len(m.private) > 1 || p != nil && (p.GetCardinality() > 1 || !p.IsEmpty() && p.Minimum() != c2cReader) {
			c.fail("message %s: bad C2C private readers", name)
		}
		r := roaring.New()
		if m.count == 1 {
			r.Add(c2cReader)
		}
		c.verifyLog(m, name, r, roaring.BitmapOf(c2cReader))
		return
	}
	if !m.meta.ownCount() {
		if len(m.delivered) != 0 || len(m.private) != 0 {
			c.fail("message %s: D or P keys, though they are kept with the readers", name)
		}
		if r := m.readers[0]; r != nil {
			var d, p *roaring.Bitmap
			m.readers[0], d, p = splitPacked(r.Clone())
			if d != nil {
				m.delivered[0] = d
				m.dn = int64(roaring.AndNot(d, m.readers[0]).GetCardinality())
			}
			if p != nil {
				m.private[0] = p
			}
		}
	}
	if m.readAt != 0 {
		c.fail("message %s: a read time on a group message", name)
	}
	var total uint64
	for _, bm := range m.readers {
		total += bm.GetCardinality()
	}
	if !m.meta.ownCount() {
		if m.hasCount {
			c.fail("message %s: a count key, though its recipients fit in one chunk", name)
		}
		m.count = int64(total) // the count is the readers' number
	}
	if total != uint64(m.count) {
		c.fail("message %s: count %d, %d readers", name, m.count, total)
	}
	g := c.groups[m.conv.GroupID]
	if g == nil || g.meta == nil || g.meta.Incarnation != m.meta.Incarnation {
		c.fail("message %s: its group is gone", name)
		return
	}
	recipients := g.snapshot(m.meta.Version)
	if m.meta.SenderIndex != noIndex {
		if !recipients.Contains(m.meta.SenderIndex) {
			c.fail("message %s: sender index %d not a member at version %d", name, m.meta.SenderIndex, m.meta.Version)
		}
		recipients.Remove(m.meta.SenderIndex)
	}
	if n := recipients.GetCardinality(); n != uint64(m.meta.Recipients) {
		c.fail("message %s: %d recipients stored, %d in its snapshot", name, m.meta.Recipients, n)
	}
	all := map[string]*roaring.Bitmap{}
	for kind, sets := range map[string]map[uint16]*roaring.Bitmap{"reader": m.readers, "delivered": m.delivered, "private": m.private} {
		all[kind] = roaring.New()
		for hi, bm := range sets {
			if !bm.IsEmpty() && (chunkOf(bm.Minimum()) != hi || chunkOf(bm.Maximum()) != hi) {
				c.fail("message %s: %s chunk %d holds indexes out of place", name, kind, hi)
			}
			if extra := roaring.AndNot(bm, recipients); !extra.IsEmpty() {
				c.fail("message %s: %s %v are not recipients", name, kind, extra.ToArray())
			}
			all[kind].Or(bm)
		}
	}
	if n := int64(roaring.AndNot(all["delivered"], all["reader"]).GetCardinality()); n != m.dn {
		c.fail("message %s: dn %d, %d delivered who have not read", name, m.dn, n)
	}
	c.verifyLog(m, name, all["reader"], all["private"])
}

// verifyLog checks message m's read-time log against its readers and
// private readers.
func (c *checker) verifyLog(m *checkMsg, name string, readers, private *roaring.Bitmap) {
	seen := map[[2]uint32]bool{}
	err := decodeReadTimes(m.log, m.meta.TrackedAt, func(en readTimeEntry) {
		set, kind := readers, uint32(0)
		if en.private {
			set, kind = private, 1
		}
		if !set.Contains(en.idx) || seen[[2]uint32{en.idx, kind}] {
			c.fail("message %s: read-time entry of %d (private %v) without its receipt, or twice", name, en.idx, en.private)
		}
		seen[[2]uint32{en.idx, kind}] = true
	})
	if err != nil {
		c.fail("message %s: malformed read-time log", name)
	}
}

func (c *checker) verifyCache() {
	c.e.names.each(func(key string, nb *nameBlock) {
		gid, rest, err := readLP([]byte(key))
		if err != nil || len(rest) != 12 {
			c.fail("user-ID cache key %q is malformed", key)
			return
		}
		inc, block := binary.BigEndian.Uint64(rest), binary.BigEndian.Uint32(rest[8:])
		g := c.groups[gid]
		if g == nil || g.meta == nil || g.meta.Incarnation != inc {
			return // a dismissed incarnation: never asked for again
		}
		for i := range uint32(nameBlockSize) {
			idx := block*nameBlockSize + i
			if u := nb.user(i); u != "" && g.indexes[idx] != u {
				c.fail("group %q: cached user of index %d is %q, stored %q", gid, idx, u, g.indexes[idx])
			}
		}
	})
	c.e.groups.each(func(gid string, g *groupRecord) {
		if s := c.groups[gid]; s == nil || s.meta == nil || *s.meta != *g {
			c.fail("cached group %q differs from the store", gid)
		}
	})
	c.e.entries.each(func(m *msgEntry) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !m.loaded {
			return
		}
		s := c.msgs[m.key]
		if m.anyPending() {
			c.fail("cached message %q: receipts pending while idle", m.key)
		}
		stored := s != nil && s.meta != nil
		if m.exists && !stored && c.orphaned(m) {
			return // its group was dismissed: every call sees it as gone
		}
		if m.exists != stored {
			c.fail("cached message %q: exists=%v, stored=%v", m.key, m.exists, stored)
			return
		}
		if !stored {
			return
		}
		if m.meta != *s.meta || m.count != s.count || s.conv.Type == ConversationC2C && m.readAt != s.readAt {
			c.fail("cached message %q: count %d, stored %d", m.key, m.count, s.count)
		}
		if m.dn() != s.dn {
			c.fail("cached message %q: dn %d, stored %d", m.key, m.dn(), s.dn)
		}
		if !m.meta.ownCount() && m.meta.Incarnation != 0 && m.hasChunk(0) {
			// D and P came with the readers' chunk 0: all of them loaded.
			for _, set := range []struct {
				kind   string
				cached *roaring.Bitmap
				stored *roaring.Bitmap
			}{{"delivered", m.modelChunk(0, false), s.delivered[0]}, {"private", m.modelChunk(0, true), s.private[0]}} {
				if (set.cached == nil || set.cached.IsEmpty()) != (set.stored == nil || set.stored.IsEmpty()) ||
					set.cached != nil && set.stored != nil && !set.cached.Equals(set.stored) {
					c.fail("cached message %q: %s chunk 0 differs from the store", m.key, set.kind)
				}
			}
		}
		if x := m.mdl(); x != nil {
			for _, set := range []struct {
				kind   string
				cached chunkSet
				stored map[uint16]*roaring.Bitmap
			}{{"delivered", x.delivered, s.delivered}, {"private", x.private, s.private}} {
				for _, ch := range set.cached {
					want := set.stored[ch.hi]
					if want == nil {
						want = roaring.New()
					}
					if !ch.bm.Equals(want) {
						c.fail("cached message %q: %s chunk %d differs from the store", m.key, set.kind, ch.hi)
					}
				}
			}
		}
		m.eachReaders(func(hi uint16, set idxSet) bool {
			want := s.readers[hi]
			if want == nil {
				want = roaring.New()
			}
			if !set.roaring(hi).Equals(want) {
				c.fail("cached message %q: reader chunk %d differs from the store", m.key, hi)
			}
			return true
		})
		if m.x == nil || len(m.x.unread) == 0 {
			return
		}
		g := c.groups[s.conv.GroupID]
		if g == nil || g.meta == nil {
			c.fail("cached message %q: unread members of a message without a group", m.key)
			return
		}
		recipients := g.snapshot(m.meta.Version)
		recipients.Remove(m.meta.SenderIndex)
		for _, ch := range m.x.unread {
			hi, u := ch.hi, ch.bm
			lo := uint64(hi) << 16
			want := roaring.New()
			want.AddRange(lo, lo+1<<16)
			want.And(recipients)
			if r := s.readers[hi]; r != nil {
				want.AndNot(r)
			}
			if !u.Equals(want) {
				c.fail("cached message %q: unread members of chunk %d differ from the store", m.key, hi)
			}
		}
	})
}

// orphaned reports whether a cached group message belongs to a group
// incarnation that no longer exists.
func (c *checker) orphaned(m *msgEntry) bool {
	conv, _, err := parseConv([]byte(m.key)[1:])
	if err != nil || conv.Type != ConversationGroup {
		return false
	}
	g := c.groups[conv.GroupID]
	return g == nil || g.meta == nil || g.meta.Incarnation != m.meta.Incarnation
}
