package readreceipt

import (
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// ConversationType says whether a conversation is between two users or in a
// group.
type ConversationType uint8

const (
	// ConversationC2C is a one-to-one conversation between two users.
	ConversationC2C ConversationType = 1
	// ConversationGroup is a conversation in a group.
	ConversationGroup ConversationType = 2
)

// String returns "C2C", "GROUP" or a number for unknown types.
func (t ConversationType) String() string {
	switch t {
	case ConversationC2C:
		return "C2C"
	case ConversationGroup:
		return "GROUP"
	}
	return "ConversationType(" + strconv.Itoa(int(t)) + ")"
}

// Conversation identifies the conversation a message belongs to. Build one
// with Group or C2C.
type Conversation struct {
	// Type is ConversationC2C or ConversationGroup.
	Type ConversationType
	// GroupID is the group of a group conversation.
	GroupID string
	// Users are the two users of a C2C conversation. C2C stores them in
	// sorted order, so that both users name the same conversation.
	Users [2]string
}

// Group returns the conversation of group groupID.
func Group(groupID string) Conversation {
	return Conversation{Type: ConversationGroup, GroupID: groupID}
}

// C2C returns the one-to-one conversation between two users, in either
// order.
func C2C(userA, userB string) Conversation {
	if userB < userA {
		userA, userB = userB, userA
	}
	return Conversation{Type: ConversationC2C, Users: [2]string{userA, userB}}
}

// String returns "GROUP<id>" or "C2C<a>,<b>".
func (c Conversation) String() string {
	switch c.Type {
	case ConversationGroup:
		return "GROUP" + c.GroupID
	case ConversationC2C:
		a, b := c.canonicalUsers()
		return "C2C" + a + "," + b
	}
	return c.Type.String()
}

func (c Conversation) canonicalUsers() (string, string) {
	if c.Users[1] < c.Users[0] {
		return c.Users[1], c.Users[0]
	}
	return c.Users[0], c.Users[1]
}

// has reports whether user is one of a C2C conversation's users.
func (c Conversation) has(user string) bool {
	return c.Users[0] == user || c.Users[1] == user
}

// other returns the C2C user who is not user.
func (c Conversation) other(user string) string {
	if c.Users[0] == user {
		return c.Users[1]
	}
	return c.Users[0]
}

// MessageRef names one tracked message: its conversation and its ID, which
// is unique within the conversation.
type MessageRef struct {
	Conversation Conversation
	ID           string
}

// Message is a sent message that asks for read receipts, as the host
// registers it with TrackMessage.
type Message struct {
	// Conversation is the message's conversation.
	Conversation Conversation
	// ID is the message ID, unique within the conversation.
	ID string
	// Sender is the user who sent it. In a C2C conversation the sender is one
	// of the two users and the other is the recipient. In a group, the
	// recipients are the group's members at this moment, minus the sender;
	// the sender need not be a member (an administrator's announcement).
	Sender string
	// Thread is the thread of the conversation the message belongs to, or
	// "" for none. MarkConversationRead marks a thread, or the whole
	// conversation with its threads.
	Thread string
}

// Ref returns the message's reference.
func (m Message) Ref() MessageRef { return MessageRef{Conversation: m.Conversation, ID: m.ID} }

// GroupType is the type of a group. The app chooses which types support read
// receipts (WithGroupTypes).
type GroupType uint8

// The group types of the IM platform.
const (
	GroupWork GroupType = iota + 1
	GroupPublic
	GroupMeeting
	GroupCommunity
	GroupAVChatRoom
)

var groupTypeNames = [...]string{"", "Work", "Public", "Meeting", "Community", "AVChatRoom"}

func (t GroupType) valid() bool { return t >= GroupWork && t <= GroupAVChatRoom }

// String returns the type's name as the IM platform spells it.
func (t GroupType) String() string {
	if t.valid() {
		return groupTypeNames[t]
	}
	return "GroupType(" + strconv.Itoa(int(t)) + ")"
}

// ParseGroupType returns the group type named s ("Work", "Public",
// "Meeting", "Community", "AVChatRoom").
func ParseGroupType(s string) (GroupType, error) {
	for i, n := range groupTypeNames {
		if i > 0 && n == s {
			return GroupType(i), nil
		}
	}
	return 0, errorf(ErrInvalidParameter, "unknown group type %q", s)
}

// Caller is who asks for counts or member lists: a user, or an
// administrator acting for the app.
type Caller struct {
	// UserID is the asking user; empty for an administrator.
	UserID string
	// Admin marks an app administrator, who may read every message's
	// receipts.
	Admin bool
}

// AsUser returns the Caller for user userID.
func AsUser(userID string) Caller { return Caller{UserID: userID} }

// AsAdmin returns the Caller for an app administrator.
func AsAdmin() Caller { return Caller{Admin: true} }

// validID checks one ID for the engine's rules: non-empty, at most max
// bytes, valid UTF-8. An ASCII ID, the common case, is accepted in one pass
// over its bytes, eight a step (the eight loads combine into one); the
// others, and every refusal, take idError.
func validID(kind, id string, max int) error {
	if !shortASCII(id, max) {
		return idError(kind, id, max)
	}
	return nil
}

// shortASCII reports whether id is non-empty ASCII of at most max bytes,
// the common valid ID: small enough to inline into the loops that check
// many IDs, where a call an ID was most of validRefs' time.
func shortASCII(id string, max int) bool {
	return id != "" && len(id) <= max && asciiBits(id)&0x8080808080808080 == 0
}

// asciiBits is the or of id's bytes, folded into a word eight at a time:
// id is ASCII when no byte of the result has its high bit set.
func asciiBits(s string) uint64 {
	var w uint64
	for ; len(s) >= 8; s = s[8:] {
		w |= uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	}
	for i := 0; i < len(s); i++ {
		w |= uint64(s[i])
	}
	return w
}

// idError is validID for an ID that is not short, non-empty ASCII: nil if
// it is valid all the same, or the error that says why not.
func idError(kind, id string, max int) error {
	sentinel := ErrInvalidParameter
	if kind == "group ID" {
		sentinel = ErrInvalidGroupID
	}
	switch {
	case id == "":
		return errorf(sentinel, "empty %s", kind)
	case len(id) > max:
		return errorf(sentinel, "%s of %d bytes, limit %d", kind, len(id), max)
	case !utf8.ValidString(id):
		return errorf(sentinel, "%s is not valid UTF-8", kind)
	}
	return nil
}

// validConversation checks a conversation's type and IDs.
func (e *Engine) validConversation(c Conversation) error {
	switch c.Type {
	case ConversationGroup:
		return validID("group ID", c.GroupID, e.cfg.maxIDLength)
	case ConversationC2C:
		for _, u := range c.Users {
			if err := validID("user ID", u, e.cfg.maxIDLength); err != nil {
				return err
			}
		}
		if c.Users[0] == c.Users[1] {
			return errorf(ErrInvalidParameter, "C2C conversation of %q with itself", c.Users[0])
		}
		return nil
	}
	return errorf(ErrInvalidParameter, "unknown conversation type %d", c.Type)
}

// sameConversation is a == *b, field by field: the compiler's comparison
// of the whole struct is a call, and validRefs makes it for every message.
func sameConversation(a, b *Conversation) bool {
	// This unkeyed literal stops compiling when Conversation gains a
	// field, which the comparisons below would miss.
	_ = Conversation{a.Type, a.GroupID, a.Users}
	return a.Type == b.Type && a.GroupID == b.GroupID && a.Users[0] == b.Users[0] && a.Users[1] == b.Users[1]
}

// oneConversation reports that a and b hold the very same strings, as the
// refs a host builds from one conversation value do: sameConversation
// without comparing bytes (a call a string).
func oneConversation(a, b *Conversation) bool {
	return a.Type == b.Type && oneString(a.GroupID, b.GroupID) && oneString(a.Users[0], b.Users[0]) && oneString(a.Users[1], b.Users[1])
}

// oneString reports that a and b are one string, the same bytes in the
// same place.
func oneString(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// validRefs checks a message list: its size, its IDs, and that all share
// one conversation. It returns the conversation.
func (e *Engine) validRefs(refs []MessageRef, limit int) (Conversation, error) {
	if len(refs) == 0 {
		return Conversation{}, errorf(ErrInvalidParameter, "empty message list")
	}
	if len(refs) > limit {
		return Conversation{}, errorf(ErrTooManyMessages, "%d messages, limit %d", len(refs), limit)
	}
	conv := refs[0].Conversation
	if err := e.validConversation(conv); err != nil {
		return Conversation{}, err
	}
	var key []byte // conv's key, made for the first ref with another Conversation value
	maxID := e.cfg.maxIDLength
	for i := range refs {
		r := &refs[i]
		if !shortASCII(r.ID, maxID) {
			if err := idError("message ID", r.ID, maxID); err != nil {
				return Conversation{}, err
			}
		}
		if oneConversation(&r.Conversation, &conv) || sameConversation(&r.Conversation, &conv) {
			continue
		}
		if err := e.validConversation(r.Conversation); err != nil {
			return Conversation{}, err
		}
		if key == nil {
			key = convKey(conv)
		}
		if r.Conversation.Type != conv.Type || string(convKey(r.Conversation)) != string(key) {
			return Conversation{}, errorf(ErrMixedConversations, "%s and %s", conv, r.Conversation)
		}
	}
	if conv.Type == ConversationC2C {
		conv = C2C(conv.Users[0], conv.Users[1])
	}
	return conv, nil
}
