package redistest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvVar is the environment variable that turns the Redis tests off:
// READRECEIPT_REDIS=off makes [Find], and so every start, skip the test.
const EnvVar = "READRECEIPT_REDIS"

// NotFoundMessage is the skip message when redis-server is not on PATH.
const NotFoundMessage = "redis-server not found: install Debian's redis-server (apt-get install redis-server) to run the Redis backend tests"

const (
	// startTimeout bounds the wait for a started server to answer PING,
	// AOF replay included.
	startTimeout = 15 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// termInterval is how often Stop repeats SIGTERM.
	termInterval = 100 * time.Millisecond
	// syncTimeout bounds the wait for a replica's master_link_status:up.
	syncTimeout = 15 * time.Second
	// pollInterval is how often the waits poll the servers.
	pollInterval = 10 * time.Millisecond
	// portAttempts is how many fresh ports Start tries when the one it
	// picked was taken before redis-server could bind it.
	portAttempts = 3
	// restartAttempts is how many times Restart tries to bind the server's
	// port again when it is in use.
	restartAttempts = 20
)

// Find returns the path of redis-server. It skips the test when
// READRECEIPT_REDIS=off is set or when redis-server is not on PATH, with a
// message that says what to install.
func Find(tb testing.TB) string {
	tb.Helper()
	if os.Getenv(EnvVar) == "off" {
		tb.Skip(EnvVar + "=off: skipping the Redis backend tests")
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip(NotFoundMessage)
	}
	return path
}

// findCLI returns the path of redis-cli, which cluster creation needs, or
// skips the test.
func findCLI(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Skip("redis-cli not found: install Debian's redis-tools (apt-get install redis-server brings it) to run the Redis Cluster tests")
	}
	return path
}

// An Option changes the configuration of a server started by [Start],
// [ReplicaOf] or [StartCluster].
type Option func(*config)

type config struct {
	appendfsync string
	replicaOf   *Server
	cluster     bool
	extra       [][]string
}

// AppendFsync sets the appendfsync policy: "always" (the default: every
// write is fsynced to the AOF before it is acknowledged), "everysec" or
// "no". The AOF itself stays on.
func AppendFsync(policy string) Option {
	return func(c *config) { c.appendfsync = policy }
}

// Config adds a redis.conf directive, written after the package's own so
// that it overrides them; for example Config("maxmemory", "10mb") or, for a
// cluster, Config("cluster-node-timeout", "3000").
func Config(directive string, args ...string) Option {
	line := append([]string{directive}, args...)
	return func(c *config) { c.extra = append(c.extra, line) }
}

func replicaOf(master *Server) Option {
	return func(c *config) { c.replicaOf = master }
}

func clusterNode() Option {
	return func(c *config) { c.cluster = true }
}

// Server is one redis-server process of a test. Its fields describe it;
// they are set by the start and must not be changed. PID changes when the
// server is restarted, so read it from the test's goroutine.
type Server struct {
	// Addr is the "127.0.0.1:port" the server listens on; it stays the same
	// across restarts.
	Addr string
	// Port is the port of Addr.
	Port int
	// BusPort is the cluster bus port of a cluster node, 0 otherwise.
	BusPort int
	// Dir is the server's working directory, a temporary directory of the
	// test: its redis.conf, redis.log, the appendonlydir of the AOF and,
	// for a cluster node, nodes.conf.
	Dir string
	// LogFile is the path of the server's log, in Dir.
	LogFile string
	// PID is the process ID of the running (or last) redis-server process.
	PID int

	bin  string
	conf config

	mu   sync.Mutex
	proc *process // nil when not running
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	err  error         // the result of Wait, once done is closed
}

// Start starts a standalone redis-server on a free port of 127.0.0.1
// (below the kernel's ephemeral range where it can) in a new temporary
// directory of tb, and returns once it answers PING. It is configured for
// durable tests: appendonly yes with appendfsync always (see
// [AppendFsync]), no RDB snapshots (save ""), protected-mode no, daemonize
// no, logging to LogFile. A cleanup registered with tb stops it. Start
// fails the test if the server does not come up, with its log.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	bin := Find(tb)
	s := &Server{bin: bin, Dir: tb.TempDir(), conf: config{appendfsync: "always"}}
	s.LogFile = filepath.Join(s.Dir, "redis.log")
	for _, o := range opts {
		o(&s.conf)
	}
	for attempt := 1; ; attempt++ {
		if err := s.pickPorts(); err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		if err := s.writeConfig(); err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		err := s.start(tb)
		if err == nil {
			break
		}
		if errors.Is(err, errAddrInUse) && attempt < portAttempts {
			tb.Logf("redistest: a port picked for %s was taken before redis-server bound it; trying others", s.Dir)
			continue
		}
		tb.Fatalf("redistest: start redis-server in %s: %v", s.Dir, err)
	}
	if s.conf.replicaOf != nil {
		if err := s.waitLinkUp(syncTimeout); err != nil {
			tb.Fatalf("redistest: replica %s of %s: %v", s.Addr, s.conf.replicaOf.Addr, err)
		}
	}
	return s
}

// ReplicaOf starts a server as [Start] does, configured as a replica of
// master (replicaof), and returns once its INFO replication reports
// master_link_status:up, that is once the initial sync is done.
func ReplicaOf(tb testing.TB, master *Server, opts ...Option) *Server {
	tb.Helper()
	return Start(tb, append(opts, replicaOf(master))...)
}

// String returns s.Addr, so that servers print as their addresses.
func (s *Server) String() string { return s.Addr }

// Running reports whether the server's process is running: it has been
// started and has not been stopped, killed or exited.
func (s *Server) Running() bool {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop stops the server: SIGTERM to its PID, then SIGKILL if it has not
// exited within 10 s. With appendonly yes, Redis flushes and fsyncs the AOF
// on SIGTERM. Stop does nothing when the server is not running; it returns
// an error when the server had to be killed, exited with an error, or had
// exited on its own before Stop.
func (s *Server) Stop() error {
	p := s.take()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return fmt.Errorf("redistest: redis-server %s (pid %d) had exited by itself: %v", s.Addr, s.PID, p.err)
	default:
	}
	// Redis refuses a shutdown while it writes the initial AOF (as a
	// replica does right after a sync) and does not retry it, so SIGTERM
	// is sent again until it exits; a repeated SIGTERM is harmless.
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	resend := time.NewTicker(termInterval)
	defer resend.Stop()
	for {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.err != nil {
				return fmt.Errorf("redistest: redis-server %s (pid %d) on SIGTERM: %v", s.Addr, s.PID, p.err)
			}
			return nil
		case <-resend.C:
		case <-timer.C:
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			return fmt.Errorf("redistest: redis-server %s (pid %d) did not exit within %v of SIGTERM; killed", s.Addr, s.PID, stopTimeout)
		}
	}
}

// Kill sends SIGKILL to the server's PID, as in a crash, and returns once
// the process is gone: nothing is flushed beyond what Redis had already
// written. It does nothing when the server is not running.
func (s *Server) Kill() {
	p := s.take()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Restart starts the server again on the same port, in the same directory
// and with the same configuration, stopping it first (SIGTERM) if it is
// running, and returns once it answers PING, that is once the AOF has been
// replayed. A replica waits for its link to the master again. A cleanup
// registered with tb stops the new process.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.Stop(); err != nil {
		tb.Logf("%v", err)
	}
	// The port may be held for a moment by the local end of some outgoing
	// connection, which the kernel takes from the same range.
	for attempt := 1; ; attempt++ {
		err := s.start(tb)
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == restartAttempts {
			tb.Fatalf("redistest: restart redis-server %s in %s: %v", s.Addr, s.Dir, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s.conf.replicaOf != nil {
		if err := s.waitLinkUp(syncTimeout); err != nil {
			tb.Fatalf("redistest: replica %s of %s after restart: %v", s.Addr, s.conf.replicaOf.Addr, err)
		}
	}
}

// take detaches the current process from s, so that exactly one caller
// stops it.
func (s *Server) take() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	return p
}

var errAddrInUse = errors.New("address already in use")

// start launches redis-server on the configuration in Dir, registers its
// cleanup with tb and waits until it answers PING. On error the process has
// been stopped.
func (s *Server) start(tb testing.TB) error {
	s.mu.Lock()
	if s.proc != nil {
		s.mu.Unlock()
		return errors.New("already running")
	}
	s.mu.Unlock()

	stdio, err := os.OpenFile(filepath.Join(s.Dir, "redis.stdio"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, filepath.Join(s.Dir, "redis.conf"))
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = stdio, stdio
	cmd.SysProcAttr = sysProcAttr()
	logStart := fileSize(s.LogFile)
	if err := startCmd(cmd); err != nil {
		stdio.Close()
		return err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		stdio.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.PID = cmd.Process.Pid
	s.mu.Unlock()
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Logf("%v", err)
		}
	})

	if err := s.waitPing(p, startTimeout); err != nil {
		s.Kill()
		log := s.logSince(logStart)
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("%w: %v\n%s", errAddrInUse, err, log)
		}
		return fmt.Errorf("%v\n%s", err, log)
	}
	return nil
}

// waitPing polls PING until the server replies PONG (a LOADING error while
// it replays the AOF is waited out), the process exits or timeout passes.
func (s *Server) waitPing(p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server (pid %d) exited before answering PING: %v", p.cmd.Process.Pid, p.err)
		default:
		}
		v, err := s.Do("PING")
		if err == nil && v == "PONG" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("PING replied %#v", v)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %v: %v", timeout, last)
		}
		time.Sleep(pollInterval)
	}
}

// waitLinkUp waits until INFO replication reports master_link_status:up.
func (s *Server) waitLinkUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		info, err := s.Info("replication")
		if err == nil && info["master_link_status"] == "up" {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("INFO replication: %v", err)
			}
			return fmt.Errorf("master_link_status:%s after %v\n%s", info["master_link_status"], timeout, tail(s.LogFile, 2000))
		}
		time.Sleep(pollInterval)
	}
}

// pickPorts chooses free ports on 127.0.0.1 for the server and, for a
// cluster node, its bus, released just before redis-server binds them
// (Start retries if another process takes one in between). See listenFree.
func (s *Server) pickPorts() error {
	n := 1
	if s.conf.cluster {
		n = 2
	}
	var ports []int
	for range n {
		l, err := listenFree()
		if err != nil {
			return fmt.Errorf("find a free port on 127.0.0.1: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	s.Port = ports[0]
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	if s.conf.cluster {
		s.BusPort = ports[1]
	}
	return nil
}

// portLow is the lowest port listenFree picks.
const portLow = 20000

// listenFree listens on a free port of 127.0.0.1 at random between portLow
// and the start of the kernel's ephemeral range, when there is room: the
// kernel takes the local ports of outgoing connections from that range, and
// one of them (a client reconnecting, say) could otherwise hold a server's
// port while it is down for a Restart. Elsewhere it takes the kernel's
// choice for port 0.
func listenFree() (net.Listener, error) {
	if hi := ephemeralLow(); hi-portLow >= 1000 {
		for range 50 {
			port := portLow + rand.IntN(hi-portLow)
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
				return l, nil
			}
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// ephemeralLow returns the first port of Linux's ephemeral range, or 0.
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0
	}
	lo, _ := strconv.Atoi(f[0])
	return lo
}

// writeConfig writes Dir/redis.conf. Later directives override earlier
// ones, so the options' extra lines come last.
func (s *Server) writeConfig() error {
	lines := [][]string{
		{"dir", s.Dir},
		{"bind", "127.0.0.1"},
		{"port", strconv.Itoa(s.Port)},
		{"protected-mode", "no"},
		{"daemonize", "no"},
		{"logfile", s.LogFile},
		{"save", ""},
		{"appendonly", "yes"},
		{"appendfsync", s.conf.appendfsync},
		// Diskless replication waits 5 s by default for more replicas
		// to join the transfer; tests start one at a time.
		{"repl-diskless-sync-delay", "0"},
	}
	if m := s.conf.replicaOf; m != nil {
		host, port, _ := net.SplitHostPort(m.Addr)
		lines = append(lines, []string{"replicaof", host, port})
	}
	if s.conf.cluster {
		lines = append(lines,
			[]string{"cluster-enabled", "yes"},
			[]string{"cluster-config-file", "nodes.conf"},
			[]string{"cluster-port", strconv.Itoa(s.BusPort)},
			// A master is marked failing after 1 s without answer, so a
			// failover takes a few seconds.
			[]string{"cluster-node-timeout", "1000"},
			// A replica may always take over, however long its master
			// has been gone, and replicas stay with their master: the
			// topology a test sets up is the one it gets.
			[]string{"cluster-replica-validity-factor", "0"},
			[]string{"cluster-allow-replica-migration", "no"},
		)
	}
	lines = append(lines, s.conf.extra...)

	var b strings.Builder
	b.WriteString("# Written by internal/redistest for one test.\n")
	for _, l := range lines {
		for i, arg := range l {
			if strings.ContainsAny(arg, "\r\n") {
				return fmt.Errorf("config %q: a line break in a value", l)
			}
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(quoteConf(arg))
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(s.Dir, "redis.conf"), []byte(b.String()), 0o644)
}

// quoteConf quotes a redis.conf argument the way its parser reads double
// quotes, so that paths with spaces and the empty value of save "" survive.
func quoteConf(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what the server wrote to its log from offset on, and to
// its stdout and stderr (where configuration errors go), for an error
// message; at most the last few kilobytes of each.
func (s *Server) logSince(offset int64) string {
	var b strings.Builder
	if f, err := os.Open(s.LogFile); err == nil {
		defer f.Close()
		if size := fileSize(s.LogFile); size-offset > 4000 {
			offset = size - 4000
		}
		if _, err := f.Seek(offset, io.SeekStart); err == nil {
			data, _ := io.ReadAll(f)
			fmt.Fprintf(&b, "--- %s:\n%s", s.LogFile, data)
		}
	}
	if stdio := tail(filepath.Join(s.Dir, "redis.stdio"), 2000); strings.TrimSpace(stdio) != "" {
		fmt.Fprintf(&b, "--- stdout and stderr:\n%s", stdio)
	}
	return b.String()
}

// tail returns at most the last n bytes of a file, or "" if it cannot be read.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if size := fileSize(path); size > n {
		if _, err := f.Seek(size-n, io.SeekStart); err != nil {
			return ""
		}
	}
	data, _ := io.ReadAll(f)
	return string(data)
}
