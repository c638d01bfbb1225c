package readreceipt_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/stretchr/testify/require"
)

// holdStore is a store whose next synced write can be held until the test
// releases it, and then fail or succeed.
type holdStore struct {
	store.Store
	mu      sync.Mutex
	armed   bool
	held    chan struct{} // closed once the armed write is held
	release chan error    // the held write returns what is sent here
}

func (s *holdStore) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = true
	s.held = make(chan struct{})
	s.release = make(chan error)
}

func (s *holdStore) Write(ctx context.Context, b *store.Batch, opts store.WriteOptions) error {
	s.mu.Lock()
	hold := s.armed && opts.Sync
	if hold {
		s.armed = false
	}
	held, release := s.held, s.release
	s.mu.Unlock()
	if hold {
		close(held)
		if err := <-release; err != nil {
			return err
		}
	}
	return s.Store.Write(ctx, b, opts)
}

// TestReceiptInFlightIsNotAcknowledgedEarly sends the same receipt twice
// while the first call's synced write is held. The second call must not
// answer before the first write is durable: if the first write then fails,
// the second call records the receipt itself; if it succeeds, the second
// answers "already recorded". Either way, whatever the second call
// acknowledged is in the store.
func TestReceiptInFlightIsNotAcknowledgedEarly(t *testing.T) {
	for _, firstFails := range []bool{true, false} {
		name := "first-write-succeeds"
		if firstFails {
			name = "first-write-fails"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			mem := memstore.New()
			st := &holdStore{Store: mem}
			e, err := readreceipt.Open(st, readreceipt.WithSweepInterval(0))
			require.NoError(t, err)
			defer e.Close()
			require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r", "x"}))
			msg := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m1", Sender: "s"}
			require.NoError(t, e.TrackMessage(ctx, msg))
			refs := []readreceipt.MessageRef{msg.Ref()}

			type outcome struct {
				res []readreceipt.ReceiptResult
				err error
			}
			st.arm()
			first := make(chan outcome, 1)
			go func() {
				res, err := e.SendMessageReadReceipt(ctx, "r", refs)
				first <- outcome{res, err}
			}()
			<-st.held
			second := make(chan outcome, 1)
			go func() {
				res, err := e.SendMessageReadReceipt(ctx, "r", refs)
				second <- outcome{res, err}
			}()
			// While the first write is held, the second call may not
			// acknowledge anything: give it time to reach the receipt.
			select {
			case o := <-second:
				if o.err == nil {
					t.Errorf("second call answered %+v while the first call's write was not durable", o.res)
				}
				second <- o
			case <-time.After(200 * time.Millisecond):
			}
			var release error
			if firstFails {
				release = errors.New("disk on fire")
			}
			st.release <- release

			o1 := <-first
			o2 := <-second
			if t.Failed() {
				return
			}
			require.NoError(t, o2.err)
			if firstFails {
				require.ErrorIs(t, o1.err, readreceipt.ErrInternal)
				require.True(t, o2.res[0].Recorded, "the second call must record the receipt the first failed to write")
			} else {
				require.NoError(t, o1.err)
				require.True(t, o1.res[0].Recorded)
				require.False(t, o2.res[0].Recorded)
				require.NoError(t, o2.res[0].Err)
			}

			// What was acknowledged is in the store: a new engine on it sees it.
			require.NoError(t, e.Close())
			e2, err := readreceipt.Open(mem, readreceipt.WithSweepInterval(0))
			require.NoError(t, err)
			defer e2.Close()
			infos, err := e2.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), refs)
			require.NoError(t, err)
			require.Equal(t, 1, infos[0].ReadCount)
			require.NoError(t, e2.Check(ctx))
		})
	}
}

// A 10,000-member message read by 800 members: its reader chunk turns
// from roaring into a bitset on the way (at 625), and every receipt
// stays recorded once, in memory, in the store and after a restart.
func TestReceiptsOnADenseChunk(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	e, err := readreceipt.Open(mem, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	members := userList("u", 10_000)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, members))
	msg := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m", Sender: "u0"}
	require.NoError(t, e.TrackMessage(ctx, msg))
	refs := []readreceipt.MessageRef{msg.Ref()}
	const readers = 800
	for round, want := range []bool{true, false} { // then again: already recorded
		for i := 1; i <= readers; i++ {
			res, err := e.SendMessageReadReceipt(ctx, members[i], refs)
			require.NoError(t, err)
			require.NoError(t, res[0].Err)
			require.Equal(t, want, res[0].Recorded, "round %d, reader %d", round, i)
		}
	}
	count := func(e *readreceipt.Engine) int {
		infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("u0"), refs)
		require.NoError(t, err)
		return infos[0].ReadCount
	}
	require.Equal(t, readers, count(e))
	require.NoError(t, e.Check(ctx))
	require.NoError(t, e.Close())

	e, err = readreceipt.Open(mem, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	defer e.Close()
	require.Equal(t, readers, count(e))
	res, err := e.SendMessageReadReceipt(ctx, members[readers], refs)
	require.NoError(t, err)
	require.False(t, res[0].Recorded, "already recorded before the restart")
	require.NoError(t, e.Check(ctx))
}
