package store_test

import (
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/readreceipt/readreceipt/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func set(t *testing.T, vals ...uint32) []byte {
	t.Helper()
	v, err := store.EncodeSet(roaring.BitmapOf(vals...))
	require.NoError(t, err)
	return v
}

// runs returns a set value of the ranges [lo, hi) given as lo, hi pairs,
// in the form EncodeSet picks (roaring runs, for long ranges).
func runs(t testing.TB, bounds ...uint64) []byte {
	t.Helper()
	bm := roaring.New()
	for i := 0; i < len(bounds); i += 2 {
		bm.AddRange(bounds[i], bounds[i+1])
	}
	v, err := store.EncodeSet(bm)
	require.NoError(t, err)
	return v
}

// span lists the values of the ranges [lo, hi) given as lo, hi pairs.
func span(bounds ...uint32) []uint32 {
	var out []uint32
	for i := 0; i < len(bounds); i += 2 {
		for v := bounds[i]; v < bounds[i+1]; v++ {
			out = append(out, v)
		}
	}
	return out
}

func TestFold(t *testing.T) {
	tests := []struct {
		name     string
		base     []byte
		operands [][]byte
		counter  int64
		set      []uint32
		bad      bool
	}{
		{name: "counter from nothing", operands: [][]byte{store.EncodeCounter(1)}, counter: 1},
		{name: "counters add", base: store.EncodeCounter(5), operands: [][]byte{store.EncodeCounter(2), store.EncodeCounter(-3)}, counter: 4},
		{name: "set deltas union", operands: [][]byte{store.EncodeSetAdd(3, 1), store.EncodeSetAdd(1, 70000)}, set: []uint32{1, 3, 70000}},
		{name: "set value and deltas", base: set(t, 2, 4), operands: [][]byte{store.EncodeSetAdd(4, 5)}, set: []uint32{2, 4, 5}},
		{name: "empty delta", base: set(t, 9), operands: [][]byte{store.EncodeSetAdd()}, set: []uint32{9}},
		{name: "sets of runs union", base: runs(t, 0, 3000, 5000, 5010, 70000, 70100),
			operands: [][]byte{runs(t, 2000, 6000, 69990, 70005), store.EncodeSetAdd(9)},
			set:      span(0, 6000, 69990, 70100)},
		{name: "kinds do not mix", base: store.EncodeCounter(1), operands: [][]byte{store.EncodeSetAdd(1)}, bad: true},
		{name: "empty operand", operands: [][]byte{{}}, bad: true},
		{name: "unknown tag", operands: [][]byte{[]byte("x123")}, bad: true},
		{name: "short counter", operands: [][]byte{{'n', 1, 2}}, bad: true},
		{name: "ragged delta", operands: [][]byte{{'l', 1, 2, 3}}, bad: true},
		{name: "garbled set", operands: [][]byte{{'s', 0xde, 0xad}}, bad: true},
		{name: "nothing to fold", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := store.Fold(tt.base, tt.operands...)
			if tt.bad {
				assert.ErrorIs(t, err, store.ErrBadMerge)
				return
			}
			require.NoError(t, err)
			if tt.set != nil {
				bm, err := store.DecodeSet(v)
				require.NoError(t, err)
				assert.Equal(t, tt.set, bm.ToArray())
				return
			}
			n, err := store.DecodeCounter(v)
			require.NoError(t, err)
			assert.Equal(t, tt.counter, n)
		})
	}
}

// Folding in any grouping and order gives the same value: backends may
// fold eagerly, lazily, or partially during compaction.
func TestFoldIsAssociativeAndCommutative(t *testing.T) {
	ops := [][]byte{store.EncodeSetAdd(5), store.EncodeSetAdd(1, 2), set(t, 2, 100000), store.EncodeSetAdd(7)}
	whole, err := store.Fold(nil, ops...)
	require.NoError(t, err)
	left, err := store.Fold(nil, ops[:2]...)
	require.NoError(t, err)
	right, err := store.Fold(nil, ops[2:]...)
	require.NoError(t, err)
	grouped, err := store.Fold(right, left)
	require.NoError(t, err)
	a, _ := store.DecodeSet(whole)
	b, _ := store.DecodeSet(grouped)
	assert.True(t, a.Equals(b))
	assert.Equal(t, []uint32{1, 2, 5, 7, 100000}, a.ToArray())
}

func TestDecodeMissing(t *testing.T) {
	n, err := store.DecodeCounter(nil)
	require.NoError(t, err)
	assert.Zero(t, n)
	bm, err := store.DecodeSet(nil)
	require.NoError(t, err)
	assert.True(t, bm.IsEmpty())
	_, err = store.DecodeSet(store.EncodeCounter(1))
	assert.ErrorIs(t, err, store.ErrBadMerge)
}

// TestEncodeSetForms: a set is stored in whichever of its two forms is
// smaller, and decodes to the same set either way, at the edges of the
// uint32 range too.
func TestEncodeSetForms(t *testing.T) {
	every := func(from, to, step uint32) []uint32 {
		var out []uint32
		for v := uint64(from); v <= uint64(to); v += uint64(step) {
			out = append(out, uint32(v))
		}
		return out
	}
	tests := []struct {
		name string
		vals []uint32
		tag  byte
		max  int // the encoding's largest acceptable size
	}{
		{"half of a 200-member group", every(1, 199, 2), 'b', 1 + 1 + 25},
		{"one value", []uint32{7}, 'b', 3},
		{"two values far apart", []uint32{0, 1 << 20}, 's', 30},
		{"a full 64K range", every(0, 65535, 1), 's', 20},
		{"sparse over a wide range", every(0, 1<<30, 1<<20), 's', 12000},
		{"half of a range far up", every(1<<32-400, 1<<32-2, 2), 'b', 1 + 5 + 50},
		{"the largest value", []uint32{1<<32 - 1, 1<<32 - 3}, 'b', 1 + 5 + 1},
		{"empty", nil, 's', 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := set(t, tc.vals...)
			assert.Equal(t, string(tc.tag), string(v[0]), "form")
			assert.LessOrEqual(t, len(v), tc.max, "size")
			require.NoError(t, store.CheckOperand(v))
			bm, err := store.DecodeSet(v)
			require.NoError(t, err)
			assert.Equal(t, len(tc.vals), int(bm.GetCardinality()))
			for _, x := range tc.vals {
				require.True(t, bm.Contains(x), "%d lost", x)
			}
			// Folding a bitset with deltas and with a roaring set.
			folded, err := store.Fold(v, store.EncodeSetAdd(3, 5), set(t, 1<<31))
			require.NoError(t, err)
			fb, err := store.DecodeSet(folded)
			require.NoError(t, err)
			bm.AddMany([]uint32{3, 5, 1 << 31})
			assert.True(t, fb.Equals(bm))
		})
	}
}

// TestBadBitsets: malformed bitsets are ErrBadMerge, never a panic or a
// set reaching past the uint32 range.
func TestBadBitsets(t *testing.T) {
	for name, v := range map[string][]byte{
		"no base":                {'b'},
		"truncated base":         {'b', 0x80},
		"base past uint32":       {'b', 0x80, 0x80, 0x80, 0x80, 0x10, 1},
		"bits past uint32":       append([]byte{'b', 0xf8, 0xff, 0xff, 0xff, 0x0f}, 1, 1),
		"overlong base encoding": {'b', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			assert.ErrorIs(t, store.CheckOperand(v), store.ErrBadMerge)
			_, err := store.DecodeSet(v)
			assert.ErrorIs(t, err, store.ErrBadMerge)
			_, err = store.Fold(nil, v)
			assert.ErrorIs(t, err, store.ErrBadMerge)
		})
	}
}

func TestFoldAppend(t *testing.T) {
	app := store.EncodeAppend
	v, err := store.Fold(app([]byte("ab")), app([]byte("c")), app(nil), app([]byte("de")))
	require.NoError(t, err)
	log, err := store.DecodeAppend(v)
	require.NoError(t, err)
	assert.Equal(t, "abcde", string(log))

	// A backend that meets operands newest first keeps write order.
	var f store.Folder
	require.NoError(t, f.Add(app([]byte("de"))))
	require.NoError(t, f.AddOlder(app([]byte("c"))))
	require.NoError(t, f.AddOlder(app([]byte("ab"))))
	require.NoError(t, f.Add(app([]byte("f"))))
	v, err = f.Value()
	require.NoError(t, err)
	log, _ = store.DecodeAppend(v)
	assert.Equal(t, "abcdef", string(log))

	_, err = store.Fold(app([]byte("x")), store.EncodeCounter(1))
	assert.ErrorIs(t, err, store.ErrBadMerge)
	_, err = store.DecodeAppend(store.EncodeCounter(1))
	assert.ErrorIs(t, err, store.ErrBadMerge)
	got, err := store.DecodeAppend(nil)
	assert.NoError(t, err)
	assert.Nil(t, got)
	assert.NoError(t, store.CheckOperand(app(nil)))
}

// BenchmarkFoldRunSets: a compaction's fold of two stored reader sets of
// long runs (a 65,536-member chunk, read by its first half and by a
// quarter across the middle).
func BenchmarkFoldRunSets(b *testing.B) {
	base, op := runs(b, 0, 32768), runs(b, 16384, 49152)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Fold(base, op); err != nil {
			b.Fatal(err)
		}
	}
}
