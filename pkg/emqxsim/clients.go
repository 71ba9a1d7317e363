package emqxsim

import (
	"errors"
	"fmt"
)

// ErrRefused is what a client gets from a node that refuses connections: CONNACK 0x9C
// ("use another server") for MQTT 5, return code 3 for MQTT 3.x.
var ErrRefused = errors.New("connection refused by CONNACK 0x9C (use another server)")

// returning is how many of n disconnected clients will come back. Caller holds mu.
func (c *Cluster) returning(n int64) int64 {
	share := c.cfg.Reconnect.Share
	switch {
	case n <= 0 || share <= 0:
		return 0
	case share >= 1:
		return n
	}
	var back int64
	for range n {
		if c.rng.Float64() < share {
			back++
		}
	}
	return back
}

// sessionsIn is where returning persistent clients' sessions wait for them: on a node (in memory,
// or migrated from it), in durable storage, or nowhere (lost, or the clients are new).
type sessionsIn struct {
	node    *Node
	durable bool
}

// scheduleReconnect brings returning persistent and clean clients back after the reconnect delay.
// origin is where their sessions wait for them. Caller holds mu.
func (c *Cluster) scheduleReconnect(origin sessionsIn, persistent, clean int64) {
	if persistent+clean == 0 {
		return
	}
	c.pending += persistent + clean
	c.after(c.cfg.Reconnect.Delay, func() { c.reconnect(origin, persistent, clean) })
}

// reconnect lands returning clients as the listener Service does: each picks a Ready endpoint at
// random, whether or not its node accepts clients. A node that refuses (its eviction agent
// enabled: CONNACK 0x9C) sends the client away; it retries after the reconnect delay, and the
// refusal is counted. A persistent client takes its session over from wherever it waits (API.md §4);
// if it was lost the client starts a new one. With no Ready endpoint, clients retry after the delay.
func (c *Cluster) reconnect(origin sessionsIn, persistent, clean int64) {
	eps := c.endpoints()
	if len(eps) == 0 {
		c.after(max(c.cfg.Reconnect.Delay, TickInterval), func() { c.reconnect(origin, persistent, clean) })
		return
	}
	c.pending -= persistent + clean
	var againP, againC int64
	for range persistent {
		t := eps[c.rng.IntN(len(eps))]
		if !t.acceptsNew() {
			c.refused++
			againP++
			continue
		}
		c.takeOverWaitingSession(origin)
		t.livePersistent++
	}
	for range clean {
		t := eps[c.rng.IntN(len(eps))]
		if !t.acceptsNew() {
			c.refused++
			againC++
			continue
		}
		t.liveClean++
	}
	if againP+againC > 0 {
		c.pending += againP + againC
		c.after(max(c.cfg.Reconnect.Delay, TickInterval), func() { c.reconnect(origin, againP, againC) })
	}
}

// takeOverWaitingSession removes one waiting disconnected session: from durable storage, or from
// origin's node if it still has one, else from the node holding the most (sessions migrated away).
func (c *Cluster) takeOverWaitingSession(in sessionsIn) {
	if in.durable {
		if c.durableOffline > 0 {
			c.durableOffline--
		}
		return
	}
	origin := in.node
	if origin == nil {
		return
	}
	if origin.running && origin.discWaiting > 0 {
		origin.discWaiting--
		return
	}
	var best *Node
	for _, n := range c.nodes {
		if n.running && n.discWaiting > 0 && (best == nil || n.discWaiting > best.discWaiting) {
			best = n
		}
	}
	if best != nil {
		best.discWaiting--
	}
}

// Connect connects clients to a node, as MQTT clients dialling that pod directly would, or, with
// node "", through the listener Service: spread over Ready endpoints, those refused by an
// evacuating node retrying later (see reconnect). persistent of them hold a persistent session.
func (c *Cluster) Connect(node string, clients, persistent int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connectLocked(node, clients, persistent)
}

// connectLocked connects to one node, or through the listener Service when node is "".
func (c *Cluster) connectLocked(node string, clients, persistent int64) error {
	if clients < 0 || persistent < 0 || persistent > clients {
		return fmt.Errorf("cannot connect %d clients of which %d persistent", clients, persistent)
	}
	if node == "" {
		if len(c.endpoints()) == 0 {
			return fmt.Errorf("the listener Service has no Ready endpoint: %w", ErrRefused)
		}
		c.pending += clients
		c.reconnect(sessionsIn{}, persistent, clients-persistent)
		return nil
	}
	n := c.node(node)
	if n == nil || !n.running {
		return fmt.Errorf("node %q is not running", node)
	}
	if !n.acceptsNew() {
		return ErrRefused
	}
	n.livePersistent += persistent
	n.liveClean += clients - persistent
	return nil
}

// Disconnect ends clients for good, as MQTT clients that send DISCONNECT with a session expiry of
// 0 do: they leave their nodes at random, weighted by each node's live connections, and their
// sessions end with them. Nothing is lost: the clients chose to go.
func (c *Cluster) Disconnect(clients int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disconnectLocked(clients, false)
}

// GoOffline takes persistent clients offline keeping their sessions, as devices that sleep or lose
// their network do: each session waits for its client, which is not coming back soon, on its node
// (in memory) or, with durable sessions, in durable storage. They are chosen as Disconnect chooses.
func (c *Cluster) GoOffline(clients int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disconnectLocked(clients, true)
}

func (c *Cluster) disconnectLocked(clients int64, keepSession bool) error {
	// Only a persistent client can keep its session.
	count := (*Node).live
	if keepSession {
		count = func(n *Node) int64 { return n.livePersistent }
	}
	var live int64
	for _, n := range c.nodes {
		if n.running {
			live += count(n)
		}
	}
	if clients < 0 || clients > live {
		what := "are connected"
		if keepSession {
			what = "are connected with a persistent session"
		}
		return fmt.Errorf("cannot disconnect %d clients: %d %s", clients, live, what)
	}
	for ; clients > 0; clients-- {
		k := c.rng.Int64N(live)
		for _, n := range c.nodes {
			if !n.running {
				continue
			}
			if k >= count(n) {
				k -= count(n)
				continue
			}
			switch {
			case k < n.livePersistent && keepSession && c.durable():
				n.livePersistent--
				c.durableOffline++
			case k < n.livePersistent && keepSession:
				n.livePersistent--
				n.discIdle++
			case k < n.livePersistent:
				n.livePersistent--
			default:
				n.liveClean--
			}
			break
		}
		live--
	}
	return nil
}
