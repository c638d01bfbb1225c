package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
)

// Merge values.
//
// A key written with Batch.Merge holds one of three kinds of value, told
// apart by the first byte:
//
//   - a counter ('n' followed by a signed 64-bit big-endian integer): folding
//     adds the integers;
//   - a set of uint32, in one of three forms: 's' followed by a serialized
//     roaring bitmap; 'b' followed by a uvarint base and a bitset (bit i of
//     byte j stands for base+8j+i), the small form of a set that is dense
//     over a short range, such as the readers of a message in a small
//     group; or 'l' followed by little-endian uint32s, the cheap form of a
//     small delta. Folding takes the union and yields whichever of 's' and
//     'b' is smaller;
//   - an append log ('a' followed by bytes): folding concatenates the
//     operands' bytes in the order they were written.
//
// The counter and set folds are associative and commutative, so a backend
// may fold their operands in any grouping and order, eagerly on write or
// lazily on read, and always reach the same value. The append fold is
// associative but not commutative: a backend may group operands as it
// likes, but must keep them in write order (Folder.AddOlder serves a
// backend that meets operands newest first). Folding operands of different kinds, or a malformed
// operand, is an error (ErrBadMerge): it means corrupt data or a caller bug.

// ErrBadMerge is returned (wrapped) when merge operands are malformed or of
// different kinds.
var ErrBadMerge = errors.New("store: bad merge operand")

const (
	tagCounter = 'n'
	tagSet     = 's'
	tagList    = 'l'
	tagBits    = 'b'
	tagAppend  = 'a'
)

// EncodeAppend returns a merge operand that appends b to a log.
func EncodeAppend(b []byte) []byte {
	out := make([]byte, 1, 1+len(b))
	out[0] = tagAppend
	return append(out, b...)
}

// DecodeAppend returns the bytes held by a folded append log. A nil value
// (missing key) decodes as nil. The returned slice shares v's memory.
func DecodeAppend(v []byte) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	if len(v) == 0 || v[0] != tagAppend {
		return nil, fmt.Errorf("%w: not an append log (%d bytes)", ErrBadMerge, len(v))
	}
	return v[1:], nil
}

// EncodeCounter returns a merge operand that adds delta to a counter.
func EncodeCounter(delta int64) []byte {
	b := make([]byte, 9)
	b[0] = tagCounter
	binary.BigEndian.PutUint64(b[1:], uint64(delta))
	return b
}

// DecodeCounter returns the integer held by a folded counter value. A nil
// value (missing key) decodes as zero.
func DecodeCounter(v []byte) (int64, error) {
	if v == nil {
		return 0, nil
	}
	if len(v) != 9 || v[0] != tagCounter {
		return 0, fmt.Errorf("%w: not a counter (%d bytes)", ErrBadMerge, len(v))
	}
	return int64(binary.BigEndian.Uint64(v[1:])), nil
}

// EncodeSetAdd returns a merge operand that adds vals to a set. It costs four
// bytes a value and is meant for small deltas.
func EncodeSetAdd(vals ...uint32) []byte {
	b := make([]byte, 1+4*len(vals))
	b[0] = tagList
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[1+4*i:], v)
	}
	return b
}

// AppendSetAdd appends EncodeSetAdd(vals...) to dst.
func AppendSetAdd(dst []byte, vals ...uint32) []byte {
	dst = append(dst, tagList)
	for _, v := range vals {
		dst = binary.LittleEndian.AppendUint32(dst, v)
	}
	return dst
}

// AppendCounter appends EncodeCounter(delta) to dst.
func AppendCounter(dst []byte, delta int64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagCounter), uint64(delta))
}

// EncodeSet returns a value (or merge operand) holding the set bm, in its
// smaller form: a roaring bitmap, or a bitset over the set's range. It may
// convert bm's containers to their smallest form first, so bm must not be
// in use by other goroutines.
func EncodeSet(bm *roaring.Bitmap) ([]byte, error) {
	bm.RunOptimize()
	size := bm.GetSerializedSizeInBytes()
	if !bm.IsEmpty() {
		base := bm.Minimum() &^ 7
		n := uint64(bm.Maximum()-base)/8 + 1
		if n+uint64(binary.MaxVarintLen32) < size {
			out := make([]byte, 1, 1+binary.MaxVarintLen32+n)
			out[0] = tagBits
			out = binary.AppendUvarint(out, uint64(base))
			bits := out[len(out) : len(out)+int(n)]
			out = out[:len(out)+int(n)]
			it := bm.ManyIterator()
			var buf [256]uint32
			for k := it.NextMany(buf[:]); k > 0; k = it.NextMany(buf[:]) {
				for _, v := range buf[:k] {
					d := v - base
					bits[d>>3] |= 1 << (d & 7)
				}
			}
			return out, nil
		}
	}
	out := make([]byte, 1, 1+size)
	out[0] = tagSet
	buf, err := bm.ToBytes()
	if err != nil {
		return nil, fmt.Errorf("store: encode set: %w", err)
	}
	return append(out, buf...), nil
}

// CheckOperand reports whether v is a well-formed merge operand on its own
// (ErrBadMerge if not), so that a backend can reject a malformed operand
// before it is stored. Operands of different kinds on one key can only be
// caught when they are folded.
func CheckOperand(v []byte) error {
	if len(v) == 0 {
		return fmt.Errorf("%w: empty operand", ErrBadMerge)
	}
	switch v[0] {
	case tagCounter:
		_, err := DecodeCounter(v)
		return err
	case tagList:
		if (len(v)-1)%4 != 0 {
			return fmt.Errorf("%w: set delta of %d bytes", ErrBadMerge, len(v))
		}
		return nil
	case tagBits:
		_, err := bitsHeader(v[1:])
		return err
	case tagSet:
		_, err := addSet(roaring.New(), v)
		return err
	case tagAppend:
		return nil
	}
	return fmt.Errorf("%w: unknown tag %q", ErrBadMerge, v[0])
}

// bitsHeader checks the bitset form of a set (v without its tag) and
// returns the length of its base.
func bitsHeader(v []byte) (int, error) {
	base, n := binary.Uvarint(v)
	if n <= 0 || base > 1<<32-1 || uint64(len(v)-n)*8 > 1<<32-base {
		return 0, fmt.Errorf("%w: malformed bitset", ErrBadMerge)
	}
	return n, nil
}

// addBits unions the bitset form of a set (v without its tag) into bm.
func addBits(bm *roaring.Bitmap, v []byte) error {
	n, err := bitsHeader(v)
	if err != nil {
		return err
	}
	base, _ := binary.Uvarint(v)
	var vals []uint32
	for j, b := range v[n:] {
		for b != 0 {
			i := bits.TrailingZeros8(b)
			vals = append(vals, uint32(base)+uint32(j)*8+uint32(i))
			b &= b - 1
		}
	}
	bm.AddMany(vals)
	return nil
}

// DecodeSet returns the set held by a folded set value, or by a set
// operand. A nil value (missing key) decodes as an empty set. The returned
// bitmap does not share memory with v.
func DecodeSet(v []byte) (*roaring.Bitmap, error) {
	bm := roaring.New()
	if v == nil {
		return bm, nil
	}
	bm, err := addSet(bm, v)
	if err != nil {
		return nil, err
	}
	if v[0] == tagBits {
		// Built value by value, its containers have grown by doubling; a
		// decoded set is often kept (cached) as it is, so trim it.
		return bm.Clone(), nil
	}
	return bm, nil
}

// addSet returns the union of bm and the set operand v: bm itself, added
// to, or a new bitmap.
func addSet(bm *roaring.Bitmap, v []byte) (*roaring.Bitmap, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty operand", ErrBadMerge)
	}
	switch v[0] {
	case tagList:
		if (len(v)-1)%4 != 0 {
			return nil, fmt.Errorf("%w: set delta of %d bytes", ErrBadMerge, len(v))
		}
		for i := 1; i < len(v); i += 4 {
			bm.Add(binary.LittleEndian.Uint32(v[i:]))
		}
		return bm, nil
	case tagBits:
		return bm, addBits(bm, v[1:])
	case tagSet:
		other := roaring.New()
		// UnmarshalBinary copies; v may be a buffer the backend reuses.
		if err := other.UnmarshalBinary(v[1:]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMerge, err)
		}
		if bm.IsEmpty() {
			return other, nil
		}
		// Not bm.Or(other): roaring's in-place union of two run
		// containers adds the second's values one at a time (W1's
		// profile: 3.9% of the CPU, in compactions merging stored reader
		// sets, whose containers EncodeSet made runs); Or merges runs.
		return roaring.Or(bm, other), nil
	default:
		return nil, fmt.Errorf("%w: not a set (tag %q)", ErrBadMerge, v[0])
	}
}

// Folder accumulates merge operands of one key. The zero Folder is ready to
// use. Counter and set operands may be added in any order; append operands
// must come in write order through Add, or in reverse write order through
// AddOlder (the two may be mixed: Add appends after every operand seen,
// AddOlder before).
type Folder struct {
	kind  byte
	count int64
	set   *roaring.Bitmap
	vals  []uint32   // values of 'l' deltas, added to set in one sorted pass
	log   *appendLog // of an append log; a pointer keeps other folds small
	err   error
}

// appendLog is an append log being folded: older's segments, last added
// first, then app.
type appendLog struct {
	app       []byte
	older     []byte
	olderLens []int
}

// AddOlder folds one operand that was written before every operand added
// so far. It is Add for counters and sets; for an append log it puts v's
// bytes before the others'. The folder does not retain v.
func (f *Folder) AddOlder(v []byte) error {
	if f.err != nil || len(v) == 0 || v[0] != tagAppend || f.kind != tagAppend {
		return f.Add(v)
	}
	f.log.older = append(f.log.older, v[1:]...)
	f.log.olderLens = append(f.log.olderLens, len(v)-1)
	return nil
}

// Add folds one operand (or a previously folded value) written after every
// operand added so far into f. The folder does not retain v.
func (f *Folder) Add(v []byte) error {
	if f.err != nil {
		return f.err
	}
	if len(v) == 0 {
		f.err = fmt.Errorf("%w: empty operand", ErrBadMerge)
		return f.err
	}
	kind := v[0]
	if kind == tagList || kind == tagBits {
		kind = tagSet
	}
	if f.kind != 0 && f.kind != kind {
		f.err = fmt.Errorf("%w: %q folded into %q", ErrBadMerge, v[0], f.kind)
		return f.err
	}
	f.kind = kind
	switch kind {
	case tagAppend:
		if f.log == nil {
			f.log = &appendLog{}
		}
		f.log.app = append(f.log.app, v[1:]...)
	case tagCounter:
		n, err := DecodeCounter(v)
		if err != nil {
			f.err = err
			return err
		}
		f.count += n
	case tagSet:
		if f.set == nil {
			f.set = roaring.New()
		}
		if v[0] == tagList {
			// A store folds thousands of small deltas at once (Pebble, on
			// a read of unflushed receipts): collect them, add them sorted.
			if (len(v)-1)%4 != 0 {
				f.err = fmt.Errorf("%w: set delta of %d bytes", ErrBadMerge, len(v))
				return f.err
			}
			for i := 1; i < len(v); i += 4 {
				f.vals = append(f.vals, binary.LittleEndian.Uint32(v[i:]))
			}
			return nil
		}
		set, err := addSet(f.set, v)
		if err != nil {
			f.err = err
			return err
		}
		f.set = set
	default:
		f.err = fmt.Errorf("%w: unknown tag %q", ErrBadMerge, v[0])
		return f.err
	}
	return nil
}

// Value returns the folded value. It fails if no operand was added or an
// operand was bad.
func (f *Folder) Value() ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	switch f.kind {
	case tagAppend:
		// older holds its segments in the order they were added, newest
		// written first: the log wants them the other way round.
		l := f.log
		out := make([]byte, 1, 1+len(l.older)+len(l.app))
		out[0] = tagAppend
		end := len(l.older)
		for i := len(l.olderLens) - 1; i >= 0; i-- {
			start := end - l.olderLens[i]
			out = append(out, l.older[start:end]...)
			end = start
		}
		return append(out, l.app...), nil
	case tagCounter:
		return EncodeCounter(f.count), nil
	case tagSet:
		if len(f.vals) > 0 {
			slices.Sort(f.vals)
			f.set.AddMany(f.vals)
			f.vals = f.vals[:0]
		}
		return EncodeSet(f.set)
	}
	return nil, fmt.Errorf("%w: nothing to fold", ErrBadMerge)
}

// Fold folds operands into base, which is nil when the key had no value.
// Every backend must read back a value that decodes (DecodeCounter,
// DecodeSet or DecodeAppend) to the same counter, set or log as Fold's, for
// a key whose history is base followed by Merge(operands...); the bytes of
// a set may differ.
func Fold(base []byte, operands ...[]byte) ([]byte, error) {
	var f Folder
	if base != nil {
		if err := f.Add(base); err != nil {
			return nil, err
		}
	}
	for _, op := range operands {
		if err := f.Add(op); err != nil {
			return nil, err
		}
	}
	return f.Value()
}
