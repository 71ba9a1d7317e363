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
	Sessions    int64         // left
	Initial     int64         // connections and sessions when it started
	Left        time.Duration // about; 0 once done
	Done        bool          // SafeToRemove
}

// ProgressOf reads an evacuation; w are the waits it was started with (EMQX does not report them).
func ProgressOf(ev emqx.Evacuation, w Waits) Progress {
	return Progress{
		Node: ev.Node, State: ev.State,
		Connections: ev.Stats.CurrentConnected, Sessions: ev.Stats.CurrentSessions,
		Initial: ev.Stats.InitialConnected + ev.Stats.InitialSessions,
		Left:    Remaining(ev, w), Done: SafeToRemove(ev),
	}
}

// Moved is how many connections and sessions have left the node, of Initial.
func (p Progress) Moved() int64 {
	return max(0, p.Initial-p.Connections-p.Sessions)
}

// Summary says what is left: "834 connections and 1034 sessions left (about 1m37s)".
func (p Progress) Summary() string {
	s := fmt.Sprintf("%d connections and %d sessions left", p.Connections, p.Sessions)
	if p.Left > 0 {
		s += fmt.Sprintf(" (about %v)", p.Left)
	}
	return s
}
