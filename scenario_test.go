package readreceipt_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/internal/redistest"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/memstore"
	"github.com/readreceipt/readreceipt/store/pebblestore"
	"github.com/redis/go-redis/v9"
)

// TestScenarios runs the behaviour scenarios in testdata/scenarios, each
// against the in-memory and the Pebble store and against Redis (a server the
// test starts; skipped without redis-server). Every command is followed by
// Engine.Check, so a scenario also fails if any invariant breaks. Run with
// -rewrite to regenerate expected output after a deliberate change.
//
// Two commands show what differs by backend, as documented capabilities:
// "keys" counts the embedded store's keys by kind, and "sweep" the messages
// the embedded backend's sweep deleted. On Redis, expired state is dropped
// by Redis's key expiry instead (see TestRedisExpiry), so there Sweep must
// delete nothing and report no error, and the scenario's figures for these
// two commands are not Redis's to give.
//
// Receipt calls (receipt, deliver, mark) print the events they emitted:
// the senders' (with their kind and delivered counts), and, after "open
// own", the reader's own events (SubscribeOwnReads). The open options
// read-times and reciprocal turn on WithReadTimes and
// WithReciprocalPrivacy.
//
// mem-packed runs on the memory store with a cache of PackingCache bytes,
// which keeps every message no call is using packed (packed.go).
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, backend := range []string{"mem", "mem-packed", "pebble", "pebble-ingest", "redis", "redis-cluster"} {
		t.Run(backend, func(t *testing.T) {
			var newClient func() redis.UniversalClient
			switch backend {
			case "pebble-ingest":
				// Every membership write goes through Pebble's ingestion,
				// as those of huge groups do.
				defer readreceipt.SetIngestBytes(0)()
			case "redis":
				srv := redistest.Start(t)
				newClient = func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: srv.Addr}) }
			case "redis-cluster":
				// Three masters with a replica each: every write waits
				// for its replica.
				cl := redistest.StartCluster(t, 3, 1)
				newClient = func() redis.UniversalClient {
					return redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
				}
			}
			for i, f := range files {
				t.Run(filepath.Base(f), func(t *testing.T) {
					h := &harness{backend: backend, dir: t.TempDir(), newClient: newClient, prefix: fmt.Sprintf("s%d", i)}
					defer h.closeAll(t)
					datadriven.RunTest(t, f, func(t *testing.T, d *datadriven.TestData) string {
						out := h.run(t, d)
						if h.eng != nil {
							if err := h.eng.Check(context.Background()); err != nil {
								t.Errorf("%s: after %q: %v", d.Pos, d.Cmd, err)
							}
						}
						return out
					})
				})
			}
		})
	}
}

// harness interprets scenario commands against one engine.
type harness struct {
	backend string
	dir     string
	mem     *memstore.Store
	st      store.Store
	eng     *readreceipt.Engine
	// newClient connects to the Redis of a Redis backend.
	newClient func() redis.UniversalClient
	rc        redis.UniversalClient
	prefix    string // of the scenario; each "open" adds a number
	opened    int
	opts      []readreceipt.Option
	clock     time.Time

	mu     sync.Mutex
	events []readreceipt.ReceiptEvent
	own    []readreceipt.OwnReadEvent
	// showOwn prints the OwnReadEvents of receipt calls ("open own").
	showOwn bool
	cursors map[string]string
	last    string // the cursor of the last page
}

func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

func (h *harness) openStore(t *testing.T) {
	switch h.backend {
	case "mem", "mem-packed":
		if h.mem == nil {
			h.mem = memstore.New()
		}
		h.st = h.mem
	case "pebble", "pebble-ingest":
		st, err := pebblestore.Open(h.dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.st = st
	}
}

func (h *harness) openEngine(t *testing.T) {
	var eng *readreceipt.Engine
	var err error
	if h.newClient != nil {
		if h.rc == nil {
			h.rc = h.newClient()
		}
		eng, err = readreceipt.OpenRedis(context.Background(),
			readreceipt.RedisOptions{Client: h.rc, Prefix: fmt.Sprintf("%s.%d:", h.prefix, h.opened)}, h.opts...)
	} else {
		h.openStore(t)
		opts := h.opts
		if h.backend == "mem-packed" {
			opts = append([]readreceipt.Option{readreceipt.WithCacheBytes(readreceipt.PackingCache)}, opts...)
		}
		eng, err = readreceipt.Open(h.st, opts...)
	}
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	eng.Subscribe(func(evs []readreceipt.ReceiptEvent) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.events = append(h.events, evs...)
	})
	eng.SubscribeOwnReads(func(evs []readreceipt.OwnReadEvent) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.own = append(h.own, evs...)
	})
}

func (h *harness) close(t *testing.T) {
	if h.eng != nil {
		if err := h.eng.Close(); err != nil {
			t.Error(err)
		}
		h.eng = nil
	}
	if h.st != nil && h.mem == nil {
		if err := h.st.Close(); err != nil {
			t.Error(err)
		}
	}
	h.st = nil
}

// closeAll is close, and the Redis client too.
func (h *harness) closeAll(t *testing.T) {
	h.close(t)
	if h.rc != nil {
		_ = h.rc.Close()
		h.rc = nil
	}
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	ctx := context.Background()
	var out strings.Builder
	switch d.Cmd {
	case "open":
		h.close(t)
		h.mem, h.dir = nil, t.TempDir()
		h.opened++
		h.clock = scenarioEpoch
		h.opts = []readreceipt.Option{readreceipt.WithClock(h.now), readreceipt.WithSweepInterval(0)}
		h.showOwn = false
		for _, a := range d.CmdArgs {
			if a.Key == "own" {
				h.showOwn = true
				continue
			}
			h.opts = append(h.opts, option(t, d, a))
		}
		h.openEngine(t)
		return "ok"
	case "reopen":
		h.close(t)
		h.openEngine(t)
		return "ok"
	case "advance":
		dur := parseDuration(t, d, arg(t, d, "by"))
		h.mu.Lock()
		h.clock = h.clock.Add(dur)
		h.mu.Unlock()
		return "ok"
	case "feature":
		h.eng.SetFeatureEnabled(arg(t, d, "on") == "true")
		return "ok"
	case "group-types":
		return result(h.eng.SetGroupTypes(groupTypes(t, d, list(t, d, "types"))...))
	case "create-group":
		typ, err := readreceipt.ParseGroupType(arg(t, d, "type"))
		if err != nil {
			return "error: " + err.Error()
		}
		return result(h.eng.CreateGroup(ctx, arg(t, d, "id"), typ, users(t, d)))
	case "add-members":
		return result(h.eng.AddGroupMembers(ctx, arg(t, d, "group"), users(t, d)))
	case "remove-members":
		return result(h.eng.RemoveGroupMembers(ctx, arg(t, d, "group"), users(t, d)))
	case "dismiss":
		return result(h.eng.DismissGroup(ctx, arg(t, d, "group")))
	case "group":
		g, err := h.eng.GetGroup(ctx, arg(t, d, "id"))
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("%s type=%s members=%d version=%d", g.ID, g.Type, g.Members, g.Version)
	case "track":
		msg := readreceipt.Message{Conversation: conversation(t, d), ID: arg(t, d, "id"), Sender: arg(t, d, "sender")}
		if d.HasArg("thread") {
			msg.Thread = arg(t, d, "thread")
		}
		return result(h.eng.TrackMessage(ctx, msg))
	case "receipt":
		res, err := h.eng.SendMessageReadReceipt(ctx, arg(t, d, "reader"), refs(t, d))
		if err != nil {
			out.WriteString("error: " + err.Error() + "\n")
		}
		for _, r := range res {
			switch {
			case r.Err != nil:
				fmt.Fprintf(&out, "%s: error: %v\n", r.MessageID, r.Err)
			case r.Recorded:
				fmt.Fprintf(&out, "%s: recorded\n", r.MessageID)
			default:
				fmt.Fprintf(&out, "%s: already read\n", r.MessageID)
			}
		}
		h.printEvents(&out)
	case "deliver":
		res, err := h.eng.SendMessageDeliveryReceipt(ctx, arg(t, d, "reader"), refs(t, d))
		if err != nil {
			out.WriteString("error: " + err.Error() + "\n")
		}
		for _, r := range res {
			switch {
			case r.Err != nil:
				fmt.Fprintf(&out, "%s: error: %v\n", r.MessageID, r.Err)
			case r.Recorded:
				fmt.Fprintf(&out, "%s: delivered\n", r.MessageID)
			default:
				fmt.Fprintf(&out, "%s: already delivered\n", r.MessageID)
			}
		}
		h.printEvents(&out)
	case "mark":
		req := readreceipt.MarkRequest{Conversation: conversation(t, d)}
		if d.HasArg("thread") {
			req.Thread = arg(t, d, "thread")
		}
		if d.HasArg("msg") {
			req.MessageID = arg(t, d, "msg")
		}
		if d.HasArg("time") {
			req.Time = h.parseTime(t, d, arg(t, d, "time"))
		}
		res, err := h.eng.MarkConversationRead(ctx, arg(t, d, "reader"), req)
		if err != nil {
			out.WriteString("error: " + err.Error() + "\n")
		} else {
			fmt.Fprintf(&out, "%s messages=%d recorded=%d\n", fmtMark(res.Mark), res.Messages, res.Recorded)
		}
		h.printEvents(&out)
	case "getmark":
		thread := ""
		if d.HasArg("thread") {
			thread = arg(t, d, "thread")
		}
		m, ok, err := h.eng.GetReadMark(ctx, arg(t, d, "reader"), conversation(t, d), thread)
		switch {
		case err != nil:
			return "error: " + err.Error()
		case !ok:
			return "no mark"
		}
		return fmtMark(m)
	case "private":
		u := arg(t, d, "user")
		if d.HasArg("on") {
			return result(h.eng.SetReceiptsPrivate(ctx, u, arg(t, d, "on") == "true"))
		}
		p, err := h.eng.ReceiptsPrivate(ctx, u)
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("private=%v", p)
	case "state":
		states, err := h.eng.GetMessageReadState(ctx, arg(t, d, "user"), refs(t, d))
		if err != nil {
			return "error: " + err.Error()
		}
		for _, st := range states {
			if st.Err != nil {
				fmt.Fprintf(&out, "%s: error: %v\n", st.MessageID, st.Err)
				continue
			}
			fmt.Fprintf(&out, "%s: read=%v private=%v delivered=%v read-time=%s\n",
				st.MessageID, st.Read, st.Private, st.Delivered, fmtTime(st.ReadTime))
		}
	case "readtimes":
		ref := readreceipt.MessageRef{Conversation: conversation(t, d), ID: arg(t, d, "id")}
		times, err := h.eng.GetMessageReadTimes(ctx, caller(t, d), ref, list(t, d, "users"))
		if err != nil {
			return "error: " + err.Error()
		}
		for _, rt := range times {
			fmt.Fprintf(&out, "%s: read=%v read-time=%s\n", rt.UserID, rt.Read, fmtTime(rt.ReadTime))
		}
	case "counts":
		infos, err := h.eng.GetMessageReadReceiptList(ctx, caller(t, d), refs(t, d))
		if err != nil {
			return "error: " + err.Error()
		}
		for _, in := range infos {
			if in.Err != nil {
				fmt.Fprintf(&out, "%s: error: %v\n", in.MessageID, in.Err)
				continue
			}
			fmt.Fprintf(&out, "%s: read=%d unread=%d", in.MessageID, in.ReadCount, in.UnreadCount)
			if d.HasArg("c2c") {
				fmt.Fprintf(&out, " peer-read=%v read-time=%s", in.IsPeerRead, fmtTime(in.ReadTime))
			}
			fmt.Fprintf(&out, " delivered=%d undelivered=%d", in.DeliveredCount, in.UndeliveredCount)
			if d.HasArg("c2c") {
				fmt.Fprintf(&out, " peer-delivered=%v", in.IsPeerDelivered)
			}
			out.WriteString("\n")
		}
	case "members":
		return h.page(ctx, t, d)
	case "walk":
		return h.walk(ctx, t, d)
	case "delete":
		return result(h.eng.DeleteMessage(ctx, readreceipt.MessageRef{Conversation: conversation(t, d), ID: arg(t, d, "id")}))
	case "sweep":
		n, err := h.eng.Sweep(ctx)
		if h.newClient != nil {
			if n != 0 || err != nil {
				t.Errorf("%s: Sweep on Redis: %d, %v; want 0, nil", d.Pos, n, err)
			}
			return d.Expected // see TestScenarios
		}
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("deleted %d", n)
	case "keys":
		if h.newClient != nil {
			return d.Expected // see TestScenarios
		}
		return h.keys(ctx, t)
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	return strings.TrimRight(out.String(), "\n")
}

// printEvents prints the receipt events of the last call (the senders'
// view: kind and counts) and, with "open own", its OwnReadEvents (the
// reader's devices' view).
func (h *harness) printEvents(out *strings.Builder) {
	h.mu.Lock()
	evs, own := h.events, h.own
	h.events, h.own = nil, nil
	h.mu.Unlock()
	for _, ev := range evs {
		if ev.GroupID != "" {
			fmt.Fprintf(out, "event to %s: group=%s message=%s read=%d unread=%d (reader %s) kind=%s delivered=%d undelivered=%d\n",
				ev.Sender, ev.GroupID, ev.MessageID, ev.ReadCount, ev.UnreadCount, ev.Reader, ev.Kind, ev.DeliveredCount, ev.UndeliveredCount)
		} else {
			fmt.Fprintf(out, "event to %s: user=%s message=%s peer-read=%v read-time=%s kind=%s peer-delivered=%v\n",
				ev.Sender, ev.UserID, ev.MessageID, ev.IsPeerRead, fmtTime(ev.ReadTime), ev.Kind, ev.IsPeerDelivered)
		}
	}
	if !h.showOwn {
		return
	}
	for _, ev := range own {
		fmt.Fprintf(out, "own event to %s: %s messages=[%s]", ev.UserID, ev.Conversation, strings.Join(ev.MessageIDs, " "))
		if ev.Mark != nil {
			fmt.Fprintf(out, " %s", fmtMark(*ev.Mark))
			if ev.Thread != "" {
				fmt.Fprintf(out, " thread=%s", ev.Thread)
			}
		}
		out.WriteString("\n")
	}
}

// fmtMark prints a read mark: the message it was set at, if any, and its
// time.
func fmtMark(m readreceipt.ReadMark) string {
	if m.MessageID == "" {
		return "mark at " + fmtTime(m.Time)
	}
	return fmt.Sprintf("mark %s at %s", m.MessageID, fmtTime(m.Time))
}

// parseTime reads a time: RFC 3339, or a duration after the scenario's
// epoch (2026-01-01T00:00:00Z), e.g. 5s or 1500ms.
func (h *harness) parseTime(t *testing.T, d *datadriven.TestData, s string) time.Time {
	if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return tm
	}
	return scenarioEpoch.Add(parseDuration(t, d, s))
}

var scenarioEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (h *harness) request(t *testing.T, d *datadriven.TestData) readreceipt.MemberListRequest {
	req := readreceipt.MemberListRequest{
		Message: readreceipt.MessageRef{Conversation: conversation(t, d), ID: arg(t, d, "id")},
		Count:   intArg(t, d, "count"),
	}
	switch f := arg(t, d, "filter"); f {
	case "read":
		req.Filter = readreceipt.FilterRead
	case "unread":
		req.Filter = readreceipt.FilterUnread
	case "delivered":
		req.Filter = readreceipt.FilterDelivered
	case "undelivered":
		req.Filter = readreceipt.FilterUndelivered
	default:
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: bad filter %q", d.Pos, f)
		}
		req.Filter = readreceipt.MemberFilter(n)
	}
	if d.HasArg("cursor") {
		c := arg(t, d, "cursor")
		switch {
		case c == "next":
			req.Cursor = h.last
		case strings.HasPrefix(c, "saved:"):
			req.Cursor = h.cursors[strings.TrimPrefix(c, "saved:")]
		case strings.HasPrefix(c, "tampered:"):
			s := []byte(h.cursors[strings.TrimPrefix(c, "tampered:")])
			if s[len(s)/2] == 'A' {
				s[len(s)/2] = 'B'
			} else {
				s[len(s)/2] = 'A'
			}
			req.Cursor = string(s)
		default:
			req.Cursor = c
		}
	}
	return req
}

func (h *harness) page(ctx context.Context, t *testing.T, d *datadriven.TestData) string {
	p, err := h.eng.GetGroupMessageReadMemberList(ctx, caller(t, d), h.request(t, d))
	if err != nil {
		return "error: " + err.Error()
	}
	h.last = p.Cursor
	if d.HasArg("save") {
		if h.cursors == nil {
			h.cursors = map[string]string{}
		}
		h.cursors[arg(t, d, "save")] = p.Cursor
	}
	return formatPage(p)
}

func formatPage(p readreceipt.MemberPage) string {
	list, name := p.ReadUserIDList, "read"
	switch {
	case p.UnreadUserIDList != nil:
		list, name = p.UnreadUserIDList, "unread"
	case p.DeliveredUserIDList != nil:
		list, name = p.DeliveredUserIDList, "delivered"
	case p.UndeliveredUserIDList != nil:
		list, name = p.UndeliveredUserIDList, "undelivered"
	}
	s := fmt.Sprintf("%s: [%s] completed=%v", name, strings.Join(list, " "), p.IsCompleted)
	if p.Cursor != "" {
		s += " cursor=yes"
	}
	if p.ReadTimes != nil {
		times := make([]string, len(p.ReadTimes))
		for i, rt := range p.ReadTimes {
			times[i] = fmtTime(rt)
		}
		s += " times=[" + strings.Join(times, " ") + "]"
	}
	return s
}

// pageList is the page's list of members, whichever filter made it.
func pageList(p readreceipt.MemberPage) []string {
	var out []string
	for _, l := range [][]string{p.ReadUserIDList, p.UnreadUserIDList, p.DeliveredUserIDList, p.UndeliveredUserIDList} {
		out = append(out, l...)
	}
	return out
}

// walk pages through a whole member list and prints each page.
func (h *harness) walk(ctx context.Context, t *testing.T, d *datadriven.TestData) string {
	req := h.request(t, d)
	var out strings.Builder
	seen := map[string]bool{}
	total := 0
	for i := 1; ; i++ {
		p, err := h.eng.GetGroupMessageReadMemberList(ctx, caller(t, d), req)
		if err != nil {
			return out.String() + "error: " + err.Error()
		}
		for _, u := range pageList(p) {
			if seen[u] {
				t.Errorf("%s: %s listed twice", d.Pos, u)
			}
			seen[u] = true
			total++
		}
		if !d.HasArg("quiet") {
			fmt.Fprintf(&out, "page %d: %s\n", i, formatPage(p))
		}
		if p.IsCompleted {
			break
		}
		req.Cursor = p.Cursor
		if i > 100000 {
			t.Fatalf("%s: walk does not end", d.Pos)
		}
	}
	fmt.Fprintf(&out, "%d members", total)
	return out.String()
}

// keys counts the stored keys by kind, to show that state is reclaimed.
func (h *harness) keys(ctx context.Context, t *testing.T) string {
	kinds := map[string]int{}
	err := h.st.Scan(ctx, nil, nil, func(k, _ []byte) bool {
		switch k[0] {
		case 0:
			kinds["system"]++
		case 'g':
			kinds["group"]++
		case 'm':
			kinds["message"]++
		case 't':
			kinds["expiry"]++
		case 'o', 'k':
			// Orders and marks (issue 12) are not shown: the seed's
			// scenarios count the seed's kinds. Check, run after every
			// command, fails on any order key or mark left behind.
			kinds["system"]++
		default:
			kinds["other"]++
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for k, n := range kinds {
		if k != "system" {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// fmtTime prints a read time, "-" for none.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339Nano)
}

func result(err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

func arg(t *testing.T, d *datadriven.TestData, key string) string {
	a, ok := d.Arg(key)
	if !ok {
		t.Fatalf("%s: missing argument %q", d.Pos, key)
	}
	if len(a.Vals) == 0 {
		return ""
	}
	return unhex(t, d, a.Vals[0])
}

// unhex decodes values written hex:<bytes>, for IDs that are not valid
// UTF-8 or not printable.
func unhex(t *testing.T, d *datadriven.TestData, v string) string {
	if h, ok := strings.CutPrefix(v, "hex:"); ok {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		return string(b)
	}
	if n, ok := strings.CutPrefix(v, "long:"); ok {
		k, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		return strings.Repeat("x", k)
	}
	return v
}

func list(t *testing.T, d *datadriven.TestData, key string) []string {
	a, ok := d.Arg(key)
	if !ok {
		return nil
	}
	var out []string
	for _, v := range a.Vals {
		out = append(out, unhex(t, d, v))
	}
	return out
}

func intArg(t *testing.T, d *datadriven.TestData, key string) int {
	n, err := strconv.Atoi(arg(t, d, key))
	if err != nil {
		t.Fatalf("%s: %s: %v", d.Pos, key, err)
	}
	return n
}

func parseDuration(t *testing.T, d *datadriven.TestData, s string) time.Duration {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			t.Fatalf("%s: bad duration %q", d.Pos, s)
		}
		return time.Duration(n) * 24 * time.Hour
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: bad duration %q", d.Pos, s)
	}
	return dur
}

// users returns the members=(...) list, plus n generated users u0..u<n-1>
// for count=n (big groups).
func users(t *testing.T, d *datadriven.TestData) []string {
	out := list(t, d, "members")
	if d.HasArg("count") {
		from := 0
		if d.HasArg("from") {
			from = intArg(t, d, "from")
		}
		for i := from; i < from+intArg(t, d, "count"); i++ {
			out = append(out, "u"+strconv.Itoa(i))
		}
	}
	return out
}

func groupTypes(t *testing.T, d *datadriven.TestData, names []string) []readreceipt.GroupType {
	var out []readreceipt.GroupType
	for _, n := range names {
		typ, err := readreceipt.ParseGroupType(n)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		out = append(out, typ)
	}
	return out
}

func conversation(t *testing.T, d *datadriven.TestData) readreceipt.Conversation {
	if d.HasArg("group") {
		return readreceipt.Group(arg(t, d, "group"))
	}
	if us := list(t, d, "c2c"); len(us) == 2 {
		return readreceipt.C2C(us[0], us[1])
	}
	if d.HasArg("conv-type") {
		return readreceipt.Conversation{Type: readreceipt.ConversationType(intArg(t, d, "conv-type")), GroupID: "x"}
	}
	t.Fatalf("%s: no conversation (group=... or c2c=(a,b))", d.Pos)
	return readreceipt.Conversation{}
}

// refs returns the messages ids=(...) of the command's conversation, plus
// one message per input line "group:G id" or "c2c:a,b id" (to mix
// conversations).
func refs(t *testing.T, d *datadriven.TestData) []readreceipt.MessageRef {
	var out []readreceipt.MessageRef
	if d.HasArg("ids") {
		conv := conversation(t, d)
		for _, id := range list(t, d, "ids") {
			out = append(out, readreceipt.MessageRef{Conversation: conv, ID: id})
		}
	}
	if d.HasArg("repeat") {
		n := intArg(t, d, "repeat")
		conv := conversation(t, d)
		for i := 0; i < n; i++ {
			out = append(out, readreceipt.MessageRef{Conversation: conv, ID: "m" + strconv.Itoa(i)})
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		if line == "" {
			continue
		}
		conv, id, _ := strings.Cut(line, " ")
		kind, rest, _ := strings.Cut(conv, ":")
		var c readreceipt.Conversation
		switch kind {
		case "group":
			c = readreceipt.Group(rest)
		case "c2c":
			a, b, _ := strings.Cut(rest, ",")
			c = readreceipt.C2C(a, b)
		default:
			t.Fatalf("%s: bad message line %q", d.Pos, line)
		}
		out = append(out, readreceipt.MessageRef{Conversation: c, ID: id})
	}
	return out
}

func caller(t *testing.T, d *datadriven.TestData) readreceipt.Caller {
	c := arg(t, d, "caller")
	if c == "admin" {
		return readreceipt.AsAdmin()
	}
	return readreceipt.AsUser(c)
}

func option(t *testing.T, d *datadriven.TestData, a datadriven.CmdArg) readreceipt.Option {
	v := ""
	if len(a.Vals) > 0 {
		v = a.Vals[0]
	}
	num := func() int {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %s: %v", d.Pos, a.Key, err)
		}
		return n
	}
	switch a.Key {
	case "retention":
		return readreceipt.WithRetention(parseDuration(t, d, v))
	case "access":
		if v == "recipients" {
			return readreceipt.WithQueryAccess(readreceipt.AccessRecipients)
		}
		return readreceipt.WithQueryAccess(readreceipt.AccessSender)
	case "max-messages":
		return readreceipt.WithMaxMessagesPerCall(num())
	case "max-query":
		return readreceipt.WithMaxQueryMessages(num())
	case "page-size":
		return readreceipt.WithMaxPageSize(num())
	case "id-length":
		return readreceipt.WithMaxIDLength(num())
	case "feature":
		return readreceipt.WithFeatureEnabled(v == "on")
	case "types":
		return readreceipt.WithGroupTypes(groupTypes(t, d, a.Vals)...)
	case "read-times":
		return readreceipt.WithReadTimes(true)
	case "reciprocal":
		return readreceipt.WithReciprocalPrivacy(true)
	}
	t.Fatalf("%s: unknown option %q", d.Pos, a.Key)
	return nil
}
