package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Controller closes the loops admission cannot:
//   - an evacuation the webhook started completes: it touches the pod's owner, so the
//     StatefulSet/ReplicaSet controller retries the held deletion at once instead of after its
//     back-off;
//   - a scale-down is withdrawn (replicas raised again): it stops the evacuations it started;
//   - a pod comes back (same name, new UID) while its node still evacuates from the old pod's
//     persisted data: it stops that evacuation once the pod runs and its node has joined.
type Controller struct {
	*Env
	Poll time.Duration // how often an evacuation in progress is checked
}

// SetupWithManager registers the controller for EMQX pods.
func (c *Controller) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("emqx-evacuation").
		For(&corev1.Pod{}, builder.WithPredicates(predicate.NewPredicateFuncs(c.isEMQX))).
		Complete(c)
}

// isEMQX says whether an object carries the labels of an EMQX pod.
func (c *Controller) isEMQX(o client.Object) bool { return c.Matcher.Match(o.GetLabels()) }

// Reconcile implements reconcile.Reconciler.
func (c *Controller) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pod corev1.Pod
	if err := c.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pod.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	var serving ctrl.Result
	if decide.HasServingGate(&pod) && cluster.Running(&pod) {
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
	owner, _, _ := observe.Owner(ctx, c.Client, pod)
	w := decide.FollowedPod{
		Now:      c.Clock.Now(),
		Pod:      pod,
		Owner:    owner,
		Settings: c.Config.For(owner),
		Poll:     c.Poll,
	}
	if pod.Annotations[decide.AnnStartedAt] != "" {
		if since, ok := c.Exec.Starts.Peek(pod.UID, decide.AnnCompletedAt); ok {
			w.EmptySince = decide.TimedState{Since: since, Known: true}
		}
		return c.act(ctx, w, decide.Follow, c.seeEvacuation)
	}
	// Running, not Ready: a pod that came back refusing clients may be NotReady for that very reason.
	if owner != nil && cluster.Running(pod) {
		if uid, ok := decide.ParseRecords(owner.GetAnnotations()[decide.AnnEvacuatedPods])[pod.Name]; ok &&
			uid != string(pod.UID) {
			return c.act(ctx, w, decide.Reopen, c.seeNode)
		}
	}
	return ctrl.Result{}, nil
}

// act runs one of the controller's decisions: it gathers what the decision asks for, stops what it
// says to stop, then applies its effects. A record that could not be written is an error: the pod
// is looked at again with back-off (a recreated pod must not keep a persisted evacuation because a
// write timed out).
func (c *Controller) act(
	ctx context.Context,
	w decide.FollowedPod,
	judge func(decide.FollowedPod) decide.Action,
	see func(context.Context, *corev1.Pod) (observe.EMQX, *decide.NodeSeen),
) (ctrl.Result, error) {
	var conn observe.EMQX
	for {
		a := judge(w)
		switch a.Need {
		case decide.NeedEMQX:
			conn, w.EMQX = see(ctx, w.Pod)
		case decide.NeedStop:
			err := c.Exec.StopEvacuation(ctx, conn, a.Stop)
			w.Stopped = &err
		default:
			if err := c.Exec.Apply(ctx, w.Pod, w.Owner, a.Effects); err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{RequeueAfter: a.Requeue}, nil
		}
	}
}

// seeEvacuation reads the global status for Follow: the evacuation of the node the pod records.
func (c *Controller) seeEvacuation(ctx context.Context, pod *corev1.Pod) (observe.EMQX, *decide.NodeSeen) {
	q := observe.Question{Node: pod.Annotations[decide.AnnNode], Status: true}
	o := observe.Node(ctx, c.EMQX, c.Kube, pod, q)
	if o.Err != nil {
		return nil, &decide.NodeSeen{Err: o.Err, Stale: o.Stale}
	}
	return o.Conn, seen(o, pod.Annotations[decide.AnnNode])
}

// seeNode finds the pod's node and its evacuation for Reopen.
func (c *Controller) seeNode(ctx context.Context, pod *corev1.Pod) (observe.EMQX, *decide.NodeSeen) {
	o := observe.Node(ctx, c.EMQX, c.Kube, pod, observe.Question{Status: true})
	switch {
	case o.Err != nil:
		return nil, &decide.NodeSeen{Err: o.Err, Stale: o.Stale}
	case !o.Found || !o.Node.Running():
		return o.Conn, &decide.NodeSeen{} // not joined yet
	}
	s := seen(o, o.Node.Node)
	s.Joined = true
	return o.Conn, s
}

// seen is what Follow and Reopen judge of the node: its evacuation, the node as listed now and
// how to read its session count.
func seen(o observe.NodeState, node string) *decide.NodeSeen {
	s := &decide.NodeSeen{Node: node, Listed: o.Node, Durable: o.Durable}
	s.Evacuation, s.Evacuating = o.Status.Evacuation(node)
	return s
}
