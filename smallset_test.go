package readreceipt

import (
	"fmt"
	"slices"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChunkSpan(t *testing.T) {
	for _, c := range []struct {
		end  uint32
		hi   uint16
		want uint32
	}{
		{0, 0, 0},
		{200, 0, 200},
		{200, 1, 0},
		{1 << 16, 0, 1 << 16},
		{1<<16 + 5, 0, 1 << 16},
		{1<<16 + 5, 1, 5},
		{3 << 16, 1, 1 << 16},
		{3 << 16, 3, 0},
	} {
		assert.Equal(t, c.want, chunkSpan(c.end, c.hi), "end %d chunk %d", c.end, c.hi)
	}
}

// checkIdxSet compares every operation of s, of chunk hi, with want.
func checkIdxSet(t *testing.T, s idxSet, hi uint16, want *roaring.Bitmap) {
	t.Helper()
	require.True(t, s.roaring(hi).Equals(want), "set %v, want %v", s.roaring(hi).ToArray(), want.ToArray())
	require.Equal(t, int(want.GetCardinality()), s.card())
	base := uint32(hi) << chunkBits
	all := want.ToArray()
	for _, pos := range []uint32{0, base, base + 1, base + 63, base + 64, base + 65, base + 199, base + 200, base + 5000, base + 1<<16 - 1} {
		var from []uint32
		for _, v := range all {
			if v >= pos {
				from = append(from, v)
			}
		}
		for _, n := range []int{0, 1, 3, len(from), len(from) + 1} {
			got := s.appendFrom([]uint32{7}, hi, pos, n+1)
			exp := append([]uint32{7}, from[:min(n, len(from))]...)
			require.Equal(t, exp, got, "from %d, up to %d", pos, n)
		}
	}
	for _, v := range []uint32{base, base + 1, base + 63, base + 64, base + 199, base + 4095, base + 4096, base + 1<<16 - 1} {
		require.Equal(t, want.Contains(v), s.contains(v), "contains %d", v)
	}
	for _, v := range all {
		require.True(t, s.contains(v), "contains %d", v)
	}
}

// The two forms, chosen by the span: a bitset up to bitsetMaxSpan, roaring
// above; both answer as roaring does, in chunk 0 and in a later chunk.
func TestIdxSetForms(t *testing.T) {
	for _, c := range []struct {
		name   string
		hi     uint16
		span   uint32
		bitset bool
		words  int
		values []uint32 // offsets in the chunk
	}{
		{"empty group", 0, 0, true, 1, nil},
		{"200 members, none read", 0, 200, true, 4, nil},
		{"200 members, half read", 0, 200, true, 4, []uint32{1, 2, 63, 64, 65, 127, 128, 199}},
		{"largest bitset", 0, bitsetMaxSpan, true, bitsetMaxSpan / 64, []uint32{0, 4095}},
		{"smallest roaring", 0, bitsetMaxSpan + 1, false, 0, []uint32{0, 4096}},
		{"later chunk, bitset", 3, 100, true, 2, []uint32{0, 5, 99}},
		{"later chunk, roaring", 3, 1 << 16, false, 0, []uint32{0, 5, 1<<16 - 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := uint32(c.hi) << chunkBits
			want := roaring.New()
			loaded := roaring.New()
			half := len(c.values) / 2
			for i, v := range c.values {
				want.Add(base + v)
				if i < half {
					loaded.Add(base + v)
				}
			}
			words, big := makeIdxSet(loaded, chunkSpan(base+c.span, c.hi))
			s := idxSet{bits: &words, big: big}
			require.Equal(t, c.bitset, big == nil, "form")
			if c.bitset {
				require.Len(t, words, c.words)
				require.Equal(t, int64(8*c.words), s.bytes())
			}
			for _, v := range c.values[half:] {
				s.add(base + v)
			}
			s.add(base)
			assert.Equal(t, int64(0), s.add(base), "adding again changes nothing")
			want.Add(base)
			checkIdxSet(t, s, c.hi, want)
		})
	}
}

// An index beyond the span (never a recipient's) is kept all the same, as
// the store would keep it.
func TestIdxSetGrows(t *testing.T) {
	words, _ := makeIdxSet(roaring.BitmapOf(3), 100)
	s := idxSet{bits: &words}
	require.Len(t, words, 2)
	assert.Equal(t, int64(6*8), s.add(500), "two words grow to eight")
	assert.Equal(t, int64(0), s.add(501))
	require.Len(t, words, 8, "the handle's words grew")
	checkIdxSet(t, s, 0, roaring.BitmapOf(3, 500, 501))
}

// The bitset form does not keep the bitmap it was made of; the roaring
// form does, and hands it out as it is.
func TestIdxSetOwnership(t *testing.T) {
	bm := roaring.BitmapOf(1, 2)
	words, _ := makeIdxSet(bm, 200)
	bm.Add(3)
	assert.False(t, idxSet{bits: &words}.contains(3))
	big := roaring.BitmapOf(1, 2)
	_, kept := makeIdxSet(big, 1<<16)
	assert.Same(t, big, idxSet{big: kept}.roaring(0))
}

// The entry keeps its first chunk of readers inline and the others in x,
// and finds each by its number.
func TestEntryReaderChunks(t *testing.T) {
	m := &msgEntry{meta: messageRecord{Incarnation: 1, EndIndex: 3<<16 + 10}}
	require.False(t, m.hasChunk(0))
	m.installReaders(2, roaring.BitmapOf(2<<16+1))
	m.installReaders(0, roaring.BitmapOf(5))
	m.installReaders(3, roaring.BitmapOf(3<<16+9))
	assert.Equal(t, int64(0), m.installReaders(0, roaring.BitmapOf(6)), "a loaded chunk is kept")
	require.NotNil(t, m.x)
	assert.Len(t, m.x.more, 2)
	for _, c := range []struct {
		idx  uint32
		want bool
	}{{5, true}, {6, false}, {2<<16 + 1, true}, {2<<16 + 2, false}, {3<<16 + 9, true}, {1<<16 + 1, false}} {
		assert.Equal(t, c.want, m.hasReader(c.idx), "index %d", c.idx)
	}
	s3, _ := m.readers(3)
	assert.Nil(t, s3.big, "the last chunk spans 10 indexes: a bitset")
	s2, _ := m.readers(2)
	assert.NotNil(t, s2.big, "a full chunk: roaring")
	var his []uint16
	m.eachReaders(func(hi uint16, _ idxSet) bool { his = append(his, hi); return true })
	assert.Equal(t, []uint16{2, 0, 3}, his)
	m.commit(1, true, 0, actRead)
	assert.True(t, m.hasReader(1))
	m.reset()
	assert.False(t, m.hasChunk(2))
	assert.False(t, m.hasChunk(0))
	assert.Nil(t, m.x, "a reset entry keeps no extra state")
}

// A first chunk in the roaring form keeps its bitmap in x, and the entry
// keeps x while it does.
func TestEntryFirstChunkRoaring(t *testing.T) {
	m := &msgEntry{meta: messageRecord{Incarnation: 1, EndIndex: 1 << 17}}
	m.installReaders(1, roaring.BitmapOf(1<<16+4))
	require.NotNil(t, m.x)
	require.NotNil(t, m.x.r0big)
	m.commit(1<<16+5, true, 0, actRead)
	assert.True(t, m.hasReader(1<<16+5))
	assert.True(t, m.hasReader(1<<16+4))
	m.mark(1)
	m.mark(2)
	m.mark(3)
	for i := range uint32(3) {
		m.unmark(i + 1)
	}
	assert.NotNil(t, m.x, "trimming keeps the roaring chunk")
	assert.True(t, m.hasReader(1<<16+5))
}

// An idle entry keeps no extra state: the pending marks beyond two and the
// condition a call waited on go with the last unmark.
func TestEntryExtraTrimmed(t *testing.T) {
	m := &msgEntry{}
	for i := range uint32(5) {
		m.mark(i)
	}
	require.NotNil(t, m.x)
	for i := range uint32(5) {
		m.unmark(i)
	}
	assert.Nil(t, m.x)
	assert.False(t, m.anyPending())
}

// FuzzIdxSet runs adds on a set of either form against a roaring bitmap,
// the model.
func FuzzIdxSet(f *testing.F) {
	f.Add(uint16(0), uint16(200), []byte{1, 0, 2, 0, 63, 0, 64, 0, 199, 0})
	f.Add(uint16(2), uint16(0), []byte{0xff, 0xff, 0, 0, 5, 1})
	f.Add(uint16(0), uint16(4097), []byte{0, 16, 1, 16})
	f.Add(uint16(1), uint16(4096), []byte{0xff, 0x0f, 0, 0x10})
	f.Fuzz(func(t *testing.T, hi, span uint16, ops []byte) {
		base := uint32(hi) << chunkBits
		sp := uint32(span)
		if span == 0 {
			sp = 1 << chunkBits // 0 stands for a full chunk
		}
		want := roaring.New()
		loaded := roaring.New()
		var vals []uint32
		for i := 0; i+1 < len(ops); i += 2 {
			vals = append(vals, base+uint32(ops[i])|uint32(ops[i+1])<<8)
		}
		// The first third is loaded, the rest added.
		k := len(vals) / 3
		for _, v := range vals[:k] {
			loaded.Add(v)
			want.Add(v)
		}
		words, big := makeIdxSet(loaded, sp)
		s := idxSet{bits: &words, big: big}
		for _, v := range vals[k:] {
			s.add(v)
			want.Add(v)
		}
		require.True(t, s.roaring(hi).Equals(want))
		require.Equal(t, int(want.GetCardinality()), s.card())
		for _, v := range vals {
			require.True(t, s.contains(v))
			require.False(t, s.contains(v^1) != want.Contains(v^1))
		}
		all := want.ToArray()
		for _, v := range vals {
			got := s.appendFrom(nil, hi, v, 5)
			i, _ := slices.BinarySearch(all, v)
			require.Equal(t, all[i:min(i+5, len(all))], got)
		}
	})
}

// TestEntryFirstChunkGrows: the first chunk's bitset, kept in the entry as
// a first word and a length, grows for an index beyond the recipients'
// span (the store keeps such a reader too) and keeps every reader.
func TestEntryFirstChunkGrows(t *testing.T) {
	m := &msgEntry{meta: messageRecord{Incarnation: 1, EndIndex: 200}}
	m.installPacked(roaring.BitmapOf(3, 199))
	require.Len(t, m.r0words(), 4)
	assert.Equal(t, int64(8*(1024-4)), m.commit(65535, true, 0, actRead), "grown to the whole chunk")
	require.Len(t, m.r0words(), 1024)
	for _, idx := range []uint32{3, 199, 65535} {
		assert.True(t, m.hasReader(idx), "index %d", idx)
	}
	assert.False(t, m.hasReader(4))
	s, _ := m.readers(0)
	assert.Equal(t, 3, s.card())
	assert.Equal(t, int64(3), m.count)
	assert.Equal(t, []uint32{3, 199, 65535}, s.appendFrom(nil, 0, 0, 10))
	m.reset()
	assert.Nil(t, m.r0words())
}

// A chunk is loaded as a bitset, whatever its span, once its readers are
// dense enough that the bitset is no larger than roaring's array of them:
// a sixteenth of the span.
func TestIdxSetDenseLoad(t *testing.T) {
	for _, c := range []struct {
		span, card uint32
		bitset     bool
	}{
		{10_000, 624, false},
		{10_000, 625, true},
		{1 << 16, 4095, false},
		{1 << 16, 4096, true},
	} {
		bm := roaring.New()
		bm.AddRange(0, uint64(c.card))
		words, big := makeIdxSet(bm, c.span)
		require.Equal(t, c.bitset, big == nil, "span %d, %d readers", c.span, c.card)
		if c.bitset {
			require.Len(t, words, int((c.span+63)/64))
			checkIdxSet(t, idxSet{bits: &words}, 0, bm)
		}
	}
}

// A roaring chunk turns into a bitset as receipts make it dense, in the
// first chunk (kept in the entry) and in a later one (in x): the same
// readers before and after, a charge that adds up to what the chunk
// takes, and receipts after it still recorded.
func TestEntryDensify(t *testing.T) {
	for _, hi := range []uint16{0, 1} {
		t.Run(fmt.Sprintf("chunk %d", hi), func(t *testing.T) {
			base := uint32(hi) << chunkBits
			m := &msgEntry{meta: messageRecord{Incarnation: 1, EndIndex: base + 10_000}}
			if hi > 0 {
				m.installReaders(0, roaring.BitmapOf(7)) // 65,536 span, one reader: roaring
			}
			want := roaring.New()
			for i := range uint32(600) {
				want.Add(base + 3*i) // spread: roaring keeps an array
			}
			charged := m.installReaders(hi, want.Clone())
			s, _ := m.readers(hi)
			require.NotNil(t, s.big, "600 readers of 10,000: roaring")
			for i := uint32(0); want.GetCardinality() < 625; i++ {
				idx := base + 3*i + 1
				want.Add(idx)
				charged += m.commit(idx, true, 0, actRead)
				s, _ = m.readers(hi)
				require.Equal(t, want.GetCardinality() >= 625, s.big == nil, "form at %d readers", want.GetCardinality())
			}
			require.Len(t, s.words(), 157)
			assert.Equal(t, s.bytes(), charged, "charges add up to the bitset's bytes")
			assert.True(t, s.roaring(hi).Equals(want))
			if hi == 0 {
				assert.Nil(t, m.x, "the first chunk's roaring form is gone, and x with it")
			} else {
				s0, _ := m.readers(0)
				assert.NotNil(t, s0.big, "the other chunk keeps its form")
				assert.True(t, m.hasReader(7))
			}
			idx := base + 9_999
			assert.False(t, m.hasReader(idx))
			assert.Equal(t, int64(0), m.commit(idx, true, 0, actRead))
			assert.True(t, m.hasReader(idx))
			assert.Equal(t, int64(625-600+1), m.count, "every receipt counted")
		})
	}
}
