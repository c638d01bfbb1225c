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
	{rr.ErrPrivateReceipts, "ErrPrivateReceipts"},
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
	Thread    string
	TrackedAt int64
	Seq       int         // tells apart two trackings of the same key
	Rcpts     []Recipient // in member-index order
	Readers   map[string]bool
	ReadAt    int64 // C2C: when the peer's receipt was recorded (Unix ns)
	// Delivered is D: the recipients a delivery was recorded for (a
	// delivery receipt, or a private read) while they were not readers. It
	// may keep readers; the delivered count is |Readers ∪ Delivered|.
	Delivered map[string]bool
	// Private is P: the recipients who read it privately.
	Private map[string]bool
	// PubTime and PrivTime are, with read times on, the Unix second of
	// each reader's public and private read.
	PubTime, PrivTime map[string]int64
}

// pos is the message's position in its conversation's order.
func (m *Msg) pos() Pos { return Pos{At: m.TrackedAt / 1000, ID: m.Key.ID} }

// deliveredCount is |R ∪ D|.
func (m *Msg) deliveredCount() int {
	n := len(m.Readers)
	for u := range m.Delivered {
		if !m.Readers[u] {
			n++
		}
	}
	return n
}

// Pos is a position in a conversation's order: tracking time in Unix
// microseconds, then the message ID; a mark at a time has ID MaxID.
type Pos struct {
	At int64
	ID string
}

// MaxID sorts after every valid ID.
const MaxID = "\xff"

// Cmp orders positions.
func (p Pos) Cmp(q Pos) int {
	switch {
	case p.At < q.At:
		return -1
	case p.At > q.At:
		return 1
	}
	return strings.Compare(p.ID, q.ID)
}

// Mark is the ReadMark of the position.
func (p Pos) Mark() rr.ReadMark {
	m := rr.ReadMark{Time: time.UnixMicro(p.At).UTC()}
	if p.ID != MaxID {
		m.MessageID = p.ID
	}
	return m
}

// MarkKey names one reader's mark in a conversation's thread ("" for the
// whole conversation).
type MarkKey struct {
	Conv   rr.Conversation
	Thread string
	Reader string
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

	// ReadTimes and Reciprocal are WithReadTimes and
	// WithReciprocalPrivacy.
	ReadTimes  bool
	Reciprocal bool

	Groups  map[string]*Group
	Msgs    map[MsgKey]*Msg // stored (possibly expired, not yet swept)
	Cursors map[string]CursorInfo
	// PrivateUsers holds the users whose receipts are private; PrivacySet
	// every user whose setting was ever set.
	PrivateUsers map[string]bool
	PrivacySet   map[string]bool
	// Marks are the read marks; a group's go with it.
	Marks map[MarkKey]Pos
	seq   int
}

// NewModel returns an empty model with the engine's defaults.
func NewModel(now time.Time) *Model {
	return &Model{
		Now:          now.UnixNano(),
		Retention:    rr.DefaultRetention,
		Enabled:      true,
		Types:        map[rr.GroupType]bool{rr.GroupWork: true, rr.GroupPublic: true, rr.GroupMeeting: true},
		Access:       rr.AccessSender,
		MaxMessages:  rr.DefaultMaxMessagesPerCall,
		MaxQuery:     rr.DefaultMaxQueryMessages,
		MaxPage:      rr.DefaultMaxPageSize,
		MaxID:        rr.DefaultMaxIDLength,
		Groups:       map[string]*Group{},
		Msgs:         map[MsgKey]*Msg{},
		Cursors:      map[string]CursorInfo{},
		PrivateUsers: map[string]bool{},
		PrivacySet:   map[string]bool{},
		Marks:        map[MarkKey]Pos{},
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
// member-index order: the public readers R (FilterRead) or the other
// recipients, the delivered R ∪ D (FilterDelivered) or the others. Private
// reads count as delivered and as unread.
func (m *Model) MemberList(msg *Msg, f rr.MemberFilter) []Recipient {
	var out []Recipient
	for _, r := range msg.Rcpts {
		in := msg.Readers[r.User]
		if f == rr.FilterDelivered || f == rr.FilterUndelivered {
			in = in || msg.Delivered[r.User]
		}
		if in == (f == rr.FilterRead || f == rr.FilterDelivered) {
			out = append(out, r)
		}
	}
	return out
}

// PageTimes returns the read times a FilterRead page of users shows: with
// read times on, each reader's public read; nil otherwise.
func (m *Model) PageTimes(msg *Msg, f rr.MemberFilter, users []string) []time.Time {
	if !m.ReadTimes || f != rr.FilterRead {
		return nil
	}
	out := make([]time.Time, len(users))
	for i, u := range users {
		if t, ok := msg.PubTime[u]; ok {
			out[i] = time.Unix(t, 0).UTC()
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
	for k := range m.Marks {
		if k.Conv.Type == rr.ConversationGroup && k.Conv.GroupID == gid {
			delete(m.Marks, k)
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
	if msg.Thread != "" {
		errs = append(errs, m.idErrs(msg.Thread)...)
	}
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
	m.Msgs[key] = &Msg{Key: key, Sender: msg.Sender, Thread: msg.Thread, TrackedAt: m.Now, Seq: m.seq, Rcpts: rcpts,
		Readers: map[string]bool{}, Delivered: map[string]bool{}, Private: map[string]bool{},
		PubTime: map[string]int64{}, PrivTime: map[string]int64{}}
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

// Mode is what a receipt call records (the engine's receiptMode).
type Mode int

const (
	ModeRead Mode = iota
	ModeReadPrivate
	ModeDeliver
)

// readMode is the mode of reader's read receipts.
func (m *Model) readMode(reader string) Mode {
	if m.PrivateUsers[reader] {
		return ModeReadPrivate
	}
	return ModeRead
}

// Receipt models Engine.SendMessageReadReceipt: the call's outcome, the
// per-message results, the events it must emit, in order, and the reader's
// own event.
func (m *Model) Receipt(reader string, refs []rr.MessageRef) (Outcome, []Result, []rr.ReceiptEvent, []rr.OwnReadEvent) {
	errs := m.featureErrs()
	errs = append(errs, m.idErrs(reader)...)
	errs = append(errs, m.refsErrs(refs, m.MaxMessages)...)
	if len(errs) > 0 {
		return failure(errs...), nil, nil, nil
	}
	res, events := m.receipts(reader, refs, m.readMode(reader))
	var own []rr.OwnReadEvent
	var ids []string
	for _, r := range res {
		if r.Recorded {
			ids = append(ids, r.MessageID)
		}
	}
	if len(ids) > 0 {
		own = []rr.OwnReadEvent{{UserID: reader, Conversation: Canon(refs[0].Conversation), MessageIDs: ids}}
	}
	return success(), res, m.visible(events), own
}

// Deliver models Engine.SendMessageDeliveryReceipt.
func (m *Model) Deliver(reader string, refs []rr.MessageRef) (Outcome, []Result, []rr.ReceiptEvent) {
	errs := m.featureErrs()
	errs = append(errs, m.idErrs(reader)...)
	errs = append(errs, m.refsErrs(refs, m.MaxMessages)...)
	if len(errs) > 0 {
		return failure(errs...), nil, nil
	}
	res, events := m.receipts(reader, refs, ModeDeliver)
	return success(), res, m.visible(events)
}

// visible drops, with reciprocal privacy, the read events of senders whose
// receipts are private.
func (m *Model) visible(events []rr.ReceiptEvent) []rr.ReceiptEvent {
	if !m.Reciprocal {
		return events
	}
	var out []rr.ReceiptEvent
	for _, ev := range events {
		if ev.Kind == rr.EventRead && m.PrivateUsers[ev.Sender] {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// receipts records the receipts of one valid call of mode, per the model of
// issue 12: R, D and P as model.go's receiptMode describes.
func (m *Model) receipts(reader string, refs []rr.MessageRef, mode Mode) ([]Result, []rr.ReceiptEvent) {
	conv := Canon(refs[0].Conversation)
	res := make([]Result, len(refs))
	first := map[string]int{}
	var events []rr.ReceiptEvent
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
			continue
		case reader == msg.Sender:
			res[i].Err = rr.ErrOwnMessage
			continue
		case !msg.isRecipient(reader):
			res[i].Err = rr.ErrNotRecipient
			continue
		}
		switch mode {
		case ModeRead:
			if msg.Readers[reader] {
				continue
			}
			msg.Readers[reader] = true
			if !msg.isGroup() {
				msg.ReadAt = m.Now
			}
			if m.ReadTimes {
				msg.PubTime[reader] = m.Now / 1e9
			}
			res[i].Recorded = true
			events = append(events, m.event(rr.EventRead, msg, reader))
		case ModeReadPrivate:
			if msg.Readers[reader] || msg.Private[reader] {
				continue
			}
			msg.Private[reader] = true
			if m.ReadTimes {
				msg.PrivTime[reader] = m.Now / 1e9
			}
			res[i].Recorded = true
			if !msg.Delivered[reader] {
				msg.Delivered[reader] = true
				events = append(events, m.event(rr.EventDelivered, msg, reader))
			}
		case ModeDeliver:
			if msg.Readers[reader] || msg.Delivered[reader] {
				continue
			}
			msg.Delivered[reader] = true
			res[i].Recorded = true
			events = append(events, m.event(rr.EventDelivered, msg, reader))
		}
	}
	return res, events
}

func (m *Model) event(kind rr.EventKind, msg *Msg, reader string) rr.ReceiptEvent {
	read, delivered := len(msg.Readers), msg.deliveredCount()
	ev := rr.ReceiptEvent{
		Kind:             kind,
		Sender:           msg.Sender,
		Conversation:     msg.Key.Conv,
		MessageID:        msg.Key.ID,
		ReadCount:        read,
		UnreadCount:      len(msg.Rcpts) - read,
		DeliveredCount:   delivered,
		UndeliveredCount: len(msg.Rcpts) - delivered,
		Reader:           reader,
	}
	if msg.isGroup() {
		ev.GroupID = msg.Key.Conv.GroupID
	} else {
		ev.UserID = msg.Rcpts[0].User
		ev.IsPeerRead = read > 0
		ev.IsPeerDelivered = delivered > 0
		ev.ReadTime = msg.readTime()
	}
	return ev
}

// Info returns the receipt info of a live message, as an administrator sees
// it.
func (m *Model) Info(msg *Msg) rr.ReceiptInfo {
	read, delivered := len(msg.Readers), msg.deliveredCount()
	return rr.ReceiptInfo{
		MessageID:        msg.Key.ID,
		ReadCount:        read,
		UnreadCount:      len(msg.Rcpts) - read,
		DeliveredCount:   delivered,
		UndeliveredCount: len(msg.Rcpts) - delivered,
		IsPeerRead:       !msg.isGroup() && read > 0,
		IsPeerDelivered:  !msg.isGroup() && delivered > 0,
		ReadTime:         msg.readTime(),
	}
}

// hidden reports whether, with reciprocal privacy, others' reads are hidden
// from caller.
func (m *Model) hidden(c rr.Caller) bool {
	return m.Reciprocal && !c.Admin && m.PrivateUsers[c.UserID]
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
		case m.hidden(c):
			out[i] = rr.ReceiptInfo{MessageID: r.ID, Err: rr.ErrPrivateReceipts}
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
	if req.Filter > rr.FilterUndelivered {
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
	if req.Filter <= rr.FilterUnread && m.hidden(c) {
		return PageExpect{Outcome: failure(rr.ErrPrivateReceipts)}
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
		cm.Delivered = maps.Clone(msg.Delivered)
		cm.Private = maps.Clone(msg.Private)
		cm.PubTime = maps.Clone(msg.PubTime)
		cm.PrivTime = maps.Clone(msg.PrivTime)
		c.Msgs[k] = &cm
	}
	c.Cursors = maps.Clone(m.Cursors)
	c.PrivateUsers = maps.Clone(m.PrivateUsers)
	c.PrivacySet = maps.Clone(m.PrivacySet)
	c.Marks = maps.Clone(m.Marks)
	return &c
}

// ---- beyond the seed: privacy, own read state, read times, marks ----

// SetPrivate models Engine.SetReceiptsPrivate (and, with get, the answer of
// Engine.ReceiptsPrivate afterwards).
func (m *Model) SetPrivate(user string, on bool) Outcome {
	if errs := m.idErrs(user); errs != nil {
		return failure(errs...)
	}
	m.PrivacySet[user] = true
	if on {
		m.PrivateUsers[user] = true
	} else {
		delete(m.PrivateUsers, user)
	}
	return success()
}

// Private models Engine.ReceiptsPrivate.
func (m *Model) Private(user string) (Outcome, bool) {
	if errs := m.idErrs(user); errs != nil {
		return failure(errs...), false
	}
	return success(), m.PrivateUsers[user]
}

// ReadState models Engine.GetMessageReadState.
func (m *Model) ReadState(user string, refs []rr.MessageRef) (Outcome, []rr.ReadState) {
	errs := m.featureErrs()
	errs = append(errs, m.idErrs(user)...)
	errs = append(errs, m.refsErrs(refs, m.MaxQuery)...)
	if len(errs) > 0 {
		return failure(errs...), nil
	}
	conv := Canon(refs[0].Conversation)
	out := make([]rr.ReadState, len(refs))
	for i, r := range refs {
		out[i].MessageID = r.ID
		msg := m.Live(MsgKey{Conv: conv, ID: r.ID})
		switch {
		case msg == nil:
			out[i].Err = rr.ErrReceiptNotFound
			continue
		case user == msg.Sender:
			out[i].Err = rr.ErrOwnMessage
			continue
		case !msg.isRecipient(user):
			out[i].Err = rr.ErrNotRecipient
			continue
		}
		pub, priv := msg.Readers[user], msg.Private[user]
		out[i].Read = pub || priv
		out[i].Private = priv && !pub
		out[i].Delivered = out[i].Read || msg.Delivered[user]
		switch {
		case pub && !msg.isGroup():
			out[i].ReadTime = time.Unix(0, msg.ReadAt).UTC()
		case !m.ReadTimes:
		case pub:
			if t, ok := msg.PubTime[user]; ok {
				out[i].ReadTime = time.Unix(t, 0).UTC()
			}
		case priv:
			if t, ok := msg.PrivTime[user]; ok {
				out[i].ReadTime = time.Unix(t, 0).UTC()
			}
		}
	}
	return success(), out
}

// ReadTimes models Engine.GetMessageReadTimes.
func (m *Model) ReadTimesOf(c rr.Caller, ref rr.MessageRef, users []string) (Outcome, []rr.MemberReadTime) {
	errs := m.featureErrs()
	errs = append(errs, m.callerErrs(c)...)
	errs = append(errs, m.refsErrs([]rr.MessageRef{ref}, 1)...)
	if len(users) == 0 {
		errs = append(errs, rr.ErrInvalidParameter)
	}
	if len(users) > m.MaxPage {
		errs = append(errs, rr.ErrPageTooLarge)
	}
	errs = append(errs, m.idErrs(users...)...)
	if len(errs) > 0 {
		return failure(errs...), nil
	}
	if m.hidden(c) {
		return failure(rr.ErrPrivateReceipts), nil
	}
	msg := m.Live(MsgKey{Conv: Canon(ref.Conversation), ID: ref.ID})
	switch {
	case msg == nil:
		return failure(rr.ErrReceiptNotFound), nil
	case !m.mayRead(c, msg):
		return failure(rr.ErrPermissionDenied), nil
	}
	out := make([]rr.MemberReadTime, len(users))
	for i, u := range users {
		out[i].UserID = u
		if !msg.Readers[u] {
			continue
		}
		out[i].Read = true
		switch {
		case !msg.isGroup():
			out[i].ReadTime = time.Unix(0, msg.ReadAt).UTC()
		case m.ReadTimes:
			if t, ok := msg.PubTime[u]; ok {
				out[i].ReadTime = time.Unix(t, 0).UTC()
			}
		}
	}
	return success(), out
}

// Mark models Engine.GetReadMark.
func (m *Model) Mark(reader string, conv rr.Conversation, thread string) (Outcome, rr.ReadMark, bool) {
	errs := m.featureErrs()
	errs = append(errs, m.idErrs(reader)...)
	errs = append(errs, m.convErrs(conv)...)
	if thread != "" {
		errs = append(errs, m.idErrs(thread)...)
	}
	if len(errs) > 0 {
		return failure(errs...), rr.ReadMark{}, false
	}
	p, ok := m.Marks[MarkKey{Conv: Canon(conv), Thread: thread, Reader: reader}]
	if !ok {
		return success(), rr.ReadMark{}, false
	}
	return success(), p.Mark(), true
}

// MarkExpect is the model's prediction for one MarkConversationRead.
type MarkExpect struct {
	Outcome
	Result rr.MarkResult
	Events []rr.ReceiptEvent
	Own    []rr.OwnReadEvent
}

// MarkRead models Engine.MarkConversationRead: receipts, as
// SendMessageReadReceipt would record them, for every live message of the
// conversation (of the thread) after the reader's mark and at or before the
// new one, in order; then the mark, never moved back.
func (m *Model) MarkRead(reader string, req rr.MarkRequest) MarkExpect {
	conv := req.Conversation
	errs := m.featureErrs()
	errs = append(errs, m.idErrs(reader)...)
	errs = append(errs, m.convErrs(conv)...)
	if req.Thread != "" {
		errs = append(errs, m.idErrs(req.Thread)...)
	}
	if conv.Type == rr.ConversationC2C && conv.Users[0] != reader && conv.Users[1] != reader {
		errs = append(errs, rr.ErrInvalidParameter)
	}
	switch {
	case req.MessageID != "":
		errs = append(errs, m.idErrs(req.MessageID)...)
		if !req.Time.IsZero() {
			errs = append(errs, rr.ErrInvalidParameter)
		}
	case req.Time.IsZero():
		errs = append(errs, rr.ErrInvalidParameter)
	}
	if len(errs) > 0 {
		return MarkExpect{Outcome: failure(errs...)}
	}
	conv = Canon(conv)
	var target Pos
	if req.MessageID != "" {
		msg := m.Live(MsgKey{Conv: conv, ID: req.MessageID})
		if msg == nil || req.Thread != "" && msg.Thread != req.Thread {
			return MarkExpect{Outcome: failure(rr.ErrReceiptNotFound)}
		}
		target = msg.pos()
	} else {
		// A mark at a time covers what is tracked by now, never later.
		target = Pos{At: req.Time.UnixMicro(), ID: MaxID}
		if now := (Pos{At: m.Now / 1000, ID: MaxID}); target.Cmp(now) > 0 {
			target = now
		}
	}
	if conv.Type == rr.ConversationGroup && m.Groups[conv.GroupID] == nil {
		// Marks are kept with their group: none for a group that is not
		// there (model.go does not say; both backends answer so).
		return MarkExpect{Outcome: failure(rr.ErrGroupNotFound)}
	}
	key := MarkKey{Conv: conv, Thread: req.Thread, Reader: reader}
	prev, hasPrev := m.Marks[key]
	if hasPrev && target.Cmp(prev) <= 0 {
		return MarkExpect{Result: rr.MarkResult{Mark: prev.Mark()}}
	}
	var msgs []*Msg
	for _, msg := range m.Msgs {
		if msg.Key.Conv != conv || m.expired(msg) || req.Thread != "" && msg.Thread != req.Thread {
			continue
		}
		p := msg.pos()
		if (!hasPrev || p.Cmp(prev) > 0) && p.Cmp(target) <= 0 {
			msgs = append(msgs, msg)
		}
	}
	slices.SortFunc(msgs, func(a, b *Msg) int { return a.pos().Cmp(b.pos()) })
	var exp MarkExpect
	var ids []string
	mode := m.readMode(reader)
	for _, msg := range msgs {
		res, evs := m.receipts(reader, []rr.MessageRef{{Conversation: conv, ID: msg.Key.ID}}, mode)
		exp.Events = append(exp.Events, evs...)
		if res[0].Recorded {
			exp.Result.Recorded++
			ids = append(ids, msg.Key.ID)
		}
	}
	exp.Events = m.visible(exp.Events)
	exp.Result.Messages = len(msgs)
	m.Marks[key] = target
	exp.Result.Mark = target.Mark()
	mark := exp.Result.Mark
	exp.Own = []rr.OwnReadEvent{{UserID: reader, Conversation: conv, MessageIDs: ids, Mark: &mark, Thread: req.Thread}}
	return exp
}
