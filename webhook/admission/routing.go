package admission

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
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"

	"gomodules.xyz/jsonpatch/v2"
)

// Routing by readiness gate: where an install's own readiness does not follow the evacuation
// (the Helm chart probes /status), the Service keeps sending new clients to an evacuating node,
// which refuses them. Opted in per StatefulSet (decide.AnnRouting: decide.RoutingReadinessGate) or for all
// EMQX pods (--routing-gate), a mutating webhook adds the readiness gate decide.ConditionServing to EMQX
// pods at creation, and the controller keeps that condition True except while the pod's node
// evacuates (EMQX refuses clients there anyway).
//
// Fail safe: the gate is added only while a controller is running (its leader lease is fresh),
// so a pod is never created waiting for a condition nobody sets; if the webhook is down at pod
// creation (failurePolicy Ignore) the pod simply has no gate. Where EMQX cannot be asked, the
// condition is True: the gate never keeps a pod out of service on its own doubt.
const PathPodCreate = "/pod-create"

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
	if !h.Matcher.Match(pod.Labels) || decide.HasServingGate(&pod) {
		return admission.Allowed("")
	}
	if !h.All && !h.optedIn(ctx, req.Namespace, &pod) {
		return admission.Allowed("")
	}
	if h.Alive != nil && !h.Alive(ctx) {
		return admission.Allowed(
			"no emqx-webhook controller is running: the pod gets no " + string(
				decide.ConditionServing,
			) + " readiness gate, which nobody would set",
		)
	}
	op := jsonpatch.JsonPatchOperation{
		Operation: "add",
		Path:      "/spec/readinessGates/-",
		Value:     map[string]any{"conditionType": decide.ConditionServing},
	}
	if len(pod.Spec.ReadinessGates) == 0 {
		op = jsonpatch.JsonPatchOperation{
			Operation: "add",
			Path:      "/spec/readinessGates",
			Value:     []any{map[string]any{"conditionType": decide.ConditionServing}},
		}
	}
	return admission.Patched("routing: readiness gate "+string(decide.ConditionServing)+" added", op)
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
	return err == nil && sts.Annotations[decide.AnnRouting] == decide.RoutingReadinessGate
}
