package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/readreceipt/readreceipt"
)

// The names of the event messages of /v1/events.
const (
	// eventName is the SDK's name of the event a sender receives when a
	// recipient has read a message.
	eventName = "MESSAGE_READ_RECEIPT_RECEIVED"
	// eventDelivered is sent to a sender when a message reached one more
	// recipient's device.
	eventDelivered = "MESSAGE_DELIVERY_RECEIPT_RECEIVED"
	// eventReadBySelf is sent to a reader's own connections when one of
	// the reader's devices reported messages read (private reads too), so
	// that the others show them read.
	eventReadBySelf = "MESSAGE_READ_BY_SELF"
)

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
	// DeliveredCount and UndeliveredCount are the message's delivery
	// counts; IsPeerDelivered is, for C2C, that it reached the peer.
	DeliveredCount   int  `json:"deliveredCount"`
	UndeliveredCount int  `json:"undeliveredCount"`
	IsPeerDelivered  bool `json:"isPeerDelivered"`
	// Timestamp is, for a C2C message, when the receipt was recorded, in
	// Unix seconds as the SDK has it; left out for group messages (and if
	// the engine has no time), as in readReceiptInfo.
	Timestamp int64 `json:"timestamp,omitempty"`
}

// eventMessage is one WebSocket text message: the events of one kind of
// one receipt call for one sender.
type eventMessage struct {
	Event string      `json:"event"`
	Data  []eventJSON `json:"data"`
}

// ownReadJSON is one item of a MESSAGE_READ_BY_SELF message: what one
// call of the reader's recorded as read.
type ownReadJSON struct {
	// ConversationID is the conversation as the reader sees it:
	// GROUP<groupID> or C2C<the other user>.
	ConversationID string `json:"conversationID"`
	// MessageIDList are the messages the call recorded read.
	MessageIDList []string `json:"messageIDList"`
	// Thread and Mark are set by a read-mark call: the reader's mark
	// afterwards, for Thread ("" for the whole conversation).
	Thread string    `json:"thread"`
	Mark   *markJSON `json:"mark,omitempty"`
}

type ownReadMessage struct {
	Event string        `json:"event"`
	Data  []ownReadJSON `json:"data"`
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
	// perUser caps the open connections of one user.
	perUser int

	mu     sync.Mutex
	conns  map[string]map[*eventClient]struct{}
	closed bool
}

func newHub(m *metrics, log *slog.Logger, depth, perUser int) *hub {
	return &hub{m: m, log: log, depth: depth, perUser: perUser, conns: make(map[string]map[*eventClient]struct{})}
}

// errHubClosed is the answer to a handshake during shutdown.
var errHubClosed = &apiError{Status: http.StatusServiceUnavailable, Code: readreceipt.CodeClosed, Message: "readreceiptd: server shutting down"}

// add registers a new connection of user, before its handshake is
// answered. It fails once the hub is closed, or when user already has
// perUser connections (429, CodeTooManyEventConns).
func (h *hub) add(user string) (*eventClient, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHubClosed
	}
	if len(h.conns[user]) >= h.perUser {
		return nil, &apiError{Status: http.StatusTooManyRequests, Code: CodeTooManyEventConns,
			Message: fmt.Sprintf("readreceiptd: %d event connections are open for this user, the most the server's -max-event-conns-per-user allows", h.perUser)}
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
	return c, nil
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
// call's goroutine and never waits for a client. Events of senders
// without a connection (most of them) are counted and skipped before
// anything is converted or encoded.
func (h *hub) publish(events []readreceipt.ReceiptEvent) {
	h.m.receipts.Add(float64(len(events)))
	// Group by sender and kind, keeping the engine's order within each.
	// A receipt call's events are usually of one sender, so the last
	// lookup is remembered.
	type key struct {
		sender string
		kind   readreceipt.EventKind
	}
	var (
		keys     []key
		byKey    map[key][]eventJSON
		last     string
		lastLive bool
	)
	for i, ev := range events {
		if i == 0 || ev.Sender != last {
			last, lastLive = ev.Sender, h.connected(ev.Sender)
		}
		if !lastLive {
			continue
		}
		if byKey == nil {
			byKey = make(map[key][]eventJSON, 1)
		}
		k := key{ev.Sender, ev.Kind}
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		userID := ev.UserID
		if userID == "" {
			userID = ev.Reader
		}
		byKey[k] = append(byKey[k], eventJSON{
			GroupID:          ev.GroupID,
			UserID:           userID,
			MessageID:        ev.MessageID,
			ReadCount:        ev.ReadCount,
			UnreadCount:      ev.UnreadCount,
			IsPeerRead:       ev.IsPeerRead,
			DeliveredCount:   ev.DeliveredCount,
			UndeliveredCount: ev.UndeliveredCount,
			IsPeerDelivered:  ev.IsPeerDelivered,
			Timestamp:        unixSeconds(ev.ReadTime),
		})
	}
	for _, k := range keys {
		data := byKey[k]
		name := eventName
		if k.kind == readreceipt.EventDelivered {
			name = eventDelivered
		}
		h.send(k.sender, eventMessage{Event: name, Data: data}, len(data))
	}
}

// publishOwn is the engine's subscriber of own-read events: each goes, as
// one MESSAGE_READ_BY_SELF message, to the reader's connections only.
func (h *hub) publishOwn(events []readreceipt.OwnReadEvent) {
	for _, ev := range events {
		if !h.connected(ev.UserID) {
			continue
		}
		item := ownReadJSON{
			ConversationID: conversationID(ev.UserID, ev.Conversation),
			MessageIDList:  nonNil(ev.MessageIDs),
			Thread:         ev.Thread,
		}
		if ev.Mark != nil {
			item.Mark = toMarkJSON(*ev.Mark)
		}
		h.send(ev.UserID, ownReadMessage{Event: eventReadBySelf, Data: []ownReadJSON{item}}, 1)
	}
}

// send encodes msg, n events, and queues it on each connection of user.
// A connection whose queue is full is dropped as too slow.
func (h *hub) send(user string, msg any, n int) {
	cs := h.clients(user)
	if len(cs) == 0 {
		return
	}
	b, err := json.Marshal(msg)
	if err != nil {
		h.log.Error("encode event", "err", err)
		return
	}
	out := outgoing{b: b, n: n}
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

// connected reports whether user has an open connection.
func (h *hub) connected(user string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns[user]) > 0
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
//
// Every refusal is an API error in JSON: 401 for the token, 426 for a
// request that is not a WebSocket handshake, 400 for a malformed one, 403
// for a cross-origin browser, 429 over the per-user connection cap, 503
// during shutdown.
func (s *server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := s.authenticate(r, true)
	if err != nil {
		return err
	}
	if err := checkHandshake(r); err != nil {
		return err
	}
	c, err := s.hub.add(id.UserID)
	if err != nil {
		return err
	}
	defer s.hub.remove(c)
	conn, err := s.acceptWebSocket(w, r)
	if err != nil {
		s.log.Info("events: upgrade failed", "user", id.UserID, "err", err)
		return nil
	}
	s.log.Info("events: connected", "user", id.UserID)
	// The client sends nothing; CloseRead answers pings and notices the
	// peer's close. ctx ends when the connection does.
	ctx := conn.CloseRead(context.Background())
	reason := s.serveEvents(ctx, conn, c)
	s.log.Info("events: disconnected", "user", id.UserID, "reason", reason)
	return nil
}

// acceptWebSocket upgrades a handshake that checkHandshake passed. If
// Accept fails all the same, it has written the response. The server's
// read and write deadlines bound requests, not a WebSocket's life:
// net/http clears them when the connection is hijacked (a test holds it
// to that), and the event loop bounds each write and pings on its own.
func (s *server) acceptWebSocket(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	return websocket.Accept(w, r, nil)
}

// checkHandshake refuses, as API errors, what websocket.Accept would
// refuse in plain text: a request that is not a WebSocket handshake (426),
// a malformed one (400) and a cross-origin one (403; browsers send Origin,
// and only the server's own pages may open its sockets).
func checkHandshake(r *http.Request) error {
	if !r.ProtoAtLeast(1, 1) || !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return &apiError{Status: http.StatusUpgradeRequired, Code: readreceipt.CodeInvalidParameter,
			Message: "readreceiptd: this endpoint is a WebSocket: send an HTTP/1.1 upgrade handshake",
			Header:  http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}}
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return &apiError{Status: http.StatusUpgradeRequired, Code: readreceipt.CodeInvalidParameter,
			Message: "readreceiptd: only WebSocket version 13 is supported",
			Header:  http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Version": {"13"}}}
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return badRequest("a WebSocket handshake needs one Sec-WebSocket-Key")
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return badRequest("Sec-WebSocket-Key must be 16 bytes in base64")
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return &apiError{Status: http.StatusForbidden, Code: CodeOriginRefused,
				Message: "readreceiptd: the Origin of this WebSocket handshake is not this server"}
		}
	}
	return nil
}

// headerHasToken reports whether a comma-separated header of h holds
// token, compared without case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
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
