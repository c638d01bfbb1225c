package fuzz

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/readreceipt/readreceipt/store/pebblestore"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/redis/go-redis/v9"
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
	threads  = []string{"t0", "t1"}
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

// packingCache is the cache of the memory store's target under the
// default configuration: shards that keep one entry unpacked and room for
// a dozen packed ones (the engine's packed.go; PackingCache in its tests).
const packingCache = 64 << 10

// config is the engine configuration a history runs with.
type config struct {
	retention time.Duration
	access    rr.QueryAccess
	cache     int64 // 0: default
	allTypes  bool
	syncOff   bool
	// defaultLimits runs with the engine's default limits (30 messages a
	// receipt call, 100 a query, pages of 100, IDs of 128 bytes) instead of
	// the small ones histories use to reach them.
	defaultLimits bool
	// readTimes and reciprocal are WithReadTimes and
	// WithReciprocalPrivacy.
	readTimes, reciprocal bool
	// noMarks runs MarkConversationRead operations as GetReadMark: a mark
	// is several writes (receipts, then the mark), so a crash in the middle
	// leaves a state that is neither before nor after it, as the contract
	// allows; the crash tests compare with those two states only.
	noMarks bool
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
	c.readTimes = b&64 != 0
	c.reciprocal = b&128 != 0
	return c
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// targetSpec says which store one engine under test runs on.
type targetSpec struct {
	backend string // "mem", "pebble" or "redis"
	dir     string // the Pebble directory
	fs      vfs.FS // the Pebble file system; nil: the operating system's
	// redis and prefix are the Redis server and key prefix of a Redis
	// target.
	redis  redis.UniversalClient
	prefix string
	// sparse, when set, keeps readers in the sparse form from the first
	// member on, turning dense at the third reader, so that small groups
	// go through both forms and the turn.
	sparse bool
}

// target is one engine under test, over its own store. Every target of a
// harness runs the same operations in lockstep.
type target struct {
	targetSpec
	mem *memstore.Store
	pst *pebblestore.Store
	eng *rr.Engine

	mu      sync.Mutex
	batches [][]rr.ReceiptEvent
	own     [][]rr.OwnReadEvent

	// cursors are the cursors this engine handed out, newest last. Every
	// target's list grows in step, so that position i of each names the
	// same page of the same list.
	cursors []string
	// next continues the last walk (harness.lastReq) on this engine.
	next string
	// keepCursors keeps every cursor in cursors, not only the last 32.
	keepCursors bool
}

func (t *target) store() store.Store {
	if t.pst != nil {
		return t.pst
	}
	return t.mem
}

// injectFault, when set by a test of the harness itself, runs after every
// operation, to plant a known difference between the model and the
// engines.
var injectFault func(h *harness)

// histFailure is what harness.fail panics with in probe mode.
type histFailure struct{ msg string }

// harness runs one history against one or more engines and the model.
type harness struct {
	tb      testing.TB
	ctx     context.Context
	cfg     config
	targets []*target
	clock   atomic.Int64
	model   *Model
	trace   []string
	// probe makes fail panic with a *failure instead of failing tb, so that
	// the shrinker can run many histories and keep the ones that fail.
	probe bool

	lastReq  *rr.MemberListRequest // the last page request that has a next page
	lastCall rr.Caller             // its caller
	checking bool                  // in fullCheck or drain

	// opStarts holds the offset in the history of every operation run.
	opStarts []int
	// cn is the history run so far in canonical form (see canon).
	cn canon
	// sweeping reports that the last operation was a sweep.
	sweeping bool
	// opLimit, if positive, stops runOps after that many operations.
	opLimit int
	// matched and inFlight say how the last crash recovery went (see
	// recoverFrom).
	matched  string
	inFlight bool
	// marked holds every (conversation, thread, reader) a history asked to
	// mark, for the full check.
	marked map[MarkKey]bool
	// beforeStep and afterStep, if set, run before and after every
	// operation (and the full check that may follow it).
	beforeStep, afterStep func(n int)
}

func newHarness(tb testing.TB, cfg config, specs ...targetSpec) *harness {
	return newHarnessMode(tb, cfg, false, specs...)
}

// newHarnessMode returns a harness, in probe mode if probe is set.
func newHarnessMode(tb testing.TB, cfg config, probe bool, specs ...targetSpec) *harness {
	h := &harness{tb: tb, ctx: context.Background(), cfg: cfg, probe: probe, cn: canon{ok: true}}
	h.clock.Store(epoch.UnixNano())
	m := NewModel(epoch)
	m.Retention = cfg.retention
	m.Access = cfg.access
	m.ReadTimes, m.Reciprocal = cfg.readTimes, cfg.reciprocal
	if !cfg.defaultLimits {
		m.MaxMessages, m.MaxQuery, m.MaxPage = maxMessages, maxQuery, maxPage
	}
	if cfg.allTypes {
		m.SetTypes([]rr.GroupType{rr.GroupWork, rr.GroupPublic, rr.GroupMeeting, rr.GroupCommunity, rr.GroupAVChatRoom})
	}
	h.model = m
	for _, s := range specs {
		t := &target{targetSpec: s}
		h.targets = append(h.targets, t)
		h.open(t)
	}
	return h
}

func (h *harness) now() time.Time { return time.Unix(0, h.clock.Load()).UTC() }

func (h *harness) open(t *target) {
	var err error
	switch t.backend {
	case "mem":
		if t.mem == nil {
			t.mem = memstore.New()
		}
		opts := h.options()
		if h.cfg.cache == 0 {
			// Where the other targets have the default cache, this one
			// keeps nearly every message no call is using packed, so
			// that packed entries answer in lockstep with unpacked ones.
			opts = append(opts, rr.WithCacheBytes(packingCache))
		}
		t.eng, err = rr.Open(t.mem, opts...)
	case "pebble":
		t.pst, err = pebblestore.Open(t.dir, &pebblestore.Options{FS: t.fs})
		if err != nil {
			h.fail("open pebble: %v", err)
		}
		t.eng, err = rr.Open(t.pst, h.options()...)
	case "redis":
		ro := rr.RedisOptions{Client: t.redis, Prefix: t.prefix}
		if t.sparse {
			ro.SparseAbove, ro.SparseLimit = 1, 3
		}
		t.eng, err = rr.OpenRedis(h.ctx, ro, h.options()...)
	default:
		h.fail("unknown backend %q", t.backend)
	}
	if err != nil {
		h.fail("%s: open engine: %v", t.backend, err)
	}
	t.eng.Subscribe(func(evs []rr.ReceiptEvent) {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.batches = append(t.batches, slices.Clone(evs))
	})
	t.eng.SubscribeOwnReads(func(evs []rr.OwnReadEvent) {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.own = append(t.own, slices.Clone(evs))
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
		rr.WithMaxIDLength(m.MaxID),
		rr.WithFeatureEnabled(m.Enabled),
		rr.WithGroupTypes(m.TypeList()...),
		rr.WithSyncWrites(!h.cfg.syncOff),
		rr.WithReadTimes(m.ReadTimes),
		rr.WithReciprocalPrivacy(m.Reciprocal),
	}
	if h.cfg.cache > 0 {
		opts = append(opts, rr.WithCacheBytes(h.cfg.cache))
	}
	return opts
}

// close closes one target's engine (checking that Close is idempotent and
// that calls after it fail with ErrClosed) and its Pebble store.
func (h *harness) close(t *target) {
	if t.eng != nil {
		if err := t.eng.Close(); err != nil {
			h.fail("%s: close engine: %v", t.backend, err)
		}
		if err := t.eng.Close(); err != nil {
			h.fail("%s: second Close: %v", t.backend, err)
		}
		_, err := t.eng.SendMessageReadReceipt(h.ctx, users[0], []rr.MessageRef{{Conversation: rr.Group(groupIDs[0]), ID: msgIDs[0]}})
		if !SameKind(err, rr.ErrClosed) {
			h.fail("%s: SendMessageReadReceipt after Close: %v, want ErrClosed", t.backend, err)
		}
		if err := t.eng.CreateGroup(h.ctx, groupIDs[0], rr.GroupWork, nil); !SameKind(err, rr.ErrClosed) {
			h.fail("%s: CreateGroup after Close: %v, want ErrClosed", t.backend, err)
		}
		t.eng = nil
	}
	if t.pst != nil {
		if err := t.pst.Close(); err != nil {
			h.fail("%s: close pebble: %v", t.backend, err)
		}
		t.pst = nil
	}
}

func (h *harness) closeAll() {
	for _, t := range h.targets {
		h.close(t)
	}
}

// closeQuiet closes whatever is still open, ignoring errors.
func (h *harness) closeQuiet() {
	for _, t := range h.targets {
		if t.eng != nil {
			_ = t.eng.Close()
			t.eng = nil
		}
		if t.pst != nil {
			_ = t.pst.Close()
			t.pst = nil
		}
	}
}

func (h *harness) logf(format string, args ...any) {
	h.trace = append(h.trace, fmt.Sprintf(format, args...))
}

func (h *harness) backends() string {
	var names []string
	for _, t := range h.targets {
		names = append(names, t.backend)
	}
	return strings.Join(names, "+")
}

func (h *harness) fail(format string, args ...any) {
	h.tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "history (%s, %+v):\n", h.backends(), h.cfg)
	for i, s := range h.trace {
		fmt.Fprintf(&b, "  %3d %s\n", i, s)
	}
	b.WriteString("FAILED: " + fmt.Sprintf(format, args...))
	h.closeQuiet()
	if h.probe {
		panic(&histFailure{msg: b.String()})
	}
	h.tb.Fatal(b.String())
}

// expect checks the error of each target against the model's outcome, and
// that every target failed (or not) in the same way.
func (h *harness) expect(what string, o Outcome, errs []error) {
	h.tb.Helper()
	outs := make([]Outcome, len(errs))
	for i := range outs {
		outs[i] = o
	}
	h.expectEach(what, outs, errs)
}

// expectEach is expect with an outcome for each target.
func (h *harness) expectEach(what string, outs []Outcome, errs []error) {
	h.tb.Helper()
	for i, err := range errs {
		if msg := outs[i].Mismatch(err); msg != "" {
			h.fail("%s: %s: %s", h.targets[i].backend, what, msg)
		}
		if i > 0 && kindName(err) != kindName(errs[0]) {
			h.fail("%s: %s got %v, %s got %v", what, h.targets[0].backend, errs[0], h.targets[i].backend, err)
		}
	}
	stat(what + ": " + kindName(errs[0]))
	if n := len(h.trace); n > 0 && !h.checking {
		h.trace[n-1] += " -> " + kindName(errs[0])
	}
}

// each calls fn on every target's engine and returns the errors.
func (h *harness) each(fn func(e *rr.Engine) error) []error {
	errs := make([]error, len(h.targets))
	for i, t := range h.targets {
		errs[i] = fn(t.eng)
	}
	return errs
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

func (t *target) takeBatches() [][]rr.ReceiptEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.batches
	t.batches = nil
	return b
}

// takeOwn returns the OwnReadEvent batches delivered since the last call.
func (t *target) takeOwn() [][]rr.OwnReadEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.own
	t.own = nil
	return b
}

// run decodes and runs a whole history, then checks everything, reopens,
// and drains the engines.
func (h *harness) run(data []byte) {
	h.runOps(&decoder{b: data})
	h.finish()
}

// runOps decodes and runs operations until the input or maxOps runs out.
func (h *harness) runOps(d *decoder) {
	limit := maxOps
	if h.opLimit > 0 {
		limit = h.opLimit
	}
	for n := len(h.opStarts); d.more() && n < limit; n++ {
		h.opStarts = append(h.opStarts, d.i)
		if h.beforeStep != nil {
			h.beforeStep(n)
		}
		h.step(d)
		for _, t := range h.targets {
			if b := t.takeBatches(); len(b) > 0 {
				h.fail("%s: events outside a receipt call: %+v", t.backend, b)
			}
			if b := t.takeOwn(); len(b) > 0 {
				h.fail("%s: own events outside a read call: %+v", t.backend, b)
			}
		}
		if (n+1)%checkEvery == 0 {
			h.fullCheck(n/checkEvery%2 == 1)
		}
		if injectFault != nil {
			injectFault(h)
		}
		if h.afterStep != nil {
			h.afterStep(n)
		}
	}
}

// finish checks the whole state, reopens the Pebble engines and checks again,
// then drains and closes every engine.
func (h *harness) finish() {
	h.fullCheck(false)
	reopened := false
	for _, t := range h.targets {
		if t.backend == "pebble" || t.backend == "redis" {
			h.close(t)
			h.open(t)
			reopened = true
		}
	}
	if reopened {
		h.logf("reopen (final)")
		h.fullCheck(true)
	}
	h.drain()
	h.closeAll()
}

// drain empties the engines in two phases and checks that storage is
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
		errs := h.each(func(e *rr.Engine) error { return e.DeleteMessage(h.ctx, ref) })
		h.expect("drain: DeleteMessage "+k.String(), m.Delete(ref), errs)
	}
	for _, t := range h.targets {
		if n, err := t.eng.Sweep(h.ctx); n != 0 || err != nil {
			h.fail("%s: drain: Sweep after deleting every message: %d, %v", t.backend, n, err)
		}
	}
	h.expectKeys("after deleting every message and sweeping", h.replayGroups())
	h.expectRedisKeys("after deleting every message", func(k string) bool {
		// Membership stays; superseded snapshots that messages were
		// tracked with stay until they expire (or the group goes).
		// Marks and privacy settings outlive messages.
		return strings.Contains(k, "}G") || strings.Contains(k, "}U") || strings.Contains(k, "}I") ||
			strings.Contains(k, "}C") || strings.Contains(k, "}X") || strings.HasSuffix(k, ":secret") ||
			strings.HasSuffix(k, "}K") || h.redisStays(k)
	})

	gids := slices.Sorted(maps.Keys(m.Groups))
	for _, gid := range gids {
		errs := h.each(func(e *rr.Engine) error { return e.DismissGroup(h.ctx, gid) })
		h.expect("drain: DismissGroup "+gid, m.Dismiss(gid), errs)
	}
	for _, t := range h.targets {
		if _, err := t.eng.Sweep(h.ctx); err != nil {
			h.fail("%s: drain: Sweep: %v", t.backend, err)
		}
	}
	h.expectKeys("after dismissing every group", h.replayGroups())
	h.expectRedisKeys("after dismissing every group", func(k string) bool {
		// C2C marks live as long as the state; a group's go with it.
		return strings.HasSuffix(k, ":secret") || strings.HasSuffix(k, "}K") && strings.Contains(k, "{c") || h.redisStays(k)
	})
}

// redisStays reports whether a Redis key beyond the seed may outlive every
// message: a privacy flag of a user whose receipts are private, or an order
// (or the set of a conversation's threads) while it has a TTL.
func (h *harness) redisStays(k string) bool {
	if i := strings.Index(k, "p{u"); i >= 0 {
		rest := k[i+3:]
		if j := strings.IndexByte(rest, ':'); j >= 0 && strings.HasSuffix(rest, "}") {
			return h.model.PrivateUsers[rest[j+1:len(rest)-1]]
		}
	}
	if strings.Contains(k, "}O") {
		// Orders hold the entries of expired messages until a tracking or
		// a scan prunes them, and expire with their newest message.
		for _, t := range h.targets {
			if t.backend == "redis" {
				if ttl, err := t.redis.PTTL(h.ctx, k).Result(); err == nil && ttl > 0 {
					return true
				}
			}
		}
	}
	return false
}

// redisExpired reports whether key is a message key (meta, readers, D, P
// or the read-time log, see the layout in redis.go) of a
// message past retention by the engine's clock, which Redis drops by
// itself, at the retention by its own clock: it must have a TTL.
func (h *harness) redisExpired(t *target, key string) bool {
	i := strings.LastIndex(key, "}")
	if i < 0 || i+1 >= len(key) || !strings.ContainsRune("MRSDPL", rune(key[i+1])) {
		return false
	}
	// Every message key is <kind><len>:<id>, perhaps then :<hi> (readers,
	// D and P in chunks), whose meta is M<len>:<id>.
	rest := key[i+2:]
	j := strings.IndexByte(rest, ':')
	if j < 0 {
		return false
	}
	n, err := strconv.Atoi(rest[:j])
	if err != nil || j+1+n > len(rest) {
		return false
	}
	mk := key[:i+1] + "M" + rest[:j+1+n]
	if ttl, err := t.redis.PTTL(h.ctx, key).Result(); err != nil || ttl <= 0 {
		return false
	}
	meta, err := t.redis.HGet(h.ctx, mk, "h").Result()
	if err != nil || len(meta) < 28 {
		return false
	}
	// The tracking time: seconds at bytes 16-23, nanoseconds at 24-27
	// (redis.lua's pack_meta).
	sec := int64(binary.BigEndian.Uint64([]byte(meta[16:24])))
	nsec := int64(binary.BigEndian.Uint32([]byte(meta[24:28])))
	retention := h.model.Retention
	return retention > 0 && h.clock.Load()-(sec*1e9+nsec) >= int64(retention)
}

// expectRedisKeys checks every Redis engine's invariants and that every key
// under its prefix is one that may stay.
func (h *harness) expectRedisKeys(when string, mayStay func(key string) bool) {
	for _, t := range h.targets {
		if t.backend != "redis" {
			continue
		}
		if err := t.eng.Check(h.ctx); err != nil {
			h.fail("%s: drain: Check %s: %v", t.backend, when, err)
		}
		keys, err := t.redis.Keys(h.ctx, t.prefix+"*").Result()
		if err != nil {
			h.fail("%s: drain: keys: %v", t.backend, err)
		}
		for _, k := range keys {
			if !mayStay(k) && !h.redisExpired(t, k) {
				h.fail("%s: drain: %s Redis holds %q (all: %q)", t.backend, when, k, keys)
			}
		}
	}
}

// expectKeys checks every engine's invariants and the number of keys in its
// store.
func (h *harness) expectKeys(when string, want int) {
	for _, t := range h.targets {
		if t.backend == "redis" {
			continue // see expectRedisKeys
		}
		if err := t.eng.Check(h.ctx); err != nil {
			h.fail("%s: drain: Check %s: %v", t.backend, when, err)
		}
		if got := countKeys(h.tb, t.store()); got != want {
			var b strings.Builder
			_ = t.store().Scan(h.ctx, nil, nil, func(k, v []byte) bool {
				fmt.Fprintf(&b, "\n  %q = %q", k, v)
				return true
			})
			h.fail("%s: drain: %s the store holds %d keys, want %d:%s", t.backend, when, got, want, b.String())
		}
	}
}

// replayGroups builds the model's groups afresh in a new engine (every
// user who was ever a member, in index order, then the former members
// removed), with the state that outlives messages (privacy settings, and
// read marks, each set again at a time) and returns how many keys its
// store holds.
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
	for _, u := range slices.Sorted(maps.Keys(h.model.PrivacySet)) {
		if err := e.SetReceiptsPrivate(h.ctx, u, true); err != nil {
			h.fail("replay: %v", err)
		}
		if err := e.SetReceiptsPrivate(h.ctx, u, h.model.PrivateUsers[u]); err != nil {
			h.fail("replay: %v", err)
		}
	}
	for k, p := range h.model.Marks {
		req := rr.MarkRequest{Conversation: k.Conv, Thread: k.Thread, Time: time.UnixMicro(p.At)}
		if _, err := e.MarkConversationRead(h.ctx, k.Reader, req); err != nil {
			h.fail("replay: mark %+v: %v", k, err)
		}
	}
	return countKeys(h.tb, st)
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
	h.sweeping = false
	switch op := d.byte() % 64; {
	case op < 3:
		h.cn.op(opCreate)
		h.createGroup(d)
	case op < 7:
		h.cn.op(opAdd)
		h.changeMembers(d, true)
	case op < 9:
		h.cn.op(opRemove)
		h.changeMembers(d, false)
	case op < 10:
		h.cn.op(opDismiss)
		h.dismiss(d)
	case op < 22:
		h.cn.op(opTrack)
		h.track(d)
	case op < 38:
		h.cn.op(opReceipt)
		h.receipt(d)
	case op < 42:
		h.cn.op(opCounts)
		h.counts(d)
	case op < 49:
		h.cn.op(opPage)
		h.page(d)
	case op < 51:
		h.cn.op(opDelete)
		h.deleteMessage(d)
	case op < 53:
		b := d.byte() % 8
		h.cn.op(opAdvance)
		h.cn.raw(b)
		dur := time.Duration(b) * time.Second
		h.logf("advance %v", dur)
		h.clock.Add(int64(dur))
		h.model.Advance(dur)
	case op < 54:
		h.cn.op(opSweep)
		h.sweeping = true
		h.sweep()
	case op < 55:
		on := d.byte()%8 != 0
		h.cn.op(opFeature)
		h.cn.raw(map[bool]byte{false: 0, true: 1}[on])
		h.logf("feature %v", on)
		for _, t := range h.targets {
			t.eng.SetFeatureEnabled(on)
		}
		h.model.SetEnabled(on)
	case op < 56:
		h.cn.op(opTypes)
		h.setTypes(d)
	case op < 57:
		h.cn.op(opReopen)
		h.logf("reopen")
		for _, t := range h.targets {
			h.close(t)
			h.open(t)
		}
	case op < 59:
		b := d.byte() % 2
		h.cn.op(opCheck)
		h.cn.raw(b)
		h.logf("full check")
		h.fullCheck(b == 0)
	case op < 60:
		gid := d.groupID()
		h.cn.op(opGetGroup)
		h.cn.group(gid)
		h.getGroup(gid)
	default:
		// Beyond the seed: the slots that were receipts' spares.
		h.cn.op(opExt)
		h.ext(d)
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
	h.cn.group(gid)
	h.cn.groupType(typ)
	h.cn.users(members)
	h.applyCreate(gid, typ, members)
}

// The apply methods run one call on every engine and the model, compare
// the answers, and return the first engine's error.

func (h *harness) applyCreate(gid string, typ rr.GroupType, members []string) error {
	h.logf("create-group %q type=%d members=%q", gid, typ, members)
	errs := h.each(func(e *rr.Engine) error { return e.CreateGroup(h.ctx, gid, typ, members) })
	h.expect("CreateGroup", h.model.CreateGroup(gid, typ, members), errs)
	return errs[0]
}

func (h *harness) changeMembers(d *decoder, add bool) {
	gid := d.groupID()
	members := d.users()
	h.cn.group(gid)
	h.cn.users(members)
	h.applyMembers(gid, members, add)
}

func (h *harness) applyMembers(gid string, members []string, add bool) error {
	name := "RemoveGroupMembers"
	if add {
		name = "AddGroupMembers"
	}
	h.logf("%s %q %q", name, gid, members)
	errs := h.each(func(e *rr.Engine) error {
		if add {
			return e.AddGroupMembers(h.ctx, gid, members)
		}
		return e.RemoveGroupMembers(h.ctx, gid, members)
	})
	h.expect(name, h.model.ChangeMembers(gid, members, add), errs)
	return errs[0]
}

func (h *harness) dismiss(d *decoder) {
	gid := d.groupID()
	h.cn.group(gid)
	h.applyDismiss(gid)
}

func (h *harness) applyDismiss(gid string) error {
	h.logf("dismiss %q", gid)
	errs := h.each(func(e *rr.Engine) error { return e.DismissGroup(h.ctx, gid) })
	h.expect("DismissGroup", h.model.Dismiss(gid), errs)
	return errs[0]
}

func (h *harness) getGroup(gid string) {
	h.logf("get-group %q", gid)
	h.compareGroup(gid)
}

// compareGroup checks GetGroup on every engine against the model.
func (h *harness) compareGroup(gid string) error {
	infos := make([]rr.GroupInfo, len(h.targets))
	errs := make([]error, len(h.targets))
	for i, t := range h.targets {
		infos[i], errs[i] = t.eng.GetGroup(h.ctx, gid)
	}
	o, want := h.model.GetGroup(gid)
	h.expect("GetGroup "+gid, o, errs)
	for i, t := range h.targets {
		if errs[i] == nil && infos[i] != want {
			h.fail("%s: GetGroup %q: got %+v, want %+v", t.backend, gid, infos[i], want)
		}
	}
	return errs[0]
}

func (h *harness) track(d *decoder) {
	msg := rr.Message{Conversation: d.conv(), ID: d.msgID()}
	msg.Sender = h.sender(d.byte(), msg.Conversation)
	h.cn.conv(msg.Conversation)
	h.cn.msgID(msg.ID)
	h.cn.user(msg.Sender)
	if err := h.applyTrack(msg); err == nil || d.i%4 == 0 {
		d.noteTrack(msg) // mostly messages that exist
	}
}

func (h *harness) applyTrack(msg rr.Message) error {
	h.logf("track %s id=%q sender=%q", fmtConv(msg.Conversation), msg.ID, msg.Sender)
	errs := h.each(func(e *rr.Engine) error { return e.TrackMessage(h.ctx, msg) })
	h.expect("TrackMessage", h.model.Track(msg), errs)
	return errs[0]
}

func (h *harness) deleteMessage(d *decoder) {
	ref, _ := d.message()
	h.cn.message(ref)
	h.applyDelete(ref)
}

func (h *harness) applyDelete(ref rr.MessageRef) error {
	h.logf("delete %s id=%q", fmtConv(ref.Conversation), ref.ID)
	errs := h.each(func(e *rr.Engine) error { return e.DeleteMessage(h.ctx, ref) })
	h.expect("DeleteMessage", h.model.Delete(ref), errs)
	return errs[0]
}

func (h *harness) sweep() {
	h.logf("sweep")
	want := h.model.Sweep()
	for _, t := range h.targets {
		n, err := t.eng.Sweep(h.ctx)
		if err != nil {
			h.fail("%s: Sweep: %v", t.backend, err)
		}
		if t.backend == "redis" {
			// Redis drops expired state itself (key expiry): its Sweep
			// deletes nothing. Expiry as the engine answers it is
			// compared like everything else.
			if n != 0 {
				h.fail("%s: Sweep deleted %d messages, want 0", t.backend, n)
			}
			continue
		}
		if n != want {
			h.fail("%s: Sweep deleted %d messages, want %d", t.backend, n, want)
		}
	}
	stat(fmt.Sprintf("sweep: deleted>0=%v", want > 0))
}

func (h *harness) setTypes(d *decoder) {
	b := d.byte()
	h.cn.raw(b)
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
	h.applyTypes(types)
}

func (h *harness) applyTypes(types []rr.GroupType) error {
	h.logf("set-group-types %v", types)
	errs := h.each(func(e *rr.Engine) error { return e.SetGroupTypes(types...) })
	h.expect("SetGroupTypes", h.model.SetTypes(types), errs)
	return errs[0]
}

func (h *harness) receipt(d *decoder) {
	rb := d.byte()
	refs := d.refs(h.model.MaxMessages)
	reader := h.reader(rb, refs)
	h.cn.user(reader)
	h.cn.refs(refs, h.model.MaxMessages)
	h.applyReceipt(reader, refs)
}

func (h *harness) applyReceipt(reader string, refs []rr.MessageRef) ([]rr.ReceiptResult, error) {
	h.logf("receipt reader=%q %s", reader, fmtRefs(refs))
	results := make([][]rr.ReceiptResult, len(h.targets))
	errs := make([]error, len(h.targets))
	for i, t := range h.targets {
		results[i], errs[i] = t.eng.SendMessageReadReceipt(h.ctx, reader, refs)
	}
	o, want, wantEvents, wantOwn := h.model.Receipt(reader, refs)
	h.expect("SendMessageReadReceipt", o, errs)
	for i, t := range h.targets {
		h.checkReceipt(t, "SendMessageReadReceipt", i == 0, results[i], errs[i], want, wantEvents)
		h.checkOwn(t, "SendMessageReadReceipt", wantOwn)
	}
	return results[0], errs[0]
}

// checkOwn compares the OwnReadEvents one engine delivered for the last call
// with the model's: one batch, or none.
func (h *harness) checkOwn(t *target, what string, want []rr.OwnReadEvent) {
	got := t.takeOwn()
	switch {
	case len(want) == 0 && len(got) != 0:
		h.fail("%s: %s: own events %+v, want none", t.backend, what, got)
	case len(want) > 0 && len(got) != 1:
		h.fail("%s: %s: %d batches of own events, want 1: %+v; want %+v", t.backend, what, len(got), got, want)
	case len(want) > 0:
		if len(got[0]) != len(want) {
			h.fail("%s: %s: own events %+v, want %+v", t.backend, what, got[0], want)
		}
		for i := range want {
			if msg := ownMismatch(got[0][i], want[i]); msg != "" {
				h.fail("%s: %s: own event %d: %s:\n got %+v\nwant %+v", t.backend, what, i, msg, got[0][i], want[i])
			}
		}
	}
}

// ownMismatch says how an OwnReadEvent departs from the model's, or "".
// Conversations compare in canonical form.
func ownMismatch(g, w rr.OwnReadEvent) string {
	switch {
	case g.UserID != w.UserID:
		return "user"
	case Canon(g.Conversation) != Canon(w.Conversation):
		return "conversation"
	case !slices.Equal(g.MessageIDs, w.MessageIDs):
		return "messages"
	case g.Thread != w.Thread:
		return "thread"
	case (g.Mark == nil) != (w.Mark == nil):
		return "mark present"
	case g.Mark != nil && (g.Mark.MessageID != w.Mark.MessageID || !g.Mark.Time.Equal(w.Mark.Time)):
		return "mark"
	}
	return ""
}

// checkReceipt compares one engine's answer to a receipt call, and the
// events it emitted, with the model's.
func (h *harness) checkReceipt(t *target, what string, first bool, res []rr.ReceiptResult, err error, want []Result, wantEvents []rr.ReceiptEvent) {
	batches := t.takeBatches()
	if err != nil {
		if len(res) != 0 || len(batches) != 0 {
			h.fail("%s: failed %s returned results %+v, events %+v", t.backend, what, res, batches)
		}
		return
	}
	if first {
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
	}
	if len(res) != len(want) {
		h.fail("%s: %s: %d results for %d messages", t.backend, what, len(res), len(want))
	}
	for i := range res {
		g, w := res[i], want[i]
		if first {
			stat(fmt.Sprintf("%s result: recorded=%v %s", what, g.Recorded, kindName(g.Err)))
		}
		if g.MessageID != w.MessageID || g.Recorded != w.Recorded || !SameKind(g.Err, w.Err) {
			h.fail("%s: %s result %d: got {%s recorded=%v err=%v}, want {%s recorded=%v err=%s}",
				t.backend, what, i, g.MessageID, g.Recorded, g.Err, w.MessageID, w.Recorded, kindName(w.Err))
		}
	}
	switch {
	case len(wantEvents) == 0 && len(batches) != 0:
		h.fail("%s: %s recorded nothing but emitted %+v", t.backend, what, batches)
	case len(wantEvents) > 0 && len(batches) != 1:
		h.fail("%s: %s emitted %d batches, want 1: %+v; want %+v", t.backend, what, len(batches), batches, wantEvents)
	case len(wantEvents) > 0 && !slices.Equal(batches[0], wantEvents):
		h.fail("%s: %s events:\n got %+v\nwant %+v", t.backend, what, batches[0], wantEvents)
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
	refs := d.refs(h.model.MaxQuery)
	sender := ""
	for _, m := range d.recent {
		if len(refs) > 0 && m.Ref() == refs[0] {
			sender = m.Sender
		}
	}
	caller := callerFrom(cb, sender)
	h.cn.caller(caller)
	h.cn.refs(refs, h.model.MaxQuery)
	h.logf("counts caller=%+v %s", caller, fmtRefs(refs))
	h.compareCounts("GetMessageReadReceiptList", caller, refs)
}

// compareCounts runs GetMessageReadReceiptList on every engine and compares
// the answers with the model's.
func (h *harness) compareCounts(what string, caller rr.Caller, refs []rr.MessageRef) ([]rr.ReceiptInfo, error) {
	infos := make([][]rr.ReceiptInfo, len(h.targets))
	errs := make([]error, len(h.targets))
	for i, t := range h.targets {
		infos[i], errs[i] = t.eng.GetMessageReadReceiptList(h.ctx, caller, refs)
	}
	o, want := h.model.Counts(caller, refs)
	h.expect(what, o, errs)
	for i, t := range h.targets {
		if errs[i] != nil {
			if len(infos[i]) != 0 {
				h.fail("%s: failed GetMessageReadReceiptList returned %+v", t.backend, infos[i])
			}
			continue
		}
		h.compareInfos(t, infos[i], want)
	}
	return infos[0], errs[0]
}

func (h *harness) compareInfos(t *target, got, want []rr.ReceiptInfo) {
	if len(got) != len(want) {
		h.fail("%s: GetMessageReadReceiptList: %d infos for %d messages", t.backend, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		stat("counts info: " + kindName(g.Err))
		ge, we := g.Err, w.Err
		g.Err, w.Err = nil, nil
		if g != w || !SameKind(ge, we) {
			h.fail("%s: GetMessageReadReceiptList info %d: got %+v err=%v, want %+v err=%s", t.backend, i, g, ge, w, kindName(we))
		}
	}
}

// page runs one member page: a fresh one, the continuation of the last
// walk, or one with a cursor from elsewhere (another message or filter,
// garbled). Each engine gets its own cursors: every engine keys its cursors
// with its own secret.
func (h *harness) page(d *decoder) {
	cb := d.byte()
	ref, sender := d.message()
	caller := callerFrom(cb, sender)
	req := rr.MemberListRequest{Message: ref}
	switch f := d.byte(); {
	case f >= 252:
		req.Filter = rr.MemberFilter(4 + f%4) // invalid
	case f >= 240:
		req.Filter = rr.MemberFilter(2 + f%2) // delivered, undelivered
	default:
		req.Filter = rr.MemberFilter(f % 2)
	}
	switch c := d.byte(); {
	case c >= 250:
		req.Count = []int{0, -1, h.model.MaxPage + 1, 1000, 0, h.model.MaxPage + 1}[c-250]
	default:
		req.Count = 1 + int(c)%h.model.MaxPage
	}
	h.cn.caller(caller)
	h.cn.message(ref)
	h.cn.filter(req.Filter)
	h.cn.count(req.Count, h.model.MaxPage)
	// cursor gives each target's cursor for the request.
	cursor := func(t *target) string { return "" }
	k := d.byte() % 8
	h.cn.raw(k)
	switch {
	case k < 3:
	case k < 6:
		if h.lastReq != nil {
			// Continue the last walk, as its caller or as this one.
			req = *h.lastReq
			if k != 5 {
				caller = h.lastCall
			}
			cursor = func(t *target) string { return t.next }
		}
	case k == 6:
		pick := int(d.byte())
		h.cn.raw(byte(pick))
		if len(h.targets[0].cursors) > 0 {
			cursor = func(t *target) string { return t.cursors[pick%len(t.cursors)] }
		}
	default:
		b := d.byte()
		h.cn.raw(b)
		cursor = func(t *target) string { return garble(t.cursors, b) }
	}
	h.logf("page caller=%+v %s id=%q filter=%d count=%d cursor=%q", caller, fmtConv(req.Message.Conversation), req.Message.ID, req.Filter, req.Count, cursor(h.targets[0]))
	reqs := make([]rr.MemberListRequest, len(h.targets))
	pages := make([]rr.MemberPage, len(h.targets))
	errs := make([]error, len(h.targets))
	exps := make([]PageExpect, len(h.targets))
	for i, t := range h.targets {
		reqs[i] = req
		reqs[i].Cursor = cursor(t)
		pages[i], errs[i] = t.eng.GetGroupMessageReadMemberList(h.ctx, caller, reqs[i])
		exps[i] = h.model.Page(caller, reqs[i])
	}
	outcomes := make([]Outcome, len(h.targets))
	for i := range h.targets {
		outcomes[i] = exps[i].Outcome
	}
	h.expectEach("GetGroupMessageReadMemberList", outcomes, errs)
	if errs[0] != nil {
		return
	}
	h.lastReq = nil
	var first PageCand
	for i, t := range h.targets {
		cand := h.matchPage(t, pages[i], reqs[i], exps[i])
		if i == 0 {
			first = cand
		} else if !slices.Equal(cand.Users, first.Users) || cand.Completed != first.Completed {
			h.fail("GetGroupMessageReadMemberList: %s listed %q completed=%v, %s listed %q completed=%v",
				h.targets[0].backend, first.Users, first.Completed, t.backend, cand.Users, cand.Completed)
		}
		if !pages[i].IsCompleted {
			h.model.NoteCursor(pages[i].Cursor, reqs[i], exps[i].Msg, cand)
			t.addCursor(pages[i].Cursor)
			t.next = pages[i].Cursor
		}
	}
	if !pages[0].IsCompleted {
		next := req
		h.lastReq, h.lastCall = &next, caller
	}
}

func (t *target) addCursor(c string) {
	t.cursors = append(t.cursors, c)
	if len(t.cursors) > 32 && !t.keepCursors {
		t.cursors = t.cursors[1:]
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
func (h *harness) matchPage(t *target, p rr.MemberPage, req rr.MemberListRequest, exp PageExpect) PageCand {
	lists := [][]string{p.ReadUserIDList, p.UnreadUserIDList, p.DeliveredUserIDList, p.UndeliveredUserIDList}
	var list []string
	others := 0
	for f, l := range lists {
		if rr.MemberFilter(f) == req.Filter {
			list = l
		} else {
			others += len(l)
		}
	}
	if p.MessageID != req.Message.ID || others != 0 || p.IsCompleted != (p.Cursor == "") {
		h.fail("%s: GetGroupMessageReadMemberList filter=%d: malformed page %+v", t.backend, req.Filter, p)
	}
	if list == nil {
		list = []string{}
	}
	if exp.Msg != nil {
		// Read times: aligned with the readers on a read page with read
		// times on, none otherwise.
		want := h.model.PageTimes(exp.Msg, req.Filter, list)
		ok := len(want) == len(p.ReadTimes)
		for i := 0; ok && i < len(want); i++ {
			ok = want[i].Equal(p.ReadTimes[i])
		}
		if !ok {
			h.fail("%s: GetGroupMessageReadMemberList: read times %v for %q, want %v", t.backend, p.ReadTimes, list, want)
		}
	}
	for i, c := range exp.Cands {
		if c.Completed == p.IsCompleted && slices.Equal(c.Users, list) {
			stat(fmt.Sprintf("page: filter=%d cursor=%v candidate=%d/%d completed=%v", req.Filter, req.Cursor != "", i, len(exp.Cands), c.Completed))
			return c
		}
	}
	h.fail("%s: GetGroupMessageReadMemberList: got page %q completed=%v, want one of %+v", t.backend, list, p.IsCompleted, exp.Cands)
	return PageCand{}
}

// fullCheck compares the whole state of every engine with the model's: the
// engine's invariants, switches, groups, the counts of every message of
// every conversation, and a full walk of both member lists of every live
// group message.
func (h *harness) fullCheck(smallPages bool) {
	h.checking = true
	defer func() { h.checking = false }()
	m := h.model
	for _, t := range h.targets {
		if err := t.eng.Check(h.ctx); err != nil {
			h.fail("%s: Check: %v", t.backend, err)
		}
		if t.eng.FeatureEnabled() != m.Enabled {
			h.fail("%s: FeatureEnabled %v, want %v", t.backend, t.eng.FeatureEnabled(), m.Enabled)
		}
		got := t.eng.GroupTypes()
		slices.Sort(got)
		got = slices.Compact(got) // SetGroupTypes(t, t) is allowed to keep both
		if !slices.Equal(got, m.TypeList()) {
			h.fail("%s: GroupTypes %v, want %v", t.backend, got, m.TypeList())
		}
	}
	// The pool's groups, and any other group the model knows.
	gids := slices.Clone(groupIDs)
	for gid := range m.Groups {
		if !slices.Contains(gids, gid) {
			gids = append(gids, gid)
		}
	}
	for _, gid := range gids {
		h.compareGroup(gid)
	}
	// Counts and member lists need the feature on; switching it on and off
	// again must change nothing.
	if !m.Enabled {
		for _, t := range h.targets {
			t.eng.SetFeatureEnabled(true)
		}
		m.SetEnabled(true)
		defer func() {
			for _, t := range h.targets {
				if t.eng != nil {
					t.eng.SetFeatureEnabled(false)
				}
			}
			m.SetEnabled(false)
		}()
	}
	// Every message ID of the pool in every conversation of the pool, then
	// the messages the model holds elsewhere (IDs or conversations outside
	// the pools).
	convIDs := map[rr.Conversation][]string{}
	var convs []rr.Conversation
	for _, c := range convPool() {
		convs = append(convs, c)
		convIDs[c] = slices.Clone(msgIDs)
	}
	for _, msg := range m.LiveMessages() {
		c := msg.Key.Conv
		if _, ok := convIDs[c]; !ok {
			convs = append(convs, c)
		}
		if !slices.Contains(convIDs[c], msg.Key.ID) {
			convIDs[c] = append(convIDs[c], msg.Key.ID)
		}
	}
	for _, conv := range convs {
		ids := convIDs[conv]
		for len(ids) > 0 {
			n := min(len(ids), m.MaxQuery)
			refs := make([]rr.MessageRef, n)
			for i, id := range ids[:n] {
				refs[i] = rr.MessageRef{Conversation: conv, ID: id}
			}
			ids = ids[n:]
			h.compareCounts("full check: GetMessageReadReceiptList "+conv.String(), rr.AsAdmin(), refs)
		}
	}
	count := m.MaxPage
	if smallPages {
		count = 1
	}
	for _, msg := range m.LiveMessages() {
		if !msg.isGroup() {
			continue
		}
		for _, f := range []rr.MemberFilter{rr.FilterRead, rr.FilterUnread, rr.FilterDelivered, rr.FilterUndelivered} {
			for _, t := range h.targets {
				h.walk(t, msg, f, count)
			}
		}
	}
	h.fullCheckBeyond(convs, convIDs)
}

// walk pages through one member list as an administrator and compares it
// with the model's, page by page.
func (h *harness) walk(t *target, msg *Msg, f rr.MemberFilter, count int) {
	var want []string
	for _, r := range h.model.MemberList(msg, f) {
		want = append(want, r.User)
	}
	req := rr.MemberListRequest{Message: rr.MessageRef{Conversation: msg.Key.Conv, ID: msg.Key.ID}, Filter: f, Count: count}
	done := 0
	for pages := 0; ; pages++ {
		if pages > len(want)+1 {
			h.fail("%s: walk %s filter=%d: does not end", t.backend, msg.Key, f)
		}
		p, err := t.eng.GetGroupMessageReadMemberList(h.ctx, rr.AsAdmin(), req)
		if err != nil {
			h.fail("%s: walk %s filter=%d cursor=%q: %v", t.backend, msg.Key, f, req.Cursor, err)
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
		h.matchPage(t, p, req, PageExpect{Msg: msg, Cands: []PageCand{cand}})
		done += n
		if p.IsCompleted {
			return
		}
		h.model.NoteCursor(p.Cursor, req, msg, cand)
		t.addCursor(p.Cursor)
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
