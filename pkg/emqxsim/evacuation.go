package emqxsim

import (
	"encoding/json"
	"errors"
	"time"
)

var (
	errAlreadyStarted = errors.New("already_started")
	errNotStarted     = errors.New("not_started")
)

// Evacuation states (API.md §5.1).
const (
	evacWaitingHealthCheck = "waiting_health_check"
	evacEvictingConns      = "evicting_conns"
	evacWaitingTakeover    = "waiting_takeover"
	evacEvictingSessions   = "evicting_sessions"
	evacProhibiting        = "prohibiting"
)

type evacOpts struct {
	connRate, sessRate int64
	waitHealthCheck    time.Duration
	waitTakeover       time.Duration
	migrateTo          []string // nil: every other running node, re-evaluated each tick
}

func defaultEvacOpts() evacOpts {
	return evacOpts{
		connRate:        defaultRate,
		sessRate:        defaultRate,
		waitHealthCheck: defaultWait,
		waitTakeover:    defaultWait,
	}
}

type evacuation struct {
	n     *Node
	opts  evacOpts
	state string

	initialConns, currentConns int64
	initialSess, currentSess   int64
}

// persisted is the .evacuation file: exactly these four keys (API.md §5.4).
type persisted struct {
	ServerReference *string `json:"server_reference"`
	ConnEvictRate   int64   `json:"conn_evict_rate"`
	SessEvictRate   int64   `json:"sess_evict_rate"`
	WaitTakeover    int64   `json:"wait_takeover"`
}

// startEvacuation follows the disabled → waiting_health_check transition of API.md §5.3.
func (n *Node) startEvacuation(o evacOpts) error {
	if n.evac != nil {
		return errAlreadyStarted
	}
	// From 5.4 the node keeps accepting clients while it waits for the health check; before, it
	// refused them from the start.
	if err := n.enableAgent(kindEvacuation, n.c.version.AcceptsDuringHealthCheck()); err != nil {
		return err
	}
	e := &evacuation{n: n, opts: o, state: evacWaitingHealthCheck}
	e.initialConns, e.currentConns = n.live(), n.live()
	e.initialSess, e.currentSess = n.evictionSessions(), n.evictionSessions()
	n.evac = e
	n.c.countMoving()
	raw, _ := json.MarshalIndent(persisted{
		ConnEvictRate: o.connRate, SessEvictRate: o.sessRate, WaitTakeover: int64(o.waitTakeover / time.Second),
	}, "", "  ")
	n.data.write(raw)
	e.after(o.waitHealthCheck, e.beginEvictingConns)
	return nil
}

// resumeEvacuation restarts a persisted evacuation at boot: refusing at once, no health-check wait.
func (n *Node) resumeEvacuation(raw []byte) {
	// A missing key or an unreadable file means the defaults (API.md §5.4).
	o := defaultEvacOpts()
	var p struct {
		ConnEvictRate *int64 `json:"conn_evict_rate"`
		SessEvictRate *int64 `json:"sess_evict_rate"`
		WaitTakeover  *int64 `json:"wait_takeover"`
	}
	if json.Unmarshal(raw, &p) == nil {
		if p.ConnEvictRate != nil && *p.ConnEvictRate > 0 {
			o.connRate = *p.ConnEvictRate
		}
		if p.SessEvictRate != nil && *p.SessEvictRate > 0 {
			o.sessRate = *p.SessEvictRate
		}
		if p.WaitTakeover != nil && *p.WaitTakeover >= 0 {
			o.waitTakeover = time.Duration(*p.WaitTakeover) * time.Second
		}
	}
	if err := n.enableAgent(kindEvacuation, false); err != nil {
		n.data.remove()
		return
	}
	n.c.logf("node %s: Node evacuation is enabled. The node will not receive connections.", n.name)
	e := &evacuation{n: n, opts: o, state: evacEvictingConns}
	e.initialConns, e.currentConns = n.live(), n.live()
	e.initialSess, e.currentSess = n.evictionSessions(), n.evictionSessions()
	n.evac = e
	e.tickConns()
}

// stopEvacuation is synchronous: file deleted, agent disabled, state disabled.
func (n *Node) stopEvacuation() error {
	if n.evac == nil {
		return errNotStarted
	}
	n.evac = nil
	n.data.remove()
	n.disableAgent(kindEvacuation)
	return nil
}

// after runs fn later unless this evacuation was stopped or the node restarted meanwhile.
func (e *evacuation) after(d time.Duration, fn func()) {
	n, inc := e.n, e.n.incarnation
	n.c.after(d, func() {
		if n.evac == e && n.incarnation == inc {
			fn()
		}
	})
}

func (e *evacuation) beginEvictingConns() {
	_ = e.n.enableAgent(kindEvacuation, false)
	e.state = evacEvictingConns
	e.tickConns()
}

func (e *evacuation) tickConns() {
	c := e.n.live()
	if c > 0 {
		e.n.evictConnections(e.opts.connRate)
		e.currentConns = c
		e.after(TickInterval, e.tickConns)
		return
	}
	e.currentConns = 0
	e.state = evacWaitingTakeover
	e.after(e.opts.waitTakeover, func() {
		e.state = evacEvictingSessions
		e.tickSessions()
	})
}

// tickSessions counts as EMQX does (evictionSessions): with durable sessions, every disconnected
// durable session of the cluster keeps the evacuation here, though none of them can be evicted.
func (e *evacuation) tickSessions() {
	s := e.n.evictionSessions()
	if s == 0 {
		e.currentSess = 0
		e.state = evacProhibiting
		return
	}
	targets := e.targets()
	if len(targets) == 0 {
		e.n.c.logf("node %s: no_nodes_to_evacuate_sessions; retrying in %v", e.n.name, NoTargetRetry)
		e.after(NoTargetRetry, e.tickSessions)
		return
	}
	if e.n.c.version.DiscardsLostSessions() {
		// Lost sessions are discarded (#14353, #14907); before, they are tried again every tick.
		e.n.phantom = 0
	}
	e.n.migrateSessions(e.opts.sessRate, targets)
	e.currentSess = s
	e.after(TickInterval, e.tickSessions)
}

// targets are migrate_to (or every other running node) filtered to nodes whose agent is disabled.
func (e *evacuation) targets() []*Node {
	var candidates []*Node
	if e.opts.migrateTo == nil {
		for _, m := range e.n.c.running() {
			if m != e.n {
				candidates = append(candidates, m)
			}
		}
	} else {
		for _, name := range e.opts.migrateTo {
			if m := e.n.c.node(name); m != nil && m.running {
				candidates = append(candidates, m)
			}
		}
	}
	var out []*Node
	for _, m := range candidates {
		if m.agentKind == "" {
			out = append(out, m)
		}
	}
	return out
}

// moving: the evacuation still has clients to move (EMQX's own completion not reached).
func (e *evacuation) moving() bool {
	return e.state != evacProhibiting || e.currentConns > 0 || e.currentSess > 0
}

// countMoving records how many evacuations are moving clients now, if it is the most so far.
// Caller holds mu.
func (c *Cluster) countMoving() {
	moving := 0
	for _, n := range c.running() {
		if n.evac != nil && n.evac.moving() {
			moving++
		}
	}
	c.mostMoving = max(c.mostMoving, moving)
}
