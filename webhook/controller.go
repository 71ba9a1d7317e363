package webhook

import (
	"context"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Controller closes the loops admission cannot:
//   - an evacuation the webhook started completes: it touches the pod's owner, so the
//     StatefulSet/ReplicaSet controller retries the held deletion at once instead of after its
//     back-off;
//   - a scale-down is withdrawn (replicas raised again): it stops the evacuations it started;
//   - a pod comes back (same name, new UID) while its node still evacuates from the old pod's
//     persisted data: it stops that evacuation once the pod runs and its node has joined.
type Controller struct {
	Gate *Gate
	Poll time.Duration // how often an evacuation in progress is checked
}

// Events of the controller.
const (
	ReasonStopped      = "EvacuationStopped"
	ReasonStaleStopped = "StaleEvacuationStopped"
	ReasonAbandoned    = "EvacuationAbandoned"
)

// evacuationMarks are the annotations of an evacuation on its pod; forgetting one clears them all.
var evacuationMarks = []string{AnnStartedAt, AnnNode, AnnReason, AnnCompletedAt, AnnStartedBy, AnnLastRequest, AnnScaleGeneration}

func (c *Controller) forgetEvacuation(ctx context.Context, pod *corev1.Pod) {
	ann := map[string]*string{}
	for _, k := range evacuationMarks {
		ann[k] = nil
		c.Gate.marks.forget(pod.UID, k)
	}
	c.Gate.annotate(ctx, pod, ann)
}

// SetupWithManager registers the controller for EMQX pods.
func (c *Controller) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("emqx-evacuation").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return c.Gate.Matcher.Match(o.GetLabels()) }))).
		Complete(c)
}

// Reconcile implements reconcile.Reconciler.
func (c *Controller) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pod corev1.Pod
	if err := c.Gate.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pod.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	var serving ctrl.Result
	if hasGate(&pod) && cluster.Running(&pod) {
		var err error
		if serving, err = c.syncServing(ctx, &pod); err != nil {
			return ctrl.Result{}, err
		}
	}
	res, err := c.reconcile(ctx, &pod)
	if serving.RequeueAfter > 0 && (res.RequeueAfter == 0 || serving.RequeueAfter < res.RequeueAfter) {
		res.RequeueAfter = serving.RequeueAfter
	}
	return res, err
}

func (c *Controller) reconcile(ctx context.Context, pod *corev1.Pod) (ctrl.Result, error) {
	owner := c.Gate.owner(ctx, pod)
	if pod.Annotations[AnnStartedAt] != "" {
		return c.followEvacuation(ctx, pod, owner)
	}
	// Running, not Ready: a pod that came back refusing clients may be NotReady for that very reason.
	if owner != nil && cluster.Running(pod) {
		if uid, ok := parseRecords(owner.GetAnnotations()[AnnEvacuatedPods])[pod.Name]; ok && uid != string(pod.UID) {
			return c.reopenStale(ctx, pod, owner)
		}
	}
	return ctrl.Result{}, nil
}

// followEvacuation watches an evacuation the webhook started.
func (c *Controller) followEvacuation(ctx context.Context, pod *corev1.Pod, owner client.Object) (ctrl.Result, error) {
	conn, err := c.Gate.EMQX.Connect(ctx, pod)
	if err != nil {
		return ctrl.Result{RequeueAfter: c.Poll}, nil
	}
	gs, err := conn.GlobalStatus(ctx)
	if err != nil {
		c.Gate.EMQX.Forget(pod)
		return ctrl.Result{RequeueAfter: c.Poll}, nil
	}
	node := pod.Annotations[AnnNode]
	ev, running := gs.Evacuation(node)
	if sts, ok := owner.(*appsv1.StatefulSet); ok && pod.Annotations[AnnReason] == CauseScaleDown && withdrawn(sts, pod) {
		if running {
			if err := conn.StopEvacuation(ctx, node); err != nil && !emqx.IsNotStarted(err) {
				return ctrl.Result{RequeueAfter: c.Poll}, nil
			}
		}
		c.forgetEvacuation(ctx, pod)
		c.Gate.event(pod, corev1.EventTypeNormal, ReasonStopped, "the scale-down of statefulset %s was withdrawn: EMQX node %s accepts clients again", sts.Name, node)
		c.Gate.Log.Info("evacuation stopped: scale-down withdrawn", "pod", pod.Namespace+"/"+pod.Name, "node", node)
		c.Gate.Metrics.action(ReasonStopped)
		return ctrl.Result{}, nil
	}
	switch {
	case !running:
		// Stopped by someone else (kubectl emqx evacuate stop): forget it.
		c.forgetEvacuation(ctx, pod)
		return ctrl.Result{}, nil
	case pod.Annotations[AnnStartedBy] == StartedByOther:
		// Not ours: whoever started it finishes it.
		return ctrl.Result{RequeueAfter: c.Poll}, nil
	case evacuation.SafeToRemove(ev):
		if pod.Annotations[AnnCompletedAt] == "" && owner != nil {
			// Any update of the owner requeues its controller at once.
			_ = c.Gate.patchAnnotations(ctx, owner, map[string]*string{AnnRequeuedAt: ptr(c.Gate.Clock.Now().UTC().Format(time.RFC3339Nano))})
		}
		if err := c.Gate.recordEvacuated(ctx, pod, owner); err != nil {
			return ctrl.Result{}, fmt.Errorf("record that pod %s/%s leaves evacuated: %w", pod.Namespace, pod.Name, err) // retried with back-off
		}
		return c.abandonIfNobodyAsks(ctx, conn, pod, owner, node)
	}
	return ctrl.Result{RequeueAfter: c.Poll}, nil
}

// abandonIfNobodyAsks stops an evacuation the webhook started whose node is empty when no removal
// request has come for abandon-after since then (a drain that gave up or was interrupted, an
// autoscaler that changed its mind, a strict scale-down refused and not retried): the node would
// otherwise refuse every client for good while its pod lives on.
func (c *Controller) abandonIfNobodyAsks(ctx context.Context, conn EMQX, pod *corev1.Pod, owner client.Object, node string) (ctrl.Result, error) {
	now := c.Gate.Clock.Now()
	var last time.Time // the node became empty, or the removal was last asked for
	for _, k := range []string{AnnCompletedAt, AnnLastRequest} {
		if t, err := time.Parse(time.RFC3339Nano, pod.Annotations[k]); err == nil && t.After(last) && !t.After(now) {
			last = t
		}
	}
	if last.IsZero() {
		last = c.Gate.marks.firstSeen(pod.UID, AnnCompletedAt, now)
	}
	wait := c.Gate.Config.For(owner).AbandonAfter
	left := wait - c.Gate.Clock.Since(last)
	if left > 0 {
		return ctrl.Result{RequeueAfter: min(left, max(c.Poll, time.Second))}, nil
	}
	if err := conn.StopEvacuation(ctx, node); err != nil && !emqx.IsNotStarted(err) {
		return ctrl.Result{RequeueAfter: c.Poll}, nil
	}
	c.forgetEvacuation(ctx, pod)
	if err := c.Gate.setRecord(ctx, owner, pod.Name, ""); err != nil {
		return ctrl.Result{}, err
	}
	c.Gate.event(pod, corev1.EventTypeWarning, ReasonAbandoned,
		"EMQX node %s was empty for %v and nobody asked to remove the pod any more: evacuation stopped, the node accepts clients again", node, wait)
	c.Gate.Log.Info("evacuation abandoned", "pod", pod.Namespace+"/"+pod.Name, "node", node, "after", wait.String())
	c.Gate.Metrics.action(ReasonAbandoned)
	return ctrl.Result{}, nil
}

// withdrawn: a StatefulSet generation after the scale-down's keeps the pod. Until the admitted
// scale-down has landed in the cache, nothing is judged.
func withdrawn(sts *appsv1.StatefulSet, pod *corev1.Pod) bool {
	before, err := strconv.ParseInt(pod.Annotations[AnnScaleGeneration], 10, 64)
	return err == nil && sts.Generation > before+1 && cluster.Stays(sts, pod.Name)
}

// reopenStale stops the evacuation a recreated pod inherited from its volume.
func (c *Controller) reopenStale(ctx context.Context, pod *corev1.Pod, owner client.Object) (ctrl.Result, error) {
	conn, err := c.Gate.EMQX.Connect(ctx, pod)
	if err != nil {
		return ctrl.Result{RequeueAfter: c.Poll}, nil
	}
	nodes, err := conn.Nodes(ctx)
	if err != nil {
		c.Gate.EMQX.Forget(pod)
		return ctrl.Result{RequeueAfter: c.Poll}, nil
	}
	node, _, ok := cluster.FindNode(ctx, c.Gate.Kube, nodes, pod)
	if !ok || !node.Running() {
		return ctrl.Result{RequeueAfter: c.Poll}, nil // not joined yet
	}
	gs, err := conn.GlobalStatus(ctx)
	if err != nil {
		return ctrl.Result{RequeueAfter: c.Poll}, nil
	}
	if _, running := gs.Evacuation(node.Node); running {
		if err := conn.StopEvacuation(ctx, node.Node); err != nil && !emqx.IsNotStarted(err) {
			return ctrl.Result{RequeueAfter: c.Poll}, nil
		}
		c.Gate.event(pod, corev1.EventTypeNormal, ReasonStaleStopped,
			"pod %s came back with the evacuation of EMQX node %s persisted on its volume: stopped it, the node accepts clients again", pod.Name, node.Node)
	}
	if err := c.Gate.setRecord(ctx, owner, pod.Name, ""); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}
