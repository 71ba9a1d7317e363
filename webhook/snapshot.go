package webhook

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// The gate's reads: what a Snapshot holds, gathered from the cache, EMQX and this replica's memory.

// timedStates are the annotations that time a pod's states.
var timedStates = []string{
	decide.AnnUnreachableSince,
	decide.AnnWaitingSince,
	decide.AnnStartedAt,
	decide.AnnReplicasMovingSince,
	decide.AnnStalledSince,
	decide.AnnAbandonedAt,
}

// snapshot reads what every removal decision needs: the pod's surroundings from the cache and the
// times of its timed states.
func (g *Gate) snapshot(
	ctx context.Context,
	pod *corev1.Pod,
	dryRun bool,
	cause string,
	extra map[string]*string,
) decide.Snapshot {
	s := decide.Snapshot{
		Now:     g.Clock.Now(),
		Cause:   cause,
		DryRun:  dryRun,
		Pod:     pod,
		Extra:   extra,
		EMQXPod: g.Matcher.Match(pod.Labels),
	}
	if !s.EMQXPod {
		return s
	}
	s.NamespaceTerminating = g.namespaceTerminating(ctx, pod.Namespace)
	s.Owner, s.OwnerGone, s.OwnerMissing = observe.Owner(ctx, g.Client, pod)
	if req, err := admission.RequestFromContext(ctx); err == nil {
		s.Requester = req.UserInfo.Username
	}
	s.Settings = g.Config.For(s.Owner)
	if cause == decide.CauseEviction {
		s.Budget = g.refusingBudget(ctx, pod)
	}
	s.Timed = map[string]decide.TimedState{}
	for _, key := range timedStates {
		s.Timed[key] = g.timedState(pod, key, s.Now, dryRun)
	}
	return s
}

// timedState is when the pod entered the state timed under key: the time recorded on the pod, else
// the first time this replica saw it (a write that failed does not restart the clock; a dry run
// counts from now).
func (g *Gate) timedState(pod *corev1.Pod, key string, now time.Time, dryRun bool) decide.TimedState {
	if since, ok := decide.Stamped(pod.Annotations, key, now); ok {
		return decide.TimedState{Since: since, OnPod: true, Known: true}
	}
	// None, unreadable, or in the future (a clock ahead, a hand edit): counted from when this
	// replica first saw it.
	if !dryRun {
		if since, ok := g.Exec.Starts.Peek(pod.UID, key); ok {
			return decide.TimedState{Since: since, Known: true}
		}
	}
	return decide.TimedState{Since: now}
}

// askEMQX reads the pod's node and the cluster's global status (Observe). A failure is a fact of
// the snapshot, not an error: the decision knows what to do with it.
func (g *Gate) askEMQX(ctx context.Context, pod *corev1.Pod) (observe.EMQX, *decide.EMQXState) {
	failed := func(err error, stale, shared bool) *decide.EMQXState {
		g.Log.Info("EMQX API failed", "pod", klog.KObj(pod), "error", err.Error(), "shared", shared)
		return &decide.EMQXState{Err: err, Stale: stale, Shared: shared}
	}
	o := observe.Node(ctx, g.EMQX, g.Kube, pod, observe.Question{Status: true})
	switch {
	case o.Err != nil:
		return nil, failed(o.Err, o.Stale, false)
	case !o.Found:
		// A running EMQX cluster that does not list the pod's node is no proof that the node holds
		// nothing (a name we cannot recognise, a node still joining): treated like an API failure.
		// A shared listing may predate the node's joining: the decision asks EMQX again (row 5).
		err := fmt.Errorf("EMQX lists no node of pod %s (its environment names %s)", pod.Name, o.Expected)
		if hint := cluster.MissingNodesHint(o.Nodes, g.runningPodsOf(ctx, pod)); hint != "" {
			err = fmt.Errorf("%w; %s", err, hint)
		}
		return nil, failed(err, false, o.Shared)
	}
	st := &decide.EMQXState{
		Nodes:    o.Nodes,
		Node:     o.Node,
		Status:   o.Status,
		Durable:  o.Durable,
		Shared:   o.Shared,
		Answered: o.Node.Running(),
	}
	return o.Conn, st
}

// leavingNodes is the node being evacuated and the nodes of the other pods its StatefulSet no longer
// wants (the other victims of a scale-down): sessions must not move into a node that goes next.
// pods are the pods of its namespace (nil when they could not be read: then only the node itself,
// and EMQX moves sessions at most twice); replicas is what a scale-down sets (nil: the spec).
func (g *Gate) leavingNodes(
	ctx context.Context,
	s decide.Snapshot,
	pods []corev1.Pod,
	replicas *int32,
) map[string]bool {
	out := map[string]bool{s.EMQX.Node.Node: true}
	sts, ok := s.Owner.(*appsv1.StatefulSet)
	if !ok {
		return out
	}
	sts = scaledTo(sts, replicas)
	for i := range pods {
		p := &pods[i]
		if p.UID == s.Pod.UID || !metav1.IsControlledBy(p, sts) || cluster.Stays(sts, p.Name) {
			continue
		}
		if n, _, ok := cluster.FindNode(ctx, g.Kube, s.EMQX.Nodes, p); ok {
			out[n.Node] = true
		}
	}
	return out
}

// goingNodes are the EMQX nodes of the other pods of the pod's cluster (among pods, its namespace's)
// that are being removed now: terminating, or let go by this replica a moment ago (the cache may
// not show their deletion yet). A drain that takes two pods of a cluster lost the sessions
// evacuated into the first one. departing are those of them let go whose pods the cache still
// shows running: the Service may still send clients to them.
func (g *Gate) goingNodes(ctx context.Context, s decide.Snapshot, pods []corev1.Pod) (
	going map[string]bool, departing []string,
) {
	going = map[string]bool{}
	now := g.Clock.Now()
	for i := range pods {
		p := &pods[i]
		letGo := p.DeletionTimestamp == nil && g.going.recent(p.UID, now)
		if p.UID == s.Pod.UID || !g.Matcher.OfInstance(p.Labels, cluster.Instance(s.Pod.Labels)) ||
			p.DeletionTimestamp == nil && !letGo {
			continue
		}
		if n, _, ok := cluster.FindNode(ctx, g.Kube, s.EMQX.Nodes, p); ok {
			going[n.Node] = true
			if letGo {
				departing = append(departing, p.Name)
			}
		}
	}
	return going, departing
}

// namespacePods are the cached pods of ns; nil when they cannot be read.
func (g *Gate) namespacePods(ctx context.Context, ns string) []corev1.Pod {
	var pods corev1.PodList
	if err := g.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return nil
	}
	return pods.Items
}

// returningNodes are the EMQX nodes that cannot take sessions now (stopped, evacuating, or going)
// whose pods the pod's StatefulSet keeps (replicas: what a scale-down sets, nil: the spec), by the pod
// name a core's node name carries: restarting, or recreated on another Kubernetes node after a
// drain, they take sessions again soon. None for other owners.
func returningNodes(s decide.Snapshot, replicas *int32) []string {
	sts, ok := s.Owner.(*appsv1.StatefulSet)
	if !ok {
		return nil
	}
	sts = scaledTo(sts, replicas)
	var out []string
	for _, n := range s.EMQX.Nodes {
		pod, _, _ := strings.Cut(cluster.Host(n.Node), ".")
		_, evacuating := s.EMQX.Status.Evacuation(n.Node)
		away := !n.Running() || evacuating || s.Going[n.Node]
		if away && !s.Leaving[n.Node] && pod != s.Pod.Name && cluster.Stays(sts, pod) {
			out = append(out, n.Node)
		}
	}
	return out
}

func (g *Gate) namespaceTerminating(ctx context.Context, name string) bool {
	var ns corev1.Namespace
	if err := g.Client.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		return false
	}
	return ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating
}

// leavesForGood: the pod's ordinal leaves its StatefulSet (replicas: what a scale-down sets, nil:
// the spec), so its data and its durable-storage site go with it. A restart, a drain or a rolling
// update brings the ordinal back with its volume.
func leavesForGood(owner metav1.Object, pod *corev1.Pod, replicas *int32) bool {
	sts, ok := owner.(*appsv1.StatefulSet)
	if !ok {
		return false
	}
	sts = scaledTo(sts, replicas)
	_, member := cluster.Ordinal(sts, pod.Name)
	return member && !cluster.Stays(sts, pod.Name)
}

// runningPodsOf counts the running EMQX pods of the pod's install, from the cache (0 when it
// cannot be read).
func (g *Gate) runningPodsOf(ctx context.Context, pod *corev1.Pod) int {
	pods := g.namespacePods(ctx, pod.Namespace)
	n := 0
	for i := range pods {
		p := &pods[i]
		if g.Matcher.OfInstance(p.Labels, cluster.Instance(pod.Labels)) && cluster.Running(p) {
			n++
		}
	}
	return n
}

// refusingBudget names a PodDisruptionBudget that refuses the eviction of pod now, as the API
// server's eviction does: a healthy (Ready) pod needs a budget with a disruption allowed; an
// unhealthy one is let go unless the budget has IfHealthyBudget (the default) and fewer healthy
// pods than it wants. A budget that cannot be read refuses nothing (the API server decides).
func (g *Gate) refusingBudget(ctx context.Context, pod *corev1.Pod) string {
	var pdbs policyv1.PodDisruptionBudgetList
	if err := g.Client.List(ctx, &pdbs, client.InNamespace(pod.Namespace)); err != nil {
		return ""
	}
	healthy := cluster.Ready(pod)
	for i := range pdbs.Items {
		pdb := &pdbs.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		alwaysAllow := pdb.Spec.UnhealthyPodEvictionPolicy != nil &&
			*pdb.Spec.UnhealthyPodEvictionPolicy == policyv1.AlwaysAllow
		switch {
		case healthy && pdb.Status.DisruptionsAllowed < 1:
			return pdb.Name
		case !healthy && !alwaysAllow && pdb.Status.CurrentHealthy < pdb.Status.DesiredHealthy:
			return pdb.Name
		}
	}
	return ""
}

// scaledTo is sts as a scale-down to replicas leaves it (nil: as its spec says), never modifying it.
func scaledTo(sts *appsv1.StatefulSet, replicas *int32) *appsv1.StatefulSet {
	if replicas == nil {
		return sts
	}
	sts = sts.DeepCopy()
	sts.Spec.Replicas = replicas
	return sts
}
