package evacuation

import (
	"slices"
	"testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Only nodes that stay and that EMQX would accept take sessions: not the evacuated node, not the
// other victims of the same scale-down, not a stopped, evacuating or donor node.
func TestTargetsAreTheNodesThatStayAndAreAvailable(t *testing.T) {
	nodes := []emqx.Node{
		{Node: "e@4", NodeStatus: emqx.NodeRunning}, {Node: "e@0", NodeStatus: emqx.NodeRunning},
		{Node: "e@1", NodeStatus: emqx.NodeRunning}, {Node: "e@2", NodeStatus: emqx.NodeRunning},
		{Node: "e@3", NodeStatus: emqx.NodeStopped}, {Node: "e@5", NodeStatus: emqx.NodeRunning},
		{Node: "e@6", NodeStatus: emqx.NodeRunning},
	}
	gs := emqx.GlobalStatus{
		Evacuations: []emqx.Evacuation{{Node: "e@5"}},
		Rebalances: []emqx.Rebalance{
			{CoordinatorNode: "e@0", Donors: []string{"e@6"}, Recipients: []string{"e@0", "e@1"}},
		},
	}
	// A 3→1 scale-down of e@0..e@2 evacuating e@2: e@1 goes too.
	got := Targets(nodes, gs, map[string]bool{"e@2": true, "e@1": true})
	if want := []string{"e@0", "e@4"}; !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	if got := Targets(nodes[:1], emqx.GlobalStatus{}, map[string]bool{"e@4": true}); len(got) != 0 {
		t.Fatalf("a lone node has targets %v", got)
	}
	// The request keeps the settings and takes the targets.
	rate := int64(7)
	req := Request(
		emqx.EvacuationRequest{ConnEvictRate: &rate, MigrateTo: []string{"e@6"}},
		nodes,
		gs,
		map[string]bool{"e@2": true, "e@1": true},
	)
	if *req.ConnEvictRate != 7 || !slices.Equal(req.MigrateTo, []string{"e@0", "e@4"}) {
		t.Fatalf("request %+v", req)
	}
}

// EMQX evicts a whole step per donor before it checks again: the bound is whole steps, never
// more than the donors hold, and nothing when nothing is needed.
func TestMostConnMovesIsWholeStepsOfEveryDonor(t *testing.T) {
	p := Plan{Needed: true, ExpectedConnMoves: 1429, Donors: []Count{{Conns: 1502}, {Conns: 1498}}}
	if got := p.MostConnMoves(500); got != 2000 {
		t.Fatalf("up to %d, want 2000", got)
	}
	if got := p.MostConnMoves(5000); got != 3000 {
		t.Fatalf("up to %d, want what the donors hold, 3000", got)
	}
	if got := (Plan{}).MostConnMoves(500); got != 0 {
		t.Fatalf("nothing needed, up to %d", got)
	}
}
