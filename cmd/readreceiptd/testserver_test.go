package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// testSecret is the app secret of test servers.
const testSecret = "readreceiptd-test-secret-0123456789"

// testOption adjusts a test server.
type testOption func(*testSetup)

type testSetup struct {
	configure  []func(*config)
	logs       io.Writer
	middleware func(http.Handler) http.Handler
	listener   func(net.Listener) net.Listener
	noCheck    bool
}

// withConfig adjusts the test server's configuration.
func withConfig(f func(*config)) testOption {
	return func(ts *testSetup) { ts.configure = append(ts.configure, f) }
}

// withLogs sends the server's logs to w instead of the test log.
func withLogs(w io.Writer) testOption {
	return func(ts *testSetup) { ts.logs = w }
}

// withMiddleware wraps the server's handler.
func withMiddleware(m func(http.Handler) http.Handler) testOption {
	return func(ts *testSetup) { ts.middleware = m }
}

// withoutCheck leaves out the invariant check at the end of the test (for
// tests that check it themselves, while what the engine needs still runs).
func withoutCheck() testOption {
	return func(ts *testSetup) { ts.noCheck = true }
}

// withListener wraps the server's listener.
func withListener(l func(net.Listener) net.Listener) testOption {
	return func(ts *testSetup) { ts.listener = l }
}

// startTestServer runs the server, as the command does, on 127.0.0.1:0
// with a temporary data directory, the fixed secret testSecret, the demo
// page on and unsynced writes (tests need no crash safety). It returns
// the base URL ("http://127.0.0.1:port") and the server. When the test
// ends, the engine's invariants are checked and the server is shut down
// gracefully; a failure of either fails the test.
func startTestServer(t testing.TB, opts ...testOption) (string, *server) {
	t.Helper()
	var ts testSetup
	for _, o := range opts {
		o(&ts)
	}
	logs := ts.logs
	if logs == nil {
		logs = t.Output()
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	type started struct {
		addr string
		s    *server
	}
	ready := make(chan started, 1)
	done := make(chan error, 1)
	env := runEnv{
		stdout: io.Discard,
		stderr: logs,
		getenv: func(string) string { return "" },
		configure: func(c *config) {
			c.Addr = "127.0.0.1:0"
			c.DataDir = dir
			c.Secret = testSecret
			c.Demo = true
			c.Sync = false
			c.ShutdownTimeout = 10 * time.Second
			for _, f := range ts.configure {
				f(c)
			}
		},
		middleware: ts.middleware,
		listener:   ts.listener,
		ready:      func(addr string, s *server) { ready <- started{addr, s} },
	}
	go func() { done <- runWith(ctx, nil, env) }()
	var st started
	select {
	case st = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server did not start within 30s")
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			if !ts.noCheck && !t.Failed() {
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := st.s.eng.Check(cctx); err != nil {
					t.Errorf("engine invariants: %v", err)
				}
				ccancel()
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("server shutdown: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("server did not shut down within 30s")
			}
		})
	})
	return "http://" + st.addr, st.s
}
