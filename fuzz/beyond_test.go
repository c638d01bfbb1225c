package fuzz

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	rr "github.com/readreceipt/readreceipt"
)

// The operations beyond the seed (issue 12): delivery receipts, read marks
// of conversations and threads, private receipts, a user's own read state
// and read times. They take the operation slots 60..63, which were spare
// receipt slots, so that every older history decodes as before up to those
// bytes; the byte after the operation picks one (mod 16):
//
//	0-2   deliver      reader, n, conv, n×msg (as opReceipt)
//	3-5   mark         reader, conv, thread, target kind [, msg | seconds | 2 bytes]
//	6-7   track-thread conv, msg, sender, thread
//	8-9   private      user, on (odd)
//	10-11 read-state   user, n, conv, n×msg (up to the query limit)
//	12    read-times   caller, message, n, n×user
//	13    get-mark     reader, conv, thread
//	14    get-private  user
//	15    receipt      as opReceipt
//
// The mark's target kind (mod 4): 0 a message (an ID of the pool, or from
// 128..247 a recent message of the conversation); 1 the time b/4%8 seconds
// before now; 2 nothing or both (invalid: every kind byte ≥128 gives both,
// a message and a time); 3 an absolute time, two bytes of seconds after
// the epoch (the canonical form of kind 1).
const opExt = 60

const (
	extDeliver    = 0
	extMark       = 3
	extTrackTh    = 6
	extPrivate    = 8
	extReadState  = 10
	extReadTimes  = 12
	extGetMark    = 13
	extGetPrivate = 14
	extReceipt    = 15
)

// thread picks a thread: none, one of the pool, or (from 252 on) an
// invalid one ("" among them, which is no thread).
func (d *decoder) thread() string {
	b := d.byte()
	if b >= 252 {
		return badIDs[b%4]
	}
	return []string{"", "", threads[0], threads[1]}[b%4]
}

func (c *canon) thread(t string) {
	switch i := slices.Index(threads, t); {
	case t == "":
		c.raw(0)
	case i >= 0:
		c.raw(byte(2 + i))
	default:
		c.id(nil, t, 252)
	}
}

func (h *harness) ext(d *decoder) {
	k := d.byte() % 16
	switch {
	case k < extMark:
		h.cn.raw(extDeliver)
		h.deliver(d)
	case k < extTrackTh:
		h.cn.raw(extMark)
		h.mark(d)
	case k < extPrivate:
		h.cn.raw(extTrackTh)
		h.trackThread(d)
	case k < extReadState:
		h.cn.raw(extPrivate)
		u := d.user()
		on := d.byte()%2 == 1
		h.cn.user(u)
		h.cn.raw(map[bool]byte{false: 0, true: 1}[on])
		h.applyPrivate(u, on)
	case k < extReadTimes:
		h.cn.raw(extReadState)
		rb := d.byte()
		refs := d.refs(h.model.MaxQuery)
		user := h.reader(rb, refs)
		h.cn.user(user)
		h.cn.refs(refs, h.model.MaxQuery)
		h.compareReadState(user, refs)
	case k == extReadTimes:
		h.cn.raw(extReadTimes)
		cb := d.byte()
		ref, sender := d.message()
		caller := callerFrom(cb, sender)
		us := d.users()
		h.cn.caller(caller)
		h.cn.message(ref)
		h.cn.users(us)
		h.compareReadTimes(caller, ref, us)
	case k == extGetMark:
		h.cn.raw(extGetMark)
		rb := d.byte()
		conv := d.refConv()
		reader := h.reader(rb, []rr.MessageRef{{Conversation: conv}})
		thread := d.thread()
		h.cn.user(reader)
		h.cn.conv(conv)
		h.cn.thread(thread)
		h.compareMark(reader, conv, thread)
	case k == extGetPrivate:
		h.cn.raw(extGetPrivate)
		u := d.user()
		h.cn.user(u)
		h.comparePrivate(u)
	default:
		h.cn.raw(extReceipt)
		h.receipt(d)
	}
}

func (h *harness) deliver(d *decoder) {
	rb := d.byte()
	refs := d.refs(h.model.MaxMessages)
	reader := h.reader(rb, refs)
	h.cn.user(reader)
	h.cn.refs(refs, h.model.MaxMessages)
	h.logf("deliver reader=%q %s", reader, fmtRefs(refs))
	results := make([][]rr.ReceiptResult, len(h.targets))
	errs := make([]error, len(h.targets))
	for i, t := range h.targets {
		results[i], errs[i] = t.eng.SendMessageDeliveryReceipt(h.ctx, reader, refs)
	}
	o, want, wantEvents := h.model.Deliver(reader, refs)
	h.expect("SendMessageDeliveryReceipt", o, errs)
	for i, t := range h.targets {
		h.checkReceipt(t, "SendMessageDeliveryReceipt", i == 0, results[i], errs[i], want, wantEvents)
		h.checkOwn(t, "SendMessageDeliveryReceipt", nil)
	}
}

func (h *harness) trackThread(d *decoder) {
	msg := rr.Message{Conversation: d.conv(), ID: d.msgID()}
	msg.Sender = h.sender(d.byte(), msg.Conversation)
	msg.Thread = d.thread()
	h.cn.conv(msg.Conversation)
	h.cn.msgID(msg.ID)
	h.cn.user(msg.Sender)
	h.cn.thread(msg.Thread)
	h.logf("track %s id=%q sender=%q thread=%q", fmtConv(msg.Conversation), msg.ID, msg.Sender, msg.Thread)
	errs := h.each(func(e *rr.Engine) error { return e.TrackMessage(h.ctx, msg) })
	h.expect("TrackMessage", h.model.Track(msg), errs)
	if errs[0] == nil || d.i%4 == 0 {
		d.noteTrack(msg)
	}
}

// markRequest decodes a MarkConversationRead request (see opExt).
func (h *harness) markRequest(d *decoder) (string, rr.MarkRequest) {
	rb := d.byte()
	conv := d.refConv()
	reader := h.reader(rb, []rr.MessageRef{{Conversation: conv}})
	req := rr.MarkRequest{Conversation: conv, Thread: d.thread()}
	h.cn.user(reader)
	h.cn.conv(conv)
	h.cn.thread(req.Thread)
	kb := d.byte()
	switch kb % 4 {
	case 0:
		b := d.byte()
		req.MessageID = msgIDs[b%6]
		switch {
		case b >= 252:
			req.MessageID = badIDs[b%4]
		case b >= 128:
			var ids []string
			for _, m := range d.recent {
				if Canon(m.Conversation) == Canon(conv) && (req.Thread == "" || m.Thread == req.Thread) {
					ids = append(ids, m.ID)
				}
			}
			if len(ids) > 0 {
				req.MessageID = ids[int(b)%len(ids)]
			}
		}
	case 1:
		req.Time = time.Unix(0, h.model.Now).Add(-time.Duration(kb/4%8) * time.Second).UTC()
		if req.Time.Before(epoch) {
			req.Time = epoch
		}
	case 2:
		if kb >= 128 {
			req.MessageID, req.Time = msgIDs[0], time.Unix(0, h.model.Now).UTC()
		}
	case 3:
		hi, lo := d.byte(), d.byte()
		req.Time = epoch.Add(time.Duration(int(hi)<<8|int(lo)) * time.Second)
	}
	switch {
	case req.MessageID != "" && !req.Time.IsZero():
		h.cn.raw(0x82)
	case req.MessageID != "" || kb%4 == 0:
		h.cn.raw(0)
		h.cn.msgID(req.MessageID)
	case req.Time.IsZero():
		h.cn.raw(2)
	default:
		// A time: spelled out absolutely (kind 3), if it fits.
		d := req.Time.Sub(epoch)
		if d < 0 || d > 0xffff*time.Second || d%time.Second != 0 {
			h.cn.fail("mark time", req.Time)
			d = 0
		}
		sec := int(d / time.Second)
		h.cn.raw(3, byte(sec>>8), byte(sec))
	}
	return reader, req
}

func (h *harness) mark(d *decoder) {
	reader, req := h.markRequest(d)
	if h.cfg.noMarks {
		h.compareMark(reader, req.Conversation, req.Thread)
		return
	}
	h.applyMark(reader, req)
}

// applyMark runs one MarkConversationRead on every engine and the model,
// compares the answers, and returns the first engine's error.
func (h *harness) applyMark(reader string, req rr.MarkRequest) error {
	if h.marked == nil {
		h.marked = map[MarkKey]bool{}
	}
	if len(h.model.convErrs(req.Conversation)) == 0 && h.model.validID(reader) && (req.Thread == "" || h.model.validID(req.Thread)) {
		h.marked[MarkKey{Conv: Canon(req.Conversation), Thread: req.Thread, Reader: reader}] = true
	}
	h.logf("mark reader=%q %s thread=%q msg=%q time=%s", reader, fmtConv(req.Conversation), req.Thread, req.MessageID, fmtTime(req.Time))
	results := make([]rr.MarkResult, len(h.targets))
	errs := make([]error, len(h.targets))
	for i, t := range h.targets {
		results[i], errs[i] = t.eng.MarkConversationRead(h.ctx, reader, req)
	}
	exp := h.model.MarkRead(reader, req)
	h.expect("MarkConversationRead", exp.Outcome, errs)
	for i, t := range h.targets {
		batches := t.takeBatches()
		// MarkConversationRead hands the backend the conversation as the
		// caller spelled it, so a C2C event's Conversation may have its
		// users in the caller's order (SendMessageReadReceipt's are
		// sorted): compared in canonical form.
		for _, b := range batches {
			for j := range b {
				b[j].Conversation = Canon(b[j].Conversation)
			}
		}
		if errs[i] != nil {
			if len(batches) != 0 {
				h.fail("%s: failed MarkConversationRead emitted %+v", t.backend, batches)
			}
			h.checkOwn(t, "MarkConversationRead", nil)
			continue
		}
		g, w := results[i], exp.Result
		if g.Messages != w.Messages || g.Recorded != w.Recorded || g.Mark.MessageID != w.Mark.MessageID || !g.Mark.Time.Equal(w.Mark.Time) {
			h.fail("%s: MarkConversationRead: got %+v, want %+v", t.backend, g, w)
		}
		if i == 0 {
			h.trace[len(h.trace)-1] += fmt.Sprintf(" messages=%d recorded=%d", g.Messages, g.Recorded)
			stat(fmt.Sprintf("mark: messages>0=%v recorded>0=%v", g.Messages > 0, g.Recorded > 0))
		}
		switch {
		case len(exp.Events) == 0 && len(batches) != 0:
			h.fail("%s: MarkConversationRead emitted %+v, want nothing", t.backend, batches)
		case len(exp.Events) > 0 && len(batches) != 1:
			h.fail("%s: MarkConversationRead emitted %d batches, want 1: %+v; want %+v", t.backend, len(batches), batches, exp.Events)
		case len(exp.Events) > 0 && !slices.Equal(batches[0], exp.Events):
			h.fail("%s: MarkConversationRead events:\n got %+v\nwant %+v", t.backend, batches[0], exp.Events)
		}
		h.checkOwn(t, "MarkConversationRead", exp.Own)
	}
	return errs[0]
}

func (h *harness) applyPrivate(user string, on bool) {
	h.logf("private user=%q on=%v", user, on)
	errs := h.each(func(e *rr.Engine) error { return e.SetReceiptsPrivate(h.ctx, user, on) })
	h.expect("SetReceiptsPrivate", h.model.SetPrivate(user, on), errs)
}

func (h *harness) comparePrivate(user string) {
	if !h.checking {
		h.logf("get-private user=%q", user)
	}
	o, want := h.model.Private(user)
	for _, t := range h.targets {
		got, err := t.eng.ReceiptsPrivate(h.ctx, user)
		h.expect("ReceiptsPrivate", o, []error{err})
		if err == nil && got != want {
			h.fail("%s: ReceiptsPrivate(%q) = %v, want %v", t.backend, user, got, want)
		}
	}
}

func (h *harness) compareMark(reader string, conv rr.Conversation, thread string) {
	if !h.checking {
		h.logf("get-mark reader=%q %s thread=%q", reader, fmtConv(conv), thread)
	}
	o, want, wantOK := h.model.Mark(reader, conv, thread)
	for _, t := range h.targets {
		got, ok, err := t.eng.GetReadMark(h.ctx, reader, conv, thread)
		h.expect("GetReadMark", o, []error{err})
		if err == nil && (ok != wantOK || got.MessageID != want.MessageID || !got.Time.Equal(want.Time)) {
			h.fail("%s: GetReadMark(%q, %s, %q) = %+v %v, want %+v %v", t.backend, reader, fmtConv(conv), thread, got, ok, want, wantOK)
		}
	}
}

func (h *harness) compareReadState(user string, refs []rr.MessageRef) {
	if !h.checking {
		h.logf("read-state user=%q %s", user, fmtRefs(refs))
	}
	o, want := h.model.ReadState(user, refs)
	for _, t := range h.targets {
		got, err := t.eng.GetMessageReadState(h.ctx, user, refs)
		h.expect("GetMessageReadState", o, []error{err})
		if err != nil {
			if len(got) != 0 {
				h.fail("%s: failed GetMessageReadState returned %+v", t.backend, got)
			}
			continue
		}
		if len(got) != len(want) {
			h.fail("%s: GetMessageReadState: %d states for %d messages", t.backend, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			stat(fmt.Sprintf("read state: read=%v private=%v delivered=%v %s", g.Read, g.Private, g.Delivered, kindName(g.Err)))
			if g.MessageID != w.MessageID || g.Read != w.Read || g.Private != w.Private || g.Delivered != w.Delivered ||
				!g.ReadTime.Equal(w.ReadTime) || !SameKind(g.Err, w.Err) {
				h.fail("%s: GetMessageReadState(%q) state %d: got %+v, want %+v (err %s)", t.backend, user, i, g, w, kindName(w.Err))
			}
		}
	}
}

func (h *harness) compareReadTimes(caller rr.Caller, ref rr.MessageRef, users []string) {
	if !h.checking {
		h.logf("read-times caller=%+v %s id=%q users=%q", caller, fmtConv(ref.Conversation), ref.ID, users)
	}
	o, want := h.model.ReadTimesOf(caller, ref, users)
	for _, t := range h.targets {
		got, err := t.eng.GetMessageReadTimes(h.ctx, caller, ref, users)
		h.expect("GetMessageReadTimes", o, []error{err})
		if err != nil {
			continue
		}
		ok := len(got) == len(want)
		for i := 0; ok && i < len(got); i++ {
			ok = got[i].UserID == want[i].UserID && got[i].Read == want[i].Read && got[i].ReadTime.Equal(want[i].ReadTime)
		}
		if !ok {
			h.fail("%s: GetMessageReadTimes(%s/%q, %q): got %+v, want %+v", t.backend, fmtConv(ref.Conversation), ref.ID, users, got, want)
		}
	}
}

// fullCheckBeyond compares the state beyond the seed: every pool user's
// privacy, the own read state of every message the counts went through for
// the users who take part in its conversation (and one who does not),
// every mark a history tried to set, and the read times of every live
// message.
func (h *harness) fullCheckBeyond(convs []rr.Conversation, convIDs map[rr.Conversation][]string) {
	m := h.model
	for _, u := range users {
		h.comparePrivate(u)
	}
	for _, conv := range convs {
		var us []string
		switch {
		case conv.Type == rr.ConversationC2C:
			us = append(us, conv.Users[0], conv.Users[1])
		case m.Groups[conv.GroupID] != nil:
			us = append(us, m.Groups[conv.GroupID].Users...)
		}
		for _, u := range users {
			if !slices.Contains(us, u) {
				us = append(us, u) // an outsider
				break
			}
		}
		ids := convIDs[conv]
		for len(ids) > 0 {
			n := min(len(ids), m.MaxQuery)
			refs := make([]rr.MessageRef, n)
			for i, id := range ids[:n] {
				refs[i] = rr.MessageRef{Conversation: conv, ID: id}
			}
			ids = ids[n:]
			for _, u := range us {
				h.compareReadState(u, refs)
			}
		}
	}
	marks := map[MarkKey]bool{}
	maps.Copy(marks, h.marked)
	for k := range m.Marks {
		marks[k] = true
	}
	keys := make([]MarkKey, 0, len(marks))
	for k := range marks {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b MarkKey) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	for _, k := range keys {
		h.compareMark(k.Reader, k.Conv, k.Thread)
	}
	for _, msg := range m.LiveMessages() {
		var us []string
		for _, r := range msg.Rcpts {
			us = append(us, r.User)
		}
		us = append(us, msg.Sender)
		ref := rr.MessageRef{Conversation: msg.Key.Conv, ID: msg.Key.ID}
		for len(us) > 0 {
			n := min(len(us), m.MaxPage)
			h.compareReadTimes(rr.AsAdmin(), ref, us[:n])
			us = us[n:]
		}
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339Nano)
}
