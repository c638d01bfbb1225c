package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether a process with this PID exists and is not a
// zombie: a killed orphan may wait a while for a reaper.
func alive(pid int) bool {
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// pid (comm) state ...: the state follows the last ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
	}
	return syscall.Kill(pid, 0) == nil
}

func mustDo(t *testing.T, s *Server, args ...string) any {
	t.Helper()
	v, err := s.Do(args...)
	if err != nil {
		t.Fatalf("%s on %s: %v", strings.Join(args, " "), s.Addr, err)
	}
	return v
}

func configGet(t *testing.T, s *Server, key string) string {
	t.Helper()
	v := mustDo(t, s, "CONFIG", "GET", key)
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		t.Fatalf("CONFIG GET %s: %#v", key, v)
	}
	return arr[1].(string)
}

// The tests that start servers and look at no one else's run in parallel.
// Those that count the test binary's redis-server children
// (redisChildren), change the environment or become a subreaper do not:
// Go runs them first, while the parallel ones wait.

// setAndWait sets key on m and waits, on the same connection, until a
// replica has acknowledged it.
func setAndWait(t *testing.T, m *Server, key, value string) {
	t.Helper()
	replies, err := m.Pipeline([]string{"SET", key, value}, []string{"WAIT", "1", "5000"})
	if err != nil {
		t.Fatal(err)
	}
	if replies[0] != "OK" || replies[1] != int64(1) {
		t.Fatalf("SET %s then WAIT 1 on %s: %#v", key, m.Addr, replies)
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.PID <= 0 || !alive(s.PID) || !s.Running() {
		t.Fatalf("started server: Addr %q, PID %d, alive %v, Running %v", s.Addr, s.PID, alive(s.PID), s.Running())
	}
	if lo := ephemeralLow(); lo-portLow >= 1000 && (s.Port < portLow || s.Port >= lo) {
		t.Errorf("port %d, want one in [%d, %d), below the ephemeral range", s.Port, portLow, lo)
	}
	for key, want := range map[string]string{
		"appendonly":     "yes",
		"appendfsync":    "always",
		"save":           "",
		"daemonize":      "no",
		"protected-mode": "no",
		"bind":           "127.0.0.1",
		"dir":            s.Dir,
		"logfile":        s.LogFile,
	} {
		if got := configGet(t, s, key); got != want {
			t.Errorf("CONFIG GET %s = %q, want %q", key, got, want)
		}
	}
	if v := mustDo(t, s, "SET", "k", "v"); v != "OK" {
		t.Fatalf("SET: %#v", v)
	}
	if v := mustDo(t, s, "GET", "k"); v != "v" {
		t.Fatalf("GET: %#v", v)
	}
	if v := mustDo(t, s, "GET", "missing"); v != nil {
		t.Fatalf("GET missing: %#v", v)
	}
	if _, err := s.Do("NOSUCHCOMMAND"); !errors.As(err, new(ReplyError)) {
		t.Fatalf("unknown command: error %v, want a ReplyError", err)
	}

	pid := s.PID
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) || s.Running() {
		t.Fatalf("pid %d still alive (%v) or Running (%v) after Stop", pid, alive(pid), s.Running())
	}
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if log, _ := os.ReadFile(s.LogFile); !strings.Contains(string(log), "ready to exit") {
		t.Errorf("no graceful shutdown in the log:\n%s", log)
	}
}

func TestAppendFsyncAndConfigOptions(t *testing.T) {
	t.Parallel()
	s := Start(t, AppendFsync("everysec"), Config("maxmemory", "10mb"))
	if got := configGet(t, s, "appendfsync"); got != "everysec" {
		t.Errorf("appendfsync = %q, want everysec", got)
	}
	if got := configGet(t, s, "appendonly"); got != "yes" {
		t.Errorf("appendonly = %q, want yes", got)
	}
	if got := configGet(t, s, "maxmemory"); got != "10485760" {
		t.Errorf("maxmemory = %q, want 10485760", got)
	}
}

// TestCleanupStopsServer: the cleanup Start registers stops the process,
// and a start that fails reports the server's own error.
func TestCleanupStopsServer(t *testing.T) {
	Find(t) // a skip inside the subtest would leave pid 0
	var pid int
	t.Run("start", func(t *testing.T) {
		pid = Start(t).PID
		if !alive(pid) {
			t.Fatalf("pid %d not alive", pid)
		}
	})
	if pid == 0 || alive(pid) {
		t.Fatalf("pid %d outlived its test", pid)
	}

	t.Run("bad config", func(t *testing.T) {
		rec := &fatalRecorder{TB: t}
		runTB(func() { Start(rec, Config("no-such-directive", "1")) })
		if !rec.failed || !strings.Contains(rec.msg, "no-such-directive") {
			t.Fatalf("Start with a bad directive: failed %v, message %q", rec.failed, rec.msg)
		}
	})
	if left := redisChildren(); len(left) > 0 {
		t.Fatalf("redis-server children left: %v", left)
	}
}

// TestClusterStartFailsHalfway: when the cluster cannot be formed after its
// nodes have started (here they are not cluster nodes), the test fails
// with the server's complaint and every node started is stopped.
func TestClusterStartFailsHalfway(t *testing.T) {
	findCLI(t)
	var started []int
	t.Run("start", func(t *testing.T) {
		rec := &fatalRecorder{TB: t}
		runTB(func() { StartCluster(rec, 3, 0, Config("cluster-enabled", "no")) })
		started = redisChildren()
		if !rec.failed || !strings.Contains(rec.msg, "cluster support disabled") {
			t.Errorf("StartCluster of non-cluster nodes: failed %v, message %q", rec.failed, rec.msg)
		}
	})
	if len(started) != 3 {
		t.Fatalf("%d nodes were running when the start failed, want 3", len(started))
	}
	if left := redisChildren(); len(left) > 0 {
		t.Fatalf("redis-server children left after the failed start: %v", left)
	}
}

// fatalRecorder is a testing.TB whose Fatal and Skip record the message and
// end the goroutine, for testing how the helpers fail.
type fatalRecorder struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *fatalRecorder) Skip(args ...any) {
	r.skipped, r.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}

// runTB runs f in a goroutine of its own, which a fatalRecorder may end.
func runTB(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

func TestFindOff(t *testing.T) {
	t.Setenv(EnvVar, "off")
	rec := &fatalRecorder{TB: t}
	runTB(func() { Find(rec) })
	if !rec.skipped || !strings.Contains(rec.msg, EnvVar+"=off") {
		t.Fatalf("Find with %s=off: skipped %v, message %q", EnvVar, rec.skipped, rec.msg)
	}
}

func TestFindMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvVar, "")
	rec := &fatalRecorder{TB: t}
	runTB(func() { Find(rec) })
	if !rec.skipped || rec.msg != NotFoundMessage {
		t.Fatalf("Find without redis-server: skipped %v, message %q", rec.skipped, rec.msg)
	}
}

// TestKillRestartKeepsWrites: every acknowledged write is in the AOF when
// the server is killed (Redis writes it before replying; appendfsync always
// also fsyncs it, which only a machine crash would tell), and Restart
// replays it on the same address.
func TestKillRestartKeepsWrites(t *testing.T) {
	t.Parallel()
	s := Start(t)
	mustDo(t, s, "SET", "k", "before the crash")
	for range 100 {
		mustDo(t, s, "INCR", "n")
	}
	pid, addr := s.PID, s.Addr
	s.Kill()
	if alive(pid) || s.Running() {
		t.Fatalf("pid %d alive after Kill", pid)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "appendonlydir")); err != nil {
		t.Fatalf("no AOF directory: %v", err)
	}
	s.Restart(t)
	if s.Addr != addr || s.PID == pid || !alive(s.PID) {
		t.Fatalf("after Restart: Addr %s (was %s), PID %d (was %d)", s.Addr, addr, s.PID, pid)
	}
	if v := mustDo(t, s, "GET", "k"); v != "before the crash" {
		t.Fatalf("GET k after Kill+Restart: %#v", v)
	}
	if v := mustDo(t, s, "GET", "n"); v != "100" {
		t.Fatalf("GET n after Kill+Restart: %#v", v)
	}
	// A restart of a running server stops it first.
	pid = s.PID
	s.Restart(t)
	if alive(pid) || s.PID == pid {
		t.Fatalf("Restart of a running server left pid %d", pid)
	}
	if v := mustDo(t, s, "GET", "n"); v != "100" {
		t.Fatalf("GET n after Stop+Restart: %#v", v)
	}
}

// TestRestartWaitsForPort: Restart binds the same port again, also when
// something holds it for a moment.
func TestRestartWaitsForPort(t *testing.T) {
	t.Parallel()
	s := Start(t)
	mustDo(t, s, "SET", "k", "v")
	s.Kill()
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	time.AfterFunc(300*time.Millisecond, func() { l.Close() })
	s.Restart(t)
	if v := mustDo(t, s, "GET", "k"); v != "v" {
		t.Fatalf("GET after Restart: %#v", v)
	}
}

func TestReplicaOf(t *testing.T) {
	t.Parallel()
	m := Start(t)
	mustDo(t, m, "SET", "before", "1")
	r := ReplicaOf(t, m)
	info, err := r.Info("replication")
	if err != nil {
		t.Fatal(err)
	}
	if info["role"] != "slave" || info["master_port"] != fmt.Sprint(m.Port) || info["master_link_status"] != "up" {
		t.Fatalf("replica INFO replication: %v", info)
	}
	setAndWait(t, m, "after", "2")
	for k, want := range map[string]string{"before": "1", "after": "2"} {
		if v := mustDo(t, r, "GET", k); v != want {
			t.Errorf("GET %s on the replica: %#v, want %q", k, v, want)
		}
	}
	if _, err := r.Do("SET", "x", "y"); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Errorf("SET on the replica: %v, want READONLY", err)
	}
	// The replica comes back after a crash and syncs again.
	r.Kill()
	mustDo(t, m, "SET", "while down", "3")
	r.Restart(t)
	setAndWait(t, m, "after the restart", "4")
	if v := mustDo(t, r, "GET", "while down"); v != "3" {
		t.Errorf("GET on the restarted replica: %#v", v)
	}
}

func TestKeySlot(t *testing.T) {
	if got := crc16("123456789"); got != 0x31c3 {
		t.Errorf("crc16(123456789) = %#x, want the XMODEM check value 0x31c3", got)
	}
	for key, want := range map[string]int{
		"":                    0,
		"foo":                 12182,
		"bar":                 5061,
		"{user1000}.a":        KeySlot("user1000"),
		"x{user1000}y":        KeySlot("user1000"),
		"foo{}{bar}":          int(crc16("foo{}{bar}")) % SlotCount, // empty tag: whole key
		"foo{{bar}}zap":       KeySlot("{bar"),
		"foo{bar}{zap}":       KeySlot("bar"),
		"{unclosed":           int(crc16("{unclosed")) % SlotCount,
		"readreceipt:{g1}:m1": KeySlot("g1"),
	} {
		if got := KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestReadReply(t *testing.T) {
	in := "+OK\r\n-ERR boom\r\n:42\r\n$3\r\nfoo\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n*-1\r\n$0\r\n\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	want := []any{"OK", ReplyError("ERR boom"), int64(42), "foo", nil, []any{"a", []any{int64(1)}}, nil, ""}
	for i, w := range want {
		v, err := readValue(r)
		if err != nil || fmt.Sprintf("%#v", v) != fmt.Sprintf("%#v", w) {
			t.Errorf("reply %d: %#v, %v; want %#v", i, v, err, w)
		}
	}
	for _, bad := range []string{"?x\r\n", ":x\r\n", "$5\r\nab\r\n", "$-2\r\n", "+no crlf\n"} {
		if _, err := readValue(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("readValue(%q): no error", bad)
		}
	}
	if got := string(encodeCommand([]string{"SET", "k", ""})); got != "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n" {
		t.Errorf("encodeCommand: %q", got)
	}
}

func TestParseInfo(t *testing.T) {
	m := ParseInfo("# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=1,state=online\r\n\r\n")
	if m["role"] != "master" || m["connected_slaves"] != "1" || m["slave0"] != "ip=127.0.0.1,port=1,state=online" || len(m) != 3 {
		t.Fatalf("ParseInfo: %v", m)
	}
}

func TestParseClusterNodes(t *testing.T) {
	in := "07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n" +
		"e7d1 127.0.0.1:30001@40001,host myself,master - 0 0 1 connected 0-5460 6000 [5461->-292f]\n" +
		"9ab3 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238315000 2 disconnected\n"
	view, err := parseClusterNodes(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(view) != 3 {
		t.Fatalf("%d entries", len(view))
	}
	me := view[1]
	if me.id != "e7d1" || me.addr != "127.0.0.1:30001" || !me.has("myself") || !me.has("master") || me.epoch != 1 {
		t.Fatalf("myself entry: %+v", me)
	}
	if !me.owns(0) || !me.owns(5460) || !me.owns(6000) || me.owns(5461) || me.owns(5999) {
		t.Fatalf("slots: %v", me.slots)
	}
	if view[0].master != "e7d1" || !view[2].has("fail") {
		t.Fatalf("entries: %+v", view)
	}
	if _, err := parseClusterNodes("a b c\n"); err == nil {
		t.Fatal("short line: no error")
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: TestClusterFailover starts and checks a cluster too")
	}
	start := time.Now()
	c := StartCluster(t, 3, 1)
	t.Logf("3 masters + 3 replicas ready in %v", time.Since(start).Round(time.Millisecond))
	if len(c.Nodes) != 6 || len(c.Addrs()) != 6 {
		t.Fatalf("%d nodes", len(c.Nodes))
	}
	for _, n := range c.Nodes {
		info, err := n.ClusterInfo()
		if err != nil {
			t.Fatal(err)
		}
		if info["cluster_state"] != "ok" || info["cluster_known_nodes"] != "6" || info["cluster_size"] != "3" {
			t.Errorf("%s: CLUSTER INFO %v", n.Addr, info)
		}
		if got := configGet(t, n, "appendfsync"); got != "always" {
			t.Errorf("%s: appendfsync %s", n.Addr, got)
		}
		if _, err := os.Stat(filepath.Join(n.Dir, "nodes.conf")); err != nil {
			t.Errorf("%s: %v", n.Addr, err)
		}
	}
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("%d masters", len(masters))
	}
	for _, m := range masters {
		if rs := c.ReplicasOf(m); len(rs) != 1 || rs[0] == m {
			t.Errorf("master %s: replicas %v", m.Addr, rs)
		}
	}
	// The helper's slots agree with the server's, and the master it names
	// takes the key while another redirects to it.
	for i := range 20 {
		key := fmt.Sprintf("key:%d", i)
		if i%4 == 0 {
			key = fmt.Sprintf("{group%d}:members", i)
		}
		slot := KeySlot(key)
		if v := mustDo(t, c.Nodes[0], "CLUSTER", "KEYSLOT", key); v != int64(slot) {
			t.Fatalf("CLUSTER KEYSLOT %s = %#v, KeySlot = %d", key, v, slot)
		}
		m := c.MasterForKey(key)
		if m == nil {
			t.Fatalf("no master for %s", key)
		}
		mustDo(t, m, "SET", key, "v")
		for _, other := range masters {
			if other == m {
				continue
			}
			_, err := other.Do("GET", key)
			if want := fmt.Sprintf("MOVED %d %s", slot, m.Addr); err == nil || err.Error() != want {
				t.Fatalf("GET %s on %s: %v, want %s", key, other.Addr, err, want)
			}
		}
	}
}

func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3, 1)
	const key = "failover:{g}"
	slot := KeySlot(key)
	old := c.MasterForSlot(slot)
	if old == nil {
		t.Fatal("no master for the slot")
	}
	replicas := c.ReplicasOf(old)
	if len(replicas) != 1 {
		t.Fatalf("replicas of %s: %v", old.Addr, replicas)
	}
	setAndWait(t, old, key, "acknowledged by a replica")

	pid := old.PID
	c.KillMaster(t, old)
	if alive(pid) || old.Running() {
		t.Fatalf("killed master pid %d still alive", pid)
	}
	took := c.WaitFailover(t, slot, 20*time.Second)
	t.Logf("failover of slot %d from %s to a replica took %v (cluster-node-timeout 1000 ms)", slot, old.Addr, took.Round(time.Millisecond))

	promoted := c.MasterForSlot(slot)
	if promoted != replicas[0] {
		t.Fatalf("slot %d served by %v, want the replica %s", slot, promoted, replicas[0].Addr)
	}
	if v := mustDo(t, promoted, "GET", key); v != "acknowledged by a replica" {
		t.Fatalf("GET on the promoted replica: %#v", v)
	}
	for _, n := range c.Nodes {
		if n.Running() {
			if info, _ := n.ClusterInfo(); info["cluster_state"] != "ok" {
				t.Errorf("%s: cluster_state %s after failover", n.Addr, info["cluster_state"])
			}
		}
	}

	// The old master comes back as a replica of the one that took over.
	start := time.Now()
	c.Restart(t, old)
	t.Logf("%s rejoined in %v", old.Addr, time.Since(start).Round(time.Millisecond))
	info, err := old.Info("replication")
	if err != nil {
		t.Fatal(err)
	}
	if info["role"] != "slave" || info["master_port"] != fmt.Sprint(promoted.Port) || info["master_link_status"] != "up" {
		t.Fatalf("restarted old master: %v", info)
	}
	if c.MasterForSlot(slot) != promoted {
		t.Fatalf("slot %d moved again", slot)
	}
	if rs := c.ReplicasOf(promoted); len(rs) != 1 || rs[0] != old {
		t.Fatalf("replicas of the new master: %v", rs)
	}
}
