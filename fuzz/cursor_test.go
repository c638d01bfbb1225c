package fuzz

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"

	rr "github.com/readreceipt/readreceipt"
)

// The cursor fixture: two engines (each on its own memstore, so each with
// its own cursor secret) that ran the same history, every cursor either
// handed out, and what each cursor means.
var cursorFixture struct {
	once sync.Once
	h    *harness
	// cursors[i] maps every cursor engine i handed out to its meaning.
	cursors [2]map[string]CursorInfo
	pool    []string // every cursor of both engines, in the order made
	lists   []cursorList
}

// cursorList is one member list a cursor can continue.
type cursorList struct {
	ref    rr.MessageRef
	filter rr.MemberFilter
}

// cursorHistory builds two groups with overlapping members (so that one
// user has different member indexes in each), four group messages (one
// message ID in both groups), receipts on each so that both lists of each
// message have members, full walks with pages of one and of three members,
// then a message deleted and tracked again a second later: the cursors of
// its first life must not work on the second.
var cursorHistory = []byte{0x02, // retention: forever
	opCreate, 0, typeWork, 4, 0, 1, 2, 3,
	opAdd, 0, 3, 4, 5, 6,
	opCreate, 1, typeWork, 4, 7, 6, 5, 3,
	opAdd, 1, 1, 0,
	opTrack, cG0, 0, 0,
	opTrack, cG0, 1, 1,
	opTrack, cG1, 0, 7,
	opTrack, cG0, 3, 2,
	opReceipt, 1, nOne, cG0, 0,
	opReceipt, 2, nOne, cG0, 0,
	opReceipt, 4, nOne, cG0, 0,
	opReceipt, 0, nOne, cG0, 1,
	opReceipt, 5, nOne, cG0, 1,
	opReceipt, 6, nOne, cG1, 0,
	opReceipt, 3, nOne, cG1, 0,
	opReceipt, 1, nOne, cG0, 3,
	opReceipt, 0, nOne, cG0, 3,
	opReceipt, 5, nOne, cG0, 3,
	opCheck, 0,
	opCheck, 1,
	opDelete, cG0, 3,
	opAdvance, 1,
	opTrack, cG0, 3, 2,
	opReceipt, 4, nOne, cG0, 3,
	opReceipt, 6, nOne, cG0, 3,
	opCheck, 0,
	opCheck, 1,
}

func buildCursorFixture(tb testing.TB) {
	f := &cursorFixture
	h := newHarness(tb, decodeConfig(cursorHistory[0]), targetSpec{backend: "mem"}, targetSpec{backend: "mem"})
	for _, t := range h.targets {
		t.keepCursors = true
	}
	h.runOps(&decoder{b: cursorHistory[1:]})
	for i, t := range h.targets {
		f.cursors[i] = map[string]CursorInfo{}
		for _, c := range t.cursors {
			f.cursors[i][c] = h.model.Cursors[c]
		}
	}
	for i := range h.targets[0].cursors {
		f.pool = append(f.pool, h.targets[0].cursors[i], h.targets[1].cursors[i])
	}
	for _, msg := range h.model.LiveMessages() {
		for _, flt := range []rr.MemberFilter{rr.FilterRead, rr.FilterUnread} {
			f.lists = append(f.lists, cursorList{rr.MessageRef{Conversation: msg.Key.Conv, ID: msg.Key.ID}, flt})
		}
	}
	if len(f.lists) != 8 || len(f.pool) < 40 {
		tb.Fatalf("cursor fixture: %d lists, %d cursors", len(f.lists), len(f.pool))
	}
	f.h = h
}

// Cursor mutations, the mode argument of FuzzCursor modulo cursorModes.
const (
	cmRaw      = iota // the data as the cursor
	cmAsIs            // the source cursor, unchanged
	cmFlip            // bits of the source flipped: data holds (bit, position) pairs
	cmTruncate        // the source cut to data[0] bytes
	cmAppend          // data appended to the source
	cmBase64          // the source's bytes in another base64 alphabet or padding, or with a line break
	cmXor             // the source's decoded bytes XORed with data, re-encoded
	cmPosition        // the source's position field set from data, MAC kept
	cmFilter          // the source's filter byte set to data[0], MAC kept
	cmSplice          // the first half of the source, the second of another cursor
	cursorModes
)

// mutateCursor applies one of the mutations to src.
func mutateCursor(mode byte, src string, data []byte, pool []string) string {
	at := func(i int) byte {
		if len(data) == 0 {
			return 0
		}
		return data[i%len(data)]
	}
	raw, err := base64.RawURLEncoding.DecodeString(src)
	if err != nil {
		raw = []byte(src)
	}
	switch mode % cursorModes {
	case cmRaw:
		return string(data)
	case cmAsIs:
		return src
	case cmFlip:
		b := []byte(src)
		for i := 0; i+1 < len(data) && len(b) > 0; i += 2 {
			b[int(data[i+1])%len(b)] ^= 1 << (data[i] % 8)
		}
		if len(data) < 2 && len(b) > 0 {
			b[0] ^= 1
		}
		return string(b)
	case cmTruncate:
		return src[:int(at(0))%max(1, len(src))]
	case cmAppend:
		if len(data) == 0 {
			return src + "A"
		}
		return src + string(data)
	case cmBase64:
		switch at(0) % 5 {
		case 0:
			return base64.StdEncoding.EncodeToString(raw)
		case 1:
			return base64.URLEncoding.EncodeToString(raw)
		case 2:
			return base64.RawStdEncoding.EncodeToString(raw)
		case 3:
			i := int(at(1)) % (len(src) + 1)
			return src[:i] + "\n" + src[i:]
		default:
			// A line break in place of one character: the length stays.
			i := int(at(1)) % max(1, len(src))
			return src[:i] + "\r" + src[min(i+1, len(src)):]
		}
	case cmXor:
		b := slices.Clone(raw)
		for i := range b {
			b[i] ^= at(i)
		}
		if len(data) == 0 && len(b) > 0 {
			b[len(b)-1] ^= 0x80
		}
		return base64.RawURLEncoding.EncodeToString(b)
	case cmPosition:
		b := slices.Clone(raw)
		if len(b) >= 6 {
			var p [4]byte
			for i := range p {
				p[i] = at(i)
			}
			if binary.BigEndian.Uint32(p[:]) == binary.BigEndian.Uint32(b[2:6]) {
				p[3]++
			}
			copy(b[2:6], p[:])
		}
		return base64.RawURLEncoding.EncodeToString(b)
	case cmFilter:
		b := slices.Clone(raw)
		if len(b) >= 2 {
			b[1] = at(0)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	default: // cmSplice
		other := pool[int(at(0))%len(pool)]
		return src[:len(src)/2] + other[len(other)/2:]
	}
}

// FuzzCursor sends member-page requests with cursors that are real (taken
// from real pages of several messages, both filters, two groups and two
// engines) or mutated (arbitrary strings, bit flips, truncations, other
// base64 spellings, forged fields, splices, another message's or engine's
// cursor). The engine must never panic, must answer ErrInvalidCursor
// (which is also ErrInvalidParameter) for every cursor it did not hand out
// for that message and filter, and must answer a cursor it accepts with
// exactly the members of that list from that point on, per the model.
func FuzzCursor(f *testing.F) {
	f.Add(byte(0), byte(0), byte(0), byte(cmAsIs), byte(0), []byte{})
	f.Add(byte(0), byte(1), byte(3), byte(cmAsIs), byte(1), []byte{})
	f.Add(byte(3), byte(0), byte(7), byte(cmAsIs), byte(2), []byte{})
	f.Add(byte(0), byte(0), byte(0), byte(cmRaw), byte(0), []byte("AQEAAAABLhjgQWvho0KFiAAD"))
	f.Add(byte(1), byte(0), byte(5), byte(cmFlip), byte(0), []byte{3, 10})
	f.Add(byte(2), byte(1), byte(9), byte(cmTruncate), byte(0), []byte{23})
	f.Add(byte(4), byte(0), byte(2), byte(cmAppend), byte(0), []byte("=="))
	f.Add(byte(5), byte(0), byte(4), byte(cmBase64), byte(0), []byte{0})
	f.Add(byte(5), byte(0), byte(4), byte(cmBase64), byte(0), []byte{4, 7})
	f.Add(byte(6), byte(1), byte(11), byte(cmXor), byte(0), []byte{0, 0, 0, 0, 0, 0, 1})
	f.Add(byte(7), byte(0), byte(1), byte(cmPosition), byte(2), []byte{0, 0, 0, 1})
	f.Add(byte(0), byte(0), byte(0), byte(cmFilter), byte(0), []byte{1})
	f.Add(byte(1), byte(1), byte(6), byte(cmSplice), byte(0), []byte{9})
	f.Add(byte(0), byte(0), byte(0), byte(cmRaw), byte(0), []byte("\x00\xff\xfe"))
	f.Fuzz(func(t *testing.T, list, engine, source, mode, count byte, data []byte) {
		fx := &cursorFixture
		fx.once.Do(func() { buildCursorFixture(t) })
		if fx.h == nil {
			t.Fatal("cursor fixture failed to build")
		}
		l := fx.lists[int(list)%len(fx.lists)]
		src := fx.pool[int(source)%len(fx.pool)]
		checkCursor(t, int(engine%2), l, mutateCursor(mode, src, data, fx.pool), 1+int(count)%fx.h.model.MaxPage)
	})
}

// checkCursor asks engine ei of the fixture for a page of list l with
// cursor and checks the answer against the model. It reports whether the
// engine accepted the cursor.
func checkCursor(t *testing.T, ei int, l cursorList, cursor string, count int) bool {
	fx := &cursorFixture
	h := fx.h
	h.tb = t
	tgt := h.targets[ei]
	req := rr.MemberListRequest{Message: l.ref, Filter: l.filter, Cursor: cursor, Count: count}
	p, err := tgt.eng.GetGroupMessageReadMemberList(h.ctx, rr.AsAdmin(), req)

	// What the model expects, knowing only this engine's cursors.
	all := h.model.Cursors
	h.model.Cursors = fx.cursors[ei]
	exp := h.model.Page(rr.AsAdmin(), req)
	h.model.Cursors = all

	if err != nil {
		var e *rr.Error
		if !errors.As(err, &e) || e.Code != rr.CodeInvalidCursor || !errors.Is(err, rr.ErrInvalidCursor) || !errors.Is(err, rr.ErrInvalidParameter) {
			t.Fatalf("engine %d, %s/%q filter %d, cursor %q: got error %v, want ErrInvalidCursor (code %d, also ErrInvalidParameter)",
				ei, fmtConv(l.ref.Conversation), l.ref.ID, l.filter, cursor, err, rr.CodeInvalidCursor)
		}
	}
	if msg := exp.Mismatch(err); msg != "" {
		info, known := fx.cursors[ei][cursor]
		t.Fatalf("engine %d, %s/%q filter %d, cursor %q (this engine made it: %v %+v): %s",
			ei, fmtConv(l.ref.Conversation), l.ref.ID, l.filter, cursor, known, info, msg)
	}
	if err == nil {
		h.matchPage(tgt, p, req, exp)
	}
	return err == nil
}

// TestCursorsWorkOnlyWhereMade tries every cursor of the fixture on every
// list of both engines with every page size: a cursor works on the list and
// the engine it was made for, and nowhere else (not on the other filter,
// another message, the same message ID in another group, the message's
// next life, or the other engine).
func TestCursorsWorkOnlyWhereMade(t *testing.T) {
	fx := &cursorFixture
	fx.once.Do(func() { buildCursorFixture(t) })
	if fx.h == nil {
		t.Fatal("cursor fixture failed to build")
	}
	stale := 0
	for ei := range 2 {
		accepted, want := 0, 0
		for _, c := range fx.pool {
			info, mine := fx.cursors[ei][c]
			if mine && fx.h.model.Live(info.Key).Seq != info.Seq {
				stale++
			}
			for _, l := range fx.lists {
				ok := mine && info.Key == (MsgKey{Conv: l.ref.Conversation, ID: l.ref.ID}) && info.Filter == l.filter &&
					fx.h.model.Live(info.Key).Seq == info.Seq
				for count := 1; count <= fx.h.model.MaxPage; count++ {
					if ok {
						want++
					}
					if checkCursor(t, ei, l, c, count) {
						accepted++
					}
				}
			}
		}
		if accepted != want || want == 0 {
			t.Errorf("engine %d accepted %d cursor uses, want %d", ei, accepted, want)
		}
	}
	if stale == 0 {
		t.Error("the fixture holds no cursor of a message's earlier life")
	}
}

// TestCursorOfEarlierLifeRejected: a message deleted and tracked again
// under the same ID is another message, with other recipients; a cursor of
// its first life must not page through its second, even when both lives
// were tracked at the same clock reading (fuzz/FINDINGS.md, finding 2).
func TestCursorOfEarlierLifeRejected(t *testing.T) {
	h := newHarness(t, config{}, targetSpec{backend: "mem"})
	defer h.closeQuiet()
	e := h.targets[0].eng
	ctx := h.ctx
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ref := rr.MessageRef{Conversation: rr.Group("g"), ID: "m"}
	must(e.CreateGroup(ctx, "g", rr.GroupWork, []string{"s", "a", "b", "c"}))
	must(e.TrackMessage(ctx, rr.Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "s"}))
	p, err := e.GetGroupMessageReadMemberList(ctx, rr.AsAdmin(), rr.MemberListRequest{Message: ref, Filter: rr.FilterUnread, Count: 1})
	must(err)
	// The group is dismissed and created again with other members, and the
	// message ID tracked again, all at the same clock reading.
	must(e.DismissGroup(ctx, "g"))
	must(e.CreateGroup(ctx, "g", rr.GroupWork, []string{"s", "x", "y", "z"}))
	must(e.TrackMessage(ctx, rr.Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "s"}))
	p2, err := e.GetGroupMessageReadMemberList(ctx, rr.AsAdmin(), rr.MemberListRequest{Message: ref, Filter: rr.FilterUnread, Count: 1, Cursor: p.Cursor})
	if !SameKind(err, rr.ErrInvalidCursor) {
		t.Fatalf("a cursor of the message's earlier life: got page %+v, err %v; want ErrInvalidCursor", p2, err)
	}
}
