package compare

import (
	"context"
	"fmt"
	rr "github.com/readreceipt/readreceipt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// The servers of the peers. bench/run starts private ones and sets these;
// tests and benchmarks of a peer whose server is not reachable are skipped.
var (
	redisAddr = envOr("READRECEIPT_BENCH_REDIS", "127.0.0.1:6390")
	pgDSN     = envOr("READRECEIPT_BENCH_PG", "postgres://postgres@127.0.0.1:5439/postgres?sslmode=disable")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// systemNames are the systems in report order, the engine first.
var systemNames = []string{"engine", "redis", "postgres", "map", "pebblekv"}

var (
	probeOnce sync.Once
	redisDown error
	pgDown    error
)

// probe checks once per process whether the peers' servers answer.
func probe() {
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1})
		redisDown = c.Ping(ctx).Err()
		c.Close()
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
	case name == "redis" && redisDown != nil:
		tb.Skipf("redis-server not reachable at %s (READRECEIPT_BENCH_REDIS): start it with bench/run: %v", redisAddr, redisDown)
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
	case "redis":
		return NewRedis(ctx, redisAddr, tag+":", conns)
	case "postgres":
		return NewPostgres(ctx, pgDSN, tag, conns)
	}
	return nil, fmt.Errorf("unknown system %q", name)
}

// dropSystem closes s and removes what it left in a server.
func dropSystem(ctx context.Context, s System) error {
	switch s := s.(type) {
	case *Redis:
		var keys []string
		iter := s.c.Scan(ctx, 0, s.p+"*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 1000 {
				s.c.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			s.c.Unlink(ctx, keys...)
		}
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
