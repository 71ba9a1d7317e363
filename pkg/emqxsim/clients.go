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

// scheduleReconnect brings returning persistent and clean clients back after the reconnect delay.
// origin is where their sessions wait for them, or nil when their sessions are gone. Caller holds mu.
func (c *Cluster) scheduleReconnect(origin *Node, persistent, clean int64) {
	if persistent+clean == 0 {
		return
	}
	c.pending += persistent + clean
	c.after(c.cfg.Reconnect.Delay, func() { c.reconnect(origin, persistent, clean) })
}

// reconnect lands returning clients on accepting nodes, spread uniformly as a Service would. A
// persistent client takes its session over from wherever it waits (SPEC §4); if it was lost the
// client starts a new one. With no node accepting, the clients retry after the delay.
func (c *Cluster) reconnect(origin *Node, persistent, clean int64) {
	targets := c.accepting()
	if len(targets) == 0 {
		c.after(max(c.cfg.Reconnect.Delay, TickInterval), func() { c.reconnect(origin, persistent, clean) })
		return
	}
	c.pending -= persistent + clean
	for range persistent {
		c.takeOverWaitingSession(origin)
		targets[c.rng.IntN(len(targets))].livePersistent++
	}
	for range clean {
		targets[c.rng.IntN(len(targets))].liveClean++
	}
}

// takeOverWaitingSession removes one waiting disconnected session: from origin if it still has
// one, else from the node holding the most (sessions migrated away from origin).
func (c *Cluster) takeOverWaitingSession(origin *Node) {
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
// node "", through the listener Service (spread over accepting nodes). persistent of them hold a
// persistent session.
func (c *Cluster) Connect(node string, clients, persistent int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connectLocked(node, clients, persistent)
}

// connectLocked connects to one node, or spread over accepting nodes when node is "".
func (c *Cluster) connectLocked(node string, clients, persistent int64) error {
	if clients < 0 || persistent < 0 || persistent > clients {
		return fmt.Errorf("cannot connect %d clients of which %d persistent", clients, persistent)
	}
	var targets []*Node
	if node == "" {
		if targets = c.accepting(); len(targets) == 0 {
			return fmt.Errorf("no node accepts connections: %w", ErrRefused)
		}
	} else {
		n := c.node(node)
		if n == nil || !n.running {
			return fmt.Errorf("node %q is not running", node)
		}
		if n.agentKind != "" && !n.agentAllow {
			return ErrRefused
		}
		targets = []*Node{n}
	}
	for i := range clients {
		t := targets[c.rng.IntN(len(targets))]
		if i < persistent {
			t.livePersistent++
		} else {
			t.liveClean++
		}
	}
	return nil
}
