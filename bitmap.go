package readreceipt

import (
	"context"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/readreceipt/readreceipt/store"
)

// Bitmaps.
//
// Every member of a group has a dense index, given when it first joins and
// kept for life in that group (rejoining reuses it). Sets of members, the
// group's membership and a message's readers, are roaring bitmaps over those
// indexes, cut into chunks of 65,536 indexes (one roaring container, at most
// 8 KiB): chunk hi holds the members whose index>>16 is hi.
//
// Membership chunks are versioned. A membership change bumps the group's
// version and writes only the chunks it changed, under the new version; a
// message tracked at version v has as recipients, in chunk hi, the newest
// chunk hi written at a version <= v. Tracking a message therefore copies no
// member list, whatever the group's size, and messages tracked between two
// membership changes share one snapshot.
//
// A message's readers are kept per chunk under merge keys: a receipt writes
// a four-byte delta that the store folds, never a whole bitmap.

// chunkBits is the width of a chunk in bits of member index.
const chunkBits = 16

func chunkOf(idx uint32) uint16 { return uint16(idx >> chunkBits) }

// lastChunk returns the highest chunk that can hold an index below end.
func lastChunk(end uint32) (uint16, bool) {
	if end == 0 {
		return 0, false
	}
	return chunkOf(end - 1), true
}

// emptyChunk is shared by every lookup that finds no chunk. It is never
// modified.
var emptyChunk = roaring.New()

// bitmapBytes estimates the memory a bitmap takes, for cache accounting.
func bitmapBytes(bm *roaring.Bitmap) int64 { return int64(bm.GetSizeInBytes()) + 64 }

func chunkCacheKey(gid string, inc uint64, hi uint16, version uint64) []byte {
	b := appendLP(make([]byte, 0, len(gid)+19), gid)
	b = appendU64(b, inc)
	b = appendU16(b, hi)
	return appendU64(b, version)
}

// memberChunk returns chunk hi of group gid's membership as it was at
// version. The bitmap is shared: callers must not modify it.
func (e *embedded) memberChunk(ctx context.Context, gid string, inc uint64, hi uint16, version uint64) (*roaring.Bitmap, error) {
	qk := chunkCacheKey(gid, inc, hi, version)
	if bm, ok := e.chunks.get(qk); ok {
		return bm, nil
	}
	var found, val []byte
	start := chunkKey(gid, hi, version)
	end := prefixEnd(appendU16(groupKey(gid, groupChunk), hi))
	err := e.st.Scan(ctx, start, end, func(k, v []byte) bool {
		found = appendU64(append([]byte(nil), k...), inc)
		val = append([]byte(nil), v...)
		return false
	})
	if err != nil {
		return nil, internalErr("read membership", err)
	}
	if found == nil {
		e.chunks.add(qk, emptyChunk, 64)
		return emptyChunk, nil
	}
	bm, ok := e.blobs.get(found)
	if !ok {
		bm, err = store.DecodeSet(val)
		if err != nil {
			return nil, internalErr("decode membership", err)
		}
		e.blobs.add(found, bm, bitmapBytes(bm))
	}
	e.chunks.add(qk, bm, 64)
	return bm, nil
}

// latestChunk returns a private copy of the newest chunk hi of group gid and
// the version it was written at (0 if there is none).
func (e *embedded) latestChunk(ctx context.Context, gid string, hi uint16) (*roaring.Bitmap, uint64, error) {
	var version uint64
	var val []byte
	prefix := appendU16(groupKey(gid, groupChunk), hi)
	err := e.st.Scan(ctx, prefix, prefixEnd(prefix), func(k, v []byte) bool {
		_, version, _ = parseChunkSuffix(k[len(prefix)-2:])
		val = append([]byte(nil), v...)
		return false
	})
	if err != nil {
		return nil, 0, internalErr("read membership", err)
	}
	if val == nil {
		return roaring.New(), 0, nil
	}
	bm, err := store.DecodeSet(val)
	if err != nil {
		return nil, 0, internalErr("decode membership", err)
	}
	return bm, version, nil
}

// ensureReaders loads the reader chunks his of message entry m that are not
// loaded yet. It reads the store without holding m.mu and installs only the
// chunks still missing afterwards: the engine changes a loaded chunk in
// place after every receipt it commits, and never commits a receipt to a
// chunk that is not loaded, so a chunk read from the store before it was
// loaded is never older than what it would replace.
func (e *embedded) ensureReaders(ctx context.Context, m *msgEntry, his ...uint16) error {
	m.mu.Lock()
	var keys [][]byte
	var want []uint16
	for _, hi := range his {
		if !m.hasChunk(hi) && !slices.Contains(want, hi) {
			want = append(want, hi)
			keys = append(keys, readersKey([]byte(m.key), hi))
		}
	}
	m.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	vals, err := e.st.Get(ctx, keys)
	if err != nil {
		return internalErr("read readers", err)
	}
	var added int64
	m.mu.Lock()
	defer func() {
		m.mu.Unlock()
		e.entries.charge(m, added)
	}()
	for i, hi := range want {
		if m.hasChunk(hi) {
			continue
		}
		bm, err := store.DecodeSet(vals[i])
		if err != nil {
			return internalErr("decode readers", err)
		}
		if hi == 0 && !m.meta.ownCount() {
			// D and P come with the readers (keys.go).
			added += m.installPacked(bm)
			continue
		}
		added += m.installReaders(hi, bm)
	}
	return nil
}

// ensureModel loads chunk hi of D (delivered) and of P (private) of message
// entry m where they are kept in their own keys and are not loaded yet, as
// ensureReaders does for readers: a chunk of D or P changes only through
// receipts committed while it is loaded. The one chunk of a group message
// whose recipients fit in one comes with its readers (ensureReaders), and a
// C2C message keeps no D.
func (e *embedded) ensureModel(ctx context.Context, m *msgEntry, hi uint16, delivered, private bool) error {
	m.mu.Lock()
	if !m.exists || !m.meta.ownCount() {
		m.mu.Unlock()
		return nil
	}
	isGroup := m.meta.Incarnation != 0
	var keys [][]byte
	var kinds []bool // private, by key
	prefix := []byte(m.key)
	if delivered && isGroup {
		if _, known := m.inModel(uint32(hi)<<chunkBits, false); !known {
			keys = append(keys, appendU16(withSuffix(prefix, msgDelivered), hi))
			kinds = append(kinds, false)
		}
	}
	if private {
		if _, known := m.inModel(uint32(hi)<<chunkBits, true); !known {
			keys = append(keys, appendU16(withSuffix(prefix, msgPrivate), hi))
			kinds = append(kinds, true)
		}
	}
	m.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	vals, err := e.st.Get(ctx, keys)
	if err != nil {
		return internalErr("read receipts", err)
	}
	var added int64
	m.mu.Lock()
	defer func() {
		m.mu.Unlock()
		e.entries.charge(m, added)
	}()
	for i, priv := range kinds {
		bm, err := store.DecodeSet(vals[i])
		if err != nil {
			return internalErr("decode receipts", err)
		}
		added += m.installModel(hi, priv, bm)
	}
	return nil
}
