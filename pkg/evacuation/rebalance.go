package evacuation

import (
	"math"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Thresholds of a rebalance (API.md §6.2).
type Thresholds struct {
	AbsConn, AbsSess int64
	RelConn, RelSess float64
}

// DefaultThresholds are EMQX's.
var DefaultThresholds = Thresholds{
	AbsConn: DefaultThreshold,
	AbsSess: DefaultThreshold,
	RelConn: DefaultRelative,
	RelSess: DefaultRelative,
}

// Count is one node's load as /api/v5/nodes reports it.
type Count struct {
	Node         string
	Conns        int64 // live_connections
	Sessions     int64 // connections: every channel, connected or not
	Disconnected int64 // connections - live_connections
}

// CountOf reads a node's counts.
func CountOf(n emqx.Node) Count {
	return Count{
		Node:         n.Node,
		Conns:        n.LiveConnections,
		Sessions:     n.Connections,
		Disconnected: max(0, n.Connections-n.LiveConnections),
	}
}

// Within is EMQX's balance test: v <= goal + abs or v <= goal * rel.
func Within(v, goal float64, abs int64, rel float64) bool {
	return v <= goal+float64(abs) || v <= goal*rel
}

// Plan is what EMQX would do with a rebalance start, computed from the same counts.
type Plan struct {
	Donors, Recipients []Count
	Needed             bool
	// ExpectedConnMoves is how many connections must leave the donors, at the least, for the
	// donors' average to come within the thresholds of the recipients' (EMQX may overshoot).
	ExpectedConnMoves int64
}

// PlanRebalance mirrors EMQX's start (API.md §6.2): donors have at least the average connection
// count, recipients less; a rebalance is needed unless both connections and sessions are within
// the thresholds.
func PlanRebalance(counts []Count, t Thresholds) Plan {
	var p Plan
	if len(counts) == 0 {
		return p
	}
	var sum int64
	for _, c := range counts {
		sum += c.Conns
	}
	avg := float64(sum) / float64(len(counts))
	for _, c := range counts {
		if float64(c.Conns) >= avg {
			p.Donors = append(p.Donors, c)
		} else {
			p.Recipients = append(p.Recipients, c)
		}
	}
	if len(p.Donors) == 0 || len(p.Recipients) == 0 {
		return p
	}
	dc, rc := mean(p.Donors, conns), mean(p.Recipients, conns)
	ds, rs := mean(p.Donors, sessions), mean(p.Recipients, sessions)
	p.Needed = !Within(dc, rc, t.AbsConn, t.RelConn) || !Within(ds, rs, t.AbsSess, t.RelSess)
	if p.Needed {
		nd, nr := float64(len(p.Donors)), float64(len(p.Recipients))
		// Moving m connections: donors' average falls by m/nd, recipients' rises by m/nr.
		byAbs := (dc - rc - float64(t.AbsConn)) / (1/nd + 1/nr)
		byRel := (dc - t.RelConn*rc) / (1/nd + t.RelConn/nr)
		p.ExpectedConnMoves = int64(math.Ceil(max(0, min(byAbs, byRel))))
	}
	return p
}

// MostConnMoves bounds what EMQX moves: it evicts rate connections per donor each second and
// checks the thresholds only between steps, so its last step can overshoot ExpectedConnMoves by
// up to one step of every donor; never more than the donors hold.
func (p Plan) MostConnMoves(rate int64) int64 {
	if !p.Needed || p.ExpectedConnMoves == 0 {
		return p.ExpectedConnMoves
	}
	var held int64
	for _, d := range p.Donors {
		held += d.Conns
	}
	steps := (p.ExpectedConnMoves + rate*int64(len(p.Donors)) - 1) / (rate * int64(len(p.Donors)))
	return min(held, steps*rate*int64(len(p.Donors)))
}

// Balanced judges the end of a rebalance from fresh counts of its donors and recipients: EMQX
// forgets a finished run, and a completed, stopped or aborted one look the same (API.md §6.5).
func Balanced(donors, recipients []Count, t Thresholds) bool {
	if len(donors) == 0 || len(recipients) == 0 {
		return true
	}
	return Within(mean(donors, conns), mean(recipients, conns), t.AbsConn, t.RelConn) &&
		Within(mean(donors, disconnected), mean(recipients, disconnected), t.AbsSess, t.RelSess)
}

func conns(c Count) int64        { return c.Conns }
func sessions(c Count) int64     { return c.Sessions }
func disconnected(c Count) int64 { return c.Disconnected }

func mean(cs []Count, f func(Count) int64) float64 {
	var s int64
	for _, c := range cs {
		s += f(c)
	}
	return float64(s) / float64(len(cs))
}
