package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Tests of the endpoints of the receipt model beyond the seed
// (api_model.go): delivery, read state, read times, marks, privacy.

type deliveryInfos struct {
	MessageList []struct {
		ID              string `json:"ID"`
		ReadReceiptInfo struct {
			ReadCount        int  `json:"readCount"`
			UnreadCount      int  `json:"unreadCount"`
			IsPeerRead       bool `json:"isPeerRead"`
			DeliveredCount   int  `json:"deliveredCount"`
			UndeliveredCount int  `json:"undeliveredCount"`
			IsPeerDelivered  bool `json:"isPeerDelivered"`
		} `json:"readReceiptInfo"`
		Code int `json:"code"`
	} `json:"messageList"`
}

// counts returns read, delivered and undelivered counts of each message.
func (d deliveryInfos) counts() [][3]int {
	var out [][3]int
	for _, m := range d.MessageList {
		i := m.ReadReceiptInfo
		out = append(out, [3]int{i.ReadCount, i.DeliveredCount, i.UndeliveredCount})
	}
	return out
}

type fullPage struct {
	memberPage
	DeliveredUserIDList   []string `json:"deliveredUserIDList"`
	UndeliveredUserIDList []string `json:"undeliveredUserIDList"`
	ReadTimeList          []int64  `json:"readTimeList"`
}

func (c *apiClient) page(m map[string]any, filter int) fullPage {
	c.t.Helper()
	var p fullPage
	c.ok("POST", "/v1/receipts/members", map[string]any{"message": m, "filter": filter, "count": 100}, &p)
	return p
}

func recorded(rr receiptResults) []bool {
	var out []bool
	for _, r := range rr.MessageList {
		out = append(out, r.Recorded)
	}
	return out
}

func TestDeliveryReceipts(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol", "dave"}}, nil)
	m1 := gmsg("g", "m1", "alice")
	f.admin.ok("POST", "/v1/messages", tracked(m1), nil)
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c1")), nil)
	aliceConn := dialEvents(t, f.base, f.s.mintToken("alice", time.Hour), true, nil)
	waitConns(t, f.s, "alice", 1)

	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	var rr receiptResults
	bob.ok("POST", "/v1/receipts/delivered", list(m1), &rr)
	if !slices.Equal(recorded(rr), []bool{true}) || rr.MessageList[0].Code != 0 {
		t.Fatalf("bob's delivery: %+v", rr)
	}
	ev := readEvent(t, aliceConn)
	if ev.Event != "MESSAGE_DELIVERY_RECEIPT_RECEIVED" || len(ev.Data) != 1 ||
		ev.Data[0] != (eventJSON{GroupID: "g", UserID: "bob", MessageID: "m1", ReadCount: 0, UnreadCount: 3, DeliveredCount: 1, UndeliveredCount: 2}) {
		t.Fatalf("alice's delivery event: %+v", ev)
	}
	bob.ok("POST", "/v1/receipts/delivered", list(m1), &rr)
	if !slices.Equal(recorded(rr), []bool{false}) {
		t.Fatalf("a repeated delivery: %+v", rr)
	}
	var qi deliveryInfos
	alice.ok("POST", "/v1/receipts/query", list(m1), &qi)
	if got := qi.counts(); !slices.Equal(got, [][3]int{{0, 1, 2}}) {
		t.Fatalf("after bob's delivery: read, delivered, undelivered = %v", got)
	}
	// Carol reads without a delivery first: she is delivered too. Bob
	// reads: still two delivered.
	carol.ok("POST", "/v1/receipts", list(m1), nil)
	bob.ok("POST", "/v1/receipts", list(m1), nil)
	// A delivery after the read records nothing.
	carol.ok("POST", "/v1/receipts/delivered", list(m1), &rr)
	if !slices.Equal(recorded(rr), []bool{false}) {
		t.Fatalf("a delivery after a read: %+v", rr)
	}
	alice.ok("POST", "/v1/receipts/query", list(m1), &qi)
	if got := qi.counts(); !slices.Equal(got, [][3]int{{2, 2, 1}}) {
		t.Fatalf("after two reads: read, delivered, undelivered = %v", got)
	}
	for _, want := range []struct {
		name  string
		event string
		item  eventJSON
	}{
		{"carol's read", "MESSAGE_READ_RECEIPT_RECEIVED", eventJSON{GroupID: "g", UserID: "carol", MessageID: "m1", ReadCount: 1, UnreadCount: 2, DeliveredCount: 2, UndeliveredCount: 1}},
		{"bob's read", "MESSAGE_READ_RECEIPT_RECEIVED", eventJSON{GroupID: "g", UserID: "bob", MessageID: "m1", ReadCount: 2, UnreadCount: 1, DeliveredCount: 2, UndeliveredCount: 1}},
	} {
		ev := readEvent(t, aliceConn)
		if ev.Event != want.event || len(ev.Data) != 1 || ev.Data[0] != want.item {
			t.Fatalf("%s: event %+v, want %s %+v", want.name, ev, want.event, want.item)
		}
	}
	if p := alice.page(m1, 2); !slices.Equal(p.DeliveredUserIDList, []string{"bob", "carol"}) || !p.IsCompleted ||
		len(*p.ReadUserIDList)+len(*p.UnreadUserIDList)+len(p.UndeliveredUserIDList) != 0 {
		t.Fatalf("delivered page: %+v", p)
	}
	if p := alice.page(m1, 3); !slices.Equal(p.UndeliveredUserIDList, []string{"dave"}) || len(p.DeliveredUserIDList) != 0 {
		t.Fatalf("undelivered page: %+v", p)
	}

	// C2C: isPeerDelivered before isPeerRead.
	c1 := cmsg("alice", "bob", "c1")
	bob.ok("POST", "/v1/receipts/delivered", list(c1), &rr)
	alice.ok("POST", "/v1/receipts/query", list(c1), &qi)
	if i := qi.MessageList[0].ReadReceiptInfo; !i.IsPeerDelivered || i.IsPeerRead || i.DeliveredCount != 1 {
		t.Fatalf("C2C after delivery: %+v", i)
	}
	// Per-message codes as for read receipts: own message, outsider.
	alice.ok("POST", "/v1/receipts/delivered", list(m1), &rr)
	if rr.MessageList[0].Code != 91005 {
		t.Fatalf("alice's delivery of her own message: %+v", rr)
	}
	f.user("eve").ok("POST", "/v1/receipts/delivered", list(m1), &rr)
	if rr.MessageList[0].Code != 10062 {
		t.Fatalf("an outsider's delivery: %+v", rr)
	}
}

type readStates struct {
	MessageList []struct {
		ID          string `json:"ID"`
		IsRead      bool   `json:"isRead"`
		IsPrivate   bool   `json:"isPrivate"`
		IsDelivered bool   `json:"isDelivered"`
		Timestamp   *int64 `json:"timestamp"`
		Code        int    `json:"code"`
	} `json:"messageList"`
}

// flags returns read, private, delivered and code of each message.
func (s readStates) flags() []string {
	var out []string
	for _, m := range s.MessageList {
		b := func(v bool, c string) string {
			if v {
				return c
			}
			return "-"
		}
		out = append(out, b(m.IsRead, "R")+b(m.IsPrivate, "P")+b(m.IsDelivered, "D")+codeStr(m.Code))
	}
	return out
}

func codeStr(c int) string {
	if c == 0 {
		return ""
	}
	b, _ := json.Marshal(c)
	return " " + string(b)
}

func TestReadState(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol"}}, nil)
	for _, id := range []string{"m1", "m2", "m3"} {
		f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", id, "alice")), nil)
	}
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "b1", "bob")), nil)
	bob := f.user("bob")
	bob.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
	bob.ok("POST", "/v1/receipts/delivered", list(gmsg("g", "m2", "alice")), nil)
	var st readStates
	bob.ok("POST", "/v1/receipts/state", list(gmsg("g", "m1", "alice"), gmsg("g", "m2", "alice"), gmsg("g", "m3", "alice"),
		gmsg("g", "b1", "bob"), gmsg("g", "nope", "alice")), &st)
	if got, want := st.flags(), []string{"R-D", "--D", "---", "--- 91005", "--- 10062"}; !slices.Equal(got, want) {
		t.Fatalf("bob's read state: %v, want %v", got, want)
	}
	// A user outside the group learns nothing.
	f.user("eve").ok("POST", "/v1/receipts/state", list(gmsg("g", "m1", "alice")), &st)
	if got := st.flags(); !slices.Equal(got, []string{"--- 10062"}) {
		t.Fatalf("eve's read state: %v", got)
	}
	// C2C: the read time is kept.
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c1")), nil)
	before := time.Now().Unix()
	bob.ok("POST", "/v1/receipts", list(cmsg("alice", "bob", "c1")), nil)
	bob.ok("POST", "/v1/receipts/state", list(cmsg("alice", "bob", "c1")), &st)
	if m := st.MessageList[0]; !m.IsRead || m.Timestamp == nil || *m.Timestamp < before || *m.Timestamp > time.Now().Unix() {
		t.Fatalf("bob's state of c1: %+v", m)
	}
}

type readTimes struct {
	MessageID string `json:"messageID"`
	UserList  []struct {
		UserID    string `json:"userID"`
		IsRead    bool   `json:"isRead"`
		Timestamp *int64 `json:"timestamp"`
	} `json:"userList"`
}

func TestReadTimes(t *testing.T) {
	f := newFixture(t, withConfig(func(c *config) { c.ReadTimes = true }))
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol"}}, nil)
	m1 := gmsg("g", "m1", "alice")
	f.admin.ok("POST", "/v1/messages", tracked(m1), nil)
	before := time.Now().Unix()
	f.user("bob").ok("POST", "/v1/receipts", list(m1), nil)
	after := time.Now().Unix()
	var rt readTimes
	f.user("alice").ok("POST", "/v1/receipts/read-times", map[string]any{"message": m1, "userIDList": []string{"bob", "carol", "zed"}}, &rt)
	if rt.MessageID != "m1" || len(rt.UserList) != 3 {
		t.Fatalf("read times: %+v", rt)
	}
	if u := rt.UserList[0]; u.UserID != "bob" || !u.IsRead || u.Timestamp == nil || *u.Timestamp < before || *u.Timestamp > after {
		t.Fatalf("bob's read time: %+v (read between %d and %d)", u, before, after)
	}
	for _, u := range rt.UserList[1:] {
		if u.IsRead || u.Timestamp != nil {
			t.Fatalf("%s has not read it: %+v", u.UserID, u)
		}
	}
	// With -read-times the read page carries the times too.
	p := f.user("alice").page(m1, 0)
	if !slices.Equal(*p.ReadUserIDList, []string{"bob"}) || len(p.ReadTimeList) != 1 || p.ReadTimeList[0] != *rt.UserList[0].Timestamp {
		t.Fatalf("read page with read times: %+v", p)
	}
	// Not the sender: as if the message did not exist.
	f.user("bob").fails("POST", "/v1/receipts/read-times", map[string]any{"message": m1, "userIDList": []string{"bob"}}, 404, 10062)
	f.user("alice").fails("POST", "/v1/receipts/read-times", map[string]any{"message": gmsg("g", "nope", "alice"), "userIDList": []string{"bob"}}, 404, 10062)
	f.user("alice").fails("POST", "/v1/receipts/read-times", map[string]any{"message": m1, "userIDList": []string{}}, 400, 10004)
	many := make([]string, 101)
	for i := range many {
		many[i] = "u"
	}
	f.user("alice").fails("POST", "/v1/receipts/read-times", map[string]any{"message": m1, "userIDList": many}, 400, 91002)
}

type markResult struct {
	ConversationID string `json:"conversationID"`
	Thread         string `json:"thread"`
	Mark           *struct {
		MessageID string `json:"messageID"`
		Time      int64  `json:"time"`
	} `json:"mark"`
	MessageCount  int `json:"messageCount"`
	RecordedCount int `json:"recordedCount"`
}

func TestReadMark(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol"}}, nil)
	for _, id := range []string{"m1", "m2", "m3"} {
		f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", id, "alice")), nil)
	}
	th := tracked(gmsg("g", "t1", "alice"))
	th["thread"] = "topic"
	f.admin.ok("POST", "/v1/messages", th, nil)
	bob, alice := f.user("bob"), f.user("alice")

	var mr markResult
	bob.ok("GET", "/v1/conversations/read-mark?conversationID=GROUPg", nil, &mr)
	if mr.Mark != nil || mr.ConversationID != "GROUPg" {
		t.Fatalf("mark before any: %+v", mr)
	}
	bob.ok("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "messageID": "m2"}, &mr)
	if mr.Mark == nil || mr.Mark.MessageID != "m2" || mr.RecordedCount != 2 || mr.MessageCount != 2 {
		t.Fatalf("mark at m2: %+v", mr)
	}
	var qi receiptInfos
	alice.ok("POST", "/v1/receipts/query", list(gmsg("g", "m1", "alice"), gmsg("g", "m2", "alice"), gmsg("g", "m3", "alice")), &qi)
	for i, want := range []int{1, 1, 0} {
		if got := qi.MessageList[i].ReadReceiptInfo.ReadCount; got != want {
			t.Fatalf("readCount of %s after bob's mark: %d, want %d", qi.MessageList[i].ID, got, want)
		}
	}
	var got markResult
	bob.ok("GET", "/v1/conversations/read-mark?conversationID=GROUPg", nil, &got)
	if got.Mark == nil || *got.Mark != *mr.Mark {
		t.Fatalf("GET mark: %+v, want %+v", got, mr)
	}
	// Marks never move back.
	bob.ok("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "messageID": "m1"}, &mr)
	if mr.Mark.MessageID != "m2" || mr.RecordedCount != 0 {
		t.Fatalf("mark back at m1: %+v", mr)
	}
	// Up to now: m3 and the thread's message.
	bob.ok("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "time": time.Now().Add(time.Second).UnixMilli()}, &mr)
	if mr.Mark.MessageID != "" || mr.RecordedCount != 2 {
		t.Fatalf("mark at a time: %+v", mr)
	}
	// A thread's mark is its own.
	f.user("carol").ok("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "thread": "topic", "messageID": "t1"}, &mr)
	if mr.Thread != "topic" || mr.RecordedCount != 1 || mr.Mark.MessageID != "t1" {
		t.Fatalf("carol's thread mark: %+v", mr)
	}
	got = markResult{}
	f.user("carol").ok("GET", "/v1/conversations/read-mark?conversationID=GROUPg", nil, &got)
	if got.Mark != nil {
		t.Fatalf("carol's conversation mark after a thread mark: %+v", *got.Mark)
	}
	f.user("carol").fails("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "thread": "topic", "messageID": "m1"}, 404, 10062)
	bob.fails("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "messageID": "nope"}, 404, 10062)
	bob.fails("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "messageID": "m1", "time": 1}, 400, 10004)
	bob.fails("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg"}, 400, 10004)
	bob.fails("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "g", "messageID": "m1"}, 400, 10004)
	bob.fails("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "time": -5}, 400, 10004)
	bob.fails("GET", "/v1/conversations/read-mark", nil, 400, 10004)
	bob.fails("GET", "/v1/conversations/read-mark?conversationID=GROUPg&conversationID=GROUPh", nil, 400, 10004)
	bob.fails("GET", "/v1/conversations/read-mark?conversationID=GROUP%FF", nil, 400, 10004)

	// C2C: the conversation is named by the other user.
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c1")), nil)
	bob.ok("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "C2Calice", "messageID": "c1"}, &mr)
	if mr.ConversationID != "C2Calice" || mr.RecordedCount != 1 {
		t.Fatalf("bob's C2C mark: %+v", mr)
	}
	alice.ok("POST", "/v1/receipts/query", list(cmsg("alice", "bob", "c1")), &qi)
	if !qi.MessageList[0].ReadReceiptInfo.IsPeerRead {
		t.Fatalf("C2C after bob's mark: %+v", qi)
	}
}

func TestPrivacyHidesReads(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol"}}, nil)
	m1 := gmsg("g", "m1", "alice")
	f.admin.ok("POST", "/v1/messages", tracked(m1), nil)
	aliceConn := dialEvents(t, f.base, f.s.mintToken("alice", time.Hour), true, nil)
	waitConns(t, f.s, "alice", 1)
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")

	var p privacyJSON
	bob.ok("GET", "/v1/me/privacy", nil, &p)
	if p.Private {
		t.Fatal("receipts are private by default")
	}
	bob.ok("PUT", "/v1/me/privacy", map[string]any{"private": true}, &p)
	if !p.Private {
		t.Fatalf("PUT private: %+v", p)
	}
	bob.ok("GET", "/v1/me/privacy", nil, &p)
	if !p.Private {
		t.Fatal("GET after PUT private: false")
	}
	var rr receiptResults
	bob.ok("POST", "/v1/receipts", list(m1), &rr)
	if !slices.Equal(recorded(rr), []bool{true}) {
		t.Fatalf("bob's private read: %+v", rr)
	}
	// Alice sees bob delivered, not read: a delivery event, counts, lists.
	ev := readEvent(t, aliceConn)
	if ev.Event != "MESSAGE_DELIVERY_RECEIPT_RECEIVED" || ev.Data[0].ReadCount != 0 || ev.Data[0].DeliveredCount != 1 {
		t.Fatalf("alice's event for bob's private read: %+v", ev)
	}
	var qi deliveryInfos
	alice.ok("POST", "/v1/receipts/query", list(m1), &qi)
	if got := qi.counts(); !slices.Equal(got, [][3]int{{0, 1, 1}}) {
		t.Fatalf("alice's counts after bob's private read: %v", got)
	}
	if pg := alice.page(m1, 0); len(*pg.ReadUserIDList) != 0 {
		t.Fatalf("alice's read list shows a private read: %+v", pg)
	}
	// Bob's own state has it, private.
	var st readStates
	bob.ok("POST", "/v1/receipts/state", list(m1), &st)
	if got := st.flags(); !slices.Equal(got, []string{"RPD"}) {
		t.Fatalf("bob's own state: %v", got)
	}
	// Carol's public read comes through as a read.
	carol.ok("POST", "/v1/receipts", list(m1), nil)
	ev = readEvent(t, aliceConn)
	if ev.Event != "MESSAGE_READ_RECEIPT_RECEIVED" || ev.Data[0].UserID != "carol" || ev.Data[0].ReadCount != 1 {
		t.Fatalf("alice's event for carol's read: %+v", ev)
	}
	bob.ok("PUT", "/v1/me/privacy", map[string]any{"private": false}, &p)
	bob.ok("GET", "/v1/me/privacy", nil, &p)
	if p.Private {
		t.Fatal("GET after PUT public: true")
	}
	// Bad bodies.
	for _, body := range []string{`{}`, `{"private":null}`, `{"private":"yes"}`, `{"private":true,"private":false}`, `[true]`, `{"private":true} x`} {
		if res := bob.callRaw("PUT", "/v1/me/privacy", body); res.Status != 400 || res.Code != 10004 {
			t.Errorf("PUT privacy %s: %v", body, res)
		}
	}
}

func TestReciprocalPrivacy(t *testing.T) {
	f := newFixture(t, withConfig(func(c *config) { c.ReciprocalPrivacy = true }))
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	m1 := gmsg("g", "m1", "alice")
	f.admin.ok("POST", "/v1/messages", tracked(m1), nil)
	alice := f.user("alice")
	f.user("bob").ok("POST", "/v1/receipts", list(m1), nil)
	alice.ok("PUT", "/v1/me/privacy", map[string]any{"private": true}, nil)
	var qi receiptInfos
	alice.ok("POST", "/v1/receipts/query", list(m1), &qi)
	if qi.MessageList[0].Code != 91011 || qi.MessageList[0].ReadReceiptInfo.ReadCount != 0 {
		t.Fatalf("a private sender's query with reciprocal privacy: %+v", qi)
	}
	alice.fails("POST", "/v1/receipts/members", map[string]any{"message": m1, "filter": 0, "count": 10}, 403, 91011)
	alice.fails("POST", "/v1/receipts/read-times", map[string]any{"message": m1, "userIDList": []string{"bob"}}, 403, 91011)
	// Delivery stays visible.
	if pg := alice.page(m1, 2); !slices.Equal(pg.DeliveredUserIDList, []string{"bob"}) {
		t.Fatalf("delivered page of a private sender: %+v", pg)
	}
}

func TestOwnReadEventsReachOnlyTheReader(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol"}}, nil)
	for _, id := range []string{"m1", "m2"} {
		f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", id, "alice")), nil)
	}
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "c1", "carol")), nil)
	bobTok := f.s.mintToken("bob", time.Hour)
	bob1 := dialEvents(t, f.base, bobTok, true, nil)
	bob2 := dialEvents(t, f.base, bobTok, false, nil)
	carolConn := dialEvents(t, f.base, f.s.mintToken("carol", time.Hour), true, nil)
	waitConns(t, f.s, "bob", 2)
	waitConns(t, f.s, "carol", 1)

	bob := f.user("bob")
	bob.ok("PUT", "/v1/me/privacy", map[string]any{"private": true}, nil)
	bob.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
	for _, c := range []*websocket.Conn{bob1, bob2} {
		wantOwnRead(t, c, ownReadJSON{ConversationID: "GROUPg", MessageIDList: []string{"m1"}})
	}
	// A mark: the own event carries it.
	var mr markResult
	bob.ok("POST", "/v1/conversations/read-mark", map[string]any{"conversationID": "GROUPg", "messageID": "m2"}, &mr)
	for _, c := range []*websocket.Conn{bob1, bob2} {
		wantOwnRead(t, c, ownReadJSON{ConversationID: "GROUPg", MessageIDList: []string{"m2"}, Mark: &markJSON{MessageID: "m2", Time: mr.Mark.Time}})
	}
	// Carol's connection got nothing of bob's: its first message is the
	// receipt of her own message, which bob now reads.
	bob.ok("PUT", "/v1/me/privacy", map[string]any{"private": false}, nil)
	bob.ok("POST", "/v1/receipts", list(gmsg("g", "c1", "carol")), nil)
	ev := readEvent(t, carolConn)
	if ev.Event != "MESSAGE_READ_RECEIPT_RECEIVED" || ev.Data[0].MessageID != "c1" {
		t.Fatalf("carol's first event: %+v", ev)
	}
}

// TestModelEndpointsRefuseBadInput sends each new endpoint the wrong
// method, the wrong content type, and bodies that are not JSON, not UTF-8
// or of the wrong shape.
func TestModelEndpointsRefuseBadInput(t *testing.T) {
	f := newFixture(t)
	bob := f.user("bob")
	msg := `{"ID":"m1","conversationType":"GROUP","to":"g","from":"alice"}`
	for _, c := range []struct {
		method, path string
		good         string
		bad          []string
	}{
		{"POST", "/v1/receipts/delivered", `{"messageList":[` + msg + `]}`,
			[]string{`{"messageList":[]}`, `{"messageList":"m1"}`, `{"messageList":[{"ID":"m1","conversationType":"GROUPS","to":"g"}]}`}},
		{"POST", "/v1/receipts/state", `{"messageList":[` + msg + `]}`,
			[]string{`{"messageList":[]}`, `{"messageList":[1]}`}},
		{"POST", "/v1/receipts/read-times", `{"message":` + msg + `,"userIDList":["bob"]}`,
			[]string{`{"message":` + msg + `}`, `{"message":` + msg + `,"userIDList":"bob"}`, `{"message":` + msg + `,"userIDList":[1]}`, `{"userIDList":["bob"]}`}},
		{"POST", "/v1/conversations/read-mark", `{"conversationID":"GROUPg","time":1000}`,
			[]string{`{"conversationID":"GROUPg","time":"now"}`, `{"conversationID":"GROUPg","time":1.5}`, `{"conversationID":5}`, `{"conversationID":"GROUPg","thread":"a","thread":"b","time":1}`}},
		{"PUT", "/v1/me/privacy", `{"private":false}`, []string{`{"private":1}`}},
	} {
		for _, body := range append(c.bad, ``, `not json`, `{"x":`, c.good+` {}`, strings.Replace(c.good, `"`, "\"\xff", 1)) {
			if res := bob.callRaw(c.method, c.path, body); res.Status != 400 || res.Code != 10004 {
				t.Errorf("%s %s %q: want 400 10004, got %v", c.method, c.path, body, res)
			}
		}
		if res := bob.exchange(c.method, c.path, []byte(c.good), false, http.Header{"Content-Type": {"text/plain"}}); res.Status != 415 || res.Code != 10004 {
			t.Errorf("%s %s as text/plain: %v", c.method, c.path, res)
		}
		wrong := "DELETE"
		res := bob.exchangeNoSpec(wrong, c.path)
		if res.Status != 405 || res.Code != 10004 {
			t.Errorf("%s %s: %v", wrong, c.path, res)
		}
		if res := bob.as("").callRaw(c.method, c.path, c.good); res.Status != 401 || res.Code != CodeTokenMissing {
			t.Errorf("%s %s without a token: %v", c.method, c.path, res)
		}
	}
	for path, allow := range map[string]string{
		"/v1/receipts/delivered":      "POST",
		"/v1/conversations/read-mark": "GET, HEAD, POST",
		"/v1/me/privacy":              "GET, HEAD, PUT",
	} {
		req, _ := http.NewRequest("DELETE", f.base+path, nil)
		resp, err := testHTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != allow {
			t.Errorf("DELETE %s: HTTP %d Allow %q, want 405 %q", path, resp.StatusCode, resp.Header.Get("Allow"), allow)
		}
	}
}
