package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The load test and benchmark drive the server over loopback HTTP with
// concurrent clients: receipt calls (one reader, loadBatch messages of a
// group) and count calls (the sender, loadBatch messages).

const (
	loadMembers  = 5000
	loadMessages = 100
	loadBatch    = 10
)

// loadEnv is a server prepared for load: a group of loadMembers with
// loadMessages tracked messages of "sender".
type loadEnv struct {
	f      *fixture
	hc     *http.Client
	tokens []string // tokens[i] is member i's; 0 is the sender
	// next hands out (reader, batch) pairs so that every receipt call
	// records new receipts until the pairs run out.
	next atomic.Int64
	// bodies[b] is the messageList of batch b.
	bodies [][]byte
}

func newLoadEnv(tb testing.TB, sync bool, opts ...testOption) *loadEnv {
	tb.Helper()
	var logs syncBuffer // keep the access log out of the output
	opts = append([]testOption{withLogs(&logs), withConfig(func(c *config) { c.Sync = sync; c.Demo = false })}, opts...)
	f := newFixture(tb, opts...)
	members := make([]string, loadMembers)
	le := &loadEnv{f: f, tokens: make([]string, loadMembers)}
	for i := range members {
		members[i] = fmt.Sprintf("user%05d", i)
		le.tokens[i] = f.s.mintToken(members[i], time.Hour)
	}
	members[0] = "sender"
	le.tokens[0] = f.s.mintToken("sender", time.Hour)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "load", "memberList": members}, nil)
	for i := range loadMessages {
		f.admin.ok("POST", "/v1/messages", tracked(gmsg("load", fmt.Sprintf("m%03d", i), "sender")), nil)
	}
	for b := 0; b < loadMessages/loadBatch; b++ {
		var msgs []map[string]any
		for i := b * loadBatch; i < (b+1)*loadBatch; i++ {
			msgs = append(msgs, gmsg("load", fmt.Sprintf("m%03d", i), "sender"))
		}
		body, _ := json.Marshal(list(msgs...))
		le.bodies = append(le.bodies, body)
	}
	le.hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	return le
}

// post sends one API call and returns an error unless it succeeded with
// every per-message code 0.
func (le *loadEnv) post(path, token string, body []byte) error {
	req, err := http.NewRequest("POST", le.f.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := le.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: HTTP %d %s", path, resp.StatusCode, b)
	}
	var env struct {
		Code int `json:"code"`
		Data struct {
			MessageList []struct {
				Code int `json:"code"`
			} `json:"messageList"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	if env.Code != 0 || len(env.Data.MessageList) != loadBatch {
		return fmt.Errorf("%s: %s", path, b)
	}
	for _, m := range env.Data.MessageList {
		if m.Code != 0 {
			return fmt.Errorf("%s: %s", path, b)
		}
	}
	return nil
}

// pairs is the number of distinct (reader, batch) pairs: receipt calls
// that each record loadBatch new receipts.
func (le *loadEnv) pairs() int64 { return int64(len(le.bodies)) * (loadMembers - 1) }

// receipt sends the next receipt call: reader and batch from le.next.
// Past le.pairs() calls the pairs repeat, and calls record nothing new.
func (le *loadEnv) receipt() error {
	n := le.next.Add(1) - 1
	batches := int64(len(le.bodies))
	reader := 1 + (n/batches)%(loadMembers-1)
	return le.post("/v1/receipts", le.tokens[reader], le.bodies[n%batches])
}

// counts asks for the counts of one batch, as the sender.
func (le *loadEnv) counts(i int) error {
	return le.post("/v1/receipts/query", le.tokens[0], le.bodies[i%len(le.bodies)])
}

// latencies collects call durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

// quantile returns the q-quantile (0 < q <= 1) of the durations.
func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	i := int(q*float64(len(l.d))+0.5) - 1
	return l.d[max(0, min(i, len(l.d)-1))]
}

// TestLoad runs clients concurrently for a bounded time, half sending
// receipts and half asking for counts, and checks that every call
// succeeded and that the counts add up to the receipts sent. It logs
// requests per second and latencies; the figures to record come from
// BenchmarkLoad.
//
// How many calls fit in the window depends on the machine. A receipt
// client stops when the reader/message pairs run out (a fast machine
// gets there: about 50,000 calls), so the test checks what was sent,
// whatever the speed.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	le := newLoadEnv(t, true)
	const workers = 16
	const duration = 3 * time.Second
	var rec, cnt latencies
	var failures atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				var err error
				if w%2 == 0 {
					if le.next.Load() >= le.pairs() {
						break // the pairs ran out: nothing new to record
					}
					// Clients racing past the check send repeats, which
					// record nothing and are not counted below.
					err = le.receipt()
				} else {
					err = le.counts(w + i)
				}
				local = append(local, time.Since(t0))
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
			if w%2 == 0 {
				rec.add(local)
			} else {
				cnt.add(local)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d calls failed; first: %v", n, firstErr.Load())
	}
	t.Logf("%d clients for %v, sync writes: receipts %d calls (%.0f req/s, p50 %v, p99 %v); counts %d calls (%.0f req/s, p50 %v, p99 %v)",
		workers, elapsed.Round(time.Millisecond),
		len(rec.d), float64(len(rec.d))/elapsed.Seconds(), rec.quantile(0.5), rec.quantile(0.99),
		len(cnt.d), float64(len(cnt.d))/elapsed.Seconds(), cnt.quantile(0.5), cnt.quantile(0.99))

	// Every receipt call among the first pairs recorded loadBatch new
	// receipts, and no later one was sent: the counts must sum to exactly
	// that.
	calls := min(le.next.Load(), le.pairs())
	if calls == 0 {
		t.Fatal("no receipt call was made")
	}
	var total int
	for b := range le.bodies {
		var qi receiptInfos
		le.f.admin.ok("POST", "/v1/receipts/query", json.RawMessage(le.bodies[b]), &qi)
		for _, m := range qi.MessageList {
			if m.ReadReceiptInfo.ReadCount+m.ReadReceiptInfo.UnreadCount != loadMembers-1 {
				t.Fatalf("%s: read %d + unread %d != %d recipients", m.ID, m.ReadReceiptInfo.ReadCount, m.ReadReceiptInfo.UnreadCount, loadMembers-1)
			}
			total += m.ReadReceiptInfo.ReadCount
		}
	}
	if want := int(calls) * loadBatch; total != want {
		t.Fatalf("counts sum to %d receipts, want %d", total, want)
	}
	if got := value(le.f.s.metrics.receipts); got != float64(total) {
		t.Fatalf("receipts_recorded metric %v, want %d", got, total)
	}
}

// BenchmarkLoad measures API calls over loopback HTTP from concurrent
// clients (4 per core): receipt calls of loadBatch messages each, with
// synced and unsynced writes, and count calls. Each op is one HTTP call.
// It reports req/s and the p50 and p99 latencies of the calls.
func BenchmarkLoad(b *testing.B) {
	run := func(b *testing.B, le *loadEnv, op func(i int) error) {
		b.ReportAllocs()
		b.SetParallelism(4)
		var lat latencies
		var failures atomic.Int64
		var firstErr atomic.Value
		var seq atomic.Int64
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			var local []time.Duration
			for pb.Next() {
				t0 := time.Now()
				if err := op(int(seq.Add(1))); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				local = append(local, time.Since(t0))
			}
			lat.add(local)
		})
		elapsed := time.Since(start)
		b.StopTimer()
		if n := failures.Load(); n > 0 {
			b.Fatalf("%d calls failed; first: %v", n, firstErr.Load())
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat.quantile(0.5).Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat.quantile(0.99).Microseconds()), "p99-µs")
	}
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("op=receipts/sync=%v", sync), func(b *testing.B) {
			le := newLoadEnv(b, sync)
			run(b, le, func(int) error { return le.receipt() })
		})
	}
	b.Run("op=counts", func(b *testing.B) {
		le := newLoadEnv(b, true)
		run(b, le, le.counts)
	})
}

// BenchmarkEventDelivery measures, one call at a time, the time from
// sending a receipt call over HTTP until the sender's WebSocket connection
// has read the event (with synced writes). It reports the p50 and p99 of
// that time.
func BenchmarkEventDelivery(b *testing.B) {
	le := newLoadEnv(b, true)
	conn := dialEvents(b, le.f.base, le.tokens[0], true, nil)
	waitConns(b, le.f.s, "sender", 1)
	b.ReportAllocs()
	var lat latencies
	local := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := le.receipt(); err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, eventTimeout)
		_, msg, err := conn.Read(rctx)
		cancel()
		if err != nil {
			b.Fatalf("no event: %v", err)
		}
		local = append(local, time.Since(t0))
		if !bytes.Contains(msg, []byte(eventName)) {
			b.Fatalf("unexpected message %s", msg)
		}
	}
	b.StopTimer()
	lat.add(local)
	b.ReportMetric(float64(lat.quantile(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat.quantile(0.99).Microseconds()), "p99-µs")
}
