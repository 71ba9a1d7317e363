package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Rebalance spreads connections and sessions from loaded nodes to the others: `kubectl emqx
// rebalance`.
type Rebalance struct {
	Cluster    string   // "" : the namespace's only cluster
	Nodes      []string // pods (direct mode: nodes) taking part; empty: every running node not evacuating
	Thresholds evacuation.Thresholds
	// Request is EMQX's request as given (nil fields: EMQX's defaults); Nodes is filled in.
	Request emqx.RebalanceRequest
	DryRun  bool // plan only
	NoWait  bool // start and return
	Waiting
}

// RebalanceResult is how a rebalance ended.
type RebalanceResult struct {
	Planned          bool // a plan was made (not when joining a running rebalance)
	Started          bool
	NothingToBalance bool   // EMQX said the nodes are within the thresholds
	Coordinator      string // its pod
	Watch, Stop      string // the commands that show it and stop it
	Waited           bool
	// The final counts of the participants that still run (after waiting), by role; Lost: one
	// stopped running.
	Donors, Recipients []Labelled
	Lost               bool
	Balanced           bool
}

// Labelled is a node's counts with the pod it is known by.
type Labelled struct {
	Pod string
	evacuation.Count
}

// Run plans, starts and, unless NoWait, watches the rebalance, then judges its outcome from the
// final counts (EMQX keeps no record of a finished rebalance).
func (b Rebalance) Run(ctx context.Context, a Access, r Reporter) (RebalanceResult, error) {
	var res RebalanceResult
	t, err := a.Cluster(ctx, b.Cluster)
	if err != nil {
		return res, err
	}
	defer t.Close()
	res.Watch, res.Stop = "kubectl emqx status"+t.NSFlag(), "kubectl emqx rebalance stop"+t.NSFlag()
	nodes, err := t.Conn.Nodes(ctx)
	if err != nil {
		return res, err
	}
	g, err := t.Conn.GlobalStatus(ctx)
	if err != nil {
		return res, err
	}
	if len(g.Rebalances) > 0 {
		rb := g.Rebalances[0]
		res.Coordinator = t.PodLabel(rb.CoordinatorNode)
		r.RebalanceJoined(res.Coordinator)
		return res, b.watch(ctx, t, r, rb.CoordinatorNode, rb.Donors, rb.Recipients, &res)
	}
	participants, err := b.participants(ctx, t, nodes, g)
	if err != nil {
		return res, err
	}
	var counts []evacuation.Count
	for _, n := range participants {
		counts = append(counts, evacuation.CountOf(n))
	}
	plan := evacuation.PlanRebalance(counts, b.Thresholds)
	res.Planned = true
	r.RebalancePlanned(plan, b.Thresholds, b.connRate(), t.PodLabel)
	if b.DryRun {
		return res, nil
	}
	coord, err := coordinator(t, participants)
	if err != nil {
		return res, err
	}
	req := b.Request
	req.Nodes = nil
	for _, n := range participants {
		req.Nodes = append(req.Nodes, n.Node)
	}
	err = t.Conn.StartRebalance(ctx, coord, req)
	switch {
	case emqx.IsNothingToBalance(err):
		res.NothingToBalance, res.Balanced = true, true
		return res, nil
	case err != nil:
		return res, fmt.Errorf("start the rebalance: %w", err)
	}
	res.Started, res.Coordinator = true, t.PodLabel(coord)
	r.RebalanceStarted(res.Coordinator)
	if b.NoWait {
		return res, nil
	}
	var donors, recipients []string
	for _, c := range plan.Donors {
		donors = append(donors, c.Node)
	}
	for _, c := range plan.Recipients {
		recipients = append(recipients, c.Node)
	}
	return res, b.watch(ctx, t, r, coord, donors, recipients, &res)
}

// connRate is the connection eviction rate the rebalance runs with.
func (b Rebalance) connRate() int64 {
	if r := b.Request.ConnEvictRate; r != nil {
		return *r
	}
	return evacuation.DefaultRate
}

// watch follows the rebalance until it disappears from global_status, then judges the counts.
func (b Rebalance) watch(
	ctx context.Context,
	t *Target,
	r Reporter,
	coord string,
	donors, recipients []string,
	res *RebalanceResult,
) error {
	err := Poll(ctx, b.Clock, b.Interval, b.deadline(), func() (bool, error) {
		g, err := t.Conn.GlobalStatus(ctx)
		if err != nil {
			return false, err
		}
		rb, running := g.Rebalance(coord)
		if !running {
			return true, nil
		}
		r.Rebalance(rb)
		return false, nil
	})
	if err != nil {
		return stillRunning(ctx, err, fmt.Sprintf("the rebalance coordinated by %s is still running; stop it with: %s",
			printable(t.PodLabel(coord)), res.Stop), b.Timeout)
	}
	nodes, err := t.Conn.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("the rebalance ended; reading the final counts failed: %w", err)
	}
	pick := func(names []string) []Labelled {
		var out []Labelled
		for _, n := range nodes {
			if slices.Contains(names, n.Node) && n.Running() {
				out = append(out, Labelled{Pod: t.PodLabel(n.Node), Count: evacuation.CountOf(n)})
			}
		}
		return out
	}
	res.Waited = true
	res.Donors, res.Recipients = pick(donors), pick(recipients)
	res.Lost = len(res.Donors)+len(res.Recipients) < len(donors)+len(recipients)
	counts := func(ls []Labelled) []evacuation.Count {
		out := make([]evacuation.Count, len(ls))
		for i, l := range ls {
			out[i] = l.Count
		}
		return out
	}
	res.Balanced = !res.Lost && evacuation.Balanced(counts(res.Donors), counts(res.Recipients), b.Thresholds)
	return nil
}

// participants are the Nodes given, or every running node that is not evacuating.
func (b Rebalance) participants(
	ctx context.Context,
	t *Target,
	nodes []emqx.Node,
	g emqx.GlobalStatus,
) ([]emqx.Node, error) {
	if len(b.Nodes) > 0 {
		var out []emqx.Node
		for _, name := range b.Nodes {
			n, err := t.NodeAmong(ctx, nodes, name)
			if err != nil {
				return nil, fmt.Errorf("--nodes %s: %w", name, err)
			}
			out = append(out, n)
		}
		return out, nil
	}
	var out []emqx.Node
	for _, n := range nodes {
		if _, evacuating := g.Evacuation(n.Node); n.Running() && !evacuating {
			out = append(out, n)
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf(
			"a rebalance needs at least two running nodes that are not evacuating; this cluster has %d",
			len(out),
		)
	}
	return out, nil
}

// coordinator picks a stable node to coordinate: a core node whose pod is Ready and not about to
// go (lowest ordinal within the StatefulSet's replicas); in direct mode, the first core node.
func coordinator(t *Target, participants []emqx.Node) (string, error) {
	type cand struct {
		node    string
		ordinal int
	}
	var cands []cand
	for _, n := range participants {
		if n.Role == emqx.RoleReplicant {
			continue // replicant names change with their IP
		}
		if t.Cluster == nil {
			cands = append(cands, cand{n.Node, len(cands)})
			continue
		}
		p, ok := cluster.PodOfNode(t.Cluster.Pods, n.Node)
		if !ok || !cluster.Ready(p) {
			continue
		}
		ord, keep := ordinal(t.Cluster, p.Name)
		if keep {
			cands = append(cands, cand{n.Node, ord})
		}
	}
	if len(cands) == 0 {
		if len(participants) > 0 {
			return participants[0].Node, nil
		}
		return "", errors.New("no node can coordinate the rebalance")
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].ordinal < cands[j].ordinal })
	return cands[0].node, nil
}

// ordinal is a StatefulSet pod's ordinal, and whether the pod stays at the current replica count.
func ordinal(cl *cluster.Cluster, pod string) (int, bool) {
	for i := range cl.StatefulSets {
		if n, ok := cluster.Ordinal(&cl.StatefulSets[i], pod); ok {
			return int(n), cluster.Stays(&cl.StatefulSets[i], pod)
		}
	}
	return 1 << 30, true
}

// StopRebalance stops every running rebalance on its coordinator (API.md §3.9): `kubectl emqx
// rebalance stop`. It returns the coordinators' pods.
func StopRebalance(ctx context.Context, a Access, name string) ([]string, error) {
	t, err := a.Cluster(ctx, name)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	gs, err := t.Conn.GlobalStatus(ctx)
	if err != nil {
		return nil, err
	}
	var stopped []string
	for _, rb := range gs.Rebalances {
		if err := t.Conn.StopRebalance(ctx, rb.CoordinatorNode); err != nil && !emqx.IsNotStarted(err) {
			return stopped, fmt.Errorf("stop the rebalance coordinated by %s: %w", t.PodLabel(rb.CoordinatorNode), err)
		}
		stopped = append(stopped, t.PodLabel(rb.CoordinatorNode))
	}
	return stopped, nil
}
