package ops

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Scale changes an EMQX StatefulSet's replicas without cutting sessions: `kubectl emqx scale`.
type Scale struct {
	Name     string
	Replicas int32
	// Request holds the rates and waits given for the scale-down's evacuations (nil fields:
	// EMQX's defaults).
	Request emqx.EvacuationRequest
	// Rebalance, after a scale-up: the rebalance to run onto the new nodes (nil: none).
	Rebalance *Rebalance
	// DryRun plans only: which pods would go, where their clients would move and for how long;
	// the StatefulSet is not changed and nothing is started.
	DryRun bool
	Waiting
}

// ScaleResult is how a scale ended.
type ScaleResult struct {
	From, To  int32
	Removed   []string         // pods a scale-down emptied and removed
	Added     []string         // pods a scale-up added
	Rebalance *RebalanceResult // the rebalance after a scale-up, if asked for
	// With DryRun: the evacuations a scale-down would run (at once; the longest sets the pace), or
	// the pods a scale-up would add (Added).
	Plans []EvacuationPlan
}

// Run scales: down evacuates the pods that go into the ones that stay, waits until they are
// empty, then lowers the replicas; up raises them, waits for the new nodes, reopens any that came
// back with a persisted evacuation, and rebalances if asked.
func (s Scale) Run(ctx context.Context, a Access, r Reporter) (ScaleResult, error) {
	sts, err := a.Kube.AppsV1().StatefulSets(a.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ScaleResult{}, fmt.Errorf(
			"statefulset %q not found in namespace %q; list EMQX clusters with: kubectl emqx status -n %s",
			s.Name,
			a.Namespace,
			a.Namespace,
		)
	}
	if err != nil {
		return ScaleResult{}, fmt.Errorf("get statefulset %q: %w", s.Name, err)
	}
	if !a.Matcher.Match(sts.Labels) && !a.Matcher.Match(sts.Spec.Template.Labels) {
		return ScaleResult{}, fmt.Errorf(
			"statefulset %q is not an EMQX StatefulSet (no app.kubernetes.io/name=emqx or "+
				"apps.emqx.io/managed-by=emqx-operator label, nor one of --emqx-selector); scale it with kubectl scale",
			s.Name,
		)
	}
	res := ScaleResult{From: cluster.Replicas(sts), To: s.Replicas}
	switch {
	case s.Replicas == res.From:
		return res, nil
	case s.Replicas < res.From:
		return res, s.down(ctx, a, r, sts, &res)
	}
	return res, s.up(ctx, a, r, sts, &res)
}

func (s Scale) down(ctx context.Context, a Access, r Reporter, sts *appsv1.StatefulSet, res *ScaleResult) error {
	gone := cluster.ReplicaPods(sts, s.Replicas, res.From)
	t, err := a.Cluster(ctx, cluster.Instance(sts.Labels), gone...)
	if err != nil {
		return err
	}
	defer t.Close()
	nodes, err := t.Conn.Nodes(ctx)
	if err != nil {
		return err
	}
	isVictim := map[string]bool{}
	var evacuate []emqx.Node
	for _, name := range gone {
		p, ok := t.Cluster.Pod(name)
		if !ok {
			continue
		}
		if n, ok := t.NodeOfPod(ctx, nodes, p); ok && n.Running() {
			evacuate = append(evacuate, n)
			isVictim[n.Node] = true
		} else {
			r.NothingToEvacuate(name)
		}
	}
	g, err := t.Conn.GlobalStatus(ctx)
	if err != nil {
		return err
	}
	// Nodes that stay and that EMQX accepts as targets: never another victim, an evacuating node
	// or a rebalance donor (EMQX would answer "Nodes unavailable").
	req := evacuation.Request(s.Request, nodes, g, isVictim)
	if len(evacuate) > 0 && len(req.MigrateTo) == 0 {
		return fmt.Errorf(
			"scaling %s to %d leaves no EMQX node that can take the sessions (running, not evacuating, "+
				"not a rebalance donor); scale to at least 1 first, or wait for the evacuation or rebalance under way",
			s.Name,
			s.Replicas,
		)
	}
	if s.DryRun {
		var targets []string
		for _, m := range req.MigrateTo {
			targets = append(targets, t.PodLabel(m))
		}
		for _, n := range evacuate {
			_, running := g.Evacuation(n.Node)
			res.Plans = append(res.Plans, EvacuationPlan{
				Pod: t.PodLabel(n.Node), Node: n.Node, Connections: n.LiveConnections, Sessions: n.Connections,
				Targets: targets, About: evacuation.Estimate(req, n.LiveConnections, n.Connections), Running: running,
			})
		}
		res.Removed = gone
		return nil
	}
	for _, n := range evacuate {
		if _, running := g.Evacuation(n.Node); running {
			continue
		}
		if err := t.Conn.StartEvacuation(ctx, n.Node, req); err != nil && !emqx.IsAlreadyStarted(err) {
			return fmt.Errorf("evacuate %s before scaling down: %w", t.PodLabel(n.Node), err)
		}
		r.EvacuationStarted(t.PodLabel(n.Node), n.Node, n.LiveConnections, n.Connections)
	}
	deadline := s.deadline()
	if _, err := waitEvacuated(ctx, s.Waiting, deadline, t, r, evacuate, evacuation.WaitsOf(s.Request)); err != nil {
		return stillRunning(
			ctx,
			err,
			fmt.Sprintf(
				"the replicas are unchanged and %s still evacuating; reopen with: kubectl emqx evacuate stop POD -n %s",
				strings.Join(gone, ", "),
				a.Namespace,
			),
			s.Timeout,
		)
	}
	if err := s.setReplicas(ctx, a); err != nil {
		return err
	}
	err = Poll(ctx, s.Clock, s.Interval, deadline, func() (bool, error) {
		if err := t.RefreshPods(ctx); err != nil {
			return false, err
		}
		for _, name := range gone {
			if _, still := t.Cluster.Pod(name); still {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("scaled to %d, but the removed pods are still there: %w", s.Replicas, err)
	}
	res.Removed = gone
	return nil
}

func (s Scale) setReplicas(ctx context.Context, a Access) error {
	scale := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: a.Namespace},
		Spec:       autoscalingv1.ScaleSpec{Replicas: s.Replicas},
	}
	if _, err := a.Kube.AppsV1().StatefulSets(a.Namespace).UpdateScale(ctx, s.Name, scale,
		metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("scale statefulset %s to %d: %w", s.Name, s.Replicas, err)
	}
	return nil
}

func (s Scale) up(ctx context.Context, a Access, r Reporter, sts *appsv1.StatefulSet, res *ScaleResult) error {
	if s.DryRun {
		res.Added = cluster.ReplicaPods(sts, res.From, s.Replicas)
		return nil
	}
	t, err := a.Cluster(ctx, cluster.Instance(sts.Labels))
	if err != nil {
		return err
	}
	defer t.Close()
	if err := s.setReplicas(ctx, a); err != nil {
		return err
	}
	added := cluster.ReplicaPods(sts, res.From, s.Replicas)
	var fresh []emqx.Node
	err = Poll(ctx, s.Clock, s.Interval, s.deadline(), func() (bool, error) {
		if err := t.RefreshPods(ctx); err != nil {
			return false, err
		}
		nodes, err := t.Conn.Nodes(ctx)
		if err != nil {
			return false, err
		}
		fresh = fresh[:0]
		for _, name := range added {
			p, ok := t.Cluster.Pod(name)
			if !ok || !cluster.Ready(p) {
				return false, nil
			}
			n, ok := t.NodeOfPod(ctx, nodes, p)
			if !ok || !n.Running() {
				return false, nil
			}
			fresh = append(fresh, n)
		}
		return true, nil
	})
	if err != nil {
		return stillRunning(
			ctx,
			err,
			fmt.Sprintf(
				"statefulset %s was scaled to %d but %s are not all running EMQX nodes yet",
				s.Name,
				s.Replicas,
				strings.Join(added, ", "),
			),
			s.Timeout,
		)
	}
	g, err := t.Conn.GlobalStatus(ctx)
	if err != nil {
		return err
	}
	for _, n := range fresh {
		if _, stale := g.Evacuation(n.Node); stale {
			if err := t.Conn.StopEvacuation(ctx, n.Node); err != nil && !emqx.IsNotStarted(err) {
				return fmt.Errorf(
					"%s came back with an evacuation persisted on its volume; reopening it failed: %w",
					t.PodLabel(n.Node),
					err,
				)
			}
			r.EvacuationReopened(t.PodLabel(n.Node))
		}
	}
	res.Added = added
	if s.Rebalance == nil {
		return nil
	}
	rb := *s.Rebalance
	rb.Cluster = t.Cluster.Name
	rr, err := rb.Run(ctx, a, r)
	res.Rebalance = &rr
	return err
}
