package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"

	"gomodules.xyz/jsonpatch/v2"
)

// Routing by readiness gate: where an install's own readiness does not follow the evacuation
// (the Helm chart probes /status), the Service keeps sending new clients to an evacuating node,
// which refuses them. Opted in per StatefulSet (AnnRouting: RoutingReadinessGate) or for all
// EMQX pods (--routing-gate), a mutating webhook adds the readiness gate ConditionServing to EMQX
// pods at creation, and the controller keeps that condition True except while the pod's node
// evacuates (EMQX refuses clients there anyway).
//
// Fail safe: the gate is added only while a controller is running (its leader lease is fresh),
// so a pod is never created waiting for a condition nobody sets; if the webhook is down at pod
// creation (failurePolicy Ignore) the pod simply has no gate. Where EMQX cannot be asked, the
// condition is True: the gate never keeps a pod out of service on its own doubt.
const (
	AnnRouting           = decide.AnnotationPrefix + "routing"
	RoutingReadinessGate = "readiness-gate"
	// ConditionServing is the readiness gate's condition type.
	ConditionServing corev1.PodConditionType = "emqx.kubectl-emqx.io/serving"
	PathPodCreate                            = "/pod-create"
)

// Reasons of the serving condition.
const (
	ReasonServing   = "NodeServing"
	ReasonNoService = "NodeEvacuating"
)

// ControllerAlive reports whether a controller replica runs: the leader lease was renewed within
// its duration. With leader election off, this process runs the controller and it is alive.
type ControllerAlive func(ctx context.Context) bool

// LeaseAlive is ControllerAlive read from the controller's leader-election lease.
func LeaseAlive(kube kubernetes.Interface, namespace, name string, clk clock.PassiveClock) ControllerAlive {
	return func(ctx context.Context) bool {
		l, err := kube.CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil ||
			l.Spec.HolderIdentity == nil ||
			*l.Spec.HolderIdentity == "" {
			return false
		}
		return clk.Since(l.Spec.RenewTime.Time) < time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second
	}
}

// PodCreateHandler adds the serving readiness gate to EMQX pods whose routing is opted in.
type PodCreateHandler struct {
	Matcher cluster.Matcher
	Reader  client.Reader // the StatefulSet cache
	All     bool          // --routing-gate: every EMQX pod
	Alive   ControllerAlive
	// Live reads a StatefulSet the cache does not hold yet (uncached; nil: the cache only).
	Live client.Reader
}

// Handle implements admission.Handler.
func (h *PodCreateHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the pod: %w", err))
	}
	if !h.Matcher.Match(pod.Labels) || hasGate(&pod) {
		return admission.Allowed("")
	}
	if !h.All && !h.optedIn(ctx, req.Namespace, &pod) {
		return admission.Allowed("")
	}
	if h.Alive != nil && !h.Alive(ctx) {
		return admission.Allowed(
			"no emqx-webhook controller is running: the pod gets no " + string(
				ConditionServing,
			) + " readiness gate, which nobody would set",
		)
	}
	op := jsonpatch.JsonPatchOperation{
		Operation: "add",
		Path:      "/spec/readinessGates/-",
		Value:     map[string]any{"conditionType": ConditionServing},
	}
	if len(pod.Spec.ReadinessGates) == 0 {
		op = jsonpatch.JsonPatchOperation{
			Operation: "add",
			Path:      "/spec/readinessGates",
			Value:     []any{map[string]any{"conditionType": ConditionServing}},
		}
	}
	return admission.Patched("routing: readiness gate "+string(ConditionServing)+" added", op)
}

// optedIn: the pod's StatefulSet carries the routing annotation.
func (h *PodCreateHandler) optedIn(ctx context.Context, ns string, pod *corev1.Pod) bool {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "StatefulSet" {
		return false
	}
	var sts appsv1.StatefulSet
	key := client.ObjectKey{Namespace: ns, Name: ref.Name}
	err := h.Reader.Get(ctx, key, &sts)
	if (err != nil && apierrors.IsNotFound(err) || err == nil && sts.UID != ref.UID) && h.Live != nil {
		// A StatefulSet creates its first pods at once: the cache may not hold it (or holds the one
		// it replaced) yet. One uncached read decides.
		err = h.Live.Get(ctx, key, &sts)
	}
	return err == nil && sts.Annotations[AnnRouting] == RoutingReadinessGate
}

func hasGate(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		if g.ConditionType == ConditionServing {
			return true
		}
	}
	return false
}

// syncServing keeps the serving condition of a gated pod: False while its node evacuates, True
// otherwise, and True when EMQX cannot be asked (the gate never holds a pod out on doubt).
func (c *Controller) syncServing(ctx context.Context, pod *corev1.Pod) (ctrl.Result, error) {
	serving, why := true, "EMQX node serves clients"
	o := observe.Node(ctx, c.Gate.EMQX, c.Gate.Kube, pod, observe.Question{Status: true})
	if o.Err != nil {
		if o.Stale {
			c.Gate.EMQX.Forget(pod)
		}
		why = "EMQX's API did not answer: the gate does not hold the pod out of service on doubt"
	} else if _, evacuating := o.Status.Evacuation(o.Node.Node); o.Found && o.Node.Running() && evacuating {
		serving, why = false, fmt.Sprintf("EMQX node %s is evacuating: it refuses new clients", o.Node.Node)
	}
	status, reason := corev1.ConditionTrue, ReasonServing
	if !serving {
		status, reason = corev1.ConditionFalse, ReasonNoService
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == ConditionServing && cond.Status == status {
			return ctrl.Result{RequeueAfter: c.Poll}, nil
		}
	}
	cond := corev1.PodCondition{
		Type:               ConditionServing,
		Status:             status,
		Reason:             reason,
		Message:            why,
		LastTransitionTime: metav1.NewTime(c.Gate.Clock.Now()),
	}
	if err := c.Gate.Exec.SetCondition(ctx, pod, cond); err != nil {
		return ctrl.Result{}, err
	}
	c.Gate.Log.Info("routing gate", "pod", klog.KObj(pod), "serving", serving, "why", why)
	return ctrl.Result{RequeueAfter: c.Poll}, nil
}
