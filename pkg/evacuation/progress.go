package evacuation

import (
	"fmt"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Progress is where one node's evacuation stands, as the plugin's bars and lines and the webhook's
// hold messages show it: one reading of EMQX's evacuation document for both.
type Progress struct {
	Node        string
	State       string
	Connections int64         // left
	Sessions    int64         // left on the node
	Initial     int64         // connections and sessions when it started
	Left        time.Duration // about; 0 once done
	Done        bool          // SafeToRemove
	// Durable: sessions may be durable, so Sessions are the node's own channels and Counted is
	// EMQX's figure, which adds the cluster's disconnected durable sessions.
	Durable bool
	Counted int64
}

// ProgressOf reads an evacuation; node is the evacuated node as GET /nodes lists it now (needed
// only where sessions may be durable), w are the waits it was started with (EMQX does not report
// them).
func ProgressOf(ev emqx.Evacuation, node emqx.Node, d Durability, w Waits) Progress {
	p := Progress{
		Node: ev.Node, State: ev.State,
		Connections: ev.Stats.CurrentConnected, Sessions: ev.Stats.CurrentSessions,
		Initial: ev.Stats.InitialConnected + ev.Stats.InitialSessions,
		Done:    SafeToRemove(ev, node, d),
	}
	if d != DurableOff {
		p.Durable, p.Counted = true, ev.Stats.CurrentSessions
		if node.Node == ev.Node {
			p.Sessions = node.Connections
		}
		// EMQX's figures count the cluster's offline durable sessions too: what it moved is their
		// difference, what is left the node's own.
		p.Initial = ev.Stats.InitialConnected + max(0, ev.Stats.InitialSessions-ev.Stats.CurrentSessions) + p.Sessions
	}
	if !p.Done {
		p.Left = Remaining(ev, p.Sessions, w)
	}
	return p
}

// Moved is how many connections and sessions have left the node, of Initial.
func (p Progress) Moved() int64 {
	return max(0, p.Initial-p.Connections-p.Sessions)
}

// Summary says what is left: "834 connections and 1034 sessions left (about 1m37s)"; where
// sessions may be durable, "0 connections and 0 sessions left on the node (EMQX counts 812
// sessions: the cluster's disconnected durable sessions, which stay in durable storage)".
func (p Progress) Summary() string {
	s := fmt.Sprintf("%d connections and %d sessions left", p.Connections, p.Sessions)
	if p.Durable {
		s += " on the node"
	}
	if p.Left > 0 {
		s += fmt.Sprintf(" (about %v)", p.Left)
	}
	if p.Durable && p.Counted > p.Sessions {
		s += fmt.Sprintf(
			"; EMQX counts %d sessions: the cluster's disconnected durable sessions, which stay in durable storage",
			p.Counted,
		)
	}
	return s
}
