package readreceipt

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"time"
)

// The receipt model beyond the seed: delivery receipts, read-up-to marks
// (per conversation and per thread), private receipts, a user's own read
// state on every device, and read times. The decisions are the engine's and
// live here; each backend keeps the state (see backend).
//
// Per message a backend keeps, besides the readers R and their count:
//   - D, the recipients a delivery was recorded for without a public read
//     (delivery receipts, and private reads), with the count of D minus R.
//     Delivered = |R| + |D \ R|: reading implies delivered, and a message
//     no device ever reported delivered costs nothing more than before.
//   - P, the recipients who read it privately: their own state, never
//     shown to anybody else.
//   - with WithReadTimes, a log of when each reader read it (readTimes).

// receiptMode is what a receipt call records.
type receiptMode uint8

const (
	// modeRead records public read receipts: R, and the delivered count
	// of a reader already in D moves to R.
	modeRead receiptMode = iota
	// modeReadPrivate records private reads: P, and D (a private reader's
	// device did receive the message) when the reader is in neither R
	// nor D. A reader already in R changes nothing.
	modeReadPrivate
	// modeDeliver records delivery: D, when the reader is in neither R
	// nor D.
	modeDeliver
)

// EventKind says what a ReceiptEvent reports.
type EventKind uint8

const (
	// EventRead: a recipient's read receipt was recorded (the SDK's
	// MESSAGE_READ_RECEIPT_RECEIVED).
	EventRead EventKind = iota
	// EventDelivered: the message was delivered to one more recipient.
	EventDelivered
)

// String names the kind as the server's wire format does.
func (k EventKind) String() string {
	if k == EventDelivered {
		return "delivered"
	}
	return "read"
}

// SendMessageDeliveryReceipt reports that reader's device has received
// messages, 1 to WithMaxMessagesPerCall (default 30) of one conversation,
// with the same per-message outcomes and whole-call failures as
// SendMessageReadReceipt. Recorded is false for a message already delivered
// to the reader, or already read by them (reading implies delivered). Each
// recorded delivery raises the message's DeliveredCount and sends its
// sender an EventDelivered event. Delivery is never private: a user whose
// receipts are private (SetReceiptsPrivate) still shows as delivered.
func (e *Engine) SendMessageDeliveryReceipt(ctx context.Context, reader string, messages []MessageRef) ([]ReceiptResult, error) {
	if err := e.enterReceipts(); err != nil {
		return nil, err
	}
	defer e.leave()
	if err := validID("reader", reader, e.cfg.maxIDLength); err != nil {
		return nil, err
	}
	conv, err := e.validRefs(messages, e.cfg.maxMessagesPerCall)
	if err != nil {
		return nil, err
	}
	results, events, err := e.be.receipts(ctx, conv, reader, messages, modeDeliver)
	e.deliver(ctx, events, nil)
	return results, err
}

// readMode returns the mode of reader's read receipts: private while the
// reader's receipts are private.
func (e *Engine) readMode(ctx context.Context, reader string) (receiptMode, error) {
	private, err := e.be.privacy(ctx, reader)
	if err != nil {
		return 0, err
	}
	if private {
		return modeReadPrivate, nil
	}
	return modeRead, nil
}

// deliver hands the events of recorded receipts to this engine's
// subscribers and to the other engines sharing the state. With reciprocal
// privacy, read events for a sender whose receipts are private are
// dropped: that sender sees nobody's reads.
func (e *Engine) deliver(ctx context.Context, events []ReceiptEvent, own []OwnReadEvent) {
	if e.cfg.reciprocal && len(events) > 0 {
		kept := events[:0:0]
		seen := map[string]bool{}
		for _, ev := range events {
			if ev.Kind == EventRead {
				hidden, ok := seen[ev.Sender]
				if !ok {
					p, err := e.be.privacy(ctx, ev.Sender)
					// When the setting cannot be read, err on the side
					// of the sender's own choice: drop the event.
					hidden = p || err != nil
					seen[ev.Sender] = hidden
				}
				if hidden {
					continue
				}
			}
			kept = append(kept, ev)
		}
		events = kept
	}
	if len(events) > 0 {
		e.subs.publish(events)
	}
	if len(own) > 0 {
		e.own.publish(own)
	}
	if len(events) > 0 || len(own) > 0 {
		e.be.announce(events, own)
	}
}

// SetReceiptsPrivate turns user's private receipts on or off. While they
// are on, the user's read receipts (SendMessageReadReceipt,
// MarkConversationRead) are recorded for the user's own state
// (GetMessageReadState, SubscribeOwnReads) but reach nobody else: they are
// not in read counts, member lists, read times or events. The user's
// devices still report delivery, and a private read counts as delivered.
//
// Switching never rewrites the past. Turning privacy on hides receipts
// from then on; receipts already recorded publicly stay public (others may
// have seen them). Turning it off makes receipts public from then on;
// reads recorded while private stay private, until the user sends a receipt
// for that message again.
//
// With WithReciprocalPrivacy, a user whose receipts are private does not
// see others' reads either: ErrPrivateReceipts for their messages' counts,
// read and unread lists and read times, and no read events.
func (e *Engine) SetReceiptsPrivate(ctx context.Context, user string, private bool) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if err := validID("user", user, e.cfg.maxIDLength); err != nil {
		return err
	}
	return e.be.setPrivacy(ctx, user, private)
}

// ReceiptsPrivate reports whether user's receipts are private.
func (e *Engine) ReceiptsPrivate(ctx context.Context, user string) (bool, error) {
	if err := e.enter(); err != nil {
		return false, err
	}
	defer e.leave()
	if err := validID("user", user, e.cfg.maxIDLength); err != nil {
		return false, err
	}
	return e.be.privacy(ctx, user)
}

// reciprocalErr is the refusal a non-admin caller gets for others' reads
// while the caller's own receipts are private and privacy is reciprocal.
func (e *Engine) reciprocalErr(ctx context.Context, caller Caller) error {
	if !e.cfg.reciprocal || caller.Admin {
		return nil
	}
	private, err := e.be.privacy(ctx, caller.UserID)
	if err != nil {
		return err
	}
	if private {
		return errorf(ErrPrivateReceipts, "%q has private receipts and privacy is reciprocal", caller.UserID)
	}
	return nil
}

// ReadState is one message's state for one of its recipients: the user's
// own view, which includes private reads.
type ReadState struct {
	MessageID string
	// Read reports that the user has read the message, publicly or
	// privately; Private that the read is private (not shown to others).
	Read    bool
	Private bool
	// Delivered reports that a device of the user received it (true when
	// Read).
	Delivered bool
	// ReadTime is when the user read it, where the engine keeps it: for
	// C2C messages, and with WithReadTimes for group messages; zero
	// otherwise.
	ReadTime time.Time
	// Err is ErrReceiptNotFound, ErrOwnMessage or ErrNotRecipient.
	Err error
}

// GetMessageReadState returns user's own read state for messages of one
// conversation (up to WithMaxQueryMessages): what the user's other devices
// need to show the same. Messages the user cannot have read (unknown, the
// user's own, the user not a recipient) carry their error.
func (e *Engine) GetMessageReadState(ctx context.Context, user string, messages []MessageRef) ([]ReadState, error) {
	if err := e.enterReceipts(); err != nil {
		return nil, err
	}
	defer e.leave()
	if err := validID("user", user, e.cfg.maxIDLength); err != nil {
		return nil, err
	}
	conv, err := e.validRefs(messages, e.cfg.maxQueryMessages)
	if err != nil {
		return nil, err
	}
	return e.be.readState(ctx, conv, user, messages)
}

// OwnReadEvent tells a user's devices that the user has read messages: one
// per SendMessageReadReceipt or MarkConversationRead that recorded
// something, with the messages it recorded (private reads included: the
// event goes to the reader only).
type OwnReadEvent struct {
	// UserID is the reader: the user whose devices the host should notify.
	UserID       string
	Conversation Conversation
	// MessageIDs are the messages whose read this call recorded.
	MessageIDs []string
	// Mark is set for MarkConversationRead: the reader's mark afterwards,
	// for Thread ("" for the whole conversation).
	Mark   *ReadMark
	Thread string
}

// SubscribeOwnReads registers fn to receive OwnReadEvents, as Subscribe
// does for receipt events (same goroutines, same order rules, and on Redis
// the events of the other engines too, at most once). The returned function
// unsubscribes fn.
func (e *Engine) SubscribeOwnReads(fn func(events []OwnReadEvent)) (unsubscribe func()) {
	unsubscribe = e.own.add(fn)
	e.be.listen()
	return unsubscribe
}

// ownEvent returns the OwnReadEvent of a read call's results, or false if
// it recorded nothing.
func ownEvent(reader string, conv Conversation, refs []MessageRef, results []ReceiptResult) (OwnReadEvent, bool) {
	n := 0
	for _, r := range results {
		if r.Recorded {
			n++
		}
	}
	if n == 0 {
		return OwnReadEvent{}, false
	}
	ids := make([]string, 0, n)
	for i, r := range results {
		if r.Recorded {
			ids = append(ids, refs[i].ID)
		}
	}
	if len(ids) == 0 {
		return OwnReadEvent{}, false
	}
	return OwnReadEvent{UserID: reader, Conversation: conv, MessageIDs: ids}, true
}

// ownEventsWanted reports whether a receipt call's OwnReadEvent has
// anyone to reach: a subscriber here, or, on Redis, the other engines
// (announce). On the embedded backend most hosts subscribe to nothing, and
// the event is not built.
func (e *Engine) ownEventsWanted() bool {
	if _, local := e.be.(*embedded); local {
		return e.own.any()
	}
	return true
}

// ReadMark is a reader's position in a conversation, or in one of its
// threads: every message tracked at or before it is read. Messages are
// ordered by when they were tracked (to the microsecond), then by ID.
type ReadMark struct {
	// MessageID is the message the mark was set at; "" for a mark set at
	// a time.
	MessageID string
	// Time is when that message was tracked, or the time the mark was set
	// at.
	Time time.Time
}

// MarkRequest asks MarkConversationRead to mark a conversation (or one of
// its threads) read up to one message or one time.
type MarkRequest struct {
	Conversation Conversation
	// Thread limits the mark to the messages of one thread
	// (Message.Thread); "" marks the whole conversation, threads included.
	Thread string
	// MessageID is the last message read; or, when it is "", Time is: every
	// message tracked at or before Time. A Time after the engine's clock
	// marks up to now: a mark never covers messages not tracked yet, which
	// would then never get their receipts.
	MessageID string
	Time      time.Time
}

// MarkResult is the outcome of MarkConversationRead.
type MarkResult struct {
	// Mark is the reader's mark afterwards. Marks never move back: a
	// request at or before the current mark leaves it as it was.
	Mark ReadMark
	// Messages is how many tracked messages the call went through (those
	// after the previous mark, up to the new one); Recorded how many
	// receipts it recorded (the others were the reader's own, not the
	// reader's to read, or already read).
	Messages int
	Recorded int
}

// markBatch is how many messages MarkConversationRead records at a time.
const markBatch = 100

// MarkConversationRead records that reader has read conversation C (or one
// of its threads) up to a message or a time: a read receipt for every
// tracked message of C (of the thread) after the reader's previous mark and
// at or before the new one, of which the reader is a recipient, exactly as
// SendMessageReadReceipt would (private while the reader's receipts are
// private). Its cost grows with the messages tracked since the previous
// mark, not with the conversation's history. The senders' events are
// coalesced: one batch for the whole call, one event per message. The mark
// moves only after the receipts are durable, so a call cut short leaves
// the previous mark, and repeating it records the rest.
//
// A message whose tracking is still in flight when a mark at a time is set
// may be passed over by it; a mark at a message ID has no such race on one
// engine. On Redis, engines' clocks should agree to well within the
// spacing of a conversation's messages.
//
// It fails with ErrReceiptNotFound when MessageID names no live message of
// the conversation (or of the thread), ErrGroupNotFound for a group the
// engine does not know, ErrInvalidParameter for a C2C reader outside the
// conversation, and as SendMessageReadReceipt does for bad input, the
// feature switch and store failures. A call that fails after recording
// some receipts has sent their events (and the reader's own event, without
// a mark).
func (e *Engine) MarkConversationRead(ctx context.Context, reader string, req MarkRequest) (MarkResult, error) {
	if err := e.enterReceipts(); err != nil {
		return MarkResult{}, err
	}
	defer e.leave()
	conv := req.Conversation
	if err := validID("reader", reader, e.cfg.maxIDLength); err != nil {
		return MarkResult{}, err
	}
	if err := e.validConversation(conv); err != nil {
		return MarkResult{}, err
	}
	if err := e.validThread(req.Thread); err != nil {
		return MarkResult{}, err
	}
	if conv.Type == ConversationC2C {
		if !conv.has(reader) {
			return MarkResult{}, errorf(ErrInvalidParameter, "%q is not in %s", reader, conv)
		}
		// Events carry the conversation as every other call gives it.
		conv = C2C(conv.Users[0], conv.Users[1])
	}
	var target orderPos
	switch {
	case req.MessageID != "":
		if err := validID("message ID", req.MessageID, e.cfg.maxIDLength); err != nil {
			return MarkResult{}, err
		}
		if !req.Time.IsZero() {
			return MarkResult{}, errorf(ErrInvalidParameter, "a mark is at a message or at a time, not both")
		}
		p, thread, err := e.be.position(ctx, MessageRef{Conversation: conv, ID: req.MessageID})
		if err != nil {
			return MarkResult{}, err
		}
		if req.Thread != "" && thread != req.Thread {
			return MarkResult{}, errorf(ErrReceiptNotFound, "message %q is not in thread %q", req.MessageID, req.Thread)
		}
		target = p
	case req.Time.IsZero():
		return MarkResult{}, errorf(ErrInvalidParameter, "a mark needs a message ID or a time")
	default:
		// A mark covers what is tracked by now: a later time would cover
		// messages tracked after this call, whose receipts it never sent.
		target = timePos(req.Time)
		if now := timePos(e.cfg.now()); target.cmp(now) > 0 {
			target = now
		}
	}
	mode, err := e.readMode(ctx, reader)
	if err != nil {
		return MarkResult{}, err
	}
	prev, hasPrev, err := e.be.mark(ctx, conv, req.Thread, reader)
	if err != nil {
		return MarkResult{}, err
	}
	var res MarkResult
	if hasPrev && target.cmp(prev) <= 0 {
		res.Mark = prev.mark()
		return res, nil
	}
	var events []ReceiptEvent
	var readIDs []string
	after := prev
	if !hasPrev {
		after = minPos
	}
	for {
		items, err := e.be.scanOrder(ctx, conv, req.Thread, after, target, markBatch)
		if err != nil {
			e.deliver(ctx, events, partialOwn(reader, conv, readIDs))
			return res, err
		}
		if len(items) == 0 {
			break
		}
		refs := make([]MessageRef, 0, len(items))
		for _, it := range items {
			refs = append(refs, MessageRef{Conversation: conv, ID: it.id})
		}
		for len(refs) > 0 {
			n := min(len(refs), e.cfg.maxMessagesPerCall)
			results, evs, err := e.be.receipts(ctx, conv, reader, refs[:n], mode)
			if err != nil {
				e.deliver(ctx, events, partialOwn(reader, conv, readIDs))
				return res, err
			}
			events = append(events, evs...)
			for i, r := range results {
				if r.Recorded {
					res.Recorded++
					readIDs = append(readIDs, refs[i].ID)
				}
			}
			refs = refs[n:]
		}
		res.Messages += len(items)
		after = items[len(items)-1].pos
		if len(items) < markBatch {
			break
		}
	}
	stored, err := e.be.setMark(ctx, conv, req.Thread, reader, target)
	if err != nil {
		e.deliver(ctx, events, partialOwn(reader, conv, readIDs))
		return res, err
	}
	res.Mark = stored.mark()
	mark := res.Mark
	own := []OwnReadEvent{{UserID: reader, Conversation: conv, MessageIDs: readIDs, Mark: &mark, Thread: req.Thread}}
	e.deliver(ctx, events, own)
	return res, nil
}

// partialOwn is the reader's own event of the reads a mark recorded before
// it failed: the devices learn of what was recorded, without a mark.
func partialOwn(reader string, conv Conversation, ids []string) []OwnReadEvent {
	if len(ids) == 0 {
		return nil
	}
	return []OwnReadEvent{{UserID: reader, Conversation: conv, MessageIDs: ids}}
}

// GetReadMark returns reader's mark in a conversation (thread "" ) or one
// of its threads, and false when the reader has none.
func (e *Engine) GetReadMark(ctx context.Context, reader string, conv Conversation, thread string) (ReadMark, bool, error) {
	if err := e.enterReceipts(); err != nil {
		return ReadMark{}, false, err
	}
	defer e.leave()
	if err := validID("reader", reader, e.cfg.maxIDLength); err != nil {
		return ReadMark{}, false, err
	}
	if err := e.validConversation(conv); err != nil {
		return ReadMark{}, false, err
	}
	if err := e.validThread(thread); err != nil {
		return ReadMark{}, false, err
	}
	p, ok, err := e.be.mark(ctx, conv, thread, reader)
	if err != nil || !ok {
		return ReadMark{}, false, err
	}
	return p.mark(), true, nil
}

func (e *Engine) validThread(thread string) error {
	if thread == "" {
		return nil
	}
	return validID("thread", thread, e.cfg.maxIDLength)
}

// orderPos is a position in a conversation's order of messages: when a
// message was tracked, in Unix microseconds, then its ID. A mark at a time
// is (that time, maxID): after every message tracked in that microsecond.
type orderPos struct {
	at int64
	id string
}

// maxID sorts after every valid ID: 0xff never occurs in UTF-8.
const maxID = "\xff"

// minPos sorts before every message's position.
var minPos = orderPos{at: math.MinInt64}

func timePos(t time.Time) orderPos { return orderPos{at: t.UnixMicro(), id: maxID} }

// msgPos is the position of a message tracked at trackedAt (Unix ns).
func msgPos(trackedAt int64, id string) orderPos {
	return orderPos{at: trackedAt / 1000, id: id}
}

func (p orderPos) cmp(q orderPos) int {
	switch {
	case p.at < q.at:
		return -1
	case p.at > q.at:
		return 1
	}
	return bytes.Compare([]byte(p.id), []byte(q.id))
}

func (p orderPos) mark() ReadMark {
	m := ReadMark{Time: time.UnixMicro(p.at).UTC()}
	if p.id != maxID {
		m.MessageID = p.id
	}
	return m
}

// encode gives the position as bytes that sort as positions do: the
// microseconds big-endian (offset so that negative times sort first), then
// the ID.
func (p orderPos) encode(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(p.at)^(1<<63))
	return append(b, p.id...)
}

func decodeOrderPos(b []byte) (orderPos, error) {
	if len(b) < 8 {
		return orderPos{}, errBadRecord
	}
	return orderPos{at: int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), id: string(b[8:])}, nil
}

// orderItem is one message found in a conversation's order.
type orderItem struct {
	pos orderPos
	id  string
}

// MemberReadTime is when one member read a message (GetMessageReadTimes).
type MemberReadTime struct {
	UserID string
	// Read reports that the member's read is public; ReadTime is when it
	// was recorded: to the second for a group message (the read-time
	// log), as recorded for a C2C one; zero when Read is false, or for a
	// group receipt recorded while read times were off.
	Read     bool
	ReadTime time.Time
}

// GetMessageReadTimes returns when each of users read a group or C2C
// message, for a caller allowed to see its receipts (as
// GetMessageReadReceiptList). Group read times are kept only with
// WithReadTimes; without it, a group message's reads have no times. Up to
// WithMaxPageSize users a call. Private reads are reported as not read.
func (e *Engine) GetMessageReadTimes(ctx context.Context, caller Caller, message MessageRef, users []string) ([]MemberReadTime, error) {
	if err := e.enterReceipts(); err != nil {
		return nil, err
	}
	defer e.leave()
	if err := e.validCaller(caller); err != nil {
		return nil, err
	}
	conv, err := e.validRefs([]MessageRef{message}, 1)
	if err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, errorf(ErrInvalidParameter, "no users")
	}
	if len(users) > e.cfg.maxPageSize {
		return nil, errorf(ErrPageTooLarge, "%d users, limit %d", len(users), e.cfg.maxPageSize)
	}
	for _, u := range users {
		if err := validID("user", u, e.cfg.maxIDLength); err != nil {
			return nil, err
		}
	}
	if err := e.reciprocalErr(ctx, caller); err != nil {
		return nil, err
	}
	return e.be.readTimes(ctx, caller, conv, message, users)
}

// Read-time log. With WithReadTimes, every public or private read appends
// one entry to its message's log:
//
//	uvarint(index<<1 | private)  uvarint(zigzag(seconds since tracked))
//
// where index is the reader's member index (0 for C2C). Most reads come
// within a day of the message, so an entry takes 2 to 4 bytes in a
// 200-member group and 4 to 7 in a million-member one, where a timestamp
// per row alone would take 8. Both backends keep the log as one appendable
// value per message and decode it here.

// appendReadTime appends one log entry.
func appendReadTime(b []byte, idx uint32, private bool, trackedAt, readAt int64) []byte {
	v := uint64(idx) << 1
	if private {
		v |= 1
	}
	b = binary.AppendUvarint(b, v)
	d := readAt/1e9 - trackedAt/1e9
	return binary.AppendUvarint(b, uint64(d<<1)^uint64(d>>63))
}

// readTimeEntry is one decoded log entry.
type readTimeEntry struct {
	idx     uint32
	private bool
	at      int64 // Unix seconds
}

// decodeReadTimes calls fn for every entry of log, in order, and reports a
// malformed log.
func decodeReadTimes(log []byte, trackedAt int64, fn func(readTimeEntry)) error {
	base := trackedAt / 1e9
	for len(log) > 0 {
		v, n := binary.Uvarint(log)
		if n <= 0 || v>>1 > uint64(^uint32(0)) {
			return errBadRecord
		}
		log = log[n:]
		z, n := binary.Uvarint(log)
		if n <= 0 {
			return errBadRecord
		}
		log = log[n:]
		d := int64(z>>1) ^ -int64(z&1)
		fn(readTimeEntry{idx: uint32(v >> 1), private: v&1 == 1, at: base + d})
	}
	return nil
}

// readTimesOf returns, from a message's log, the first time each of idxs
// read it (publicly unless private is set), zero where none is logged.
func readTimesOf(log []byte, trackedAt int64, idxs []uint32, private bool) ([]time.Time, error) {
	out := make([]time.Time, len(idxs))
	if len(log) == 0 || len(idxs) == 0 {
		return out, nil
	}
	pos := make(map[uint32][]int, len(idxs))
	for i, x := range idxs {
		pos[x] = append(pos[x], i)
	}
	err := decodeReadTimes(log, trackedAt, func(en readTimeEntry) {
		if en.private != private {
			return
		}
		for _, i := range pos[en.idx] {
			if out[i].IsZero() {
				out[i] = time.Unix(en.at, 0).UTC()
			}
		}
	})
	return out, err
}
