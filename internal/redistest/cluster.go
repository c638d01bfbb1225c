package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// clusterCreateTimeout bounds redis-cli --cluster create.
	clusterCreateTimeout = 60 * time.Second
	// clusterReadyTimeout bounds the wait for a new or rejoined cluster to
	// be consistent.
	clusterReadyTimeout = 30 * time.Second
	// clusterPoll is how often the cluster waits poll every node.
	clusterPoll = 50 * time.Millisecond
)

// Cluster is a Redis Cluster of a test: one [Server] per node, each with
// cluster-enabled yes, its own nodes.conf, appendonly yes with appendfsync
// always and cluster-node-timeout 1000 ms, so that a failover takes a few
// seconds. Replicas do not migrate between masters and may always take over
// from their master (cluster-replica-validity-factor 0).
type Cluster struct {
	// Nodes are the cluster's servers, in the order they were given to
	// redis-cli --cluster create. Which are masters changes with
	// failovers; see [Cluster.MasterForSlot] and [Cluster.Masters].
	Nodes []*Server

	masters, replicas int
	ids               map[*Server]string // node IDs; stable across restarts (nodes.conf)

	mu    sync.Mutex
	kills []kill // by KillMaster, oldest first
}

type kill struct {
	node  *Server
	at    time.Time
	slots [][2]int
}

// StartCluster starts masters*(1+replicasPerMaster) servers and joins them
// with redis-cli --cluster create --cluster-replicas replicasPerMaster, then
// waits until every node reports cluster_state:ok with all 16384 slots
// assigned, all nodes agree on which master owns which slot, every master
// has replicasPerMaster replicas and every replica's link to its master is
// up. masters must be at least 3, as redis-cli requires. opts apply to every
// node, after the cluster defaults (so Config("cluster-node-timeout", ...)
// overrides). A cleanup registered with tb stops all nodes.
func StartCluster(tb testing.TB, masters, replicasPerMaster int, opts ...Option) *Cluster {
	tb.Helper()
	if masters < 3 || replicasPerMaster < 0 {
		tb.Fatalf("redistest: StartCluster(%d, %d): a cluster needs at least 3 masters and no negative replica count", masters, replicasPerMaster)
	}
	Find(tb)
	cli := findCLI(tb)
	c := &Cluster{masters: masters, replicas: replicasPerMaster, ids: make(map[*Server]string)}
	nodeOpts := append([]Option{clusterNode()}, opts...)
	for range masters * (1 + replicasPerMaster) {
		// Each Start registers its own cleanup, so a failure here stops
		// the nodes already started.
		c.Nodes = append(c.Nodes, Start(tb, nodeOpts...))
	}
	// Runs before the nodes' own cleanups: stops them all at once.
	tb.Cleanup(c.stopAll)

	for _, n := range c.Nodes {
		id, err := n.DoString("CLUSTER", "MYID")
		if err != nil {
			tb.Fatalf("redistest: CLUSTER MYID on %s: %v", n.Addr, err)
		}
		c.ids[n] = id
	}

	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := c.wait(clusterReadyTimeout, c.checkFull); err != nil {
		tb.Fatalf("redistest: cluster of %d masters with %d replicas each did not become ready: %v\n%s", masters, replicasPerMaster, err, c.dump())
	}
	return c
}

// Addrs returns the address of every node, as seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// MasterForKey is MasterForSlot(KeySlot(key)).
func (c *Cluster) MasterForKey(key string) *Server {
	return c.MasterForSlot(KeySlot(key))
}

// MasterForSlot returns the running node that serves slot as its master,
// by the nodes' own word (CLUSTER NODES, "myself,master"); if two claim it
// during a failover, the one with the higher config epoch. It returns nil
// when no running node claims the slot, as between the kill of its master
// and the promotion of a replica.
func (c *Cluster) MasterForSlot(slot int) *Server {
	var best *Server
	var bestEpoch int64 = -1
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		me, _, err := n.self()
		if err != nil || !me.has("master") || !me.owns(slot) {
			continue
		}
		if me.epoch > bestEpoch {
			best, bestEpoch = n, me.epoch
		}
	}
	return best
}

// Masters returns the running nodes that are masters serving slots, in the
// order of Nodes.
func (c *Cluster) Masters() []*Server {
	var ms []*Server
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		if me, _, err := n.self(); err == nil && me.has("master") && len(me.slots) > 0 {
			ms = append(ms, n)
		}
	}
	return ms
}

// ReplicasOf returns the nodes that the running nodes' views (CLUSTER
// NODES) list as replicas of master, running or not, in the order of Nodes.
// master need not be running.
func (c *Cluster) ReplicasOf(master *Server) []*Server {
	id := c.ids[master]
	set := make(map[*Server]bool)
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		view, err := n.clusterNodes()
		if err != nil {
			continue
		}
		for _, e := range view {
			if e.master == id {
				if r := c.byID(e.id); r != nil {
					set[r] = true
				}
			}
		}
	}
	var rs []*Server
	for _, n := range c.Nodes {
		if set[n] {
			rs = append(rs, n)
		}
	}
	return rs
}

// KillMaster kills node, which must be a running master serving slots, with
// SIGKILL, and notes when, for [Cluster.WaitFailover].
func (c *Cluster) KillMaster(tb testing.TB, node *Server) {
	tb.Helper()
	if !node.Running() {
		tb.Fatalf("redistest: KillMaster: %s is not running", node.Addr)
	}
	me, _, err := node.self()
	if err != nil {
		tb.Fatalf("redistest: KillMaster: CLUSTER NODES on %s: %v", node.Addr, err)
	}
	if !me.has("master") || len(me.slots) == 0 {
		tb.Fatalf("redistest: KillMaster: %s is not a master serving slots (flags %s)", node.Addr, strings.Join(me.flags, ","))
	}
	c.mu.Lock()
	c.kills = append(c.kills, kill{node: node, at: time.Now(), slots: me.slots})
	c.mu.Unlock()
	node.Kill()
}

// WaitFailover waits until a replica has been promoted for slot and the
// cluster is healthy again (see [Cluster.WaitHealthy]), and returns how
// long that took since the [Cluster.KillMaster] of the node that served
// slot. Without such a kill it only waits for a running master of slot and
// a healthy cluster, and measures from the call. It fails the test, with
// every running node's CLUSTER NODES, after timeout.
//
// A client's cached slot map may still name the killed node: go-redis's
// ClusterClient, whose dials to it are refused, can take a minute to reload
// it by itself, so call its ReloadState after WaitFailover.
func (c *Cluster) WaitFailover(tb testing.TB, slot int, timeout time.Duration) time.Duration {
	tb.Helper()
	since, killed := time.Now(), (*Server)(nil)
	c.mu.Lock()
	for _, k := range slices.Backward(c.kills) {
		if ownsSlot(k.slots, slot) {
			since, killed = k.at, k.node
			break
		}
	}
	c.mu.Unlock()
	err := c.wait(timeout, func() error {
		m := c.MasterForSlot(slot)
		if m == nil {
			return fmt.Errorf("no running master serves slot %d", slot)
		}
		if m == killed {
			return fmt.Errorf("slot %d is still served by the killed %s", slot, m.Addr)
		}
		return c.checkHealthy()
	})
	if err != nil {
		tb.Fatalf("redistest: no failover for slot %d within %v: %v\n%s", slot, timeout, err, c.dump())
	}
	return time.Since(since)
}

// Restart restarts node (see [Server.Restart]) and waits until the cluster
// is healthy with it (see [Cluster.WaitHealthy]): a killed master whose
// slots were taken over rejoins as a replica of its successor.
func (c *Cluster) Restart(tb testing.TB, node *Server) {
	tb.Helper()
	node.Restart(tb)
	c.mu.Lock()
	c.kills = slices.DeleteFunc(c.kills, func(k kill) bool { return k.node == node })
	c.mu.Unlock()
	if err := c.wait(clusterReadyTimeout, c.checkHealthy); err != nil {
		tb.Fatalf("redistest: cluster not healthy after restarting %s: %v\n%s", node.Addr, err, c.dump())
	}
}

// WaitHealthy waits until, on every running node, CLUSTER INFO reports
// cluster_state:ok with all 16384 slots assigned and ok, the nodes agree on
// which node serves which slot, no running node is flagged as failing, and
// every running replica's link to its master is up. Nodes that are not
// running are ignored. It fails the test after timeout.
func (c *Cluster) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	if err := c.wait(timeout, c.checkHealthy); err != nil {
		tb.Fatalf("redistest: cluster not healthy within %v: %v\n%s", timeout, err, c.dump())
	}
}

// stopAll stops every node at once (each Stop waits for its process).
func (c *Cluster) stopAll() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(func() { _ = n.Stop() })
	}
	wg.Wait()
}

func (c *Cluster) byID(id string) *Server {
	for n, nid := range c.ids {
		if nid == id {
			return n
		}
	}
	return nil
}

// wait polls check until it returns nil or timeout passes, and returns its
// last error.
func (c *Cluster) wait(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(clusterPoll)
	}
}

// checkFull is checkHealthy plus the shape StartCluster was asked for: all
// nodes running and known to each other, the number of masters, and the
// number of replicas of each.
func (c *Cluster) checkFull() error {
	if err := c.checkHealthy(); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if !n.Running() {
			return fmt.Errorf("%s is not running", n.Addr)
		}
		info, err := n.ClusterInfo()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %v", n.Addr, err)
		}
		if got := info["cluster_known_nodes"]; got != strconv.Itoa(len(c.Nodes)) {
			return fmt.Errorf("%s: cluster_known_nodes:%s, want %d", n.Addr, got, len(c.Nodes))
		}
	}
	masters := c.Masters()
	if len(masters) != c.masters {
		return fmt.Errorf("%d masters serve slots, want %d", len(masters), c.masters)
	}
	for _, m := range masters {
		info, err := m.Info("replication")
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %v", m.Addr, err)
		}
		if got := info["connected_slaves"]; got != strconv.Itoa(c.replicas) {
			return fmt.Errorf("master %s: connected_slaves:%s, want %d", m.Addr, got, c.replicas)
		}
	}
	return nil
}

// checkHealthy returns nil when the running nodes form a healthy cluster;
// see WaitHealthy.
func (c *Cluster) checkHealthy() error {
	var ref string
	var refNode *Server
	running := 0
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		running++
		info, err := n.ClusterInfo()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %v", n.Addr, err)
		}
		for k, want := range map[string]string{
			"cluster_state":          "ok",
			"cluster_slots_assigned": strconv.Itoa(SlotCount),
			"cluster_slots_ok":       strconv.Itoa(SlotCount),
		} {
			if info[k] != want {
				return fmt.Errorf("%s: %s:%s", n.Addr, k, info[k])
			}
		}
		me, view, err := n.self()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER NODES: %v", n.Addr, err)
		}
		for _, e := range view {
			if other := c.byID(e.id); other != nil && other.Running() {
				for _, f := range []string{"fail", "fail?", "handshake", "noaddr"} {
					if e.has(f) {
						return fmt.Errorf("%s flags running node %s as %s", n.Addr, other.Addr, f)
					}
				}
			}
		}
		if m := slotMap(view); refNode == nil {
			ref, refNode = m, n
		} else if m != ref {
			return fmt.Errorf("%s and %s disagree on who serves which slots", refNode.Addr, n.Addr)
		}
		if me.has("slave") {
			rinfo, err := n.Info("replication")
			if err != nil {
				return fmt.Errorf("%s: INFO replication: %v", n.Addr, err)
			}
			if rinfo["master_link_status"] != "up" {
				return fmt.Errorf("replica %s: master_link_status:%s", n.Addr, rinfo["master_link_status"])
			}
			if m := c.byID(me.master); m == nil || rinfo["master_port"] != strconv.Itoa(m.Port) {
				return fmt.Errorf("replica %s: replicates port %s, not its cluster master", n.Addr, rinfo["master_port"])
			}
		}
	}
	if running == 0 {
		return fmt.Errorf("no node is running")
	}
	return nil
}

// dump returns every running node's CLUSTER NODES, for a failure message.
func (c *Cluster) dump() string {
	var b strings.Builder
	for _, n := range c.Nodes {
		if !n.Running() {
			fmt.Fprintf(&b, "--- %s (pid %d): not running\n", n.Addr, n.PID)
			continue
		}
		s, err := n.DoString("CLUSTER", "NODES")
		if err != nil {
			s = err.Error() + "\n"
		}
		fmt.Fprintf(&b, "--- CLUSTER NODES on %s (pid %d):\n%s", n.Addr, n.PID, s)
	}
	return b.String()
}

// nodeEntry is one line of CLUSTER NODES.
type nodeEntry struct {
	id     string
	addr   string // host:port
	flags  []string
	master string // master's ID for a replica, "-" otherwise
	epoch  int64
	slots  [][2]int // inclusive ranges served; migrating/importing entries are left out
}

func (e nodeEntry) has(flag string) bool { return slices.Contains(e.flags, flag) }

func (e nodeEntry) owns(slot int) bool { return ownsSlot(e.slots, slot) }

func ownsSlot(ranges [][2]int, slot int) bool {
	for _, r := range ranges {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// clusterNodes runs CLUSTER NODES and parses it.
func (s *Server) clusterNodes() ([]nodeEntry, error) {
	str, err := s.DoString("CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	return parseClusterNodes(str)
}

// self returns the server's own entry ("myself") and its whole view.
func (s *Server) self() (nodeEntry, []nodeEntry, error) {
	view, err := s.clusterNodes()
	if err != nil {
		return nodeEntry{}, nil, err
	}
	for _, e := range view {
		if e.has("myself") {
			return e, view, nil
		}
	}
	return nodeEntry{}, nil, fmt.Errorf("no myself entry in CLUSTER NODES of %s", s.Addr)
}

// parseClusterNodes parses the reply of CLUSTER NODES:
// <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv>
// <config-epoch> <link-state> <slot> <slot> ...
func parseClusterNodes(s string) ([]nodeEntry, error) {
	var out []nodeEntry
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("malformed CLUSTER NODES line %q", line)
		}
		epoch, err := strconv.ParseInt(f[6], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("malformed config epoch in %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		e := nodeEntry{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3], epoch: epoch}
		for _, sl := range f[8:] {
			if strings.HasPrefix(sl, "[") {
				continue // [slot->-id] or [slot-<-id]: a migration in progress
			}
			lo, hi, isRange := strings.Cut(sl, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil || a < 0 || b < a || b >= SlotCount {
				return nil, fmt.Errorf("malformed slot range %q in %q", sl, line)
			}
			e.slots = append(e.slots, [2]int{a, b})
		}
		out = append(out, e)
	}
	return out, nil
}

// slotMap renders which node serves which slots in a view, in a canonical
// form for comparing views.
func slotMap(view []nodeEntry) string {
	var parts []string
	for _, e := range view {
		if !e.has("master") {
			continue
		}
		for _, r := range e.slots {
			parts = append(parts, fmt.Sprintf("%05d-%05d=%s", r[0], r[1], e.id))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}
