package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/readreceipt/readreceipt"
)

// eventName is the SDK's name of the event a sender receives.
const eventName = "MESSAGE_READ_RECEIPT_RECEIVED"

const (
	// eventWriteTimeout bounds one write to an event connection.
	eventWriteTimeout = 5 * time.Second
	// eventPingInterval is how often an idle event connection is pinged,
	// so that dead peers are noticed.
	eventPingInterval = 30 * time.Second
)

// eventJSON is one entry of an event message, with the SDK's fields.
type eventJSON struct {
	// GroupID is the group of a group message; "" for C2C.
	GroupID string `json:"groupID"`
	// UserID is the reader whose receipt caused the event: for a C2C
	// message, its receiver.
	UserID      string `json:"userID"`
	MessageID   string `json:"messageID"`
	ReadCount   int    `json:"readCount"`
	UnreadCount int    `json:"unreadCount"`
	IsPeerRead  bool   `json:"isPeerRead"`
}

// eventMessage is one WebSocket text message: the events of one receipt
// call for one sender.
type eventMessage struct {
	Event string      `json:"event"`
	Data  []eventJSON `json:"data"`
}

// outgoing is an encoded event message waiting for its connection.
type outgoing struct {
	b []byte
	// n is the number of events in it.
	n int
}

// eventClient is one open event connection of a user.
type eventClient struct {
	user  string
	queue chan outgoing
	// drop is closed when the queue overflowed: the connection is closed
	// as too slow.
	drop     chan struct{}
	dropOnce sync.Once
	// stop is closed when the server shuts down.
	stop     chan struct{}
	stopOnce sync.Once
}

// hub delivers the engine's events to the WebSocket connections of each
// message's sender. Its publish never blocks: a connection whose queue is
// full is dropped.
type hub struct {
	m     *metrics
	log   *slog.Logger
	depth int

	mu     sync.Mutex
	conns  map[string]map[*eventClient]struct{}
	closed bool
}

func newHub(m *metrics, log *slog.Logger, depth int) *hub {
	return &hub{m: m, log: log, depth: depth, conns: make(map[string]map[*eventClient]struct{})}
}

// add registers a new connection of user. It returns nil once the hub is
// closed.
func (h *hub) add(user string) *eventClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	c := &eventClient{
		user:  user,
		queue: make(chan outgoing, h.depth),
		drop:  make(chan struct{}),
		stop:  make(chan struct{}),
	}
	set := h.conns[user]
	if set == nil {
		set = make(map[*eventClient]struct{})
		h.conns[user] = set
	}
	set[c] = struct{}{}
	h.m.conns.Inc()
	return c
}

// remove unregisters c; it is called once, when c's handler ends.
func (h *hub) remove(c *eventClient) {
	h.mu.Lock()
	if set := h.conns[c.user]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.conns, c.user)
		}
	}
	h.mu.Unlock()
	h.m.conns.Dec()
}

// clients returns the open connections of user.
func (h *hub) clients(user string) []*eventClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.conns[user]
	if len(set) == 0 {
		return nil
	}
	out := make([]*eventClient, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	return out
}

// publish is the engine subscriber: it queues each sender's events, as one
// message, on each of the sender's connections. It runs on the receipt
// call's goroutine and never waits for a client.
func (h *hub) publish(events []readreceipt.ReceiptEvent) {
	h.m.receipts.Add(float64(len(events)))
	// Group by sender, keeping the engine's order within each.
	var senders []string
	bySender := make(map[string][]eventJSON, 1)
	for _, ev := range events {
		if _, ok := bySender[ev.Sender]; !ok {
			senders = append(senders, ev.Sender)
		}
		userID := ev.UserID
		if userID == "" {
			userID = ev.Reader
		}
		bySender[ev.Sender] = append(bySender[ev.Sender], eventJSON{
			GroupID:     ev.GroupID,
			UserID:      userID,
			MessageID:   ev.MessageID,
			ReadCount:   ev.ReadCount,
			UnreadCount: ev.UnreadCount,
			IsPeerRead:  ev.IsPeerRead,
		})
	}
	for _, sender := range senders {
		cs := h.clients(sender)
		if len(cs) == 0 {
			continue
		}
		data := bySender[sender]
		b, err := json.Marshal(eventMessage{Event: eventName, Data: data})
		if err != nil {
			h.log.Error("encode event", "err", err)
			continue
		}
		out := outgoing{b: b, n: len(data)}
		for _, c := range cs {
			select {
			case c.queue <- out:
			default:
				c.dropOnce.Do(func() {
					h.m.slowClosed.Inc()
					close(c.drop)
				})
				h.m.eventsDropped.Add(float64(out.n))
			}
		}
	}
}

// close closes every connection with StatusGoingAway and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	for _, set := range h.conns {
		for c := range set {
			c.stopOnce.Do(func() { close(c.stop) })
		}
	}
	h.mu.Unlock()
}

// handleEvents serves GET /v1/events: a WebSocket on which the token's
// user receives the events of the messages it sent. The token comes in the
// Authorization header or, for browsers, the token query parameter.
func (s *server) handleEvents(w http.ResponseWriter, r *http.Request) {
	id, err := s.authenticate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		// Accept has written the response.
		s.log.Info("events: upgrade failed", "user", id.UserID, "err", err)
		return
	}
	c := s.hub.add(id.UserID)
	if c == nil {
		conn.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer s.hub.remove(c)
	s.log.Info("events: connected", "user", id.UserID)
	// The client sends nothing; CloseRead answers pings and notices the
	// peer's close. ctx ends when the connection does.
	ctx := conn.CloseRead(context.Background())
	reason := s.serveEvents(ctx, conn, c)
	s.log.Info("events: disconnected", "user", id.UserID, "reason", reason)
}

// serveEvents writes c's queue to conn until the connection ends, the
// client is dropped or the server stops. It returns why it ended.
func (s *server) serveEvents(ctx context.Context, conn *websocket.Conn, c *eventClient) string {
	ping := time.NewTicker(eventPingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.drop:
			// Count what was queued and will not be sent.
			for drained := false; !drained; {
				select {
				case out := <-c.queue:
					s.metrics.eventsDropped.Add(float64(out.n))
				default:
					drained = true
				}
			}
			conn.Close(websocket.StatusPolicyViolation, "too slow: event queue full")
			return "dropped: too slow"
		case <-c.stop:
			conn.Close(websocket.StatusGoingAway, "server shutting down")
			return "server shutting down"
		case <-ctx.Done():
			conn.CloseNow()
			return "closed by peer"
		case out := <-c.queue:
			wctx, cancel := context.WithTimeout(ctx, eventWriteTimeout)
			err := conn.Write(wctx, websocket.MessageText, out.b)
			cancel()
			if err != nil {
				s.metrics.eventsDropped.Add(float64(out.n))
				conn.CloseNow()
				if errors.Is(err, context.DeadlineExceeded) {
					return "write timed out"
				}
				return "write failed"
			}
			s.metrics.eventsSent.Add(float64(out.n))
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, eventWriteTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				conn.CloseNow()
				return "ping failed"
			}
		}
	}
}
