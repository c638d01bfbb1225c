package compare

import (
	"strings"
	"testing"
)

const sampleOutput = `# bench/run -quick, 2026-01-01
goos: linux
BenchmarkW1/sys=engine/members=100-2     	  10	  1000 ns/op	  2000000 receipts/s	  100 B/op	  2 allocs/op
BenchmarkW1/sys=engine/members=10k-2     	  10	  1000 ns/op	  1000000 receipts/s	  100 B/op	  2 allocs/op
BenchmarkW1/sys=engine/members=10k-2     	  10	  1000 ns/op	  3000000 receipts/s	  100 B/op	  2 allocs/op
BenchmarkW1/sys=engine/members=10k-2     	  10	  1000 ns/op	  1200000 receipts/s	  100 B/op	  2 allocs/op
BenchmarkW1/sys=redis/members=100-2      	  10	  1000 ns/op	  200000 receipts/s
BenchmarkW1/sys=redis/members=10k-2      	  10	  1000 ns/op	  100000 receipts/s
BenchmarkW3/sys=engine/members=100/filter=unread-2   	  10	  500 ns/op
BenchmarkW3/sys=engine/members=100k/filter=unread-2  	  10	  800 ns/op
BenchmarkW3/sys=postgres/members=100k/filter=unread-2  	  10	  80000 ns/op
BenchmarkW5/sys=engine/members=1M-2  	  10	  200000 ns/op	  1300 B/op	  30 allocs/op
BenchmarkW5Concurrent/sys=engine/members=1M-2  	  10	  5000 ns/op	  200000 tracks/s	  1300 B/op	  30 allocs/op
BenchmarkW5Concurrent/sys=postgres/members=1M-2  	  10	  100000 ns/op	  10000 tracks/s	  3000 B/op	  60 allocs/op
BenchmarkW6/sys=map/members=200/messages=10k
    bench_test.go:1: map: not measured
--- SKIP: BenchmarkW5/sys=engine/members=1M-2  	  10	  200000 ns/op	  1300 B/op	  30 allocs/op
BenchmarkW5Concurrent/sys=engine/members=1M-2  	  10	  5000 ns/op	  200000 tracks/s	  1300 B/op	  30 allocs/op
BenchmarkW5Concurrent/sys=postgres/members=1M-2  	  10	  100000 ns/op	  10000 tracks/s	  3000 B/op	  60 allocs/op
BenchmarkW6/sys=map/members=200/messages=10k
PASS
`

func TestReport(t *testing.T) {
	res, err := ParseResults(strings.NewReader(sampleOutput))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := res.Median("BenchmarkW1/sys=engine/members=10k", "receipts/s"); m != 1_200_000 {
		t.Errorf("median of three runs = %v, want 1200000", m)
	}
	var out strings.Builder
	if err := res.WriteReport(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"bench/run -quick, 2026-01-01  \n",
		"| W1 | receipts/s | 1200000 | 100000 | - | - | - | 12x | - | - | - | members=10k |",
		"\nW1 receipts/s engine=1200000 redis=100000 ratio_redis=12.00\n",
		// The largest group for W3; a lower cost is better.
		"\nW3 ns/page-unread engine=800 postgres=80000 ratio_postgres=100.00\n",
		// W8: ns per receipt at 10k over that at 100: engine 833/500,
		// redis 10000/5000; redis grows 1.2 times as much.
		"\nW8 growth-W1 engine=1.67 redis=2 ratio_redis=1.20\n",
		"\nW8 growth-W3-unread engine=1.6\n",
		// W5's single caller and its concurrent callers are separate
		// rows; more tracks per second is better.
		"\nW5 ns/track engine=200000\n",
		"| W5 | tracks/s-concurrent | 200000 | - | 10000 | - | - | - | 20x | - | - | members=1M |",
		"\nW5 tracks/s-concurrent engine=200000 postgres=10000 ratio_postgres=20.00\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "W6") {
		t.Errorf("report has a W6 row from a skipped benchmark:\n%s", out.String())
	}
}

func TestParseResultsRejectsGarbledValues(t *testing.T) {
	_, err := ParseResults(strings.NewReader("BenchmarkW2/sys=engine/members=10k-2  10  12x ns/op\n"))
	if err == nil {
		t.Fatal("a garbled value parsed")
	}
}

const redisSample = `BenchmarkW1/sys=engine-redis/members=10k-2   	  10	  1000 ns/op	  30000 receipts/s	  50000 receipts/s/core	  20 redis-script-us/receipt
BenchmarkW1/sys=engine-redis+wait/members=10k-2   	  10	  1000 ns/op	  20000 receipts/s	  50000 receipts/s/core	  20 redis-script-us/receipt
BenchmarkW1/sys=redis/members=10k-2   	  10	  1000 ns/op	  40000 receipts/s	  100000 receipts/s/core	  10 redis-script-us/receipt
BenchmarkW1/sys=redis+wait/members=10k-2   	  10	  1000 ns/op	  10000 receipts/s	  100000 receipts/s/core	  10 redis-script-us/receipt
BenchmarkW1/sys=engine/members=10k-2   	  10	  1000 ns/op	  400000 receipts/s
BenchmarkW4Big/sys=engine-redis/members=1M/readers=10-2   	  10	  1000 ns/op	  40000 B/msg-spread	  300 B/msg-front
BenchmarkW4Big/sys=redis/members=1M/readers=10-2   	  10	  1000 ns/op	  160000 B/msg-spread	  130000 B/msg-front
`

func TestRedisReport(t *testing.T) {
	res, err := ParseResults(strings.NewReader(redisSample))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := res.WriteReport(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// The main table is unchanged: the engine against the peer.
		"\nW1 receipts/s engine=400000 redis=40000 ratio_redis=10.00\n",
		"| W1 | receipts/s | 30000 | 20000 | 40000 | 10000 | 0.75x | 2x | members=10k |",
		"\non-redis W1 redis-script-us/receipt engine-redis=20 engine-redis+wait=20 redis=10 redis+wait=10 ratio_redis=0.50 ratio_redis+wait=0.50\n",
		"\non-redis W1 receipts/s/core engine-redis=50000 engine-redis+wait=50000 redis=100000 redis+wait=100000 ratio_redis=0.50",
		"\non-redis W4Big B/msg-spread engine-redis=40000 redis=160000 ratio_redis=4.00\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\nW1 redis-script-us") {
		t.Errorf("the main table has the Redis-only rows:\n%s", out.String())
	}
}
