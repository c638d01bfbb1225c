package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// townHallTestSize is the town hall's size in the Go tests: small enough
// for -race, big enough for three slices (the last one partial). Set
// READRECEIPTD_TOWN_HALL=1000000 to measure the real one.
func townHallTestSize(t *testing.T) int {
	if v := os.Getenv("READRECEIPTD_TOWN_HALL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("READRECEIPTD_TOWN_HALL=%q", v)
		}
		return n
	}
	return 2*townSlice + townSlice/2 + len(demoUsers)
}

func townStatusOf(t testing.TB, base, token string) townStatus {
	t.Helper()
	var st townStatus
	demoOK(t, "GET", base+"/demo/townhall", token, nil, &st)
	return st
}

// The town hall as the page uses it: opening it creates the group in the
// background while the demo chat keeps answering; once it is ready, a
// message there is read by the crowd at the rate asked for, the counts
// move, and the lists page through the members. The server's shutdown
// (at the test's end, with the crowd still reading) stops the crowd.
func TestDemoTownHall(t *testing.T) {
	size := townHallTestSize(t)
	base, _ := startTestServer(t, demoLogs(t), withConfig(func(c *config) { c.DemoTownHall = size }))
	alice, bob := demoLogin(t, base, "alice"), demoLogin(t, base, "bob")

	if st := townStatusOf(t, base, alice); st.State != townAbsent || st.Total != size {
		t.Fatalf("before opening: %+v", st)
	}
	demoFail(t, "POST", base+"/demo/townhall/messages", alice, map[string]string{"text": "too early"}, 409, 10004)
	demoFail(t, "POST", base+"/demo/townhall", alice, map[string]int{"rate": townMaxRate + 1}, 400, 10004)
	demoFail(t, "GET", base+"/demo/townhall", "", nil, 401, 70001)

	// The demo chat, measured while the town hall is created: alice
	// sends, bob reads, until the town hall is ready.
	type chatStats struct {
		receipts int
		slowest  time.Duration
		failed   string
	}
	var (
		chat     chatStats
		chatDone = make(chan struct{})
		stopChat = make(chan struct{})
		once     sync.Once
	)
	go func() {
		defer close(chatDone)
		for i := 0; ; i++ {
			select {
			case <-stopChat:
				return
			default:
			}
			m := demoSend(t, base, alice, fmt.Sprintf("chat %d", i), true)
			start := time.Now()
			status, r := demoCall(t, "POST", base+"/v1/receipts", bob, map[string]any{"messageList": []demoMessage{m}})
			d := time.Since(start)
			if status != 200 || r.Code != 0 {
				chat.failed = fmt.Sprintf("HTTP %d code %d %s", status, r.Code, r.Message)
				return
			}
			chat.receipts++
			chat.slowest = max(chat.slowest, d)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer once.Do(func() { close(stopChat); <-chatDone })

	var st townStatus
	demoOK(t, "POST", base+"/demo/townhall", alice, map[string]any{}, &st)
	if st.State != townCreating && st.State != townReady {
		t.Fatalf("after opening: %+v", st)
	}
	// Opening it again while it is created starts nothing new.
	demoOK(t, "POST", base+"/demo/townhall", bob, map[string]any{}, &st)
	deadline := time.Now().Add(5 * time.Minute)
	progress := []int{}
	for st.State != townReady {
		if st.State == townFailed || time.Now().After(deadline) {
			t.Fatalf("town hall not ready: %+v", st)
		}
		if len(progress) == 0 || progress[len(progress)-1] != st.MemberNum {
			progress = append(progress, st.MemberNum)
		}
		time.Sleep(50 * time.Millisecond)
		st = townStatusOf(t, base, alice)
	}
	once.Do(func() { close(stopChat); <-chatDone })
	if chat.failed != "" {
		t.Fatalf("a demo chat receipt failed during the creation: %s", chat.failed)
	}
	if st.MemberNum != size {
		t.Fatalf("ready with %d members, want %d", st.MemberNum, size)
	}
	if !slices.IsSorted(progress) {
		t.Fatalf("progress went backwards: %v", progress)
	}
	t.Logf("town hall of %d members created in %v; meanwhile the demo chat got %d receipts, the slowest in %v; %d progress steps seen",
		size, time.Duration(st.CreateMS)*time.Millisecond, chat.receipts, chat.slowest, len(progress))

	// Alice speaks in the town hall; the crowd reads at the rate set.
	demoOK(t, "POST", base+"/demo/townhall", alice, map[string]int{"rate": townMaxRate}, &st)
	if st.Rate != townMaxRate || st.State != townReady {
		t.Fatalf("after setting the rate: %+v", st)
	}
	var m demoMessage
	demoOK(t, "POST", base+"/demo/townhall/messages", alice, map[string]string{"text": "Welcome, everyone"}, &m)
	if m.To != townGroupID || m.From != "alice" || !m.NeedReadReceipt {
		t.Fatalf("town hall message: %+v", m)
	}
	if st = townStatusOf(t, base, bob); len(st.MessageList) != 1 || st.MessageList[0].ID != m.ID {
		t.Fatalf("town hall messages: %+v", st.MessageList)
	}
	read := 0
	for deadline := time.Now().Add(30 * time.Second); read < 150; {
		r, unread, code := demoCounts(t, base, alice, m)
		if code != 0 || r+unread != size-1 || r < read {
			t.Fatalf("counts read %d unread %d code %d (read before: %d)", r, unread, code, read)
		}
		read = r
		if time.Now().After(deadline) {
			t.Fatalf("the crowd read %d in 30s at %d a second", read, townMaxRate)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The read list starts with the crowd's first members, in pages; the
	// unread list holds the rest (and the demo users other than alice).
	var p memberPage
	demoOK(t, "POST", base+"/v1/receipts/members", alice, map[string]any{"message": m, "filter": 0, "cursor": "", "count": 100}, &p)
	if p.ReadUserIDList == nil || len(*p.ReadUserIDList) != 100 || (*p.ReadUserIDList)[0] != townMember(0) || p.IsCompleted {
		t.Fatalf("first read page: %+v", p)
	}
	var p2 memberPage
	demoOK(t, "POST", base+"/v1/receipts/members", alice, map[string]any{"message": m, "filter": 0, "cursor": p.Cursor, "count": 30}, &p2)
	if p2.ReadUserIDList == nil || len(*p2.ReadUserIDList) != 30 || (*p2.ReadUserIDList)[0] != townMember(100) {
		t.Fatalf("second read page: %+v", p2)
	}
	demoOK(t, "POST", base+"/v1/receipts/members", alice, map[string]any{"message": m, "filter": 1, "cursor": "", "count": 100}, &p)
	if p.UnreadUserIDList == nil || len(*p.UnreadUserIDList) != 100 || p.IsCompleted {
		t.Fatalf("first unread page: %+v", p)
	}
	// The crowd keeps reading as the test ends: shutdown stops it.
}

// A town hall left smaller by an earlier run (a creation cut short, or a
// smaller -demo-town-hall) is finished when the page opens it, without
// starting over; a complete one is found ready at once after a restart.
func TestDemoTownHallRestart(t *testing.T) {
	dir := t.TempDir()
	run := func(size int) testOption {
		return withConfig(func(c *config) { c.DataDir = dir; c.DemoTownHall = size })
	}
	waitReady := func(t *testing.T, base, token string) townStatus {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			st := townStatusOf(t, base, token)
			if st.State == townReady {
				return st
			}
			if st.State == townFailed || time.Now().After(deadline) {
				t.Fatalf("town hall not ready: %+v", st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	small, big := townSlice+len(demoUsers), 2*townSlice+townSlice/3+len(demoUsers)
	t.Run("first run", func(t *testing.T) {
		base, _ := startTestServer(t, run(small))
		alice := demoLogin(t, base, "alice")
		demoOK(t, "POST", base+"/demo/townhall", alice, map[string]any{}, nil)
		if st := waitReady(t, base, alice); st.MemberNum != small {
			t.Fatalf("first run: %+v", st)
		}
	})
	t.Run("bigger", func(t *testing.T) {
		base, s := startTestServer(t, run(big))
		alice := demoLogin(t, base, "alice")
		if st := townStatusOf(t, base, alice); st.State != townAbsent {
			t.Fatalf("a town hall smaller than asked for is %q before opening", st.State)
		}
		demoOK(t, "POST", base+"/demo/townhall", alice, map[string]any{}, nil)
		if st := waitReady(t, base, alice); st.MemberNum != big {
			t.Fatalf("after finishing: %+v", st)
		}
		info, err := s.eng.GetGroup(context.Background(), townGroupID)
		if err != nil || info.Members != big {
			t.Fatalf("group after finishing: %+v, %v", info, err)
		}
	})
	t.Run("ready after restart", func(t *testing.T) {
		base, _ := startTestServer(t, run(big))
		alice := demoLogin(t, base, "alice")
		if st := townStatusOf(t, base, alice); st.State != townReady || st.MemberNum != big {
			t.Fatalf("complete town hall after a restart: %+v", st)
		}
		var m demoMessage
		demoOK(t, "POST", base+"/demo/townhall/messages", alice, map[string]string{"text": "back again"}, &m)
		if read, unread, code := demoCounts(t, base, alice, m); code != 0 || read+unread != big-1 {
			t.Fatalf("counts of a message after the restart: read %d unread %d code %d", read, unread, code)
		}
	})
}

// Shutting the server down while the million are being added stops the
// creation between two slices: the server stops (the test's cleanup fails
// if it takes over 30 s), and nothing is left running.
func TestDemoTownHallShutdownWhileCreating(t *testing.T) {
	base, _ := startTestServer(t, demoLogs(t), withoutCheck(), withConfig(func(c *config) { c.DemoTownHall = 1_000_000 }))
	alice := demoLogin(t, base, "alice")
	var st townStatus
	demoOK(t, "POST", base+"/demo/townhall", alice, map[string]any{}, &st)
	if st.State != townCreating {
		t.Fatalf("after opening: %+v", st)
	}
}
