package yield

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// fake replaces the clock, the sleep and the scheduler's count for one
// test: the clock moves only when the test moves it.
type fake struct {
	t       time.Time
	waiting uint64
	sleeps  []time.Duration
	reads   int
}

func useFake(t *testing.T) *fake {
	f := &fake{t: time.Unix(1_000_000, 0)}
	oldNow, oldSleep, oldRunnable := now, sleep, runnable
	now = func() time.Time { return f.t }
	sleep = func(d time.Duration) { f.sleeps = append(f.sleeps, d); f.t = f.t.Add(d) }
	runnable = func(*Yielder) uint64 { f.reads++; return f.waiting }
	t.Cleanup(func() { now, sleep, runnable = oldNow, oldSleep, oldRunnable })
	return f
}

func ticks(y *Yielder, n int) {
	for range n {
		y.Tick()
	}
}

func TestYielderSleepsOnlyWhenOthersWait(t *testing.T) {
	tests := []struct {
		name    string
		waiting uint64
		advance time.Duration // between the first clock read and the next
		reads   int           // reads of the scheduler's count
		sleeps  int
	}{
		{"others wait, After passed", 3, After, 1, 1},
		{"others wait, well after", 1, 10 * After, 1, 1},
		{"none wait", 0, 10 * After, 1, 0},
		{"others wait, After not passed", 5, After - time.Microsecond, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := useFake(t)
			f.waiting = tc.waiting
			var y Yielder
			y.Tick() // the first tick reads the clock and starts the period
			if f.reads != 0 || len(f.sleeps) != 0 {
				t.Fatalf("first period: %d reads, %d sleeps", f.reads, len(f.sleeps))
			}
			f.t = f.t.Add(tc.advance)
			ticks(&y, check-1)
			if f.reads != 0 {
				t.Fatalf("read the scheduler between clock reads")
			}
			y.Tick()
			if f.reads != tc.reads || len(f.sleeps) != tc.sleeps {
				t.Fatalf("got %d reads, %d sleeps; want %d, %d", f.reads, len(f.sleeps), tc.reads, tc.sleeps)
			}
			for _, d := range f.sleeps {
				if d != Pause {
					t.Fatalf("slept %v, want %v", d, Pause)
				}
			}
		})
	}
}

// After a look at the scheduler the next one is a whole period later,
// counted from the end of the sleep.
func TestYielderPeriodRestartsAfterSleep(t *testing.T) {
	f := useFake(t)
	f.waiting = 1
	var y Yielder
	y.Tick()
	for i := 1; i <= 5; i++ {
		f.t = f.t.Add(After / 2)
		ticks(&y, check)
		f.t = f.t.Add(After / 2)
		ticks(&y, check)
		if len(f.sleeps) != i {
			t.Fatalf("period %d: %d sleeps", i, len(f.sleeps))
		}
	}
	ticks(&y, 100*check) // the clock stands still: no more looks
	if len(f.sleeps) != 5 || f.reads != 5 {
		t.Fatalf("with the clock still: %d sleeps, %d reads", len(f.sleeps), f.reads)
	}
}

// TickN counts a block as its items, and a block of more than check
// items as check: one look at the scheduler per call at most.
func TestYielderTickN(t *testing.T) {
	f := useFake(t)
	f.waiting = 1
	var y Yielder
	y.Tick()
	f.t = f.t.Add(After)
	for range (check - 1) / 10 {
		y.TickN(10)
	}
	if f.reads != 0 {
		t.Fatalf("looked after %d of %d items", (check-1)/10*10, check)
	}
	y.TickN(10)
	if f.reads != 1 || len(f.sleeps) != 1 {
		t.Fatalf("after %d items: %d reads, %d sleeps", (check-1)/10*10+10, f.reads, len(f.sleeps))
	}
	f.t = f.t.Add(After)
	y.TickN(1 << 20) // looks: After has passed
	y.TickN(1 << 20) // looks at the clock only: it has not
	if f.reads != 2 || len(f.sleeps) != 2 {
		t.Fatalf("two big blocks: %d reads, %d sleeps; want 2, 2", f.reads, len(f.sleeps))
	}
	f.t = f.t.Add(After)
	y.TickN(check)
	if f.reads != 3 || len(f.sleeps) != 3 {
		t.Fatalf("a block of check items after After: %d reads, %d sleeps; want 3, 3", f.reads, len(f.sleeps))
	}
}

// The real count sees goroutines that are ready and not running: on one
// P, goroutines just started wait until this one blocks.
func TestRunnableCountsWaitingGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
		}()
	}
	var y Yielder
	n := runnable(&y)
	close(release)
	wg.Wait()
	if n == 0 {
		t.Fatal("no runnable goroutine seen with three started on one busy P")
	}
}
