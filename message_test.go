package readreceipt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/stretchr/testify/require"
)

// TestTrackNotAcknowledgedBeforeDurable tracks messages concurrently while
// every synced write is held at a gate. No call may return before the
// write that carries its message is durable: while the first write is
// held, none of the later calls answers; the writes after it are failed,
// and each of those calls must then fail, not succeed on the strength of
// the first call's write. Afterwards a new engine on the store finds
// exactly the messages whose calls succeeded, and the failed calls can be
// made again.
func TestTrackNotAcknowledgedBeforeDurable(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	gate := readreceipt.NewWriteGate(mem)
	e, err := readreceipt.Open(gate, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r", "x"}))
	msg := func(i int) readreceipt.Message {
		return readreceipt.Message{Conversation: readreceipt.Group("g"), ID: fmt.Sprint("m", i), Sender: "s"}
	}
	gate.Shut()

	first := make(chan error, 1)
	go func() { first <- e.TrackMessage(ctx, msg(0)) }()
	w1 := gate.NextHeld(t)

	const n = 8
	type outcome struct {
		i   int
		err error
	}
	later := make(chan outcome, n)
	for i := 1; i <= n; i++ {
		go func() { later <- outcome{i, e.TrackMessage(ctx, msg(i))} }()
	}
	// While the first write is held, no later call may answer: give them
	// time to reach their write.
	select {
	case o := <-later:
		t.Fatalf("TrackMessage(m%d) returned %v while the first track's write was not durable", o.i, o.err)
	case <-time.After(200 * time.Millisecond):
	}
	w1.Release(nil)
	require.NoError(t, <-first)

	// Fail every later write, however the calls were grouped into them.
	diskErr := errors.New("disk on fire")
	failed := 0
	for failed < n {
		select {
		case w := <-gate.Held:
			w.Release(diskErr)
		case o := <-later:
			if o.err == nil {
				t.Fatalf("TrackMessage(m%d) succeeded though every write after the first failed", o.i)
			}
			require.ErrorIs(t, o.err, readreceipt.ErrInternal, "m%d", o.i)
			failed++
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d calls returned", failed, n)
		}
	}

	// The store holds exactly the message whose call succeeded.
	check := func(eng *readreceipt.Engine) {
		t.Helper()
		infos, err := eng.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{msg(0).Ref()})
		require.NoError(t, err)
		require.NoError(t, infos[0].Err, "m0, whose track succeeded")
		require.Equal(t, 2, infos[0].UnreadCount)
		for i := 1; i <= n; i++ {
			infos, err := eng.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{msg(i).Ref()})
			require.NoError(t, err)
			require.ErrorIs(t, infos[0].Err, readreceipt.ErrReceiptNotFound, "m%d, whose track failed", i)
		}
	}
	check(e)
	e2 := reopenOn(t, e, mem)
	check(e2)

	// A failed track can be made again, and then it is there.
	for i := 1; i <= n; i++ {
		require.NoError(t, e2.TrackMessage(ctx, msg(i)))
	}
	infos, err := e2.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{msg(1).Ref(), msg(n).Ref()})
	require.NoError(t, err)
	for _, info := range infos {
		require.NoError(t, info.Err)
		require.Equal(t, 2, info.UnreadCount)
	}
	require.NoError(t, e2.Check(ctx))
}

// reopenOn closes e and opens a new engine on st.
func reopenOn(t *testing.T, e *readreceipt.Engine, st *memstore.Store) *readreceipt.Engine {
	t.Helper()
	require.NoError(t, e.Close())
	e2, err := readreceipt.Open(st, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	t.Cleanup(func() { e2.Close() })
	return e2
}

// TestConcurrentTracksAllLand: many goroutines tracking messages of one
// group at once, with sync writes (their writes are shared), all succeed,
// and a new engine on the store finds every one with its recipients.
func TestConcurrentTracksAllLand(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	e, err := readreceipt.Open(mem, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r", "x", "y"}))
	const workers, each = 16, 50
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				m := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: fmt.Sprint("w", w, "-", i), Sender: "s"}
				if err := e.TrackMessage(ctx, m); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		require.NoError(t, <-errs)
	}
	e2 := reopenOn(t, e, mem)
	var refs []readreceipt.MessageRef
	for w := range workers {
		for i := range each {
			refs = append(refs, readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: fmt.Sprint("w", w, "-", i)})
		}
	}
	for lo := 0; lo < len(refs); lo += 30 {
		infos, err := e2.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), refs[lo:min(lo+30, len(refs))])
		require.NoError(t, err)
		for _, info := range infos {
			require.NoError(t, info.Err, "%s", info.MessageID)
			require.Equal(t, 3, info.UnreadCount, "%s", info.MessageID)
		}
	}
	require.NoError(t, e2.Check(ctx))
}
