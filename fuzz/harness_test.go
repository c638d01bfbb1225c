package fuzz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/readreceipt/readreceipt/store/pebblestore"
)

// Engine limits used by every history: small, so that histories hit them.
const (
	maxMessages = 4
	maxQuery    = 6
	maxPage     = 3
	retention   = 10 * time.Second
	maxOps      = 300 // operations per history
	checkEvery  = 8   // full-state comparison every this many operations
)

// Pools. Small, so that IDs collide often.
var (
	users    = []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}
	groupIDs = []string{"g0", "g1", "g2"}
	msgIDs   = []string{"m0", "m1", "m2", "m3", "m4", "m5"}
	badIDs   = []string{"", "\xff\xfe", strings.Repeat("x", rr.DefaultMaxIDLength+1), "u\x80"}
	c2cPairs = [][2]int{{0, 1}, {0, 2}, {1, 2}, {1, 3}, {2, 3}}
)

// convPool is every valid conversation the decoder can name, for full-state
// comparisons.
func convPool() []rr.Conversation {
	var out []rr.Conversation
	for _, g := range groupIDs {
		out = append(out, rr.Group(g))
	}
	for _, p := range c2cPairs {
		out = append(out, rr.C2C(users[p[0]], users[p[1]]))
	}
	return out
}

// decoder turns fuzz bytes into choices; past the end it yields zeros.
type decoder struct {
	b      []byte
	i      int
	recent []rr.Message // the last messages the history tried to track
}

func (d *decoder) more() bool { return d.i < len(d.b) }

func (d *decoder) byte() byte {
	if d.i >= len(d.b) {
		return 0
	}
	c := d.b[d.i]
	d.i++
	return c
}

func (d *decoder) user() string {
	b := d.byte()
	if b >= 252 {
		return badIDs[b%4]
	}
	return users[b%8]
}

func (d *decoder) users() []string {
	n := int(d.byte() % 5)
	out := make([]string, n)
	for i := range out {
		out[i] = d.user()
	}
	return out
}

func (d *decoder) groupID() string {
	b := d.byte()
	if b >= 252 {
		return badIDs[b%4]
	}
	return groupIDs[b%3]
}

func (d *decoder) msgID() string {
	b := d.byte()
	if b >= 252 {
		return badIDs[b%4]
	}
	return msgIDs[b%6]
}

// convFrom picks a conversation from one byte below 128 or at least 248:
// mostly the three groups, else one of five C2C pairs (sometimes as a
// literal with its users unsorted), from 248 on an invalid one.
func convFrom(b byte) rr.Conversation {
	if b >= 248 {
		p := c2cPairs[int(b)%len(c2cPairs)]
		switch b % 4 {
		case 0, 1: // unknown type (0 or 3), users of a real pair
			u := [2]string{users[p[0]], users[p[1]]}
			return rr.Conversation{Type: rr.ConversationType(b % 4 * 3), GroupID: groupIDs[0], Users: u}
		case 2: // C2C with oneself, or with an invalid user ID
			if b >= 252 {
				return rr.C2C(users[p[0]], badIDs[int(b/8)%len(badIDs)])
			}
			return rr.Conversation{Type: rr.ConversationC2C, Users: [2]string{users[p[0]], users[p[0]]}}
		default: // bad group ID
			return rr.Group(badIDs[int(b/4)%len(badIDs)])
		}
	}
	b &= 0x7f
	switch v := int(b % 16); {
	case v < 10:
		return rr.Group(groupIDs[v%3])
	case v < 15:
		p := c2cPairs[v-10]
		return rr.C2C(users[p[0]], users[p[1]])
	default:
		// The literal, unsorted: the engine must treat it as the same
		// conversation.
		p := c2cPairs[int(b/16)%len(c2cPairs)]
		return rr.Conversation{Type: rr.ConversationC2C, Users: [2]string{users[p[1]], users[p[0]]}}
	}
}

// conv picks any conversation.
func (d *decoder) conv() rr.Conversation { return convFrom(d.byte()) }

// refConv picks a conversation for a message list: bytes 128..247 take the
// conversation of a recently tracked message, so that lists often name
// messages that exist.
func (d *decoder) refConv() rr.Conversation {
	b := d.byte()
	if b >= 128 && b < 248 && len(d.recent) > 0 {
		return d.recent[int(b)%len(d.recent)].Conversation
	}
	return convFrom(b)
}

// message picks one message: bytes 128..247 a recently tracked one, others
// a conversation and then an ID.
func (d *decoder) message() (rr.MessageRef, string) {
	b := d.byte()
	if b >= 128 && b < 248 && len(d.recent) > 0 {
		m := d.recent[int(b)%len(d.recent)]
		return m.Ref(), m.Sender
	}
	return rr.MessageRef{Conversation: convFrom(b), ID: d.msgID()}, ""
}

// noteTrack remembers a message the history tried to track.
func (d *decoder) noteTrack(m rr.Message) {
	d.recent = append(d.recent, m)
	if len(d.recent) > 8 {
		d.recent = d.recent[1:]
	}
}

// callerFrom picks who asks: an administrator, the message's sender (when
// known), a user, or an invalid user.
func callerFrom(b byte, sender string) rr.Caller {
	switch {
	case b%5 == 0:
		return rr.AsAdmin()
	case b%5 == 1 && b >= 128 && sender != "":
		return rr.AsUser(sender)
	case b >= 252:
		return rr.AsUser("")
	}
	return rr.AsUser(users[int(b/5)%8])
}

// refs picks a list of messages, mostly of one conversation; sizes 0 and
// over the limit occur. Per entry, bytes 0..127 name one of the six IDs,
// 128..245 a recently tracked message of the conversation if there is one,
// 246..249 an invalid ID, and from 250 on the next byte names another
// conversation (likely a mixed batch).
func (d *decoder) refs(limit int) []rr.MessageRef {
	var n int
	switch b := d.byte() % 32; {
	case b == 0:
		n = 0
	case b == 31:
		n = limit + 1
	default:
		n = 1 + (int(b)-1)%limit
	}
	conv := d.refConv()
	var ids []string
	for _, m := range d.recent {
		if Canon(m.Conversation) == Canon(conv) {
			ids = append(ids, m.ID)
		}
	}
	out := make([]rr.MessageRef, n)
	for i := range out {
		b := d.byte()
		out[i] = rr.MessageRef{Conversation: conv, ID: msgIDs[b%6]}
		switch {
		case b >= 250:
			out[i].Conversation = d.conv()
		case b >= 246:
			out[i].ID = badIDs[b%4]
		case b >= 128 && len(ids) > 0:
			out[i].ID = ids[int(b)%len(ids)]
		}
	}
	return out
}

// config is the engine configuration a history runs with.
type config struct {
	retention time.Duration
	access    rr.QueryAccess
	cache     int64 // 0: default
	allTypes  bool
	syncOff   bool
}

func decodeConfig(b byte) config {
	c := config{}
	switch b % 4 {
	case 0, 1:
		c.retention = retention
	case 2:
		c.retention = 0
	case 3:
		c.retention = retention / 2
	}
	if b&4 != 0 {
		c.access = rr.AccessRecipients
	}
	if b&8 != 0 {
		c.cache = 1 // every cache evicts at once
	}
	c.allTypes = b&16 != 0
	c.syncOff = b&32 == 0
	return c
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness runs one history against an engine and the model.
type harness struct {
	tb      testing.TB
	ctx     context.Context
	backend string // "mem" or "pebble"
	dir     string
	cfg     config
	mem     *memstore.Store
	pst     *pebblestore.Store
	eng     *rr.Engine
	clock   atomic.Int64
	model   *Model
	trace   []string

	mu      sync.Mutex
	batches [][]rr.ReceiptEvent

	cursors  []string              // cursors the engine handed out, newest last
	lastReq  *rr.MemberListRequest // the last page request that has a next page
	lastCall rr.Caller             // its caller
	checking bool                  // in fullCheck
}

func newHarness(tb testing.TB, backend, dir string, cfg config) *harness {
	h := &harness{tb: tb, ctx: context.Background(), backend: backend, dir: dir, cfg: cfg}
	h.clock.Store(epoch.UnixNano())
	m := NewModel(epoch)
	m.Retention = cfg.retention
	m.Access = cfg.access
	m.MaxMessages, m.MaxQuery, m.MaxPage = maxMessages, maxQuery, maxPage
	if cfg.allTypes {
		m.SetTypes([]rr.GroupType{rr.GroupWork, rr.GroupPublic, rr.GroupMeeting, rr.GroupCommunity, rr.GroupAVChatRoom})
	}
	h.model = m
	h.open()
	return h
}

func (h *harness) now() time.Time { return time.Unix(0, h.clock.Load()).UTC() }

func (h *harness) open() {
	var err error
	switch h.backend {
	case "mem":
		if h.mem == nil {
			h.mem = memstore.New()
		}
		h.eng, err = rr.Open(h.mem, h.options()...)
	case "pebble":
		h.pst, err = pebblestore.Open(h.dir, nil)
		if err != nil {
			h.fail("open pebble: %v", err)
		}
		h.eng, err = rr.Open(h.pst, h.options()...)
	default:
		h.fail("unknown backend %q", h.backend)
	}
	if err != nil {
		h.fail("open engine: %v", err)
	}
	h.eng.Subscribe(func(evs []rr.ReceiptEvent) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.batches = append(h.batches, slices.Clone(evs))
	})
}

func (h *harness) options() []rr.Option {
	m := h.model
	opts := []rr.Option{
		rr.WithClock(h.now),
		rr.WithSweepInterval(0),
		rr.WithRetention(m.Retention),
		rr.WithQueryAccess(m.Access),
		rr.WithMaxMessagesPerCall(m.MaxMessages),
		rr.WithMaxQueryMessages(m.MaxQuery),
		rr.WithMaxPageSize(m.MaxPage),
		rr.WithFeatureEnabled(m.Enabled),
		rr.WithGroupTypes(m.TypeList()...),
		rr.WithSyncWrites(!h.cfg.syncOff),
	}
	if h.cfg.cache > 0 {
		opts = append(opts, rr.WithCacheBytes(h.cfg.cache))
	}
	return opts
}

func (h *harness) close() {
	if h.eng != nil {
		if err := h.eng.Close(); err != nil {
			h.fail("close engine: %v", err)
		}
		// Close is idempotent, and calls after it fail with ErrClosed.
		if err := h.eng.Close(); err != nil {
			h.fail("second Close: %v", err)
		}
		_, err := h.eng.SendMessageReadReceipt(h.ctx, users[0], []rr.MessageRef{{Conversation: rr.Group(groupIDs[0]), ID: msgIDs[0]}})
		if !SameKind(err, rr.ErrClosed) {
			h.fail("SendMessageReadReceipt after Close: %v, want ErrClosed", err)
		}
		if err := h.eng.CreateGroup(h.ctx, groupIDs[0], rr.GroupWork, nil); !SameKind(err, rr.ErrClosed) {
			h.fail("CreateGroup after Close: %v, want ErrClosed", err)
		}
		h.eng = nil
	}
	if h.pst != nil {
		if err := h.pst.Close(); err != nil {
			h.fail("close pebble: %v", err)
		}
		h.pst = nil
	}
}

func (h *harness) logf(format string, args ...any) {
	h.trace = append(h.trace, fmt.Sprintf(format, args...))
}

func (h *harness) fail(format string, args ...any) {
	h.tb.Helper()
	var b strings.Builder
	b.WriteString("history (" + h.backend + fmt.Sprintf(", %+v", h.cfg) + "):\n")
	for i, s := range h.trace {
		fmt.Fprintf(&b, "  %3d %s\n", i, s)
	}
	b.WriteString("FAILED: " + fmt.Sprintf(format, args...))
	if h.eng != nil {
		_ = h.eng.Close()
		h.eng = nil
	}
	if h.pst != nil {
		_ = h.pst.Close()
		h.pst = nil
	}
	h.tb.Fatal(b.String())
}

func (h *harness) expect(what string, o Outcome, err error) {
	h.tb.Helper()
	if msg := o.Mismatch(err); msg != "" {
		h.fail("%s: %s", what, msg)
	}
	stat(what + ": " + kindName(err))
	if n := len(h.trace); n > 0 && !h.checking {
		h.trace[n-1] += " -> " + kindName(err)
	}
}

// Outcome statistics, printed by TestEngineMatchesModel with -v, to see
// that histories reach the interesting cases.
var stats struct {
	sync.Mutex
	n map[string]int
}

func stat(key string) {
	stats.Lock()
	defer stats.Unlock()
	if stats.n == nil {
		stats.n = map[string]int{}
	}
	stats.n[key]++
}

func statsReport() string {
	stats.Lock()
	defer stats.Unlock()
	keys := make([]string, 0, len(stats.n))
	for k := range stats.n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%8d %s\n", stats.n[k], k)
	}
	return b.String()
}

func (h *harness) takeBatches() [][]rr.ReceiptEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.batches
	h.batches = nil
	return b
}

// run decodes and runs a whole history.
func (h *harness) run(data []byte) {
	d := &decoder{b: data}
	for n := 0; d.more() && n < maxOps; n++ {
		h.step(d)
		if b := h.takeBatches(); len(b) > 0 {
			h.fail("events outside a receipt call: %+v", b)
		}
		if (n+1)%checkEvery == 0 {
			h.fullCheck(n/checkEvery%2 == 1)
		}
	}
	h.fullCheck(false)
	if h.backend == "pebble" {
		h.logf("reopen (final)")
		h.close()
		h.open()
		h.fullCheck(true)
	}
	h.drain()
	h.close()
}

// drain empties the engine in two phases and checks that storage is
// reclaimed. First every message is deleted and the sweep run: the store
// must then hold as many keys as a fresh engine that only ever saw the
// groups' current membership (superseded membership snapshots are dropped
// once no message needs them). Then every group is dismissed: the store
// must hold no more keys than a fresh engine writes.
func (h *harness) drain() {
	m := h.model
	h.logf("drain")
	h.checking = true
	defer func() { h.checking = false }()
	var keys []MsgKey
	for k := range m.Msgs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b MsgKey) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		ref := rr.MessageRef{Conversation: k.Conv, ID: k.ID}
		h.expect("drain: DeleteMessage "+k.String(), m.Delete(ref), h.eng.DeleteMessage(h.ctx, ref))
	}
	if n, err := h.eng.Sweep(h.ctx); n != 0 || err != nil {
		h.fail("drain: Sweep after deleting every message: %d, %v", n, err)
	}
	h.expectKeys("after deleting every message and sweeping", h.replayGroups())

	gids := make([]string, 0, len(m.Groups))
	for gid := range m.Groups {
		gids = append(gids, gid)
	}
	slices.Sort(gids)
	for _, gid := range gids {
		h.expect("drain: DismissGroup "+gid, m.Dismiss(gid), h.eng.DismissGroup(h.ctx, gid))
	}
	if _, err := h.eng.Sweep(h.ctx); err != nil {
		h.fail("drain: Sweep: %v", err)
	}
	h.expectKeys("after dismissing every group", baselineKeys(h.tb))
}

// expectKeys checks the engine's invariants and the number of keys in its
// store.
func (h *harness) expectKeys(when string, want int) {
	if err := h.eng.Check(h.ctx); err != nil {
		h.fail("drain: Check %s: %v", when, err)
	}
	if got := countKeys(h.tb, h.store()); got != want {
		var b strings.Builder
		_ = h.store().Scan(h.ctx, nil, nil, func(k, v []byte) bool {
			fmt.Fprintf(&b, "\n  %q = %q", k, v)
			return true
		})
		h.fail("drain: %s the store holds %d keys, want %d:%s", when, got, want, b.String())
	}
}

// replayGroups builds the model's groups afresh in a new engine (every
// user who was ever a member, in index order, then the former members
// removed) and returns how many keys its store holds.
func (h *harness) replayGroups() int {
	st := memstore.New()
	e, err := rr.Open(st)
	if err != nil {
		h.fail("replay: open: %v", err)
	}
	defer e.Close()
	for gid, g := range h.model.Groups {
		if err := e.CreateGroup(h.ctx, gid, g.Type, g.Users); err != nil {
			h.fail("replay: %v", err)
		}
		var gone []string
		for _, u := range g.Users {
			if !g.Members[u] {
				gone = append(gone, u)
			}
		}
		if err := e.RemoveGroupMembers(h.ctx, gid, gone); err != nil {
			h.fail("replay: %v", err)
		}
	}
	return countKeys(h.tb, st)
}

func (h *harness) store() store.Store {
	if h.pst != nil {
		return h.pst
	}
	return h.mem
}

// countKeys counts every key of a store. It scans from a nil start: with
// an empty non-nil start, pebblestore.Scan can panic in race builds (Pebble's
// invariant checks index the lower bound's first byte).
func countKeys(tb testing.TB, st store.Store) int {
	n := 0
	if err := st.Scan(context.Background(), nil, nil, func(k, v []byte) bool { n++; return true }); err != nil {
		tb.Fatalf("scan: %v", err)
	}
	return n
}

var baseline struct {
	once sync.Once
	n    int
}

// baselineKeys is the number of keys a fresh engine writes to an empty
// store.
func baselineKeys(tb testing.TB) int {
	baseline.once.Do(func() {
		st := memstore.New()
		e, err := rr.Open(st)
		if err != nil {
			tb.Fatalf("open: %v", err)
		}
		_ = e.Close()
		baseline.n = countKeys(tb, st)
	})
	return baseline.n
}

// step decodes and runs one operation. The operation byte is taken modulo
// 64; the table gives the common operations more slots.
func (h *harness) step(d *decoder) {
	switch op := d.byte() % 64; {
	case op < 3:
		h.createGroup(d)
	case op < 7:
		h.changeMembers(d, true)
	case op < 9:
		h.changeMembers(d, false)
	case op < 10:
		h.dismiss(d)
	case op < 22:
		h.track(d)
	case op < 38:
		h.receipt(d)
	case op < 42:
		h.counts(d)
	case op < 49:
		h.page(d)
	case op < 51:
		h.deleteMessage(d)
	case op < 53:
		dur := time.Duration(d.byte()%8) * time.Second
		h.logf("advance %v", dur)
		h.clock.Add(int64(dur))
		h.model.Advance(dur)
	case op < 54:
		h.sweep()
	case op < 55:
		on := d.byte()%8 != 0
		h.logf("feature %v", on)
		h.eng.SetFeatureEnabled(on)
		h.model.SetEnabled(on)
	case op < 56:
		h.setTypes(d)
	case op < 57:
		h.logf("reopen")
		h.close()
		h.open()
	case op < 59:
		h.logf("full check")
		h.fullCheck(d.byte()%2 == 0)
	case op < 60:
		h.getGroup(d.groupID())
	default:
		h.receipt(d)
	}
}

func (h *harness) createGroup(d *decoder) {
	gid := d.groupID()
	var typ rr.GroupType
	switch b := d.byte(); b % 12 {
	case 11:
		typ = rr.GroupType(b / 128 * 6) // 0 or 6: invalid
	default:
		typ = []rr.GroupType{6: rr.GroupPublic, 7: rr.GroupPublic, 8: rr.GroupMeeting, 9: rr.GroupCommunity, 10: rr.GroupAVChatRoom}[b%12]
		if typ == 0 {
			typ = rr.GroupWork
		}
	}
	members := d.users()
	h.logf("create-group %q type=%d members=%q", gid, typ, members)
	err := h.eng.CreateGroup(h.ctx, gid, typ, members)
	h.expect("CreateGroup", h.model.CreateGroup(gid, typ, members), err)
}

func (h *harness) changeMembers(d *decoder, add bool) {
	gid := d.groupID()
	members := d.users()
	name := "RemoveGroupMembers"
	if add {
		name = "AddGroupMembers"
	}
	h.logf("%s %q %q", name, gid, members)
	var err error
	if add {
		err = h.eng.AddGroupMembers(h.ctx, gid, members)
	} else {
		err = h.eng.RemoveGroupMembers(h.ctx, gid, members)
	}
	h.expect(name, h.model.ChangeMembers(gid, members, add), err)
}

func (h *harness) dismiss(d *decoder) {
	gid := d.groupID()
	h.logf("dismiss %q", gid)
	h.expect("DismissGroup", h.model.Dismiss(gid), h.eng.DismissGroup(h.ctx, gid))
}

func (h *harness) getGroup(gid string) {
	h.logf("get-group %q", gid)
	info, err := h.eng.GetGroup(h.ctx, gid)
	o, want := h.model.GetGroup(gid)
	h.expect("GetGroup", o, err)
	if err == nil && info != want {
		h.fail("GetGroup %q: got %+v, want %+v", gid, info, want)
	}
}

func (h *harness) track(d *decoder) {
	msg := rr.Message{Conversation: d.conv(), ID: d.msgID()}
	msg.Sender = h.sender(d.byte(), msg.Conversation)
	h.logf("track %s id=%q sender=%q", fmtConv(msg.Conversation), msg.ID, msg.Sender)
	err := h.eng.TrackMessage(h.ctx, msg)
	o := h.model.Track(msg)
	h.expect("TrackMessage", o, err)
	if err == nil || d.i%4 == 0 {
		d.noteTrack(msg) // mostly messages that exist
	}
}

func (h *harness) deleteMessage(d *decoder) {
	ref, _ := d.message()
	h.logf("delete %s id=%q", fmtConv(ref.Conversation), ref.ID)
	h.expect("DeleteMessage", h.model.Delete(ref), h.eng.DeleteMessage(h.ctx, ref))
}

func (h *harness) sweep() {
	h.logf("sweep")
	n, err := h.eng.Sweep(h.ctx)
	if err != nil {
		h.fail("Sweep: %v", err)
	}
	if want := h.model.Sweep(); n != want {
		h.fail("Sweep deleted %d messages, want %d", n, want)
	}
	stat(fmt.Sprintf("sweep: deleted>0=%v", n > 0))
}

func (h *harness) setTypes(d *decoder) {
	b := d.byte()
	var types []rr.GroupType
	for t := rr.GroupWork; t <= rr.GroupAVChatRoom; t++ {
		if b&(1<<(t-1)) != 0 {
			types = append(types, t)
		}
	}
	if b&0x20 == 0 && !slices.Contains(types, rr.GroupWork) {
		types = append(types, rr.GroupWork)
	}
	if b >= 0xf0 {
		types = append(types, rr.GroupType(b&0x7)) // 0, 6 or 7 are invalid
	}
	h.logf("set-group-types %v", types)
	h.expect("SetGroupTypes", h.model.SetTypes(types), h.eng.SetGroupTypes(types...))
}

func (h *harness) receipt(d *decoder) {
	rb := d.byte()
	refs := d.refs(maxMessages)
	reader := h.reader(rb, refs)
	h.logf("receipt reader=%q %s", reader, fmtRefs(refs))
	res, err := h.eng.SendMessageReadReceipt(h.ctx, reader, refs)
	o, want, wantEvents := h.model.Receipt(reader, refs)
	h.expect("SendMessageReadReceipt", o, err)
	batches := h.takeBatches()
	if err != nil {
		if len(res) != 0 || len(batches) != 0 {
			h.fail("failed SendMessageReadReceipt returned results %+v, events %+v", res, batches)
		}
		return
	}
	var sum []string
	for _, r := range res {
		switch {
		case r.Err != nil:
			sum = append(sum, kindName(r.Err))
		case r.Recorded:
			sum = append(sum, "recorded")
		default:
			sum = append(sum, "already")
		}
	}
	h.trace[len(h.trace)-1] += " " + strings.Join(sum, ",")
	if len(res) != len(want) {
		h.fail("SendMessageReadReceipt: %d results for %d messages", len(res), len(want))
	}
	for i := range res {
		g, w := res[i], want[i]
		stat(fmt.Sprintf("receipt result: recorded=%v %s", g.Recorded, kindName(g.Err)))
		if g.MessageID != w.MessageID || g.Recorded != w.Recorded || !SameKind(g.Err, w.Err) {
			h.fail("SendMessageReadReceipt result %d: got {%s recorded=%v err=%v}, want {%s recorded=%v err=%s}",
				i, g.MessageID, g.Recorded, g.Err, w.MessageID, w.Recorded, kindName(w.Err))
		}
	}
	switch {
	case len(wantEvents) == 0 && len(batches) != 0:
		h.fail("SendMessageReadReceipt recorded nothing but emitted %+v", batches)
	case len(wantEvents) > 0 && len(batches) != 1:
		h.fail("SendMessageReadReceipt emitted %d batches, want 1: %+v; want %+v", len(batches), batches, wantEvents)
	case len(wantEvents) > 0 && !slices.Equal(batches[0], wantEvents):
		h.fail("SendMessageReadReceipt events:\n got %+v\nwant %+v", batches[0], wantEvents)
	}
}

// sender resolves the sender byte of TrackMessage: 128..247 pick one of the
// C2C pair or a current member of the group; otherwise any user.
func (h *harness) sender(b byte, conv rr.Conversation) string {
	return h.reader(b, []rr.MessageRef{{Conversation: conv}})
}

// reader resolves the reader byte of a receipt: 128..247 pick one of the
// C2C pair or a current member of the group the list names, if it has any;
// otherwise a user.
func (h *harness) reader(b byte, refs []rr.MessageRef) string {
	if b >= 128 && b < 248 && len(refs) > 0 && refs[0].Conversation.Type == rr.ConversationC2C {
		return refs[0].Conversation.Users[b%2]
	}
	if b >= 128 && b < 248 && len(refs) > 0 && refs[0].Conversation.Type == rr.ConversationGroup {
		if g := h.model.Groups[refs[0].Conversation.GroupID]; g != nil && len(g.Members) > 0 {
			var ms []string
			for _, u := range g.Users {
				if g.Members[u] {
					ms = append(ms, u)
				}
			}
			return ms[int(b)%len(ms)]
		}
	}
	if b >= 252 {
		return badIDs[b%4]
	}
	return users[b%8]
}

func (h *harness) counts(d *decoder) {
	cb := d.byte()
	refs := d.refs(maxQuery)
	sender := ""
	for _, m := range d.recent {
		if len(refs) > 0 && m.Ref() == refs[0] {
			sender = m.Sender
		}
	}
	caller := callerFrom(cb, sender)
	h.logf("counts caller=%+v %s", caller, fmtRefs(refs))
	infos, err := h.eng.GetMessageReadReceiptList(h.ctx, caller, refs)
	o, want := h.model.Counts(caller, refs)
	h.expect("GetMessageReadReceiptList", o, err)
	if err != nil {
		if len(infos) != 0 {
			h.fail("failed GetMessageReadReceiptList returned %+v", infos)
		}
		return
	}
	h.compareInfos(infos, want)
}

func (h *harness) compareInfos(got, want []rr.ReceiptInfo) {
	if len(got) != len(want) {
		h.fail("GetMessageReadReceiptList: %d infos for %d messages", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		stat("counts info: " + kindName(g.Err))
		ge, we := g.Err, w.Err
		g.Err, w.Err = nil, nil
		if g != w || !SameKind(ge, we) {
			h.fail("GetMessageReadReceiptList info %d: got %+v err=%v, want %+v err=%s", i, g, ge, w, kindName(we))
		}
	}
}

// page runs one member page: a fresh one, the continuation of the last
// walk, or one with a cursor from elsewhere (another message or filter,
// garbled).
func (h *harness) page(d *decoder) {
	cb := d.byte()
	ref, sender := d.message()
	caller := callerFrom(cb, sender)
	req := rr.MemberListRequest{Message: ref}
	switch f := d.byte(); {
	case f >= 250:
		req.Filter = rr.MemberFilter(2 + f%2)
	default:
		req.Filter = rr.MemberFilter(f % 2)
	}
	switch c := d.byte(); {
	case c >= 250:
		req.Count = []int{0, -1, maxPage + 1, 1000, 0, maxPage + 1}[c-250]
	default:
		req.Count = 1 + int(c)%maxPage
	}
	switch k := d.byte() % 8; {
	case k < 3:
	case k < 6:
		if h.lastReq != nil {
			// Continue the last walk, as its caller or as this one.
			req = *h.lastReq
			if k != 5 {
				caller = h.lastCall
			}
		}
	case k == 6:
		if pick := int(d.byte()); len(h.cursors) > 0 {
			req.Cursor = h.cursors[pick%len(h.cursors)]
		}
	default:
		req.Cursor = garble(h.cursors, d.byte())
	}
	h.logf("page caller=%+v %s id=%q filter=%d count=%d cursor=%q", caller, fmtConv(req.Message.Conversation), req.Message.ID, req.Filter, req.Count, req.Cursor)
	p, err := h.eng.GetGroupMessageReadMemberList(h.ctx, caller, req)
	exp := h.model.Page(caller, req)
	h.expect("GetGroupMessageReadMemberList", exp.Outcome, err)
	if err != nil {
		return
	}
	cand := h.matchPage(p, req, exp)
	h.lastReq = nil
	if !p.IsCompleted {
		h.model.NoteCursor(p.Cursor, req, exp.Msg, cand)
		h.addCursor(p.Cursor)
		next := req
		next.Cursor = p.Cursor
		h.lastReq, h.lastCall = &next, caller
	}
}

func (h *harness) addCursor(c string) {
	h.cursors = append(h.cursors, c)
	if len(h.cursors) > 32 {
		h.cursors = h.cursors[1:]
	}
}

// garble returns a cursor that no engine made.
func garble(pool []string, b byte) string {
	if len(pool) == 0 || b%8 == 0 {
		return []string{"x", "AAAAAAAAAAAAAAAAAAAAAAAA", "!!!!", "\xff", "AQEAAAAA", "=="}[int(b/8)%6]
	}
	c := []byte(pool[int(b)%len(pool)])
	switch b % 4 {
	case 0:
		return string(c[:len(c)/2])
	case 1:
		return string(c) + "A"
	default:
		i := int(b/4) % len(c)
		if c[i] == 'B' {
			c[i] = 'C'
		} else {
			c[i] = 'B'
		}
		return string(c)
	}
}

// matchPage checks a page against the model's candidates and returns the one
// it matched.
func (h *harness) matchPage(p rr.MemberPage, req rr.MemberListRequest, exp PageExpect) PageCand {
	list, other := p.ReadUserIDList, p.UnreadUserIDList
	if req.Filter == rr.FilterUnread {
		list, other = other, list
	}
	if p.MessageID != req.Message.ID || len(other) != 0 || p.IsCompleted != (p.Cursor == "") {
		h.fail("GetGroupMessageReadMemberList: malformed page %+v", p)
	}
	if list == nil {
		list = []string{}
	}
	for i, c := range exp.Cands {
		if c.Completed == p.IsCompleted && slices.Equal(c.Users, list) {
			stat(fmt.Sprintf("page: cursor=%v candidate=%d/%d completed=%v", req.Cursor != "", i, len(exp.Cands), c.Completed))
			return c
		}
	}
	h.fail("GetGroupMessageReadMemberList: got page %q completed=%v, want one of %+v", list, p.IsCompleted, exp.Cands)
	return PageCand{}
}

// fullCheck compares the whole state: the engine's invariants, switches,
// groups, the counts of every message of every conversation, and a full
// walk of both member lists of every live group message.
func (h *harness) fullCheck(smallPages bool) {
	h.checking = true
	defer func() { h.checking = false }()
	m := h.model
	if err := h.eng.Check(h.ctx); err != nil {
		h.fail("Check: %v", err)
	}
	if h.eng.FeatureEnabled() != m.Enabled {
		h.fail("FeatureEnabled %v, want %v", h.eng.FeatureEnabled(), m.Enabled)
	}
	got := h.eng.GroupTypes()
	slices.Sort(got)
	got = slices.Compact(got) // SetGroupTypes(t, t) is allowed to keep both
	if !slices.Equal(got, m.TypeList()) {
		h.fail("GroupTypes %v, want %v", got, m.TypeList())
	}
	for _, gid := range groupIDs {
		info, err := h.eng.GetGroup(h.ctx, gid)
		o, want := m.GetGroup(gid)
		h.expect("GetGroup "+gid, o, err)
		if err == nil && info != want {
			h.fail("GetGroup %q: got %+v, want %+v", gid, info, want)
		}
	}
	// Counts and member lists need the feature on; switching it on and off
	// again must change nothing.
	if !m.Enabled {
		h.eng.SetFeatureEnabled(true)
		m.SetEnabled(true)
		defer func() {
			h.eng.SetFeatureEnabled(false)
			m.SetEnabled(false)
		}()
	}
	for _, conv := range convPool() {
		refs := make([]rr.MessageRef, len(msgIDs))
		for i, id := range msgIDs {
			refs[i] = rr.MessageRef{Conversation: conv, ID: id}
		}
		infos, err := h.eng.GetMessageReadReceiptList(h.ctx, rr.AsAdmin(), refs)
		o, want := m.Counts(rr.AsAdmin(), refs)
		h.expect("full check: GetMessageReadReceiptList "+conv.String(), o, err)
		h.compareInfos(infos, want)
	}
	count := maxPage
	if smallPages {
		count = 1
	}
	for _, msg := range m.LiveMessages() {
		if !msg.isGroup() {
			continue
		}
		for _, f := range []rr.MemberFilter{rr.FilterRead, rr.FilterUnread} {
			h.walk(msg, f, count)
		}
	}
}

// walk pages through one member list as an administrator and compares it
// with the model's, page by page.
func (h *harness) walk(msg *Msg, f rr.MemberFilter, count int) {
	var want []string
	for _, r := range h.model.MemberList(msg, f) {
		want = append(want, r.User)
	}
	req := rr.MemberListRequest{Message: rr.MessageRef{Conversation: msg.Key.Conv, ID: msg.Key.ID}, Filter: f, Count: count}
	done := 0
	for pages := 0; ; pages++ {
		if pages > len(want)+1 {
			h.fail("walk %s filter=%d: does not end", msg.Key, f)
		}
		p, err := h.eng.GetGroupMessageReadMemberList(h.ctx, rr.AsAdmin(), req)
		if err != nil {
			h.fail("walk %s filter=%d cursor=%q: %v", msg.Key, f, req.Cursor, err)
		}
		n := min(count, len(want)-done)
		cand := PageCand{Users: want[done : done+n], Completed: len(want)-done <= count}
		if cand.Users == nil {
			cand.Users = []string{}
		}
		if !cand.Completed {
			list := h.model.MemberList(msg, f)
			cand.After, cand.Next = list[done+n-1].Index, list[done+n].Index
		}
		h.matchPage(p, req, PageExpect{Cands: []PageCand{cand}})
		done += n
		if p.IsCompleted {
			return
		}
		h.model.NoteCursor(p.Cursor, req, msg, cand)
		h.addCursor(p.Cursor)
		req.Cursor = p.Cursor
	}
}

func fmtConv(c rr.Conversation) string {
	switch c.Type {
	case rr.ConversationGroup:
		return fmt.Sprintf("group=%q", c.GroupID)
	case rr.ConversationC2C:
		return fmt.Sprintf("c2c=%q,%q", c.Users[0], c.Users[1])
	}
	return fmt.Sprintf("conv{type=%d group=%q users=%q}", c.Type, c.GroupID, c.Users)
}

func fmtRefs(refs []rr.MessageRef) string {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range refs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s/%q", fmtConv(r.Conversation), r.ID)
	}
	b.WriteString("]")
	return b.String()
}
