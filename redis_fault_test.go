//go:build linux

package readreceipt_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Faults on the Redis backend (issue 9, item 5): several engine processes
// on one cluster, a master killed during a receipt storm, an engine host
// killed, a standalone Redis stopped and restarted.
//
// The multi-process tests run this test binary again as engine hosts
// (TestRedisHostChild). A host opens OpenRedis on the addresses in
// redisHostAddrsEnv and serves commands: one JSON hostCmd a line on its
// stdin, each run on a goroutine of its own, answered by one JSON hostReply
// a line on fd 3, written only once the call has returned. So a reply the
// parent has read is an acknowledgement, and a host killed with SIGKILL
// acknowledged exactly the replies that reached the parent.

const (
	redisHostAddrsEnv   = "READRECEIPT_TEST_REDIS_HOST_ADDRS"   // comma-separated seeds
	redisHostClusterEnv = "READRECEIPT_TEST_REDIS_HOST_CLUSTER" // "1": a ClusterClient
	redisHostPrefixEnv  = "READRECEIPT_TEST_REDIS_HOST_PREFIX"
)

// hostCmd is a command to an engine host. The conversation is Group, or
// C2C(Sender, Peer) when Group is empty.
type hostCmd struct {
	ID     int      `json:"id"`
	Op     string   `json:"op"` // send, counts, page, sub, events
	Group  string   `json:"g,omitempty"`
	Sender string   `json:"s,omitempty"`
	Peer   string   `json:"p,omitempty"`
	Reader string   `json:"r,omitempty"` // send: the reader; counts, page, sub: the caller or subscriber
	Msgs   []string `json:"m,omitempty"`
}

type hostResult struct {
	Msg      string `json:"m"`
	Recorded bool   `json:"rec,omitempty"`
	Err      string `json:"err,omitempty"`
}

type hostReply struct {
	ID int `json:"id"`
	// Err is the error of the whole call; Unavailable that it is
	// ErrUnavailable.
	Err         string       `json:"err,omitempty"`
	Unavailable bool         `json:"unavail,omitempty"`
	Results     []hostResult `json:"res,omitempty"`    // send
	Counts      []int        `json:"counts,omitempty"` // counts: ReadCount, or -1 with the error in Results
	Members     []string     `json:"members,omitempty"`
	Events      []string     `json:"events,omitempty"` // "message/reader", in arrival order
}

func (c hostCmd) conv() readreceipt.Conversation {
	if c.Group != "" {
		return readreceipt.Group(c.Group)
	}
	return readreceipt.C2C(c.Sender, c.Peer)
}

func (c hostCmd) refs() []readreceipt.MessageRef {
	refs := make([]readreceipt.MessageRef, len(c.Msgs))
	for i, m := range c.Msgs {
		refs[i] = readreceipt.MessageRef{Conversation: c.conv(), ID: m}
	}
	return refs
}

// TestRedisHostChild is an engine host of the multi-process tests; run on
// its own it skips.
func TestRedisHostChild(t *testing.T) {
	addrs := os.Getenv(redisHostAddrsEnv)
	if addrs == "" {
		t.Skip("an engine host of the Redis multi-process tests")
	}
	if err := runRedisHost(strings.Split(addrs, ","), os.Getenv(redisHostClusterEnv) == "1", os.Getenv(redisHostPrefixEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "redis host:", err)
		os.Exit(2)
	}
}

func runRedisHost(addrs []string, cluster bool, prefix string) error {
	var c redis.UniversalClient
	if cluster {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	} else {
		c = redis.NewClient(&redis.Options{Addr: addrs[0]})
	}
	defer c.Close()
	ctx := context.Background()
	e, err := readreceipt.OpenRedis(ctx, readreceipt.RedisOptions{Client: c, Prefix: prefix}, readreceipt.WithSweepInterval(0))
	if err != nil {
		return err
	}
	defer e.Close()
	out := os.NewFile(3, "replies")
	var outMu sync.Mutex
	reply := func(r hostReply) {
		b, _ := json.Marshal(r)
		outMu.Lock()
		defer outMu.Unlock()
		_, _ = out.Write(append(b, '\n'))
	}
	var evMu sync.Mutex
	var events []string

	var wg sync.WaitGroup
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<16), 1<<20)
	for in.Scan() {
		var cmd hostCmd
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := hostReply{ID: cmd.ID}
			var err error
			switch cmd.Op {
			case "send":
				var res []readreceipt.ReceiptResult
				res, err = e.SendMessageReadReceipt(ctx, cmd.Reader, cmd.refs())
				for _, x := range res {
					hr := hostResult{Msg: x.MessageID, Recorded: x.Recorded}
					if x.Err != nil {
						hr.Err = x.Err.Error()
					}
					r.Results = append(r.Results, hr)
				}
			case "counts":
				var infos []readreceipt.ReceiptInfo
				infos, err = e.GetMessageReadReceiptList(ctx, readreceipt.AsUser(cmd.Reader), cmd.refs())
				for _, x := range infos {
					n, hr := x.ReadCount, hostResult{Msg: x.MessageID}
					if x.Err != nil {
						n, hr.Err = -1, x.Err.Error()
					}
					r.Counts = append(r.Counts, n)
					r.Results = append(r.Results, hr)
				}
			case "page":
				r.Members, err = walkReaders(ctx, e, readreceipt.AsUser(cmd.Reader), cmd.refs()[0])
			case "sub":
				e.Subscribe(func(evs []readreceipt.ReceiptEvent) {
					evMu.Lock()
					defer evMu.Unlock()
					for _, ev := range evs {
						if ev.Sender == cmd.Reader {
							events = append(events, ev.MessageID+"/"+ev.Reader)
						}
					}
				})
			case "events":
				evMu.Lock()
				r.Events = slices.Clone(events)
				evMu.Unlock()
			default:
				err = fmt.Errorf("unknown op %q", cmd.Op)
			}
			if err != nil {
				r.Err = err.Error()
				r.Unavailable = errors.Is(err, readreceipt.ErrUnavailable)
			}
			reply(r)
		}()
	}
	wg.Wait()
	return in.Err()
}

// walkReaders walks the read members of a group message to the end, in
// pages of 7.
func walkReaders(ctx context.Context, e *readreceipt.Engine, caller readreceipt.Caller, ref readreceipt.MessageRef) ([]string, error) {
	req := readreceipt.MemberListRequest{Message: ref, Filter: readreceipt.FilterRead, Count: 7}
	var out []string
	for range 100_000 {
		p, err := e.GetGroupMessageReadMemberList(ctx, caller, req)
		if err != nil {
			return nil, err
		}
		out = append(out, p.ReadUserIDList...)
		if p.IsCompleted {
			return out, nil
		}
		req.Cursor = p.Cursor
	}
	return nil, errors.New("member list does not end")
}

// redisHost is the parent's handle on an engine host process.
type redisHost struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  *os.File
	output *lockedBuffer

	mu      sync.Mutex
	nextID  int
	pending map[int]chan hostReply
	gone    chan struct{} // closed when the replies pipe is at its end
	waited  chan struct{} // closed once the process has been waited for
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startRedisHost starts an engine host on addrs under prefix; it is killed
// when the test ends.
func startRedisHost(t *testing.T, name string, addrs []string, cluster bool, prefix string) *redisHost {
	t.Helper()
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	inR, inW, err := os.Pipe()
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRedisHostChild$", "-test.count=1")
	cl := "0"
	if cluster {
		cl = "1"
	}
	cmd.Env = append(os.Environ(), redisHostAddrsEnv+"="+strings.Join(addrs, ","), redisHostClusterEnv+"="+cl, redisHostPrefixEnv+"="+prefix)
	h := &redisHost{t: t, name: name, cmd: cmd, stdin: inW, output: &lockedBuffer{}, pending: map[int]chan hostReply{}, gone: make(chan struct{}), waited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = h.output, h.output
	cmd.Stdin = inR
	cmd.ExtraFiles = []*os.File{pw} // fd 3 in the child
	// The child dies with the parent, should the test binary be killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	pw.Close()
	inR.Close()
	go func() {
		defer close(h.gone)
		br := bufio.NewReaderSize(pr, 1<<16)
		for {
			s, err := br.ReadString('\n')
			if err != nil {
				return // a line cut short by a kill was never acknowledged
			}
			var r hostReply
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				t.Errorf("%s: bad reply %q: %v", name, s, err)
				return
			}
			h.mu.Lock()
			ch := h.pending[r.ID]
			delete(h.pending, r.ID)
			h.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		pr.Close()
		close(h.waited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-h.waited
		h.stdin.Close()
		if out := h.output.String(); strings.Contains(out, "DATA RACE") || strings.Contains(out, "panic:") {
			t.Errorf("%s failed:\n%s", name, out)
		}
	})
	return h
}

// send sends cmd and returns a channel that gets its reply, or is closed
// without one if the host dies first.
func (h *redisHost) send(cmd hostCmd) <-chan hostReply {
	ch := make(chan hostReply, 1)
	h.mu.Lock()
	h.nextID++
	cmd.ID = h.nextID
	h.pending[cmd.ID] = ch
	b, _ := json.Marshal(cmd)
	_, err := h.stdin.Write(append(b, '\n'))
	h.mu.Unlock()
	out := make(chan hostReply, 1)
	go func() {
		defer close(out)
		if err != nil {
			return
		}
		select {
		case r := <-ch:
			out <- r
		case <-h.gone:
			select { // the reply may have been read just before the end
			case r := <-ch:
				out <- r
			default:
			}
		}
	}()
	return out
}

// do runs cmd and returns its reply, failing the test if the host dies or
// does not answer within a minute.
func (h *redisHost) do(cmd hostCmd) hostReply {
	h.t.Helper()
	select {
	case r, ok := <-h.send(cmd):
		if !ok {
			h.t.Fatalf("%s died; its output:\n%s", h.name, h.output.String())
		}
		return r
	case <-time.After(time.Minute):
		h.t.Fatalf("%s: no reply to %+v in a minute; its output:\n%s", h.name, cmd, h.output.String())
	}
	return hostReply{}
}

// kill kills the host with SIGKILL and waits until it is gone and every
// reply it wrote has been read.
func (h *redisHost) kill() {
	h.t.Helper()
	require.NoError(h.t, h.cmd.Process.Signal(syscall.SIGKILL))
	<-h.waited
	<-h.gone
	ws, ok := h.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		h.t.Fatalf("%s ended with %v, not by the kill; its output:\n%s", h.name, h.cmd.ProcessState, h.output.String())
	}
}

// groupsOnMasters returns n group IDs named prefix0, prefix1, ... (with
// gaps), whose conversations' slots are on distinct masters of cl as far as
// it has masters, under the engine key prefix kp.
func groupsOnMasters(cl *redistest.Cluster, kp, prefix string, n int) []string {
	var out []string
	used := map[*redistest.Server]int{}
	masters := len(cl.Masters())
	for i := 0; len(out) < n && i < 10_000; i++ {
		gid := prefix + strconv.Itoa(i)
		m := cl.MasterForKey(groupKey(kp, gid))
		if used[m] >= (len(out)+masters)/masters {
			continue
		}
		used[m]++
		out = append(out, gid)
	}
	return out
}

// groupKey is a key in the slot of group gid's conversation (the layout at
// the top of redis.go: every key of a conversation carries its hash tag).
func groupKey(kp, gid string) string {
	return kp + "{g" + strconv.Itoa(len(gid)) + ":" + gid + "}G"
}

// TestRedisHostsProcesses runs three engine processes, as three hosts
// would, on one Redis Cluster of three masters with a replica each. Every
// reader sends the same receipts through all three hosts at once: each
// receipt is recorded exactly once across the hosts, the counts are the
// number of distinct readers from every host, the member pages walked to
// the end are the same from every host, and the host the sender subscribed
// on gets the event of every receipt, whichever host recorded it, once.
func TestRedisHostsProcesses(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1)
	ctx := context.Background()
	const kp = "hosts:"
	nReaders, nMsgs := 24, 3
	if testing.Short() {
		nReaders, nMsgs = 8, 2
	}
	setup := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { setup.Close() })
	e := openRedisEngine(t, setup, kp)

	groups := groupsOnMasters(cl, kp, "team", 3)
	readers := userList("r", nReaders)
	var msgs []readreceipt.Message
	for _, g := range groups {
		require.NoError(t, e.CreateGroup(ctx, g, readreceipt.GroupWork, append([]string{"s"}, readers...)))
		for i := range nMsgs {
			m := readreceipt.Message{Conversation: readreceipt.Group(g), ID: "m" + strconv.Itoa(i), Sender: "s"}
			require.NoError(t, e.TrackMessage(ctx, m))
			msgs = append(msgs, m)
		}
	}
	c2c := readreceipt.Message{Conversation: readreceipt.C2C("s", "p"), ID: "c1", Sender: "s"}
	probe := readreceipt.Message{Conversation: readreceipt.C2C("s", "q"), ID: "probe", Sender: "s"}
	require.NoError(t, e.TrackMessage(ctx, c2c))
	require.NoError(t, e.TrackMessage(ctx, probe))

	hosts := make([]*redisHost, 3)
	for i := range hosts {
		hosts[i] = startRedisHost(t, "host"+strconv.Itoa(i), cl.Addrs(), true, kp)
	}
	// The sender is connected to host 0. Its subscription is live once the
	// event of a receipt sent through another host has reached it.
	require.Empty(t, hosts[0].do(hostCmd{Op: "sub", Reader: "s"}).Err)
	r := hosts[1].do(hostCmd{Op: "send", Sender: "s", Peer: "q", Reader: "q", Msgs: []string{"probe"}})
	require.Empty(t, r.Err)
	require.True(t, r.Results[0].Recorded)
	waitEvents(t, hosts[0], 1, 20*time.Second)

	// Every reader sends its receipts for each group's messages through
	// every host at once; the C2C peer too.
	type sent struct {
		host int
		cmd  hostCmd
		ch   <-chan hostReply
	}
	var calls []sent
	// Which host gets a receipt first rotates, so that each host races the
	// others.
	for ri, rd := range readers {
		for gi, g := range groups {
			for k := range hosts {
				hi := (ri + gi + k) % len(hosts)
				cmd := hostCmd{Op: "send", Group: g, Reader: rd, Msgs: msgIDs(nMsgs)}
				calls = append(calls, sent{hi, cmd, hosts[hi].send(cmd)})
			}
		}
	}
	for hi, h := range hosts {
		cmd := hostCmd{Op: "send", Sender: "s", Peer: "p", Reader: "p", Msgs: []string{"c1"}}
		calls = append(calls, sent{hi, cmd, h.send(cmd)})
	}
	recorded := map[string]int{} // conversation/message/reader -> times recorded
	perHost := make([]int, len(hosts))
	for _, c := range calls {
		var r hostReply
		var ok bool
		select {
		case r, ok = <-c.ch:
		case <-time.After(time.Minute):
		}
		require.True(t, ok, "host%d: no reply to %+v", c.host, c.cmd)
		require.Empty(t, r.Err, "host%d: %+v", c.host, c.cmd)
		require.Len(t, r.Results, len(c.cmd.Msgs))
		for _, x := range r.Results {
			require.Empty(t, x.Err, "host%d: %+v", c.host, c.cmd)
			k := c.cmd.Group + "/" + x.Msg + "/" + c.cmd.Reader
			recorded[k] += 0
			if x.Recorded {
				recorded[k]++
				perHost[c.host]++
			}
		}
	}
	total := 0
	for k, n := range recorded {
		require.Equal(t, 1, n, "receipt %s recorded %d times across the hosts", k, n)
		total += n
	}
	want := len(groups)*nMsgs*nReaders + 1
	require.Equal(t, want, total)
	t.Logf("%d receipts sent through 3 hosts at once (%d calls): recorded once each, %v by host", want, len(calls), perHost)

	// Counts and walked pages are the same from every host.
	var pages [][]string
	for hi, h := range hosts {
		for _, g := range groups {
			r := h.do(hostCmd{Op: "counts", Group: g, Reader: "s", Msgs: msgIDs(nMsgs)})
			require.Empty(t, r.Err)
			for i, n := range r.Counts {
				require.Equal(t, nReaders, n, "host%d: %s/%s: %s", hi, g, r.Results[i].Msg, r.Results[i].Err)
			}
		}
		r := h.do(hostCmd{Op: "counts", Sender: "s", Peer: "p", Reader: "s", Msgs: []string{"c1"}})
		require.Empty(t, r.Err)
		require.Equal(t, []int{1}, r.Counts)
		var all []string
		for _, m := range msgs {
			r := h.do(hostCmd{Op: "page", Group: m.Conversation.GroupID, Reader: "s", Msgs: []string{m.ID}})
			require.Empty(t, r.Err)
			require.ElementsMatch(t, readers, r.Members, "host%d: %s/%s", hi, m.Conversation.GroupID, m.ID)
			all = append(all, m.Conversation.GroupID+"/"+m.ID+":"+strings.Join(r.Members, ","))
		}
		pages = append(pages, all)
	}
	require.Equal(t, pages[0], pages[1])
	require.Equal(t, pages[0], pages[2])

	// The sender's host got every receipt's event exactly once.
	evs := waitEvents(t, hosts[0], want+1, 20*time.Second)
	var wantEv []string
	for _, m := range msgs {
		for _, rd := range readers {
			wantEv = append(wantEv, m.ID+"/"+rd)
		}
	}
	wantEv = append(wantEv, "c1/p", "probe/q")
	slices.Sort(wantEv)
	slices.Sort(evs)
	require.Equal(t, wantEv, evs)
	t.Logf("the sender's host got %d events, one per receipt", len(evs))
}

func msgIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "m" + strconv.Itoa(i)
	}
	return out
}

// waitEvents waits until host has received at least n events, or timeout
// has passed, and returns them.
func waitEvents(t *testing.T, h *redisHost, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := h.do(hostCmd{Op: "events"})
		if len(r.Events) >= n || time.Now().After(deadline) {
			require.GreaterOrEqual(t, len(r.Events), n, "%s got %d events in %v, want %d", h.name, len(r.Events), timeout, n)
			// Anything late and duplicate would show within a moment.
			time.Sleep(200 * time.Millisecond)
			return h.do(hostCmd{Op: "events"}).Events
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiptLedger records which receipts were acknowledged, and how many
// times each was answered Recorded.
type receiptLedger struct {
	mu       sync.Mutex
	acked    map[string]map[string]bool // group/message -> readers
	recorded map[string]int             // group/message/reader -> answers Recorded
	n        int
}

func (l *receiptLedger) ack(group, msg, reader string, recorded bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acked == nil {
		l.acked = map[string]map[string]bool{}
		l.recorded = map[string]int{}
	}
	k := group + "/" + msg
	if l.acked[k] == nil {
		l.acked[k] = map[string]bool{}
	}
	if !l.acked[k][reader] {
		l.acked[k][reader] = true
		l.n++
	}
	if recorded {
		l.recorded[k+"/"+reader]++
	}
}

func (l *receiptLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// verify checks, through e, that every acknowledged receipt is present:
// the reader is on the message's walked read pages, and the count is the
// number of readers those pages list; and that none was answered Recorded
// twice. It returns how many acknowledged
// receipts are missing, having reported each as a test error.
func (l *receiptLedger) verify(t *testing.T, e *readreceipt.Engine, sender string) (acked, lost int) {
	t.Helper()
	ctx := context.Background()
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.acked))
	for k := range l.acked {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g, m, _ := strings.Cut(k, "/")
		ref := readreceipt.MessageRef{Conversation: readreceipt.Group(g), ID: m}
		page, err := walkReaders(ctx, e, readreceipt.AsUser(sender), ref)
		require.NoError(t, err, k)
		infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser(sender), []readreceipt.MessageRef{ref})
		require.NoError(t, err, k)
		require.NoError(t, infos[0].Err, k)
		require.Equal(t, len(page), infos[0].ReadCount, "%s: count and read pages disagree", k)
		have := map[string]bool{}
		for _, u := range page {
			have[u] = true
		}
		for u := range l.acked[k] {
			if n := l.recorded[k+"/"+u]; n > 1 {
				t.Errorf("receipt of %s for %s answered Recorded %d times", u, k, n)
			}
			acked++
			if !have[u] {
				lost++
				t.Errorf("acknowledged receipt of %s for %s is missing", u, k)
			}
		}
	}
	return acked, lost
}

// failWindow notes when calls failed with ErrUnavailable.
type failWindow struct {
	mu          sync.Mutex
	n           int
	first, last time.Time
}

func (w *failWindow) note() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if w.n == 0 {
		w.first = now
	}
	w.last = now
	w.n++
}

func (w *failWindow) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		return "no call failed"
	}
	return fmt.Sprintf("%d calls failed with ErrUnavailable over %v", w.n, w.last.Sub(w.first).Round(time.Millisecond))
}

// checkReceiptOutcome fails the test unless the outcome of a receipt call
// is a success with every message admitted (acknowledged), or
// ErrUnavailable (retry): it returns true for an acknowledgement.
func checkReceiptOutcome(t *testing.T, res []readreceipt.ReceiptResult, err error, n int) bool {
	t.Helper()
	if err != nil {
		if !errors.Is(err, readreceipt.ErrUnavailable) {
			t.Errorf("a receipt call failed with %v, not ErrUnavailable", err)
		}
		return false
	}
	if len(res) != n {
		t.Errorf("%d results for %d messages", len(res), n)
		return false
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("receipt for %s: %v, on a tracked message of a member", r.MessageID, r.Err)
			return false
		}
	}
	return true
}

// TestRedisMasterKillLosesNoAckedReceipt kills, with SIGKILL, the master
// holding one conversation's slot during a receipt storm over conversations
// on every master, and waits for its replica to take over. Calls fail
// meanwhile only with ErrUnavailable, and are retried; afterwards every
// receipt that was acknowledged is there, in the counts and the walked read
// pages of a fresh engine.
func TestRedisMasterKillLosesNoAckedReceipt(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1)
	ctx := context.Background()
	const kp = "storm:"
	nGroups, nReaders, nMsgs, workers := 6, 120, 5, 6
	if testing.Short() {
		nGroups, nReaders, nMsgs, workers = 3, 60, 3, 4
	}
	newClient := func() redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	e := openRedisEngine(t, newClient(), kp)
	groups := groupsOnMasters(cl, kp, "g", nGroups)
	readers := userList("u", nReaders)
	for _, g := range groups {
		require.NoError(t, e.CreateGroup(ctx, g, readreceipt.GroupWork, append([]string{"s"}, readers...)))
		for _, m := range msgIDs(nMsgs) {
			require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: readreceipt.Group(g), ID: m, Sender: "s"}))
		}
	}
	victim := groups[0]
	slot := redistest.KeySlot(groupKey(kp, victim))
	master := cl.MasterForSlot(slot)

	// The storm: every (reader, group) is one call with the group's
	// messages, in a random order, paced so that it spans the failover.
	type job struct{ group, reader string }
	var jobs []job
	for _, g := range groups {
		for _, r := range readers {
			jobs = append(jobs, job{g, r})
		}
	}
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	queue := make(chan job, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	var ledger receiptLedger
	var fails failWindow
	var victimAcks atomic.Int64 // acknowledged calls on the victim's slot
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				refs := readreceipt.Group(j.group)
				ids := msgIDs(nMsgs)
				mrefs := make([]readreceipt.MessageRef, len(ids))
				for i, id := range ids {
					mrefs[i] = readreceipt.MessageRef{Conversation: refs, ID: id}
				}
				deadline := time.Now().Add(30 * time.Second)
				for {
					res, err := e.SendMessageReadReceipt(ctx, j.reader, mrefs)
					if checkReceiptOutcome(t, res, err, len(mrefs)) {
						for _, x := range res {
							ledger.ack(j.group, x.MessageID, j.reader, x.Recorded)
						}
						if j.group == victim {
							victimAcks.Add(1)
						}
						break
					}
					if err == nil || time.Now().After(deadline) {
						if err != nil {
							t.Errorf("%s/%s: still failing after 30 s: %v", j.group, j.reader, err)
						}
						return
					}
					fails.note()
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}

	// Kill the victim's master once the storm is under way.
	for start := time.Now(); victimAcks.Load() < int64(nReaders/5); {
		require.Less(t, time.Since(start), 30*time.Second, "the storm does not get under way")
		time.Sleep(5 * time.Millisecond)
	}
	before := victimAcks.Load()
	cl.KillMaster(t, master)
	took := cl.WaitFailover(t, slot, 20*time.Second)
	t.Logf("killed master %s (slot %d of %s) after %d acknowledged receipts; failover took %v", master.Addr, slot, victim, ledger.count(), took.Round(time.Millisecond))
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("storm over: %s; %d calls on %s acknowledged before the kill, %d in all", fails.String(), before, victim, victimAcks.Load())
	require.Equal(t, int64(nReaders), victimAcks.Load())

	// A fresh engine, on a fresh client, finds every acknowledged receipt.
	fresh := openRedisEngine(t, newClient(), kp)
	acked, lost := ledger.verify(t, fresh, "s")
	t.Logf("receipts acknowledged: %d, lost: %d", acked, lost)
	require.Equal(t, len(jobs)*nMsgs, acked)
	require.Zero(t, lost)
}

// TestRedisEngineHostKillLosesNothing kills, with SIGKILL, an engine host
// process in the middle of a receipt storm sent through it: every receipt
// it acknowledged (a reply that reached the parent) is there afterwards,
// as a fresh engine sees it, and the state passes Engine.Check.
func TestRedisEngineHostKillLosesNothing(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1)
	ctx := context.Background()
	const kp = "hostkill:"
	nGroups, nReaders, nMsgs, inflight := 3, 150, 4, 16
	if testing.Short() {
		nReaders = 50
	}
	setup := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { setup.Close() })
	e := openRedisEngine(t, setup, kp)
	groups := groupsOnMasters(cl, kp, "g", nGroups)
	readers := userList("u", nReaders)
	for _, g := range groups {
		require.NoError(t, e.CreateGroup(ctx, g, readreceipt.GroupWork, append([]string{"s"}, readers...)))
		for _, m := range msgIDs(nMsgs) {
			require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: readreceipt.Group(g), ID: m, Sender: "s"}))
		}
	}
	h := startRedisHost(t, "host", cl.Addrs(), true, kp)

	var ledger receiptLedger
	var mu sync.Mutex
	acks := 0
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	total := len(groups) * len(readers)
	killAt := total / 3
	killed := make(chan struct{})
	go func() {
		for {
			mu.Lock()
			n := acks
			mu.Unlock()
			if n >= killAt {
				break
			}
			time.Sleep(time.Millisecond)
		}
		h.kill()
		close(killed)
	}()
send:
	for _, r := range readers {
		for _, g := range groups {
			select {
			case sem <- struct{}{}:
			case <-killed:
				break send
			}
			cmd := hostCmd{Op: "send", Group: g, Reader: r, Msgs: msgIDs(nMsgs)}
			ch := h.send(cmd)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				rep, ok := <-ch
				if !ok {
					return // not acknowledged: the host died first
				}
				if rep.Err != "" {
					t.Errorf("%+v: %s", cmd, rep.Err)
					return
				}
				for _, x := range rep.Results {
					if x.Err != "" {
						t.Errorf("%+v: %s: %s", cmd, x.Msg, x.Err)
						return
					}
				}
				for _, x := range rep.Results {
					ledger.ack(g, x.Msg, r, x.Recorded)
				}
				mu.Lock()
				acks++
				mu.Unlock()
			}()
		}
	}
	<-killed
	wg.Wait()
	require.False(t, t.Failed())
	acked, lost := ledger.verify(t, openRedisEngine(t, redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()}), kp), "s")
	t.Logf("engine host killed after %d acknowledged calls of %d: receipts acknowledged %d, lost %d", acks, total, acked, lost)
	require.Positive(t, acked)
	require.Less(t, acked, total*nMsgs, "the host was killed after the storm, not during it")
	require.Zero(t, lost)
	require.NoError(t, e.Check(ctx))
}

// TestRedisRestart stops a standalone Redis (SIGTERM) while an engine keeps
// sending receipts, and starts it again on the same port and directory:
// meanwhile calls fail with ErrUnavailable, each within seconds; once it is
// back they succeed again by themselves, nothing is half-applied
// (Engine.Check) and every acknowledged receipt is there. Then the same
// with the server killed with SIGKILL: with appendfsync always, every
// acknowledged receipt survives.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const kp = "restart:"
	nReaders, nMsgs, workers := 400, 3, 4
	if testing.Short() {
		nReaders = 200
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	// The engines are closed by defers, not cleanups: the server's restart
	// registers a cleanup that stops it, which would run first.
	open := func(c redis.UniversalClient) *readreceipt.Engine {
		e, err := readreceipt.OpenRedis(ctx, readreceipt.RedisOptions{Client: c, Prefix: kp}, readreceipt.WithSweepInterval(0))
		require.NoError(t, err)
		return e
	}
	e := open(c)
	defer e.Close()
	readers := userList("u", nReaders)
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, append([]string{"s"}, readers...)))
	for _, m := range msgIDs(nMsgs) {
		require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: readreceipt.Group("g"), ID: m, Sender: "s"}))
	}
	refs := make([]readreceipt.MessageRef, nMsgs)
	for i, id := range msgIDs(nMsgs) {
		refs[i] = readreceipt.MessageRef{Conversation: readreceipt.Group("g"), ID: id}
	}
	// Group h grows during the outages, one member and one message at a
	// time, each retried until acknowledged.
	require.NoError(t, e.CreateGroup(ctx, "h", readreceipt.GroupWork, []string{"s"}))
	var hMembers, hMsgs []string
	retry := func(what string, f func() error) bool {
		for deadline := time.Now().Add(30 * time.Second); ; {
			err := f()
			if err == nil {
				return true
			}
			if !errors.Is(err, readreceipt.ErrUnavailable) || time.Now().After(deadline) {
				t.Errorf("%s: %v", what, err)
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	for round, crash := range []bool{false, true} {
		name := "SIGTERM"
		if crash {
			name = "SIGKILL"
		}
		// Each round sends the receipts of its half of the readers.
		half := readers[:nReaders/2]
		if crash {
			half = readers[nReaders/2:]
		}
		queue := make(chan string, len(half))
		for _, r := range half {
			queue <- r
		}
		close(queue)
		var ledger receiptLedger
		var fails failWindow
		var acks atomic.Int64
		var slowest atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range queue {
					deadline := time.Now().Add(30 * time.Second)
					for {
						start := time.Now()
						res, err := e.SendMessageReadReceipt(ctx, r, refs)
						if d := time.Since(start); int64(d) > slowest.Load() && err != nil {
							slowest.Store(int64(d))
						}
						if checkReceiptOutcome(t, res, err, len(refs)) {
							for _, x := range res {
								ledger.ack("g", x.MessageID, r, x.Recorded)
							}
							acks.Add(1)
							break
						}
						if err == nil || time.Now().After(deadline) {
							if err != nil {
								t.Errorf("%s: still failing after 30 s: %v", r, err)
							}
							return
						}
						fails.note()
						time.Sleep(20 * time.Millisecond)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		stopGrowing := make(chan struct{})
		grown := make(chan struct{})
		go func() {
			defer close(grown)
			for i := 0; ; i++ {
				select {
				case <-stopGrowing:
					return
				default:
				}
				u, id := fmt.Sprintf("x%d-%d", round, i), fmt.Sprintf("t%d-%d", round, i)
				if !retry("add "+u, func() error { return e.AddGroupMembers(ctx, "h", []string{u}) }) {
					return
				}
				hMembers = append(hMembers, u)
				m := readreceipt.Message{Conversation: readreceipt.Group("h"), ID: id, Sender: "s"}
				if !retry("track "+id, func() error { return e.TrackMessage(ctx, m) }) {
					return
				}
				hMsgs = append(hMsgs, id)
				time.Sleep(10 * time.Millisecond)
			}
		}()
		for acks.Load() < int64(len(half)/4) {
			time.Sleep(2 * time.Millisecond)
		}
		if crash {
			srv.Kill()
		} else {
			require.NoError(t, srv.Stop())
		}
		stopped := time.Now()
		// Stay down until calls have been seen failing for a while.
		for fails.String() == "no call failed" || time.Since(stopped) < 500*time.Millisecond {
			require.Less(t, time.Since(stopped), 20*time.Second, "no call failed while Redis was down")
			time.Sleep(10 * time.Millisecond)
		}
		ackedDown := acks.Load()
		time.Sleep(300 * time.Millisecond)
		require.Equal(t, ackedDown, acks.Load(), "calls acknowledged while Redis was down")
		srv.Restart(t)
		t.Logf("%s: Redis down for %v", name, time.Since(stopped).Round(time.Millisecond))
		wg.Wait()
		close(stopGrowing)
		<-grown
		if t.Failed() {
			return
		}
		// Every acknowledged membership change and message is there, with
		// the recipients it was tracked with: the members who had joined.
		g, err := e.GetGroup(ctx, "h")
		require.NoError(t, err)
		require.Equal(t, 1+len(hMembers), g.Members, "members of h")
		for _, id := range hMsgs {
			infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("s"), []readreceipt.MessageRef{{Conversation: readreceipt.Group("h"), ID: id}})
			require.NoError(t, err)
			require.NoError(t, infos[0].Err, id)
		}
		t.Logf("%s: group h grew to %d members and %d messages across the outage", name, g.Members, len(hMsgs))
		// A call that failed did not hang: it returned within the client's
		// timeouts (dial and read, a few seconds).
		require.Less(t, time.Duration(slowest.Load()), 10*time.Second, "a failing call took %v", time.Duration(slowest.Load()))
		require.Equal(t, int64(len(half)), acks.Load(), "calls succeed again after the restart")
		require.NoError(t, e.Check(ctx), "after %s and restart", name)
		acked, lost := ledger.verify(t, e, "s")
		fc := redis.NewClient(&redis.Options{Addr: srv.Addr})
		fresh := open(fc)
		ackedFresh, lostFresh := ledger.verify(t, fresh, "s")
		require.NoError(t, fresh.Close())
		require.NoError(t, fc.Close())
		t.Logf("%s: %s (slowest failing call %v); receipts acknowledged %d, lost %d (fresh engine: %d, %d)",
			name, fails.String(), time.Duration(slowest.Load()).Round(time.Millisecond), acked, lost, ackedFresh, lostFresh)
		require.Equal(t, len(half)*nMsgs, acked)
		require.Zero(t, lost)
		require.Zero(t, lostFresh)
	}
}

// holdProxy forwards TCP connections to target, and can hold them: while
// held, it forwards nothing either way (what it has read waits in it), as
// a network that has stopped delivering would, while the connections stay
// open; released, it delivers what waited, in order. It stands between a
// master and its replica, to make the replica lag.
type holdProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	release chan struct{} // closed when not held
	conns   []net.Conn
	closed  chan struct{}
}

func startHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &holdProxy{ln: ln, target: target, release: make(chan struct{}), closed: make(chan struct{})}
	close(p.release)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go p.pipe(s, c)
			go p.pipe(c, s)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(p.closed)
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

// hold stops forwarding; unhold resumes it.
func (p *holdProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.release = make(chan struct{})
}

func (p *holdProxy) unhold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.release)
}

func (p *holdProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			release := p.release
			p.mu.Unlock()
			select {
			case <-release:
			case <-p.closed:
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startLaggingPair starts a standalone master and a replica of it whose
// link goes through a holdProxy, and returns once the link is up.
func startLaggingPair(t *testing.T) (master, replica *redistest.Server, proxy *holdProxy) {
	t.Helper()
	master = redistest.Start(t)
	proxy = startHoldProxy(t, master.Addr)
	_, pport, _ := net.SplitHostPort(proxy.ln.Addr().String())
	replica = redistest.Start(t, redistest.Config("replicaof", "127.0.0.1", pport))
	for start := time.Now(); ; {
		info, err := replica.Info("replication")
		if err == nil && info["master_link_status"] == "up" {
			break
		}
		require.Less(t, time.Since(start), 20*time.Second, "replica link not up: %v %v", info, err)
		time.Sleep(50 * time.Millisecond)
	}
	return master, replica, proxy
}

// openEngineAt opens an engine on a standalone Redis at addr, closed when
// the test ends.
func openEngineAt(t *testing.T, addr, prefix string) *readreceipt.Engine {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	e, err := readreceipt.OpenRedis(context.Background(), readreceipt.RedisOptions{Client: c, Prefix: prefix}, readreceipt.WithSweepInterval(0))
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

// TestRedisAlreadyRecordedIsReplicated is about a receipt acknowledged as
// "already recorded" (Recorded false, no error). It must be as durable as
// one acknowledged as Recorded: on a master with a replica, reached that
// replica. The replica is made to lag (its link held by a proxy); a receipt
// sent through one engine is written on the master but not acknowledged
// (no replica in time: ErrUnavailable, as it should). The same receipt
// sent again through a second engine, as a retry through another host
// would be, must not be acknowledged either while the replica lacks it,
// since the master's death and the replica's promotion lose it. (On Redis
// 7.0 the WAIT that follows a function call that wrote nothing still waits
// for the replica to reach the master's offset, so this holds; the test
// keeps it so.)
func TestRedisAlreadyRecordedIsReplicated(t *testing.T) {
	ctx := context.Background()
	master, replica, proxy := startLaggingPair(t)
	const kp = "lag:"
	open := func(addr string) *readreceipt.Engine { return openEngineAt(t, addr, kp) }
	hostA, hostB := open(master.Addr), open(master.Addr)
	require.NoError(t, hostA.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "r1", "r2"}))
	// A group message, read by r1, and a C2C message, read by p.
	msgs := []readreceipt.Message{
		{Conversation: readreceipt.Group("g"), ID: "m", Sender: "s"},
		{Conversation: readreceipt.C2C("s", "p"), ID: "c", Sender: "s"},
	}
	readerOf := []string{"r1", "p"}
	for _, m := range msgs {
		require.NoError(t, hostA.TrackMessage(ctx, m))
	}

	proxy.hold()
	for i, m := range msgs {
		_, err := hostA.SendMessageReadReceipt(ctx, readerOf[i], []readreceipt.MessageRef{m.Ref()})
		require.ErrorIs(t, err, readreceipt.ErrUnavailable, "%s: acknowledged with the replica cut off", m.ID)
	}
	acked := make([]bool, len(msgs))
	for i, m := range msgs {
		res, err := hostB.SendMessageReadReceipt(ctx, readerOf[i], []readreceipt.MessageRef{m.Ref()})
		if err != nil {
			require.ErrorIs(t, err, readreceipt.ErrUnavailable)
			t.Logf("%s: the retry through host B failed: %v", m.ID, err)
			continue
		}
		require.NoError(t, res[0].Err)
		acked[i] = true
		t.Logf("%s: the retry through host B answered Recorded %v, no error: acknowledged", m.ID, res[0].Recorded)
	}

	// The master dies; its replica takes over.
	master.Kill()
	_, err := replica.Do("REPLICAOF", "NO", "ONE")
	require.NoError(t, err)
	fresh := open(replica.Addr)
	for i, m := range msgs {
		infos, err := fresh.GetMessageReadReceiptList(ctx, readreceipt.AsUser("s"), []readreceipt.MessageRef{m.Ref()})
		require.NoError(t, err)
		require.NoError(t, infos[0].Err)
		if acked[i] {
			assert.Equal(t, 1, infos[0].ReadCount, "%s: the receipt of %s was acknowledged and is lost after the master's kill and the replica's promotion", m.ID, readerOf[i])
		}
	}
}

// TestRedisCreateGroupRetried: a CreateGroup that failed with
// ErrUnavailable after its first write (the replica cut off) may have left
// a creation cut short. Retrying it answers ErrUnavailable while that
// creation may still be going on (it is "being created by another call"),
// and then, once the creation has made no progress for its lease, takes
// its place: the group exists, with its members, and is usable.
func TestRedisCreateGroupRetried(t *testing.T) {
	ctx := context.Background()
	master, _, proxy := startLaggingPair(t)
	e := openEngineAt(t, master.Addr, "create:")

	proxy.hold()
	err := e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "a", "b"})
	require.ErrorIs(t, err, readreceipt.ErrUnavailable, "created with the replica cut off")
	proxy.unhold()

	for deadline := time.Now().Add(30 * time.Second); ; {
		err = e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "a", "b"})
		if !errors.Is(err, readreceipt.ErrUnavailable) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		require.ErrorIs(t, err, readreceipt.ErrGroupExists)
	}
	t.Logf("the retried CreateGroup answered %v", err)
	g, gerr := e.GetGroup(ctx, "g")
	require.NoError(t, gerr, "the retried CreateGroup answered %v, and the group is not there", err)
	require.Equal(t, 3, g.Members)
	require.NoError(t, e.TrackMessage(ctx, readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m", Sender: "s"}))
	require.NoError(t, e.Check(ctx))
}

// TestRedisRetriesAfterUnavailable retries, as ErrUnavailable invites,
// calls whose write reached the master but no replica in time (the
// replica's link held): a receipt, a member added, a member removed, a
// message tracked, a group dismissed. Each retry, once the replica is back,
// leaves the state as one successful call would have: the receipt counted
// once, the member in (or out) once, the message tracked once, the group
// gone; and Engine.Check passes.
func TestRedisRetriesAfterUnavailable(t *testing.T) {
	ctx := context.Background()
	master, _, proxy := startLaggingPair(t)
	e := openEngineAt(t, master.Addr, "retry:")
	require.NoError(t, e.CreateGroup(ctx, "g", readreceipt.GroupWork, []string{"s", "a", "b"}))
	require.NoError(t, e.CreateGroup(ctx, "d", readreceipt.GroupWork, []string{"s"}))
	msg := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m", Sender: "s"}
	require.NoError(t, e.TrackMessage(ctx, msg))
	refs := []readreceipt.MessageRef{msg.Ref()}

	// failThenRetry runs call with the replica held (it must fail with
	// ErrUnavailable), then again until it no longer does, and returns the
	// retry's error.
	failThenRetry := func(what string, call func() error) error {
		t.Helper()
		proxy.hold()
		err := call()
		proxy.unhold()
		require.ErrorIs(t, err, readreceipt.ErrUnavailable, "%s with the replica cut off", what)
		for deadline := time.Now().Add(30 * time.Second); ; {
			err = call()
			if !errors.Is(err, readreceipt.ErrUnavailable) || time.Now().After(deadline) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	var res []readreceipt.ReceiptResult
	require.NoError(t, failThenRetry("receipt", func() (err error) {
		res, err = e.SendMessageReadReceipt(ctx, "a", refs)
		return err
	}))
	require.NoError(t, res[0].Err)
	require.False(t, res[0].Recorded, "the retry of an applied receipt answers already recorded")

	require.NoError(t, failThenRetry("add member", func() error { return e.AddGroupMembers(ctx, "g", []string{"c"}) }))
	require.NoError(t, failThenRetry("remove member", func() error { return e.RemoveGroupMembers(ctx, "g", []string{"b"}) }))
	m2 := readreceipt.Message{Conversation: readreceipt.Group("g"), ID: "m2", Sender: "s"}
	require.NoError(t, failThenRetry("track", func() error { return e.TrackMessage(ctx, m2) }))
	err := failThenRetry("dismiss", func() error { return e.DismissGroup(ctx, "d") })
	if err != nil {
		require.ErrorIs(t, err, readreceipt.ErrGroupNotFound)
	}

	g, err := e.GetGroup(ctx, "g")
	require.NoError(t, err)
	require.Equal(t, 3, g.Members, "s, a and c")
	_, err = e.GetGroup(ctx, "d")
	require.ErrorIs(t, err, readreceipt.ErrGroupNotFound)
	infos, err := e.GetMessageReadReceiptList(ctx, readreceipt.AsUser("s"), []readreceipt.MessageRef{msg.Ref(), m2.Ref()})
	require.NoError(t, err)
	require.NoError(t, infos[0].Err)
	require.Equal(t, 1, infos[0].ReadCount)
	require.Equal(t, 1, infos[0].UnreadCount, "m was sent to a and b")
	require.NoError(t, infos[1].Err)
	require.Equal(t, 0, infos[1].ReadCount)
	require.Equal(t, 2, infos[1].UnreadCount, "m2 was sent to a and c")
	// c joined after m, and so is no recipient of it; it is of m2.
	res, err = e.SendMessageReadReceipt(ctx, "c", []readreceipt.MessageRef{msg.Ref(), m2.Ref()})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, readreceipt.ErrNotRecipient)
	require.NoError(t, res[1].Err)
	require.True(t, res[1].Recorded)
	require.NoError(t, e.Check(ctx))
}
