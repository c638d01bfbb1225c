package fuzz

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store/memstore"
)

// inputHistory is the state FuzzInput's hostile calls run against: a Work
// group with a group message read by two members, a Community group (whose
// type does not support receipts by default) and a C2C message that its
// peer has read, and cursors from a walk with pages of one member.
var inputHistory = []byte{0x02, // retention: forever
	opCreate, 0, typeWork, 4, 0, 1, 2, 3,
	opCreate, 1, typeComm, 2, 0, 4,
	opTrack, cG0, 0, 0,
	opTrack, cG0, 1, 1,
	opReceipt, 1, nOne, cG0, 0,
	opReceipt, 2, nOne, cG0, 0,
	opTrack, cC01, 0, 0,
	opReceipt, 1, nOne, cC01, 0,
	opCheck, 0,
}

// hostile decodes the arguments of one hostile call: call bytes choose the
// method and the shape of each argument, s1 and s2 give raw strings, n a
// raw number.
type hostile struct {
	d      *decoder
	s1, s2 string
	n      int
	huge   bool // no more 1 MiB IDs: one was handed out, or a list is being built
}

// id returns an ID: one of pool (from a zero byte on), the raw strings,
// or a hostile one (empty, the longest valid, one byte over, 255 and 256
// bytes, 1 MiB, NUL bytes, not UTF-8).
func (in *hostile) id(pool []string) string {
	b := in.d.byte()
	switch b % 14 {
	case 0, 1, 2:
		return pool[int(b/14)%len(pool)]
	case 3:
		return in.s1
	case 4:
		return in.s2
	case 5:
		return ""
	case 6:
		return strings.Repeat("a", rr.DefaultMaxIDLength)
	case 7:
		return strings.Repeat("a", rr.DefaultMaxIDLength+1)
	case 8:
		return strings.Repeat("é", rr.DefaultMaxIDLength) // valid UTF-8, 256 bytes
	case 9:
		return strings.Repeat("b", 255)
	case 10:
		if !in.huge {
			in.huge = true
			return strings.Repeat("x", 1<<20)
		}
		return strings.Repeat("x", 300)
	case 11:
		return pool[int(b/14)%len(pool)] + "\x00"
	case 12:
		return "\x00"
	default:
		return "\xff\xfe" + in.s1
	}
}

// users returns a member list: 0 to 4 IDs, nil, or 1,000 (distinct, or one
// repeated).
func (in *hostile) users() []string {
	in.huge = true // no 1 MiB IDs in lists: the trace would hold each copy
	switch b := in.d.byte() % 8; {
	case b <= 4:
		out := make([]string, b)
		for i := range out {
			out[i] = in.id(users)
		}
		return out
	case b == 5:
		out := make([]string, 1000)
		for i := range out {
			out[i] = fmt.Sprintf("h%d", i)
		}
		return out
	case b == 6:
		u := in.id(users)
		out := make([]string, 1000)
		for i := range out {
			out[i] = u
		}
		return out
	default:
		return nil
	}
}

// conv returns a conversation: a group, a C2C pair (either order), or one
// of an arbitrary type with arbitrary fields.
func (in *hostile) conv() rr.Conversation {
	switch in.d.byte() % 6 {
	case 0:
		return rr.Group(in.id(groupIDs))
	case 1:
		return rr.C2C(in.id(users), in.id(users))
	case 2:
		return rr.Conversation{Type: rr.ConversationType(in.d.byte()), GroupID: in.id(groupIDs), Users: [2]string{in.id(users), in.id(users)}}
	case 3:
		return rr.Group(groupIDs[0])
	case 4:
		return rr.C2C(users[0], users[1])
	default:
		return rr.Conversation{Type: rr.ConversationC2C, Users: [2]string{users[1], users[0]}}
	}
}

// refs returns a message list: 1, 2, empty, the limits and one over them
// (30, 31, 100, 101), 1,000, or a raw length; mostly of one conversation,
// with entries of another, duplicates, and hostile IDs.
func (in *hostile) refs() []rr.MessageRef {
	var n int
	switch b := in.d.byte() % 10; b {
	case 0:
		n = 1
	case 1:
		n = 2
	case 2:
		n = 0
	case 3:
		n = 30
	case 4:
		n = 31
	case 5:
		n = 100
	case 6:
		n = 101
	case 7:
		n = 1000
	case 8:
		n = 29
	default:
		n = int(uint(in.n) % 40)
	}
	in.huge = true // no 1 MiB IDs in lists: the trace would hold each copy
	conv := in.conv()
	out := make([]rr.MessageRef, n)
	for i := range out {
		switch b := in.d.byte() % 8; {
		case b < 4:
			out[i] = rr.MessageRef{Conversation: conv, ID: in.id(msgIDs)}
		case b == 4:
			out[i] = rr.MessageRef{Conversation: in.conv(), ID: in.id(msgIDs)}
		case b == 5 && i > 0:
			out[i] = out[i-1] // a duplicate
		default:
			out[i] = rr.MessageRef{Conversation: conv, ID: msgIDs[int(b)%len(msgIDs)]}
		}
	}
	return out
}

func (in *hostile) caller() rr.Caller {
	switch in.d.byte() % 4 {
	case 0:
		return rr.AsAdmin()
	case 1:
		return rr.AsUser(in.id(users))
	case 2:
		return rr.Caller{UserID: in.id(users), Admin: true}
	default:
		return rr.AsUser(in.s1)
	}
}

// groupType returns a valid type (from a zero byte on), an arbitrary one
// or 0.
func (in *hostile) groupType() rr.GroupType {
	switch b := in.d.byte(); b % 3 {
	case 0:
		return rr.GroupType(1 + int(b/3)%5)
	case 1:
		return rr.GroupType(in.d.byte())
	default:
		return 0
	}
}

// count returns a page size: a valid one (from a zero byte on), 0, -1,
// the limit and one over it, the extremes of int, or a raw number.
func (in *hostile) count() int {
	switch in.d.byte() % 8 {
	case 0:
		return 1 + int(uint(in.n)%3)
	case 1:
		return 0
	case 2:
		return -1
	case 3:
		return rr.DefaultMaxPageSize
	case 4:
		return rr.DefaultMaxPageSize + 1
	case 5:
		return math.MaxInt
	case 6:
		return math.MinInt
	default:
		return in.n
	}
}

func (in *hostile) filter() rr.MemberFilter {
	b := in.d.byte()
	if b%3 == 0 {
		return rr.MemberFilter(b / 3 % 2)
	}
	return rr.MemberFilter(in.d.byte())
}

func (in *hostile) cursor(pool []string) string {
	b := in.d.byte()
	switch {
	case b%4 == 0 || len(pool) == 0:
		return ""
	case b%4 == 1:
		return in.s2
	case b%4 == 2:
		return pool[int(b/4)%len(pool)]
	default:
		return pool[int(b/4)%len(pool)] + in.s1
	}
}

// Methods FuzzInput calls, the first call byte modulo inputMethods.
const (
	imCreate = iota
	imAdd
	imRemove
	imDismiss
	imGetGroup
	imTrack
	imReceipt
	imCounts
	imPage
	imDelete
	imTypes
	imOpen
	// Beyond the seed (appended, so that older inputs pick what they did).
	imDeliver
	imMark
	imGetMark
	imPrivate
	imReadState
	imReadTimes
	inputMethods
)

// FuzzInput calls every public method of the engine with hostile
// arguments (empty, oversized, non-UTF-8 and NUL-holding IDs; counts of 0,
// negative, at and over the limit; lists of 0, 29 to 31, 100, 101 and 1,000
// messages; mixed conversations, duplicates, unknown conversation and group
// types and filters; forged cursors) on an engine holding some state. Each
// call must answer as the model says: the error of the expected kind and
// code, an *Error whose message has the package prefix, never a panic.
// A call that fails as a whole must leave the store byte for byte as it
// was; afterwards the whole state must match the model and pass
// Engine.Check.
func FuzzInput(f *testing.F) {
	for _, c := range []struct {
		call   []byte
		s1, s2 string
		n      int
	}{
		{[]byte{imCreate, 3, 0, 2, 0, 14}, "g9", "", 0},                          // a new group: success
		{[]byte{imCreate, 5}, "", "", 0},                                         // empty group ID
		{[]byte{imCreate, 0, 0, 0}, "", "", 0},                                   // g0 exists
		{[]byte{imCreate, 3, 1, 9}, "g9", "", 0},                                 // group type 9
		{[]byte{imCreate, 3, 0, 5}, "big", "", 0},                                // 1,000 members
		{[]byte{imCreate, 10, 0, 0}, "", "", 0},                                  // a 1 MiB group ID
		{[]byte{imCreate, 3, 0, 1, 11}, "g9", "", 0},                             // a member ID holding NUL
		{[]byte{imAdd, 0, 6, 10}, "", "", 0},                                     // 1,000 copies of an ID too long
		{[]byte{imAdd, 0, 2, 3, 12}, "u9", "", 0},                                // a NUL member
		{[]byte{imRemove, 0, 1, 13}, "\xc3", "", 0},                              // not UTF-8
		{[]byte{imDismiss, 8}, "", "", 0},                                        // 256 bytes of é
		{[]byte{imDismiss, 3}, "nope", "", 0},                                    // no such group
		{[]byte{imGetGroup, 6}, "", "", 0},                                       // the longest valid ID
		{[]byte{imGetGroup, 7}, "", "", 0},                                       // one byte over
		{[]byte{imTrack, 2, 3, 0, 0, 0, 0, 0}, "", "", 0},                        // conversation type 3
		{[]byte{imTrack, 1, 0, 0, 0, 0}, "", "", 0},                              // C2C with oneself
		{[]byte{imTrack, 0, 0, 12, 0}, "", "", 0},                                // message ID "\x00"
		{[]byte{imTrack, 0, 14, 0, 0}, "", "", 0},                                // a Community group: type disabled
		{[]byte{imTrack, 0, 0, 14, 28}, "", "", 0},                               // m1 tracked by another sender
		{[]byte{imReceipt, 42, 0, 0, 0, 0}, "", "", 0},                           // u3 reads m0: recorded
		{[]byte{imReceipt, 14, 4, 0}, "", "", 0},                                 // 31 messages
		{[]byte{imReceipt, 14, 7, 0}, "", "", 0},                                 // 1,000 messages
		{[]byte{imReceipt, 14, 2, 0}, "", "", 0},                                 // none
		{[]byte{imReceipt, 28, 1, 0, 0, 0, 0, 4, 4, 0}, "", "", 0},               // mixed conversations
		{[]byte{imReceipt, 28, 1, 0, 0, 0, 0, 5}, "", "", 0},                     // a duplicate
		{[]byte{imReceipt, 12, 0, 0, 0, 0}, "", "", 0},                           // reader "\x00"
		{[]byte{imCounts, 0, 6, 0}, "", "", 0},                                   // 101 messages
		{[]byte{imCounts, 0, 5, 0}, "", "", 0},                                   // 100 messages
		{[]byte{imCounts, 1, 5, 5, 0}, "", "", 0},                                // caller ""
		{[]byte{imPage, 0, 0, 0, 0, 0, 0, 0}, "", "", 0},                         // a first page
		{[]byte{imPage, 0, 0, 0, 0, 0, 5, 0}, "", "", 0},                         // count MaxInt
		{[]byte{imPage, 0, 0, 0, 0, 0, 6, 0}, "", "", 0},                         // count MinInt
		{[]byte{imPage, 0, 0, 0, 0, 0, 0, 2}, "", "", 0},                         // a real cursor
		{[]byte{imPage, 0, 0, 0, 0, 3, 0, 2}, "", "", 0},                         // a cursor of the other filter
		{[]byte{imPage, 0, 0, 0, 0, 3, 0, 3}, "=", "", 0},                        // a real cursor with a suffix
		{[]byte{imPage, 0, 0, 0, 0, 0, 0, 1}, "", "AQEAAAABLhjgQWvho0KFiAAD", 0}, // a forged cursor
		{[]byte{imPage, 0, 0, 0, 0, 1, 7, 0, 0}, "", "", 0},                      // filter 7
		{[]byte{imPage, 0, 4, 0, 0, 0, 0}, "", "", 0},                            // a C2C message
		{[]byte{imDelete, 2, 7, 0, 0, 0, 0}, "", "", 0},                          // conversation type 7
		{[]byte{imDelete, 0, 0, 12}, "", "", 0},                                  // message ID "\x00"
		{[]byte{imDelete, 0, 0, 0}, "", "", 0},                                   // delete m0: success
		{[]byte{imTypes, 3, 0, 1, 6, 2}, "", "", 0},                              // group types 6 and 0
		{[]byte{imTypes, 2, 0, 9}, "", "", 0},                                    // Work and Community
		{[]byte{imOpen, 0}, "", "", 0},                                           // max ID length 0
		{[]byte{imOpen, 0}, "", "", 256},                                         // max ID length 256
		{[]byte{imOpen, 3}, "", "", -1},                                          // max query messages -1
		{[]byte{imOpen, 6, 1, 9}, "", "", 0},                                     // group type 9
		{[]byte{imOpen, 9}, "", "", 0},                                           // no clock
		{[]byte{imOpen, 1}, "", "", 100},                                         // a valid page size
		{[]byte{imDeliver, 42, 0, 0, 0, 0}, "", "", 0},                           // u3 delivers m0: delivered
		{[]byte{imDeliver, 14, 7, 0}, "", "", 0},                                 // 1,000 messages
		{[]byte{imDeliver, 12, 0, 0, 0, 0}, "", "", 0},                           // reader "\x00"
		{[]byte{imMark, 42, 3, 0, 0, 0}, "", "", 0},                              // u3 marks g0 at m0
		{[]byte{imMark, 42, 3, 1, 7, 0}, "", "", 0},                              // a thread ID one byte over
		{[]byte{imMark, 42, 3, 0, 1}, "", "", -1},                                // a mark 1 ns before now
		{[]byte{imMark, 42, 3, 0, 2, 0}, "", "", 5},                              // a message and a time
		{[]byte{imMark, 42, 3, 0, 3}, "", "", 0},                                 // neither
		{[]byte{imMark, 42, 1, 0, 0, 0, 0, 1}, "", "", 0},                        // C2C of u3 with u0: not u3's
		{[]byte{imGetMark, 42, 3, 12}, "", "", 0},                                // thread "\x00"
		{[]byte{imPrivate, 3, 1}, "u9", "", 0},                                   // u9 private
		{[]byte{imPrivate, 10, 1}, "", "", 0},                                    // a 1 MiB user
		{[]byte{imReadState, 14, 0, 0, 0, 0}, "", "", 0},                         // u1's state of m0
		{[]byte{imReadState, 14, 6, 0}, "", "", 0},                               // 101 messages
		{[]byte{imReadTimes, 0, 3, 0, 2, 0, 0, 0}, "", "", 0},                    // two users of m0
		{[]byte{imReadTimes, 0, 3, 0, 5}, "", "", 0},                             // 1,000 users
		{[]byte{imReadTimes, 1, 0, 3, 0, 0, 0, 7}, "", "", 0},                    // no users
	} {
		f.Add(c.call, c.s1, c.s2, c.n)
	}
	f.Fuzz(func(t *testing.T, call []byte, s1, s2 string, n int) {
		runHostile(t, call, s1, s2, n)
	})
}

type kv struct{ k, v string }

func snapshot(tb testing.TB, h *harness) []kv {
	var out []kv
	if err := h.targets[0].store().Scan(h.ctx, nil, nil, func(k, v []byte) bool {
		out = append(out, kv{string(k), string(v)})
		return true
	}); err != nil {
		tb.Fatalf("scan: %v", err)
	}
	return out
}

// checkErr checks that err, if any, is an *Error with a code and the
// package prefix.
func checkErr(tb testing.TB, what string, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	var e *rr.Error
	if !errors.As(err, &e) || e.Code == 0 || !strings.HasPrefix(e.Message, "readreceipt: ") {
		tb.Fatalf("%s: error %q is not an *readreceipt.Error with a code and the package prefix", what, err)
	}
}

func runHostile(t *testing.T, call []byte, s1, s2 string, n int) {
	h := newHarness(t, config{defaultLimits: true}, targetSpec{backend: "mem"})
	defer h.closeQuiet()
	h.runOps(&decoder{b: inputHistory[1:]})
	in := &hostile{d: &decoder{b: call}, s1: s1, s2: s2, n: n}
	fixture := len(h.trace)
	before := snapshot(t, h)
	var err error
	switch method := in.d.byte() % inputMethods; method {
	case imCreate:
		err = h.applyCreate(in.id(groupIDs), in.groupType(), in.users())
	case imAdd, imRemove:
		err = h.applyMembers(in.id(groupIDs), in.users(), method == imAdd)
	case imDismiss:
		err = h.applyDismiss(in.id(groupIDs))
	case imGetGroup:
		gid := in.id(groupIDs)
		h.logf("get-group %q", short(gid))
		err = h.compareGroup(gid)
	case imTrack:
		conv := in.conv()
		err = h.applyTrack(rr.Message{Conversation: conv, ID: in.id(msgIDs), Sender: in.id(users)})
	case imReceipt:
		var res []rr.ReceiptResult
		res, err = h.applyReceipt(in.id(users), in.refs())
		for i, r := range res {
			checkErr(t, fmt.Sprintf("SendMessageReadReceipt result %d", i), r.Err)
		}
	case imCounts:
		caller := in.caller()
		refs := in.refs()
		h.logf("counts caller=%q (%d messages)", short(caller.UserID), len(refs))
		var infos []rr.ReceiptInfo
		infos, err = h.compareCounts("GetMessageReadReceiptList", caller, refs)
		for i, r := range infos {
			checkErr(t, fmt.Sprintf("GetMessageReadReceiptList info %d", i), r.Err)
		}
	case imPage:
		caller := in.caller()
		req := rr.MemberListRequest{Message: rr.MessageRef{Conversation: in.conv(), ID: in.id(msgIDs)}}
		req.Filter, req.Count, req.Cursor = in.filter(), in.count(), in.cursor(h.targets[0].cursors)
		h.logf("page caller=%q %s id=%q filter=%d count=%d cursor=%q", short(caller.UserID), fmtConv(req.Message.Conversation), short(req.Message.ID), req.Filter, req.Count, short(req.Cursor))
		var p rr.MemberPage
		p, err = h.targets[0].eng.GetGroupMessageReadMemberList(h.ctx, caller, req)
		exp := h.model.Page(caller, req)
		h.expect("GetGroupMessageReadMemberList", exp.Outcome, []error{err})
		if err == nil {
			h.matchPage(h.targets[0], p, req, exp)
		}
	case imDelete:
		err = h.applyDelete(rr.MessageRef{Conversation: in.conv(), ID: in.id(msgIDs)})
	case imTypes:
		types := make([]rr.GroupType, in.d.byte()%4)
		for i := range types {
			types[i] = in.groupType()
		}
		err = h.applyTypes(types)
	case imOpen:
		hostileOpen(t, in)
	case imDeliver:
		reader, refs := in.id(users), in.refs()
		h.logf("deliver reader=%q (%d messages)", short(reader), len(refs))
		var res []rr.ReceiptResult
		res, err = h.targets[0].eng.SendMessageDeliveryReceipt(h.ctx, reader, refs)
		o, want, wantEvents := h.model.Deliver(reader, refs)
		h.expect("SendMessageDeliveryReceipt", o, []error{err})
		h.checkReceipt(h.targets[0], "SendMessageDeliveryReceipt", true, res, err, want, wantEvents)
		h.checkOwn(h.targets[0], "SendMessageDeliveryReceipt", nil)
		for i, r := range res {
			checkErr(t, fmt.Sprintf("SendMessageDeliveryReceipt result %d", i), r.Err)
		}
	case imMark:
		reader := in.id(users)
		req := rr.MarkRequest{Conversation: in.conv()}
		if in.d.byte()%2 == 1 {
			req.Thread = in.id(threads)
		}
		switch in.d.byte() % 4 {
		case 0:
			req.MessageID = in.id(msgIDs)
		case 1:
			req.Time = time.Unix(0, h.model.Now).Add(time.Duration(in.n))
		case 2:
			req.MessageID, req.Time = in.id(msgIDs), time.Unix(0, int64(in.n))
		}
		err = h.applyMark(reader, req)
	case imGetMark:
		reader, conv, thread := in.id(users), in.conv(), in.id(threads)
		_, _, err = h.targets[0].eng.GetReadMark(h.ctx, reader, conv, thread)
		h.compareMark(reader, conv, thread)
	case imPrivate:
		u := in.id(users)
		on := in.d.byte()%2 == 1
		err = h.targets[0].eng.SetReceiptsPrivate(h.ctx, u, on)
		h.expect("SetReceiptsPrivate", h.model.SetPrivate(u, on), []error{err})
		h.comparePrivate(u)
	case imReadState:
		user, refs := in.id(users), in.refs()
		var states []rr.ReadState
		states, err = h.targets[0].eng.GetMessageReadState(h.ctx, user, refs)
		h.compareReadState(user, refs)
		for i, st := range states {
			checkErr(t, fmt.Sprintf("GetMessageReadState state %d", i), st.Err)
		}
	case imReadTimes:
		caller, ref, us := in.caller(), rr.MessageRef{Conversation: in.conv(), ID: in.id(msgIDs)}, in.users()
		_, err = h.targets[0].eng.GetMessageReadTimes(h.ctx, caller, ref, us)
		h.compareReadTimes(caller, ref, us)
	}
	if testing.Verbose() {
		t.Logf("%s", short(strings.Join(h.trace[fixture:], "; ")))
	}
	checkErr(t, "the call", err)
	if err != nil {
		if after := snapshot(t, h); !slices.Equal(before, after) {
			h.fail("a call that failed with %v changed the store: %d keys before, %d after", err, len(before), len(after))
		}
	}
	h.finish()
}

// short shortens an argument for the trace.
func short(s string) string {
	if len(s) > 160 {
		return fmt.Sprintf("%q...(%d bytes)", s[:160], len(s))
	}
	return s
}

// hostileOpen opens an engine on an empty store with one option set to a
// hostile value: it must fail exactly when the value is out of range, and
// write nothing then.
func hostileOpen(t *testing.T, in *hostile) {
	st := memstore.New()
	var opt rr.Option
	var bad bool
	n := in.n
	switch in.d.byte() % 10 {
	case 0:
		opt, bad = rr.WithMaxIDLength(n), n <= 0 || n > 255
	case 1:
		opt, bad = rr.WithMaxPageSize(n), n <= 0
	case 2:
		opt, bad = rr.WithMaxMessagesPerCall(n), n <= 0
	case 3:
		opt, bad = rr.WithMaxQueryMessages(n), n <= 0
	case 4:
		opt, bad = rr.WithRetention(time.Duration(n)), n < 0
	case 5:
		opt, bad = rr.WithCacheBytes(int64(n)), n <= 0
	case 6:
		typ := in.groupType()
		opt, bad = rr.WithGroupTypes(typ), typ < rr.GroupWork || typ > rr.GroupAVChatRoom
	case 7:
		a := rr.QueryAccess(in.d.byte())
		opt, bad = rr.WithQueryAccess(a), a != rr.AccessSender && a != rr.AccessRecipients
	case 8:
		opt, bad = rr.WithSweepInterval(time.Duration(n)), n < 0
	default:
		opt, bad = rr.WithClock(nil), true
	}
	e, err := rr.Open(st, opt, rr.WithSweepInterval(0))
	if bad != (err != nil) {
		t.Fatalf("Open with a hostile option (value %d): got error %v, want error: %v", n, err, bad)
	}
	if err != nil {
		if st.Len() != 0 {
			t.Fatalf("Open failed with %v but wrote %d keys", err, st.Len())
		}
		return
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestOpenOptionErrorsHaveCodes checks what the package documentation
// promises ("Every error is an *Error with a numeric code") for the errors
// of Open: an option out of range should be ErrInvalidParameter.
func TestOpenOptionErrorsHaveCodes(t *testing.T) {
	for name, opt := range map[string]rr.Option{
		"WithMaxIDLength(0)":         rr.WithMaxIDLength(0),
		"WithMaxIDLength(256)":       rr.WithMaxIDLength(256),
		"WithMaxPageSize(0)":         rr.WithMaxPageSize(0),
		"WithMaxMessagesPerCall(-1)": rr.WithMaxMessagesPerCall(-1),
		"WithMaxQueryMessages(0)":    rr.WithMaxQueryMessages(0),
		"WithRetention(-1)":          rr.WithRetention(-1),
		"WithSweepInterval(-1)":      rr.WithSweepInterval(-1),
		"WithCacheBytes(0)":          rr.WithCacheBytes(0),
		"WithGroupTypes(9)":          rr.WithGroupTypes(9),
		"WithQueryAccess(7)":         rr.WithQueryAccess(7),
		"WithClock(nil)":             rr.WithClock(nil),
	} {
		_, err := rr.Open(memstore.New(), opt)
		if !SameKind(err, rr.ErrInvalidParameter) {
			t.Errorf("Open(%s): got %v (%T), want an *Error with code %d", name, err, err, rr.CodeInvalidParameter)
		}
	}
}
