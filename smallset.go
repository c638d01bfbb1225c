package readreceipt

import (
	"math/bits"

	"github.com/RoaringBitmap/roaring/v2"
)

// idxSet is one chunk of a message's readers in memory, in one of two
// forms. A plain bitset over the indexes the message's recipients take
// in the chunk, from the chunk's first index, when that span is at most
// bitsetMaxSpan or the readers are dense enough that the bitset is no
// larger than roaring's array of them (denseEnough): 200 members take
// four words, where roaring takes some 300 bytes for the same set (its
// Bitmap, its slices, a container and two bytes a member), and a
// 10,000-member message read by a thousand takes 1,250 bytes either way,
// but a bitset's test and add are a shift and a mask where roaring's are
// a binary search and an insert into a sorted array. Otherwise a roaring
// bitmap, which stays small for the sparse sets of huge groups. The form
// is chosen when the chunk is loaded, and a roaring chunk becomes a
// bitset once receipts make it dense enough (msgEntry.densify): the
// receipt path only adds, so it never turns back.
//
// The values are member indexes; a set holds only indexes of its chunk,
// whose number the caller passes where values are made (hi).
//
// An idxSet is a handle on a set kept elsewhere (readerChunk, or the
// fields r0p, r0n and x.r0big of an entry, laid out so that an entry stays
// in a smaller size class): a copy changes the same set, until the set
// changes form.
type idxSet struct {
	// The bitset form, bit i of word w is index chunk start+64w+i: in
	// *bits, or in r0's words of entry r0 when r0 is not nil.
	bits *[]uint64
	r0   *msgEntry
	big  *roaring.Bitmap // roaring form, when not nil
}

// words returns the words of the bitset form.
func (s idxSet) words() []uint64 {
	if s.r0 != nil {
		return s.r0.r0words()
	}
	return *s.bits
}

// setWords replaces the words of the bitset form.
func (s idxSet) setWords(w []uint64) {
	if s.r0 != nil {
		s.r0.setR0words(w)
		return
	}
	*s.bits = w
}

// bitsetMaxSpan is the largest span of a chunk kept as a bitset however
// few its readers: 512 bytes, the size of a roaring array of 256 members.
const bitsetMaxSpan = 4096

// denseEnough reports whether a chunk of card readers over span indexes
// takes the bitset form: its span/8 bytes are then at most the two bytes
// a member of roaring's array form (which roaring itself keeps up to
// 4,096 members, the span/16 of a whole chunk).
func denseEnough(card uint64, span uint32) bool {
	return span <= bitsetMaxSpan || card*16 >= uint64(span)
}

// chunkSpan is how many indexes of chunk hi the recipients of a message
// whose indexes are below end can take, from the chunk's first.
func chunkSpan(end uint32, hi uint16) uint32 {
	lo := uint32(hi) << chunkBits
	if end <= lo {
		return 0
	}
	return min(end-lo, 1<<chunkBits)
}

// makeIdxSet makes the set of bm, a set of indexes of one chunk whose
// recipients take span of its indexes: the words of the bitset form, or
// bm itself, kept, for the roaring form.
func makeIdxSet(bm *roaring.Bitmap, span uint32) ([]uint64, *roaring.Bitmap) {
	if !denseEnough(bm.GetCardinality(), span) {
		return nil, bm
	}
	words := make([]uint64, max((span+63)/64, 1))
	s := idxSet{bits: &words}
	it := bm.Iterator()
	for it.HasNext() {
		s.add(it.Next())
	}
	return words, nil
}

// add adds idx and returns the bytes it added.
func (s idxSet) add(idx uint32) int64 {
	if s.big != nil {
		if s.big.CheckedAdd(idx) {
			return 2
		}
		return 0
	}
	lo := idx & (1<<chunkBits - 1)
	w := int(lo / 64)
	var grown int64
	words := s.words()
	if w >= len(words) {
		// Not a recipient's index: kept all the same, as the store does.
		more := make([]uint64, w+1)
		copy(more, words)
		grown = int64(8 * (len(more) - len(words)))
		s.setWords(more)
		words = more
	}
	words[w] |= 1 << (lo % 64)
	return grown
}

// contains reports whether idx is in s.
func (s idxSet) contains(idx uint32) bool {
	if s.big != nil {
		return s.big.Contains(idx)
	}
	lo := idx & (1<<chunkBits - 1)
	w := int(lo / 64)
	words := s.words()
	return w < len(words) && words[w]&(1<<(lo%64)) != 0
}

// card returns how many indexes s holds.
func (s idxSet) card() int {
	if s.big != nil {
		return int(s.big.GetCardinality())
	}
	n := 0
	for _, w := range s.words() {
		n += bits.OnesCount64(w)
	}
	return n
}

// appendFrom appends to dst the indexes of s from pos on, in order, until
// dst holds want; hi is s's chunk.
func (s idxSet) appendFrom(dst []uint32, hi uint16, pos uint32, want int) []uint32 {
	if s.big != nil {
		it := s.big.Iterator()
		it.AdvanceIfNeeded(pos)
		for it.HasNext() && len(dst) < want {
			dst = append(dst, it.Next())
		}
		return dst
	}
	base := uint32(hi) << chunkBits
	from := uint32(0)
	if pos > base {
		from = pos - base
	}
	words := s.words()
	for w := int(from / 64); w < len(words) && len(dst) < want; w++ {
		word := words[w]
		if w == int(from/64) {
			word &^= 1<<(from%64) - 1
		}
		for word != 0 && len(dst) < want {
			b := uint32(bits.TrailingZeros64(word))
			dst = append(dst, base+uint32(w)*64+b)
			word &= word - 1
		}
	}
	return dst
}

// roaring returns s as a roaring bitmap; hi is s's chunk. In the roaring
// form it is s's own: the caller must not modify it.
func (s idxSet) roaring(hi uint16) *roaring.Bitmap {
	if s.big != nil {
		return s.big
	}
	out := roaring.New()
	base := uint32(hi) << chunkBits
	for w, word := range s.words() {
		for word != 0 {
			out.Add(base + uint32(w)*64 + uint32(bits.TrailingZeros64(word)))
			word &= word - 1
		}
	}
	return out
}

// bytes estimates the memory s takes, for cache accounting.
func (s idxSet) bytes() int64 {
	if s.big != nil {
		return bitmapBytes(s.big)
	}
	return int64(8 * len(s.words()))
}

// readerChunk is one loaded chunk of a message's readers beyond the first
// (entryMore): the two forms of an idxSet.
type readerChunk struct {
	hi   uint16
	bits []uint64
	big  *roaring.Bitmap
}
