package readreceipt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"sync"
)

// Member-page cursors.
//
// A cursor is opaque to callers. Inside, it is the member index the next
// page starts at, the filter, and a MAC over those and the message (its
// key, tracking time, group incarnation and the random nonce drawn when it
// was tracked) under a secret kept in the store. A cursor therefore only
// works for the message and filter it was made for, not for a message
// tracked again under the same ID; it survives a restart, and cannot be
// forged or edited: anything else is ErrInvalidCursor.

const (
	cursorVersion = 1
	cursorMACLen  = 12
	cursorLen     = 1 + 1 + 4 + cursorMACLen
)

var cursorEncoding = base64.RawURLEncoding

// macPool keeps HMAC states keyed with the engine's secret: keying one
// costs two hash blocks, more than the cursor's own MAC.
type macPool struct{ p sync.Pool }

func (e *Engine) cursorMAC(msgPrefix []byte, meta *messageRecord, filter MemberFilter, pos uint32) []byte {
	mac, _ := e.macs.p.Get().(hash.Hash)
	if mac == nil {
		mac = hmac.New(sha256.New, e.secret)
	}
	defer func() {
		mac.Reset()
		e.macs.p.Put(mac)
	}()
	var hdr [1 + 1 + 4 + 8 + 8 + 4]byte
	hdr[0] = cursorVersion
	hdr[1] = byte(filter)
	binary.BigEndian.PutUint32(hdr[2:], pos)
	binary.BigEndian.PutUint64(hdr[6:], uint64(meta.TrackedAt))
	binary.BigEndian.PutUint64(hdr[14:], meta.Incarnation)
	binary.BigEndian.PutUint32(hdr[22:], meta.Nonce)
	mac.Write(hdr[:])
	mac.Write(msgPrefix)
	var sum [sha256.Size]byte
	return mac.Sum(sum[:0])[:cursorMACLen]
}

// encodeCursor returns the cursor of the page of a message's member list
// (filter) that starts at member index pos.
func (e *Engine) encodeCursor(msgPrefix []byte, meta *messageRecord, filter MemberFilter, pos uint32) string {
	b := make([]byte, 0, cursorLen)
	b = append(b, cursorVersion, byte(filter))
	b = binary.BigEndian.AppendUint32(b, pos)
	b = append(b, e.cursorMAC(msgPrefix, meta, filter, pos)...)
	return cursorEncoding.EncodeToString(b)
}

// decodeCursor returns the position a cursor made by encodeCursor for the
// same message and filter holds.
func (e *Engine) decodeCursor(s string, msgPrefix []byte, meta *messageRecord, filter MemberFilter) (uint32, error) {
	if len(s) != cursorEncoding.EncodedLen(cursorLen) {
		return 0, errorf(ErrInvalidCursor, "malformed")
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion {
		return 0, errorf(ErrInvalidCursor, "malformed")
	}
	if MemberFilter(b[1]) != filter {
		return 0, errorf(ErrInvalidCursor, "made for another filter")
	}
	pos := binary.BigEndian.Uint32(b[2:])
	if !hmac.Equal(b[6:], e.cursorMAC(msgPrefix, meta, filter, pos)) {
		return 0, errorf(ErrInvalidCursor, "made for another message, or altered")
	}
	return pos, nil
}
