package bench

import (
	"fmt"
	"path/filepath"
	"testing"

	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store/memstore"
)

// BenchmarkModel: the calls of the receipt model beyond the seed, each next
// to today's read receipt, per call of 30 messages of one group:
//
//	op=read              SendMessageReadReceipt (today's receipt)
//	op=read+times        the same with WithReadTimes
//	op=deliver           SendMessageDeliveryReceipt
//	op=read-after-deliver SendMessageReadReceipt of messages already delivered
//	op=read-private      SendMessageReadReceipt by a user whose receipts are private
//	op=mark              MarkConversationRead by one reader over the 30 messages
//	                     tracked since its previous mark
//	op=state             GetMessageReadState of 30 messages
//
// Each runs on its own engine (store=mem; store=pebble is the shipped
// default, sync writes on), in a group of 200 and of 1,000,000 members.
// Every iteration is one call by a reader who has not made it yet: readers
// go round the group, and a new set of 30 messages is tracked (outside the
// timer) when they have all had their turn, or, for op=mark, before every
// call. Numbers of 1M members include no group creation: it is set up
// before the timer starts.
func BenchmarkModel(b *testing.B) {
	ops := []string{"read", "read+times", "deliver", "read-after-deliver", "read-private", "mark", "state"}
	for _, sz := range []size{{"200", 200}, size1M} {
		for _, op := range ops {
			for _, kind := range []string{"pebble", "mem"} {
				name := fmt.Sprintf("members=%s/op=%s/store=%s", sz.name, op, kind)
				b.Run(name, func(b *testing.B) { benchModelOp(b, sz.n, op, kind) })
			}
		}
	}
}

func benchModelOp(b *testing.B, n int, op, kind string) {
	var opts []rr.Option
	if op == "read+times" {
		opts = append(opts, rr.WithReadTimes(true))
	}
	var e *rr.Engine
	var err error
	if kind == "mem" {
		e, err = rr.Open(memstore.New(), opts...)
	} else {
		e, err = rr.OpenDir(filepath.Join(b.TempDir(), "db"), opts...)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	members := users(n)
	gid := "model"
	if err := e.CreateGroup(ctx, gid, rr.GroupWork, members); err != nil {
		b.Fatal(err)
	}
	conv := rr.Group(gid)
	batch := 0
	newBatch := func() []rr.MessageRef {
		refs := make([]rr.MessageRef, 30)
		for j := range refs {
			msg := rr.Message{Conversation: conv, ID: fmt.Sprintf("b%d-%d", batch, j), Sender: sender()}
			if err := e.TrackMessage(ctx, msg); err != nil {
				b.Fatal(err)
			}
			refs[j] = msg.Ref()
		}
		batch++
		return refs
	}
	refs := newBatch()
	// Readers 1..n-1 (user 0 sends); at most 10,000 of them take turns, so
	// that a million-member group does not need a million calls per set.
	readers := members[1:min(n, 10_001)]
	if op == "read-private" {
		for _, r := range readers {
			if err := e.SetReceiptsPrivate(ctx, r, true); err != nil {
				b.Fatal(err)
			}
		}
	}
	prepare := func(refs []rr.MessageRef) {
		switch op {
		case "read-after-deliver":
			for _, r := range readers {
				if _, err := e.SendMessageDeliveryReceipt(ctx, r, refs); err != nil {
					b.Fatal(err)
				}
			}
		case "state":
			for _, r := range readers[:len(readers)/2] {
				if _, err := e.SendMessageReadReceipt(ctx, r, refs); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	prepare(refs)
	next := 0
	b.ReportAllocs()
	for b.Loop() {
		if next == len(readers) && op != "state" {
			b.StopTimer()
			refs = newBatch()
			prepare(refs)
			next = 0
			b.StartTimer()
		}
		r := readers[next%len(readers)]
		next++
		switch op {
		case "read", "read+times", "read-after-deliver", "read-private":
			_, err = e.SendMessageReadReceipt(ctx, r, refs)
		case "deliver":
			_, err = e.SendMessageDeliveryReceipt(ctx, r, refs)
		case "state":
			_, err = e.GetMessageReadState(ctx, r, refs)
		case "mark":
			// One reader marks as it reads: 30 messages since its
			// previous mark every time.
			b.StopTimer()
			last := newBatch()[29]
			b.StartTimer()
			_, err = e.MarkConversationRead(ctx, readers[0], rr.MarkRequest{Conversation: conv, MessageID: last.ID})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
