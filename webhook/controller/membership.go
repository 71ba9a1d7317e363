package controller

import (
	"context"
	"net/http"
	"strings"
	"time"

	"k8s.io/klog/v2"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Membership makes the core nodes of pods a StatefulSet scaled away for good leave the EMQX
// cluster: EMQX lists them as stopped for a day otherwise, and a later scale-up reusing the ordinal
// starts from stale cluster data. It asks force_leave only for a node EMQX lists as stopped, whose
// pod is gone and whose ordinal the StatefulSet no longer wants: never on a guess (force_leave of a
// running node expels it and wipes its data). A restart, a drain or a rolling update, where the
// ordinal comes back, is left alone. Off for a StatefulSet annotated AnnForceLeave: "false".
type Membership struct {
	*Env
	Poll time.Duration // how often a StatefulSet is looked at besides its pods' changes
	// AutoRebalance: every EMQX StatefulSet, not only those annotated AnnRebalance: "auto".
	AutoRebalance bool
	Cooldown      time.Duration // membership stable this long before a rebalance starts; at most one per cool-down
	// LetGo reports whether this replica's gate let the pod go a moment ago (Gate.LetGoRecently);
	// nil: none known.
	LetGo func(types.UID) bool
}

// setAnnotations writes annotations on the StatefulSet (logged on failure; looked at again soon).
func (m *Membership) setAnnotations(ctx context.Context, sts *appsv1.StatefulSet, ann map[string]*string) {
	if err := m.Exec.PatchAnnotations(ctx, sts, ann); err == nil {
		if sts.Annotations == nil {
			sts.Annotations = map[string]string{}
		}
		for k, v := range ann {
			if v == nil {
				delete(sts.Annotations, k)
			} else {
				sts.Annotations[k] = *v
			}
		}
	}
}

// AnnForceLeave "false" on a StatefulSet keeps its removed nodes listed as EMQX does by itself.
const AnnForceLeave = decide.AnnotationPrefix + "force-leave"

// ReasonNodeLeft is the Event of a node made to leave.
const ReasonNodeLeft = "NodeLeftCluster"

// SetupWithManager registers the reconciler for EMQX StatefulSets and their pods.
func (m *Membership) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("emqx-membership").
		For(&appsv1.StatefulSet{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			sts, ok := o.(*appsv1.StatefulSet)
			return ok && m.Matcher.Workload(sts)
		}))).
		Watches(&corev1.Pod{},
			handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &appsv1.StatefulSet{},
				handler.OnlyControllerOwner())).
		Complete(m)
}

// Reconcile implements reconcile.Reconciler.
func (m *Membership) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var sts appsv1.StatefulSet
	if err := m.Client.Get(ctx, req.NamespacedName, &sts); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if sts.DeletionTimestamp != nil || sts.Annotations[AnnForceLeave] == "false" {
		return ctrl.Result{}, nil
	}
	var pods corev1.PodList
	if err := m.Client.List(ctx, &pods, client.InNamespace(sts.Namespace)); err != nil {
		return ctrl.Result{}, err
	}
	var via *corev1.Pod // any running pod of the cluster answers for it
	inst := cluster.Instance(sts.Spec.Template.Labels)
	for i := range pods.Items {
		p := &pods.Items[i]
		if m.Matcher.OfInstance(p.Labels, inst) && cluster.Running(p) {
			via = p
			break
		}
	}
	if via == nil {
		return ctrl.Result{RequeueAfter: m.Poll}, nil
	}
	conn, err := m.EMQX.Connect(ctx, via)
	if err != nil {
		return ctrl.Result{RequeueAfter: m.Poll}, nil
	}
	nodes, err := conn.Nodes(ctx)
	if err != nil {
		m.EMQX.Forget(via)
		return ctrl.Result{RequeueAfter: m.Poll}, nil
	}
	for _, node := range Leavers(&sts, pods.Items, nodes) {
		if err := m.Exec.ForceLeave(ctx, conn, node); err != nil && !emqx.IsNotInCluster(err) {
			m.Log.Error(err, "force_leave", "statefulset", klog.KObj(&sts), "node", node)
			continue
		}
		m.Exec.Event(
			&sts,
			corev1.EventTypeNormal,
			ReasonNodeLeft,
			"EMQX node %s of a pod statefulset %s scaled away left the cluster (force_leave)",
			node,
			sts.Name,
		)
		m.Log.Info("node left the cluster", "statefulset", klog.KObj(&sts), "node", node)
		m.Exec.Count(ReasonNodeLeft)
		m.forgetSite(ctx, conn, &sts, node)
	}
	next := m.Poll
	if d := m.autoRebalance(ctx, &sts, pods.Items, conn, nodes); d > 0 && d < next {
		next = d
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// ReasonSiteForgotten is the Event of a durable-storage site forgotten with its node.
const ReasonSiteForgotten = "DurableStorageSiteForgotten"

// forgetSite forgets the durable-storage site of a node that left the cluster (EMQX 6.0+, as
// emqx-operator 3 does): EMQX keeps listing it otherwise. Nothing to do without durable storage
// (404) or before 6.0 (no such endpoint: 404 too). A site that still holds replicas is refused by
// EMQX and logged.
func (m *Membership) forgetSite(ctx context.Context, conn observe.EMQX, sts *appsv1.StatefulSet, node string) {
	ids, err := conn.Sites(ctx)
	if err != nil {
		return
	}
	for _, id := range ids {
		site, err := conn.Site(ctx, id)
		if err != nil || site.Node != node {
			continue
		}
		if err := m.Exec.ForgetSite(ctx, conn, id); err != nil {
			if !emqx.IsHTTPStatus(err, http.StatusNotFound) {
				m.Log.Error(
					err,
					"forget durable-storage site",
					"statefulset",
					klog.KObj(sts),
					"node",
					node,
					"site",
					id,
				)
			}
			return
		}
		m.Exec.Event(
			sts,
			corev1.EventTypeNormal,
			ReasonSiteForgotten,
			"durable-storage site %s of EMQX node %s, which left the cluster, is forgotten",
			id,
			node,
		)
		m.Log.Info(
			"durable-storage site forgotten",
			"statefulset",
			klog.KObj(sts),
			"node",
			node,
			"site",
			id,
		)
		m.Exec.Count(ReasonSiteForgotten)
		return
	}
}

// Leavers is the decision: the nodes EMQX lists as stopped whose pod is a pod of sts that no
// longer exists and whose ordinal sts no longer wants.
func Leavers(sts *appsv1.StatefulSet, pods []corev1.Pod, nodes []emqx.Node) []string {
	exists := map[string]bool{}
	for _, p := range pods {
		exists[p.Name] = true
	}
	var out []string
	for _, n := range nodes {
		if n.NodeStatus != emqx.NodeStopped {
			continue
		}
		pod, _, _ := strings.Cut(cluster.Host(n.Node), ".")
		if _, ok := cluster.Ordinal(sts, pod); ok && !cluster.Stays(sts, pod) && !exists[pod] {
			out = append(out, n.Node)
		}
	}
	return out
}
