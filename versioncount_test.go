package readreceipt

import (
	"context"
	"strings"
	"testing"

	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
)

// Check reports a version counter that disagrees with the messages: one
// too many, one missing, one for a version without messages.
func TestCheckVersionCounters(t *testing.T) {
	ctx := context.Background()
	for _, corrupt := range []func(b *store.Batch){
		func(b *store.Batch) { b.Merge(versionCountKey("g", 1), store.EncodeCounter(1)) },
		func(b *store.Batch) { b.Delete(versionCountKey("g", 1)) },
		func(b *store.Batch) { b.Merge(versionCountKey("g", 2), store.EncodeCounter(1)) },
		func(b *store.Batch) { b.Merge(versionCountKey("g", 1), store.EncodeCounter(-1)) },
	} {
		st := memstore.New()
		e, err := Open(st, migrateOpts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.CreateGroup(ctx, "g", GroupWork, []string{"a", "b", "c"}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"m1", "m2"} {
			if err := e.TrackMessage(ctx, Message{Conversation: Group("g"), ID: id, Sender: "a"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Check(ctx); err != nil {
			t.Fatal(err)
		}
		var b store.Batch
		corrupt(&b)
		if err := st.Write(ctx, &b, store.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := e.Check(ctx); err == nil || !strings.Contains(err.Error(), "version") {
			t.Errorf("Check of a corrupt counter: %v", err)
		}
		e.Close()
	}
}

// A version whose messages were all deleted counts zero until the sweep
// drops its counter: a membership change meanwhile treats it as unused
// (drops the chunk written at it), and the sweep then drops the counter.
func TestZeroVersionCounter(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	e, err := Open(st, migrateOpts...)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	g := Group("g")
	if err := e.CreateGroup(ctx, "g", GroupWork, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := e.TrackMessage(ctx, Message{Conversation: g, ID: "m", Sender: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteMessage(ctx, MessageRef{Conversation: g, ID: "m"}); err != nil {
		t.Fatal(err)
	}
	keys := func(kind byte) int {
		n := 0
		p := groupKey("g", kind)
		if err := st.Scan(ctx, p, prefixEnd(p), func(_, _ []byte) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if keys(groupVersion) != 1 {
		t.Fatalf("%d version counters after the delete, want the zero one", keys(groupVersion))
	}
	if err := e.AddGroupMembers(ctx, "g", []string{"c"}); err != nil {
		t.Fatal(err)
	}
	if n := keys(groupChunk); n != 1 {
		t.Errorf("%d membership chunks: the one of a version without messages was kept", n)
	}
	if err := e.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := keys(groupVersion); n != 0 {
		t.Errorf("%d version counters after the sweep, want none", n)
	}
	if err := e.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
