// Package fuzz holds a model-based fuzzer for the read-receipt engine: random
// histories of operations run against the real engine and against Model, a
// plain reference implementation of the contract (maps and slices, no
// bitmaps, no versions, no caches), and the two are compared after every
// step. See fuzz_test.go.
package fuzz

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	rr "github.com/readreceipt/readreceipt"
)

// Outcome is what the model predicts for a call as a whole: success, or an
// error of one of the kinds in Errs. When several faults hold at once and
// the contract does not say which one wins, every one of them is in Errs.
// OKToo marks calls whose success is allowed as well as those errors (the
// contract leaves the choice open).
type Outcome struct {
	Errs  []error
	OKToo bool
}

func success() Outcome              { return Outcome{} }
func failure(errs ...error) Outcome { return Outcome{Errs: errs} }

// MaySucceed reports whether success is an allowed answer.
func (o Outcome) MaySucceed() bool { return len(o.Errs) == 0 || o.OKToo }

func (o Outcome) String() string {
	if len(o.Errs) == 0 {
		return "success"
	}
	var parts []string
	for _, e := range o.Errs {
		parts = append(parts, kindName(e))
	}
	s := "error " + strings.Join(parts, " or ")
	if o.OKToo {
		s += " (or success)"
	}
	return s
}

// Mismatch returns how err departs from the outcome, or "" if it is allowed.
func (o Outcome) Mismatch(err error) string {
	if err == nil {
		if o.MaySucceed() {
			return ""
		}
		return "got success, want " + o.String()
	}
	if len(o.Errs) == 0 {
		return fmt.Sprintf("got error %v, want success", err)
	}
	for _, s := range o.Errs {
		if SameKind(err, s) {
			return ""
		}
	}
	return fmt.Sprintf("got error %v, want %s", err, o)
}

// codeOf returns the numeric code of an engine error, or -1.
func codeOf(err error) int {
	var e *rr.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

// SameKind reports whether err is of the kind of sentinel: errors.Is holds,
// and err's own code is the sentinel's, so that a refinement such as
// ErrTooManyMessages does not pass for a plain ErrInvalidParameter.
func SameKind(err, sentinel error) bool {
	if err == nil || sentinel == nil {
		return err == sentinel
	}
	return errors.Is(err, sentinel) && codeOf(err) == codeOf(sentinel)
}

var sentinelNames = []struct {
	err  error
	name string
}{
	{rr.ErrFeatureDisabled, "ErrFeatureDisabled"},
	{rr.ErrInternal, "ErrInternal"},
	{rr.ErrInvalidParameter, "ErrInvalidParameter"},
	{rr.ErrPermissionDenied, "ErrPermissionDenied"},
	{rr.ErrGroupNotFound, "ErrGroupNotFound"},
	{rr.ErrInvalidGroupID, "ErrInvalidGroupID"},
	{rr.ErrGroupExists, "ErrGroupExists"},
	{rr.ErrReceiptNotFound, "ErrReceiptNotFound"},
	{rr.ErrTooManyMessages, "ErrTooManyMessages"},
	{rr.ErrPageTooLarge, "ErrPageTooLarge"},
	{rr.ErrMixedConversations, "ErrMixedConversations"},
	{rr.ErrInvalidCursor, "ErrInvalidCursor"},
	{rr.ErrOwnMessage, "ErrOwnMessage"},
	{rr.ErrNotRecipient, "ErrNotRecipient"},
	{rr.ErrAlreadyTracked, "ErrAlreadyTracked"},
	{rr.ErrGroupTypeDisabled, "ErrGroupTypeDisabled"},
	{rr.ErrClosed, "ErrClosed"},
}

func kindName(err error) string {
	if err == nil {
		return "nil"
	}
	for _, s := range sentinelNames {
		if SameKind(err, s.err) {
			return s.name
		}
	}
	return fmt.Sprintf("%v", err)
}

// Group is the model of one group: its type, every user who was ever a
// member with the index it got when it first joined (kept for the group's
// life), and the current members.
type Group struct {
	ID      string
	Type    rr.GroupType
	Index   map[string]uint32
	Users   []string // by member index
	Members map[string]bool
	Version uint64
}

// MsgKey names a message: its canonical conversation and its ID.
type MsgKey struct {
	Conv rr.Conversation
	ID   string
}

func (k MsgKey) String() string { return fmt.Sprintf("%s/%q", k.Conv, k.ID) }

// Recipient is one recipient of a message with its member index (0 for the
// C2C peer).
type Recipient struct {
	Index uint32
	User  string
}

// Msg is the model of one tracked message.
type Msg struct {
	Key       MsgKey
	Sender    string
	TrackedAt int64
	Seq       int         // tells apart two trackings of the same key
	Rcpts     []Recipient // in member-index order
	Readers   map[string]bool
	ReadAt    int64 // C2C: when the peer's receipt was recorded (Unix ns)
}

func (m *Msg) isGroup() bool { return m.Key.Conv.Type == rr.ConversationGroup }

// readTime is the ReadTime the engine reports for the message.
func (m *Msg) readTime() time.Time {
	if m.isGroup() || len(m.Readers) == 0 {
		return time.Time{}
	}
	return time.Unix(0, m.ReadAt).UTC()
}

func (m *Msg) isRecipient(u string) bool {
	for _, r := range m.Rcpts {
		if r.User == u {
			return true
		}
	}
	return false
}

// CursorInfo is what the model knows of a cursor the engine handed out: the
// list it continues, and where. After is the index of the last member of the
// page that made it, Next the index of the first member left out; members
// who joined the list in between may or may not show up on the next page.
type CursorInfo struct {
	Key       MsgKey
	Filter    rr.MemberFilter
	Seq       int
	TrackedAt int64
	After     uint32
	Next      uint32
}

// Model is the reference model of the engine.
type Model struct {
	Now       int64 // unix nanoseconds
	Retention time.Duration
	Enabled   bool
	Types     map[rr.GroupType]bool
	Access    rr.QueryAccess

	MaxMessages int
	MaxQuery    int
	MaxPage     int
	MaxID       int

	Groups  map[string]*Group
	Msgs    map[MsgKey]*Msg // stored (possibly expired, not yet swept)
	Cursors map[string]CursorInfo
	seq     int
}

// NewModel returns an empty model with the engine's defaults.
func NewModel(now time.Time) *Model {
	return &Model{
		Now:         now.UnixNano(),
		Retention:   rr.DefaultRetention,
		Enabled:     true,
		Types:       map[rr.GroupType]bool{rr.GroupWork: true, rr.GroupPublic: true, rr.GroupMeeting: true},
		Access:      rr.AccessSender,
		MaxMessages: rr.DefaultMaxMessagesPerCall,
		MaxQuery:    rr.DefaultMaxQueryMessages,
		MaxPage:     rr.DefaultMaxPageSize,
		MaxID:       rr.DefaultMaxIDLength,
		Groups:      map[string]*Group{},
		Msgs:        map[MsgKey]*Msg{},
		Cursors:     map[string]CursorInfo{},
	}
}

// ---- validation ----

func (m *Model) validID(id string) bool {
	return id != "" && len(id) <= m.MaxID && utf8.ValidString(id)
}

func (m *Model) idErrs(ids ...string) []error {
	for _, id := range ids {
		if !m.validID(id) {
			return []error{rr.ErrInvalidParameter}
		}
	}
	return nil
}

func (m *Model) groupIDErrs(gid string) []error {
	if !m.validID(gid) {
		return []error{rr.ErrInvalidGroupID}
	}
	return nil
}

func (m *Model) convErrs(c rr.Conversation) []error {
	switch c.Type {
	case rr.ConversationGroup:
		return m.groupIDErrs(c.GroupID)
	case rr.ConversationC2C:
		if errs := m.idErrs(c.Users[0], c.Users[1]); errs != nil {
			return errs
		}
		if c.Users[0] == c.Users[1] {
			return []error{rr.ErrInvalidParameter}
		}
		return nil
	}
	return []error{rr.ErrInvalidParameter}
}

// Canon returns the canonical form of a conversation: a group's without
// users, a C2C one's with its users sorted.
func Canon(c rr.Conversation) rr.Conversation {
	switch c.Type {
	case rr.ConversationGroup:
		return rr.Group(c.GroupID)
	case rr.ConversationC2C:
		return rr.C2C(c.Users[0], c.Users[1])
	}
	return c
}

// refsErrs returns the call-level faults of a message list.
func (m *Model) refsErrs(refs []rr.MessageRef, limit int) []error {
	if len(refs) == 0 {
		return []error{rr.ErrInvalidParameter}
	}
	var errs []error
	if len(refs) > limit {
		errs = append(errs, rr.ErrTooManyMessages)
	}
	convs := map[rr.Conversation]bool{}
	for _, r := range refs {
		errs = append(errs, m.convErrs(r.Conversation)...)
		errs = append(errs, m.idErrs(r.ID)...)
		convs[Canon(r.Conversation)] = true
	}
	if len(convs) > 1 {
		errs = append(errs, rr.ErrMixedConversations)
	}
	return errs
}

func (m *Model) featureErrs() []error {
	if !m.Enabled {
		return []error{rr.ErrFeatureDisabled}
	}
	return nil
}

func (m *Model) callerErrs(c rr.Caller) []error {
	if c.Admin {
		return nil
	}
	return m.idErrs(c.UserID)
}

// ---- state ----

func (m *Model) expired(msg *Msg) bool {
	return m.Retention > 0 && m.Now-msg.TrackedAt >= int64(m.Retention)
}

// Live returns the message with receipt info under key, or nil.
func (m *Model) Live(key MsgKey) *Msg {
	msg := m.Msgs[key]
	if msg == nil || m.expired(msg) {
		return nil
	}
	return msg
}

// LiveMessages returns every live message, in a fixed order.
func (m *Model) LiveMessages() []*Msg {
	var out []*Msg
	for k := range m.Msgs {
		if msg := m.Live(k); msg != nil {
			out = append(out, msg)
		}
	}
	slices.SortFunc(out, func(a, b *Msg) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	return out
}

// MemberList returns the members a page walk of msg lists for filter, in
// member-index order.
func (m *Model) MemberList(msg *Msg, f rr.MemberFilter) []Recipient {
	var out []Recipient
	for _, r := range msg.Rcpts {
		if msg.Readers[r.User] == (f == rr.FilterRead) {
			out = append(out, r)
		}
	}
	return out
}

func (m *Model) mayRead(c rr.Caller, msg *Msg) bool {
	return c.Admin || c.UserID == msg.Sender || (m.Access == rr.AccessRecipients && msg.isRecipient(c.UserID))
}

// ---- switches and clock ----

// SetEnabled models Engine.SetFeatureEnabled.
func (m *Model) SetEnabled(on bool) { m.Enabled = on }

// SetTypes models Engine.SetGroupTypes.
func (m *Model) SetTypes(types []rr.GroupType) Outcome {
	for _, t := range types {
		if t < rr.GroupWork || t > rr.GroupAVChatRoom {
			return failure(rr.ErrInvalidParameter)
		}
	}
	m.Types = map[rr.GroupType]bool{}
	for _, t := range types {
		m.Types[t] = true
	}
	return success()
}

// TypeList returns the enabled group types, sorted.
func (m *Model) TypeList() []rr.GroupType {
	var out []rr.GroupType
	for t := range m.Types {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Advance moves the clock.
func (m *Model) Advance(d time.Duration) { m.Now += int64(d) }

// Sweep models Engine.Sweep: it drops every stored message past retention
// and returns how many.
func (m *Model) Sweep() int {
	if m.Retention == 0 {
		return 0
	}
	n := 0
	for k, msg := range m.Msgs {
		if m.expired(msg) {
			delete(m.Msgs, k)
			n++
		}
	}
	return n
}

// ---- groups ----

func validType(t rr.GroupType) bool { return t >= rr.GroupWork && t <= rr.GroupAVChatRoom }

func dedup(users []string) []string {
	var out []string
	for _, u := range users {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// CreateGroup models Engine.CreateGroup.
func (m *Model) CreateGroup(gid string, typ rr.GroupType, members []string) Outcome {
	var errs []error
	if !validType(typ) {
		errs = append(errs, rr.ErrInvalidParameter)
	}
	errs = append(errs, m.idErrs(members...)...)
	errs = append(errs, m.groupIDErrs(gid)...)
	if len(errs) > 0 {
		return failure(errs...)
	}
	if m.Groups[gid] != nil {
		return failure(rr.ErrGroupExists)
	}
	g := &Group{ID: gid, Type: typ, Index: map[string]uint32{}, Members: map[string]bool{}, Version: 1}
	for _, u := range dedup(members) {
		g.Index[u] = uint32(len(g.Users))
		g.Users = append(g.Users, u)
		g.Members[u] = true
	}
	m.Groups[gid] = g
	return success()
}

// ChangeMembers models Engine.AddGroupMembers (add) and
// Engine.RemoveGroupMembers.
func (m *Model) ChangeMembers(gid string, members []string, add bool) Outcome {
	errs := append(m.idErrs(members...), m.groupIDErrs(gid)...)
	if len(errs) > 0 {
		return failure(errs...)
	}
	g := m.Groups[gid]
	if g == nil {
		return failure(rr.ErrGroupNotFound)
	}
	changed := false
	for _, u := range dedup(members) {
		if add && !g.Members[u] {
			if _, ok := g.Index[u]; !ok {
				g.Index[u] = uint32(len(g.Users))
				g.Users = append(g.Users, u)
			}
			g.Members[u] = true
			changed = true
		}
		if !add && g.Members[u] {
			delete(g.Members, u)
			changed = true
		}
	}
	if changed {
		g.Version++
	}
	return success()
}

// Dismiss models Engine.DismissGroup.
func (m *Model) Dismiss(gid string) Outcome {
	if errs := m.groupIDErrs(gid); errs != nil {
		return failure(errs...)
	}
	if m.Groups[gid] == nil {
		return failure(rr.ErrGroupNotFound)
	}
	delete(m.Groups, gid)
	for k := range m.Msgs {
		if k.Conv.Type == rr.ConversationGroup && k.Conv.GroupID == gid {
			delete(m.Msgs, k)
		}
	}
	return success()
}

// GetGroup models Engine.GetGroup.
func (m *Model) GetGroup(gid string) (Outcome, rr.GroupInfo) {
	if errs := m.groupIDErrs(gid); errs != nil {
		return failure(errs...), rr.GroupInfo{}
	}
	g := m.Groups[gid]
	if g == nil {
		return failure(rr.ErrGroupNotFound), rr.GroupInfo{}
	}
	return success(), rr.GroupInfo{ID: gid, Type: g.Type, Members: len(g.Members), Version: g.Version}
}

// ---- messages ----

// Track models Engine.TrackMessage.
func (m *Model) Track(msg rr.Message) Outcome {
	errs := m.featureErrs()
	errs = append(errs, m.convErrs(msg.Conversation)...)
	errs = append(errs, m.idErrs(msg.ID, msg.Sender)...)
	c := msg.Conversation
	if c.Type == rr.ConversationC2C && c.Users[0] != msg.Sender && c.Users[1] != msg.Sender {
		errs = append(errs, rr.ErrInvalidParameter)
	}
	if len(errs) > 0 {
		return failure(errs...)
	}
	key := MsgKey{Conv: Canon(c), ID: msg.ID}
	old := m.Live(key)
	var rcpts []Recipient
	if c.Type == rr.ConversationGroup {
		g := m.Groups[c.GroupID]
		if g == nil {
			return failure(rr.ErrGroupNotFound)
		}
		if !m.Types[g.Type] {
			switch {
			case old == nil:
				return failure(rr.ErrGroupTypeDisabled)
			case old.Sender == msg.Sender:
				// A no-op either way: the contract does not order the gate
				// and idempotence.
				return Outcome{Errs: []error{rr.ErrGroupTypeDisabled}, OKToo: true}
			default:
				return failure(rr.ErrGroupTypeDisabled, rr.ErrAlreadyTracked)
			}
		}
		for i, u := range g.Users {
			if g.Members[u] && u != msg.Sender {
				rcpts = append(rcpts, Recipient{Index: uint32(i), User: u})
			}
		}
	} else {
		peer := c.Users[0]
		if peer == msg.Sender {
			peer = c.Users[1]
		}
		rcpts = []Recipient{{User: peer}}
	}
	if old != nil {
		if old.Sender == msg.Sender {
			return success()
		}
		return failure(rr.ErrAlreadyTracked)
	}
	m.seq++
	m.Msgs[key] = &Msg{Key: key, Sender: msg.Sender, TrackedAt: m.Now, Seq: m.seq, Rcpts: rcpts, Readers: map[string]bool{}}
	return success()
}

// Delete models Engine.DeleteMessage.
func (m *Model) Delete(ref rr.MessageRef) Outcome {
	errs := append(m.convErrs(ref.Conversation), m.idErrs(ref.ID)...)
	if len(errs) > 0 {
		return failure(errs...)
	}
	delete(m.Msgs, MsgKey{Conv: Canon(ref.Conversation), ID: ref.ID})
	return success()
}

// Result is the model's ReceiptResult.
type Result struct {
	MessageID string
	Recorded  bool
	Err       error
}

// Receipt models Engine.SendMessageReadReceipt: the call's outcome, the
// per-message results and the events it must emit, in order.
func (m *Model) Receipt(reader string, refs []rr.MessageRef) (Outcome, []Result, []rr.ReceiptEvent) {
	errs := m.featureErrs()
	errs = append(errs, m.idErrs(reader)...)
	errs = append(errs, m.refsErrs(refs, m.MaxMessages)...)
	if len(errs) > 0 {
		return failure(errs...), nil, nil
	}
	conv := Canon(refs[0].Conversation)
	res := make([]Result, len(refs))
	first := map[string]int{}
	var recorded []*Msg
	for i, r := range refs {
		res[i].MessageID = r.ID
		if f, dup := first[r.ID]; dup {
			res[i].Err = res[f].Err
			continue
		}
		first[r.ID] = i
		msg := m.Live(MsgKey{Conv: conv, ID: r.ID})
		switch {
		case msg == nil:
			res[i].Err = rr.ErrReceiptNotFound
		case reader == msg.Sender:
			res[i].Err = rr.ErrOwnMessage
		case !msg.isRecipient(reader):
			res[i].Err = rr.ErrNotRecipient
		case msg.Readers[reader]:
			// already read: nothing to do
		default:
			msg.Readers[reader] = true
			if !msg.isGroup() {
				msg.ReadAt = m.Now
			}
			res[i].Recorded = true
			recorded = append(recorded, msg)
		}
	}
	var events []rr.ReceiptEvent
	for _, msg := range recorded {
		events = append(events, m.event(msg, reader))
	}
	return success(), res, events
}

func (m *Model) event(msg *Msg, reader string) rr.ReceiptEvent {
	read := len(msg.Readers)
	ev := rr.ReceiptEvent{
		Sender:       msg.Sender,
		Conversation: msg.Key.Conv,
		MessageID:    msg.Key.ID,
		ReadCount:    read,
		UnreadCount:  len(msg.Rcpts) - read,
		Reader:       reader,
	}
	if msg.isGroup() {
		ev.GroupID = msg.Key.Conv.GroupID
	} else {
		ev.UserID = msg.Rcpts[0].User
		ev.IsPeerRead = read > 0
		ev.ReadTime = msg.readTime()
	}
	return ev
}

// Info returns the receipt info of a live message, as an administrator sees
// it.
func (m *Model) Info(msg *Msg) rr.ReceiptInfo {
	read := len(msg.Readers)
	return rr.ReceiptInfo{
		MessageID:   msg.Key.ID,
		ReadCount:   read,
		UnreadCount: len(msg.Rcpts) - read,
		IsPeerRead:  !msg.isGroup() && read > 0,
		ReadTime:    msg.readTime(),
	}
}

// Counts models Engine.GetMessageReadReceiptList.
func (m *Model) Counts(c rr.Caller, refs []rr.MessageRef) (Outcome, []rr.ReceiptInfo) {
	errs := m.featureErrs()
	errs = append(errs, m.callerErrs(c)...)
	errs = append(errs, m.refsErrs(refs, m.MaxQuery)...)
	if len(errs) > 0 {
		return failure(errs...), nil
	}
	conv := Canon(refs[0].Conversation)
	out := make([]rr.ReceiptInfo, len(refs))
	for i, r := range refs {
		msg := m.Live(MsgKey{Conv: conv, ID: r.ID})
		switch {
		case msg == nil:
			out[i] = rr.ReceiptInfo{MessageID: r.ID, Err: rr.ErrReceiptNotFound}
		case !m.mayRead(c, msg):
			out[i] = rr.ReceiptInfo{MessageID: r.ID, Err: rr.ErrPermissionDenied}
		default:
			out[i] = m.Info(msg)
		}
	}
	return success(), out
}

// PageCand is one page the engine may answer with.
type PageCand struct {
	Users     []string
	Completed bool
	// After and Next describe the cursor of an incomplete page.
	After, Next uint32
}

// PageExpect is the model's prediction for one member page.
type PageExpect struct {
	Outcome
	Msg   *Msg
	Cands []PageCand // allowed pages when the call may succeed
}

// Page models Engine.GetGroupMessageReadMemberList.
func (m *Model) Page(c rr.Caller, req rr.MemberListRequest) PageExpect {
	errs := m.featureErrs()
	errs = append(errs, m.callerErrs(c)...)
	errs = append(errs, m.convErrs(req.Message.Conversation)...)
	errs = append(errs, m.idErrs(req.Message.ID)...)
	if req.Message.Conversation.Type == rr.ConversationC2C {
		errs = append(errs, rr.ErrInvalidParameter)
	}
	if req.Filter != rr.FilterRead && req.Filter != rr.FilterUnread {
		errs = append(errs, rr.ErrInvalidParameter)
	}
	if req.Count <= 0 {
		errs = append(errs, rr.ErrInvalidParameter)
	}
	if req.Count > m.MaxPage {
		errs = append(errs, rr.ErrPageTooLarge)
	}
	if len(errs) > 0 {
		return PageExpect{Outcome: failure(errs...)}
	}
	key := MsgKey{Conv: Canon(req.Message.Conversation), ID: req.Message.ID}
	msg := m.Live(key)
	switch {
	case msg == nil:
		errs = append(errs, rr.ErrReceiptNotFound)
	case !m.mayRead(c, msg):
		errs = append(errs, rr.ErrPermissionDenied)
	}
	// Where the page starts: from the beginning, or somewhere in
	// (After, Next] of a known cursor.
	var starts [][2]int64 // {first index allowed, ...}
	if req.Cursor == "" {
		starts = [][2]int64{{0, 0}}
	} else {
		info, known := m.Cursors[req.Cursor]
		sameList := known && msg != nil && info.Key == key && info.Filter == req.Filter
		switch {
		case sameList && info.Seq == msg.Seq:
			starts = [][2]int64{{int64(info.After) + 1, 0}, {int64(info.Next), 0}}
		default:
			// Another list, or an earlier tracking of this message ID,
			// even one made at the same clock reading.
			errs = append(errs, rr.ErrInvalidCursor)
		}
	}
	exp := PageExpect{Outcome: Outcome{Errs: errs}, Msg: msg}
	if !exp.MaySucceed() {
		return exp
	}
	list := m.MemberList(msg, req.Filter)
	for _, st := range starts {
		var rest []Recipient
		for _, r := range list {
			if int64(r.Index) >= st[0] {
				rest = append(rest, r)
			}
		}
		cand := PageCand{Completed: len(rest) <= req.Count, Users: []string{}}
		for i := 0; i < len(rest) && i < req.Count; i++ {
			cand.Users = append(cand.Users, rest[i].User)
		}
		if !cand.Completed {
			cand.After, cand.Next = rest[req.Count-1].Index, rest[req.Count].Index
		}
		exp.Cands = append(exp.Cands, cand)
	}
	return exp
}

// NoteCursor records the meaning of a cursor the engine returned for a page
// that matched cand.
func (m *Model) NoteCursor(cursor string, req rr.MemberListRequest, msg *Msg, cand PageCand) {
	m.Cursors[cursor] = CursorInfo{
		Key:       MsgKey{Conv: Canon(req.Message.Conversation), ID: req.Message.ID},
		Filter:    req.Filter,
		Seq:       msg.Seq,
		TrackedAt: msg.TrackedAt,
		After:     cand.After,
		Next:      cand.Next,
	}
}

// Clone returns a deep copy of the model, to keep the state at one point of
// a history (the crash tests compare a recovered engine with the state
// before and after the operation in flight).
func (m *Model) Clone() *Model {
	c := *m
	c.Types = maps.Clone(m.Types)
	c.Groups = make(map[string]*Group, len(m.Groups))
	for id, g := range m.Groups {
		cg := *g
		cg.Index = maps.Clone(g.Index)
		cg.Users = slices.Clone(g.Users)
		cg.Members = maps.Clone(g.Members)
		c.Groups[id] = &cg
	}
	c.Msgs = make(map[MsgKey]*Msg, len(m.Msgs))
	for k, msg := range m.Msgs {
		cm := *msg
		cm.Rcpts = slices.Clone(msg.Rcpts)
		cm.Readers = maps.Clone(msg.Readers)
		c.Msgs[k] = &cm
	}
	c.Cursors = maps.Clone(m.Cursors)
	return &c
}
