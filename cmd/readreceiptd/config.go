package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
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
	// Redis, when set, keeps the engine's state in Redis instead of the
	// Pebble store of DataDir: one address of a standalone server, or seed
	// addresses of a cluster (a single address of a cluster node is
	// detected), comma-separated. Several servers with the same Redis,
	// RedisPrefix and Secret serve one state.
	Redis string
	// RedisPrefix starts every Redis key of the engine. Default "rr:".
	RedisPrefix string
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
		RedisPrefix:     "rr:",
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
	str(&cfg.LogFormat, "log-format", "LOG_FORMAT", "log format: text or json")
	str(&cfg.Redis, "redis", "REDIS", "keep the state in Redis: a standalone address or cluster seed addresses, comma-separated (default: the Pebble store in -data)")
	str(&cfg.RedisPrefix, "redis-prefix", "REDIS_PREFIX", "prefix of every Redis key; servers sharing a state use the same")
	if v := getenv(envPrefix + "SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%sSHUTDOWN_TIMEOUT: %q is not a duration", envPrefix, v))
		} else {
			cfg.ShutdownTimeout = d
		}
	}
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long shutdown waits for calls in progress (env "+envPrefix+"SHUTDOWN_TIMEOUT)")
	if v := getenv(envPrefix + "EVENT_QUEUE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%sEVENT_QUEUE: %q is not a number", envPrefix, v))
		} else {
			cfg.EventQueue = n
		}
	}
	fs.IntVar(&cfg.EventQueue, "event-queue", cfg.EventQueue, "event messages that may wait for one WebSocket connection before it is dropped (env "+envPrefix+"EVENT_QUEUE)")
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
	return nil
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
