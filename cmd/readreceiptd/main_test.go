package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/readreceipt/readreceipt"
)

// startRun runs runWith in the background with args and env and returns
// the address once it listens, a function that stops it and returns run's
// error, and the server.
func startRun(t *testing.T, args []string, env runEnv) (string, *server, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	type started struct {
		addr string
		s    *server
	}
	ready := make(chan started, 1)
	done := make(chan error, 1)
	env.ready = func(addr string, s *server) { ready <- started{addr, s} }
	if env.getenv == nil {
		env.getenv = func(string) string { return "" }
	}
	go func() { done <- runWith(ctx, args, env) }()
	var st started
	select {
	case st = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("not listening after 30s")
	}
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("run did not return within 30s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return "http://" + st.addr, st.s, stop
}

func TestSecretGeneratedOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	args := []string{"-addr", "127.0.0.1:0", "-data", data, "-demo=false"}

	var first bytes.Buffer
	base, s, stop := startRun(t, args, runEnv{stderr: &first})
	path := filepath.Join(data, "secret")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no secret file after the first start: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	secret := strings.TrimSpace(string(b))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(secret) {
		t.Fatalf("generated secret %q is not 32 random bytes in hex", secret)
	}
	if n := strings.Count(first.String(), secret); n != 1 {
		t.Fatalf("the first start printed the secret %d times:\n%s", n, first.String())
	}
	if string(s.secret) != secret {
		t.Fatal("the server signs with another secret than the one stored")
	}

	// A token minted by the token subcommand from the stored secret.
	var out bytes.Buffer
	if err := runWith(context.Background(), []string{"token", "-data", data, "-user", "administrator", "-ttl", "1h"}, runEnv{stdout: &out, stderr: &bytes.Buffer{}, getenv: func(string) string { return "" }}); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out.String())
	admin := newClient(t, base, tok)
	admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"a", "b"}}, nil)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The second start reuses the secret silently: the token still works.
	var second bytes.Buffer
	base2, s2, stop2 := startRun(t, args, runEnv{stderr: &second})
	if string(s2.secret) != secret {
		t.Fatal("the second start uses another secret")
	}
	if strings.Contains(second.String(), secret) {
		t.Fatalf("the second start printed the secret:\n%s", second.String())
	}
	var g groupInfo
	admin.base = base2
	admin.ok("GET", "/v1/groups/g", nil, &g)
	if g.MemberNum != 2 {
		t.Fatalf("group after restart: %+v", g)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

func TestSecretRules(t *testing.T) {
	none := func(string) string { return "" }
	run := func(args []string, getenv func(string) string) error {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // start and stop at once
		return runWith(ctx, args, runEnv{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: getenv})
	}
	dir := t.TempDir()
	if err := run([]string{"-addr", "127.0.0.1:0", "-data", dir, "-secret", "short"}, none); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("a 5-byte secret: %v", err)
	}
	if err := run([]string{"-addr", "127.0.0.1:0", "-data", dir}, func(k string) string {
		if k == "READRECEIPTD_SECRET" {
			return "fifteen-bytes!!"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("a 15-byte secret from the environment: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused start wrote a secret file")
	}
	// A secret file that was cut short is refused, never replaced.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "secret"), []byte("abc\n"), 0o600)
	if err := run([]string{"-addr", "127.0.0.1:0", "-data", bad}, none); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("a short secret file: %v", err)
	}
	// The token subcommand never generates a secret.
	empty := t.TempDir()
	if err := run([]string{"token", "-data", empty, "-user", "alice"}, none); err == nil || !strings.Contains(err.Error(), "no secret") {
		t.Fatalf("token without a secret: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "secret")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the token subcommand wrote a secret")
	}
	if err := run([]string{"token", "-secret", testSecret}, none); err == nil || !strings.Contains(err.Error(), "-user") {
		t.Fatalf("token without -user: %v", err)
	}
	if err := run([]string{"token", "-secret", testSecret, "-user", "a", "-ttl", "-1h"}, none); err == nil {
		t.Fatal("token with a negative ttl")
	}
}

func TestTokenSubcommand(t *testing.T) {
	var out bytes.Buffer
	env := runEnv{stdout: &out, stderr: &bytes.Buffer{}, getenv: func(k string) string {
		if k == "READRECEIPTD_SECRET" {
			return testSecret
		}
		return ""
	}}
	before := time.Now()
	if err := runWith(context.Background(), []string{"token", "-user", "alice", "-ttl", "2h"}, env); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out.String())
	user, err := verifyToken([]byte(testSecret), tok, before.Add(2*time.Hour-time.Minute))
	if err != nil || user != "alice" {
		t.Fatalf("minted token: %q %v", user, err)
	}
	if _, err := verifyToken([]byte(testSecret), tok, before.Add(2*time.Hour+2*time.Second)); codeOfErr(err) != CodeTokenExpired {
		t.Fatalf("minted token after its ttl: %v", err)
	}
}

func TestConfigFlagsAndEnv(t *testing.T) {
	parse := func(args []string, env map[string]string) (config, error) {
		cfg := defaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		envErr := configFlags(fs, &cfg, func(k string) string { return env[k] })
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		if err := envErr(); err != nil {
			return cfg, err
		}
		return cfg, cfg.validate()
	}
	cfg, err := parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.DataDir != "./data" || cfg.Secret != "" || cfg.Admin != "administrator" || !cfg.Demo || !cfg.Sync {
		t.Fatalf("defaults: %+v", cfg)
	}
	env := map[string]string{
		"READRECEIPTD_ADDR": "127.0.0.1:9999", "READRECEIPTD_DATA": "/tmp/x", "READRECEIPTD_ADMIN": "root",
		"READRECEIPTD_DEMO": "false", "READRECEIPTD_SYNC": "0", "READRECEIPTD_SECRET": testSecret,
	}
	cfg, err = parse(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" || cfg.DataDir != "/tmp/x" || cfg.Admin != "root" || cfg.Demo || cfg.Sync || cfg.Secret != testSecret {
		t.Fatalf("from the environment: %+v", cfg)
	}
	// Flags win over the environment.
	cfg, err = parse([]string{"-addr", "127.0.0.1:7777", "-demo=true"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:7777" || !cfg.Demo {
		t.Fatalf("flags over the environment: %+v", cfg)
	}
	// The model's switches: off by default, on from either.
	if cfg.ReadTimes || cfg.ReciprocalPrivacy {
		t.Fatalf("read times or reciprocal privacy on by default: %+v", cfg)
	}
	cfg, err = parse([]string{"-read-times"}, map[string]string{"READRECEIPTD_RECIPROCAL_PRIVACY": "true"})
	if err != nil || !cfg.ReadTimes || !cfg.ReciprocalPrivacy {
		t.Fatalf("-read-times and READRECEIPTD_RECIPROCAL_PRIVACY: %+v %v", cfg, err)
	}
	for _, bad := range []struct {
		args []string
		env  map[string]string
	}{
		{nil, map[string]string{"READRECEIPTD_DEMO": "maybe"}},
		{nil, map[string]string{"READRECEIPTD_READ_TIMES": "sometimes"}},
		{nil, map[string]string{"READRECEIPTD_SHUTDOWN_TIMEOUT": "soon"}},
		{[]string{"-admin", ""}, nil},
		{[]string{"-log-format", "xml"}, nil},
		{[]string{"-event-queue", "0"}, nil},
		{[]string{"-nosuchflag"}, nil},
	} {
		if _, err := parse(bad.args, bad.env); err == nil {
			t.Errorf("%v %v: accepted", bad.args, bad.env)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	data := t.TempDir()
	held := make(chan struct{})
	release := make(chan struct{})
	hold := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Test-Hold") != "" {
				close(held)
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}
	var logs syncBuffer
	base, s, stop := startRun(t, []string{"-addr", "127.0.0.1:0", "-data", data, "-secret", testSecret, "-demo=false"},
		runEnv{stderr: &logs, middleware: hold})
	admin := newClient(t, base, s.mintToken("administrator", time.Hour))
	admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	events := dialEvents(t, base, s.mintToken("alice", time.Hour), false, nil)
	waitConns(t, s, "alice", 1)

	// A receipt call is in flight when the shutdown begins.
	bob := admin.as(s.mintToken("bob", time.Hour))
	inflight := make(chan result, 1)
	go func() {
		inflight <- bob.exchange("POST", "/v1/receipts", []byte(mustJSON(t, list(gmsg("g", "m1", "alice")))), true, http.Header{"X-Test-Hold": {"1"}})
	}()
	<-held
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// Shutdown has begun: health says so, event connections are told the
	// server is going away, and run waits for the call in flight.
	waitFor(t, s.stopping.Load)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := events.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("event connection at shutdown: %v", err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("run returned with a call in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	res := <-inflight
	var rr receiptResults
	if res.Status != 200 || json.Unmarshal(res.Data, &rr) != nil || !rr.MessageList[0].Recorded {
		t.Fatalf("the call in flight: %v", res)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(logs.String(), "store closed") {
		t.Fatalf("no clean store close in the logs:\n%s", logs.String())
	}

	// The store was closed cleanly: it opens again, with the receipt.
	eng, err := readreceipt.OpenDir(filepath.Join(data, storeDir))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer eng.Close()
	if err := eng.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	infos, err := eng.GetMessageReadReceiptList(context.Background(), readreceipt.AsUser("alice"),
		[]readreceipt.MessageRef{{Conversation: readreceipt.Group("g"), ID: "m1"}})
	if err != nil || infos[0].Err != nil || infos[0].ReadCount != 1 {
		t.Fatalf("after reopening: %+v %v", infos, err)
	}
}

// TestSIGTERM runs the real binary and stops it with SIGTERM.
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "readreceiptd")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-data", data, "-log-format", "json")
	cmd.Env = append(os.Environ(), "READRECEIPTD_SECRET=")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Wait for the listening line, then for health.
	re := regexp.MustCompile(`"url":"(http://[^"]+)/"`)
	var base string
	waitFor(t, func() bool {
		m := re.FindStringSubmatch(stderr.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	if got := getText(t, base+"/healthz"); !strings.Contains(got, "ok") {
		t.Fatalf("healthz: %s", got)
	}
	// The demo page is on by default.
	if got := getText(t, base+"/"); !strings.Contains(strings.ToLower(got), "<html") {
		t.Fatalf("no demo page at /: %.80q", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30s after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "store closed") {
		t.Fatalf("no clean store close:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "generated") {
		t.Fatalf("no notice of the generated secret:\n%s", stderr.String())
	}
}
