package plugin

import (
	"fmt"
	"io"
	"slices"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
)

// reporter prints what an operation does as it goes: steps and progress on ErrOut (bars on a
// terminal), a rebalance plan on Out. close ends what it draws.
type reporter struct {
	u    *ui
	out  io.Writer
	view *evacuationView // the evacuations being waited for, once there are some
	rb   *progress       // the rebalance's progress line
	// With -o, a rebalance plan is kept for the result object (plan), not printed.
	keepPlan bool
	plan     *rebalancePlan
}

var _ ops.Reporter = (*reporter)(nil)

// newReporter reports to g's streams; output is -o (with one, stdout is kept for the result).
func newReporter(g *GlobalOptions, output string) *reporter {
	u := g.ui()
	return &reporter{u: u, out: g.Out, rb: &progress{u: u}, keepPlan: output != ""}
}

func (r *reporter) EvacuationStarted(pod, node string, conns, sessions int64) {
	fmt.Fprintf(
		r.u.errOut,
		"evacuation of %s (EMQX node %s) started: %d connections, %d sessions\n",
		safe(pod),
		safe(node),
		conns,
		sessions,
	)
}

func (r *reporter) EvacuationJoined(_, node string) {
	fmt.Fprintf(r.u.errOut, "EMQX node %s is already evacuating; watching it\n", safe(node))
}

func (r *reporter) NothingToEvacuate(pod string) {
	fmt.Fprintf(r.u.errOut, "pod %s has no running EMQX node: nothing to evacuate there\n", safe(pod))
}

func (r *reporter) EvacuationReopened(pod string) {
	fmt.Fprintf(r.u.errOut, "%s came back with an old evacuation persisted on its volume: reopened it\n", safe(pod))
}

func (r *reporter) Evacuations(ps []ops.Evacuating) {
	if r.view == nil {
		r.view = newEvacuationView(r.u)
	}
	r.view.show(ps)
}

func (r *reporter) RebalancePlanned(
	p evacuation.Plan,
	th evacuation.Thresholds,
	connRate int64,
	label func(string) string,
) {
	if r.keepPlan {
		r.plan = newRebalancePlan(p, label)
		return
	}
	fmt.Fprintln(r.out, r.u.bold("Rebalance plan"))
	tw := newTable(r.out)
	fmt.Fprintln(tw, "  NODE\tROLE\tCONNECTIONS\tSESSIONS")
	for _, group := range []struct {
		role   string
		counts []evacuation.Count
	}{{"donor", p.Donors}, {"recipient", p.Recipients}} {
		counts := slices.Clone(group.counts)
		// A stable order: by pod ordinal (emqx-2 before emqx-10), whatever order EMQX lists them in.
		slices.SortStableFunc(
			counts,
			func(a, b evacuation.Count) int { return comparePods(label(a.Node), label(b.Node)) },
		)
		for _, c := range counts {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\n", safe(label(c.Node)), group.role, c.Conns, c.Sessions)
		}
	}
	_ = tw.Flush()
	if p.Needed {
		fmt.Fprintf(
			r.out,
			"at least %d connections to move, up to %d: EMQX evicts %d per donor each second and checks after each "+
				"step (thresholds: %d or ×%.3g connections, %d or ×%.3g sessions)\n",
			p.ExpectedConnMoves,
			p.MostConnMoves(connRate),
			connRate,
			th.AbsConn,
			th.RelConn,
			th.AbsSess,
			th.RelSess,
		)
	} else {
		fmt.Fprintln(r.out, "already within the thresholds: nothing to move")
	}
}

func (r *reporter) RebalanceJoined(coordinator string) {
	fmt.Fprintf(r.u.errOut, "a rebalance coordinated by %s is already running; watching it\n", safe(coordinator))
}

func (r *reporter) RebalanceStarted(coordinator string) {
	fmt.Fprintf(r.u.errOut, "rebalance started, coordinated by %s\n", safe(coordinator))
}

func (r *reporter) Rebalance(rb emqx.Rebalance) {
	line := "rebalance " + safe(rb.State)
	if rb.DonorConnAvg != nil && rb.ConnectionGoal != nil {
		line += fmt.Sprintf(": donors average %.0f connections, recipients %.0f", *rb.DonorConnAvg, *rb.ConnectionGoal)
	}
	r.rb.update(line)
}

// close stops the bars' renderer and ends a redrawn line.
func (r *reporter) close() {
	if r.view != nil {
		r.view.close()
		r.view = nil
	}
	r.rb.done()
}
