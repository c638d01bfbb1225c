package compare

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConformance runs one scripted workload on every system and checks each
// answer against the expected one: the same recipients, counts, pages and
// idempotence everywhere, so that the benchmarks compare systems that do the
// same job. Peers whose server is absent are skipped.
func TestConformance(t *testing.T) {
	for _, name := range systemNames {
		t.Run(name, func(t *testing.T) {
			skipIfDown(t, name)
			if waits(name) {
				setReplica(t, true)
			}
			ctx := context.Background()
			s, err := newSystem(ctx, name, t.TempDir(), 8)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := dropSystem(ctx, s); err != nil {
					t.Error(err)
				}
			})
			conform(t, ctx, s)
		})
	}
}

func users(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func conform(t *testing.T, ctx context.Context, s System) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	receipts := func(reader string, ids []string, want int) {
		t.Helper()
		got, err := s.Receipts(ctx, "g", reader, ids)
		must(err)
		if got != want {
			t.Errorf("Receipts(%s, %v) recorded %d, want %d", reader, ids, got, want)
		}
	}

	// Membership history: recipients are the members at track time,
	// minus the sender.
	must(s.CreateGroup(ctx, "g", append(users("u", 0, 10), "u3"))) // a repeat counts once
	if err := s.CreateGroup(ctx, "g", users("u", 0, 2)); err == nil {
		t.Error("CreateGroup of an existing group succeeded")
	}
	must(s.Track(ctx, "g", "m1", "u0")) // recipients u1..u9
	must(s.AddMembers(ctx, "g", []string{"u10", "u11", "u5"}))
	must(s.Track(ctx, "g", "m2", "u1")) // u0, u2..u11
	must(s.RemoveMembers(ctx, "g", []string{"u2", "nobody"}))
	must(s.Track(ctx, "g", "m3", "admin")) // not a member: u0, u1, u3..u11
	must(s.Track(ctx, "g", "m1", "u0"))    // tracking again changes nothing
	if err := s.Track(ctx, "nogroup", "m1", "u0"); err == nil {
		t.Error("Track in an unknown group succeeded")
	}

	receipts("u5", []string{"m1", "m2", "m3"}, 3)
	receipts("u5", []string{"m1", "m2"}, 0) // repeated: nothing new
	receipts("u0", []string{"m1"}, 0)       // the sender's own message
	receipts("u0", []string{"m2"}, 1)
	receipts("u10", []string{"m1"}, 0) // joined after m1
	receipts("u10", []string{"m2", "m3"}, 2)
	receipts("u2", []string{"m1", "m2", "m3"}, 2) // left before m3: still a recipient of m1, m2
	receipts("stranger", []string{"m1"}, 0)
	receipts("u3", []string{"m1", "nope"}, 1) // an unknown message does not fail the others

	// Concurrent repeats of the same receipts count once each.
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range []string{"u4", "u6", "u7", "u8", "u9"} {
				n, err := s.Receipts(ctx, "g", r, []string{"m3", "m1", "m2"})
				if err != nil {
					errs <- err
					return
				}
				total.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := total.Load(); got != 15 {
		t.Errorf("16 goroutines sending the same 15 receipts recorded %d, want 15", got)
	}

	got, err := s.Counts(ctx, "g", []string{"m1", "m2", "m3", "nope"})
	must(err)
	want := []Count{{true, 8, 1}, {true, 9, 2}, {true, 7, 4}, {}}
	if !slices.Equal(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}

	walk := func(msg string, unread bool, n int, want ...[]string) {
		t.Helper()
		var got [][]string
		cursor := ""
		for i := 0; ; i++ {
			us, next, done, err := s.Page(ctx, "g", msg, unread, cursor, n)
			must(err)
			got = append(got, us)
			if done || i > 20 {
				break
			}
			cursor = next
		}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("pages of %s (unread %v, n %d) = %v, want %v", msg, unread, n, got, want)
		}
	}
	walk("m2", false, 3, []string{"u0", "u2", "u4"}, []string{"u5", "u6", "u7"}, []string{"u8", "u9", "u10"})
	walk("m1", true, 3, []string{"u1"})
	walk("m3", true, 3, []string{"u0", "u1", "u3"}, []string{"u11"})
	walk("m1", false, 100, []string{"u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"})
	walk("m3", false, 2, []string{"u4", "u5"}, []string{"u6", "u7"}, []string{"u8", "u9"}, []string{"u10"})
	walk("m2", true, 5, []string{"u3", "u11"})

	if _, _, _, err := s.Page(ctx, "g", "nope", true, "", 10); err == nil {
		t.Error("Page of an unknown message succeeded")
	}
	if _, _, _, err := s.Page(ctx, "g", "m1", false, "zz!", 10); err == nil {
		t.Error("Page with a garbled cursor succeeded")
	}
	if _, _, _, err := s.Page(ctx, "g", "m1", false, "", 0); err == nil {
		t.Error("Page of count 0 succeeded")
	}

	bigGroup(t, ctx, s)
	events(t, ctx, s)
	if d, ok := s.(Deleter); ok {
		must(d.Delete(ctx, "g", []string{"m1"}))
		got, err := s.Counts(ctx, "g", []string{"m1", "m2"})
		must(err)
		if got[0].Found || !got[1].Found {
			t.Errorf("after Delete(m1): Counts = %v, want m1 gone and m2 kept", got)
		}
	}
	if r, ok := s.(Reopener); ok {
		must(r.Stop())
		must(r.Start(ctx))
		got, err := s.Counts(ctx, "g", []string{"m2", "m3"})
		must(err)
		if want := []Count{{true, 9, 2}, {true, 7, 4}}; !slices.Equal(got, want) {
			t.Errorf("after Reopen: Counts = %v, want %v", got, want)
		}
	}
}

// bigGroup loads 90% readers the way the benchmarks do (Loader when the
// system has one) and walks every page.
func bigGroup(t *testing.T, ctx context.Context, s System) {
	members := users("b", 0, 1000)
	if err := s.CreateGroup(ctx, "big", members); err != nil {
		t.Fatal(err)
	}
	if err := s.Track(ctx, "big", "m", "b0"); err != nil {
		t.Fatal(err)
	}
	var readers, unread []string
	for i := 1; i < 1000; i++ {
		if i%10 == 0 {
			unread = append(unread, members[i])
		} else {
			readers = append(readers, members[i])
		}
	}
	if err := loadReads(ctx, s, "big", "m", readers); err != nil {
		t.Fatal(err)
	}
	c, err := s.Counts(ctx, "big", []string{"m"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Count{true, 900, 99}); c[0] != want {
		t.Errorf("big group: Counts = %v, want %v", c[0], want)
	}
	for _, unr := range []bool{false, true} {
		var all []string
		cursor, pages := "", 0
		for {
			us, next, done, err := s.Page(ctx, "big", "m", unr, cursor, 100)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, us...)
			pages++
			if done {
				break
			}
			if len(us) != 100 || pages > 20 {
				t.Fatalf("page %d of %d members before the end", pages, len(us))
			}
			cursor = next
		}
		want := readers
		if unr {
			want = unread
		}
		if !slices.Equal(all, want) {
			t.Errorf("big group, unread %v: walked %d members, want %d in member order", unr, len(all), len(want))
		}
	}
}

func events(t *testing.T, ctx context.Context, s System) {
	n, ok := s.(Notifier)
	if !ok {
		return
	}
	if err := s.CreateGroup(ctx, "ev", users("e", 0, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Track(ctx, "ev", "m", "e0"); err != nil {
		t.Fatal(err)
	}
	got := make(chan Event, 10)
	stop, err := n.Subscribe(ctx, "ev", func(ev Event) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, r := range []string{"e1", "e1", "e2"} {
		if _, err := s.Receipts(ctx, "ev", r, []string{"m"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []Event{{"m", "e1", 1, 3}, {"m", "e2", 2, 2}}
	for _, w := range want {
		select {
		case ev := <-got:
			if ev != w {
				t.Errorf("event %v, want %v", ev, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %v within 5s", w)
		}
	}
	select {
	case ev := <-got:
		t.Errorf("extra event %v for a repeated receipt", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

// loadReads records that readers have read msgID, with the system's Loader
// if it has one, else with Receipts from a few goroutines. Every receipt
// must be new.
func loadReads(ctx context.Context, s System, gid, msgID string, readers []string) error {
	if l, ok := s.(Loader); ok {
		return l.Load(ctx, gid, msgID, readers)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(readers) {
					return
				}
				n, err := s.Receipts(ctx, gid, readers[i], []string{msgID})
				if err == nil && n != 1 {
					err = fmt.Errorf("loading %s: receipt of %s recorded %d", msgID, readers[i], n)
				}
				if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
