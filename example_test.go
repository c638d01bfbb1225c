package readreceipt_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

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
