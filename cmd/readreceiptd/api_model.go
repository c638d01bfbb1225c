package main

// The endpoints of the receipt model beyond the seed: delivery receipts,
// a user's own read state, read times, read-up-to marks and private
// receipts (see the engine's model.go). Each works as the seed's do: a
// strict body (codec_model.go), per-message codes inside lists, whole-call
// failures as API errors, and hide() so that a user learns nothing about
// messages that are not theirs.

import (
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/readreceipt/readreceipt"
)

// readStateJSON is one message's state for the token's user: the user's
// own view, private reads included.
type readStateJSON struct {
	ID          string `json:"ID"`
	IsRead      bool   `json:"isRead"`
	IsPrivate   bool   `json:"isPrivate"`
	IsDelivered bool   `json:"isDelivered"`
	// Timestamp is when the user read it, in Unix seconds, where the
	// engine keeps it (C2C; group messages with -read-times); left out
	// otherwise.
	Timestamp int64  `json:"timestamp,omitempty"`
	Code      int    `json:"code"`
	Message   string `json:"message"`
}

// POST /v1/receipts/state (user): the token's user's own read state of
// messages of one conversation, for the user's other devices.
func (s *server) handleReadState(w http.ResponseWriter, r *http.Request, id identity) error {
	req := getListRequest()
	defer putListRequest(req)
	if err := decodeWith(w, r, maxBodyBytes, func(b []byte) error { return decodeMessageList(b, req) }); err != nil {
		return err
	}
	msgs, err := refs(req.MessageList)
	if err != nil {
		return err
	}
	states, err := s.eng.GetMessageReadState(r.Context(), id.UserID, msgs)
	if err != nil {
		return hide(id, err)
	}
	out := make([]readStateJSON, len(states))
	for i, st := range states {
		code, msg := codeOf(hide(id, st.Err))
		out[i] = readStateJSON{ID: st.MessageID, Code: code, Message: msg}
		if code == 0 {
			out[i].IsRead, out[i].IsPrivate, out[i].IsDelivered = st.Read, st.Private, st.Delivered
			out[i].Timestamp = unixSeconds(st.ReadTime)
		}
	}
	writeOK(w, messageListResponse[readStateJSON]{MessageList: out})
	return nil
}

type readTimesRequest struct {
	Message    messageJSON `json:"message"`
	UserIDList []string    `json:"userIDList"`
}

type userReadTimeJSON struct {
	UserID string `json:"userID"`
	IsRead bool   `json:"isRead"`
	// Timestamp is when the user read it, in Unix seconds; left out when
	// unread, private, or recorded without a time.
	Timestamp int64 `json:"timestamp,omitempty"`
}

type readTimesJSON struct {
	MessageID string             `json:"messageID"`
	UserList  []userReadTimeJSON `json:"userList"`
}

// POST /v1/receipts/read-times (user or administrator): when each of the
// users read a message the caller may see the receipts of.
func (s *server) handleReadTimes(w http.ResponseWriter, r *http.Request, id identity) error {
	var req readTimesRequest
	if err := decodeWith(w, r, maxBodyBytes, func(b []byte) error { return decodeReadTimesRequest(b, &req) }); err != nil {
		return err
	}
	ref, err := req.Message.ref()
	if err != nil {
		return err
	}
	times, err := s.eng.GetMessageReadTimes(r.Context(), caller(id), ref, req.UserIDList)
	if err != nil {
		return hide(id, err)
	}
	out := readTimesJSON{MessageID: ref.ID, UserList: make([]userReadTimeJSON, len(times))}
	for i, t := range times {
		out.UserList[i] = userReadTimeJSON{UserID: t.UserID, IsRead: t.Read, Timestamp: unixSeconds(t.ReadTime)}
	}
	writeOK(w, out)
	return nil
}

// Conversation IDs, as the SDK spells them: "GROUP" and the group ID, or
// "C2C" and the other user's ID (the conversation as the token's user
// sees it).
const (
	convIDGroup = "GROUP"
	convIDC2C   = "C2C"
)

// parseConversationID returns the conversation cid names for user.
func parseConversationID(user, cid string) (readreceipt.Conversation, error) {
	if gid, ok := strings.CutPrefix(cid, convIDGroup); ok && gid != "" {
		return readreceipt.Group(gid), nil
	}
	if peer, ok := strings.CutPrefix(cid, convIDC2C); ok && peer != "" {
		return readreceipt.C2C(user, peer), nil
	}
	return readreceipt.Conversation{}, badRequest("conversationID must be GROUP<groupID> or C2C<userID>, not %q", cid)
}

// conversationID returns the SDK's ID of conv as user sees it.
func conversationID(user string, conv readreceipt.Conversation) string {
	if conv.Type == readreceipt.ConversationGroup {
		return convIDGroup + conv.GroupID
	}
	peer := conv.Users[0]
	if peer == user {
		peer = conv.Users[1]
	}
	return convIDC2C + peer
}

type markRequest struct {
	ConversationID string `json:"conversationID"`
	Thread         string `json:"thread"`
	MessageID      string `json:"messageID"`
	// Time is in Unix milliseconds; 0 for none.
	Time int64 `json:"time"`
}

// markJSON is a read mark: the message it was set at ("" for a mark set
// at a time) and its time in Unix milliseconds.
type markJSON struct {
	MessageID string `json:"messageID"`
	Time      int64  `json:"time"`
}

func toMarkJSON(m readreceipt.ReadMark) *markJSON {
	return &markJSON{MessageID: m.MessageID, Time: m.Time.UnixMilli()}
}

type markResultJSON struct {
	ConversationID string    `json:"conversationID"`
	Thread         string    `json:"thread"`
	Mark           *markJSON `json:"mark"`
	// MessageCount is how many tracked messages the call went through,
	// RecordedCount how many receipts it recorded.
	MessageCount  int `json:"messageCount"`
	RecordedCount int `json:"recordedCount"`
}

// POST /v1/conversations/read-mark (user): the token's user has read a
// conversation (or a thread of it) up to a message or a time.
func (s *server) handleMarkRead(w http.ResponseWriter, r *http.Request, id identity) error {
	var req markRequest
	if err := decodeWith(w, r, maxBodyBytes, func(b []byte) error { return decodeMarkRequest(b, &req) }); err != nil {
		return err
	}
	conv, err := parseConversationID(id.UserID, req.ConversationID)
	if err != nil {
		return err
	}
	if req.Time < 0 {
		return badRequest("time must be Unix milliseconds, not %d", req.Time)
	}
	mr := readreceipt.MarkRequest{Conversation: conv, Thread: req.Thread, MessageID: req.MessageID}
	if req.Time > 0 {
		mr.Time = time.UnixMilli(req.Time)
	}
	res, err := s.eng.MarkConversationRead(r.Context(), id.UserID, mr)
	if err != nil {
		return hide(id, err)
	}
	writeOK(w, markResultJSON{
		ConversationID: conversationID(id.UserID, conv), Thread: req.Thread,
		Mark: toMarkJSON(res.Mark), MessageCount: res.Messages, RecordedCount: res.Recorded,
	})
	return nil
}

type readMarkJSON struct {
	ConversationID string `json:"conversationID"`
	Thread         string `json:"thread"`
	// Mark is left out when the user has none.
	Mark *markJSON `json:"mark,omitempty"`
}

// GET /v1/conversations/read-mark?conversationID=..[&thread=..] (user): the
// token's user's mark.
func (s *server) handleGetMark(w http.ResponseWriter, r *http.Request, id identity) error {
	q, err := queryParams(r, "conversationID", "thread")
	if err != nil {
		return err
	}
	conv, err := parseConversationID(id.UserID, q["conversationID"])
	if err != nil {
		return err
	}
	m, ok, err := s.eng.GetReadMark(r.Context(), id.UserID, conv, q["thread"])
	if err != nil {
		return hide(id, err)
	}
	out := readMarkJSON{ConversationID: conversationID(id.UserID, conv), Thread: q["thread"]}
	if ok {
		out.Mark = toMarkJSON(m)
	}
	writeOK(w, out)
	return nil
}

// queryParams returns the query parameters names of r, "" for those not
// given. A parameter given twice, or not valid UTF-8, is refused, as JSON
// bodies are; others are ignored, as unknown JSON fields are.
func queryParams(r *http.Request, names ...string) (map[string]string, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("bad query string: %v", err)
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		v := vals[n]
		switch {
		case len(v) > 1:
			return nil, badRequest("query parameter %s is given %d times", n, len(v))
		case len(v) == 1 && !utf8.ValidString(v[0]):
			return nil, badRequest("query parameter %s is not valid UTF-8", n)
		case len(v) == 1:
			out[n] = v[0]
		}
	}
	return out, nil
}

type privacyJSON struct {
	Private bool `json:"private"`
}

// PUT /v1/me/privacy (user): turn the token's user's private receipts on
// or off.
func (s *server) handleSetPrivacy(w http.ResponseWriter, r *http.Request, id identity) error {
	var req privacyJSON
	if err := decodeWith(w, r, maxBodyBytes, func(b []byte) error { return decodePrivacyRequest(b, &req) }); err != nil {
		return err
	}
	if err := s.eng.SetReceiptsPrivate(r.Context(), id.UserID, req.Private); err != nil {
		return err
	}
	writeOK(w, req)
	return nil
}

// GET /v1/me/privacy (user): whether the token's user's receipts are
// private.
func (s *server) handleGetPrivacy(w http.ResponseWriter, r *http.Request, id identity) error {
	private, err := s.eng.ReceiptsPrivate(r.Context(), id.UserID)
	if err != nil {
		return err
	}
	writeOK(w, privacyJSON{Private: private})
	return nil
}
