package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGroupEndpoints(t *testing.T) {
	f := newFixture(t)
	var g groupInfo
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g1", "type": "Public", "memberList": []string{"a", "b", "b", "c"}}, &g)
	if g != (groupInfo{GroupID: "g1", Type: "Public", MemberNum: 3, Version: 1}) {
		t.Fatalf("created group: %+v", g)
	}
	f.admin.fails("POST", "/v1/groups", map[string]any{"groupID": "g1", "memberList": []string{"x"}}, 409, 10021)

	// type defaults to Work.
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g2"}, &g)
	if g != (groupInfo{GroupID: "g2", Type: "Work", MemberNum: 0, Version: 1}) {
		t.Fatalf("group with default type: %+v", g)
	}

	f.admin.ok("POST", "/v1/groups/g1/members", map[string]any{"memberList": []string{"c", "d", "e"}}, &g)
	if g.MemberNum != 5 || g.Version != 2 {
		t.Fatalf("after adding d and e: %+v", g)
	}
	f.admin.ok("POST", "/v1/groups/g1/members/remove", map[string]any{"memberList": []string{"a", "zz"}}, &g)
	if g.MemberNum != 4 || g.Version != 3 {
		t.Fatalf("after removing a: %+v", g)
	}
	f.admin.ok("GET", "/v1/groups/g1", nil, &g)
	if g != (groupInfo{GroupID: "g1", Type: "Public", MemberNum: 4, Version: 3}) {
		t.Fatalf("GET group: %+v", g)
	}

	var dismissed struct {
		GroupID string `json:"groupID"`
	}
	f.admin.ok("DELETE", "/v1/groups/g1", nil, &dismissed)
	if dismissed.GroupID != "g1" {
		t.Fatalf("dismiss answered %+v", dismissed)
	}
	f.admin.fails("GET", "/v1/groups/g1", nil, 404, 10010)
	f.admin.fails("DELETE", "/v1/groups/g1", nil, 404, 10010)
	f.admin.fails("POST", "/v1/groups/g1/members", map[string]any{"memberList": []string{"a"}}, 404, 10010)
	f.admin.fails("POST", "/v1/groups/nope/members/remove", map[string]any{"memberList": []string{"a"}}, 404, 10010)

	// Bad input.
	// The SDK's group type values are aliases; answers use the engine's
	// names.
	for sdk, want := range map[string]string{"Private": "Work", "Public": "Public", "ChatRoom": "Meeting", "AVChatRoom": "AVChatRoom", "Community": "Community"} {
		gid := "sdk-" + sdk
		f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": gid, "type": sdk, "memberList": []string{"a"}}, &g)
		if g.Type != want {
			t.Errorf("type %q: created a %q group, want %q", sdk, g.Type, want)
		}
		f.admin.ok("GET", "/v1/groups/"+gid, nil, &g)
		if g.Type != want {
			t.Errorf("type %q: GET answers %q, want %q", sdk, g.Type, want)
		}
	}
	f.admin.fails("POST", "/v1/groups", map[string]any{"groupID": "g3", "type": "Club"}, 400, 10004)
	f.admin.fails("POST", "/v1/groups", map[string]any{"groupID": "g3", "type": "private"}, 400, 10004)
	f.admin.fails("POST", "/v1/groups", map[string]any{"groupID": ""}, 400, 10015)
	f.admin.fails("POST", "/v1/groups", map[string]any{"groupID": strings.Repeat("x", 129)}, 400, 10015)
	f.admin.fails("POST", "/v1/groups", map[string]any{"groupID": "g4", "memberList": []string{""}}, 400, 10004)
	f.admin.fails("GET", "/v1/groups/"+strings.Repeat("y", 129), nil, 400, 10015)
	res := f.admin.callRaw("POST", "/v1/groups", `{"groupID":`)
	if res.Status != 400 || res.Code != 10004 {
		t.Fatalf("truncated JSON: %v", res)
	}
	res = f.admin.callRaw("POST", "/v1/groups", `{"groupID":"g5"} {"groupID":"g6"}`)
	if res.Status != 400 || res.Code != 10004 {
		t.Fatalf("two JSON values: %v", res)
	}
	res = f.admin.callRaw("POST", "/v1/groups/g2/members", ``)
	if res.Status != 400 || res.Code != 10004 {
		t.Fatalf("empty body: %v", res)
	}
	res = f.admin.callRaw("POST", "/v1/groups/g2/members", `{"memberList":"a"}`)
	if res.Status != 400 || res.Code != 10004 {
		t.Fatalf("memberList of the wrong type: %v", res)
	}
	f.admin.fails("GET", "/v1/groups/g5", nil, 404, 10010)
}

func TestAdminEndpointsRefuseUsers(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	alice := f.user("alice")
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/messages", tracked(gmsg("g", "m1", "alice"))},
		{"POST", "/v1/messages/delete", map[string]any{"message": gmsg("g", "m1", "alice")}},
		{"POST", "/v1/groups", map[string]any{"groupID": "g2"}},
		{"GET", "/v1/groups/g", nil},
		{"POST", "/v1/groups/g/members", map[string]any{"memberList": []string{"eve"}}},
		{"POST", "/v1/groups/g/members/remove", map[string]any{"memberList": []string{"bob"}}},
		{"DELETE", "/v1/groups/g", nil},
	} {
		alice.fails(c.method, c.path, c.body, 403, CodeAdminRequired)
	}
	// Nothing changed.
	var g groupInfo
	f.admin.ok("GET", "/v1/groups/g", nil, &g)
	if g.MemberNum != 2 || g.Version != 1 {
		t.Fatalf("a refused call changed the group: %+v", g)
	}
	f.admin.fails("GET", "/v1/groups/g2", nil, 404, 10010)
}

func TestGroupReceipts(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol", "dave"}}, nil)
	var tr struct {
		Tracked bool `json:"tracked"`
	}
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), &tr)
	if !tr.Tracked {
		t.Fatal("tracked = false for needReadReceipt true")
	}
	// Tracking again with the same sender is a no-op; another sender is a
	// conflict.
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	f.admin.fails("POST", "/v1/messages", tracked(gmsg("g", "m1", "bob")), 409, 91007)
	// A message that asks for no receipt is not tracked.
	f.admin.ok("POST", "/v1/messages", gmsg("g", "m2", "alice"), &tr)
	if tr.Tracked {
		t.Fatal("tracked = true for needReadReceipt false")
	}
	f.admin.fails("POST", "/v1/messages", tracked(gmsg("nogroup", "m1", "alice")), 404, 10010)
	f.admin.fails("POST", "/v1/messages", tracked(gmsg("g", "", "alice")), 400, 10004)

	bob := f.user("bob")
	var rr receiptResults
	bob.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), &rr)
	if len(rr.MessageList) != 1 || rr.MessageList[0].ID != "m1" || !rr.MessageList[0].Recorded || rr.MessageList[0].Code != 0 {
		t.Fatalf("first receipt: %+v", rr)
	}
	// Idempotent: the second receipt records nothing and is no error.
	bob.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), &rr)
	if rr.MessageList[0].Recorded || rr.MessageList[0].Code != 0 {
		t.Fatalf("repeated receipt: %+v", rr)
	}

	// Per-message failures stay in the list; the others are recorded.
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m3", "dave")), nil)
	alice := f.user("alice")
	alice.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice"), gmsg("g", "m2", "alice"), gmsg("g", "m3", "dave")), &rr)
	want := []struct {
		code     int
		recorded bool
	}{{91005, false}, {10062, false}, {0, true}}
	for i, w := range want {
		got := rr.MessageList[i]
		if got.Code != w.code || got.Recorded != w.recorded || (w.code != 0) != (got.Message != "") {
			t.Errorf("message %d: got %+v, want code %d recorded %v", i, got, w.code, w.recorded)
		}
	}
	// A non-member learns no more than for a message that does not exist.
	eve := f.user("eve")
	eve.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), &rr)
	if rr.MessageList[0].Code != 10062 {
		t.Fatalf("receipt from a non-member: %+v", rr)
	}

	var qi receiptInfos
	alice.ok("POST", "/v1/receipts/query", list(gmsg("g", "m1", "alice"), gmsg("g", "m2", "alice")), &qi)
	if got := qi.MessageList[0]; got.ID != "m1" || got.ConversationType != "GROUP" || got.Code != 0 ||
		got.ReadReceiptInfo.ReadCount != 1 || got.ReadReceiptInfo.UnreadCount != 2 {
		t.Fatalf("counts of m1: %+v", got)
	}
	if got := qi.MessageList[1]; got.Code != 10062 || got.Message == "" {
		t.Fatalf("untracked m2: %+v", got)
	}

	// Whole-call failures.
	var many []map[string]any
	for i := range 31 {
		many = append(many, gmsg("g", fmt.Sprint("x", i), "alice"))
	}
	bob.fails("POST", "/v1/receipts", list(many...), 400, 91001)
	bob.fails("POST", "/v1/receipts", list(gmsg("g", "m1", "alice"), cmsg("alice", "bob", "c1")), 400, 91003)
	bob.fails("POST", "/v1/receipts", list(gmsg("g", "m1", "alice"), gmsg("g2", "m1", "alice")), 400, 91003)
	for _, body := range []string{
		`{"messageList":[]}`,
		`{}`,
		`{"messageList":[{"ID":"m1","conversationType":"GROUPS","to":"g"}]}`,
		`{"messageList":[{"ID":"m1","to":"g"}]}`,
		`{"messageList":[{"ID":"m1","conversationType":"C2C","to":"bob"}]}`,
		`{"messageList":[{"ID":"m1","conversationType":"GROUP","to":"g","from":"alice"}]`,
		`[1,2]`,
		`not json`,
	} {
		res := bob.callRaw("POST", "/v1/receipts", body)
		if res.Status != 400 || res.Code != 10004 || res.Message == "" {
			t.Errorf("body %s: want HTTP 400 code 10004, got %v", body, res)
		}
	}
	res := bob.callRaw("POST", "/v1/receipts", `{"messageList":[{"ID":"m1","conversationType":"GROUP","to":"`+strings.Repeat("x", 2<<20)+`"}]}`)
	if res.Status != 413 || res.Code != 10004 {
		t.Errorf("oversized body: %v", res)
	}
	// Nothing of the failed calls was recorded.
	alice.ok("POST", "/v1/receipts/query", list(gmsg("g", "m1", "alice")), &qi)
	if qi.MessageList[0].ReadReceiptInfo.ReadCount != 1 {
		t.Fatalf("a failed call recorded something: %+v", qi)
	}
	// The SDK's whole Message object, with fields the server does not use,
	// is accepted.
	sdkMsg := gmsg("g", "m3", "dave")
	sdkMsg["payload"] = map[string]any{"text": "hi"}
	sdkMsg["time"] = 1700000000
	sdkMsg["readReceiptInfo"] = map[string]any{"readCount": 0}
	bob.ok("POST", "/v1/receipts", list(sdkMsg), &rr)
	if !rr.MessageList[0].Recorded {
		t.Fatalf("receipt with the SDK's full message: %+v", rr)
	}
}

func TestQueryAccess(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	f.user("bob").ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)

	// Another user's message: the same answer as for a message that does
	// not exist (10062 in the list for counts, 404 for the member list).
	var qi receiptInfos
	f.user("carol").ok("POST", "/v1/receipts/query", list(gmsg("g", "m1", "alice")), &qi)
	if got := qi.MessageList[0]; got.Code != 10062 || got.ReadReceiptInfo.ReadCount != 0 {
		t.Fatalf("carol's query of alice's message: %+v", got)
	}
	req := map[string]any{"message": gmsg("g", "m1", "alice"), "filter": 0, "cursor": "", "count": 10}
	f.user("carol").fails("POST", "/v1/receipts/members", req, 404, 10062)
	f.user("bob").fails("POST", "/v1/receipts/members", req, 404, 10062)

	// The administrator sees everything.
	f.admin.ok("POST", "/v1/receipts/query", list(gmsg("g", "m1", "alice")), &qi)
	if got := qi.MessageList[0]; got.Code != 0 || got.ReadReceiptInfo.ReadCount != 1 || got.ReadReceiptInfo.UnreadCount != 1 || got.ReadReceiptInfo.Timestamp != nil {
		t.Fatalf("administrator's query (a group message read by one: counts, no timestamp): %+v", got)
	}
	var page memberPage
	f.admin.ok("POST", "/v1/receipts/members", req, &page)
	if page.ReadUserIDList == nil || !slices.Equal(*page.ReadUserIDList, []string{"bob"}) || !page.IsCompleted {
		t.Fatalf("administrator's member page: %+v", page)
	}
}

func TestMemberPaging(t *testing.T) {
	f := newFixture(t)
	const n = 250
	members := []string{"sender"}
	for i := range n - 1 {
		members = append(members, fmt.Sprintf("u%03d", i))
	}
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "big", "memberList": members}, nil)
	m := gmsg("big", "m1", "sender")
	f.admin.ok("POST", "/v1/messages", tracked(m), nil)
	var readers, unread []string
	for i, u := range members[1:] {
		if i%5 == 0 || i%7 == 0 {
			f.user(u).ok("POST", "/v1/receipts", list(m), nil)
			readers = append(readers, u)
		} else {
			unread = append(unread, u)
		}
	}
	sender := f.user("sender")
	walk := func(filter, count int) []string {
		t.Helper()
		var all []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > n {
				t.Fatalf("filter %d: no end after %d pages", filter, pages)
			}
			var p memberPage
			sender.ok("POST", "/v1/receipts/members", map[string]any{"message": m, "filter": filter, "cursor": cursor, "count": count}, &p)
			if p.MessageID != "m1" {
				t.Fatalf("page messageID %q", p.MessageID)
			}
			// Both lists are there, as in the SDK: the filter's, and
			// the other one empty.
			got, other := p.ReadUserIDList, p.UnreadUserIDList
			if filter == 1 {
				got, other = other, got
			}
			if got == nil {
				t.Fatalf("filter %d: page without its list", filter)
			}
			if other == nil || len(*other) != 0 {
				t.Fatalf("filter %d: the other list is %v, want []", filter, other)
			}
			if len(*got) > count {
				t.Fatalf("page of %d members for count %d", len(*got), count)
			}
			all = append(all, *got...)
			if p.IsCompleted {
				if p.Cursor != "" {
					t.Fatalf("completed page with cursor %q", p.Cursor)
				}
				return all
			}
			if p.Cursor == "" {
				t.Fatal("incomplete page without a cursor")
			}
			cursor = p.Cursor
		}
	}
	for _, count := range []int{1, 7, 30, 100} {
		if got := walk(0, count); !slices.Equal(got, readers) {
			t.Fatalf("count %d: read members %v, want %v", count, got, readers)
		}
		if got := walk(1, count); !slices.Equal(got, unread) {
			t.Fatalf("count %d: unread members %v, want %v", count, got, unread)
		}
	}

	// The first page, asked for with the SDK's cursor '' or with no
	// cursor at all, is the same page.
	var p, noCursor memberPage
	sender.ok("POST", "/v1/receipts/members", map[string]any{"message": m, "filter": 0, "cursor": "", "count": 3}, &p)
	sender.ok("POST", "/v1/receipts/members", map[string]any{"message": m, "filter": 0, "count": 3}, &noCursor)
	if p.ReadUserIDList == nil || !slices.Equal(*p.ReadUserIDList, readers[:3]) || p.IsCompleted || p.Cursor == "" {
		t.Fatalf("first page with cursor '': %+v", p)
	}
	if noCursor.ReadUserIDList == nil || !slices.Equal(*noCursor.ReadUserIDList, *p.ReadUserIDList) {
		t.Fatalf("first page without a cursor: %+v, with cursor '': %+v", noCursor, p)
	}
	for _, c := range []struct {
		body   map[string]any
		status int
		code   int
	}{
		{map[string]any{"message": m, "filter": 0, "cursor": "garbage", "count": 3}, 400, 91004},
		{map[string]any{"message": m, "filter": 0, "cursor": p.Cursor[:len(p.Cursor)-2] + "AA", "count": 3}, 400, 91004},
		{map[string]any{"message": m, "filter": 1, "cursor": p.Cursor, "count": 3}, 400, 91004},
		{map[string]any{"message": m, "filter": 0, "cursor": "", "count": 101}, 400, 91002},
		{map[string]any{"message": m, "filter": 0, "cursor": "", "count": 0}, 400, 10004},
		{map[string]any{"message": gmsg("big", "nope", "sender"), "filter": 0, "cursor": "", "count": 3}, 404, 10062},
		{map[string]any{"message": cmsg("sender", "u000", "m1"), "filter": 0, "cursor": "", "count": 3}, 400, 10004},
	} {
		res := sender.callRaw("POST", "/v1/receipts/members", mustJSON(t, c.body))
		if res.Status != c.status || res.Code != c.code {
			t.Errorf("%v: want HTTP %d code %d, got %v", c.body, c.status, c.code, res)
		}
	}
	res := sender.callRaw("POST", "/v1/receipts/members", `{"message":{"ID":"m1","conversationType":"GROUP","to":"big"},"filter":4,"count":3}`)
	if res.Status != 400 || res.Code != 10004 {
		t.Errorf("filter 4: %v", res)
	}
}

func TestC2CReceipts(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c1")), nil)
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c2")), nil)
	f.admin.fails("POST", "/v1/messages", tracked(map[string]any{"ID": "c3", "conversationType": "C2C", "to": "bob"}), 400, 10004)

	alice, bob := f.user("alice"), f.user("bob")
	var qi receiptInfos
	alice.ok("POST", "/v1/receipts/query", list(cmsg("alice", "bob", "c1"), cmsg("alice", "bob", "c2")), &qi)
	for _, m := range qi.MessageList {
		if m.Code != 0 || m.ConversationType != "C2C" || m.ReadReceiptInfo.IsPeerRead {
			t.Fatalf("before any receipt: %+v", m)
		}
	}
	for _, m := range qi.MessageList {
		if m.ReadReceiptInfo.Timestamp != nil {
			t.Fatalf("an unread C2C message has a timestamp: %+v", m)
		}
	}
	var rr receiptResults
	before := time.Now().Unix()
	bob.ok("POST", "/v1/receipts", list(cmsg("alice", "bob", "c1")), &rr)
	after := time.Now().Unix()
	if !rr.MessageList[0].Recorded {
		t.Fatalf("bob's receipt: %+v", rr)
	}
	alice.ok("POST", "/v1/receipts/query", list(cmsg("alice", "bob", "c1"), cmsg("alice", "bob", "c2")), &qi)
	if !qi.MessageList[0].ReadReceiptInfo.IsPeerRead || qi.MessageList[1].ReadReceiptInfo.IsPeerRead {
		t.Fatalf("isPeerRead after bob read c1: %+v", qi)
	}
	// The read message has the time bob's receipt was recorded, in
	// seconds, as the SDK's timestamp; the unread one still has none.
	if ts := qi.MessageList[0].ReadReceiptInfo.Timestamp; ts == nil || *ts < before || *ts > after {
		t.Fatalf("timestamp of c1, read between %d and %d: %v", before, after, ts)
	}
	if ts := qi.MessageList[1].ReadReceiptInfo.Timestamp; ts != nil {
		t.Fatalf("timestamp of unread c2: %d", *ts)
	}
	// A second receipt changes nothing, the time included.
	first := *qi.MessageList[0].ReadReceiptInfo.Timestamp
	time.Sleep(1100 * time.Millisecond)
	bob.ok("POST", "/v1/receipts", list(cmsg("alice", "bob", "c1")), &rr)
	alice.ok("POST", "/v1/receipts/query", list(cmsg("alice", "bob", "c1")), &qi)
	if ts := qi.MessageList[0].ReadReceiptInfo.Timestamp; ts == nil || *ts != first {
		t.Fatalf("timestamp of c1 after a repeated receipt: %v, want %d", ts, first)
	}
	if r := qi.MessageList[0].ReadReceiptInfo; r.ReadCount != 1 || r.UnreadCount != 0 {
		t.Fatalf("C2C counts: %+v", r)
	}
	// The conversation is the same whichever way from and to are given.
	alice.ok("POST", "/v1/receipts/query", list(map[string]any{"ID": "c1", "conversationType": "C2C", "from": "bob", "to": "alice"}), &qi)
	if !qi.MessageList[0].ReadReceiptInfo.IsPeerRead {
		t.Fatalf("query with from and to swapped: %+v", qi)
	}
	alice.ok("POST", "/v1/receipts", list(cmsg("alice", "bob", "c2")), &rr)
	if rr.MessageList[0].Code != 91005 {
		t.Fatalf("alice's receipt for her own message: %+v", rr)
	}
	f.user("carol").ok("POST", "/v1/receipts", list(cmsg("alice", "bob", "c2")), &rr)
	if rr.MessageList[0].Code != 10062 {
		t.Fatalf("carol's receipt for a message of alice and bob: %+v", rr)
	}
	f.user("carol").ok("POST", "/v1/receipts/query", list(cmsg("alice", "bob", "c1")), &qi)
	if qi.MessageList[0].Code != 10062 {
		t.Fatalf("carol's query: %+v", qi)
	}
}

func TestDeleteAndDismiss(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m2", "alice")), nil)
	f.admin.ok("POST", "/v1/messages/delete", map[string]any{"message": gmsg("g", "m1", "alice")}, nil)
	// Deleting what is not tracked is a no-op.
	f.admin.ok("POST", "/v1/messages/delete", map[string]any{"message": gmsg("g", "m1", "alice")}, nil)
	f.admin.ok("POST", "/v1/messages/delete", map[string]any{"message": cmsg("x", "y", "z")}, nil)
	f.admin.fails("POST", "/v1/messages/delete", map[string]any{"message": gmsg("g", "", "alice")}, 400, 10004)

	alice := f.user("alice")
	var qi receiptInfos
	alice.ok("POST", "/v1/receipts/query", list(gmsg("g", "m1", "alice"), gmsg("g", "m2", "alice")), &qi)
	if qi.MessageList[0].Code != 10062 || qi.MessageList[1].Code != 0 {
		t.Fatalf("after deleting m1: %+v", qi)
	}
	alice.fails("POST", "/v1/receipts/members", map[string]any{"message": gmsg("g", "m1", "alice"), "filter": 1, "count": 5}, 404, 10062)
	var rr receiptResults
	f.user("bob").ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), &rr)
	if rr.MessageList[0].Code != 10062 {
		t.Fatalf("receipt for a deleted message: %+v", rr)
	}

	f.admin.ok("DELETE", "/v1/groups/g", nil, nil)
	alice.ok("POST", "/v1/receipts/query", list(gmsg("g", "m2", "alice")), &qi)
	if qi.MessageList[0].Code != 10062 {
		t.Fatalf("message of a dismissed group: %+v", qi)
	}
}

func TestFeatureDisabled(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	f.s.eng.SetFeatureEnabled(false)
	f.user("bob").fails("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), 503, 7013)
	f.user("alice").fails("POST", "/v1/receipts/query", list(gmsg("g", "m1", "alice")), 503, 7013)
	f.admin.fails("POST", "/v1/messages", tracked(gmsg("g", "m2", "alice")), 503, 7013)
	// Membership still works while the feature is off.
	f.admin.ok("POST", "/v1/groups/g/members", map[string]any{"memberList": []string{"carol"}}, nil)
	f.s.eng.SetFeatureEnabled(true)
	var rr receiptResults
	f.user("bob").ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), &rr)
	if !rr.MessageList[0].Recorded {
		t.Fatalf("receipt after the feature is back on: %+v", rr)
	}
}

func TestGroupTypeWithoutReceipts(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "room", "type": "AVChatRoom", "memberList": []string{"alice", "bob"}}, nil)
	f.admin.fails("POST", "/v1/messages", tracked(gmsg("room", "m1", "alice")), 400, 91008)
}

func TestHealthMetricsAndRoutes(t *testing.T) {
	f := newFixture(t)
	anon := f.admin.as("")
	res := anon.call("GET", "/healthz", nil)
	if res.Status != 200 || !strings.Contains(string(res.Body), `"status":"ok"`) {
		t.Fatalf("healthz: %v", res)
	}

	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	f.user("bob").ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
	f.user("carol").ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
	f.user("carol").ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
	f.user("bob").fails("POST", "/v1/receipts/members", map[string]any{"message": gmsg("g", "m1", "alice"), "filter": 0, "count": 5}, 404, 10062)
	anon.fails("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), 401, CodeTokenMissing)

	body := getText(t, f.base+"/metrics")
	for _, want := range []string{
		`readreceiptd_requests_total{code="0",endpoint="POST /v1/receipts"} 3`,
		`readreceiptd_requests_total{code="10062",endpoint="POST /v1/receipts/members"} 1`,
		`readreceiptd_requests_total{code="70001",endpoint="POST /v1/receipts"} 1`,
		`readreceiptd_request_duration_seconds_count{endpoint="POST /v1/receipts"} 4`,
		`readreceiptd_receipts_recorded_total 2`,
		`readreceiptd_events_sent_total 0`,
		`readreceiptd_events_dropped_total 0`,
		`readreceiptd_websocket_connections 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Unknown API routes answer JSON with a code.
	res = f.admin.exchangeNoSpec("GET", "/v1/nope")
	if res.Status != 404 || res.Code != 10004 {
		t.Fatalf("unknown route: %v", res)
	}
	res = f.admin.exchangeNoSpec("GET", "/v1/receipts")
	if res.Status != 405 || res.Code != 10004 || !strings.Contains(res.Message, "GET /v1/receipts") {
		t.Fatalf("wrong method: %v", res)
	}

	spec := getText(t, f.base+"/openapi.yaml")
	if !strings.HasPrefix(spec, "openapi: 3.") {
		t.Fatalf("/openapi.yaml serves %.40q", spec)
	}
}

func TestHealthWhileStopping(t *testing.T) {
	f := newFixture(t)
	f.s.stopping.Store(true)
	defer f.s.stopping.Store(false)
	res := f.admin.as("").call("GET", "/healthz", nil)
	if res.Status != 503 || !strings.Contains(string(res.Body), `"stopping"`) {
		t.Fatalf("healthz while stopping: %v", res)
	}
}

// exchangeNoSpec calls a path the spec does not describe.
func (c *apiClient) exchangeNoSpec(method, path string) result {
	c.t.Helper()
	c2 := *c
	c2.spec = nil
	return c2.exchange(method, path, nil, false, nil)
}

func getText(t testing.TB, url string) string {
	t.Helper()
	resp, err := testHTTPClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPooledRequestsStartEmpty sends, one after the other, a message that
// names from and one that does not: the second must not inherit the
// first's fields from a reused request.
func TestPooledRequestsStartEmpty(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c1")), nil)
	bob := f.user("bob")
	for range 20 {
		bob.ok("POST", "/v1/receipts/query", list(cmsg("alice", "bob", "c1")), nil)
		res := bob.callRaw("POST", "/v1/receipts/query", `{"messageList":[{"ID":"c1","conversationType":"C2C","to":"bob"}]}`)
		if res.Status != 400 || res.Code != 10004 {
			t.Fatalf("a C2C message without from after one with it: %v", res)
		}
	}
}
