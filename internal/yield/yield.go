// Package yield lets a long loop step aside now and then for goroutines
// that are waiting to run.
package yield

import (
	"runtime/metrics"
	"time"
)

// After is how long a loop runs between looks at the scheduler.
//
// Go preempts a running goroutine only after about 10 ms, and a P that
// has work of its own does not take work from another P's queue. A
// million-member CreateGroup is a few hundred milliseconds of CPU. In a
// runtime trace of one on a 2-core machine under 8 durable receipt
// callers, the create held one P while on the other a receipt call and
// Pebble's WAL flush goroutine handed the P to each other for its whole
// 10 ms slice, and the 7 other callers, queued behind them, waited 15-35
// ms at a time for a turn, all in step. runtime.Gosched did not help: it
// puts the loop on the global run queue, where its own P finds it again
// before it looks at the other P's queue. Asleep, the loop leaves its P
// idle for a moment, and an idle P takes over half of a busy one's queue.
const After = time.Millisecond

// Pause is how long the loop sleeps when goroutines are waiting. (It can
// come back later: an idle P waits for timers in steps of 1 ms.)
const Pause = 20 * time.Microsecond

// check is how many ticks pass between reads of the clock.
const check = 256

// Yielder counts a loop's items; every After it reads how many goroutines
// are runnable but not running, and when some are it sleeps for Pause.
// A tick costs about an add and a test. The zero Yielder is ready.
type Yielder struct {
	left   int32 // items until the next clock read
	last   time.Time
	sample []metrics.Sample
}

const runnableMetric = "/sched/goroutines/runnable:goroutines"

// The clock, the sleep and the scheduler's count; tests replace them.
var (
	now      = time.Now
	sleep    = time.Sleep
	runnable = func(y *Yielder) uint64 {
		if y.sample == nil {
			y.sample = []metrics.Sample{{Name: runnableMetric}}
		}
		metrics.Read(y.sample)
		if v := y.sample[0].Value; v.Kind() == metrics.KindUint64 {
			return v.Uint64()
		}
		return 0
	}
)

// Tick counts one item. It is small enough to inline: the clock is read
// out of line, every check items.
func (y *Yielder) Tick() {
	y.left--
	if y.left <= 0 {
		y.look()
	}
}

// TickN counts n items, for a loop that ticks once per block of items
// where a tick per item would cost more than the item.
func (y *Yielder) TickN(n int) {
	y.left -= int32(min(n, check))
	if y.left <= 0 {
		y.look()
	}
}

// look reads the clock and, every After, the scheduler's count.
func (y *Yielder) look() {
	y.left = check
	t := now()
	if y.last.IsZero() {
		y.last = t
		return
	}
	if t.Sub(y.last) < After {
		return
	}
	if runnable(y) > 0 {
		sleep(Pause)
	}
	y.last = now()
}
