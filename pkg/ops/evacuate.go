package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Evacuate empties the EMQX node of one pod: `kubectl emqx evacuate pod`.
type Evacuate struct {
	Pod string
	// Request holds the rates and waits given (nil fields: EMQX's defaults); MigrateTo is computed.
	Request emqx.EvacuationRequest
	// MigrateTo are the pods (in direct mode, nodes) that take the sessions; empty: every node
	// EMQX accepts as a target (evacuation.Targets).
	MigrateTo  []string
	Within     time.Duration // choose the rates so the node is empty this long after the waits
	NoWait     bool          // start and return
	ThenDelete bool          // delete the pod once its node is empty
	DryRun     bool          // plan only: what would move where and for how long; nothing started
	Waiting
}

// EvacuationPlan is what an evacuation would do: the pod's node, what it holds, where its clients
// would go and about how long it would take.
type EvacuationPlan struct {
	Pod, Node             string
	Connections, Sessions int64
	Targets               []string      // the pods (in direct mode, nodes) that would take them
	About                 time.Duration // both waits and the evictions at the rates asked for
	Running               bool          // the node is evacuating already: nothing to plan
}

// EvacuateResult is how an evacuation ended.
type EvacuateResult struct {
	Pod, Node string
	Undo      string // the command that reopens the node
	Watch     string // the command that shows it
	Waited    bool   // false with NoWait
	Deleted   bool
	Plan      *EvacuationPlan // with DryRun: what would happen; nothing was started
	// Before is the node's live connections and sessions when this command started or joined
	// its evacuation; After, EMQX's count of what is left when it ended (after waiting).
	Before, After Counts
	// Targets are the pods (in direct mode, nodes) that take its sessions.
	Targets []string
}

// Counts are a node's live connections and sessions.
type Counts struct {
	Connections, Sessions int64
}

// Run starts (or joins) the evacuation and, unless NoWait, waits until the node is empty.
func (e Evacuate) Run(ctx context.Context, a Access, r Reporter) (EvacuateResult, error) {
	t, node, err := a.Pod(ctx, e.Pod)
	if err != nil {
		return EvacuateResult{}, err
	}
	defer t.Close()
	res := EvacuateResult{
		Pod:    e.Pod,
		Node:   node.Node,
		Undo:   fmt.Sprintf("kubectl emqx evacuate stop %s%s", e.Pod, t.NSFlag()),
		Watch:  "kubectl emqx status" + t.NSFlag(),
		Before: Counts{node.LiveConnections, node.Connections},
	}
	g, err := t.Conn.GlobalStatus(ctx)
	if err != nil {
		return res, err
	}
	if e.DryRun {
		res.Plan, err = e.plan(ctx, t, node, g)
		return res, err
	}
	if ev, running := g.Evacuation(node.Node); running {
		r.EvacuationJoined(e.Pod, node.Node)
		for _, n := range ev.SessionRecipients {
			res.Targets = append(res.Targets, t.PodLabel(n))
		}
	} else {
		req, err := e.request(ctx, t, node, g)
		if err != nil {
			return res, err
		}
		for _, n := range req.MigrateTo {
			res.Targets = append(res.Targets, t.PodLabel(n))
		}
		if err := t.Conn.StartEvacuation(ctx, node.Node, req); err != nil {
			if !emqx.IsAlreadyStarted(err) {
				return res, fmt.Errorf("start evacuating %s: %w", e.Pod, err)
			}
		} else {
			r.EvacuationStarted(e.Pod, node.Node, node.LiveConnections, node.Connections)
		}
	}
	if e.NoWait {
		return res, nil
	}
	ev, err := waitEvacuated(ctx, e.Waiting, e.deadline(), t, r, []emqx.Node{node}, evacuation.WaitsOf(e.Request))
	if err != nil {
		return res, stillRunning(
			ctx,
			err,
			fmt.Sprintf("EMQX node %s is still evacuating (state %s); it goes on without this command. Undo with: %s",
				printable(node.Node), printable(ev[node.Node].State), res.Undo),
			e.Timeout,
		)
	}
	res.Waited = true
	res.After = Counts{ev[node.Node].Stats.CurrentConnected, ev[node.Node].Stats.CurrentSessions}
	if e.ThenDelete {
		if err := t.Kube.CoreV1().Pods(t.Namespace).Delete(ctx, e.Pod, metav1.DeleteOptions{}); err != nil {
			return res, fmt.Errorf("node evacuated, but deleting pod %s failed: %w", e.Pod, err)
		}
		res.Deleted = true
	}
	return res, nil
}

// plan is the dry run: the request a real run would send, read but not sent.
func (e Evacuate) plan(ctx context.Context, t *Target, node emqx.Node, g emqx.GlobalStatus) (*EvacuationPlan, error) {
	p := &EvacuationPlan{Pod: e.Pod, Node: node.Node, Connections: node.LiveConnections, Sessions: node.Connections}
	if _, running := g.Evacuation(node.Node); running {
		p.Running = true
		return p, nil
	}
	req, err := e.request(ctx, t, node, g)
	if err != nil {
		return nil, err
	}
	for _, n := range req.MigrateTo {
		p.Targets = append(p.Targets, t.PodLabel(n))
	}
	p.About = evacuation.Estimate(req, node.LiveConnections, node.Connections)
	return p, nil
}

// request builds EMQX's request, resolving MigrateTo pods to nodes. Without MigrateTo, the
// sessions go to every node EMQX accepts as a target (evacuation.Targets).
func (e Evacuate) request(
	ctx context.Context,
	t *Target,
	node emqx.Node,
	g emqx.GlobalStatus,
) (emqx.EvacuationRequest, error) {
	req := e.Request
	if e.Within > 0 {
		waits := evacuation.WaitsOf(req)
		c, s, ok := evacuation.RatesWithin(e.Within, waits, node.LiveConnections, node.Connections)
		if !ok {
			return req, fmt.Errorf(
				"--within %v leaves no time after the waits (%v health check + %v takeover); "+
					"lower --wait-health-check/--wait-takeover or raise --within",
				e.Within,
				waits.HealthCheck,
				waits.Takeover,
			)
		}
		req.ConnEvictRate, req.SessEvictRate = &c, &s
	}
	nodes, err := t.Conn.Nodes(ctx)
	if err != nil {
		return req, err
	}
	planned := evacuation.Request(req, nodes, g, map[string]bool{node.Node: true})
	available := planned.MigrateTo
	if len(e.MigrateTo) == 0 {
		if len(available) == 0 {
			return req, fmt.Errorf(
				"no other EMQX node can take the sessions of %s (EMQX takes only running nodes that are not "+
					"evacuating and not a rebalance donor); scale up first",
				e.Pod,
			)
		}
		return planned, nil
	}
	for _, m := range e.MigrateTo {
		n, err := t.NodeAmong(ctx, nodes, m)
		if err != nil {
			return req, fmt.Errorf("--migrate-to %s: %w", m, err)
		}
		if n.Node == node.Node {
			return req, fmt.Errorf("--migrate-to %s is the node being evacuated", m)
		}
		if !slices.Contains(available, n.Node) {
			labels := make([]string, len(available))
			for i, a := range available {
				labels[i] = t.PodLabel(a)
			}
			return req, fmt.Errorf(
				"--migrate-to %s: EMQX would refuse it (it takes only running nodes that are not evacuating and not "+
					"a rebalance donor); choose among %s",
				m,
				printable(strings.Join(labels, ", ")),
			)
		}
		req.MigrateTo = append(req.MigrateTo, n.Node)
	}
	return req, nil
}

// StopEvacuation reopens the node of pod: `kubectl emqx evacuate stop`. It reports whether an
// evacuation was running.
func StopEvacuation(ctx context.Context, a Access, pod string) (node string, stopped bool, err error) {
	t, n, err := a.Pod(ctx, pod)
	if err != nil {
		return "", false, err
	}
	defer t.Close()
	err = t.Conn.StopEvacuation(ctx, n.Node)
	switch {
	case emqx.IsNotStarted(err):
		return n.Node, false, nil
	case err != nil:
		return n.Node, false, fmt.Errorf("stop the evacuation of %s: %w", pod, err)
	}
	return n.Node, true, nil
}
