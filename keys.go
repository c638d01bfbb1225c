package readreceipt

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/readreceipt/readreceipt/store"
)

// Key layout. Every ID is written length-prefixed (one byte, IDs are at most
// 255 bytes), so that the keys of one group, conversation or message form a
// contiguous range that no other ID's keys fall into.
//
//	\x00 'v'                                   schema version
//	\x00 's'                                   secret for cursor MACs
//	\x00 'G' group                             group lost messages: the sweep looks for
//	                                           membership chunks nobody needs
//	\x00 'p' user                              the user's receipts are private (value 1;
//	                                           absent: public)
//	\x00 'L' seq64                             receipt log record of one receipt call, until
//	                                           folded into the message keys (rlog.go)
//	'g' lp(group) \x00                         group meta
//	'g' lp(group) 'c' hi16 ^version64          membership chunk: members with index>>16 == hi16,
//	                                           written at version; ^version sorts newest first
//	'g' lp(group) 'h' bucket16                 user ID -> member index, for the users whose
//	                                           memberBucket is bucket16: lp(user) uvarint(index)
//	                                           per user, in the order they joined (kept for life)
//	'g' lp(group) 'n' block32                  member index -> user ID, for the indexes
//	                                           block32*nameBlockSize on: lp(user) per index,
//	                                           in index order, as many as are assigned
//	'g' lp(group) 'v' version64                how many of the group's messages were tracked at
//	                                           version and are not deleted (merge counter; the
//	                                           sweep drops a zero one)
//	'm' conv lp(msg) \x00                      message meta
//	'm' conv lp(msg) 'd' hi16                  delivered (D) with index>>16 == hi16 (merge set);
//	                                           groups only: a C2C peer is in D \ R when dn is 1
//	'm' conv lp(msg) 'n'                       read count, plus dn = |D \ R| << 32 (merge counter)
//	'm' conv lp(msg) 'p' hi16                  private readers (P) with index>>16 == hi16 (merge set)
//	'm' conv lp(msg) 'r' hi16                  readers with index>>16 == hi16 (merge set); for a group
//	                                           message without 'n', chunk 0 also holds D as
//	                                           index+2^16 and P as index+2^17 (no 'd', 'p' keys)
//	'm' conv lp(msg) 't'                       C2C: when the peer's receipt was recorded (Unix ns)
//	'm' conv lp(msg) 'T'                       read-time log (merge append; WithReadTimes)
//	't' trackedAt64 conv lp(msg)               expiry index
//	'o' conv lp(thread) pos                    order: one key per message (no value), pos
//	                                           is orderPos.encode (µs64 then the ID, last);
//	                                           thread "" holds every message of conv,
//	                                           a thread's messages are also under it
//	'k' conv lp(thread) lp(reader)             read-up-to mark (value: encoded orderPos)
//
// where conv is 'g' lp(group) or 'c' lp(userA) lp(userB) with userA < userB.
const (
	prefixSystem  = 0x00
	prefixGroup   = 'g'
	prefixMessage = 'm'
	prefixTime    = 't'
	prefixOrder   = 'o' // conversation and thread orders
	prefixMark    = 'k' // read-up-to marks

	groupMeta    = 0x00
	groupChunk   = 'c'
	groupBucket  = 'h'
	groupNames   = 'n'
	groupVersion = 'v'

	msgMeta    = 0x00
	msgCount   = 'n'
	msgReaders = 'r'
	msgReadAt  = 't'
	// D, P and the read-time log; a C2C message keeps D in its counter.
	msgDelivered = 'd'
	msgPrivate   = 'p'
	msgReadLog   = 'T'

	convGroup = 'g'
	convC2C   = 'c'
)

var (
	keySchemaVersion = []byte{prefixSystem, 'v'}
	keySecret        = []byte{prefixSystem, 's'}
	keyGCPrefix      = []byte{prefixSystem, 'G'}
	keyPrivacyPrefix = []byte{prefixSystem, 'p'}
)

// privacyKey is user's private-receipts flag.
func privacyKey(user string) []byte { return append(slices.Clone(keyPrivacyPrefix), user...) }

// orderPrefix is the prefix of the order of conv's thread ("" for the
// whole conversation); convOrderPrefix of every order of conv.
func orderPrefix(conv []byte, thread string) []byte {
	return appendLP(convOrderPrefix(conv), thread)
}

func convOrderPrefix(conv []byte) []byte {
	b := make([]byte, 0, 1+len(conv)+1+8+32)
	return append(append(b, prefixOrder), conv...)
}

// orderKey is the key of the message at p in conv's thread order.
func orderKey(conv []byte, thread string, p orderPos) []byte {
	return appendOrderKey(make([]byte, 0, orderKeyLen(conv, thread, p.id)), conv, thread, p)
}

func orderKeyLen(conv []byte, thread, id string) int {
	return 1 + len(conv) + 1 + len(thread) + 8 + len(id)
}

// appendOrderKey appends orderKey(conv, thread, p) to b.
func appendOrderKey(b, conv []byte, thread string, p orderPos) []byte {
	return p.encode(appendLP(append(append(b, prefixOrder), conv...), thread))
}

// markKey is reader's mark in conv's thread; convMarkPrefix the prefix of
// every mark of conv.
func markKey(conv []byte, thread, reader string) []byte {
	return appendLP(appendLP(convMarkPrefix(conv), thread), reader)
}

func convMarkPrefix(conv []byte) []byte {
	return append([]byte{prefixMark}, conv...)
}

// gcKey marks group gid for membership garbage collection.
func gcKey(gid string) []byte { return append(slices.Clone(keyGCPrefix), gid...) }

func appendLP(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// convKey encodes a conversation.
func convKey(c Conversation) []byte {
	return appendConvKey(make([]byte, 0, 3+len(c.GroupID)+len(c.Users[0])+len(c.Users[1])), c)
}

// appendConvKey appends convKey(c) to b.
func appendConvKey(b []byte, c Conversation) []byte {
	switch c.Type {
	case ConversationGroup:
		return appendLP(append(b, convGroup), c.GroupID)
	default:
		x, y := c.canonicalUsers()
		return appendLP(appendLP(append(b, convC2C), x), y)
	}
}

// groupPrefix is the prefix of all of a group's keys.
func groupPrefix(gid string) []byte { return appendLP([]byte{prefixGroup}, gid) }

func groupKey(gid string, kind byte) []byte { return append(groupPrefix(gid), kind) }

func groupMetaKey(gid string) []byte { return groupKey(gid, groupMeta) }

func chunkKey(gid string, hi uint16, version uint64) []byte {
	return appendU64(appendU16(groupKey(gid, groupChunk), hi), ^version)
}

// namesKey is the key of the user IDs of the block'th nameBlockSize member
// indexes.
func namesKey(gid string, block uint32) []byte { return appendU32(groupKey(gid, groupNames), block) }

// bucketKey is the key of the member indexes of the users whose
// memberBucket is bucket.
func bucketKey(gid string, bucket uint16) []byte {
	return appendU16(groupKey(gid, groupBucket), bucket)
}

// versionCountKey is the counter of group gid's messages tracked at version.
func versionCountKey(gid string, version uint64) []byte {
	return appendVersionCountKey(make([]byte, 0, versionCountKeyLen(gid)), gid, version)
}

func versionCountKeyLen(gid string) int { return 1 + 1 + len(gid) + 1 + 8 }

// appendVersionCountKey appends versionCountKey(gid, version) to b.
func appendVersionCountKey(b []byte, gid string, version uint64) []byte {
	return appendU64(append(appendLP(append(b, prefixGroup), gid), groupVersion), version)
}

// The deltas of a version counter: a message tracked, a message deleted.
var (
	versionCountUp   = store.EncodeCounter(1)
	versionCountDown = store.EncodeCounter(-1)
)

// messagePrefix is the prefix of all of a message's keys.
func messagePrefix(conv []byte, msgID string) []byte {
	return appendMessagePrefix(make([]byte, 0, 2+len(conv)+len(msgID)+3), conv, msgID)
}

// appendMessagePrefix appends messagePrefix(conv, msgID) to b.
func appendMessagePrefix(b, conv []byte, msgID string) []byte {
	return appendLP(appendConversationMessagesPrefix(b, conv), msgID)
}

// conversationMessagesPrefix is the prefix of all message keys of a
// conversation. A message's prefix is it followed by appendLP of the
// message's ID.
func conversationMessagesPrefix(conv []byte) []byte {
	return append([]byte{prefixMessage}, conv...)
}

// appendConversationMessagesPrefix appends conversationMessagesPrefix(conv)
// to b.
func appendConversationMessagesPrefix(b, conv []byte) []byte {
	return append(append(b, prefixMessage), conv...)
}

func withSuffix(prefix []byte, suffix ...byte) []byte {
	b := make([]byte, 0, len(prefix)+len(suffix))
	return append(append(b, prefix...), suffix...)
}

func readersKey(msgPrefix []byte, hi uint16) []byte {
	return appendU16(withSuffix(msgPrefix, msgReaders), hi)
}

func timeKey(trackedAt int64, conv []byte, msgID string) []byte {
	return appendTimeKey(make([]byte, 0, timeKeyLen(conv, msgID)), trackedAt, conv, msgID)
}

func timeKeyLen(conv []byte, msgID string) int { return 1 + 8 + len(conv) + 1 + len(msgID) }

// appendTimeKey appends timeKey(trackedAt, conv, msgID) to b.
func appendTimeKey(b []byte, trackedAt int64, conv []byte, msgID string) []byte {
	b = appendU64(append(b, prefixTime), uint64(trackedAt))
	b = append(b, conv...)
	return appendLP(b, msgID)
}

// keyArena builds the keys of one call in one allocation. Each key is
// appended to it and taken (take) as a slice of its own, capped so that
// appending to a taken key copies it. The arena is sized for the call's
// keys; should it outgrow that, later keys go to a new array and the keys
// already taken stay as they were.
type keyArena struct {
	b    []byte
	from int // where the key being built starts
}

func newKeyArena(size int) keyArena { return keyArena{b: make([]byte, 0, size)} }

// take returns the bytes appended since the last take.
func (a *keyArena) take() []byte {
	k := a.b[a.from:len(a.b):len(a.b)]
	a.from = len(a.b)
	return k
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

var errBadKey = errors.New("readreceipt: malformed key")

// readLP reads one length-prefixed string.
func readLP(b []byte) (string, []byte, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, errBadKey
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], nil
}

// parseConv reads an encoded conversation from the front of b.
func parseConv(b []byte) (Conversation, []byte, error) {
	if len(b) < 1 {
		return Conversation{}, nil, errBadKey
	}
	switch b[0] {
	case convGroup:
		gid, rest, err := readLP(b[1:])
		return Group(gid), rest, err
	case convC2C:
		a, rest, err := readLP(b[1:])
		if err != nil {
			return Conversation{}, nil, err
		}
		u, rest, err := readLP(rest)
		return C2C(a, u), rest, err
	}
	return Conversation{}, nil, errBadKey
}

// parseTimeKey splits an expiry index key.
func parseTimeKey(k []byte) (trackedAt int64, conv Conversation, msgID string, err error) {
	if len(k) < 9 || k[0] != prefixTime {
		return 0, Conversation{}, "", errBadKey
	}
	trackedAt = int64(binary.BigEndian.Uint64(k[1:9]))
	conv, rest, err := parseConv(k[9:])
	if err != nil {
		return 0, Conversation{}, "", err
	}
	msgID, rest, err = readLP(rest)
	if err == nil && len(rest) != 0 {
		err = errBadKey
	}
	return trackedAt, conv, msgID, err
}

// parseChunkKey returns the hi16 and version of a membership chunk key whose
// group prefix has been stripped along with the 'c'.
func parseChunkSuffix(b []byte) (hi uint16, version uint64, err error) {
	if len(b) != 10 {
		return 0, 0, errBadKey
	}
	return binary.BigEndian.Uint16(b), ^binary.BigEndian.Uint64(b[2:]), nil
}

// parseOrderKey splits an order key.
func parseOrderKey(k []byte) (conv Conversation, thread string, p orderPos, err error) {
	if len(k) < 1 || k[0] != prefixOrder {
		return Conversation{}, "", orderPos{}, errBadKey
	}
	conv, rest, err := parseConv(k[1:])
	if err != nil {
		return Conversation{}, "", orderPos{}, err
	}
	if thread, rest, err = readLP(rest); err != nil {
		return Conversation{}, "", orderPos{}, err
	}
	if p, err = decodeOrderPos(rest); err != nil || p.id == "" {
		return Conversation{}, "", orderPos{}, errBadKey
	}
	return conv, thread, p, nil
}

// parseMarkKey splits a mark key.
func parseMarkKey(k []byte) (conv Conversation, thread, reader string, err error) {
	if len(k) < 1 || k[0] != prefixMark {
		return Conversation{}, "", "", errBadKey
	}
	conv, rest, err := parseConv(k[1:])
	if err != nil {
		return Conversation{}, "", "", err
	}
	if thread, rest, err = readLP(rest); err != nil {
		return Conversation{}, "", "", err
	}
	if reader, rest, err = readLP(rest); err != nil || reader == "" || len(rest) != 0 {
		return Conversation{}, "", "", errBadKey
	}
	return conv, thread, reader, nil
}
