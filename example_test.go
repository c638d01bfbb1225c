package readreceipt_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store/memstore"
)

// A group message from its tracking to its counts, events and member list.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "readreceipt-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	e, err := readreceipt.OpenDir(dir) // Pebble on disk, synced writes
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	e.Subscribe(func(events []readreceipt.ReceiptEvent) {
		for _, ev := range events {
			fmt.Printf("tell %s: %s read by %d, unread by %d\n", ev.Sender, ev.MessageID, ev.ReadCount, ev.UnreadCount)
		}
	})

	if err := e.CreateGroup(ctx, "team", readreceipt.GroupWork, []string{"alice", "bob", "carol"}); err != nil {
		log.Fatal(err)
	}
	msg := readreceipt.Message{Conversation: readreceipt.Group("team"), ID: "msg-1", Sender: "alice"}
	if err := e.TrackMessage(ctx, msg); err != nil {
		log.Fatal(err)
	}
	if _, err := e.SendMessageReadReceipt(ctx, "bob", []readreceipt.MessageRef{msg.Ref()}); err != nil {
		log.Fatal(err)
	}
	page, err := e.GetGroupMessageReadMemberList(ctx, readreceipt.AsUser("alice"), readreceipt.MemberListRequest{
		Message: msg.Ref(), Filter: readreceipt.FilterUnread, Count: 100,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("unread:", page.UnreadUserIDList, "complete:", page.IsCompleted)
	// Output:
	// tell alice: msg-1 read by 1, unread by 1
	// unread: [carol] complete: true
}

// A C2C receipt tells the sender that the peer has read the message.
func ExampleEngine_SendMessageReadReceipt() {
	ctx := context.Background()
	e, _ := readreceipt.Open(memstore.New())
	defer e.Close()

	conv := readreceipt.C2C("alice", "bob")
	_ = e.TrackMessage(ctx, readreceipt.Message{Conversation: conv, ID: "hi", Sender: "alice"})

	results, err := e.SendMessageReadReceipt(ctx, "bob", []readreceipt.MessageRef{
		{Conversation: conv, ID: "hi"},
		{Conversation: conv, ID: "never-tracked"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		fmt.Printf("%s recorded=%v notfound=%v\n", r.MessageID, r.Recorded, errors.Is(r.Err, readreceipt.ErrReceiptNotFound))
	}
	infos, _ := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("alice"), []readreceipt.MessageRef{{Conversation: conv, ID: "hi"}})
	fmt.Println("isPeerRead:", infos[0].IsPeerRead)
	// Output:
	// hi recorded=true notfound=false
	// never-tracked recorded=false notfound=true
	// isPeerRead: true
}

// Walking a member list page by page with the cursor.
func ExampleEngine_GetGroupMessageReadMemberList() {
	ctx := context.Background()
	e, _ := readreceipt.Open(memstore.New())
	defer e.Close()

	_ = e.CreateGroup(ctx, "g", readreceipt.GroupPublic, []string{"s", "a", "b", "c", "d", "e"})
	ref := readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: "m"}
	_ = e.TrackMessage(ctx, readreceipt.Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "s"})

	req := readreceipt.MemberListRequest{Message: ref, Filter: readreceipt.FilterUnread, Count: 2}
	for {
		page, err := e.GetGroupMessageReadMemberList(ctx, readreceipt.AsUser("s"), req)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(page.UnreadUserIDList)
		if page.IsCompleted {
			break
		}
		req.Cursor = page.Cursor
	}
	// Output:
	// [a b]
	// [c d]
	// [e]
}

// Recipients are fixed when the message is tracked.
func ExampleEngine_AddGroupMembers() {
	ctx := context.Background()
	e, _ := readreceipt.Open(memstore.New())
	defer e.Close()

	_ = e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "a"})
	ref := readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: "m"}
	_ = e.TrackMessage(ctx, readreceipt.Message{Conversation: ref.Conversation, ID: ref.ID, Sender: "s"})
	_ = e.AddGroupMembers(ctx, "g", []string{"late"})

	res, _ := e.SendMessageReadReceipt(ctx, "late", []readreceipt.MessageRef{ref})
	fmt.Println(errors.Is(res[0].Err, readreceipt.ErrNotRecipient))
	// Output:
	// true
}

// Errors carry a numeric code.
func ExampleError() {
	e, _ := readreceipt.Open(memstore.New())
	defer e.Close()

	_, err := e.GetGroupMessageReadMemberList(context.Background(), readreceipt.AsAdmin(), readreceipt.MemberListRequest{
		Message: readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: "m"}, Count: 10,
	})
	var re *readreceipt.Error
	if errors.As(err, &re) {
		fmt.Println(re.Code, errors.Is(err, readreceipt.ErrReceiptNotFound))
	}
	// Output:
	// 10062 true
}

// Delivery receipts tell the sender that a message reached a recipient's
// device; reading implies delivered.
func ExampleEngine_SendMessageDeliveryReceipt() {
	ctx := context.Background()
	e, _ := readreceipt.Open(memstore.New())
	defer e.Close()
	e.Subscribe(func(events []readreceipt.ReceiptEvent) {
		for _, ev := range events {
			fmt.Printf("tell %s: %s %s by %s, delivered to %d, read by %d\n",
				ev.Sender, ev.MessageID, ev.Kind, ev.Reader, ev.DeliveredCount, ev.ReadCount)
		}
	})

	_ = e.CreateGroup(ctx, "team", readreceipt.GroupWork, []string{"alice", "bob", "carol"})
	msg := readreceipt.Message{Conversation: readreceipt.Group("team"), ID: "m1", Sender: "alice"}
	_ = e.TrackMessage(ctx, msg)
	refs := []readreceipt.MessageRef{msg.Ref()}

	res, _ := e.SendMessageDeliveryReceipt(ctx, "bob", refs)
	fmt.Println("bob's device:", res[0].Recorded)
	res, _ = e.SendMessageDeliveryReceipt(ctx, "bob", refs) // bob's other device
	fmt.Println("bob's other device:", res[0].Recorded)
	_, _ = e.SendMessageReadReceipt(ctx, "carol", refs) // no delivery reported first

	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("alice"), refs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read %d, delivered %d, undelivered %d\n", infos[0].ReadCount, infos[0].DeliveredCount, infos[0].UndeliveredCount)
	// Output:
	// tell alice: m1 delivered by bob, delivered to 1, read by 0
	// bob's device: true
	// bob's other device: false
	// tell alice: m1 read by carol, delivered to 2, read by 1
	// read 1, delivered 2, undelivered 0
}

// A reader marks a conversation read up to a message: one receipt for
// every message since the previous mark. Marks never move back.
func ExampleEngine_MarkConversationRead() {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	e, _ := readreceipt.Open(memstore.New(), readreceipt.WithSweepInterval(0),
		readreceipt.WithClock(func() time.Time { return now }))
	defer e.Close()

	team := readreceipt.Group("team")
	_ = e.CreateGroup(ctx, "team", readreceipt.GroupWork, []string{"alice", "bob"})
	for _, id := range []string{"m1", "m2", "m3"} {
		_ = e.TrackMessage(ctx, readreceipt.Message{Conversation: team, ID: id, Sender: "alice"})
		now = now.Add(time.Minute)
	}
	// A message of a thread is also in its conversation.
	_ = e.TrackMessage(ctx, readreceipt.Message{Conversation: team, ID: "t1", Sender: "alice", Thread: "plans"})

	res, _ := e.MarkConversationRead(ctx, "bob", readreceipt.MarkRequest{Conversation: team, MessageID: "m2"})
	fmt.Println("up to m2:", res.Messages, "messages,", res.Recorded, "receipts")
	res, _ = e.MarkConversationRead(ctx, "bob", readreceipt.MarkRequest{Conversation: team, MessageID: "m1"})
	fmt.Println("back to m1: mark stays at", res.Mark.MessageID)
	res, _ = e.MarkConversationRead(ctx, "bob", readreceipt.MarkRequest{Conversation: team, Time: now})
	fmt.Println("up to now:", res.Messages, "messages, mark at", res.Mark.Time.Format("15:04"))

	mark, ok, _ := e.GetReadMark(ctx, "bob", team, "plans")
	fmt.Println("thread mark:", ok, mark.MessageID)
	// Output:
	// up to m2: 2 messages, 2 receipts
	// back to m1: mark stays at m2
	// up to now: 2 messages, mark at 09:03
	// thread mark: false
}

// A user whose receipts are private reads without telling anybody: the
// sender sees a delivery, the user's own devices see the read.
func ExampleEngine_SetReceiptsPrivate() {
	ctx := context.Background()
	e, _ := readreceipt.Open(memstore.New())
	defer e.Close()

	conv := readreceipt.C2C("alice", "bob")
	_ = e.TrackMessage(ctx, readreceipt.Message{Conversation: conv, ID: "hi", Sender: "alice"})
	refs := []readreceipt.MessageRef{{Conversation: conv, ID: "hi"}}

	_ = e.SetReceiptsPrivate(ctx, "bob", true)
	_, _ = e.SendMessageReadReceipt(ctx, "bob", refs)

	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("alice"), refs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("alice sees: read", infos[0].IsPeerRead, "delivered", infos[0].IsPeerDelivered)
	states, err := e.GetMessageReadState(ctx, "bob", refs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob sees: read", states[0].Read, "private", states[0].Private)
	// Output:
	// alice sees: read false delivered true
	// bob sees: read true private true
}

// A user's own read state, for the user's other devices.
func ExampleEngine_GetMessageReadState() {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	e, _ := readreceipt.Open(memstore.New(), readreceipt.WithSweepInterval(0),
		readreceipt.WithClock(func() time.Time { return now }))
	defer e.Close()

	conv := readreceipt.C2C("alice", "bob")
	for _, id := range []string{"a", "b"} {
		_ = e.TrackMessage(ctx, readreceipt.Message{Conversation: conv, ID: id, Sender: "alice"})
	}
	refs := []readreceipt.MessageRef{{Conversation: conv, ID: "a"}, {Conversation: conv, ID: "b"}, {Conversation: conv, ID: "c"}}
	_, _ = e.SendMessageReadReceipt(ctx, "bob", refs[:1])
	_, _ = e.SendMessageDeliveryReceipt(ctx, "bob", refs[1:2])

	states, err := e.GetMessageReadState(ctx, "bob", refs)
	if err != nil {
		log.Fatal(err)
	}
	for _, st := range states {
		switch {
		case st.Err != nil:
			fmt.Println(st.MessageID, "unknown:", errors.Is(st.Err, readreceipt.ErrReceiptNotFound))
		case st.Read:
			fmt.Println(st.MessageID, "read at", st.ReadTime.Format("15:04"))
		default:
			fmt.Println(st.MessageID, "delivered", st.Delivered, "not read")
		}
	}
	// Output:
	// a read at 09:30
	// b delivered true not read
	// c unknown: true
}

// With WithReadTimes, the engine keeps when each member read a group
// message, to the second.
func ExampleEngine_GetMessageReadTimes() {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	e, _ := readreceipt.Open(memstore.New(), readreceipt.WithReadTimes(true), readreceipt.WithSweepInterval(0),
		readreceipt.WithClock(func() time.Time { return now }))
	defer e.Close()

	_ = e.CreateGroup(ctx, "team", readreceipt.GroupWork, []string{"alice", "bob", "carol", "dave"})
	msg := readreceipt.Message{Conversation: readreceipt.Group("team"), ID: "m1", Sender: "alice"}
	_ = e.TrackMessage(ctx, msg)
	for _, reader := range []string{"carol", "bob"} {
		now = now.Add(90 * time.Second)
		_, _ = e.SendMessageReadReceipt(ctx, reader, []readreceipt.MessageRef{msg.Ref()})
	}

	times, err := e.GetMessageReadTimes(ctx, readreceipt.AsUser("alice"), msg.Ref(), []string{"bob", "carol", "dave"})
	if err != nil {
		log.Fatal(err)
	}
	for _, rt := range times {
		if rt.Read {
			fmt.Println(rt.UserID, "read it at", rt.ReadTime.Format("15:04:05"))
		} else {
			fmt.Println(rt.UserID, "has not read it")
		}
	}
	// Output:
	// bob read it at 09:03:00
	// carol read it at 09:01:30
	// dave has not read it
}
