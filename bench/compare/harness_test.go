package compare

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	rr "github.com/readreceipt/readreceipt"
	"github.com/redis/go-redis/v9"
)

// The servers of the peers. bench/run starts private ones and sets these;
// tests and benchmarks of a peer whose server is not reachable are skipped.
var (
	redisAddr = envOr("READRECEIPT_BENCH_REDIS", "127.0.0.1:6390")
	pgDSN     = envOr("READRECEIPT_BENCH_PG", "postgres://postgres@127.0.0.1:5439/postgres?sslmode=disable")
	// replicaAddr is a redis-server that bench/run starts as a replica of
	// redisAddr's: the "+wait" systems run only when it is set and
	// answers, and the benchmarks attach and detach it (REPLICAOF) so
	// that the other Redis systems run without a replica.
	replicaAddr = os.Getenv("READRECEIPT_BENCH_REDIS_REPLICA")
)

// waitTimeout bounds each WAIT of the "+wait" systems.
const waitTimeout = time.Second

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// systemNames are the systems in report order, the engine first.
// The "+wait" ones wait for a replica on every receipt.
var systemNames = []string{"engine", "engine-redis", "engine-redis+wait", "redis", "redis+wait", "postgres", "map", "pebblekv"}

// onRedis reports whether system name keeps its state in the Redis server.
func onRedis(name string) bool {
	return strings.HasPrefix(name, "redis") || strings.HasPrefix(name, "engine-redis")
}

// waits reports whether system name waits for a replica.
func waits(name string) bool { return strings.HasSuffix(name, "+wait") }

var (
	probeOnce   sync.Once
	redisDown   error
	replicaDown error
	pgDown      error
)

// probe checks once per process whether the peers' servers answer.
func probe() {
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1})
		redisDown = c.Ping(ctx).Err()
		c.Close()
		replicaDown = errors.New("READRECEIPT_BENCH_REDIS_REPLICA is not set")
		if replicaAddr != "" {
			r := redis.NewClient(&redis.Options{Addr: replicaAddr, MaxRetries: -1})
			replicaDown = r.Ping(ctx).Err()
			r.Close()
		}
		if pc, err := pgx.Connect(ctx, pgDSN); err != nil {
			pgDown = err
		} else {
			pc.Close(ctx)
		}
	})
}

// skipIfDown skips tb when the server of system name is not reachable.
func skipIfDown(tb testing.TB, name string) {
	probe()
	switch {
	case onRedis(name) && redisDown != nil:
		tb.Skipf("redis-server not reachable at %s (READRECEIPT_BENCH_REDIS): start it with bench/run: %v", redisAddr, redisDown)
	case waits(name) && replicaDown != nil:
		tb.Skipf("no replica of the Redis server (READRECEIPT_BENCH_REDIS_REPLICA=%q; bench/run starts one): %v", replicaAddr, replicaDown)
	case name == "postgres" && pgDown != nil:
		tb.Skipf("PostgreSQL not reachable at %s (READRECEIPT_BENCH_PG): start it with bench/run: %v", redactDSN(pgDSN), pgDown)
	}
}

func redactDSN(dsn string) string {
	if at := strings.LastIndex(dsn, "@"); at >= 0 {
		if i := strings.Index(dsn, "://"); i >= 0 && i < at {
			return dsn[:i+3] + "...@" + dsn[at+1:]
		}
	}
	return dsn
}

var instanceSeq struct {
	sync.Mutex
	n int
}

// newSystem opens a fresh, empty instance of system name: its own directory,
// Redis key prefix or PostgreSQL schema. dir must outlive the instance.
// Callers skip first with skipIfDown.
func newSystem(ctx context.Context, name, dir string, conns int) (System, error) {
	instanceSeq.Lock()
	instanceSeq.n++
	tag := fmt.Sprintf("rrb%d_%d", os.Getpid(), instanceSeq.n)
	instanceSeq.Unlock()
	switch name {
	case "engine":
		// A cache sized for the hot state of the largest fixtures (the user
		// IDs of a 1M-member group alone take ~12 MiB), as a host serving
		// such groups would configure it: Redis keeps everything in memory
		// and PostgreSQL has its shared buffers.
		return NewEngine(dir, rr.WithCacheBytes(512<<20))
	case "pebblekv":
		return NewPebbleKV(dir)
	case "map":
		return NewMap(), nil
	case "redis", "redis+wait":
		var wait time.Duration
		if waits(name) {
			wait = waitTimeout
		}
		return NewRedis(ctx, redisAddr, tag+":", conns, wait)
	case "engine-redis", "engine-redis+wait":
		// The same cache as the embedded engine's; it holds only member
		// indexes and membership chunks here.
		return NewEngineRedis(ctx, redisAddr, tag+":", conns, waits(name), rr.WithCacheBytes(512<<20))
	case "postgres":
		return NewPostgres(ctx, pgDSN, tag, conns)
	}
	return nil, fmt.Errorf("unknown system %q", name)
}

// dropSystem closes s and removes what it left in a server.
func dropSystem(ctx context.Context, s System) error {
	switch s := s.(type) {
	case *Redis:
		unlinkPrefix(ctx, s.c, s.p)
	case *EngineRedis:
		unlinkPrefix(ctx, s.c, s.p)
	case *Postgres:
		err := s.with(ctx, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s.schema}.Sanitize()+" CASCADE")
			return err
		})
		if err != nil {
			return err
		}
	}
	return s.Close()
}

// unlinkPrefix deletes the keys that start with prefix, and no other.
func unlinkPrefix(ctx context.Context, c *redis.Client, prefix string) {
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			c.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		c.Unlink(ctx, keys...)
	}
}

var (
	replicaMu     sync.Mutex
	masterClient  *redis.Client
	replicaClient *redis.Client
)

// redisAdmin returns a client of the master, for INFO.
func redisAdmin() *redis.Client {
	replicaMu.Lock()
	defer replicaMu.Unlock()
	if masterClient == nil {
		masterClient = redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1})
	}
	return masterClient
}

// setReplica attaches the replica to the master (REPLICAOF) when attached is
// set, and detaches it (REPLICAOF NO ONE) otherwise, and waits until the
// master sees it so: a "+wait" system runs with one online replica, every
// other Redis system with none. Without a replica configured, it does
// nothing.
func setReplica(tb testing.TB, attached bool) {
	tb.Helper()
	if replicaAddr == "" {
		return
	}
	m := redisAdmin()
	replicaMu.Lock()
	if replicaClient == nil {
		replicaClient = redis.NewClient(&redis.Options{Addr: replicaAddr, MaxRetries: -1})
	}
	r := replicaClient
	replicaMu.Unlock()
	online := func() (int, error) {
		info, err := m.Info(ctx, "replication").Result()
		if err != nil {
			return 0, err
		}
		n, _ := infoField(info, "connected_slaves")
		if n > 0 && !strings.Contains(info, "state=online") {
			return -1, nil // attached, still syncing
		}
		return int(n), nil
	}
	n, err := online()
	if err != nil {
		tb.Fatal(err)
	}
	if attached == (n > 0) {
		return
	}
	if attached {
		host, port, err := net.SplitHostPort(redisAddr)
		if err != nil {
			tb.Fatal(err)
		}
		err = r.Do(ctx, "REPLICAOF", host, port).Err()
	} else {
		err = r.Do(ctx, "REPLICAOF", "NO", "ONE").Err()
	}
	if err != nil {
		tb.Fatalf("REPLICAOF on %s: %v", replicaAddr, err)
	}
	start := time.Now()
	for {
		n, err := online()
		if err != nil {
			tb.Fatal(err)
		}
		if attached && n > 0 || !attached && n == 0 {
			break
		}
		if time.Since(start) > 3*time.Minute {
			tb.Fatalf("the replica at %s did not %s within 3 minutes", replicaAddr, map[bool]string{true: "come online", false: "detach"}[attached])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if attached {
		// The engine re-reads a master's replica count once a second.
		time.Sleep(1100 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "replica %s: %s in %v\n", replicaAddr, map[bool]string{true: "attached", false: "detached"}[attached], time.Since(start).Round(time.Millisecond))
}
