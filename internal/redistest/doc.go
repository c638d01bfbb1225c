// Package redistest starts real Redis servers for tests: standalone servers,
// replicas and Redis Cluster deployments, each node a redis-server process
// of its own on 127.0.0.1, in a temporary directory of the test, stopped by
// PID when the test ends.
//
// It runs Debian's redis-server (Redis 7.0) and, for clusters, redis-cli.
// Tests skip, with a message that says what to install, when redis-server
// is not on PATH or when READRECEIPT_REDIS=off is set; see [Find].
//
// A standalone server:
//
//	srv := redistest.Start(t)             // appendonly yes, appendfsync always
//	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
//	...
//	srv.Kill()                            // SIGKILL, as in a crash
//	srv.Restart(t)                        // same port and directory: the AOF is replayed
//
// A replica:
//
//	replica := redistest.ReplicaOf(t, srv) // returns once master_link_status:up
//
// A cluster of three masters with one replica each:
//
//	c := redistest.StartCluster(t, 3, 1)
//	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
//	m := c.MasterForKey("k")
//	c.KillMaster(t, m)
//	took := c.WaitFailover(t, redistest.KeySlot("k"), 20*time.Second)
//	c.Restart(t, m)                       // m rejoins as a replica
//
// Clients keep their own view of a cluster: after a failover, tell a
// go-redis ClusterClient with ReloadState (see [Cluster.WaitFailover]).
//
// Every process the package starts is stopped by a [testing.TB.Cleanup]
// registered as soon as it has started, also when a later step of the same
// start fails; on Linux the child is also killed if the test binary dies.
// The package does not use a Redis client library: [Server.Do] is a minimal
// RESP client for the helper's own bookkeeping and for tests that need INFO,
// CLUSTER NODES or CONFIG GET.
package redistest
