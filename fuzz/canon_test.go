package fuzz

import (
	"fmt"
	"slices"

	rr "github.com/readreceipt/readreceipt"
)

// Canonical histories.
//
// A history's argument bytes often steer towards what exists (a recently
// tracked message, a current member), so the meaning of an operation
// depends on the operations before it, and dropping one operation changes
// the others. While a history runs, the harness therefore also writes it
// out again in canonical form: the same operations, every argument spelled
// out from the pools (a user by its number, a message by its conversation
// and ID), none steering. Dropping operations from a canonical history
// leaves the others as they were, which is what the shrinker needs. Cursor
// picks (a cursor from the pool, the continuation of the last walk, a
// garbled cursor) cannot be spelled out and stay as they were.

// convBytes maps every conversation the decoder can produce to a byte that
// produces it without steering.
var convBytes = func() map[rr.Conversation]byte {
	m := map[rr.Conversation]byte{}
	for b := 255; b >= 0; b-- {
		if b >= 128 && b < 248 {
			continue
		}
		m[convFrom(byte(b))] = byte(b)
	}
	return m
}()

// canon collects the canonical form of a history as it runs.
type canon struct {
	b      []byte
	starts []int // offset of every operation in b
	ok     bool  // false once an argument had no canonical spelling
	bad    string
}

// fail notes an argument that has no canonical spelling.
func (c *canon) fail(what string, v any) {
	if c.ok {
		c.bad = fmt.Sprintf("operation %d: no canonical spelling for %s %+v", len(c.starts)-1, what, v)
	}
	c.ok = false
}

func (c *canon) op(b byte) {
	c.starts = append(c.starts, len(c.b))
	c.b = append(c.b, b)
}

func (c *canon) raw(b ...byte) { c.b = append(c.b, b...) }

// id spells an ID of pool, or one of badIDs as badBase+i for badIDs[i]
// (each decoder reads a bad ID as badIDs[b%4] from some base up).
func (c *canon) id(pool []string, s string, badBase byte) {
	if i := slices.Index(pool, s); i >= 0 {
		c.b = append(c.b, byte(i))
		return
	}
	if i := slices.Index(badIDs, s); i >= 0 {
		c.b = append(c.b, badBase+byte((i-int(badBase%4)+4)%4))
		return
	}
	c.fail("ID", s)
	c.b = append(c.b, 0)
}

func (c *canon) user(u string)    { c.id(users, u, 252) }
func (c *canon) group(gid string) { c.id(groupIDs, gid, 252) }
func (c *canon) msgID(id string)  { c.id(msgIDs, id, 252) }

func (c *canon) users(us []string) {
	c.b = append(c.b, byte(len(us)))
	for _, u := range us {
		c.user(u)
	}
}

func (c *canon) conv(cv rr.Conversation) {
	b, ok := convBytes[cv]
	if !ok {
		c.fail("conversation", cv)
	}
	c.b = append(c.b, b)
}

func (c *canon) message(ref rr.MessageRef) {
	c.conv(ref.Conversation)
	c.msgID(ref.ID)
}

// groupType spells a group type as createGroup reads it.
func (c *canon) groupType(t rr.GroupType) {
	switch t {
	case rr.GroupWork:
		c.raw(0)
	case rr.GroupPublic:
		c.raw(6)
	case rr.GroupMeeting:
		c.raw(8)
	case rr.GroupCommunity:
		c.raw(9)
	case rr.GroupAVChatRoom:
		c.raw(10)
	case 0:
		c.raw(11)
	case 6:
		c.raw(131)
	default:
		c.fail("group type", t)
		c.raw(0)
	}
}

// refs spells a message list as decoder.refs reads it.
func (c *canon) refs(refs []rr.MessageRef, limit int) {
	switch n := len(refs); {
	case n == 0:
		c.raw(0)
	case n == limit+1:
		c.raw(31)
	case n <= limit && n < 31:
		c.raw(byte(n))
	default:
		c.fail("list length", len(refs))
		c.raw(0)
	}
	if len(refs) == 0 {
		c.raw(0) // the conversation byte is read all the same
		return
	}
	conv := refs[0].Conversation
	c.conv(conv)
	for _, r := range refs {
		if r.Conversation == conv {
			// An ID of the pool (below 128) or a bad one (246..249).
			c.id(msgIDs, r.ID, 246)
			continue
		}
		// From 250 on: msgIDs[b%6] of the conversation named next.
		i := slices.Index(msgIDs, r.ID)
		if i < 0 {
			c.fail("ID in another conversation", r.ID)
			i = 0
		}
		c.raw(250 + byte((i-4+6)%6))
		c.conv(r.Conversation)
	}
}

// caller spells a caller as callerFrom reads it.
func (c *canon) caller(cl rr.Caller) {
	switch {
	case cl.Admin:
		c.raw(0)
	case cl.UserID == "":
		c.raw(252)
	default:
		i := slices.Index(users, cl.UserID)
		if i < 0 {
			c.fail("caller", cl)
			i = 0
		}
		c.raw(byte(5*i + 1))
	}
}

// filter spells a member filter as page reads it.
func (c *canon) filter(f rr.MemberFilter) {
	switch f {
	case rr.FilterRead, rr.FilterUnread:
		c.raw(byte(f))
	case rr.FilterDelivered, rr.FilterUndelivered:
		c.raw(238 + byte(f))
	case 4, 5, 6, 7:
		c.raw(248 + byte(f))
	default:
		c.fail("filter", f)
		c.raw(0)
	}
}

// count spells a page count as page reads it.
func (c *canon) count(n, maxPage int) {
	switch {
	case n >= 1 && n <= maxPage && n <= 250:
		c.raw(byte(n - 1))
	case n == 0:
		c.raw(250)
	case n == -1:
		c.raw(251)
	case n == maxPage+1:
		c.raw(252)
	case n == 1000:
		c.raw(253)
	default:
		c.fail("count", n)
		c.raw(0)
	}
}
