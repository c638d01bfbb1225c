// Package compare measures the read-receipt engine side by side with what a
// team would build instead, on the same workloads, in one run on one
// machine. bench/run starts the servers, runs the benchmarks and prints the
// table; `go test ./bench/compare/` (without -bench) runs the conformance
// test, which holds every system to the same exact answers.
//
// # Systems
//
// Every system implements System; optional interfaces add events (Notifier),
// footprint (Footprint), restart (Reopener), a durability knob (Syncer), a
// fast fixture loader (Loader) and deletion (Deleter).
//
//   - engine: the readreceipt engine on its default Pebble store, as
//     readreceipt.OpenDir opens it, sync writes on.
//   - engine-redis: the readreceipt engine on its Redis backend
//     (readreceipt.OpenRedis, NoWait), on the redis peer's server and
//     settings under its own key prefix (see EngineRedis).
//   - redis: Redis 7, bitmaps over a per-group member index, Lua scripts for
//     exact counts, appendonly yes with appendfsync always (see Redis).
//   - engine-redis+wait, redis+wait: the same two, every receipt waiting
//     for the master's replica (the engine: NoWait false; the peer: WAIT 1
//     after its script, on the same connection). They run W1 and the
//     conformance test only, and only where READRECEIPT_BENCH_REDIS_REPLICA
//     names a replica (bench/run starts one); the benchmarks attach it for
//     them and detach it for every other Redis system.
//   - postgres: PostgreSQL 15, one row per (message, reader) with ON CONFLICT
//     DO NOTHING, a maintained counter, keyset pages, fsync and
//     synchronous_commit on (see Postgres).
//   - map: map[string]map[string]struct{} behind a mutex; not durable.
//   - pebblekv: Pebble with one key per receipt, no bitmaps, synced writes.
//
// Each keeps the recipients of a message (the group's members when it was
// tracked, minus its sender) its own honest way: Redis copies the member
// bitmap into the message; the others version the membership and record the
// version in the message.
//
// # Workloads
//
// Benchmarks are named BenchmarkW<id>/sys=<system>/members=<n>[/...]; sizes
// come from -size (smoke for CI, quick, full) or READRECEIPT_BENCH_SIZE.
//
//   - W1: receipts, 30 messages per call, from 64 goroutines (-goroutines),
//     every receipt new, durable; metric receipts/s. Messages are tracked
//     in windows of 990 as the benchmark needs them. On the Redis systems
//     it also reports what the master spent per receipt: script usec (INFO
//     commandstats of FCALL/EVALSHA; wall time) and the projection
//     receipts/s/core = 1e6 / that, and the server's CPU time (INFO cpu)
//     with its projection receipts/s/core-cpu.
//   - W2: counts of 30 messages; ns per call.
//   - W3: one 100-member page, unread and read, at a random cursor taken from
//     a walk of all pages, 90% of the group read; ns per page.
//   - W4: a 200-member group, many messages, each read by a random half of
//     its recipients; bytes per message on disk and in memory with every
//     message hot (difference of two Footprint readings, divided by the
//     messages). Peers too slow to load at full size use fewer messages: the
//     figure is per message, and the benchmark name gives the count.
//   - W4Big: the Redis systems' memory of one message in a 1,000,000-member
//     group with 10 readers, MEMORY USAGE of each of its keys, readers
//     spread at random or at the front of the member order.
//   - W5: tracking a message in a large group; ns and bytes allocated per
//     call (in the benchmark's process: for the servers that is the client).
//     W5Concurrent: the same from 64 goroutines (-goroutines), durable;
//     metric tracks/s (the report's tracks/s-concurrent row).
//   - W6: reopening W4's store and answering one count; systems that
//     survive a restart of the benchmark's process only (engine, pebblekv).
//   - W7: a receipt sent until its event reaches a subscriber; p50 and p99.
//   - W8: W1-W3 at every group size; bench/plot draws it.
//
// Fixtures are built once per process, outside the timer, with durability
// off and each system's fastest exact path; durability is back on for every
// measurement.
package compare
