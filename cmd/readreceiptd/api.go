package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/readreceipt/readreceipt"
)

// Request body limits. Membership lists of large groups are long; every
// other body is small.
const (
	maxBodyBytes       = 1 << 20
	maxMemberBodyBytes = 64 << 20
)

// messageJSON is a message as the SDK's Message object names it. Fields of
// the SDK's Message that the engine does not need are ignored.
type messageJSON struct {
	ID string `json:"ID"`
	// ConversationType is "GROUP" or "C2C".
	ConversationType string `json:"conversationType"`
	// To is the group ID of a group message, the receiver of a C2C one.
	To string `json:"to"`
	// From is the sender.
	From string `json:"from"`
	// NeedReadReceipt is read by POST /v1/messages only.
	NeedReadReceipt bool `json:"needReadReceipt"`
	// Thread is the thread of the conversation the message belongs to
	// ("" for none); read by POST /v1/messages only.
	Thread string `json:"thread"`
}

// SDK conversation types.
const (
	convGroup = "GROUP"
	convC2C   = "C2C"
)

func badRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: readreceipt.CodeInvalidParameter, Message: "readreceiptd: " + fmt.Sprintf(format, args...)}
}

// conversation returns the engine's conversation of m.
func (m messageJSON) conversation() (readreceipt.Conversation, error) {
	switch m.ConversationType {
	case convGroup:
		return readreceipt.Group(m.To), nil
	case convC2C:
		if m.From == "" || m.To == "" {
			return readreceipt.Conversation{}, badRequest("a C2C message needs from and to")
		}
		return readreceipt.C2C(m.From, m.To), nil
	default:
		return readreceipt.Conversation{}, badRequest("conversationType must be %q or %q, not %q", convGroup, convC2C, m.ConversationType)
	}
}

// ref returns the engine's reference to m.
func (m messageJSON) ref() (readreceipt.MessageRef, error) {
	conv, err := m.conversation()
	if err != nil {
		return readreceipt.MessageRef{}, err
	}
	return readreceipt.MessageRef{Conversation: conv, ID: m.ID}, nil
}

func refs(list []messageJSON) ([]readreceipt.MessageRef, error) {
	out := make([]readreceipt.MessageRef, len(list))
	for i, m := range list {
		r, err := m.ref()
		if err != nil {
			return nil, fmt.Errorf("messageList[%d]: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

// Body errors.
var (
	errEmptyBody = badRequest("empty body: a JSON object is expected")
	errNotUTF8   = badRequest("the body is not valid UTF-8 (or holds an unpaired UTF-16 surrogate escape): strings are taken exactly or refused")
)

// bodyBuffers are pooled request-body buffers.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// decode reads r's JSON body into v. The body must be declared as
// application/json (415 otherwise), fit in limit bytes (413), arrive
// before the server's read deadline (408), and be valid UTF-8 with no
// unpaired surrogate escape (400): encoding/json would silently replace
// either by U+FFFD, so that two different IDs would become one. Unknown
// fields are ignored, so that a client may send the SDK's whole Message
// object.
func decode(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	return decodeWith(w, r, limit, func(body []byte) error { return json.Unmarshal(body, v) })
}

// decodeWith is decode with the JSON decoder given: unmarshal decodes the
// body, which decodeWith has checked (type, size, deadline, exact text).
func decodeWith(w http.ResponseWriter, r *http.Request, limit int64, unmarshal func([]byte) error) error {
	if err := checkJSONType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			bodyBuffers.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return &apiError{Status: http.StatusRequestEntityTooLarge, Code: readreceipt.CodeInvalidParameter,
				Message: fmt.Sprintf("readreceiptd: body over %d bytes", mbe.Limit)}
		case errors.Is(err, os.ErrDeadlineExceeded):
			return &apiError{Status: http.StatusRequestTimeout, Code: readreceipt.CodeInvalidParameter,
				Message: "readreceiptd: the body did not arrive within the server's -read-timeout"}
		default:
			return badRequest("reading the body: %v", err)
		}
	}
	body := buf.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		return errEmptyBody
	}
	if !exactJSONText(body) {
		return errNotUTF8
	}
	if err := unmarshal(body); err != nil {
		return badRequest("bad JSON body: %v", err)
	}
	return nil
}

// checkJSONType accepts application/json, with at most a charset
// parameter of utf-8.
func checkJSONType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		cs, ok := params["charset"]
		if len(params) == 0 || (len(params) == 1 && ok && strings.EqualFold(cs, "utf-8")) {
			return nil
		}
	}
	if ct == "" {
		ct = "none"
	}
	return &apiError{Status: http.StatusUnsupportedMediaType, Code: readreceipt.CodeInvalidParameter,
		Message: fmt.Sprintf("readreceiptd: Content-Type must be application/json, not %s", ct)}
}

// exactJSONText reports whether a JSON text decodes without replacement:
// it is valid UTF-8, and every \u escape of a UTF-16 surrogate is half of
// a pair. A backslash appears in JSON inside strings only, so escapes are
// found without tracking where strings begin; malformed escapes are left
// for the JSON decoder to refuse.
func exactJSONText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := bytes.IndexByte(b, '\\'); i >= 0; {
		if i+1 >= len(b) {
			return true
		}
		if b[i+1] != 'u' {
			i = next(b, i+2)
			continue
		}
		r, ok := hex4(b, i+2)
		if !ok {
			return true // the decoder refuses it
		}
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return false // a low half without its high half
		case 0xD800 <= r && r <= 0xDBFF:
			if i+11 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
				return false
			}
			lo, ok := hex4(b, i+8)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i = next(b, i+12)
		default:
			i = next(b, i+6)
		}
	}
	return true
}

// next returns the index of the first backslash of b at or after from,
// or -1.
func next(b []byte, from int) int {
	if from >= len(b) {
		return -1
	}
	j := bytes.IndexByte(b[from:], '\\')
	if j < 0 {
		return -1
	}
	return from + j
}

// hex4 decodes the four hexadecimal digits of b at i.
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// codeOf returns the code and message of a per-message error (0, "" for
// nil).
func codeOf(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	_, body := errorResponse(err)
	return body.Code, body.Message
}

// hide returns the error a user (not the administrator) is given for err
// about a message. Whether a message exists is not the user's to learn:
// "permission denied" (10007: not the sender), "not a recipient" (91006)
// and "group not found" (10010) would each tell a user that a message ID
// is, or is not, in use. They are answered as 10062, exactly as for a
// message that was never tracked. Errors about the request itself, and
// "own message" (91005, which only the sender gets), are kept.
func hide(id identity, err error) error {
	if err == nil || id.Admin {
		return err
	}
	var ee *readreceipt.Error
	if errors.As(err, &ee) {
		switch ee.Code {
		case readreceipt.CodePermissionDenied, readreceipt.CodeNotRecipient, readreceipt.CodeGroupNotFound:
			return &apiError{Status: http.StatusNotFound, Code: readreceipt.CodeReceiptNotFound, Message: errNotFoundMessage}
		case readreceipt.CodeReceiptNotFound:
			return &apiError{Status: http.StatusNotFound, Code: readreceipt.CodeReceiptNotFound, Message: errNotFoundMessage}
		}
	}
	return err
}

// errNotFoundMessage is the one message of 10062 to users, whatever the
// engine's reason was.
const errNotFoundMessage = "readreceiptd: no receipt info for the message"

// POST /v1/messages (administrator): track a sent message that asks for
// read receipts.
func (s *server) handleTrack(w http.ResponseWriter, r *http.Request, _ identity) error {
	var m messageJSON
	if err := decode(w, r, &m, maxBodyBytes); err != nil {
		return err
	}
	conv, err := m.conversation()
	if err != nil {
		return err
	}
	if !m.NeedReadReceipt {
		writeOK(w, trackResponse{Tracked: false})
		return nil
	}
	if err := s.eng.TrackMessage(r.Context(), readreceipt.Message{Conversation: conv, ID: m.ID, Sender: m.From, Thread: m.Thread}); err != nil {
		return err
	}
	writeOK(w, trackResponse{Tracked: true})
	return nil
}

type trackResponse struct {
	Tracked bool `json:"tracked"`
}

type messageRequest struct {
	Message messageJSON `json:"message"`
}

// POST /v1/messages/delete (administrator): drop a recalled or deleted
// message's receipt state.
func (s *server) handleDelete(w http.ResponseWriter, r *http.Request, _ identity) error {
	var req messageRequest
	if err := decode(w, r, &req, maxBodyBytes); err != nil {
		return err
	}
	ref, err := req.Message.ref()
	if err != nil {
		return err
	}
	if err := s.eng.DeleteMessage(r.Context(), ref); err != nil {
		return err
	}
	writeOK(w, struct{}{})
	return nil
}

type messageListRequest struct {
	MessageList []messageJSON `json:"messageList"`
}

// listRequests are pooled request structs, so that decoding a list does
// not grow a new slice element by element on every call. Elements are
// zeroed before reuse: encoding/json decodes into an element in place and
// would keep the fields a new element does not name.
var listRequests = sync.Pool{New: func() any {
	return &messageListRequest{MessageList: make([]messageJSON, 0, pooledListCap)}
}}

// pooledListCap is the capacity of pooled lists: the engine's default
// bound on messages per call.
const pooledListCap = 30

func getListRequest() *messageListRequest {
	req := listRequests.Get().(*messageListRequest)
	l := req.MessageList[:cap(req.MessageList)]
	clear(l)
	req.MessageList = l[:0]
	return req
}

func putListRequest(req *messageListRequest) {
	if cap(req.MessageList) <= 2*pooledListCap {
		listRequests.Put(req)
	}
}

// receiptResults are pooled answer lists of receipt calls.
var resultLists = sync.Pool{New: func() any { s := make([]receiptResultJSON, 0, pooledListCap); return &s }}

type receiptResultJSON struct {
	ID       string `json:"ID"`
	Recorded bool   `json:"recorded"`
	Code     int    `json:"code"`
	Message  string `json:"message"`
}

type messageListResponse[T any] struct {
	MessageList []T `json:"messageList"`
}

// POST /v1/receipts (user): the token's user has read the messages.
func (s *server) handleSendReceipts(w http.ResponseWriter, r *http.Request, id identity) error {
	return s.sendReceipts(w, r, id, s.eng.SendMessageReadReceipt)
}

// POST /v1/receipts/delivered (user): the token's user's device has
// received the messages.
func (s *server) handleSendDelivered(w http.ResponseWriter, r *http.Request, id identity) error {
	return s.sendReceipts(w, r, id, s.eng.SendMessageDeliveryReceipt)
}

// sendReceipts answers a receipt call made with send.
func (s *server) sendReceipts(w http.ResponseWriter, r *http.Request, id identity,
	send func(context.Context, string, []readreceipt.MessageRef) ([]readreceipt.ReceiptResult, error)) error {
	req := getListRequest()
	defer putListRequest(req)
	if err := decodeWith(w, r, maxBodyBytes, func(b []byte) error { return decodeMessageList(b, req) }); err != nil {
		return err
	}
	msgs, err := refs(req.MessageList)
	if err != nil {
		return err
	}
	res, err := send(r.Context(), id.UserID, msgs)
	if err != nil {
		return hide(id, err)
	}
	outp := resultLists.Get().(*[]receiptResultJSON)
	out := (*outp)[:0]
	for _, rr := range res {
		code, msg := codeOf(hide(id, rr.Err))
		out = append(out, receiptResultJSON{ID: rr.MessageID, Recorded: rr.Recorded, Code: code, Message: msg})
	}
	writeReceiptResults(w, out)
	if cap(out) <= 2*pooledListCap {
		clear(out)
		*outp = out[:0]
		resultLists.Put(outp)
	}
	return nil
}

type readReceiptInfoJSON struct {
	ReadCount   int  `json:"readCount"`
	UnreadCount int  `json:"unreadCount"`
	IsPeerRead  bool `json:"isPeerRead"`
	// DeliveredCount and UndeliveredCount add up to the recipients, as
	// the read counts do; a read message is delivered. IsPeerDelivered
	// is, for C2C, that the message reached the peer.
	DeliveredCount   int  `json:"deliveredCount"`
	UndeliveredCount int  `json:"undeliveredCount"`
	IsPeerDelivered  bool `json:"isPeerDelivered"`
	// Timestamp is, for a C2C message the peer has read, when the receipt
	// was recorded, in Unix seconds as the SDK has it. It is left out when
	// the engine has no time: group messages, unread C2C messages, and
	// receipts recorded before the engine kept read times. Left out rather
	// than 0, so that no one takes 1970 for a read time.
	Timestamp int64 `json:"timestamp,omitempty"`
}

// unixSeconds is t in Unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

type receiptInfoJSON struct {
	ID               string              `json:"ID"`
	ConversationType string              `json:"conversationType"`
	ReadReceiptInfo  readReceiptInfoJSON `json:"readReceiptInfo"`
	Code             int                 `json:"code"`
	Message          string              `json:"message"`
}

// caller returns the engine's caller for id.
func caller(id identity) readreceipt.Caller {
	if id.Admin {
		return readreceipt.AsAdmin()
	}
	return readreceipt.AsUser(id.UserID)
}

// POST /v1/receipts/query (user or administrator): counts of messages.
func (s *server) handleQuery(w http.ResponseWriter, r *http.Request, id identity) error {
	req := getListRequest()
	defer putListRequest(req)
	if err := decodeWith(w, r, maxBodyBytes, func(b []byte) error { return decodeMessageList(b, req) }); err != nil {
		return err
	}
	msgs, err := refs(req.MessageList)
	if err != nil {
		return err
	}
	infos, err := s.eng.GetMessageReadReceiptList(r.Context(), caller(id), msgs)
	if err != nil {
		return hide(id, err)
	}
	out := make([]receiptInfoJSON, len(infos))
	for i, info := range infos {
		code, msg := codeOf(hide(id, info.Err))
		out[i] = receiptInfoJSON{
			ID:               info.MessageID,
			ConversationType: msgs[0].Conversation.Type.String(),
			ReadReceiptInfo: readReceiptInfoJSON{
				ReadCount:        info.ReadCount,
				UnreadCount:      info.UnreadCount,
				IsPeerRead:       info.IsPeerRead,
				DeliveredCount:   info.DeliveredCount,
				UndeliveredCount: info.UndeliveredCount,
				IsPeerDelivered:  info.IsPeerDelivered,
				Timestamp:        unixSeconds(info.ReadTime),
			},
			Code:    code,
			Message: msg,
		}
	}
	writeReceiptInfos(w, out)
	return nil
}

type membersRequest struct {
	Message messageJSON `json:"message"`
	Filter  int         `json:"filter"`
	Cursor  string      `json:"cursor"`
	Count   int         `json:"count"`
}

// memberPageJSON is a member page in the SDK's shape: every list is
// always present, those the filter did not ask for empty, so that code
// ported from the SDK may read either without a check.
type memberPageJSON struct {
	MessageID        string   `json:"messageID"`
	IsCompleted      bool     `json:"isCompleted"`
	Cursor           string   `json:"cursor"`
	ReadUserIDList   []string `json:"readUserIDList"`
	UnreadUserIDList []string `json:"unreadUserIDList"`
	// DeliveredUserIDList and UndeliveredUserIDList hold the members of
	// filters 2 and 3.
	DeliveredUserIDList   []string `json:"deliveredUserIDList"`
	UndeliveredUserIDList []string `json:"undeliveredUserIDList"`
	// ReadTimeList is, for filter 0 on a server with -read-times, when
	// each member of readUserIDList read the message, in Unix seconds
	// (0 for a receipt recorded while read times were off); left out
	// otherwise.
	ReadTimeList []int64 `json:"readTimeList,omitempty"`
}

// memberFilters are the filters of POST /v1/receipts/members.
var memberFilters = map[int]readreceipt.MemberFilter{
	0: readreceipt.FilterRead,
	1: readreceipt.FilterUnread,
	2: readreceipt.FilterDelivered,
	3: readreceipt.FilterUndelivered,
}

// POST /v1/receipts/members (user or administrator): one page of a group
// message's read (filter 0), unread (1), delivered (2) or undelivered (3)
// members.
func (s *server) handleMembers(w http.ResponseWriter, r *http.Request, id identity) error {
	var req membersRequest
	if err := decodeWith(w, r, maxBodyBytes, func(b []byte) error { return decodeMembersRequest(b, &req) }); err != nil {
		return err
	}
	ref, err := req.Message.ref()
	if err != nil {
		return err
	}
	filter, ok := memberFilters[req.Filter]
	if !ok {
		return badRequest("filter must be 0 (read), 1 (unread), 2 (delivered) or 3 (undelivered), not %d", req.Filter)
	}
	page, err := s.eng.GetGroupMessageReadMemberList(r.Context(), caller(id), readreceipt.MemberListRequest{
		Message: ref, Filter: filter, Cursor: req.Cursor, Count: req.Count,
	})
	if err != nil {
		return hide(id, err)
	}
	out := memberPageJSON{
		MessageID:             page.MessageID,
		IsCompleted:           page.IsCompleted,
		Cursor:                page.Cursor,
		ReadUserIDList:        nonNil(page.ReadUserIDList),
		UnreadUserIDList:      nonNil(page.UnreadUserIDList),
		DeliveredUserIDList:   nonNil(page.DeliveredUserIDList),
		UndeliveredUserIDList: nonNil(page.UndeliveredUserIDList),
	}
	if filter == readreceipt.FilterRead && len(page.ReadTimes) == len(page.ReadUserIDList) && len(page.ReadTimes) > 0 {
		out.ReadTimeList = make([]int64, len(page.ReadTimes))
		for i, t := range page.ReadTimes {
			out.ReadTimeList[i] = unixSeconds(t)
		}
	}
	writeOK(w, out)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type groupJSON struct {
	GroupID   string `json:"groupID"`
	Type      string `json:"type"`
	MemberNum int    `json:"memberNum"`
	Version   uint64 `json:"version"`
}

type createGroupRequest struct {
	GroupID    string   `json:"groupID"`
	Type       string   `json:"type"`
	MemberList []string `json:"memberList"`
}

type memberListRequest struct {
	MemberList []string `json:"memberList"`
}

// writeGroup answers with the group's current state.
func (s *server) writeGroup(w http.ResponseWriter, r *http.Request, gid string) error {
	info, err := s.eng.GetGroup(r.Context(), gid)
	if err != nil {
		return err
	}
	writeOK(w, groupJSON{GroupID: info.ID, Type: info.Type.String(), MemberNum: info.Members, Version: info.Version})
	return nil
}

// POST /v1/groups (administrator): create a group. type defaults to Work.
func (s *server) handleCreateGroup(w http.ResponseWriter, r *http.Request, _ identity) error {
	var req createGroupRequest
	if err := decode(w, r, &req, maxMemberBodyBytes); err != nil {
		return err
	}
	typ, err := parseGroupType(req.Type)
	if err != nil {
		return err
	}
	if err := s.eng.CreateGroup(r.Context(), req.GroupID, typ, req.MemberList); err != nil {
		return err
	}
	return s.writeGroup(w, r, req.GroupID)
}

// sdkGroupTypes are the values of the SDK's group type constants
// (TIM.TYPES.GRP_*) that differ from the engine's names: GRP_WORK is
// "Private", GRP_MEETING is "ChatRoom". GRP_PUBLIC, GRP_AVCHATROOM and
// GRP_COMMUNITY ("Public", "AVChatRoom", "Community") are the engine's
// names already.
var sdkGroupTypes = map[string]readreceipt.GroupType{
	"Private":  readreceipt.GroupWork,
	"ChatRoom": readreceipt.GroupMeeting,
}

// parseGroupType returns the group type a request names: one of the
// engine's names (Work, Public, Meeting, Community, AVChatRoom), one of the
// SDK's constant values (Private, ChatRoom as aliases of Work, Meeting), or
// "" for Work. Answers always name the type with the engine's name (Work,
// not Private): one name per type in every answer, the name the engine,
// its Go API and the metrics use; a JS app compares with the engine's
// names or maps them back (the client's TYPES keep the SDK's values).
func parseGroupType(s string) (readreceipt.GroupType, error) {
	if s == "" {
		return readreceipt.GroupWork, nil
	}
	if t, ok := sdkGroupTypes[s]; ok {
		return t, nil
	}
	return readreceipt.ParseGroupType(s)
}

// GET /v1/groups/{groupID} (administrator).
func (s *server) handleGetGroup(w http.ResponseWriter, r *http.Request, _ identity) error {
	return s.writeGroup(w, r, r.PathValue("groupID"))
}

// POST /v1/groups/{groupID}/members (administrator): add members.
func (s *server) handleAddMembers(w http.ResponseWriter, r *http.Request, _ identity) error {
	return s.changeMembers(w, r, s.eng.AddGroupMembers)
}

// POST /v1/groups/{groupID}/members/remove (administrator): remove members.
func (s *server) handleRemoveMembers(w http.ResponseWriter, r *http.Request, _ identity) error {
	return s.changeMembers(w, r, s.eng.RemoveGroupMembers)
}

func (s *server) changeMembers(w http.ResponseWriter, r *http.Request, change func(ctx context.Context, gid string, members []string) error) error {
	gid := r.PathValue("groupID")
	var req memberListRequest
	if err := decode(w, r, &req, maxMemberBodyBytes); err != nil {
		return err
	}
	if err := change(r.Context(), gid, req.MemberList); err != nil {
		return err
	}
	return s.writeGroup(w, r, gid)
}

// DELETE /v1/groups/{groupID} (administrator): dismiss a group.
func (s *server) handleDismissGroup(w http.ResponseWriter, r *http.Request, _ identity) error {
	gid := r.PathValue("groupID")
	if err := s.eng.DismissGroup(r.Context(), gid); err != nil {
		return err
	}
	writeOK(w, struct {
		GroupID string `json:"groupID"`
	}{gid})
	return nil
}
