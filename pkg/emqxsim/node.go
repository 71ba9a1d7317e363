package emqxsim

import (
	"errors"
	"fmt"
	"time"
)

// Eviction agent kinds (API.md §4).
const (
	kindEvacuation = "emqx_node_rebalance_evacuation"
	kindRebalance  = "emqx_node_rebalance"
)

var errAgentBusy = errors.New("eviction_agent_busy")

// Node is one simulated EMQX node.
type Node struct {
	c       *Cluster
	name    string
	role    string
	running bool
	ready   bool // the pod is Ready: the listener Service sends it clients
	booted  time.Time
	// incarnation counts boots; timers of an older incarnation are ignored.
	incarnation int
	// apiRequests counts the REST API requests this node served (not /status, not /sim/v1):
	// what a caller costs EMQX.
	apiRequests int64

	livePersistent int64 // connected clients with a persistent session
	liveClean      int64 // connected clients with a clean session
	// Disconnected in-memory sessions: waiting ones belong to clients that are coming back,
	// idle ones to clients that are not.
	discWaiting int64
	discIdle    int64
	// Lost sessions: channels whose process died while the channel table kept them. Before 5.8.4
	// session eviction can neither move nor drop them, so an evacuation counts them for ever.
	phantom int64

	agentKind  string // "" when the eviction agent is disabled
	agentAllow bool   // allow_connections

	evac    *evacuation
	coord   *coordinator // the rebalance this node coordinates
	donorOf *coordinator // the rebalance this node is a donor of (its rebalance agent)
	data    dataStore
}

func (n *Node) live() int64     { return n.livePersistent + n.liveClean }
func (n *Node) disc() int64     { return n.discWaiting + n.discIdle }
func (n *Node) sessions() int64 { return n.live() + n.disc() + n.phantom } // all local channels (API.md §4)

// evictionSessions is the eviction agent's session_count(): every local channel plus, from 5.8,
// the bookkeeper's cluster-wide count of disconnected durable sessions (emqx_eviction_agent.erl,
// session_count/0, since e5.8.0's d0e6f22). Durable sessions are on no node: nobody can evict them.
func (n *Node) evictionSessions() int64 {
	if n.c.durable() {
		return n.sessions() + n.c.durableTally
	}
	return n.sessions()
}

// acceptsNew: the node answers a CONNECT with CONNACK success (its eviction agent is disabled,
// or allows connections during the health-check wait).
func (n *Node) acceptsNew() bool {
	return n.running && (n.agentKind == "" || n.agentAllow)
}

// endpoint: the listener Service routes clients to the node's pod (running and Ready), whether
// or not the node accepts them.
func (n *Node) endpoint() bool { return n.running && n.ready }

// enableAgent follows API.md §4: same kind re-enables (updating options), another kind is busy.
func (n *Node) enableAgent(kind string, allow bool) error {
	if n.agentKind != "" && n.agentKind != kind {
		return errAgentBusy
	}
	n.agentKind, n.agentAllow = kind, allow
	return nil
}

func (n *Node) disableAgent(kind string) {
	if n.agentKind == kind {
		n.agentKind, n.agentAllow = "", false
	}
}

// boot starts the node: agent disabled, counts zero, a persisted evacuation resumed (API.md §5.4).
func (n *Node) boot() {
	n.running = true
	n.booted = n.c.now
	n.incarnation++
	n.agentKind, n.agentAllow = "", false
	n.evac, n.coord, n.donorOf = nil, nil, nil
	if raw, ok := n.data.read(); ok {
		n.resumeEvacuation(raw)
	}
}

// stop takes the node down. Everything in memory is gone: its connected clients are cut off and
// every persistent session it held is lost. Rebalances it took part in abort (API.md §6.4).
func (n *Node) stop() {
	c := n.c
	if !n.running {
		return
	}
	cutP, cutC := n.livePersistent, n.liveClean
	if c.durable() {
		// Durable sessions outlive their node: they are in durable storage, not its memory. Only
		// in-memory sessions are lost.
		c.lost += n.disc()
		c.durableOffline += cutP
	} else {
		c.lost += n.livePersistent + n.disc()
	}
	n.livePersistent, n.liveClean, n.discWaiting, n.discIdle, n.phantom = 0, 0, 0, 0, 0
	n.running = false
	n.incarnation++
	if n.coord != nil {
		n.coord.crash("coordinator node down")
	}
	if n.donorOf != nil {
		n.donorOf.crash(fmt.Sprintf("donor %s down", n.name))
	}
	n.evac = nil
	n.agentKind, n.agentAllow = "", false
	// Clients of a dead node come back without their sessions (fresh ones on other nodes), unless
	// their sessions are durable.
	c.scheduleReconnect(sessionsIn{durable: c.durable()}, c.returning(cutP), c.returning(cutC))
}

// evictConnections disconnects up to k connected clients (API.md §4): persistent ones leave a
// disconnected session here (in durable storage when sessions are durable); clean ones leave
// nothing. A share of them reconnects later.
func (n *Node) evictConnections(k int64) {
	live := n.live()
	k = min(k, live)
	if k <= 0 {
		return
	}
	p := k * n.livePersistent / live
	cl := k - p
	if cl > n.liveClean {
		p, cl = k-n.liveClean, n.liveClean
	}
	n.livePersistent -= p
	n.liveClean -= cl
	backP, backC := n.c.returning(p), n.c.returning(cl)
	if n.c.durable() {
		n.c.durableOffline += p
		n.c.scheduleReconnect(sessionsIn{durable: true}, backP, backC)
		return
	}
	n.discWaiting += backP
	n.discIdle += p - backP
	n.c.scheduleReconnect(sessionsIn{node: n}, backP, backC)
}

// migrateSessions moves up to k disconnected sessions to random targets (API.md §4): each becomes a
// disconnected session there, waiting for its client as before.
func (n *Node) migrateSessions(k int64, targets []*Node) {
	k = min(k, n.disc())
	if k <= 0 || len(targets) == 0 {
		return
	}
	w := k * n.discWaiting / n.disc()
	i := k - w
	if i > n.discIdle {
		w, i = k-n.discIdle, n.discIdle
	}
	n.discWaiting -= w
	n.discIdle -= i
	rng := n.c.rng
	for range w {
		targets[rng.IntN(len(targets))].discWaiting++
	}
	for range i {
		targets[rng.IntN(len(targets))].discIdle++
	}
}
