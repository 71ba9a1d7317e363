package plugin

import (
	"math"
	"slices"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
)

// The result objects evacuate, rebalance and scale print with -o, for pipelines: what moved,
// where, how long it took, the final counts and how it ended. Their JSON names are a contract.

// secs is d in whole seconds, as the result objects give durations.
func secs(d time.Duration) float64 { return math.Round(d.Seconds()) }

// count is a pod's (in direct mode, a node's) live connections and sessions.
type count struct {
	Pod         string `json:"pod,omitempty"`
	Connections int64  `json:"connections"`
	Sessions    int64  `json:"sessions"`
}

// evacuationResult is `kubectl emqx evacuate pod -o json` (kind EvacuationResult).
type evacuationResult struct {
	Pod  string `json:"pod"`
	Node string `json:"node"`
	// Outcome: Evacuated (the node is empty), Started (--no-wait), DryRun (nothing started), or
	// DryRunAlreadyEvacuating.
	Outcome string `json:"outcome"`
	// Before: the node when the command started or joined its evacuation; After: what EMQX
	// counts on it at the end.
	Before  count    `json:"before"`
	After   *count   `json:"after,omitempty"`
	MovedTo []string `json:"movedTo,omitempty"` // the pods that take its sessions
	// Seconds is how long the command ran; EstimatedSeconds, a dry run's estimate.
	Seconds          float64 `json:"seconds"`
	EstimatedSeconds float64 `json:"estimatedSeconds,omitempty"`
	Deleted          bool    `json:"deleted,omitempty"`
	Undo             string  `json:"undo,omitempty"` // the command that reopens the node
}

func newEvacuationResult(res ops.EvacuateResult, took time.Duration) evacuationResult {
	out := evacuationResult{Pod: res.Pod, Node: res.Node, Seconds: secs(took), Deleted: res.Deleted,
		Undo: res.Undo, MovedTo: res.Targets,
		Before: count{Connections: res.Before.Connections, Sessions: res.Before.Sessions}}
	switch {
	case res.Plan != nil && res.Plan.Running:
		out.Outcome = "DryRunAlreadyEvacuating"
	case res.Plan != nil:
		out.Outcome, out.Undo, out.MovedTo = "DryRun", "", res.Plan.Targets
		out.EstimatedSeconds = secs(res.Plan.About)
	case !res.Waited:
		out.Outcome = "Started"
	default:
		out.Outcome = "Evacuated"
		out.After = &count{Connections: res.After.Connections, Sessions: res.After.Sessions}
	}
	return out
}

// rebalanceResult is `kubectl emqx rebalance -o json` (kind RebalanceResult).
type rebalanceResult struct {
	// Outcome: Balanced, NotBalanced (donors still above the thresholds), NodeLost (a node taking
	// part stopped), NothingToBalance (EMQX's answer), Started (--no-wait), DryRun.
	Outcome     string         `json:"outcome"`
	Coordinator string         `json:"coordinator,omitempty"`
	Plan        *rebalancePlan `json:"plan,omitempty"`
	// Donors and Recipients are the final counts of the nodes taking part (after waiting).
	Donors     []count `json:"donors,omitempty"`
	Recipients []count `json:"recipients,omitempty"`
	Seconds    float64 `json:"seconds"`
	Stop       string  `json:"stop,omitempty"` // the command that stops a running rebalance
}

// rebalancePlan is what the rebalance set out to do: the nodes by role with their counts then.
type rebalancePlan struct {
	Donors     []count `json:"donors"`
	Recipients []count `json:"recipients"`
	Needed     bool    `json:"needed"`
	// ConnectionsToMove is the least that must leave the donors (EMQX may move more).
	ConnectionsToMove int64 `json:"connectionsToMove"`
}

func newRebalancePlan(p evacuation.Plan, label func(string) string) *rebalancePlan {
	counts := func(cs []evacuation.Count) []count {
		out := []count{}
		for _, c := range cs {
			out = append(out, count{Pod: label(c.Node), Connections: c.Conns, Sessions: c.Sessions})
		}
		slices.SortStableFunc(out, func(a, b count) int { return comparePods(a.Pod, b.Pod) })
		return out
	}
	return &rebalancePlan{Donors: counts(p.Donors), Recipients: counts(p.Recipients), Needed: p.Needed,
		ConnectionsToMove: p.ExpectedConnMoves}
}

func newRebalanceResult(res ops.RebalanceResult, plan *rebalancePlan, took time.Duration) rebalanceResult {
	out := rebalanceResult{Coordinator: res.Coordinator, Plan: plan, Seconds: secs(took)}
	for _, c := range res.Donors {
		out.Donors = append(out.Donors, count{Pod: c.Pod, Connections: c.Conns, Sessions: c.Sessions})
	}
	for _, c := range res.Recipients {
		out.Recipients = append(out.Recipients, count{Pod: c.Pod, Connections: c.Conns, Sessions: c.Sessions})
	}
	switch {
	case res.NothingToBalance:
		out.Outcome = "NothingToBalance"
	case res.Started && !res.Waited:
		out.Outcome, out.Stop = "Started", res.Stop
	case !res.Waited:
		out.Outcome = "DryRun"
	case res.Lost:
		out.Outcome = "NodeLost"
	case !res.Balanced:
		out.Outcome = "NotBalanced"
	default:
		out.Outcome = "Balanced"
	}
	return out
}

// scaleResult is `kubectl emqx scale -o json` (kind ScaleResult).
type scaleResult struct {
	From int32 `json:"from"`
	To   int32 `json:"to"`
	// Outcome: Scaled, Unchanged (already at that count), DryRun.
	Outcome string   `json:"outcome"`
	Removed []string `json:"removed,omitempty"` // pods emptied, then removed (or, dry run, that would be)
	Added   []string `json:"added,omitempty"`
	// Evacuations: a dry run's plan of the scale-down's evacuations (they run at once).
	Evacuations []evacuationResult `json:"evacuations,omitempty"`
	Rebalance   *rebalanceResult   `json:"rebalance,omitempty"` // after a scale-up, with --rebalance
	Seconds     float64            `json:"seconds"`
}

func newScaleResult(res ops.ScaleResult, dryRun bool, plan *rebalancePlan, took time.Duration) scaleResult {
	out := scaleResult{From: res.From, To: res.To, Removed: res.Removed, Added: res.Added, Seconds: secs(took),
		Outcome: "Scaled"}
	switch {
	case res.From == res.To:
		out.Outcome = "Unchanged"
	case dryRun:
		out.Outcome = "DryRun"
	}
	for _, p := range res.Plans {
		out.Evacuations = append(out.Evacuations, newEvacuationResult(ops.EvacuateResult{Pod: p.Pod, Node: p.Node,
			Plan: &p, Before: ops.Counts{Connections: p.Connections, Sessions: p.Sessions}}, 0))
	}
	if res.Rebalance != nil {
		rb := newRebalanceResult(*res.Rebalance, plan, 0)
		out.Rebalance = &rb
	}
	return out
}
