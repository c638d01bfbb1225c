package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

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

// decode reads r's JSON body into v. Unknown fields are ignored, so that a
// client may send the SDK's whole Message object.
func decode(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Code: readreceipt.CodeInvalidParameter,
				Message: fmt.Sprintf("readreceiptd: body over %d bytes", mbe.Limit)}
		}
		if errors.Is(err, io.EOF) {
			return badRequest("empty body: a JSON object is expected")
		}
		return badRequest("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("bad JSON body: data after the object")
	}
	return nil
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

// POST /v1/messages (administrator): track a sent message that asks for
// read receipts.
func (s *server) handleTrack(w http.ResponseWriter, r *http.Request, _ identity) {
	var m messageJSON
	if err := decode(w, r, &m, maxBodyBytes); err != nil {
		writeError(w, err)
		return
	}
	conv, err := m.conversation()
	if err != nil {
		writeError(w, err)
		return
	}
	if !m.NeedReadReceipt {
		writeOK(w, trackResponse{Tracked: false})
		return
	}
	if err := s.eng.TrackMessage(r.Context(), readreceipt.Message{Conversation: conv, ID: m.ID, Sender: m.From}); err != nil {
		writeError(w, err)
		return
	}
	writeOK(w, trackResponse{Tracked: true})
}

type trackResponse struct {
	Tracked bool `json:"tracked"`
}

type messageRequest struct {
	Message messageJSON `json:"message"`
}

// POST /v1/messages/delete (administrator): drop a recalled or deleted
// message's receipt state.
func (s *server) handleDelete(w http.ResponseWriter, r *http.Request, _ identity) {
	var req messageRequest
	if err := decode(w, r, &req, maxBodyBytes); err != nil {
		writeError(w, err)
		return
	}
	ref, err := req.Message.ref()
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.eng.DeleteMessage(r.Context(), ref); err != nil {
		writeError(w, err)
		return
	}
	writeOK(w, struct{}{})
}

type messageListRequest struct {
	MessageList []messageJSON `json:"messageList"`
}

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
func (s *server) handleSendReceipts(w http.ResponseWriter, r *http.Request, id identity) {
	var req messageListRequest
	if err := decode(w, r, &req, maxBodyBytes); err != nil {
		writeError(w, err)
		return
	}
	msgs, err := refs(req.MessageList)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := s.eng.SendMessageReadReceipt(r.Context(), id.UserID, msgs)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]receiptResultJSON, len(res))
	for i, rr := range res {
		code, msg := codeOf(rr.Err)
		out[i] = receiptResultJSON{ID: rr.MessageID, Recorded: rr.Recorded, Code: code, Message: msg}
	}
	writeOK(w, messageListResponse[receiptResultJSON]{MessageList: out})
}

type readReceiptInfoJSON struct {
	ReadCount   int  `json:"readCount"`
	UnreadCount int  `json:"unreadCount"`
	IsPeerRead  bool `json:"isPeerRead"`
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
func (s *server) handleQuery(w http.ResponseWriter, r *http.Request, id identity) {
	var req messageListRequest
	if err := decode(w, r, &req, maxBodyBytes); err != nil {
		writeError(w, err)
		return
	}
	msgs, err := refs(req.MessageList)
	if err != nil {
		writeError(w, err)
		return
	}
	infos, err := s.eng.GetMessageReadReceiptList(r.Context(), caller(id), msgs)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]receiptInfoJSON, len(infos))
	for i, info := range infos {
		code, msg := codeOf(info.Err)
		out[i] = receiptInfoJSON{
			ID:               info.MessageID,
			ConversationType: msgs[0].Conversation.Type.String(),
			ReadReceiptInfo: readReceiptInfoJSON{
				ReadCount:   info.ReadCount,
				UnreadCount: info.UnreadCount,
				IsPeerRead:  info.IsPeerRead,
			},
			Code:    code,
			Message: msg,
		}
	}
	writeOK(w, messageListResponse[receiptInfoJSON]{MessageList: out})
}

type membersRequest struct {
	Message messageJSON `json:"message"`
	Filter  int         `json:"filter"`
	Cursor  string      `json:"cursor"`
	Count   int         `json:"count"`
}

type memberPageJSON struct {
	MessageID        string    `json:"messageID"`
	IsCompleted      bool      `json:"isCompleted"`
	Cursor           string    `json:"cursor"`
	ReadUserIDList   *[]string `json:"readUserIDList,omitempty"`
	UnreadUserIDList *[]string `json:"unreadUserIDList,omitempty"`
}

// POST /v1/receipts/members (user or administrator): one page of a group
// message's read (filter 0) or unread (filter 1) members.
func (s *server) handleMembers(w http.ResponseWriter, r *http.Request, id identity) {
	var req membersRequest
	if err := decode(w, r, &req, maxBodyBytes); err != nil {
		writeError(w, err)
		return
	}
	ref, err := req.Message.ref()
	if err != nil {
		writeError(w, err)
		return
	}
	var filter readreceipt.MemberFilter
	switch req.Filter {
	case 0:
		filter = readreceipt.FilterRead
	case 1:
		filter = readreceipt.FilterUnread
	default:
		writeError(w, badRequest("filter must be 0 (read) or 1 (unread), not %d", req.Filter))
		return
	}
	page, err := s.eng.GetGroupMessageReadMemberList(r.Context(), caller(id), readreceipt.MemberListRequest{
		Message: ref, Filter: filter, Cursor: req.Cursor, Count: req.Count,
	})
	if err != nil {
		writeError(w, err)
		return
	}
	out := memberPageJSON{MessageID: page.MessageID, IsCompleted: page.IsCompleted, Cursor: page.Cursor}
	if filter == readreceipt.FilterRead {
		list := nonNil(page.ReadUserIDList)
		out.ReadUserIDList = &list
	} else {
		list := nonNil(page.UnreadUserIDList)
		out.UnreadUserIDList = &list
	}
	writeOK(w, out)
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
func (s *server) writeGroup(w http.ResponseWriter, r *http.Request, gid string) {
	info, err := s.eng.GetGroup(r.Context(), gid)
	if err != nil {
		writeError(w, err)
		return
	}
	writeOK(w, groupJSON{GroupID: info.ID, Type: info.Type.String(), MemberNum: info.Members, Version: info.Version})
}

// POST /v1/groups (administrator): create a group. type defaults to Work.
func (s *server) handleCreateGroup(w http.ResponseWriter, r *http.Request, _ identity) {
	var req createGroupRequest
	if err := decode(w, r, &req, maxMemberBodyBytes); err != nil {
		writeError(w, err)
		return
	}
	if req.Type == "" {
		req.Type = readreceipt.GroupWork.String()
	}
	typ, err := readreceipt.ParseGroupType(req.Type)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.eng.CreateGroup(r.Context(), req.GroupID, typ, req.MemberList); err != nil {
		writeError(w, err)
		return
	}
	s.writeGroup(w, r, req.GroupID)
}

// GET /v1/groups/{groupID} (administrator).
func (s *server) handleGetGroup(w http.ResponseWriter, r *http.Request, _ identity) {
	s.writeGroup(w, r, r.PathValue("groupID"))
}

// POST /v1/groups/{groupID}/members (administrator): add members.
func (s *server) handleAddMembers(w http.ResponseWriter, r *http.Request, _ identity) {
	s.changeMembers(w, r, s.eng.AddGroupMembers)
}

// POST /v1/groups/{groupID}/members/remove (administrator): remove members.
func (s *server) handleRemoveMembers(w http.ResponseWriter, r *http.Request, _ identity) {
	s.changeMembers(w, r, s.eng.RemoveGroupMembers)
}

func (s *server) changeMembers(w http.ResponseWriter, r *http.Request, change func(ctx context.Context, gid string, members []string) error) {
	gid := r.PathValue("groupID")
	var req memberListRequest
	if err := decode(w, r, &req, maxMemberBodyBytes); err != nil {
		writeError(w, err)
		return
	}
	if err := change(r.Context(), gid, req.MemberList); err != nil {
		writeError(w, err)
		return
	}
	s.writeGroup(w, r, gid)
}

// DELETE /v1/groups/{groupID} (administrator): dismiss a group.
func (s *server) handleDismissGroup(w http.ResponseWriter, r *http.Request, _ identity) {
	gid := r.PathValue("groupID")
	if err := s.eng.DismissGroup(r.Context(), gid); err != nil {
		writeError(w, err)
		return
	}
	writeOK(w, struct {
		GroupID string `json:"groupID"`
	}{gid})
}
