package readreceipt

import (
	"encoding/binary"
	"unsafe"
)

// Idle entries, packed.
//
// A hot message costs its msgEntry (160 bytes), its key and its readers'
// words, some 220 bytes in all for a 200-member group (W4's heap profile),
// most of them fields that only a call in progress uses: pins, pending
// marks, the lock, the receipt log's count. An entry no call has used
// since the table's hand last passed, and that holds nothing but what was
// loaded and committed (packable), is kept as one immutable byte record
// instead: its key, meta, counts and readers' words, in varints where
// values are small, about half the bytes. A count reads the record in place (entryTable.peek); any
// other use makes it an entry again (acquire), exactly as it was,
// accounted size included.
//
// Each shard keeps at most hotLimit entries unpacked; past that, every
// release moves the hand a few slots and packs the unused entries it
// finds, so that the work a call does stays bounded when few entries can
// be packed (messages of large groups, whose readers are bigger than an
// entry, are never packed: there is nothing to gain).

const (
	// maxHot bounds the unpacked entries of a shard (16,384 in all, some
	// 3.5 MiB): a host's messages in active use stay unpacked, so that
	// their receipts do not unpack and pack them again (BenchmarkEntry:
	// acquire packed). With the default cache the bound is hotLimit's 878.
	maxHot = 1024
	// packMaxWords bounds the readers' words of a packed entry: a chunk
	// of up to 1,024 member indexes in the bitset form.
	packMaxWords = 16
	// packSteps is how far one release moves the hand to pack entries
	// when a shard is over its hot bound but within its bytes.
	packSteps = 8
	// packedOverhead is the memory of a record beyond its bytes: its
	// slot and tag in the idle index and the allocation's rounding up.
	packedOverhead = 16
)

// hotLimit is the hot bound of a shard of capShard bytes: the entries one
// eighth of its bytes can hold, at least one and at most maxHot, so that
// small caches keep most of their messages packed too.
func hotLimit(capShard int64) int {
	return int(min(max(capShard/(8*entryOverhead), 1), maxHot))
}

// packable reports whether the unpinned entry m holds nothing a record
// cannot: loaded, no receipts pending or unfolded (those pin it anyway),
// no rarely used part (roaring readers, more chunks, unread sets, the
// model, a waiter), and readers of at most packMaxWords words. The caller
// holds m's shard lock and m.refs is 0, so no call is using m.
func (m *msgEntry) packable() bool {
	return m.loaded && m.refs == 0 && m.npend == 0 && m.unfolded == 0 && m.x == nil &&
		m.r0n <= packMaxWords && (m.r0ok || m.r0p == nil)
}

// Record flags.
const (
	packExists = 1 << iota
	packR0
)

// appendPacked appends the record of m to b: the body's length in two
// bytes, a used byte (set by peek, cleared by the idle hand: the only
// byte of a record ever written after it is made), then the key (first,
// so that the idle index compares keys without decoding the rest), then
// the other fields. It reports false, and b holds garbage past its
// length, if the body does not fit 64 KiB (keys, senders and threads of
// IDs of at most maxIDLength bytes and packMaxWords words are far below
// that).
func (m *msgEntry) appendPacked(b []byte) ([]byte, bool) {
	start := len(b)
	b = append(b, 0, 0, 0) // the body's length, fixed below; not used
	b = binary.AppendUvarint(b, uint64(len(m.key)))
	b = append(b, m.key...)
	var flags byte
	if m.exists {
		flags |= packExists
	}
	if m.r0ok {
		flags |= packR0
	}
	// Clock readings and random numbers in fixed widths, where a varint
	// would be longer; the rest in varints, mostly one byte.
	r := &m.meta
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.TrackedAt))
	b = binary.LittleEndian.AppendUint64(b, r.Incarnation)
	b = binary.LittleEndian.AppendUint32(b, r.Nonce)
	b = binary.AppendUvarint(b, uint64(m.size))
	b = binary.AppendUvarint(b, uint64(m.deltas))
	b = binary.AppendUvarint(b, r.Version)
	b = binary.AppendUvarint(b, uint64(r.EndIndex))
	b = binary.AppendUvarint(b, uint64(r.SenderIndex+1)) // noIndex: 0
	b = binary.AppendUvarint(b, uint64(r.Recipients))
	b = binary.AppendUvarint(b, uint64(len(r.Sender)))
	b = append(b, r.Sender...)
	b = binary.AppendUvarint(b, uint64(len(r.Thread)))
	b = append(b, r.Thread...)
	b = binary.AppendUvarint(b, uint64(m.count))
	b = binary.AppendVarint(b, m.readAt)
	if m.r0ok {
		b = binary.AppendUvarint(b, uint64(m.r0hi))
		w := m.r0words()
		b = binary.AppendUvarint(b, uint64(len(w)))
		for _, x := range w {
			b = binary.LittleEndian.AppendUint64(b, x)
		}
	}
	n := len(b) - start - 2
	if n >= 1<<16 {
		return b, false
	}
	binary.LittleEndian.PutUint16(b[start:], uint16(n))
	return b, true
}

// packedRec is a record of the idle index, by its first byte: the slot
// keeps the record alive, and the record says its own length.
type packedRec = *byte

func recBytes(p packedRec) []byte {
	n := int(binary.LittleEndian.Uint16(unsafe.Slice(p, 2)))
	return unsafe.Slice(p, 2+n)
}

// recKey returns the key of record b, in place.
func recKey(b []byte) []byte {
	n, k := binary.Uvarint(b[3:])
	return b[3+k : 3+k+int(n)]
}

// recUsed is the used byte of record p.
func recUsed(p packedRec) *byte { return (*byte)(unsafe.Add(unsafe.Pointer(p), 2)) }

// recReader decodes a record. The records are written by appendPacked
// only, so a short or malformed one is a bug: decoding it panics.
type recReader struct {
	b []byte
	i int
}

func (r *recReader) uvarint() uint64 {
	if c := r.b[r.i]; c < 0x80 { // most fields: inline
		r.i++
		return uint64(c)
	}
	return r.uvarintLong()
}

func (r *recReader) uvarintLong() uint64 {
	v, n := binary.Uvarint(r.b[r.i:])
	if n <= 0 {
		panic("readreceipt: malformed packed entry")
	}
	r.i += n
	return v
}

// varint decodes binary.AppendVarint's zigzag form.
func (r *recReader) varint() int64 {
	u := r.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (r *recReader) uint64() uint64 { return binary.LittleEndian.Uint64(r.bytes(8)) }

// bytes returns the next n bytes, in place.
func (r *recReader) bytes(n int) []byte {
	v := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return v
}

// str returns the next length-prefixed string: a copy, or when view a
// string over the record's bytes, which are never modified.
func (r *recReader) str(view bool) string {
	b := r.bytes(int(r.uvarint()))
	if len(b) == 0 {
		return ""
	}
	if view {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

// unpack fills m, a new entry, with the record b. With view, m is only
// for reading while b is alive: its strings are views of b and its
// readers are left out (a count needs none); otherwise m is the entry
// that was packed, with copies of everything.
func unpack(b []byte, m *msgEntry, view bool) {
	r := recReader{b: b, i: 3}
	m.key = r.str(view)
	flags := r.bytes(1)[0]
	m.loaded, m.exists, m.r0ok = true, flags&packExists != 0, flags&packR0 != 0
	mr := &m.meta
	mr.TrackedAt = int64(r.uint64())
	mr.Incarnation = r.uint64()
	mr.Nonce = binary.LittleEndian.Uint32(r.bytes(4))
	m.size = int32(r.uvarint())
	m.deltas = uint16(r.uvarint())
	mr.Version = r.uvarint()
	mr.EndIndex = uint32(r.uvarint())
	mr.SenderIndex = uint32(r.uvarint()) - 1
	mr.Recipients = uint32(r.uvarint())
	mr.Sender = r.str(view)
	mr.Thread = r.str(view)
	m.count = int64(r.uvarint())
	m.readAt = r.varint()
	m.r0hi, m.r0p, m.r0n = 0, nil, 0
	if !m.r0ok {
		return
	}
	m.r0hi = uint16(r.uvarint())
	n := int(r.uvarint())
	if view {
		return
	}
	if n > 0 {
		w := make([]uint64, n)
		for i := range w {
			w[i] = r.uint64()
		}
		m.setR0words(w)
	}
}

// recCharge is what a record counts against its shard's bytes.
func recCharge(b []byte) int64 { return int64(len(b)) + packedOverhead }

// idleIndex finds a shard's packed records by key: the open addressing of
// entryIndex (same hashes, same homes), over records, with a byte of each
// record's hash beside its slot. A lookup of a key not packed, which every
// new message makes, probes some eight slots at 3/4 load: the tags spare
// it reading the records (a cache miss each) but one in 256.
type idleIndex struct {
	slots []packedRec
	tags  []uint8
	n     int
}

func tagOf(h uint64) uint8 { return uint8(h >> 56) }

func recHash(p packedRec) uint64 { return keyHash(recKey(recBytes(p))) }

// get returns the slot of the record of key, whose hash is h, or -1.
func (x *idleIndex) get(key []byte, h uint64) int {
	if x.n == 0 {
		return -1
	}
	mask := len(x.slots) - 1
	tag := tagOf(h)
	for i := home(h, mask); ; i = (i + 1) & mask {
		p := x.slots[i]
		if p == nil {
			return -1
		}
		if x.tags[i] == tag && string(recKey(recBytes(p))) == string(key) {
			return i
		}
	}
}

// add adds p, whose key (of hash h) is not in x.
func (x *idleIndex) add(p packedRec, h uint64) {
	if 4*(x.n+1) > 3*len(x.slots) {
		old := x.slots
		n := max(8, 2*len(old))
		x.slots, x.tags, x.n = make([]packedRec, n), make([]uint8, n), 0
		for _, o := range old {
			if o != nil {
				x.add(o, recHash(o))
			}
		}
	}
	mask := len(x.slots) - 1
	i := home(h, mask)
	for x.slots[i] != nil {
		i = (i + 1) & mask
	}
	x.slots[i], x.tags[i] = p, tagOf(h)
	x.n++
}

// removeAt empties slot i and moves back the records after it that would
// no longer be found, as entryIndex.remove does.
func (x *idleIndex) removeAt(i int) {
	mask := len(x.slots) - 1
	for j := (i + 1) & mask; x.slots[j] != nil; j = (j + 1) & mask {
		if movesBack(i, j, home(recHash(x.slots[j]), mask)) {
			x.slots[i], x.tags[i] = x.slots[j], x.tags[j]
			i = j
		}
	}
	x.slots[i] = nil
	x.n--
}

// movesBack reports whether the occupant of slot j, whose home is k, moves
// to the hole at i: unless the hole lies cyclically between k and j.
func movesBack(i, j, k int) bool {
	return (i <= j && (k <= i || k > j)) || (i > j && k <= i && k > j)
}

// pack moves e, removed from the hot index and uncharged, into the idle
// index as a record, unless it does not fit one: then e is dropped. The
// caller holds the shard's lock and checked e.packable().
func (s *entryShard) pack(e *msgEntry) {
	var ok bool
	if s.buf, ok = e.appendPacked(s.buf[:0]); !ok {
		return
	}
	rec := make([]byte, len(s.buf))
	copy(rec, s.buf)
	s.idle.add(&rec[0], keyHashString(e.key))
	s.bytes += recCharge(rec)
}

// unpackAt makes the record in idle slot i an entry again, removing the
// record; the caller adds the entry to the hot index. The caller holds
// the shard's lock.
func (s *entryShard) unpackAt(i int, shard int) *msgEntry {
	b := recBytes(s.idle.slots[i])
	e := &msgEntry{shard: uint8(shard)}
	unpack(b, e, false)
	s.bytes += int64(e.size) - recCharge(b)
	s.idle.removeAt(i)
	return e
}

// idleLook bounds the slots one dropIdle looks at for a record not used.
const idleLook = 64

// dropIdle drops a packed entry: the first one the idle hand finds that
// was not read (peek) since the hand passed, clearing the used bytes it
// passes; or, with any, the first one. It reports false, having dropped
// nothing, when it found none unused in the idleLook slots it looked at
// (or the whole index, if smaller). The
// caller holds the shard's lock and s.idle.n > 0.
func (s *entryShard) dropIdle(any bool) bool {
	mask := len(s.idle.slots) - 1
	i := s.idleHand & mask
	for look := min(idleLook, len(s.idle.slots)); ; i = (i + 1) & mask {
		if p := s.idle.slots[i]; p != nil {
			u := recUsed(p)
			if *u == 0 || any {
				break
			}
			*u = 0
		}
		if look--; look == 0 {
			s.idleHand = i + 1
			return false
		}
	}
	s.bytes -= recCharge(recBytes(s.idle.slots[i]))
	s.idle.removeAt(i)
	// The slot may hold a record moved back: the next drop looks at it.
	s.idleHand = i
	return true
}
