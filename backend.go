package readreceipt

import (
	"context"
	"errors"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
)

// Backends.
//
// The engine is split in two. The Engine itself decides: it validates
// every call, applies the limits and the feature switch, decides who is a
// recipient (admit) and who may read receipts (authorize), makes and checks
// cursors, and delivers events. A backend keeps the state those decisions
// are about: groups and their membership, messages, counts and readers.
//
// There are two backends:
//   - embedded (Open, OpenDir): roaring bitmaps in a store.Store, Pebble by
//     default, with the per-message state mirrored in memory (msgEntry).
//     It assumes it is the only writer of its store.
//   - redisBackend (OpenRedis): the same model in Redis, standalone or
//     Cluster, every change an atomic server-side function on the slot of
//     its conversation, so that any number of engines share one state. It
//     caches only what never changes once written.
//
// Both are held to one contract: the scenario files and the fuzz model run
// against each.
type backend interface {
	// cursorSecret returns the secret cursors are signed with, the same
	// for every engine sharing the backend's state.
	cursorSecret() []byte
	// close releases the backend.
	close() error

	getGroup(ctx context.Context, gid string) (GroupInfo, error)
	// createGroup and changeMembers get members checked and without
	// repeats, and bkts[i], the memberBucket of members[i].
	createGroup(ctx context.Context, gid string, typ GroupType, members []string, bkts []uint16) error
	changeMembers(ctx context.Context, gid string, members []string, bkts []uint16, add bool) error
	dismissGroup(ctx context.Context, gid string) error

	trackMessage(ctx context.Context, msg Message) error
	// receipts records reader's receipts of mode for refs (validated, one
	// conversation conv; see receiptMode for what each mode sets),
	// returning each message's outcome and, once they are durable, the
	// events for the senders: EventRead for a new public reader,
	// EventDelivered for a new delivery (modeDeliver, and modeReadPrivate
	// of a reader not delivered yet). A receipt already recorded gives
	// Recorded false and no event. With WithReadTimes, every new public or
	// private read appends its entry to the message's read-time log.
	receipts(ctx context.Context, conv Conversation, reader string, refs []MessageRef, mode receiptMode) ([]ReceiptResult, []ReceiptEvent, error)
	counts(ctx context.Context, caller Caller, conv Conversation, refs []MessageRef) ([]ReceiptInfo, error)
	page(ctx context.Context, caller Caller, conv Conversation, req MemberListRequest) (MemberPage, error)
	deleteMessage(ctx context.Context, ref MessageRef) error

	// readState returns user's own state of refs: Read and Private from R
	// and P, Delivered from R and D, ReadTime (C2C read time, or the
	// read-time log's entry), or the per-message error (ErrReceiptNotFound,
	// ErrOwnMessage, ErrNotRecipient, decided with admit).
	readState(ctx context.Context, conv Conversation, user string, refs []MessageRef) ([]ReadState, error)
	// readTimes returns when each of users read ref publicly, for a caller
	// authorized as for counts (ErrReceiptNotFound, ErrPermissionDenied
	// fail the call). Users who are not recipients, or have not read it,
	// get Read false.
	readTimes(ctx context.Context, caller Caller, conv Conversation, ref MessageRef, users []string) ([]MemberReadTime, error)

	// privacy reports whether user's receipts are private; setPrivacy
	// changes it, durably, for every engine sharing the state.
	privacy(ctx context.Context, user string) (bool, error)
	setPrivacy(ctx context.Context, user string, private bool) error

	// position returns the order position (msgPos) of a live message and
	// its thread, or ErrReceiptNotFound.
	position(ctx context.Context, ref MessageRef) (orderPos, string, error)
	// scanOrder returns up to limit live messages of conv (of thread, or
	// all of them for thread "") with positions after after and at or
	// before upTo, in order. Tracking writes every message into its
	// conversation's order, and into its thread's; deletion and expiry
	// remove it from both.
	scanOrder(ctx context.Context, conv Conversation, thread string, after, upTo orderPos, limit int) ([]orderItem, error)
	// mark returns reader's mark in conv's thread ("" for the whole
	// conversation); setMark raises it to p, never lowers it, and returns
	// the mark afterwards. Marks go with their conversation: deleted with
	// a dismissed group.
	mark(ctx context.Context, conv Conversation, thread, reader string) (orderPos, bool, error)
	setMark(ctx context.Context, conv Conversation, thread, reader string, p orderPos) (orderPos, error)

	// announce passes the events this engine made, already delivered to
	// its own subscribers, to the other engines sharing the state; listen
	// makes this engine deliver theirs to its subscribers.
	announce(events []ReceiptEvent, own []OwnReadEvent)
	listen()

	// ping reports whether the state can be reached now.
	ping(ctx context.Context) error

	// sweep reclaims expired state and returns how many messages it
	// deleted.
	sweep(ctx context.Context) (int, error)
	// check verifies the backend's invariants (Engine.Check).
	check(ctx context.Context) error
}

// membership answers the questions about a group's members that the
// engine's decisions need. Both answers never change once given: a member
// keeps its index for the group's life, and the membership at a version is
// fixed. So every backend may cache them.
type membership interface {
	// memberIndex returns the index user uid has, or had, in incarnation
	// inc of group gid, and whether it has one.
	memberIndex(ctx context.Context, gid string, inc uint64, uid string) (uint32, bool, error)
	// memberChunk returns chunk hi of the group's membership at version.
	// The bitmap is shared: callers must not modify it.
	memberChunk(ctx context.Context, gid string, inc uint64, hi uint16, version uint64) (*roaring.Bitmap, error)
}

// wasMember reports whether member idx of a group belonged to it at
// version.
func wasMember(ctx context.Context, mb membership, gid string, inc uint64, idx uint32, version uint64) (bool, error) {
	bm, err := mb.memberChunk(ctx, gid, inc, chunkOf(idx), version)
	if err != nil {
		return false, err
	}
	return bm.Contains(idx), nil
}

// admit decides whether reader may send a receipt for a live message of
// conv with meta: nil, or the per-message error (ErrOwnMessage,
// ErrNotRecipient). For a group message, idx and known are the reader's
// member index in the message's group incarnation.
//
// A call that admits one reader to many messages passes a memo: the
// messages mostly share their group's membership version, and the answer
// of wasMember for the reader at a version is then looked up once.
func admit(ctx context.Context, mb membership, conv Conversation, reader string, idx uint32, known bool, meta *messageRecord, memo *memberMemo) error {
	switch {
	case reader == meta.Sender:
		return ErrOwnMessage
	case conv.Type == ConversationC2C:
		if !conv.has(reader) {
			return errorf(ErrNotRecipient, "%q is not in %s", reader, conv)
		}
		return nil
	case !known || idx >= meta.EndIndex:
		return errorf(ErrNotRecipient, "%q was not a member when the message was sent", reader)
	}
	var member bool
	if memo != nil && memo.set && memo.inc == meta.Incarnation && memo.version == meta.Version {
		member = memo.member
	} else {
		var err error
		if member, err = wasMember(ctx, mb, conv.GroupID, meta.Incarnation, idx, meta.Version); err != nil {
			return err
		}
		if memo != nil {
			*memo = memberMemo{set: true, inc: meta.Incarnation, version: meta.Version, member: member}
		}
	}
	if !member {
		return errorf(ErrNotRecipient, "%q was not a member when the message was sent", reader)
	}
	return nil
}

// memberMemo is admit's memory, for one reader (one member index) of one
// group: whether the reader was a member at the group incarnation inc's
// membership version.
type memberMemo struct {
	set          bool
	inc, version uint64
	member       bool
}

// live reports whether liveErr would be nil, without making its error: the
// check of a count in the entry table's lock.
func (e *Engine) live(exists bool, meta *messageRecord, isGroup bool, groupInc uint64, now int64) bool {
	return exists && (!isGroup || groupInc != 0 && groupInc == meta.Incarnation) && !e.expiredAt(meta.TrackedAt, now)
}

// liveErr says why a stored message has no receipt info, or nil if it
// has: its group exists (groupInc is the current incarnation of a group
// message's group, 0 when there is none; it is not consulted for C2C), it
// was tracked (exists) in that incarnation, and it has not expired at now
// (a value of retentionNow). Every backend reports the same for the same
// state: a message of a group that is gone, or of an earlier incarnation of
// it, is as untracked as one that never was.
func (e *Engine) liveErr(exists bool, meta *messageRecord, isGroup bool, groupInc uint64, now int64) error {
	switch {
	case isGroup && groupInc == 0:
		return errorf(ErrReceiptNotFound, "group not found")
	case !exists || isGroup && groupInc != meta.Incarnation:
		return ErrReceiptNotFound
	case e.expiredAt(meta.TrackedAt, now):
		return errorf(ErrReceiptNotFound, "expired")
	}
	return nil
}

// receiptInfo fills in one message's read state from its meta, count,
// delivered count (count plus the recipients in D but not R) and (C2C) read
// time in Unix nanoseconds, or its error: lerr from liveErr, or the
// caller's refusal. info is zero but for its MessageID.
func (e *Engine) receiptInfo(ctx context.Context, mb membership, info *ReceiptInfo, caller Caller, conv Conversation, meta *messageRecord, count, delivered, readAt int64, lerr error) {
	if lerr == nil {
		lerr = e.authorize(ctx, mb, caller, conv, meta)
	}
	if lerr != nil {
		info.Err = lerr
		return
	}
	setCounts(info, meta.Recipients, count, delivered)
	if conv.Type == ConversationC2C {
		setPeer(info, count, delivered, readAt)
	}
}

// setCounts is receiptInfo for a message the caller may see: it fills in
// the counts of a message of recipients into info, zero but for its
// MessageID. A C2C message's peer state is setPeer's.
func setCounts(info *ReceiptInfo, recipients uint32, count, delivered int64) {
	info.ReadCount = int(count)
	info.UnreadCount = int(int64(recipients) - count)
	info.DeliveredCount = int(delivered)
	info.UndeliveredCount = int(int64(recipients) - delivered)
}

// setPeer is receiptInfo's part for a C2C message the caller may see.
func setPeer(info *ReceiptInfo, count, delivered, readAt int64) {
	info.IsPeerRead = count > 0
	info.IsPeerDelivered = delivered > 0
	if count > 0 && readAt != 0 {
		info.ReadTime = time.Unix(0, readAt).UTC()
	}
}

// mayRead reports whether caller may read the receipts of a message sent
// by sender without asking authorize anything more: an administrator or
// the sender may always.
func mayRead(caller *Caller, sender string) bool {
	return caller.Admin || caller.UserID == sender
}

// readTime is the ReadTime of a C2C message read at readAt (Unix
// nanoseconds; 0 when no time is stored, as for receipts recorded before
// read times were).
func readTime(conv Conversation, count, readAt int64) time.Time {
	if conv.Type != ConversationC2C || count == 0 || readAt == 0 {
		return time.Time{}
	}
	return time.Unix(0, readAt).UTC()
}

// authorize decides whether caller may read a live message's receipts.
func (e *Engine) authorize(ctx context.Context, mb membership, caller Caller, conv Conversation, meta *messageRecord) error {
	if mayRead(&caller, meta.Sender) {
		return nil
	}
	if e.cfg.access == AccessRecipients {
		if conv.Type == ConversationC2C {
			if conv.has(caller.UserID) {
				return nil
			}
		} else {
			idx, known, err := mb.memberIndex(ctx, conv.GroupID, meta.Incarnation, caller.UserID)
			if err != nil {
				return err
			}
			if known && idx < meta.EndIndex && idx != meta.SenderIndex {
				member, err := wasMember(ctx, mb, conv.GroupID, meta.Incarnation, idx, meta.Version)
				if err != nil {
					return err
				}
				if member {
					return nil
				}
			}
		}
	}
	return errorf(ErrPermissionDenied, "%q may not read the receipts of this message", caller.UserID)
}

// pageRequest validates a member-page request and returns its
// conversation.
func (e *Engine) pageRequest(caller Caller, req MemberListRequest) (Conversation, error) {
	if err := e.validCaller(caller); err != nil {
		return Conversation{}, err
	}
	conv, err := e.validRefs([]MessageRef{req.Message}, 1)
	if err != nil {
		return Conversation{}, err
	}
	if conv.Type != ConversationGroup {
		return Conversation{}, errorf(ErrInvalidParameter, "member lists are for group messages")
	}
	if req.Filter > FilterUndelivered {
		return Conversation{}, errorf(ErrInvalidParameter, "unknown filter %d", req.Filter)
	}
	if req.Count <= 0 {
		return Conversation{}, errorf(ErrInvalidParameter, "count %d", req.Count)
	}
	if req.Count > e.cfg.maxPageSize {
		return Conversation{}, errorf(ErrPageTooLarge, "count %d, limit %d", req.Count, e.cfg.maxPageSize)
	}
	return conv, nil
}

// perMessage reports whether err is the outcome of one message of a call
// (reported in its result) rather than a failure of the whole call.
func perMessage(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case CodeOwnMessage, CodeNotRecipient, CodeReceiptNotFound, CodePermissionDenied, CodePrivateReceipts:
		return true
	}
	return false
}
