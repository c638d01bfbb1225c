//go:build linux

package readreceipt_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/internal/faults"
)

// The durability test runs this test binary again as a child process
// (TestDurabilityChild) and talks to it through these environment
// variables.
const (
	// crashDirEnv names the engine directory; only the child has it set.
	crashDirEnv = "READRECEIPT_CRASH_DIR"
	// crashStateEnv names the JSON file that holds the parent's model of
	// what the directory contains (crashModel).
	crashStateEnv = "READRECEIPT_CRASH_STATE"
	// crashSeedEnv seeds the child's random choices.
	crashSeedEnv = "READRECEIPT_CRASH_SEED"

	// durabilityRoundsEnv overrides the number of crash rounds of
	// TestDurability (default crashDefaultRounds, 3 under -short).
	durabilityRoundsEnv = "READRECEIPT_DURABILITY_ROUNDS"
	// durabilitySeedEnv fixes the parent's random seed, to replay the
	// choices (not the timing) of a failed run.
	durabilitySeedEnv = "READRECEIPT_DURABILITY_SEED"
	// durabilityNoSyncEnv, set to 1, makes the child open the engine with
	// WithSyncWrites(false), to show what that option gives up: acknowledged
	// writes may then be lost when the process is killed, and the test is
	// expected to fail. The child inherits it.
	durabilityNoSyncEnv = "READRECEIPT_DURABILITY_NOSYNC"
	// durabilityFaultEnv=early-ack makes the child acknowledge receipts
	// before they are durable (faults.EarlyReceiptAck), for
	// TestDurabilityCatchesEarlyAcks.
	durabilityFaultEnv = "READRECEIPT_DURABILITY_FAULT"
	// crashIngestEnv=1 makes the child send every membership write to
	// Pebble's ingestion (store.Ingester), the path of huge groups.
	crashIngestEnv = "READRECEIPT_CRASH_INGEST"
)

const (
	crashDefaultRounds = 25
	crashShortRounds   = 3
	// crashWorkers is the number of goroutines of the child that send
	// receipts. Each owns the readers whose number is its own modulo
	// crashWorkers, so that no two calls in flight ever carry the same
	// (message, reader) receipt and every outcome is predictable.
	crashWorkers = 6
	// crashAdmin is the user number of a sender who is not a member of the
	// group (an administrator's announcement).
	crashAdmin = math.MaxUint32
	// crashPairs is the number of C2C conversations, between users
	// crashFirstPairUser+2i and crashFirstPairUser+2i+1.
	crashPairs         = 4
	crashFirstPairUser = 1_000_000
	crashMaxLiveC2C    = 25
	// crashFirstNewUser is the first user number given to users that join
	// a group after it was created.
	crashFirstNewUser = 3_000_000
	// crashChildLifetime bounds how long a child runs if nobody kills it.
	crashChildLifetime = 3 * time.Minute
)

// crashGroupSpec is one group the child creates: members first..first+n-1.
// maxLive bounds the group's live messages: beyond it, the child deletes
// the oldest one instead of tracking another.
type crashGroupSpec struct {
	id       string
	typ      readreceipt.GroupType
	first, n uint32
	maxLive  int
}

var crashGroupSpecs = []crashGroupSpec{
	{"big", readreceipt.GroupWork, 0, 2000, 8},
	{"team", readreceipt.GroupPublic, 10_000, 8, 25},
	{"meet", readreceipt.GroupMeeting, 20_000, 40, 20},
}

// crashModel is what the engine directory must contain: every group with its
// current members, every live message with its recipients and readers. The
// parent keeps it exact from round to round: it applies the operations the
// child acknowledged, settles the one that may have been in flight at the
// kill by asking the reopened engine, and takes the readers from the
// verified member lists. The child gets it as a JSON file at start.
type crashModel struct {
	NextUser uint32
	NextMsg  int
	Groups   map[string]*crashGroup
	Msgs     map[string]*crashMsg
}

// crashGroup is a group of the model. Users are numbers; user n is "u<n>".
type crashGroup struct {
	Type    readreceipt.GroupType
	Members []uint32 // current members, ascending
	Former  []uint32 // removed members who have not rejoined, ascending
	Version uint64   // as GetGroup reports it
}

// crashMsg is a live message of the model.
type crashMsg struct {
	Seq        int
	Group      string    `json:",omitempty"` // "" for C2C
	Pair       [2]uint32 `json:",omitempty"` // the C2C users
	Sender     uint32
	Recipients []uint32 // ascending
	Readers    []uint32 // ascending
}

// crashOp is a change of the model that the child makes through the
// engine: "create", "add", "remove" (group membership), "track" or
// "delete" (a message). Seq numbers the child's operations; it makes them
// one at a time, so at most the last one is in doubt after a kill.
type crashOp struct {
	Seq    int
	Kind   string
	Group  string                `json:",omitempty"`
	Pair   [2]uint32             `json:",omitempty"`
	Type   readreceipt.GroupType `json:",omitempty"`
	Users  []uint32              `json:",omitempty"`
	Msg    string                `json:",omitempty"`
	MsgSeq int                   `json:",omitempty"`
	Sender uint32                `json:",omitempty"`
}

// crashReceiptIntent is written before a SendMessageReadReceipt call: the
// reader and the messages whose receipt the call may record.
type crashReceiptIntent struct {
	Call   string
	Reader uint32
	Msgs   []string
}

// crashReceiptAck is written after the call returned: the messages whose
// receipt it recorded (New) or found already recorded (Old).
type crashReceiptAck struct {
	Call string
	New  []string `json:",omitempty"`
	Old  []string `json:",omitempty"`
}

func newCrashModel() *crashModel {
	return &crashModel{
		NextUser: crashFirstNewUser,
		Groups:   map[string]*crashGroup{},
		Msgs:     map[string]*crashMsg{},
	}
}

func crashUser(u uint32) string {
	if u == crashAdmin {
		return "admin"
	}
	return "u" + strconv.FormatUint(uint64(u), 10)
}

func crashUsers(us []uint32) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = crashUser(u)
	}
	return out
}

func crashParseUser(s string) (uint32, error) {
	n, ok := strings.CutPrefix(s, "u")
	if !ok {
		return 0, fmt.Errorf("unexpected user ID %q", s)
	}
	v, err := strconv.ParseUint(n, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("unexpected user ID %q", s)
	}
	return uint32(v), nil
}

func crashConv(group string, pair [2]uint32) readreceipt.Conversation {
	if group != "" {
		return readreceipt.Group(group)
	}
	return readreceipt.C2C(crashUser(pair[0]), crashUser(pair[1]))
}

func crashConvKey(group string, pair [2]uint32) string {
	if group != "" {
		return "g:" + group
	}
	return fmt.Sprintf("c:%d:%d", pair[0], pair[1])
}

func (m *crashMsg) conv() readreceipt.Conversation { return crashConv(m.Group, m.Pair) }
func (m *crashMsg) convKey() string                { return crashConvKey(m.Group, m.Pair) }

func (op *crashOp) conv() readreceipt.Conversation { return crashConv(op.Group, op.Pair) }
func (op *crashOp) convKey() string                { return crashConvKey(op.Group, op.Pair) }

// crashUnion returns the ascending union of two ascending lists.
func crashUnion(a, b []uint32) []uint32 {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// crashMinus returns the members of ascending list a not in b.
func crashMinus(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a))
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}

// crashSorted returns us ascending, without repeats.
func crashSorted(us []uint32) []uint32 {
	out := slices.Clone(us)
	slices.Sort(out)
	return slices.Compact(out)
}

// reserve moves the model's counters past the IDs op uses, applied or not,
// so that no later round reuses them.
func (m *crashModel) reserve(op crashOp) {
	for _, u := range op.Users {
		if u >= crashFirstNewUser && u >= m.NextUser {
			m.NextUser = u + 1
		}
	}
	if op.Kind == "track" && op.MsgSeq >= m.NextMsg {
		m.NextMsg = op.MsgSeq + 1
	}
}

// apply changes the model as op changed the engine.
func (m *crashModel) apply(op crashOp) error {
	m.reserve(op)
	var g *crashGroup
	if op.Kind != "create" && op.Group != "" {
		if g = m.Groups[op.Group]; g == nil {
			return fmt.Errorf("op %d (%s): no group %q in the model", op.Seq, op.Kind, op.Group)
		}
	}
	switch op.Kind {
	case "create":
		if m.Groups[op.Group] != nil {
			return fmt.Errorf("op %d: group %q created twice", op.Seq, op.Group)
		}
		m.Groups[op.Group] = &crashGroup{Type: op.Type, Members: crashSorted(op.Users), Version: 1}
	case "add":
		g.Members = crashUnion(g.Members, crashSorted(op.Users))
		g.Former = crashMinus(g.Former, crashSorted(op.Users))
		g.Version++
	case "remove":
		g.Members = crashMinus(g.Members, crashSorted(op.Users))
		g.Former = crashUnion(g.Former, crashSorted(op.Users))
		g.Version++
	case "track":
		if m.Msgs[op.Msg] != nil {
			return fmt.Errorf("op %d: message %q tracked twice", op.Seq, op.Msg)
		}
		msg := &crashMsg{Seq: op.MsgSeq, Group: op.Group, Pair: op.Pair, Sender: op.Sender}
		if g != nil {
			msg.Recipients = crashMinus(g.Members, []uint32{op.Sender})
		} else if op.Sender == op.Pair[0] {
			msg.Recipients = []uint32{op.Pair[1]}
		} else {
			msg.Recipients = []uint32{op.Pair[0]}
		}
		m.Msgs[op.Msg] = msg
	case "delete":
		if m.Msgs[op.Msg] == nil {
			return fmt.Errorf("op %d: deleting message %q, not in the model", op.Seq, op.Msg)
		}
		delete(m.Msgs, op.Msg)
	default:
		return fmt.Errorf("op %d: unknown kind %q", op.Seq, op.Kind)
	}
	return nil
}

// TestDurability checks the durability promise of the contract under
// crashes: a receipt that SendMessageReadReceipt acknowledged survives the
// process being killed with SIGKILL, and after a reopen the counts agree
// with the member lists.
//
// Each round starts the test binary again as a child process
// (TestDurabilityChild) on one engine directory, with default options. The
// child creates a few groups (one of 2,000 members) if they are missing and
// then loads the engine: six goroutines send receipts for group and C2C
// messages, in batches that mix new receipts, repeated ones and refused
// ones, while one more goroutine tracks and deletes messages and adds and
// removes group members. The child writes each call it is about to make,
// and each call that returned success, as a line to a pipe (fd 3) whose
// writes the kernel keeps when the child dies. The parent kills the child
// at a random moment: a random delay after it has acknowledged a random
// number of receipts, or, in every fifth round (and sometimes the first),
// a random delay after its start, so that kills also land while the engine
// opens or the groups are created.
//
// The parent then reopens the directory and verifies, message by message,
// through the public API: every acknowledged receipt is on the read member
// list (IsPeerRead for C2C); no reader is there that no call ever tried;
// read and unread lists are disjoint and together are exactly the
// recipients; the read and unread counts equal the lists' lengths and add
// up to the recipients; deleted messages answer 10062; group member counts
// and versions are right; and Engine.Check finds no broken invariant. State
// accumulates over the rounds, so later rounds also test that an engine
// reopened after a crash keeps working and that receipts survive several
// crashes.
//
// READRECEIPT_DURABILITY_ROUNDS sets the number of rounds (default 25, 3
// with -short); READRECEIPT_DURABILITY_SEED replays a run's random choices;
// READRECEIPT_DURABILITY_NOSYNC=1 runs the child with WithSyncWrites(false).
// The test needs Linux (the child dies with the parent through Pdeathsig).
func TestDurability(t *testing.T) {
	rounds := crashDefaultRounds
	if testing.Short() {
		rounds = crashShortRounds
	}
	if s := os.Getenv(durabilityRoundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number", durabilityRoundsEnv, s)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(durabilitySeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", durabilitySeedEnv, s, err)
		}
		seed = v
	}
	t.Logf("%d rounds, seed %d (%s=%d replays the choices)", rounds, seed, durabilitySeedEnv, seed)
	if os.Getenv(durabilityNoSyncEnv) == "1" {
		t.Logf("%s=1: the child writes with WithSyncWrites(false)", durabilityNoSyncEnv)
	}

	base := t.TempDir()
	p := &crashParent{
		t:     t,
		db:    filepath.Join(base, "db"),
		state: filepath.Join(base, "state.json"),
		model: newCrashModel(),
		rng:   rand.New(rand.NewPCG(seed, 0x5eed)),
	}
	var total crashRoundStats
	killsAfterAcks, normalRounds, inFlightKills := 0, 0, 0
	start := time.Now()
	for r := range rounds {
		st := p.round(r)
		if t.Failed() {
			return
		}
		total.add(st)
		if !st.early {
			normalRounds++
		}
		if st.acked > 0 {
			killsAfterAcks++
		}
		if st.inFlightCalls > 0 {
			inFlightKills++
		}
	}
	t.Logf("total: %d rounds in %v; %d receipts acknowledged (%d new, %d repeated), %d of them verified after the kill, %d on messages deleted later in their round; %d receipt calls in flight at kills, %d of their receipts landed; %d refused receipts checked; %d mutations acknowledged, %d in doubt at a kill; %d messages, %d readers at the end",
		rounds, time.Since(start).Round(time.Millisecond), total.acked, total.ackedNew, total.ackedOld,
		total.verified, total.ackedGone, total.inFlightCalls, total.landed, total.refused,
		total.mutations, total.inDoubt, len(p.model.Msgs), p.model.readers())
	t.Logf("kills after at least one acknowledged receipt: %d of %d (%d rounds waited for receipts); kills with a receipt call in flight: %d",
		killsAfterAcks, rounds, normalRounds, inFlightKills)

	// The test means something only if the kills hit a loaded engine.
	if killsAfterAcks < normalRounds || killsAfterAcks*2 < rounds {
		t.Errorf("only %d of %d kills came after acknowledged receipts", killsAfterAcks, rounds)
	}
	if rounds >= 10 && inFlightKills == 0 {
		t.Errorf("no kill came while a receipt call was in flight")
	}
	if total.verified == 0 {
		t.Errorf("no acknowledged receipt was verified")
	}
}

// TestDurabilityCatchesEarlyAcks checks that TestDurability fails when
// the receipt path acknowledges too early: it runs TestDurability (3
// rounds) in a child process whose engines acknowledge receipts before
// they are durable (faults.EarlyReceiptAck: receipts reach the store only
// when the receipt log is folded), and wants it to report acknowledged
// receipts lost.
func TestDurabilityCatchesEarlyAcks(t *testing.T) {
	if os.Getenv(durabilityFaultEnv) != "" || os.Getenv(crashDirEnv) != "" {
		t.Skip("in a child")
	}
	if testing.Short() {
		t.Skip("runs TestDurability again")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurability$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), durabilityFaultEnv+"=early-ack", durabilityRoundsEnv+"=3")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("TestDurability passed although its engines acknowledged receipts before they were durable:\n%s", crashTail(string(out)))
	}
	if !strings.Contains(string(out), "LOST: ") {
		t.Fatalf("TestDurability failed, but not by finding acknowledged receipts lost:\n%s", crashTail(string(out)))
	}
}

// crashParent runs the rounds of TestDurability.
type crashParent struct {
	t     *testing.T
	db    string // the engine directory
	state string // the model file handed to the child
	model *crashModel
	rng   *rand.Rand
	// children counts the children started: every other one ingests its
	// membership writes (crashIngestEnv), so kills hit both paths.
	children int
}

// crashRoundStats counts what one round (or all) did.
type crashRoundStats struct {
	early         bool // killed at a random moment after start
	acked         int  // receipts acknowledged
	ackedNew      int  // ... that the call recorded
	ackedOld      int  // ... that were already recorded
	verified      int  // acknowledged receipts checked after the kill
	ackedGone     int  // acknowledged receipts of messages deleted later
	refused       int  // receipts the engine refused as expected
	inFlightCalls int  // receipt calls started and not acknowledged
	landed        int  // receipts of those calls found recorded
	mutations     int  // mutations acknowledged
	inDoubt       int  // mutations in flight at the kill
}

func (s *crashRoundStats) add(o crashRoundStats) {
	s.acked += o.acked
	s.ackedNew += o.ackedNew
	s.ackedOld += o.ackedOld
	s.verified += o.verified
	s.ackedGone += o.ackedGone
	s.refused += o.refused
	s.inFlightCalls += o.inFlightCalls
	s.landed += o.landed
	s.mutations += o.mutations
	s.inDoubt += o.inDoubt
}

func (m *crashModel) readers() int {
	n := 0
	for _, msg := range m.Msgs {
		n += len(msg.Readers)
	}
	return n
}

// crashLog is what the parent read from a child's pipe.
type crashLog struct {
	ready      bool
	ops        []crashOp
	opAcked    map[int]bool
	intents    map[string]crashReceiptIntent
	acks       map[string]crashReceiptAck
	refused    int
	violations []string
}

// parse takes one complete line of the child's log.
func (l *crashLog) parse(line string) error {
	tag, rest, _ := strings.Cut(line, " ")
	switch tag {
	case "READY":
		l.ready = true
	case "M?":
		var op crashOp
		if err := json.Unmarshal([]byte(rest), &op); err != nil {
			return fmt.Errorf("bad line %q: %v", line, err)
		}
		l.ops = append(l.ops, op)
	case "M!":
		seq, err := strconv.Atoi(rest)
		if err != nil {
			return fmt.Errorf("bad line %q: %v", line, err)
		}
		l.opAcked[seq] = true
	case "R?":
		var in crashReceiptIntent
		if err := json.Unmarshal([]byte(rest), &in); err != nil {
			return fmt.Errorf("bad line %q: %v", line, err)
		}
		l.intents[in.Call] = in
	case "R!":
		var ack crashReceiptAck
		if err := json.Unmarshal([]byte(rest), &ack); err != nil {
			return fmt.Errorf("bad line %q: %v", line, err)
		}
		if _, ok := l.intents[ack.Call]; !ok {
			return fmt.Errorf("acknowledgement of call %s that never started", ack.Call)
		}
		l.acks[ack.Call] = ack
	case "N":
		n, err := strconv.Atoi(rest)
		if err != nil {
			return fmt.Errorf("bad line %q: %v", line, err)
		}
		l.refused += n
	case "E":
		l.violations = append(l.violations, rest)
	default:
		return fmt.Errorf("unknown line %q", line)
	}
	return nil
}

func (l *crashLog) receiptsAcked() (n int) {
	for _, a := range l.acks {
		n += len(a.New) + len(a.Old)
	}
	return n
}

// round runs one child, kills it and verifies the directory.
func (p *crashParent) round(r int) crashRoundStats {
	t := p.t
	started := time.Now()
	// Every fifth round, and a third of the time the first one (which
	// creates the groups), kill at a random moment after the start.
	st := crashRoundStats{early: r%5 == 4 || r == 0 && p.rng.IntN(3) == 0}
	log, killedAfter := p.runChild(st.early)
	if t.Failed() {
		return st
	}
	st.refused = log.refused
	for _, v := range log.violations[:min(len(log.violations), 20)] {
		t.Errorf("round %d: child saw: %s", r, v)
	}
	if len(log.violations) > 0 {
		t.Fatalf("round %d: %d contract violations seen by the child", r, len(log.violations))
	}
	p.verify(r, log, &st)
	if t.Failed() {
		return st
	}
	mode := "after receipts"
	if st.early {
		mode = "after start"
	}
	t.Logf("round %2d: killed %-14s at %4dms (ready=%v); receipts acked %4d (%d new, %d repeated), verified %4d; calls in flight %d, receipts landed %d; mutations %d, in doubt %d; %d messages, %d readers; round took %v",
		r, mode, killedAfter.Milliseconds(), log.ready, st.acked, st.ackedNew, st.ackedOld, st.verified,
		st.inFlightCalls, st.landed, st.mutations, st.inDoubt, len(p.model.Msgs), p.model.readers(),
		time.Since(started).Round(time.Millisecond))
	return st
}

// runChild starts a child on the directory, kills it with SIGKILL and
// returns its log and how long after its start it was killed.
func (p *crashParent) runChild(early bool) (*crashLog, time.Duration) {
	t := p.t
	state, err := json.Marshal(p.model)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.state, state, 0o644); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashDirEnv+"="+p.db,
		crashStateEnv+"="+p.state,
		fmt.Sprintf("%s=%d", crashSeedEnv, p.rng.Uint64()),
		fmt.Sprintf("%s=%d", crashIngestEnv, p.children%2))
	p.children++
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	cmd.ExtraFiles = []*os.File{pw} // fd 3 in the child
	// The child dies with the parent, should the test binary be killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		t.Fatal(err)
	}
	pw.Close()
	started := time.Now()

	lines := make(chan string, 4096)
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(pr, 1<<16)
		for {
			s, err := br.ReadString('\n')
			if err != nil {
				return // a line cut short by the kill was never acknowledged
			}
			lines <- strings.TrimSuffix(s, "\n")
		}
	}()
	waited := false
	defer func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		pr.Close()
		for range lines {
		}
	}()

	log := &crashLog{
		opAcked: map[int]bool{},
		intents: map[string]crashReceiptIntent{},
		acks:    map[string]crashReceiptAck{},
	}
	var kill <-chan time.Time
	// The kill timer starts once the child has acknowledged need receipts;
	// an early kill starts it at the child's start (window 30ms: while it
	// starts and opens the store; 400ms: anywhere) or as soon as it is
	// ready (window 10ms: while it creates the groups, in the first round).
	need, window := 1+p.rng.IntN(200), 250
	if early {
		need = 0
		switch p.rng.IntN(3) {
		case 0:
			window = 30
		case 1:
			window = 400
		default:
			need, window = -1, 10
		}
	}
	if need == 0 {
		kill = time.After(time.Duration(p.rng.IntN(window)) * time.Millisecond)
	}
	deadline := time.After(2 * time.Minute)
	acked := 0
	var killedAfter time.Duration
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				waited = true
				t.Fatalf("child exited before it was killed (%v); its output:\n%s", cmd.ProcessState, crashTail(output.String()))
			}
			if err := log.parse(line); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "R! ") {
				acked = log.receiptsAcked()
			}
			if kill == nil && (need < 0 && log.ready || need > 0 && acked >= need) {
				kill = time.After(time.Duration(p.rng.IntN(window)) * time.Millisecond)
			}
		case <-kill:
			break wait
		case <-deadline:
			t.Fatalf("child acknowledged %d receipts in 2 minutes, waiting for %d; its output:\n%s", acked, need, crashTail(output.String()))
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAfter = time.Since(started)
	for line := range lines {
		if err := log.parse(line); err != nil {
			t.Fatal(err)
		}
	}
	_ = cmd.Wait()
	waited = true
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by the kill; its output:\n%s", cmd.ProcessState, crashTail(output.String()))
	}
	if out := output.String(); strings.Contains(out, "DATA RACE") || strings.Contains(out, "panic:") {
		t.Fatalf("child failed:\n%s", crashTail(out))
	}
	return log, killedAfter
}

// crashTail returns the end of a child's output, for failure messages.
func crashTail(s string) string {
	const max = 8000
	if len(s) > max {
		return "..." + s[len(s)-max:]
	}
	return s
}

// verify settles the round's log into the model and checks the reopened
// directory against it.
func (p *crashParent) verify(r int, log *crashLog, st *crashRoundStats) {
	t := p.t
	ctx := context.Background()

	// Mutations: all acknowledged but perhaps the last.
	var doubt *crashOp
	var deleted []crashOp
	for i, op := range log.ops {
		p.model.reserve(op)
		if !log.opAcked[op.Seq] {
			if i != len(log.ops)-1 {
				t.Fatalf("round %d: mutation %d was never acknowledged, yet later ones ran", r, op.Seq)
			}
			doubt = &log.ops[i]
			break
		}
		st.mutations++
		if op.Kind == "delete" {
			deleted = append(deleted, op)
		}
		if err := p.model.apply(op); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
	}

	eng, err := readreceipt.OpenDir(p.db)
	if err != nil {
		t.Fatalf("round %d: reopen after the kill: %v", r, err)
	}
	defer func() {
		if err := eng.Close(); err != nil {
			t.Errorf("round %d: close: %v", r, err)
		}
	}()

	if doubt != nil {
		st.inDoubt++
		applied, err := p.settle(ctx, eng, *doubt)
		if err != nil {
			t.Fatalf("round %d: in-doubt %s: %v", r, doubt.Kind, err)
		}
		if applied {
			if doubt.Kind == "delete" {
				deleted = append(deleted, *doubt)
			}
			if err := p.model.apply(*doubt); err != nil {
				t.Fatalf("round %d: %v", r, err)
			}
		}
	}

	// Receipts: those acknowledged must be there; those merely started may.
	must := map[string]map[uint32]bool{}
	maybe := map[string]map[uint32]bool{}
	mark := func(m map[string]map[uint32]bool, id string, u uint32) {
		if m[id] == nil {
			m[id] = map[uint32]bool{}
		}
		m[id][u] = true
	}
	for call, in := range log.intents {
		for _, id := range in.Msgs {
			mark(maybe, id, in.Reader)
		}
		ack, ok := log.acks[call]
		if !ok {
			st.inFlightCalls++
			continue
		}
		st.ackedNew += len(ack.New)
		st.ackedOld += len(ack.Old)
		for _, id := range slices.Concat(ack.New, ack.Old) {
			if !slices.Contains(in.Msgs, id) {
				t.Fatalf("round %d: call %s acknowledged %s, which it did not carry", r, call, id)
			}
			st.acked++
			if p.model.Msgs[id] == nil {
				st.ackedGone++
				continue
			}
			st.verified++
			mark(must, id, in.Reader)
		}
	}

	p.verifyMessages(ctx, r, eng, must, maybe, st)
	for _, op := range deleted {
		infos, err := eng.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{{Conversation: op.conv(), ID: op.Msg}})
		if err != nil {
			t.Errorf("round %d: counts of deleted %s: %v", r, op.Msg, err)
		} else if !errors.Is(infos[0].Err, readreceipt.ErrReceiptNotFound) {
			t.Errorf("round %d: deleted message %s answers %+v, want 10062", r, op.Msg, infos[0])
		}
	}
	for gid, g := range p.model.Groups {
		info, err := eng.GetGroup(ctx, gid)
		if err != nil {
			t.Errorf("round %d: group %s: %v", r, gid, err)
			continue
		}
		if info.Members != len(g.Members) || info.Version != g.Version || info.Type != g.Type {
			t.Errorf("round %d: group %s is %+v, want %d members at version %d", r, gid, info, len(g.Members), g.Version)
		}
	}
	if err := eng.Check(ctx); err != nil {
		t.Errorf("round %d: Check after the kill: %v", r, err)
	}
}

// settle finds out whether the mutation in flight at the kill took effect.
func (p *crashParent) settle(ctx context.Context, eng *readreceipt.Engine, op crashOp) (bool, error) {
	switch op.Kind {
	case "create":
		info, err := eng.GetGroup(ctx, op.Group)
		if errors.Is(err, readreceipt.ErrGroupNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if info.Version != 1 || info.Members != len(crashSorted(op.Users)) {
			return false, fmt.Errorf("group half created: %+v", info)
		}
		return true, nil
	case "add", "remove":
		g := p.model.Groups[op.Group]
		info, err := eng.GetGroup(ctx, op.Group)
		if err != nil {
			return false, err
		}
		switch info.Version {
		case g.Version:
			return false, nil
		case g.Version + 1:
			return true, nil
		}
		return false, fmt.Errorf("group %s at version %d, model has %d", op.Group, info.Version, g.Version)
	case "track", "delete":
		infos, err := eng.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), []readreceipt.MessageRef{{Conversation: op.conv(), ID: op.Msg}})
		if err != nil {
			return false, err
		}
		found := infos[0].Err == nil
		if !found && !errors.Is(infos[0].Err, readreceipt.ErrReceiptNotFound) {
			return false, infos[0].Err
		}
		if found && op.Kind == "track" && infos[0].ReadCount != 0 {
			return false, fmt.Errorf("message %s was never acknowledged yet has %d readers", op.Msg, infos[0].ReadCount)
		}
		return found == (op.Kind == "track"), nil
	}
	return false, fmt.Errorf("unknown kind %q", op.Kind)
}

// verifyMessages checks every message of the model in the reopened engine
// and takes its readers from the engine.
func (p *crashParent) verifyMessages(ctx context.Context, r int, eng *readreceipt.Engine, must, maybe map[string]map[uint32]bool, st *crashRoundStats) {
	t := p.t
	byConv := map[string][]string{}
	for id, m := range p.model.Msgs {
		byConv[m.convKey()] = append(byConv[m.convKey()], id)
	}
	bad := 0
	fail := func(format string, args ...any) {
		bad++
		if bad <= 30 {
			t.Errorf("round %d: "+format, append([]any{r}, args...)...)
		}
	}
	for _, ids := range byConv {
		slices.Sort(ids)
		refs := make([]readreceipt.MessageRef, len(ids))
		for i, id := range ids {
			refs[i] = readreceipt.MessageRef{Conversation: p.model.Msgs[id].conv(), ID: id}
		}
		infos, err := eng.GetMessageReadReceiptList(ctx, readreceipt.AsAdmin(), refs)
		if err != nil {
			t.Fatalf("round %d: counts: %v", r, err)
		}
		for i, id := range ids {
			m, info := p.model.Msgs[id], infos[i]
			if info.Err != nil {
				fail("message %s: %v", id, info.Err)
				continue
			}
			if info.ReadCount+info.UnreadCount != len(m.Recipients) {
				fail("message %s: read %d + unread %d != %d recipients", id, info.ReadCount, info.UnreadCount, len(m.Recipients))
			}
			actual, err := p.readersOf(ctx, eng, m, refs[i], info)
			if err != nil {
				fail("message %s: %v", id, err)
				continue
			}
			for u := range must[id] {
				if _, ok := slices.BinarySearch(actual, u); !ok {
					fail("LOST: message %s: receipt of %s was acknowledged before the kill and is gone", id, crashUser(u))
				}
			}
			for _, u := range actual {
				_, before := slices.BinarySearch(m.Readers, u)
				if !before && !maybe[id][u] {
					fail("message %s: %s is a reader, but no call ever sent that receipt", id, crashUser(u))
				}
				if !before && maybe[id][u] && !must[id][u] {
					st.landed++
				}
			}
			m.Readers = actual
		}
	}
	if bad > 30 {
		t.Errorf("round %d: ... %d problems in all", r, bad)
	}
}

// readersOf returns the readers of a message as the engine lists them,
// checking the lists against each other, the counts and the recipients.
func (p *crashParent) readersOf(ctx context.Context, eng *readreceipt.Engine, m *crashMsg, ref readreceipt.MessageRef, info readreceipt.ReceiptInfo) ([]uint32, error) {
	if m.Group == "" {
		if info.IsPeerRead != (info.ReadCount == 1) || info.ReadCount > 1 {
			return nil, fmt.Errorf("C2C counts %+v", info)
		}
		if info.IsPeerRead {
			return slices.Clone(m.Recipients), nil
		}
		return nil, nil
	}
	caller := readreceipt.AsUser(crashUser(m.Sender))
	read, err := crashWalk(ctx, eng, caller, ref, readreceipt.FilterRead, 20+p.rng.IntN(81))
	if err != nil {
		return nil, fmt.Errorf("read list: %v", err)
	}
	unread, err := crashWalk(ctx, eng, caller, ref, readreceipt.FilterUnread, 20+p.rng.IntN(81))
	if err != nil {
		return nil, fmt.Errorf("unread list: %v", err)
	}
	if len(read) != info.ReadCount || len(unread) != info.UnreadCount {
		return nil, fmt.Errorf("lists have %d read and %d unread members, counts say %d and %d", len(read), len(unread), info.ReadCount, info.UnreadCount)
	}
	all := slices.Concat(read, unread)
	slices.Sort(all)
	if n := len(all); len(slices.Compact(all)) != n {
		return nil, fmt.Errorf("a member is listed twice (read %d, unread %d)", len(read), len(unread))
	}
	if !slices.Equal(all, m.Recipients) {
		return nil, fmt.Errorf("read and unread lists (%d members) are not the %d recipients", len(all), len(m.Recipients))
	}
	slices.Sort(read)
	return read, nil
}

// crashWalk pages through a member list.
func crashWalk(ctx context.Context, eng *readreceipt.Engine, caller readreceipt.Caller, ref readreceipt.MessageRef, filter readreceipt.MemberFilter, count int) ([]uint32, error) {
	var out []uint32
	cursor := ""
	for pages := 0; pages < 100_000; pages++ {
		page, err := eng.GetGroupMessageReadMemberList(ctx, caller, readreceipt.MemberListRequest{Message: ref, Filter: filter, Cursor: cursor, Count: count})
		if err != nil {
			return nil, err
		}
		list := page.ReadUserIDList
		if filter == readreceipt.FilterUnread {
			list = page.UnreadUserIDList
		}
		if len(list) > count {
			return nil, fmt.Errorf("page of %d members, asked for %d", len(list), count)
		}
		for _, s := range list {
			u, err := crashParseUser(s)
			if err != nil {
				return nil, err
			}
			out = append(out, u)
		}
		if page.IsCompleted {
			return out, nil
		}
		cursor = page.Cursor
	}
	return nil, errors.New("member list does not end")
}

// TestDurabilityChild is the child process of TestDurability; run on its
// own it skips. It loads the engine until it is killed.
func TestDurabilityChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestDurability")
	}
	if err := runCrashChild(dir); err != nil {
		fmt.Fprintln(os.Stderr, "durability child:", err)
		os.Exit(2)
	}
}

// crashChild is the state of a child process.
type crashChild struct {
	eng *readreceipt.Engine
	log *os.File

	mu     sync.Mutex
	model  *crashModel
	live   []*crashLive            // live messages, oldest first
	byConv map[string][]*crashLive // the same by conversation
	byID   map[string]*crashLive
}

// crashLive is a live message in the child.
type crashLive struct {
	id       string
	msg      *crashMsg
	recips   map[uint32]bool
	readers  map[uint32]bool
	deleting bool // a DeleteMessage of it may be in flight
}

func runCrashChild(dir string) error {
	raw, err := os.ReadFile(os.Getenv(crashStateEnv))
	if err != nil {
		return err
	}
	model := newCrashModel()
	if err := json.Unmarshal(raw, model); err != nil {
		return err
	}
	seed, err := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	if err != nil {
		return err
	}
	logFile := os.NewFile(3, "crash-log")
	if logFile == nil {
		return errors.New("no fd 3")
	}
	var opts []readreceipt.Option
	if os.Getenv(durabilityNoSyncEnv) == "1" {
		opts = append(opts, readreceipt.WithSyncWrites(false))
	}
	if os.Getenv(durabilityFaultEnv) == "early-ack" {
		faults.EarlyReceiptAck.Store(true)
	}
	if os.Getenv(crashIngestEnv) == "1" {
		readreceipt.SetIngestBytes(0)
	}
	eng, err := readreceipt.OpenDir(dir, opts...)
	if err != nil {
		return err
	}
	c := &crashChild{eng: eng, log: logFile, model: model, byConv: map[string][]*crashLive{}, byID: map[string]*crashLive{}}
	ids := make([]string, 0, len(model.Msgs))
	for id := range model.Msgs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return model.Msgs[a].Seq - model.Msgs[b].Seq })
	for _, id := range ids {
		c.addLive(id)
	}
	eng.Subscribe(c.checkEvents)
	c.emit("READY")

	ctx := context.Background()
	for w := range crashWorkers {
		go c.receiptWorker(ctx, w, rand.New(rand.NewPCG(seed, uint64(w)+1)))
	}
	go c.mutator(ctx, rand.New(rand.NewPCG(seed, 0)))
	time.Sleep(crashChildLifetime)
	return errors.New("not killed in time")
}

// emit writes one line to the parent. The pipe is unbuffered here: once
// Write returns, the line is the kernel's and outlives the process.
func (c *crashChild) emit(line string) {
	if _, err := c.log.Write([]byte(line + "\n")); err != nil {
		os.Exit(3) // the parent is gone
	}
}

func (c *crashChild) emitJSON(tag string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	c.emit(tag + " " + string(b))
}

// violation reports a broken promise of the engine to the parent.
func (c *crashChild) violation(format string, args ...any) {
	c.emit("E " + strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " "))
}

// addLive makes a message of the model pickable; the caller holds c.mu (or
// is alone).
func (c *crashChild) addLive(id string) {
	m := c.model.Msgs[id]
	l := &crashLive{id: id, msg: m, recips: map[uint32]bool{}, readers: map[uint32]bool{}}
	for _, u := range m.Recipients {
		l.recips[u] = true
	}
	for _, u := range m.Readers {
		l.readers[u] = true
	}
	c.live = append(c.live, l)
	c.byConv[m.convKey()] = append(c.byConv[m.convKey()], l)
	c.byID[id] = l
}

func (c *crashChild) removeLive(id string) {
	l := c.byID[id]
	delete(c.byID, id)
	drop := func(s []*crashLive) []*crashLive {
		return slices.DeleteFunc(s, func(x *crashLive) bool { return x == l })
	}
	c.live = drop(c.live)
	k := l.msg.convKey()
	c.byConv[k] = drop(c.byConv[k])
}

// checkEvents checks the counts that receipt events carry.
func (c *crashChild) checkEvents(evs []readreceipt.ReceiptEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		l := c.byID[ev.MessageID]
		if l == nil {
			continue // deleted meanwhile
		}
		u, err := crashParseUser(ev.Reader)
		if err != nil || !l.recips[u] {
			c.violation("event for %s names reader %q, not a recipient", ev.MessageID, ev.Reader)
		}
		if ev.ReadCount < 1 || ev.ReadCount+ev.UnreadCount != len(l.msg.Recipients) || ev.Sender != crashUser(l.msg.Sender) {
			c.violation("event %+v for a message with %d recipients", ev, len(l.msg.Recipients))
		}
	}
}

// crashExpect is what a receipt call must answer for one of its messages.
type crashExpect uint8

const (
	crashExpectNew     crashExpect = iota // an unread recipient: must be recorded
	crashExpectOld                        // a recipient who has read it: must be "already read"
	crashExpectRefused                    // not a recipient (or the sender): must be refused
)

// crashBatch is one SendMessageReadReceipt call.
type crashBatch struct {
	reader uint32
	msgs   []*crashLive
	expect []crashExpect
}

// pick chooses the next receipt call of worker w: a reader the worker owns
// and 1..6 messages of one conversation.
func (c *crashChild) pick(w int, rng *rand.Rand) (crashBatch, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.live) == 0 {
		return crashBatch{}, false
	}
	first := c.live[rng.IntN(len(c.live))]
	if first.deleting {
		return crashBatch{}, false
	}
	exp := crashExpectNew
	reader, ok := uint32(0), false
	if rng.IntN(10) == 0 {
		exp = crashExpectOld
		reader, ok = c.pickReader(first, w, true, rng)
	}
	if !ok {
		exp = crashExpectNew
		if reader, ok = c.pickReader(first, w, false, rng); !ok {
			return crashBatch{}, false
		}
	}
	b := crashBatch{reader: reader, msgs: []*crashLive{first}, expect: []crashExpect{exp}}
	size := 1 + rng.IntN(6)
	refused := false
	others := c.byConv[first.msg.convKey()]
	for _, i := range rng.Perm(len(others)) {
		if len(b.msgs) >= size {
			break
		}
		l := others[i]
		if l == first || l.deleting {
			continue
		}
		switch {
		case l.recips[reader] && !l.readers[reader]:
			b.msgs, b.expect = append(b.msgs, l), append(b.expect, crashExpectNew)
		case l.recips[reader] && rng.IntN(10) == 0:
			b.msgs, b.expect = append(b.msgs, l), append(b.expect, crashExpectOld)
		case !l.recips[reader] && !refused && rng.IntN(3) == 0:
			b.msgs, b.expect = append(b.msgs, l), append(b.expect, crashExpectRefused)
			refused = true
		}
	}
	rng.Shuffle(len(b.msgs), func(i, j int) {
		b.msgs[i], b.msgs[j] = b.msgs[j], b.msgs[i]
		b.expect[i], b.expect[j] = b.expect[j], b.expect[i]
	})
	return b, true
}

// pickReader picks a recipient of l owned by worker w who has (read) or has
// not (!read) read it.
func (c *crashChild) pickReader(l *crashLive, w int, read bool, rng *rand.Rand) (uint32, bool) {
	owned := func(u uint32) bool { return int(u%crashWorkers) == w }
	rs := l.msg.Recipients
	if !read && len(rs) > 64 {
		for range 32 {
			if u := rs[rng.IntN(len(rs))]; owned(u) && !l.readers[u] {
				return u, true
			}
		}
		return 0, false
	}
	var cands []uint32
	for _, u := range rs {
		if owned(u) && l.readers[u] == read {
			cands = append(cands, u)
		}
	}
	if len(cands) == 0 {
		return 0, false
	}
	return cands[rng.IntN(len(cands))], true
}

// receiptWorker sends receipts until the process dies. It writes the call
// before making it and acknowledges the receipts only after it returned.
func (c *crashChild) receiptWorker(ctx context.Context, w int, rng *rand.Rand) {
	for call := 0; ; call++ {
		b, ok := c.pick(w, rng)
		for try := 0; !ok && try < 16; try++ {
			b, ok = c.pick(w, rng)
		}
		if !ok {
			time.Sleep(time.Millisecond)
			continue
		}
		in := crashReceiptIntent{Call: fmt.Sprintf("%d.%d", w, call), Reader: b.reader}
		refs := make([]readreceipt.MessageRef, len(b.msgs))
		for i, l := range b.msgs {
			refs[i] = readreceipt.MessageRef{Conversation: l.msg.conv(), ID: l.id}
			if b.expect[i] != crashExpectRefused {
				in.Msgs = append(in.Msgs, l.id)
			}
		}
		c.emitJSON("R?", in)
		res, err := c.eng.SendMessageReadReceipt(ctx, crashUser(b.reader), refs)
		if err != nil {
			c.violation("call %s: SendMessageReadReceipt: %v", in.Call, err)
			continue
		}
		if len(res) != len(refs) {
			c.violation("call %s: %d results for %d messages", in.Call, len(res), len(refs))
			continue
		}
		ack := crashReceiptAck{Call: in.Call}
		refusedOK := 0
		c.mu.Lock()
		for i, l := range b.msgs {
			r := res[i]
			who := fmt.Sprintf("call %s: receipt of %s by %s", in.Call, l.id, crashUser(b.reader))
			if r.MessageID != l.id {
				c.violation("%s: result names %q", who, r.MessageID)
				continue
			}
			if r.Err != nil && l.deleting && errors.Is(r.Err, readreceipt.ErrReceiptNotFound) {
				continue // deleted meanwhile
			}
			switch b.expect[i] {
			case crashExpectNew:
				switch {
				case r.Err != nil:
					c.violation("%s: %v", who, r.Err)
				case !r.Recorded:
					c.violation("%s: reported already read, but was never sent", who)
				default:
					l.readers[b.reader] = true
					ack.New = append(ack.New, l.id)
				}
			case crashExpectOld:
				switch {
				case r.Err != nil:
					c.violation("%s (repeated): %v", who, r.Err)
				case r.Recorded:
					c.violation("%s: recorded again, so the earlier receipt was lost", who)
				default:
					ack.Old = append(ack.Old, l.id)
				}
			case crashExpectRefused:
				switch {
				case r.Recorded || r.Err == nil:
					c.violation("%s: not a recipient, yet accepted (recorded=%v)", who, r.Recorded)
				case errors.Is(r.Err, readreceipt.ErrNotRecipient) || errors.Is(r.Err, readreceipt.ErrOwnMessage):
					refusedOK++
				default:
					c.violation("%s: not a recipient, refused with %v", who, r.Err)
				}
			}
		}
		c.mu.Unlock()
		c.emitJSON("R!", ack)
		if refusedOK > 0 {
			c.emit("N " + strconv.Itoa(refusedOK))
		}
	}
}

// mutator creates the groups the model lacks, then changes membership and
// tracks and deletes messages, one call at a time, until the process dies.
func (c *crashChild) mutator(ctx context.Context, rng *rand.Rand) {
	seq := 0
	for _, spec := range crashGroupSpecs {
		c.mu.Lock()
		exists := c.model.Groups[spec.id] != nil
		c.mu.Unlock()
		if exists {
			continue
		}
		op := crashOp{Kind: "create", Group: spec.id, Type: spec.typ}
		for u := spec.first; u < spec.first+spec.n; u++ {
			op.Users = append(op.Users, u)
		}
		seq++
		op.Seq = seq
		if !c.mutate(ctx, op) {
			return
		}
	}
	for {
		time.Sleep(time.Duration(1+rng.IntN(6)) * time.Millisecond)
		op, ok := c.nextOp(rng)
		if !ok {
			continue
		}
		seq++
		op.Seq = seq
		if !c.mutate(ctx, op) {
			return
		}
	}
}

// nextOp chooses the next mutation.
func (c *crashChild) nextOp(rng *rand.Rand) (crashOp, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.model
	spec := crashGroupSpecs[rng.IntN(len(crashGroupSpecs))]
	g := m.Groups[spec.id]
	switch p := rng.IntN(100); {
	case p < 65: // track, or delete the oldest if the conversation is full
		var op crashOp
		limit := crashMaxLiveC2C
		if rng.IntN(2) == 0 {
			op = crashOp{Kind: "track", Group: spec.id, Sender: crashAdmin}
			if rng.IntN(20) != 0 && len(g.Members) > 0 {
				op.Sender = g.Members[rng.IntN(len(g.Members))]
			}
			limit = spec.maxLive
		} else {
			u := crashFirstPairUser + 2*uint32(rng.IntN(crashPairs))
			op = crashOp{Kind: "track", Pair: [2]uint32{u, u + 1}}
			op.Sender = op.Pair[rng.IntN(2)]
		}
		if live := c.byConv[op.convKey()]; len(live) >= limit {
			return c.deleteOp(live[0]), true
		}
		op.MsgSeq = m.NextMsg
		m.NextMsg++
		op.Msg = "m" + strconv.Itoa(op.MsgSeq)
		return op, true
	case p < 70:
		if len(c.live) == 0 {
			return crashOp{}, false
		}
		return c.deleteOp(c.live[rng.IntN(len(c.live))]), true
	case p < 85:
		op := crashOp{Kind: "add", Group: spec.id}
		if len(g.Former) > 0 && rng.IntN(3) == 0 {
			op.Users = []uint32{g.Former[rng.IntN(len(g.Former))]}
		} else {
			for range 1 + rng.IntN(3) {
				op.Users = append(op.Users, m.NextUser)
				m.NextUser++
			}
		}
		return op, true
	default:
		if len(g.Members) <= 4 {
			return crashOp{}, false
		}
		op := crashOp{Kind: "remove", Group: spec.id}
		for _, i := range rng.Perm(len(g.Members))[:1+rng.IntN(2)] {
			op.Users = append(op.Users, g.Members[i])
		}
		return op, true
	}
}

// deleteOp marks l as being deleted; the caller holds c.mu.
func (c *crashChild) deleteOp(l *crashLive) crashOp {
	l.deleting = true
	return crashOp{Kind: "delete", Group: l.msg.Group, Pair: l.msg.Pair, Msg: l.id}
}

// mutate makes one mutation: it writes it, calls the engine, acknowledges
// it and applies it to the model. It returns false (and stops the child's
// mutations) when the engine refused it.
func (c *crashChild) mutate(ctx context.Context, op crashOp) bool {
	c.emitJSON("M?", op)
	var err error
	switch op.Kind {
	case "create":
		err = c.eng.CreateGroup(ctx, op.Group, op.Type, crashUsers(op.Users))
	case "add":
		err = c.eng.AddGroupMembers(ctx, op.Group, crashUsers(op.Users))
	case "remove":
		err = c.eng.RemoveGroupMembers(ctx, op.Group, crashUsers(op.Users))
	case "track":
		err = c.eng.TrackMessage(ctx, readreceipt.Message{Conversation: op.conv(), ID: op.Msg, Sender: crashUser(op.Sender)})
	case "delete":
		err = c.eng.DeleteMessage(ctx, readreceipt.MessageRef{Conversation: op.conv(), ID: op.Msg})
	}
	if err != nil {
		c.violation("mutation %d (%s %s%s): %v", op.Seq, op.Kind, op.Group, op.Msg, err)
		return false
	}
	c.emit("M! " + strconv.Itoa(op.Seq))
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.model.apply(op); err != nil {
		c.violation("%v", err)
		return false
	}
	switch op.Kind {
	case "track":
		c.addLive(op.Msg)
	case "delete":
		c.removeLive(op.Msg)
	}
	return true
}
