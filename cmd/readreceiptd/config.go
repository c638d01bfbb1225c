package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// minSecretLen is the shortest app secret the server accepts, in bytes.
const minSecretLen = 16

// secretFile is the name, inside the data directory, of the file that keeps
// a generated secret across restarts.
const secretFile = "secret"

// storeDir is the name, inside the data directory, of the Pebble store.
const storeDir = "store"

// config is the server's configuration, from flags and environment variables.
type config struct {
	// Addr is the listen address. Default 127.0.0.1:8080 (loopback only).
	Addr string
	// DataDir holds the Pebble store (DataDir/store) and, when the secret
	// was generated, DataDir/secret. Default ./data.
	DataDir string
	// Secret is the app secret that signs user tokens (at least 16 bytes).
	// Empty: read DataDir/secret, or generate one there.
	Secret string
	// Admin is the user ID whose tokens are administrator tokens.
	// Default "administrator".
	Admin string
	// Demo serves the demo page. Default true.
	Demo bool
	// Sync makes every acknowledged write durable before the call returns.
	// Default true.
	Sync bool
	// LogFormat is "text" (default) or "json".
	LogFormat string
	// ShutdownTimeout bounds how long shutdown waits for calls in progress.
	// Default 30s.
	ShutdownTimeout time.Duration
	// EventQueue is how many event messages may wait for one WebSocket
	// connection before it is dropped as too slow. Default 64.
	EventQueue int
	// DemoTownHall is the size of the demo's town hall group, created in
	// the background when the page opens it; 0 leaves it out. Default
	// 1,000,000.
	DemoTownHall int
	// DemoPublic allows demo mode on an address that is not loopback.
	// Default false: demo mode hands tokens to anyone who asks.
	DemoPublic bool

	// Limits that keep the server bounded under hostile clients.

	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. Default
	// 10s; raise it for very large membership lists on slow links.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. Default 30s. WebSocket
	// connections are exempt from both once upgraded (they have their own
	// deadlines).
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request. Default 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block. Default 16 KiB.
	MaxHeaderBytes int
	// MaxConns caps the connections open at once, WebSockets included;
	// over it a new connection is answered 503 and closed. Default: the
	// open-file limit less fdReserve, within [64, 10000] (1024 where the
	// limit is unknown), so that connections never take the descriptors
	// the store needs.
	MaxConns int
	// MaxEventConnsPerUser caps one user's event WebSockets; over it the
	// handshake is answered 429. Default 8.
	MaxEventConnsPerUser int
	// MaxTokenTTL is the longest lifetime a token may have: longer ones
	// are refused, and the token subcommand will not mint them. Default
	// 24h.
	MaxTokenTTL time.Duration
	// Redis, when set, keeps the engine's state in Redis instead of the
	// Pebble store of DataDir: one address of a standalone server, or seed
	// addresses of a cluster (a single address of a cluster node is
	// detected), comma-separated. Several servers with the same Redis,
	// RedisPrefix and Secret serve one state.
	Redis string
	// RedisPrefix starts every Redis key of the engine. Default "rr:".
	RedisPrefix string
	// ReadTimes keeps when each member read a group message (the engine's
	// WithReadTimes): member pages then carry read times, and
	// /v1/receipts/read-times answers with them. Default false.
	ReadTimes bool
	// ReciprocalPrivacy hides others' reads from a user whose own
	// receipts are private (the engine's WithReciprocalPrivacy). Default
	// false.
	ReciprocalPrivacy bool
}

// fdReserve is how many open files the default -max-conns leaves to the
// store, the log and the listener.
const fdReserve = 256

// defaultMaxConns is the default -max-conns for an open-file limit (0:
// unknown).
func defaultMaxConns(limit uint64) int {
	if limit == 0 {
		return 1024
	}
	if limit < 64+fdReserve {
		return 64
	}
	return int(min(limit-fdReserve, 10000))
}

// envPrefix is the prefix of every environment variable the server reads.
const envPrefix = "READRECEIPTD_"

// defaultConfig returns the configuration with every default applied.
func defaultConfig() config {
	return config{
		Addr:            "127.0.0.1:8080",
		DataDir:         "./data",
		Admin:           "administrator",
		Demo:            true,
		Sync:            true,
		LogFormat:       "text",
		ShutdownTimeout: 30 * time.Second,
		EventQueue:      64,
		DemoTownHall:    1_000_000,
		RedisPrefix:     "rr:",

		ReadHeaderTimeout:    5 * time.Second,
		ReadTimeout:          10 * time.Second,
		WriteTimeout:         30 * time.Second,
		IdleTimeout:          2 * time.Minute,
		MaxHeaderBytes:       16 << 10,
		MaxConns:             defaultMaxConns(fdLimit()),
		MaxEventConnsPerUser: 8,
		MaxTokenTTL:          24 * time.Hour,
	}
}

// configFlags registers the flags shared by the server and the token
// subcommand on fs, with their defaults taken from the environment.
// It returns a function that reports environment values that failed to
// parse.
func configFlags(fs *flag.FlagSet, cfg *config, getenv func(string) string) func() error {
	var envErrs []error
	str := func(p *string, name, env, usage string) {
		if v := getenv(envPrefix + env); v != "" {
			*p = v
		}
		fs.StringVar(p, name, *p, usage+" (env "+envPrefix+env+")")
	}
	boolean := func(p *bool, name, env, usage string) {
		if v := getenv(envPrefix + env); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s%s: %q is not a boolean", envPrefix, env, v))
			} else {
				*p = b
			}
		}
		fs.BoolVar(p, name, *p, usage+" (env "+envPrefix+env+")")
	}
	str(&cfg.DataDir, "data", "DATA", "data directory: the Pebble store and a generated secret live here")
	str(&cfg.Secret, "secret", "SECRET", "app secret that signs user tokens, at least 16 bytes; empty: read <data>/secret or generate it")
	str(&cfg.Admin, "admin", "ADMIN", "user ID whose tokens act as the administrator")
	str(&cfg.Addr, "addr", "ADDR", "listen address")
	boolean(&cfg.Demo, "demo", "DEMO", "serve the demo page at /")
	boolean(&cfg.Sync, "sync", "SYNC", "sync every write before acknowledging it (false trades crash safety for latency)")
	boolean(&cfg.ReadTimes, "read-times", "READ_TIMES", "keep when each member read a group message (2 to 7 bytes a receipt): member pages and /v1/receipts/read-times carry the times")
	boolean(&cfg.ReciprocalPrivacy, "reciprocal-privacy", "RECIPROCAL_PRIVACY", "a user whose receipts are private sees nobody else's reads either (code 91011)")
	duration := func(p *time.Duration, name, env, usage string) {
		if v := getenv(envPrefix + env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s%s: %q is not a duration", envPrefix, env, v))
			} else {
				*p = d
			}
		}
		fs.DurationVar(p, name, *p, usage+" (env "+envPrefix+env+")")
	}
	integer := func(p *int, name, env, usage string) {
		if v := getenv(envPrefix + env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s%s: %q is not a number", envPrefix, env, v))
			} else {
				*p = n
			}
		}
		fs.IntVar(p, name, *p, usage+" (env "+envPrefix+env+")")
	}
	str(&cfg.LogFormat, "log-format", "LOG_FORMAT", "log format: text or json")
	str(&cfg.Redis, "redis", "REDIS", "keep the state in Redis: a standalone address or cluster seed addresses, comma-separated (default: the Pebble store in -data)")
	str(&cfg.RedisPrefix, "redis-prefix", "REDIS_PREFIX", "prefix of every Redis key; servers sharing a state use the same")
	duration(&cfg.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", "how long shutdown waits for calls in progress")
	integer(&cfg.EventQueue, "event-queue", "EVENT_QUEUE", "event messages that may wait for one WebSocket connection before it is dropped")
	integer(&cfg.DemoTownHall, "demo-town-hall", "DEMO_TOWN_HALL", "members of the demo's town hall group, created in the background when the page opens it (0: no town hall)")
	boolean(&cfg.DemoPublic, "demo-public", "DEMO_PUBLIC", "allow demo mode on an address that is not loopback (demo mode hands tokens to anyone)")
	duration(&cfg.ReadHeaderTimeout, "read-header-timeout", "READ_HEADER_TIMEOUT", "time allowed to read a request's headers")
	duration(&cfg.ReadTimeout, "read-timeout", "READ_TIMEOUT", "time allowed to read a whole request, body included")
	duration(&cfg.WriteTimeout, "write-timeout", "WRITE_TIMEOUT", "time allowed to write a response (WebSockets are exempt)")
	duration(&cfg.IdleTimeout, "idle-timeout", "IDLE_TIMEOUT", "how long an idle keep-alive connection is kept")
	integer(&cfg.MaxHeaderBytes, "max-header-bytes", "MAX_HEADER_BYTES", "largest request header block, in bytes")
	integer(&cfg.MaxConns, "max-conns", "MAX_CONNS", "most connections open at once; over it new ones are answered 503 and closed")
	integer(&cfg.MaxEventConnsPerUser, "max-event-conns-per-user", "MAX_EVENT_CONNS_PER_USER", "most event WebSockets one user may hold; over it the handshake is answered 429")
	duration(&cfg.MaxTokenTTL, "max-token-ttl", "MAX_TOKEN_TTL", "longest token lifetime accepted (and minted by the token subcommand)")
	return func() error { return errors.Join(envErrs...) }
}

// validate checks the configuration that does not depend on the data
// directory.
func (c *config) validate() error {
	if c.Admin == "" {
		return errors.New("-admin must not be empty")
	}
	if c.DataDir == "" {
		return errors.New("-data must not be empty")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("-log-format must be text or json, not %q", c.LogFormat)
	}
	if c.DemoTownHall != 0 && (c.DemoTownHall <= len(demoUsers) || c.DemoTownHall > 10_000_000) {
		return fmt.Errorf("-demo-town-hall must be 0 or %d to 10000000 members, not %d", len(demoUsers)+1, c.DemoTownHall)
	}
	if c.EventQueue < 1 {
		return fmt.Errorf("-event-queue must be at least 1, not %d", c.EventQueue)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("-shutdown-timeout must be positive, not %v", c.ShutdownTimeout)
	}
	if c.Redis != "" && c.Secret == "" {
		return errors.New("-redis needs -secret: every server sharing the state must sign tokens with the same secret")
	}
	if c.Secret != "" && len(c.Secret) < minSecretLen {
		return fmt.Errorf("the secret is %d bytes; at least %d are needed", len(c.Secret), minSecretLen)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"-read-header-timeout", c.ReadHeaderTimeout}, {"-read-timeout", c.ReadTimeout},
		{"-write-timeout", c.WriteTimeout}, {"-idle-timeout", c.IdleTimeout}, {"-max-token-ttl", c.MaxTokenTTL},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be positive, not %v", d.name, d.v)
		}
	}
	if c.MaxHeaderBytes < 1024 {
		return fmt.Errorf("-max-header-bytes must be at least 1024, not %d", c.MaxHeaderBytes)
	}
	if c.MaxConns < 1 {
		return fmt.Errorf("-max-conns must be at least 1, not %d", c.MaxConns)
	}
	if c.MaxEventConnsPerUser < 1 {
		return fmt.Errorf("-max-event-conns-per-user must be at least 1, not %d", c.MaxEventConnsPerUser)
	}
	return nil
}

// validateServe checks what only the server (not the token subcommand)
// depends on: demo mode's safety.
func (c *config) validateServe() error {
	if !c.Demo {
		return nil
	}
	if isDemoUser(c.Admin) {
		return fmt.Errorf("-admin %q is a demo user, and demo mode hands any demo user's token to anyone: choose another -admin, or run with -demo=false", c.Admin)
	}
	if !c.DemoPublic && !isLoopback(c.Addr) {
		return fmt.Errorf("demo mode hands tokens to anyone who asks, and -addr %s is not a loopback address: run with -demo=false, or give -demo-public to serve the demo there anyway", c.Addr)
	}
	return nil
}

// isLoopback reports whether the listen address addr only accepts
// connections from this machine: a loopback IP, or the name localhost.
// An empty host (every interface) is not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadSecret returns the secret to sign tokens with: the configured one,
// else the one stored in the data directory. If there is none and generate
// is true, it makes 32 random bytes, stores their hex form in the data
// directory with mode 0600, and prints it once to notice. The server never
// falls back to a built-in secret.
func loadSecret(cfg *config, generate bool, notice io.Writer) ([]byte, error) {
	if cfg.Secret != "" {
		return []byte(cfg.Secret), nil
	}
	path := filepath.Join(cfg.DataDir, secretFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		s := strings.TrimSpace(string(b))
		if len(s) < minSecretLen {
			return nil, fmt.Errorf("%s holds a secret of %d bytes; at least %d are needed", path, len(s), minSecretLen)
		}
		return []byte(s), nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read secret: %w", err)
	case !generate:
		return nil, fmt.Errorf("no secret: give -secret or %sSECRET, or start the server once to generate %s", envPrefix, path)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	s := hex.EncodeToString(raw)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	// O_EXCL: never overwrite a secret another process has just written.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("store secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("store secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("store secret: %w", err)
	}
	fmt.Fprintf(notice, "readreceiptd: no secret was given, so one was generated and stored in %s (mode 0600).\n"+
		"It signs user tokens; keep it private. It is printed this once:\n\n    %s\n\n"+
		"Mint a token with: readreceiptd token -data %s -user <userID>\n", path, s, cfg.DataDir)
	return []byte(s), nil
}
