package readreceipt

import (
	"slices"
	"sync"
	"unsafe"

	"github.com/RoaringBitmap/roaring/v2"
)

// msgEntry is the embedded backend's in-memory state of one message. It
// mirrors what the store holds for the message (its meta key, its count or
// reader chunks, and, once a delivery or a private read was recorded, its
// delivered and private sets: model) and adds what the store does not need
// to know: receipts being written (pending), the deltas since the last
// collapse, and unread sets derived from the membership snapshot. The
// read-time log is never held: it is only read by the calls that report
// read times.
//
// This file owns the type: the other files change an entry only through
// the methods below, always holding m.mu, and each method says which call
// keeps it in step with the store:
//   - load (loadEntries), once, with what one read of the store gave;
//   - track (TrackMessage) and reset (DeleteMessage, expiry, a stale
//     message replaced), after their write succeeded, under the
//     conversation's write lock or with the entry held across the write;
//   - mark and unmark (the receipt path, before and after its write),
//     decide (under the same lock as mark: what the receipt records), and
//     commit (after the write succeeded);
//   - installReaders and installPacked (ensureReaders), installModel
//     (ensureModel) and installUnread (member pages), for chunks not loaded
//     yet;
//   - collapsed (collapse), after writing the whole values back.
//
// The entry table (cache.go) pins an entry while a call uses it.
type msgEntry struct {
	key      string // the message's key prefix
	size     int32  // guarded by the table shard
	refs     int32  // guarded by the table shard
	unfolded int32  // committed receipts whose log record is not folded yet (mu)
	pend0    uint32
	pend1    uint32
	deltas   uint16 // merge operands written by folds since the last collapse (mu)
	r0hi     uint16 // the chunk of r0
	r0n      uint16 // the words of r0's bitset form (r0p)
	shard    uint8
	used     bool // used since the table's hand passed (guarded by the table shard)

	// The readers whose receipts are being written: the first npend of
	// pend0 and pend1, then x.pendMore. Messages rarely have more than two
	// receipts in flight, so marking one allocates nothing.
	npend  uint8
	loaded bool
	exists bool
	r0ok   bool // r0 holds a loaded chunk of readers
	mu     sync.Mutex
	meta   messageRecord
	count  int64
	readAt int64 // C2C: when the peer's receipt was recorded (Unix ns)
	// The committed readers, by chunk: the first chunk loaded is r0, kept
	// in the entry (a message of one chunk, the common case, allocates no
	// list): its bitset form here, its roaring form in x.r0big. The other
	// chunks are in x. The bitset form is its first word and its length
	// (r0n), not a slice: eight bytes where a slice header takes 24, which
	// puts an entry in the 160-byte size class (TestEntrySize).
	r0p *uint64
	// x holds what most hot messages do not need: nil while empty.
	x *entryMore
}

// entryMore is the rarely used part of a message's state (msgEntry.x).
type entryMore struct {
	r0big *roaring.Bitmap // r0 in the roaring form
	more  []readerChunk   // loaded chunks of readers beyond r0
	// pendMore: readers being written beyond pend0 and pend1, in no
	// order. A slice, not a map: a message's receipts in flight are
	// bounded by the calls in flight, a few at a time even when many are,
	// and a scan of a few words beats a map's hashing and its 200-byte
	// allocation, made again each time the marks come and go.
	pendMore []uint32
	cond     *sync.Cond // while a call waits for a pending mark
	// unread holds, by chunk, the recipients (but the sender) who have not
	// read: made by member pages from a loaded chunk of readers and the
	// message's membership snapshot, which never changes, and kept current
	// by every receipt committed to the chunk (commit).
	unread chunkSet
	// model holds the delivered set D, the private set P and dn = |D \ R|;
	// nil while dn is 0 and no chunk of D or P is loaded, as for every
	// message nobody reported delivered.
	model *msgModel
}

// more returns m.x, making it if needed.
func (m *msgEntry) more() *entryMore {
	if m.x == nil {
		m.x = &entryMore{}
	}
	return m.x
}

// trim drops m.x once it holds nothing.
func (m *msgEntry) trim() {
	if x := m.x; x != nil && x.r0big == nil && x.more == nil && x.pendMore == nil && x.cond == nil && x.unread == nil && x.model == nil {
		m.x = nil
	}
}

// r0words returns the words of r0's bitset form.
func (m *msgEntry) r0words() []uint64 {
	if m.r0p == nil {
		return nil
	}
	return unsafe.Slice(m.r0p, m.r0n)
}

// setR0words makes w the words of r0's bitset form. A chunk's words are
// at most 1<<chunkBits/64 (idxSet.add), which r0n holds.
func (m *msgEntry) setR0words(w []uint64) {
	if len(w) == 0 {
		m.r0p, m.r0n = nil, 0
		return
	}
	m.r0p, m.r0n = &w[0], uint16(len(w))
}

// mdl returns m's msgModel, or nil.
func (m *msgEntry) mdl() *msgModel {
	if m.x == nil {
		return nil
	}
	return m.x.model
}

// readers returns the loaded chunk hi of readers, and whether it is
// loaded. The handle is valid until the next chunk is installed.
func (m *msgEntry) readers(hi uint16) (idxSet, bool) {
	if m.r0ok && m.r0hi == hi {
		return m.r0(), true
	}
	if m.x != nil {
		for i := range m.x.more {
			if c := &m.x.more[i]; c.hi == hi {
				return idxSet{bits: &c.bits, big: c.big}, true
			}
		}
	}
	return idxSet{}, false
}

// hasChunk reports whether chunk hi of readers is loaded.
func (m *msgEntry) hasChunk(hi uint16) bool {
	_, ok := m.readers(hi)
	return ok
}

// r0 returns the handle of the first chunk of readers, loaded.
func (m *msgEntry) r0() idxSet {
	s := idxSet{r0: m}
	if m.x != nil {
		s.big = m.x.r0big
	}
	return s
}

// eachReaders calls fn for every loaded chunk of readers, until fn returns
// false; it reports whether fn always returned true.
func (m *msgEntry) eachReaders(fn func(hi uint16, s idxSet) bool) bool {
	if m.r0ok && !fn(m.r0hi, m.r0()) {
		return false
	}
	if m.x != nil {
		for i := range m.x.more {
			c := &m.x.more[i]
			if !fn(c.hi, idxSet{bits: &c.bits, big: c.big}) {
				return false
			}
		}
	}
	return true
}

// densify turns s, loaded chunk hi of readers in the roaring form, into
// the bitset form once its readers are dense enough (denseEnough): the
// same set, no more memory, and a faster test and add for the receipts
// still to come. It returns the bytes to charge, negative when the bitset
// is smaller. Handles on the chunk taken before are stale after it.
func (m *msgEntry) densify(hi uint16, s idxSet) int64 {
	span := chunkSpan(m.meta.EndIndex, hi)
	if !denseEnough(s.big.GetCardinality(), span) {
		return 0
	}
	before := s.bytes()
	words, _ := makeIdxSet(s.big, span)
	if m.r0ok && m.r0hi == hi {
		m.x.r0big = nil
		m.setR0words(words)
		m.trim()
	} else {
		for i := range m.x.more {
			if c := &m.x.more[i]; c.hi == hi {
				c.bits, c.big = words, nil
			}
		}
	}
	return int64(8*len(words)) - before
}

// setReaders installs bm as chunk hi of readers, not loaded yet, and
// returns the bytes to charge.
func (m *msgEntry) setReaders(hi uint16, bm *roaring.Bitmap) int64 {
	words, big := makeIdxSet(bm, chunkSpan(m.meta.EndIndex, hi))
	if !m.r0ok {
		m.r0hi, m.r0ok = hi, true
		m.setR0words(words)
		if big != nil {
			m.more().r0big = big
		}
		return m.r0().bytes()
	}
	x := m.more()
	x.more = append(x.more, readerChunk{hi, words, big})
	c := &x.more[len(x.more)-1]
	return idxSet{bits: &c.bits, big: c.big}.bytes()
}

// msgModel is the part of a message's state beyond its readers (model.go).
//
// Which chunks of D and P are loaded: for a group message whose
// recipients fit one chunk (!meta.ownCount()), chunk 0 of both is stored in
// the readers' chunk 0 (see keys.go) and so is loaded with it, a nil
// bitmap standing for an empty set; for the other messages a chunk is
// loaded when its bitmap is here (ensureModel). A C2C message keeps no D:
// its one recipient is in D \ R exactly when dn is 1.
type msgModel struct {
	dn        int64
	delivered chunkSet
	private   chunkSet
}

// receiptAct is what one receipt records: a set of the acts below.
type receiptAct uint8

const (
	actRead      receiptAct = 1 << iota // add to R, count+1
	actUndeliver                        // the reader was in D \ R: dn-1
	actDeliver                          // add to D, dn+1
	actPrivate                          // add to P
)

// chunkSet holds a message's bitmaps by chunk. It is a short list, not a
// map: most messages have one chunk, and a map of one entry costs ten
// times the memory of a list of one.
type chunkSet []chunkBitmap

type chunkBitmap struct {
	hi uint16
	bm *roaring.Bitmap
}

// get returns the bitmap of chunk hi, or nil.
func (s chunkSet) get(hi uint16) *roaring.Bitmap {
	for i := range s {
		if s[i].hi == hi {
			return s[i].bm
		}
	}
	return nil
}

// set installs bm as the bitmap of chunk hi.
func (s *chunkSet) set(hi uint16, bm *roaring.Bitmap) {
	for i := range *s {
		if (*s)[i].hi == hi {
			(*s)[i].bm = bm
			return
		}
	}
	*s = append(*s, chunkBitmap{hi, bm})
}

// c2cReader is the pending mark of a C2C message's only recipient.
const c2cReader = 0

// load fills an entry not loaded yet with what the store holds: whether
// the message exists, its meta and count, and, where the count is the size
// of the one chunk of readers, that chunk (nil otherwise). The stored
// counter carries dn in its high half, and the one chunk of readers D and
// P (keys.go): load splits them. It returns the bytes to charge.
func (m *msgEntry) load(exists bool, meta messageRecord, count, readAt int64, readers *roaring.Bitmap) int64 {
	if m.loaded {
		return 0
	}
	m.loaded, m.exists = true, exists
	m.meta, m.readAt = meta, readAt
	if readers == nil {
		m.count = count & countMask
		if dn := count >> 32; dn != 0 {
			m.more().model = &msgModel{dn: dn}
		}
		return 0
	}
	return m.installPacked(readers)
}

// countMask keeps the read count of a stored counter (packCount).
const countMask = 1<<32 - 1

// packCount is the stored counter of a message that keeps one: the read
// count in the low 32 bits, dn above. A receipt adds its changes of both
// as one delta; the counter folds them exactly, whatever the order.
func packCount(count, dn int64) int64 { return count + dn<<32 }

// Chunk 0 of the readers of a message whose recipients fit one chunk also
// holds D and P, shifted by packDelivered and packPrivate.
const (
	packDelivered = 1 << chunkBits
	packPrivate   = 2 << chunkBits
)

// splitPacked splits a stored chunk 0 of a one-chunk message into R, D and
// P; d and p are nil when empty. It leaves packed as R.
func splitPacked(packed *roaring.Bitmap) (r, d, p *roaring.Bitmap) {
	if packed.IsEmpty() || packed.Maximum() < packDelivered {
		return packed, nil, nil
	}
	take := func(lo uint32) *roaring.Bitmap {
		out := roaring.New()
		it := packed.Iterator()
		it.AdvanceIfNeeded(lo)
		for it.HasNext() {
			v := it.Next()
			if v >= lo+1<<chunkBits {
				break
			}
			out.Add(v - lo)
		}
		if out.IsEmpty() {
			return nil
		}
		return out
	}
	d, p = take(packDelivered), take(packPrivate)
	packed.RemoveRange(packDelivered, 1<<32)
	return packed, d, p
}

// joinPacked is the stored chunk 0 of a one-chunk message: R, D and P.
func joinPacked(r, d, p *roaring.Bitmap) *roaring.Bitmap {
	out := r.Clone()
	for _, s := range []struct {
		bm    *roaring.Bitmap
		shift uint32
	}{{d, packDelivered}, {p, packPrivate}} {
		if s.bm == nil {
			continue
		}
		it := s.bm.Iterator()
		for it.HasNext() {
			out.Add(it.Next() + s.shift)
		}
	}
	return out
}

// installPacked installs chunk 0 of a one-chunk message as read from the
// store (load, ensureReaders), with the D and P it holds, and sets the
// count and dn from them. It returns the bytes to charge.
func (m *msgEntry) installPacked(packed *roaring.Bitmap) int64 {
	r, d, p := splitPacked(packed)
	m.count = int64(r.GetCardinality())
	added := m.setReaders(0, r)
	if d != nil || p != nil {
		x := &msgModel{}
		if d != nil {
			x.delivered.set(0, d)
			x.dn = int64(roaring.AndNot(d, r).GetCardinality())
			added += bitmapBytes(d)
		}
		if p != nil {
			x.private.set(0, p)
			added += bitmapBytes(p)
		}
		m.more().model = x
	}
	return added
}

// track records a message just tracked (written) over whatever the entry
// held, and returns the bytes to uncharge.
func (m *msgEntry) track(rec messageRecord) int64 {
	freed := m.reset()
	m.exists, m.meta = true, rec
	return freed
}

// reset forgets the message, deleted from the store; it returns the bytes
// to uncharge.
func (m *msgEntry) reset() int64 {
	var freed int64
	m.eachReaders(func(_ uint16, s idxSet) bool {
		freed += s.bytes()
		return true
	})
	if x := m.x; x != nil {
		for _, c := range x.unread {
			freed += bitmapBytes(c.bm)
		}
		if x.model != nil {
			for _, c := range x.model.delivered {
				freed += bitmapBytes(c.bm)
			}
			for _, c := range x.model.private {
				freed += bitmapBytes(c.bm)
			}
		}
		// A call waiting on the condition keeps it: it wakes at the next
		// unmark, or never waits again (the message is gone).
		m.x = &entryMore{cond: x.cond}
		m.trim()
	}
	m.loaded, m.exists = true, false
	m.meta = messageRecord{}
	m.count, m.readAt = 0, 0
	m.r0hi, m.r0ok = 0, false
	m.setR0words(nil)
	m.npend = 0
	m.deltas = 0
	return freed
}

// wait waits on m's condition.
func (m *msgEntry) wait() {
	x := m.more()
	if x.cond == nil {
		x.cond = sync.NewCond(&m.mu)
	}
	x.cond.Wait()
}

// mark marks reader idx's receipt pending, before it is written.
func (m *msgEntry) mark(idx uint32) {
	switch m.npend {
	case 0:
		m.pend0, m.npend = idx, 1
	case 1:
		m.pend1, m.npend = idx, 2
	default:
		x := m.more()
		x.pendMore = append(x.pendMore, idx)
	}
}

// unmark ends reader idx's pending mark, whether its write succeeded or
// not.
func (m *msgEntry) unmark(idx uint32) {
	switch {
	case m.npend > 0 && m.pend0 == idx:
		m.pend0 = m.pend1
		m.npend--
	case m.npend > 1 && m.pend1 == idx:
		m.npend--
	}
	x := m.x
	if x == nil {
		return
	}
	if p := x.pendMore; len(p) > 0 {
		if i := slices.Index(p, idx); i >= 0 {
			p[i] = p[len(p)-1]
			p = p[:len(p)-1]
		}
		if m.npend < 2 && len(p) > 0 { // move one up into the inline slots
			v := p[len(p)-1]
			p = p[:len(p)-1]
			m.mark(v)
		}
		x.pendMore = p
		if len(p) == 0 {
			x.pendMore = nil // most messages are idle: keep nothing for them
		}
	}
	if x.cond != nil {
		// A receipt of the same reader, or a replacement, may wait. The
		// condition is kept (and so is x): a message calls wait for is a
		// contended one, and would make it again and again.
		x.cond.Broadcast()
	}
	m.trim()
}

// isPending reports whether a receipt of reader idx is being written.
func (m *msgEntry) isPending(idx uint32) bool {
	if (m.npend > 0 && m.pend0 == idx) || (m.npend > 1 && m.pend1 == idx) {
		return true
	}
	if m.x == nil {
		return false
	}
	return slices.Contains(m.x.pendMore, idx)
}

// anyPending reports whether a receipt of m is being written.
func (m *msgEntry) anyPending() bool { return m.npend > 0 }

// commit records reader idx's receipt act, written to the store at
// readAt. A read: the count, the read time of a C2C message, and for a
// group message the loaded chunk of readers (and the unread set of its
// chunk, if made). A delivery or a private read: dn and the loaded chunk
// of D or P (decide saw them loaded). A group message's receipt is one
// more delta.
func (m *msgEntry) commit(idx uint32, isGroup bool, readAt int64, act receiptAct) int64 {
	var added int64
	hi := chunkOf(idx)
	if act&actRead != 0 {
		if isGroup {
			if s, ok := m.readers(hi); ok {
				if n := s.add(idx); n > 0 && s.big != nil {
					added += n + m.densify(hi, s)
				} else {
					added += n
				}
			}
			if m.x != nil {
				if u := m.x.unread.get(hi); u != nil {
					u.Remove(idx)
				}
			}
		} else {
			m.readAt = readAt
		}
		m.count++
	}
	if act&^actRead == 0 {
		return added
	}
	x := m.more()
	if x.model == nil {
		x.model = &msgModel{}
		added += entryModelBytes
	}
	if act&actUndeliver != 0 {
		x.model.dn--
	}
	if act&actDeliver != 0 {
		x.model.dn++
		if isGroup {
			added += addTo(&x.model.delivered, hi, idx)
		}
	}
	if act&actPrivate != 0 {
		added += addTo(&x.model.private, hi, idx)
	}
	return added
}

// entryModelBytes is the approximate memory of a msgModel without chunks.
const entryModelBytes = 64

// addTo adds idx to chunk hi of s, making the chunk if it is missing (an
// empty chunk 0 of a one-chunk message), and returns the bytes to charge.
func addTo(s *chunkSet, hi uint16, idx uint32) int64 {
	if bm := s.get(hi); bm != nil {
		bm.Add(idx)
		return 2
	}
	bm := roaring.BitmapOf(idx)
	s.set(hi, bm)
	return bitmapBytes(bm)
}

// modelChunk returns the loaded chunk hi of D (private false) or P, or nil.
func (m *msgEntry) modelChunk(hi uint16, private bool) *roaring.Bitmap {
	x := m.mdl()
	switch {
	case x == nil:
		return nil
	case private:
		return x.private.get(hi)
	}
	return x.delivered.get(hi)
}

// dn returns |D \ R|.
func (m *msgEntry) dn() int64 {
	x := m.mdl()
	if x == nil {
		return 0
	}
	return x.dn
}

// inModel reports whether idx is in chunk set D (private false) or P
// (private true) of m, and whether that chunk is loaded.
func (m *msgEntry) inModel(idx uint32, private bool) (in, known bool) {
	hi := chunkOf(idx)
	if bm := m.modelChunk(hi, private); bm != nil {
		return bm.Contains(idx), true
	}
	if !m.meta.ownCount() {
		_, loaded := m.readers(0)
		return false, loaded // stored with the readers
	}
	return false, false
}

// isRead reports whether reader idx is in R.
func (m *msgEntry) isRead(idx uint32, isGroup bool) bool {
	if isGroup {
		return m.hasReader(idx)
	}
	return m.count > 0
}

// inDelivered reports whether reader idx, not in R, is in D, and whether
// m knows. When dn is 0, D holds nobody but readers: no chunk is needed.
func (m *msgEntry) inDelivered(idx uint32, isGroup bool) (in, known bool) {
	switch {
	case m.dn() == 0:
		return false, true
	case !isGroup:
		return true, true // the only recipient is in D \ R
	}
	return m.inModel(idx, false)
}

// decide returns what a receipt of mode by reader idx records now (0 for
// nothing: already recorded), or false when a chunk of D or P it depends
// on is not loaded (ensureModel). The caller holds m.mu; the reader's own
// state cannot change before the receipt is committed while its pending
// mark is set, and other readers' receipts only change dn, which folds.
func (m *msgEntry) decide(idx uint32, isGroup bool, mode receiptMode) (receiptAct, bool) {
	if m.isRead(idx, isGroup) {
		return 0, true
	}
	switch mode {
	case modeRead:
		inD, known := m.inDelivered(idx, isGroup)
		if !known {
			return 0, false
		}
		if inD {
			return actRead | actUndeliver, true
		}
		return actRead, true
	case modeReadPrivate:
		inP, known := m.inModel(idx, true)
		if !known {
			return 0, false
		}
		if inP {
			return 0, true
		}
		inD, known := m.inDelivered(idx, isGroup)
		if !known {
			return 0, false
		}
		if inD {
			return actPrivate, true
		}
		return actPrivate | actDeliver, true
	default:
		inD, known := m.inDelivered(idx, isGroup)
		if !known {
			return 0, false
		}
		if inD {
			return 0, true
		}
		return actDeliver, true
	}
}

// collapsed records that the message's readers and count were written back
// whole.
func (m *msgEntry) collapsed() { m.deltas = 0 }

// installReaders installs chunk hi of readers, read from the store, unless
// one is loaded already (a loaded chunk is never older than the store's);
// it returns the bytes to charge.
func (m *msgEntry) installReaders(hi uint16, bm *roaring.Bitmap) int64 {
	if _, ok := m.readers(hi); ok {
		return 0
	}
	return m.setReaders(hi, bm)
}

// installModel installs chunk hi of D (private false) or P of a message
// that stores them in their own keys, read from the store, unless one is
// loaded already; it returns the bytes to charge.
func (m *msgEntry) installModel(hi uint16, private bool, bm *roaring.Bitmap) int64 {
	var added int64
	x := m.more()
	if x.model == nil {
		x.model = &msgModel{}
		added += entryModelBytes
	}
	s := &x.model.delivered
	if private {
		s = &x.model.private
	}
	if s.get(hi) != nil {
		return added
	}
	s.set(hi, bm)
	return added + bitmapBytes(bm)
}

// installUnread installs the unread set of chunk hi, made from its loaded
// readers; it returns the bytes to charge.
func (m *msgEntry) installUnread(hi uint16, u *roaring.Bitmap) int64 {
	m.more().unread.set(hi, u)
	return bitmapBytes(u)
}

func (m *msgEntry) hasReader(idx uint32) bool {
	s, ok := m.readers(chunkOf(idx))
	return ok && s.contains(idx)
}
