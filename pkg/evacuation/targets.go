package evacuation

import (
	"sort"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Targets is the migrate_to of an evacuation: the nodes EMQX accepts as targets (running, their
// eviction agent disabled: not evacuating and not a rebalance donor; any other is refused with
// "Nodes unavailable", API.md §5.2) that stay, i.e. are not in going (the node being evacuated and
// the other pods a scale-down removes: their sessions would have to move twice). Sorted; empty
// when no node can take the sessions. The plugin and the webhook use this one rule.
func Targets(nodes []emqx.Node, gs emqx.GlobalStatus, going map[string]bool) []string {
	busy := map[string]bool{}
	for _, e := range gs.Evacuations {
		busy[e.Node] = true
	}
	for _, r := range gs.Rebalances {
		for _, d := range r.Donors {
			busy[d] = true
		}
	}
	var out []string
	for _, n := range nodes {
		if n.Running() && !going[n.Node] && !busy[n.Node] {
			out = append(out, n.Node)
		}
	}
	sort.Strings(out)
	return out
}

// Request is the evacuation request for a node: the rates and waits of settings (nil: EMQX's
// defaults) and migrate_to = Targets(nodes, gs, going). An empty MigrateTo means that no node can
// take the sessions: nothing to send.
func Request(
	settings emqx.EvacuationRequest,
	nodes []emqx.Node,
	gs emqx.GlobalStatus,
	going map[string]bool,
) emqx.EvacuationRequest {
	req := settings
	req.MigrateTo = Targets(nodes, gs, going)
	return req
}
