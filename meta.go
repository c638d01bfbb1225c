package readreceipt

import (
	"encoding/binary"
	"errors"
)

// Records stored as values. Each starts with a format byte so that a later
// version can read an older one.

var errBadRecord = errors.New("readreceipt: malformed record")

const recordV1 = 1

// groupRecord is a group's meta: its type, identity and membership clock.
type groupRecord struct {
	Type GroupType
	// Incarnation tells a group from an earlier group of the same ID that
	// was dismissed; messages remember it.
	Incarnation uint64
	// Version counts membership changes; a message's recipients are the
	// members at the version it was tracked at.
	Version uint64
	// NextIndex is the member index the next new member gets.
	NextIndex uint32
	// Members is the number of current members.
	Members uint32
	// CreatedAt is when the group was created, in Unix nanoseconds.
	CreatedAt int64
}

func (g *groupRecord) encode() []byte {
	b := []byte{recordV1, byte(g.Type)}
	b = binary.AppendUvarint(b, g.Incarnation)
	b = binary.AppendUvarint(b, g.Version)
	b = binary.AppendUvarint(b, uint64(g.NextIndex))
	b = binary.AppendUvarint(b, uint64(g.Members))
	b = binary.AppendVarint(b, g.CreatedAt)
	return b
}

func decodeGroup(b []byte) (groupRecord, error) {
	var g groupRecord
	if len(b) < 2 || b[0] != recordV1 {
		return g, errBadRecord
	}
	g.Type = GroupType(b[1])
	r := reader{b: b[2:]}
	g.Incarnation = r.uvarint()
	g.Version = r.uvarint()
	g.NextIndex = r.uint32()
	g.Members = r.uint32()
	g.CreatedAt = r.varint()
	if r.err != nil || len(r.b) != 0 || !g.Type.valid() || g.Members > g.NextIndex {
		return g, errBadRecord
	}
	return g, nil
}

// noIndex marks a message whose sender was not a member of its group.
const noIndex = ^uint32(0)

// messageRecord is a tracked message's meta. It never changes after
// TrackMessage; counts live in their own key.
type messageRecord struct {
	Sender    string
	TrackedAt int64 // Unix nanoseconds
	// The group fields are zero for C2C messages.
	Incarnation uint64 // the group's incarnation
	Version     uint64 // the membership version the recipients are taken at
	EndIndex    uint32 // every member index at that version is below it
	SenderIndex uint32 // the sender's member index, or noIndex
	Recipients  uint32 // members at Version minus the sender (1 for C2C)
	// Nonce is drawn at random when the message is tracked, so that
	// member-page cursors of one tracking never work for another under the
	// same ID, even one tracked at the same clock reading.
	Nonce uint32
	// Thread is the message's thread, "" for none.
	Thread string
}

// ownCount reports whether the message's read count is stored as a counter
// of its own: for a C2C message, and for a group message whose recipients
// span more than one chunk, where counting the readers would mean reading
// every chunk. The count of a group message within one chunk is the size
// of that chunk of readers, so a receipt writes one delta, not two.
func (m *messageRecord) ownCount() bool {
	return m.Incarnation == 0 || m.EndIndex > 1<<chunkBits
}

// messageV2 is the format of a message record whose TrackedAt is a whole
// number of microseconds, written as microseconds since trackedEpochMicros
// (a signed varint of 7 bytes for times within about four years of it,
// where the nanoseconds since 1970 take 9). Records of format recordV1,
// with TrackedAt in nanoseconds, are read as ever.
const messageV2 = recordV1 + 1

// trackedEpochMicros is 2026-01-01T00:00:00Z in Unix microseconds.
const trackedEpochMicros = 1767225600 * 1_000_000

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (m *messageRecord) encode() []byte {
	// Sized for the longest encoding: one allocation.
	b := make([]byte, 0, 1+1+len(m.Sender)+6*binary.MaxVarintLen64+4+1+len(m.Thread))
	// A whole number of microseconds (what TrackMessage records) is
	// written in the shorter form of messageV2.
	v2 := m.TrackedAt%1000 == 0
	b = append(b, byte(recordV1+btoi(v2)))
	b = appendLP(b, m.Sender)
	if v2 {
		b = binary.AppendVarint(b, m.TrackedAt/1000-trackedEpochMicros)
	} else {
		b = binary.AppendVarint(b, m.TrackedAt)
	}
	b = binary.AppendUvarint(b, m.Incarnation)
	b = binary.AppendUvarint(b, m.Version)
	b = binary.AppendUvarint(b, uint64(m.EndIndex))
	b = binary.AppendUvarint(b, uint64(m.SenderIndex))
	b = binary.AppendUvarint(b, uint64(m.Recipients))
	b = binary.BigEndian.AppendUint32(b, m.Nonce)
	if m.Thread != "" {
		b = appendLP(b, m.Thread)
	}
	return b
}

func decodeMessage(b []byte) (messageRecord, error) { return decodeMessageLike(b, nil) }

// decodeMessageLike decodes like decodeMessage, and where the sender or the
// thread is the same as like's (when not nil), takes like's string rather
// than a copy of its own: the messages loaded together (loadEntries) are
// mostly one chat's, a few senders', and a hot message then holds no
// bytes of its own for its sender (W4's heap profile: a string a message).
func decodeMessageLike(b []byte, like *messageRecord) (messageRecord, error) {
	var m messageRecord
	if len(b) < 1 || b[0] != recordV1 && b[0] != messageV2 {
		return m, errBadRecord
	}
	sender, rest, ok := cutLPBytes(b[1:])
	if !ok {
		return m, errBadRecord
	}
	m.Sender = sameString(sender, like, func(r *messageRecord) string { return r.Sender })
	r := reader{b: rest}
	m.TrackedAt = r.varint()
	if b[0] == messageV2 {
		m.TrackedAt = (m.TrackedAt + trackedEpochMicros) * 1000
	}
	m.Incarnation = r.uvarint()
	m.Version = r.uvarint()
	m.EndIndex = r.uint32()
	m.SenderIndex = r.uint32()
	m.Recipients = r.uint32()
	if r.err != nil || len(r.b) < 4 {
		return m, errBadRecord
	}
	m.Nonce = binary.BigEndian.Uint32(r.b)
	if rest := r.b[4:]; len(rest) > 0 {
		thread, tail, ok := cutLPBytes(rest)
		if !ok || len(thread) == 0 || len(tail) != 0 {
			return m, errBadRecord
		}
		m.Thread = sameString(thread, like, func(r *messageRecord) string { return r.Thread })
	}
	return m, nil
}

// cutLPBytes cuts a length-prefixed string (appendLP) from the front of b,
// without copying it.
func cutLPBytes(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], true
}

// sameString returns field(like) when it equals b, or else a copy of b.
func sameString(b []byte, like *messageRecord, field func(*messageRecord) string) string {
	if like != nil {
		if s := field(like); s == string(b) {
			return s
		}
	}
	return string(b)
}

// reader decodes varints, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint32() uint32 {
	v := r.uvarint()
	if v > uint64(^uint32(0)) {
		r.err = errBadRecord
		return 0
	}
	return uint32(v)
}
