// Command quickstart runs one read-receipt scenario on an embedded Pebble
// directory and prints every step: a group, messages that ask for receipts,
// receipts from members, the events the sender gets, the counts, both member
// lists page by page, a C2C receipt, and the same state after reopening.
//
//	go run ./examples/quickstart              # in a temporary directory
//	go run ./examples/quickstart -dir ./data  # keep the data
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/readreceipt/readreceipt"
)

func main() {
	dir := flag.String("dir", "", "Pebble directory (default: a temporary one, removed at exit)")
	members := flag.Int("members", 12, "members of the demo group")
	flag.Parse()
	if *members < 4 {
		log.Fatal("need at least 4 members")
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "readreceipt-quickstart")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	if err := run(context.Background(), *dir, *members); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string, n int) error {
	fmt.Printf("== engine on %s (Pebble, synced writes)\n", dir)
	e, err := readreceipt.OpenDir(dir)
	if err != nil {
		return err
	}
	e.Subscribe(func(events []readreceipt.ReceiptEvent) {
		for _, ev := range events {
			if ev.GroupID != "" {
				fmt.Printf("   event -> %s: %s in %s now %d read, %d unread (reader %s)\n",
					ev.Sender, ev.MessageID, ev.GroupID, ev.ReadCount, ev.UnreadCount, ev.Reader)
			} else {
				fmt.Printf("   event -> %s: %s isPeerRead=%v (peer %s)\n", ev.Sender, ev.MessageID, ev.IsPeerRead, ev.UserID)
			}
		}
	})

	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("user%02d", i)
	}
	sender := users[0]
	fmt.Printf("\n== create Work group %q with %d members\n", "team", n)
	if err := e.CreateGroup(ctx, "team", readreceipt.GroupWork, users); err != nil {
		return err
	}
	team := readreceipt.Group("team")
	m1 := readreceipt.Message{Conversation: team, ID: "msg-1", Sender: sender}
	m2 := readreceipt.Message{Conversation: team, ID: "msg-2", Sender: sender}
	for _, m := range []readreceipt.Message{m1, m2} {
		if err := e.TrackMessage(ctx, m); err != nil {
			return err
		}
		fmt.Printf("%s sent %s with needReadReceipt: %d recipients\n", m.Sender, m.ID, n-1)
	}

	fmt.Println("\n== a latecomer joins: not a recipient of earlier messages")
	if err := e.AddGroupMembers(ctx, "team", []string{"latecomer"}); err != nil {
		return err
	}
	receipt := func(reader string, refs ...readreceipt.MessageRef) error {
		res, err := e.SendMessageReadReceipt(ctx, reader, refs)
		if err != nil {
			return err
		}
		for _, r := range res {
			switch {
			case r.Err != nil:
				fmt.Printf("%s -> %s: refused: %v\n", reader, r.MessageID, r.Err)
			case r.Recorded:
				fmt.Printf("%s -> %s: receipt recorded\n", reader, r.MessageID)
			default:
				fmt.Printf("%s -> %s: already read, nothing changes\n", reader, r.MessageID)
			}
		}
		return nil
	}
	if err := receipt("latecomer", m1.Ref()); err != nil {
		return err
	}

	fmt.Println("\n== members read: one receipt call may name up to 30 messages")
	readers := users[1 : n/2+1]
	for i, r := range readers {
		refs := []readreceipt.MessageRef{m1.Ref()}
		if i%2 == 0 {
			refs = append(refs, m2.Ref())
		}
		if err := receipt(r, refs...); err != nil {
			return err
		}
	}
	if err := receipt(readers[0], m1.Ref()); err != nil {
		return err
	}
	if err := receipt(sender, m1.Ref()); err != nil {
		return err
	}

	fmt.Println("\n== the sender pulls the counts")
	if err := printCounts(ctx, e, sender, m1, m2); err != nil {
		return err
	}

	fmt.Println("\n== the sender pages through both member lists, 4 at a time")
	for _, f := range []readreceipt.MemberFilter{readreceipt.FilterRead, readreceipt.FilterUnread} {
		if err := printMembers(ctx, e, sender, m1.Ref(), f); err != nil {
			return err
		}
	}

	fmt.Println("\n== C2C: bob reads alice's message")
	c2c := readreceipt.Message{Conversation: readreceipt.C2C("alice", "bob"), ID: "dm-1", Sender: "alice"}
	if err := e.TrackMessage(ctx, c2c); err != nil {
		return err
	}
	if err := receipt("bob", c2c.Ref()); err != nil {
		return err
	}
	if err := printCounts(ctx, e, "alice", c2c); err != nil {
		return err
	}

	fmt.Println("\n== close and reopen the directory: everything is still there")
	if err := e.Close(); err != nil {
		return err
	}
	if e, err = readreceipt.OpenDir(dir); err != nil {
		return err
	}
	defer e.Close()
	if err := printCounts(ctx, e, sender, m1, m2); err != nil {
		return err
	}
	if err := e.Check(ctx); err != nil {
		return err
	}
	fmt.Println("invariants checked: counts match the member lists")

	fmt.Println("\n== the sender recalls msg-2")
	if err := e.DeleteMessage(ctx, m2.Ref()); err != nil {
		return err
	}
	return printCounts(ctx, e, sender, m2)
}

func printCounts(ctx context.Context, e *readreceipt.Engine, caller string, msgs ...readreceipt.Message) error {
	refs := make([]readreceipt.MessageRef, len(msgs))
	for i, m := range msgs {
		refs[i] = m.Ref()
	}
	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser(caller), refs)
	if err != nil {
		return err
	}
	for i, in := range infos {
		switch {
		case in.Err != nil:
			fmt.Printf("%s: %v\n", in.MessageID, in.Err)
		case msgs[i].Conversation.Type == readreceipt.ConversationC2C:
			fmt.Printf("%s: isPeerRead=%v\n", in.MessageID, in.IsPeerRead)
		default:
			fmt.Printf("%s: %d read, %d unread\n", in.MessageID, in.ReadCount, in.UnreadCount)
		}
	}
	return nil
}

func printMembers(ctx context.Context, e *readreceipt.Engine, caller string, ref readreceipt.MessageRef, f readreceipt.MemberFilter) error {
	name := map[readreceipt.MemberFilter]string{readreceipt.FilterRead: "read", readreceipt.FilterUnread: "unread"}[f]
	req := readreceipt.MemberListRequest{Message: ref, Filter: f, Count: 4}
	for page := 1; ; page++ {
		p, err := e.GetGroupMessageReadMemberList(ctx, readreceipt.AsUser(caller), req)
		if err != nil {
			return err
		}
		ids := append(p.ReadUserIDList, p.UnreadUserIDList...)
		fmt.Printf("%s, %s page %d: [%s] isCompleted=%v\n", ref.ID, name, page, strings.Join(ids, " "), p.IsCompleted)
		if p.IsCompleted {
			return nil
		}
		req.Cursor = p.Cursor
	}
}
