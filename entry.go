package readreceipt

import (
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
)

// msgEntry is the embedded backend's in-memory state of one message. It
// mirrors what the store holds for the message (its meta key, its count or
// reader chunks) and adds what the store does not need to know: receipts
// being written (pending), the deltas since the last collapse, and unread
// sets derived from the membership snapshot.
//
// This file owns the type: the other files change an entry only through
// the methods below, always holding m.mu, and each method says which call
// keeps it in step with the store:
//   - load (loadEntries), once, with what one read of the store gave;
//   - track (TrackMessage) and reset (DeleteMessage, expiry, a stale
//     message replaced), after their write succeeded, under the
//     conversation's write lock or with the entry held across the write;
//   - mark and unmark (the receipt path, before and after its write), and
//     commit (after the write succeeded);
//   - installReaders (ensureReaders) and installUnread (member pages), for
//     chunks not loaded yet;
//   - collapsed (collapse), after writing the whole values back.
//
// The entry table (cache.go) pins an entry while a call uses it.
type msgEntry struct {
	key        string // the message's key prefix
	shard      int
	refs       int32 // guarded by the table shard
	size       int64 // guarded by the table shard
	prev, next *msgEntry

	mu      sync.Mutex
	loaded  bool
	exists  bool
	meta    messageRecord
	count   int64
	readAt  int64               // C2C: when the peer's receipt was recorded (Unix ns)
	chunks  chunkSet            // committed readers, by chunk
	pending map[uint32]struct{} // readers being written
	deltas  int                 // receipts written as merge deltas since the last collapse
	// unread holds, by chunk, the recipients (but the sender) who have not
	// read: made by member pages from a loaded chunk of readers and the
	// message's membership snapshot, which never changes, and kept current
	// by every receipt committed to the chunk (commit).
	unread chunkSet

	// collapsing is set while collapse waits for pending receipts to end and
	// writes; cond (on mu) wakes the collapse and the receipts waiting for
	// it or for a pending receipt to end.
	collapsing bool
	cond       *sync.Cond
}

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
// of the one chunk of readers, that chunk (nil otherwise). It returns the
// bytes to charge.
func (m *msgEntry) load(exists bool, meta messageRecord, count, readAt int64, readers *roaring.Bitmap) int64 {
	if m.loaded {
		return 0
	}
	m.loaded, m.exists = true, exists
	m.meta, m.count, m.readAt = meta, count, readAt
	if readers != nil {
		m.chunks = chunkSet{{0, readers}}
		return bitmapBytes(readers)
	}
	return 0
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
	for _, c := range m.chunks {
		freed += bitmapBytes(c.bm)
	}
	for _, c := range m.unread {
		freed += bitmapBytes(c.bm)
	}
	m.unread = nil
	m.loaded, m.exists = true, false
	m.meta = messageRecord{}
	m.count, m.readAt = 0, 0
	m.chunks = nil
	m.pending = nil
	m.deltas = 0
	return freed
}

// wait waits on m's condition.
func (m *msgEntry) wait() {
	if m.cond == nil {
		m.cond = sync.NewCond(&m.mu)
	}
	m.cond.Wait()
}

// mark marks reader idx's receipt pending, before it is written.
func (m *msgEntry) mark(idx uint32) {
	if m.pending == nil {
		m.pending = make(map[uint32]struct{})
	}
	m.pending[idx] = struct{}{}
}

// unmark ends reader idx's pending mark, whether its write succeeded or
// not.
func (m *msgEntry) unmark(idx uint32) {
	delete(m.pending, idx)
	if len(m.pending) == 0 {
		m.pending = nil // an emptied map keeps its buckets; most messages are idle
	}
	if m.cond != nil {
		m.cond.Broadcast() // a collapse, or a receipt of the same reader, may wait
	}
}

// isPending reports whether a receipt of reader idx is being written.
func (m *msgEntry) isPending(idx uint32) bool {
	_, ok := m.pending[idx]
	return ok
}

// commit records reader idx's receipt, written to the store at readAt: the
// count, the read time of a C2C message, and for a group message the
// loaded chunk of readers (and the unread set of its chunk, if made) and
// one more delta.
func (m *msgEntry) commit(idx uint32, isGroup bool, readAt int64) {
	if isGroup {
		hi := chunkOf(idx)
		m.chunks.get(hi).Add(idx)
		if u := m.unread.get(hi); u != nil {
			u.Remove(idx)
		}
		m.deltas++
	} else {
		m.readAt = readAt
	}
	m.count++
}

// collapsed records that the message's readers and count were written back
// whole.
func (m *msgEntry) collapsed() { m.deltas = 0 }

// installReaders installs chunk hi of readers, read from the store, unless
// one is loaded already (a loaded chunk is never older than the store's);
// it returns the bytes to charge.
func (m *msgEntry) installReaders(hi uint16, bm *roaring.Bitmap) int64 {
	if m.chunks.get(hi) != nil {
		return 0
	}
	m.chunks.set(hi, bm)
	return bitmapBytes(bm)
}

// installUnread installs the unread set of chunk hi, made from its loaded
// readers; it returns the bytes to charge.
func (m *msgEntry) installUnread(hi uint16, u *roaring.Bitmap) int64 {
	m.unread.set(hi, u)
	return bitmapBytes(u)
}

func (m *msgEntry) hasReader(idx uint32) bool {
	bm := m.chunks.get(chunkOf(idx))
	return bm != nil && bm.Contains(idx)
}
