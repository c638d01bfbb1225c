package bench

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store/pebblestore"
)

// BenchmarkHugeGroupUnderLoad: one membership call of 1,000,000 members on
// the shipped Pebble store (pebblestore.Open(dir, nil), durable writes,
// the default engine cache) while 8 goroutines keep sending durable
// receipt calls of 5 messages each in another group of 10,000 members.
//
//   - op=create: CreateGroup of a new group of 1M members;
//   - op=add: AddGroupMembers of 1M new users to a group of 1,000.
//
// ms/op and ms/create is the membership call alone. Each receipt call is
// timed; during-* are the p99 and the largest latency of the calls that
// ran (at least in part) while the membership call ran, after-* those of
// the calls that started in the 2 s after it returned, base-* those of
// the 500 ms before it (the disk's own spread: a WAL fdatasync here
// takes 20 ms now and then with nothing else running). The 2 s after are not in ms/op. Each iteration
// starts from a settled store (memtables flushed, no compaction running).
// Every iteration adds a million members to the store, so run it with a
// small -benchtime, e.g. -benchtime=3x.
func BenchmarkHugeGroupUnderLoad(b *testing.B) {
	const (
		members  = 1_000_000
		hot      = 10_000
		callers  = 8
		batch    = 5
		after    = 2 * time.Second
		baseline = 500 * time.Millisecond
	)
	big := make([]string, members)
	for i := range big {
		big[i] = fmt.Sprintf("v%07d", i)
	}
	for _, op := range []string{"create", "add"} {
		b.Run(fmt.Sprintf("op=%s/members=1M/receipts=%dx%d/store=pebble", op, callers, batch), func(b *testing.B) {
			pst, err := pebblestore.Open(filepath.Join(b.TempDir(), "pebble"), nil)
			if err != nil {
				b.Fatal(err)
			}
			e, err := rr.Open(pst)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := e.Close(); err != nil {
					b.Error(err)
				}
				if err := pst.Close(); err != nil {
					b.Error(err)
				}
			}()
			if err := e.CreateGroup(ctx, "hot", rr.GroupWork, users(hot)); err != nil {
				b.Fatal(err)
			}
			s := &receiptState{gid: "hot", batch: batch, readers: hot - 1, uids: users(hot)}
			if _, err := s.refs(e, 0); err != nil {
				b.Fatal(err)
			}
			load := startLoad(e, s, callers)
			defer func() {
				if err := load.stop(); err != nil {
					b.Error(err)
				}
			}()
			var during, afterw, base []time.Duration
			var createTime time.Duration
			b.ReportAllocs()
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				gid := fmt.Sprintf("big%d", i)
				if op == "add" {
					if err := e.CreateGroup(ctx, gid, rr.GroupWork, users(1_000)); err != nil {
						b.Fatal(err)
					}
				}
				settlePebble(b, pst)
				time.Sleep(baseline)
				t0 := time.Now()
				b.StartTimer()
				if op == "create" {
					err = e.CreateGroup(ctx, gid, rr.GroupWork, big)
				} else {
					err = e.AddGroupMembers(ctx, gid, big)
				}
				b.StopTimer()
				t1 := time.Now()
				if err != nil {
					b.Fatal(err)
				}
				createTime += t1.Sub(t0)
				time.Sleep(after)
				if err := load.failed(); err != nil {
					b.Fatal(err)
				}
				for _, c := range load.calls() {
					end := c.start.Add(c.d)
					switch {
					case c.start.Before(t1) && end.After(t0):
						during = append(during, c.d)
					case !c.start.Before(t1) && c.start.Before(t1.Add(after)):
						afterw = append(afterw, c.d)
					case !c.start.Before(t0.Add(-baseline)) && end.Before(t0):
						base = append(base, c.d)
					}
				}
				if info, err := e.GetGroup(ctx, gid); err != nil || info.Members < members {
					b.Fatalf("group %s: %+v, %v", gid, info, err)
				}
			}
			ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
			b.ReportMetric(ms(createTime)/float64(b.N), "ms/create")
			b.ReportMetric(ms(percentile(during, 0.99)), "during-p99-ms")
			b.ReportMetric(ms(percentile(during, 1)), "during-max-ms")
			b.ReportMetric(ms(percentile(afterw, 0.99)), "after-p99-ms")
			b.ReportMetric(ms(percentile(afterw, 1)), "after-max-ms")
			b.ReportMetric(ms(percentile(base, 0.99)), "base-p99-ms")
			b.ReportMetric(ms(percentile(base, 1)), "base-max-ms")
			b.ReportMetric(float64(len(during)+len(afterw))/float64(b.N), "calls/op")
		})
	}
}

// percentile returns the q-quantile (0 < q <= 1) of ds, 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(i, 0)]
}

// settlePebble flushes the memtables and waits for the flushes and
// compactions in progress.
func settlePebble(b *testing.B, pst *pebblestore.Store) {
	if err := pst.Flush(); err != nil {
		b.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(20 * time.Millisecond) {
		m := pst.Metrics()
		if m.Compact.NumInProgress == 0 && m.Flush.NumInProgress == 0 {
			return
		}
	}
}

// timedCall is one receipt call: when it started and how long it took.
type timedCall struct {
	start time.Time
	d     time.Duration
}

// receiptLoad is callers goroutines sending receipt calls in a loop until
// stop.
type receiptLoad struct {
	done chan struct{}
	wg   sync.WaitGroup
	err  atomic.Pointer[error]

	mu  sync.Mutex
	log []timedCall
}

func startLoad(e *rr.Engine, s *receiptState, callers int) *receiptLoad {
	l := &receiptLoad{done: make(chan struct{})}
	for range callers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			w := s.worker(e)
			for {
				select {
				case <-l.done:
					return
				default:
				}
				start := time.Now()
				if err := w.send(); err != nil {
					l.err.CompareAndSwap(nil, &err)
					return
				}
				d := time.Since(start)
				l.mu.Lock()
				l.log = append(l.log, timedCall{start, d})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// calls returns and forgets the calls logged so far.
func (l *receiptLoad) calls() []timedCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.log
	l.log = nil
	return out
}

func (l *receiptLoad) failed() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *receiptLoad) stop() error {
	close(l.done)
	l.wg.Wait()
	return l.failed()
}
