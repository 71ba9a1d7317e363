package emqxsim

import (
	"fmt"
	"net/http"
	"sort"
)

// withNode runs fn on a node under the lock.
func (c *Cluster) withNode(name string, fn func(*Node) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.node(name)
	if n == nil {
		return fmt.Errorf("no node %q", name)
	}
	return fn(n)
}

// StopNode takes a node down: its clients are cut off and its sessions are lost (counted).
func (c *Cluster) StopNode(name string) error {
	return c.withNode(name, func(n *Node) error { n.stop(); return nil })
}

// StartNode boots a stopped node. With keepData false its data directory is wiped first (a pod
// without a persistent volume); with true a persisted evacuation resumes (API.md §5.4).
func (c *Cluster) StartNode(name string, keepData bool) error {
	return c.withNode(name, func(n *Node) error { return n.start(keepData) })
}

// RestartNode stops and starts a node (a pod recreated; keepData when its PVC survives).
func (c *Cluster) RestartNode(name string, keepData bool) error {
	return c.withNode(name, func(n *Node) error { n.stop(); return n.start(keepData) })
}

// Rejoin boots the node named in nc again if EMQX still lists it as stopped (a pod recreated under
// the same name: a StatefulSet ordinal), keeping its data when nc.DataDir is set (a persistent
// volume) and wiping it otherwise; a name never seen, or forgotten, joins as a new node.
func (c *Cluster) Rejoin(nc NodeConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.node(nc.Name); n != nil {
		return n.start(nc.DataDir != "")
	}
	_, err := c.addNodeLocked(nc)
	return err
}

// RemoveNode stops a node and forgets it (its pod is gone). Data on disk stays, as a PVC outlives
// its pod. EMQX still knows the name, so node lists naming it report it unavailable, not invalid.
func (c *Cluster) RemoveNode(name string) error {
	return c.withNode(name, func(n *Node) error { c.removeLocked(n); return nil })
}

// SetReady sets whether the node's pod is Ready, i.e. whether the listener Service sends it clients.
func (c *Cluster) SetReady(name string, ready bool) error {
	return c.withNode(name, func(n *Node) error { n.ready = ready; return nil })
}

// SetAPIDown makes every node's REST API unreachable (or reachable again) while MQTT clients
// stay connected: a broken dashboard listener or network policy.
func (c *Cluster) SetAPIDown(down bool) {
	c.mu.Lock()
	c.apiDown = down
	c.mu.Unlock()
}

// HoldEvictionAgent enables a node's eviction agent with a foreign kind, as another operation
// (a purge, another tool) would: evacuation and rebalance then find the node busy.
func (c *Cluster) HoldEvictionAgent(name, kind string) error {
	return c.withNode(name, func(n *Node) error { return n.enableAgent(kind, false) })
}

func (n *Node) start(keepData bool) error {
	if n.running {
		return fmt.Errorf("node %q is already running", n.name)
	}
	if !keepData {
		n.data.remove()
	}
	n.boot()
	return nil
}

func (c *Cluster) removeLocked(n *Node) {
	n.stop()
	delete(c.byName, n.name)
	for i, m := range c.nodes {
		if m == n {
			c.nodes = append(c.nodes[:i], c.nodes[i+1:]...)
			break
		}
	}
}

// NodeState is a simulator-only view of one node.
type NodeState struct {
	Name                 string `json:"name"`
	Role                 string `json:"role"`
	Running              bool   `json:"running"`
	Ready                bool   `json:"ready"`
	Accepting            bool   `json:"accepting"` // answers a CONNECT with success
	LiveConnections      int64  `json:"live_connections"`
	PersistentSessions   int64  `json:"persistent_sessions"` // connected with a session, plus disconnected
	DisconnectedSessions int64  `json:"disconnected_sessions"`
	Evacuation           string `json:"evacuation,omitempty"`
	RebalanceRole        string `json:"rebalance_role,omitempty"` // coordinator, donor
	// APIRequests are the REST API requests the node has served (its probes and /sim/v1 apart).
	APIRequests int64 `json:"api_requests"`
}

// Stats is the simulator-only account of where every client is, and what was lost.
type Stats struct {
	Now                  string `json:"now"`
	LostSessions         int64  `json:"lost_sessions"`
	ConnectedClients     int64  `json:"connected_clients"`
	ReconnectingClients  int64  `json:"reconnecting_clients"`
	RefusedConnects      int64  `json:"refused_connects"` // clients a Ready endpoint turned away (CONNACK 0x9C)
	DisconnectedSessions int64  `json:"disconnected_sessions"`
	// DurableSessions are disconnected durable sessions (5.8+ with durable sessions on): in durable
	// storage, on no node.
	DurableSessions int64 `json:"durable_sessions"`
	// ReplicasDown are durable-storage shard replicas on sites whose node is not up (5.9+ with
	// durable sessions): redundancy lost, for good once the node has left the cluster.
	ReplicasDown int64 `json:"replicas_down"`
	// LockedUsers are the dashboard users EMQX refuses to log in now (5.9+: failed logins).
	LockedUsers []string `json:"locked_users,omitempty"`
	// MostEvacuating is the most evacuations that were moving clients at one time, since the
	// cluster started.
	MostEvacuating int         `json:"most_evacuating"`
	Nodes          []NodeState `json:"nodes"`
}

// Snapshot returns the simulator's stats.
func (c *Cluster) Snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked()
}

func (c *Cluster) snapshotLocked() Stats {
	s := Stats{
		Now:                 c.now.UTC().Format("2006-01-02T15:04:05.000Z"),
		LostSessions:        c.lost,
		ReconnectingClients: c.pending,
		RefusedConnects:     c.refused,
		DurableSessions:     c.durableOffline,
		ReplicasDown:        c.dsReplicasDown(),
		MostEvacuating:      c.mostMoving,
		Nodes:               []NodeState{},
	}
	for user, until := range c.lockedUntil {
		if c.now.Before(until) {
			s.LockedUsers = append(s.LockedUsers, user)
		}
	}
	sort.Strings(s.LockedUsers)
	for _, n := range c.nodes {
		ns := NodeState{
			Name: n.name, Role: n.role, Running: n.running, Ready: n.ready, Accepting: n.acceptsNew(),
			LiveConnections: n.live(), PersistentSessions: n.livePersistent + n.disc(), DisconnectedSessions: n.disc(),
			APIRequests: n.apiRequests,
		}
		if n.evac != nil {
			ns.Evacuation = n.evac.state
		}
		switch {
		case n.coord != nil:
			ns.RebalanceRole = "coordinator"
		case n.donorOf != nil:
			ns.RebalanceRole = "donor"
		}
		s.ConnectedClients += n.live()
		s.DisconnectedSessions += n.disc()
		s.Nodes = append(s.Nodes, ns)
	}
	return s
}

// Node returns the simulator-only view of one node.
func (c *Cluster) Node(name string) (NodeState, bool) {
	for _, ns := range c.Snapshot().Nodes {
		if ns.Name == name {
			return ns, true
		}
	}
	return NodeState{}, false
}

func (c *Cluster) logf(format string, args ...any) {
	if c.cfg.Log != nil {
		c.cfg.Log(format, args...)
	}
}

// forceLeave is DELETE /cluster/{node}/force_leave served by node self, as recorded on EMQX 5.3.2
// (API.md §11): the serving node cannot leave; an unknown or removed node is not in the cluster; a
// stopped node is dropped from the node list; a running node is expelled: it restarts standalone
// with its data wiped, which for this cluster means gone, with what it held. Caller holds mu.
func (c *Cluster) forceLeave(self *Node, name string) *apiError {
	n := c.node(name)
	switch {
	case n == self:
		return &apiError{http.StatusBadRequest, "BAD_REQUEST", "Can't leave self"}
	case n == nil:
		return &apiError{http.StatusBadRequest, "BAD_REQUEST", "node_not_in_cluster"}
	}
	n.data.remove()
	c.removeLocked(n)
	c.logf("node %s left the cluster (force_leave)", name)
	return nil
}
