// Command readreceiptd is a read-receipt server: it embeds the readreceipt
// engine on a Pebble directory and serves, on loopback by default, an
// HTTP/JSON API, a WebSocket of events (MESSAGE_READ_RECEIPT_RECEIVED and
// MESSAGE_DELIVERY_RECEIPT_RECEIVED to senders, MESSAGE_READ_BY_SELF to a
// reader's own connections), health and Prometheus metrics, and a demo
// page.
//
// Besides the IM SDK's read receipts it keeps delivery receipts, read-up-to
// marks per conversation and thread, private receipts (PUT /v1/me/privacy),
// each user's own read state for their other devices, and, with -read-times,
// when each member read a group message.
//
// Usage:
//
//	readreceiptd [flags]                  serve
//	readreceiptd token -user ID [-ttl D]  print a token for user ID
//
// # Configuration
//
// Every flag has an environment variable; a flag given on the command line
// wins over it.
//
//	-addr      READRECEIPTD_ADDR      listen address (127.0.0.1:8080)
//	-data      READRECEIPTD_DATA      data directory (./data)
//	-secret    READRECEIPTD_SECRET    app secret, at least 16 bytes (see below)
//	-admin     READRECEIPTD_ADMIN     the administrator's user ID (administrator)
//	-demo      READRECEIPTD_DEMO      serve the demo page at / (true)
//	-sync      READRECEIPTD_SYNC      sync each write before acknowledging it (true)
//	-log-format READRECEIPTD_LOG_FORMAT text or json (text)
//	-shutdown-timeout READRECEIPTD_SHUTDOWN_TIMEOUT  wait for calls in progress (30s)
//	-event-queue READRECEIPTD_EVENT_QUEUE  event messages a connection may fall behind (64)
//	-demo-public READRECEIPTD_DEMO_PUBLIC  allow demo mode on a non-loopback -addr (false)
//	-demo-town-hall READRECEIPTD_DEMO_TOWN_HALL  members of the demo's town hall, 0 for none (1000000)
//	-max-token-ttl READRECEIPTD_MAX_TOKEN_TTL  longest token lifetime accepted or minted (24h)
//	-redis     READRECEIPTD_REDIS     keep the state in Redis: standalone address or cluster seeds (off)
//	-redis-prefix READRECEIPTD_REDIS_PREFIX  prefix of the engine's Redis keys (rr:)
//	-read-times READRECEIPTD_READ_TIMES  keep group read times (false)
//	-reciprocal-privacy READRECEIPTD_RECIPROCAL_PRIVACY  private users see no reads (false)
//
// Limits, which keep the server bounded under hostile clients:
//
//	-read-header-timeout READRECEIPTD_READ_HEADER_TIMEOUT  to read a request's headers (5s)
//	-read-timeout      READRECEIPTD_READ_TIMEOUT      to read a whole request, body included (10s)
//	-write-timeout     READRECEIPTD_WRITE_TIMEOUT     to write a response (30s)
//	-idle-timeout      READRECEIPTD_IDLE_TIMEOUT      an idle keep-alive connection is kept (2m)
//	-max-header-bytes  READRECEIPTD_MAX_HEADER_BYTES  largest request header block (16384)
//	-max-conns         READRECEIPTD_MAX_CONNS         connections open at once, WebSockets included
//	                   (the open-file limit less 256, within 64 to 10000)
//	-max-event-conns-per-user READRECEIPTD_MAX_EVENT_CONNS_PER_USER  event sockets per user (8)
//
// A client that stops sending headers is disconnected after
// -read-header-timeout; one that stops mid-body is answered 408 after
// -read-timeout and disconnected. Over -max-conns a new connection is
// answered 503 (code 70201) and closed at once; the deadlines free each
// slot within seconds. Event WebSockets are exempt from the read and
// write timeouts (they are pinged every 30s and each write is bounded).
// Raise -read-timeout for very large membership lists on slow links; a
// -max-conns set by hand should stay under the process's open-file limit.
//
// With -redis, several readreceiptd started with the same -redis,
// -redis-prefix and -secret serve one state: each receipt is recorded
// once whichever server it reaches, and a sender connected to one server
// gets the events of receipts recorded through another. -secret is then
// required. /healthz answers 503 while Redis cannot be reached.
//
// The data directory holds the Pebble store (<data>/store) and, if the
// server generated it, the secret (<data>/secret). Without -secret the
// server reads <data>/secret; if there is none, it generates 32 random
// bytes, stores them there in hex with mode 0600 and prints them once to
// stderr. There is no built-in secret.
//
// # Authentication
//
// Clients send Authorization: Bearer <token>. A token is
// base64url(JSON {"u":userID,"exp":unixSeconds}) "." base64url(HMAC-SHA256
// (secret, first part)), unpadded, as the token subcommand prints it. The
// user named by -admin is the administrator, who alone may track and
// delete messages and change groups. Failures answer 401 with code 70001
// (no token), 70002 (bad signature), 70003 (expired) or 70004 (malformed),
// and 403 with 70005 for a user on an administrator endpoint; a 401
// carries WWW-Authenticate: Bearer. The signature is checked in its one
// canonical spelling (43 base64url characters), and a token whose expiry
// lies more than -max-token-ttl ahead is refused (70004); the token
// subcommand will not mint one. Only the WebSocket handshakes (/v1/events,
// /demo/stream) take the token as ?token=, for browsers, which cannot
// set headers there; any other request with ?token= is refused (70004)
// so that tokens do not end up in URLs. Logs carry request paths only,
// never query strings or headers.
//
// # Input
//
// Every answer is JSON with a code, errors included, and carries
// X-Content-Type-Options: nosniff (see openapi.yaml for the table of
// codes). JSON bodies must be sent as Content-Type: application/json
// (else 415). A body that is not valid UTF-8, or holds an unpaired UTF-16
// surrogate escape, is refused with 400 (10004) instead of being decoded
// with U+FFFD, which would make two different IDs one. A wrong method on
// a known path answers 405 with Allow; an unknown path 404. The event
// socket's refusals (426 not a handshake, 400 malformed, 403 another
// origin, 429 over the per-user cap) are JSON too. Only net/http's own
// answers to unparseable requests (400) and oversized headers (431) are
// plain text.
//
// A user learns nothing about messages that are not theirs: asking for a
// message someone else sent, receipting one the user does not receive, or
// naming a group that does not exist all answer 10062, as for a message
// never tracked. The administrator gets the engine's precise codes.
//
// # Demo mode
//
// Demo mode (on by default) hands a token to anyone who names a demo user
// at /demo/login. The server refuses to start in demo mode when -admin
// names a demo user (it would hand out the administrator's token), or
// when -addr is not a loopback address, unless -demo-public is given.
//
// The demo page can also open the town hall, a group of -demo-town-hall
// members (a million by default), created in the background in slices of
// 10,000 when a page first opens it (POST /demo/townhall; GET shows the
// progress). A simulated crowd, one goroutine, reads the latest town hall
// message through SendMessageReadReceipt at the rate the page sets, at
// most 1000 receipts a second (each one is an event on the sender's
// socket). Shutdown stops both. Town hall messages are kept in memory
// only; the group and its receipts are in the engine.
//
// # API
//
// openapi.yaml (also served at /openapi.yaml) documents every endpoint,
// its fields (the SDK's names) and the HTTP status of each error code.
// The tests check every exchange they make against it; lint-openapi beside
// it checks the file itself with an outside validator (the Redocly CLI,
// from npm).
//
// # Operations
//
// GET /healthz answers 200 {"status":"ok"}, and 503 once shutdown has
// begun. GET /metrics serves Prometheus metrics: readreceiptd_requests_total
// {endpoint,code}, readreceiptd_request_duration_seconds{endpoint},
// readreceiptd_receipts_recorded_total, readreceiptd_events_sent_total,
// readreceiptd_events_dropped_total, readreceiptd_websocket_slow_closed_total,
// readreceiptd_websocket_connections and readreceiptd_connections_refused_total
// (connections answered 503 over -max-conns). On SIGTERM or SIGINT the server
// closes event connections (1001), stops accepting, lets calls in progress
// finish, then closes the engine and its store.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/readreceipt/readreceipt"
	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "readreceiptd:", err)
		os.Exit(1)
	}
}

// run runs the command with args (without the program name) until ctx ends,
// then shuts down gracefully. Logs and notices go to stderr.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	return runWith(ctx, args, runEnv{stdout: os.Stdout, stderr: stderr, getenv: os.Getenv})
}

// runEnv is what run needs from its surroundings; tests supply their own.
type runEnv struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// configure, if set, adjusts the configuration after flags and
	// environment are read.
	configure func(*config)
	// middleware, if set, wraps the server's handler.
	middleware func(http.Handler) http.Handler
	// ready, if set, is called once the server listens on addr.
	ready func(addr string, s *server)
	// listener, if set, wraps the listener.
	listener func(net.Listener) net.Listener
}

func runWith(ctx context.Context, args []string, env runEnv) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], env)
	}
	cfg := defaultConfig()
	fs := flag.NewFlagSet("readreceiptd", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	envErr := configFlags(fs, &cfg, env.getenv)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  readreceiptd [flags]\n  readreceiptd token -user ID [-ttl 24h] [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (the only subcommand is token)", fs.Arg(0))
	}
	if err := envErr(); err != nil {
		return err
	}
	if env.configure != nil {
		env.configure(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := cfg.validateServe(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	secret, err := loadSecret(&cfg, true, env.stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.LogFormat, env.stderr)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if env.listener != nil {
		ln = env.listener(ln)
	}
	eng, closeState, err := openEngine(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeState()
	s, err := newServer(cfg, secret, eng, logger)
	if err != nil {
		ln.Close()
		return errors.Join(err, eng.Close())
	}
	var h http.Handler = s
	if env.middleware != nil {
		h = env.middleware(h)
	}
	return s.serve(ctx, ln, h, env.ready)
}

// openEngine opens the engine on the Pebble store of the data directory,
// or on Redis with -redis. closeState releases what the engine does not
// (the Redis client), after the engine is closed.
func openEngine(ctx context.Context, cfg config) (*readreceipt.Engine, func(), error) {
	opts := []readreceipt.Option{readreceipt.WithReadTimes(cfg.ReadTimes), readreceipt.WithReciprocalPrivacy(cfg.ReciprocalPrivacy)}
	if cfg.Redis == "" {
		eng, err := readreceipt.OpenDir(filepath.Join(cfg.DataDir, storeDir), append(opts, readreceipt.WithSyncWrites(cfg.Sync))...)
		return eng, func() {}, err
	}
	client, err := redisClient(ctx, strings.Split(cfg.Redis, ","))
	if err != nil {
		return nil, nil, err
	}
	eng, err := readreceipt.OpenRedis(ctx, readreceipt.RedisOptions{Client: client, Prefix: cfg.RedisPrefix, NoWait: !cfg.Sync}, opts...)
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("open the engine on Redis %s: %w", cfg.Redis, err)
	}
	return eng, func() { client.Close() }, nil
}

// redisClient connects to a standalone Redis or a cluster: several
// addresses are cluster seeds; one is a cluster node if the server says it
// runs in cluster mode.
func redisClient(ctx context.Context, addrs []string) (redis.UniversalClient, error) {
	for i := range addrs {
		addrs[i] = strings.TrimSpace(addrs[i])
	}
	cluster := len(addrs) > 1
	if !cluster {
		c := redis.NewClient(&redis.Options{Addr: addrs[0], DialTimeout: 2 * time.Second})
		info, err := c.Info(ctx, "cluster").Result()
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("reach Redis at %s: %w", addrs[0], err)
		}
		cluster = strings.Contains(info, "cluster_enabled:1")
	}
	if cluster {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, DialTimeout: 2 * time.Second,
			ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, MaxRedirects: 3}), nil
	}
	return redis.NewClient(&redis.Options{Addr: addrs[0], DialTimeout: 2 * time.Second,
		ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second}), nil
}

// serve serves h on ln until ctx ends, then shuts down: /healthz turns to
// 503, event connections are closed with StatusGoingAway, the listener
// stops, calls in progress finish (up to cfg.ShutdownTimeout), and the
// engine and its store are closed.
//
// The connections are capped at cfg.MaxConns, and every request is held
// to the configured deadlines and header size.
func (s *server) serve(ctx context.Context, ln net.Listener, h http.Handler, ready func(string, *server)) error {
	s.listener = newLimitListener(ln, s.cfg.MaxConns, s.metrics.refused)
	ln = s.listener
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	addr := ln.Addr().String()
	s.log.Info("listening", "url", "http://"+addr+"/", "data", s.cfg.DataDir, "admin", s.cfg.Admin,
		"demo", s.cfg.Demo, "sync", s.cfg.Sync)
	if ready != nil {
		ready(addr, s)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.stopping.Store(true)
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.close()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("calls still in progress at the shutdown timeout; closing them", "err", err)
		srv.Close()
	}
	if err := waitGroup(sctx, &s.handlers); err != nil {
		s.log.Warn("connections still open at the shutdown timeout", "err", err)
	}
	closeErr := s.eng.Close()
	if closeErr != nil {
		s.log.Error("closing the store", "err", closeErr)
	} else {
		s.log.Info("stopped; store closed")
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, closeErr)
}

// waitGroup waits for wg, or until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newLogger returns the server's structured logger.
func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// runToken is the token subcommand: it prints a token for -user, valid for
// -ttl, signed with the secret the server would use. It never generates a
// secret.
func runToken(args []string, env runEnv) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("readreceiptd token", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	envErr := configFlags(fs, &cfg, env.getenv)
	user := fs.String("user", "", "user ID the token is for (the -admin ID gives an administrator token)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  readreceiptd token -user ID [-ttl 24h] [-data DIR | -secret S]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	if err := envErr(); err != nil {
		return err
	}
	if env.configure != nil {
		env.configure(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if *user == "" || len(*user) > maxUserIDLen {
		return fmt.Errorf("token: -user must be 1 to %d bytes", maxUserIDLen)
	}
	if *ttl <= 0 {
		return fmt.Errorf("token: -ttl must be positive, not %v", *ttl)
	}
	if *ttl > cfg.MaxTokenTTL {
		return fmt.Errorf("token: -ttl %v is over -max-token-ttl %v, and the server would refuse the token", *ttl, cfg.MaxTokenTTL)
	}
	secret, err := loadSecret(&cfg, false, env.stderr)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.stdout, signToken(secret, *user, time.Now().Add(*ttl)))
	return err
}
