package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/readreceipt/readreceipt"
)

// eventTimeout bounds the wait for one event: a liveness bound, not a
// latency assertion.
const eventTimeout = 2 * time.Second

// dialEvents opens an event connection with token, in the query string or
// in the Authorization header.
func dialEvents(t testing.TB, base, token string, inHeader bool, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/v1/events"
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	if inHeader {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	} else {
		u += "?token=" + token
	}
	conn, resp, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		t.Fatalf("dial events: %v (%v)", err, resp)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// waitConns waits until the hub holds n connections of user.
func waitConns(t testing.TB, s *server, user string, n int) {
	t.Helper()
	waitFor(t, func() bool { return len(s.hub.clients(user)) == n })
}

// readEvent reads one event message, within eventTimeout, and checks it
// against the spec's EventMessage schema.
func readEvent(t testing.TB, conn *websocket.Conn) eventMessage {
	t.Helper()
	b := readEventRaw(t, conn)
	var ev eventMessage
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// readEventRaw reads one event message, within eventTimeout, checks it
// against the spec's EventMessage schema and returns it.
func readEventRaw(t testing.TB, conn *websocket.Conn) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	typ, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("event message of type %v", typ)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatalf("event is not JSON: %s", b)
	}
	if err := loadSpec(t).eventSchema().VisitJSON(generic); err != nil {
		t.Fatalf("event does not match the EventMessage schema: %v\n%s", err, b)
	}
	return b
}

func wantEvent(t testing.TB, conn *websocket.Conn, want ...eventJSON) {
	t.Helper()
	got := readEvent(t, conn)
	if got.Event != "MESSAGE_READ_RECEIPT_RECEIVED" || fmt.Sprint(got.Data) != fmt.Sprint(want) {
		t.Fatalf("event %+v, want %+v", got, want)
	}
}

// wantC2CEvent is wantEvent for C2C events: each item's timestamp must be
// a read time in seconds from since (truncated) to now, and the items must
// otherwise be want.
func wantC2CEvent(t testing.TB, conn *websocket.Conn, since time.Time, want ...eventJSON) {
	t.Helper()
	got := readEvent(t, conn)
	now := time.Now().Unix()
	for i := range got.Data {
		if ts := got.Data[i].Timestamp; ts < since.Unix() || ts > now {
			t.Fatalf("C2C event %+v: timestamp %d is not a read time in [%d, %d]", got.Data[i], ts, since.Unix(), now)
		}
		got.Data[i].Timestamp = 0
	}
	if got.Event != "MESSAGE_READ_RECEIPT_RECEIVED" || fmt.Sprint(got.Data) != fmt.Sprint(want) {
		t.Fatalf("event %+v, want %+v", got, want)
	}
}

// wantOwnRead reads one event message and requires it to be the
// MESSAGE_READ_BY_SELF message of want.
func wantOwnRead(t testing.TB, conn *websocket.Conn, want ...ownReadJSON) {
	t.Helper()
	b := readEventRaw(t, conn)
	var got ownReadMessage
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Event != "MESSAGE_READ_BY_SELF" || mustJSON(t, got.Data) != mustJSON(t, want) {
		t.Fatalf("event %s, want MESSAGE_READ_BY_SELF %s", b, mustJSON(t, want))
	}
}

func TestEventsReachSenderConnections(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob", "carol"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m2", "bob")), nil)
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c1")), nil)
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c2")), nil)

	aliceTok := f.s.mintToken("alice", time.Hour)
	a1 := dialEvents(t, f.base, aliceTok, false, nil)
	a2 := dialEvents(t, f.base, aliceTok, true, nil)
	b1 := dialEvents(t, f.base, f.s.mintToken("bob", time.Hour), false, nil)
	waitConns(t, f.s, "alice", 2)
	waitConns(t, f.s, "bob", 1)

	bob, carol := f.user("bob"), f.user("carol")
	bob.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
	m1bob := eventJSON{GroupID: "g", UserID: "bob", MessageID: "m1", ReadCount: 1, UnreadCount: 1, DeliveredCount: 1, UndeliveredCount: 1}
	wantEvent(t, a1, m1bob)
	wantEvent(t, a2, m1bob)

	// Bob's own connection is told that bob read m1 (for his other
	// devices), and nothing else of that receipt.
	wantOwnRead(t, b1, ownReadJSON{ConversationID: "GROUPg", MessageIDList: []string{"m1"}})

	// One call reads a message of alice's and one of bob's: each sender
	// gets its own.
	carol.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice"), gmsg("g", "m2", "bob")), nil)
	m1carol := eventJSON{GroupID: "g", UserID: "carol", MessageID: "m1", ReadCount: 2, UnreadCount: 0, DeliveredCount: 2, UndeliveredCount: 0}
	wantEvent(t, a1, m1carol)
	wantEvent(t, a2, m1carol)
	wantEvent(t, b1, eventJSON{GroupID: "g", UserID: "carol", MessageID: "m2", ReadCount: 1, UnreadCount: 1, DeliveredCount: 1, UndeliveredCount: 1})

	// A repeated receipt sends nothing: the next event alice sees is c1's.
	bob.ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
	before := time.Now()
	bob.ok("POST", "/v1/receipts", list(cmsg("alice", "bob", "c1")), nil)
	c1 := eventJSON{UserID: "bob", MessageID: "c1", ReadCount: 1, UnreadCount: 0, IsPeerRead: true, DeliveredCount: 1, UndeliveredCount: 0, IsPeerDelivered: true}
	wantC2CEvent(t, a1, before, c1)
	wantC2CEvent(t, a2, before, c1)

	// A connection that closes leaves the others working.
	a1.Close(websocket.StatusNormalClosure, "")
	waitConns(t, f.s, "alice", 1)
	before = time.Now()
	bob.ok("POST", "/v1/receipts", list(cmsg("alice", "bob", "c2")), nil)
	wantC2CEvent(t, a2, before, eventJSON{UserID: "bob", MessageID: "c2", ReadCount: 1, UnreadCount: 0, IsPeerRead: true, DeliveredCount: 1, UndeliveredCount: 0, IsPeerDelivered: true})

	// The server counts an event once its write returns, which may be
	// after the client has read it: wait (boundedly) for the count.
	// 8 receipt events, and 3 own reads on bob's connection (m1, c1, c2).
	deadline := time.Now().Add(2 * time.Second)
	for value(f.s.metrics.eventsSent) < 11 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := value(f.s.metrics.eventsSent); got != 11 {
		t.Errorf("events_sent = %v, want 11", got)
	}
	if got := value(f.s.metrics.receipts); got != 5 {
		t.Errorf("receipts_recorded = %v, want 5", got)
	}
	if got := value(f.s.metrics.conns); got != 2 {
		t.Errorf("websocket_connections = %v, want 2", got)
	}
}

// smallReadBuffer makes a dialer whose connections have a small receive
// buffer, so that a client that does not read stops the server's writes
// soon.
func smallReadBuffer() *websocket.DialOptions {
	d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
}

// smallWriteBuffer wraps a listener so that accepted connections have a
// small send buffer.
func smallWriteBuffer(ln net.Listener) net.Listener { return smallBufListener{ln} }

type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestSlowEventClientDropped(t *testing.T) {
	// Small socket buffers on both sides: a client that does not read
	// stops the server's writes after a few tens of kilobytes, whatever
	// the kernel's buffer autotuning would allow.
	f := newFixture(t, withConfig(func(c *config) { c.EventQueue = 4 }), withListener(smallWriteBuffer))
	ctx := context.Background()
	eng := f.s.eng
	readers := make([]string, 200)
	for i := range readers {
		readers[i] = fmt.Sprintf("reader%03d", i)
	}
	if err := eng.CreateGroup(ctx, "g", readreceipt.GroupWork, append([]string{"alice"}, readers...)); err != nil {
		t.Fatal(err)
	}
	// Long message IDs make big event messages, which fill the slow
	// client's buffers sooner.
	msgs := make([]readreceipt.MessageRef, 30)
	for i := range msgs {
		m := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 120)), Sender: "alice"}
		if err := eng.TrackMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		msgs[i] = m.Ref()
	}

	aliceTok := f.s.mintToken("alice", time.Hour)
	slow := dialEvents(t, f.base, aliceTok, false, smallReadBuffer())
	fast := dialEvents(t, f.base, aliceTok, true, nil)
	waitConns(t, f.s, "alice", 2)

	// Each call records 30 receipts: one event message for each of
	// alice's connections. The fast client reads each before the next
	// call; the slow one never reads.
	calls := 0
	for _, r := range readers {
		if value(f.s.metrics.slowClosed) > 0 {
			break
		}
		res, err := eng.SendMessageReadReceipt(ctx, r, msgs)
		if err != nil || !res[0].Recorded {
			t.Fatalf("receipts of %s: %v %+v", r, err, res[0])
		}
		calls++
		ev := readEvent(t, fast)
		if len(ev.Data) != 30 || ev.Data[0].UserID != r {
			t.Fatalf("fast client got %d events of %q, want 30 of %q", len(ev.Data), ev.Data[0].UserID, r)
		}
	}
	if value(f.s.metrics.slowClosed) != 1 {
		t.Fatalf("the slow client was not dropped after %d calls", calls)
	}
	t.Logf("slow client dropped after %d calls", calls)
	// The fast client keeps receiving.
	waitConns(t, f.s, "alice", 1)
	last := readers[calls]
	if _, err := eng.SendMessageReadReceipt(ctx, last, msgs); err != nil {
		t.Fatal(err)
	}
	if ev := readEvent(t, fast); ev.Data[0].UserID != last {
		t.Fatalf("fast client after the drop got %+v", ev.Data[0])
	}
	if got := value(f.s.metrics.eventsDropped); got < 30 {
		t.Errorf("events_dropped = %v, want at least one batch of 30", got)
	}
	// The slow client, reading at last, finds its connection closed once
	// what was buffered is read: with 1008 if the close frame got through,
	// else by the connection's end.
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	for n := 0; err == nil; n++ {
		_, _, err = slow.Read(rctx)
		if n > calls {
			t.Fatalf("slow client read %d messages, more than were sent", n)
		}
	}
	if st := websocket.CloseStatus(err); st != websocket.StatusPolicyViolation && st != -1 {
		t.Fatalf("slow client closed with %v", err)
	}
	if rctx.Err() != nil {
		t.Fatalf("slow client not closed: %v", err)
	}
	waitFor(t, func() bool { return value(f.s.metrics.conns) == 1 })
}

// value returns the value of a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	panic("not a counter or gauge")
}
