package bench

// Tracking under concurrency, and the fsync it waits for.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	rr "github.com/readreceipt/readreceipt"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/pebblestore"
)

// cpuClock reads the process's CPU time (user + system, every thread: the
// engine's goroutines and Pebble's), so that a benchmark can report the CPU
// a call costs next to its wall time, which for a synced write is mostly
// waiting for the disk.
func cpuClock(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuClock(b)-start)/float64(b.N), "cpu-ns/op")
}

// walSyncs returns how many times the Pebble store has synced its WAL
// (0 for another store): the fsyncs that synced writes waited for.
func walSyncs(st store.Store) uint64 {
	pst, ok := st.(*pebblestore.Store)
	if !ok {
		return 0
	}
	var m dto.Metric
	if h := pst.Metrics().LogWriter.FsyncLatency; h == nil || h.Write(&m) != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// reportSyncs reports the operations per WAL fsync since the count was
// syncs0: how many synced writes shared each fsync.
func reportSyncs(b *testing.B, st store.Store, syncs0 uint64) {
	if n := walSyncs(st) - syncs0; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "ops/fsync")
	}
}

// BenchmarkTrackConcurrent: TrackMessage of one new message per call into
// the 1,000,000-member group, from `goroutines` concurrent callers
// (b.RunParallel), every message new. ns/op is wall time per call across
// all callers; tracks/s is calls per second. With sync writes every call
// returns only once its write is on disk, so concurrent calls can only go
// faster than one fsync each by sharing fsyncs (group commit). cpu-ns/op is
// the process's CPU time per call. goroutines=1 is the single caller, in
// the same process and store as the concurrent runs.
func BenchmarkTrackConcurrent(b *testing.B) {
	procs := runtime.GOMAXPROCS(0)
	for _, g := range []int{1, 64} {
		b.Run(fmt.Sprintf("members=1M/goroutines=%d", g), func(b *testing.B) {
			for _, kind := range writeKinds {
				b.Run("store="+kind, func(b *testing.B) {
					fx := getFixture(b, kind)
					gid := fx.group(b, size1M.n)
					conv := rr.Group(gid)
					snd := sender()
					var failed atomic.Bool
					b.ReportAllocs()
					syncs0 := walSyncs(fx.st)
					cpu0 := cpuClock(b)
					b.ResetTimer()
					if g == 1 {
						msg := rr.Message{Conversation: conv, Sender: snd}
						for b.Loop() {
							msg.ID = "c" + strconv.FormatInt(fx.seq.Add(1), 10)
							if err := fx.e.TrackMessage(ctx, msg); err != nil {
								b.Fatal(err)
							}
						}
					} else {
						b.SetParallelism((g + procs - 1) / procs)
						b.RunParallel(func(pb *testing.PB) {
							msg := rr.Message{Conversation: conv, Sender: snd}
							for pb.Next() {
								if failed.Load() {
									continue
								}
								msg.ID = "c" + strconv.FormatInt(fx.seq.Add(1), 10)
								if err := fx.e.TrackMessage(ctx, msg); err != nil {
									failed.Store(true)
									b.Error(err)
								}
							}
						})
					}
					b.StopTimer()
					reportCPU(b, cpu0)
					if kind == "pebble" {
						reportSyncs(b, fx.st, syncs0)
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tracks/s")
				})
			}
		})
	}
}

// BenchmarkStoreSyncedWrite is not an engine benchmark: it is the cost of
// the fsync a durable call waits for, on this machine's disk. One Pebble
// Write of one 16-byte key with Sync, into a store of its own in the same
// temp directory as the fixtures, from one caller (goroutines=1: one fsync
// per write) and from 64 (what Pebble's own commit pipeline makes of
// concurrent synced writes: it syncs the WAL once for every write that
// reached it meanwhile).
func BenchmarkStoreSyncedWrite(b *testing.B) {
	procs := runtime.GOMAXPROCS(0)
	for _, g := range []int{1, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			st := syncStore(b)
			var seq atomic.Uint64
			write := func() error {
				var batch store.Batch
				k := seq.Add(1)
				batch.Set(fmt.Appendf(nil, "sync-%010d", k), nil)
				return st.Write(ctx, &batch, store.WriteOptions{Sync: true})
			}
			b.ReportAllocs()
			syncs0 := walSyncs(st)
			cpu0 := cpuClock(b)
			b.ResetTimer()
			if g == 1 {
				for b.Loop() {
					if err := write(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism((g + procs - 1) / procs)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := write(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			reportCPU(b, cpu0)
			reportSyncs(b, st, syncs0)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

var syncSt store.Store

// syncStore returns the Pebble store of BenchmarkStoreSyncedWrite, opened
// once per process in the fixtures' temp directory (closed by TestMain).
func syncStore(b *testing.B) store.Store {
	if syncSt != nil {
		return syncSt
	}
	dir := benchRoot(b)
	pst, err := pebblestore.Open(filepath.Join(dir, "sync"), nil)
	if err != nil {
		b.Fatal(err)
	}
	syncSt = pst
	nameStores[-1] = pst // closed with them by TestMain
	return pst
}

// benchRoot returns the fixtures' temp directory, making it if needed.
func benchRoot(b *testing.B) string {
	if rootDir == "" {
		d, err := os.MkdirTemp("", "readreceipt-bench-")
		if err != nil {
			b.Fatal(err)
		}
		rootDir = d
	}
	return rootDir
}
