package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/webhook"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

// Paths the handlers are served on.
const (
	PathEviction  = "/evict"
	PathPodDelete = "/pod-delete"
	PathScale     = "/scale"
)

// response turns a verdict into an admission answer: 429 TooManyRequests while work is under
// way, so kubectl drain, Karpenter and cluster-autoscaler retry. No Retry-After is given: with
// one, client-go retries inside the call, which would block the StatefulSet controller's workers
// (and kubectl) instead of letting them back off and come again.
func response(v decide.Verdict) admission.Response {
	if v.Allowed {
		return admission.Allowed(v.Message).WithWarnings(v.Warnings...)
	}
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusTooManyRequests, Reason: metav1.StatusReasonTooManyRequests,
			Message: v.Message,
		},
		Warnings: v.Warnings,
	}}
}

// deleteOptions is what the handlers read of a DeleteOptions (in an Eviction, or a DELETE's options).
type deleteOptions struct {
	DryRun        []string `json:"dryRun"`
	Preconditions *struct {
		UID *string `json:"uid"`
	} `json:"preconditions"`
}

func (o *deleteOptions) uidMismatch(pod *corev1.Pod) bool {
	return o != nil && o.Preconditions != nil && o.Preconditions.UID != nil && *o.Preconditions.UID != string(pod.UID)
}

func dryRun(req admission.Request, o *deleteOptions) bool {
	return req.DryRun != nil && *req.DryRun || o != nil && len(o.DryRun) > 0
}

// EvictionHandler holds evictions (policy/v1 and v1beta1) of EMQX pods until their node is empty.
type EvictionHandler struct {
	Gate     *webhook.Gate
	Reader   client.Reader // the cache, which holds EMQX's pods only (an Eviction carries no labels)
	Uncached Uncached
}

// Uncached answers removals of pods the cache does not hold.
type Uncached struct {
	Live client.Reader // the API server
	// Watched are the namespaces the cache holds (--watch-namespace); none: all of them. A pod
	// elsewhere is not the webhook's to hold.
	Watched []string
}

// watches reports whether the cache holds the namespace's pods.
func (u Uncached) watches(ns string) bool {
	return len(u.Watched) == 0 || slices.Contains(u.Watched, ns)
}

// liveReadTimeout bounds the read of a pod the cache does not hold, well inside the API server's
// wait for the webhook (its timeoutSeconds, 10 s as shipped).
const liveReadTimeout = 3 * time.Second

// Handle implements admission.Handler.
func (h *EvictionHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req) // who asks: the decision reads it
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	var ev struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		DeleteOptions *deleteOptions `json:"deleteOptions"`
	}
	if err := json.Unmarshal(req.Object.Raw, &ev); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the Eviction: %w", err))
	}
	name, ns := ev.Metadata.Name, req.Namespace // the body may lack a namespace
	if name == "" {
		name = req.Name
	}
	if ns == "" {
		ns = ev.Metadata.Namespace
	}
	if name == "" || ns == "" {
		return admission.Errored(
			http.StatusBadRequest,
			fmt.Errorf("the Eviction names no pod (name %q, namespace %q)", name, ns),
		)
	}
	var pod corev1.Pod
	if err := h.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return response(h.uncached(ctx, ns, name))
		}
		return response(h.Gate.ReadFailed(ctx, ns, name, decide.CauseEviction, err))
	}
	if ev.DeleteOptions.uidMismatch(&pod) {
		return response(h.Gate.Unmatched(
			"pod",
			ns,
			name,
			"the eviction's UID precondition names another pod; the API server rejects it",
		))
	}
	return response(h.Gate.Removal(ctx, &pod, dryRun(req, ev.DeleteOptions), decide.CauseEviction))
}

// uncached answers the eviction of a pod the cache does not hold: almost always one that is not
// EMQX's, and most evictions in a cluster are such. Its name says whether an EMQX workload the
// cache holds could own it (a StatefulSet's NAME-ORDINAL, a ReplicaSet's NAME-SUFFIX): only then
// is the API server asked (Uncached.verdict). Any other is let go unread: a pod EMQX's only by
// labels given within the cache's lag (milliseconds) was not held a moment before either, and a
// new workload's first pods hold no client yet. The read would cost every ordinary eviction a
// round trip to a busy API server (bench-scale: 10 ms of the webhook's 13).
func (h *EvictionHandler) uncached(ctx context.Context, ns, name string) decide.Verdict {
	if h.Uncached.watches(ns) && !h.emqxOwnerNamed(ctx, ns, name) {
		return h.Gate.NotEMQX(decide.CauseEviction)
	}
	return h.Uncached.verdict(ctx, h.Gate, ns, name, decide.CauseEviction)
}

// emqxOwnerNamed reports whether a pod named name in ns could belong to an EMQX StatefulSet or
// ReplicaSet the cache holds (a failed read: yes, the API server decides).
func (h *EvictionHandler) emqxOwnerNamed(ctx context.Context, ns, name string) bool {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return false
	}
	base, suffix := name[:i], name[i+1:]
	key := client.ObjectKey{Namespace: ns, Name: base}
	if _, err := strconv.ParseUint(suffix, 10, 32); err == nil {
		var sts appsv1.StatefulSet // every StatefulSet is cached, slimmed: its template's labels say
		switch err := h.Reader.Get(ctx, key, &sts); {
		case err == nil && h.Gate.Matcher.Workload(&sts):
			return true
		case err != nil && !apierrors.IsNotFound(err):
			return true
		}
	}
	var rs appsv1.ReplicaSet // only EMQX's are cached
	err := h.Reader.Get(ctx, key, &rs)
	return err == nil || !apierrors.IsNotFound(err)
}

// verdict answers a removal of a pod the synced cache does not hold: almost always one that is not
// EMQX's. One metadata-only read of the API server, bounded in time, says so; a pod that is
// EMQX's by its labels (labelled a moment ago, or created a moment ago) is held until the cache
// has it, so it is never let go unevacuated; a pod that does not exist gets the answer of one that
// is not EMQX's (the API server answers 404).
func (u Uncached) verdict(ctx context.Context, g *webhook.Gate, ns, name, cause string) decide.Verdict {
	if !u.watches(ns) {
		return g.NotInCache(ns, name, cause)
	}
	ctx, cancel := context.WithTimeout(ctx, liveReadTimeout)
	defer cancel()
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	err := u.Live.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, meta)
	switch {
	case apierrors.IsNotFound(err):
		return g.NotInCache(ns, name, cause)
	case err != nil:
		return g.ReadFailed(ctx, ns, name, cause, err)
	case !g.Matcher.Match(meta.Labels):
		return g.NotEMQX(cause)
	}
	return g.NotYetCached(ns, name, cause)
}

// PodDeleteHandler holds deletions of EMQX pods (controllers, rolling updates, kubectl delete).
type PodDeleteHandler struct {
	Gate    *webhook.Gate
	Decoder admission.Decoder
	Reader  client.Reader // the pod cache: a review is checked against live state before anything starts
	// Uncached answers for a pod the cache does not hold: labelled EMQX's a moment ago, or a forged review.
	Uncached Uncached
}

// Handle implements admission.Handler.
func (h *PodDeleteHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req) // who asks: the decision reads it
	if req.Operation != admissionv1.Delete || len(req.OldObject.Raw) == 0 {
		return admission.Allowed("")
	}
	var pod corev1.Pod
	if err := h.Decoder.DecodeRaw(req.OldObject, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the pod: %w", err))
	}
	var opts *deleteOptions
	if len(req.Options.Raw) > 0 {
		opts = &deleteOptions{}
		if err := json.Unmarshal(req.Options.Raw, opts); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the delete options: %w", err))
		}
	}
	if opts.uidMismatch(&pod) {
		return response(h.Gate.Unmatched(
			"pod",
			req.Namespace,
			pod.Name,
			"the deletion's UID precondition names another pod; the API server rejects it",
		))
	}
	if pod.DeletionTimestamp != nil {
		// Already terminating (the final grace-0 delete): allowed, nothing to start; the cache may
		// not show the deletion yet.
		return response(h.Gate.Removal(ctx, &pod, dryRun(req, opts), "delete"))
	}
	// Decide on the pod as it is, not as the review says it is: a forged review (anyone who can
	// reach the webhook can send one) starts nothing.
	var live corev1.Pod
	if err := h.Reader.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: pod.Name}, &live); err != nil {
		if apierrors.IsNotFound(err) {
			return response(h.Uncached.verdict(ctx, h.Gate, req.Namespace, pod.Name, "delete"))
		}
		return response(h.Gate.ReadFailed(ctx, req.Namespace, pod.Name, "delete", err))
	}
	if live.UID != pod.UID {
		why := "the review's pod is not the pod of that name"
		return response(h.Gate.Unmatched("pod", req.Namespace, pod.Name, why))
	}
	return response(h.Gate.Removal(ctx, &live, dryRun(req, opts), "delete"))
}

// ScaleHandler sees StatefulSet scale-downs: UPDATE of statefulsets/scale (kubectl scale, HPA)
// and of statefulsets (kubectl apply/patch, GitOps).
type ScaleHandler struct {
	Gate    *webhook.Gate
	Reader  client.Reader
	Decoder admission.Decoder
}

// Handle implements admission.Handler.
func (h *ScaleHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req) // who asks: the decision reads it
	if req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	var oldR, newR int32
	var sts appsv1.StatefulSet
	switch req.SubResource {
	case "scale":
		var o, n struct {
			Spec struct {
				Replicas int32 `json:"replicas"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(req.OldObject.Raw, &o); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the old Scale: %w", err))
		}
		if err := json.Unmarshal(req.Object.Raw, &n); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the Scale: %w", err))
		}
		oldR, newR = o.Spec.Replicas, n.Spec.Replicas
		if newR >= oldR {
			return admission.Allowed("")
		}
		if err := h.Reader.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, &sts); err != nil {
			return response(h.Gate.Unmatched("statefulset", req.Namespace, req.Name, "not in the webhook's cache"))
		}
		if cur := cluster.Replicas(&sts); cur != oldR {
			// A Scale whose old replicas are not the StatefulSet's starts nothing: the controller's
			// deletions are still held one by one.
			return response(h.Gate.Unmatched("statefulset", req.Namespace, req.Name,
				fmt.Sprintf("the scale's old replicas (%d) are not the statefulset's (%d)", oldR, cur)))
		}
	case "":
		var old appsv1.StatefulSet
		if err := h.Decoder.DecodeRaw(req.OldObject, &old); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the old StatefulSet: %w", err))
		}
		if err := h.Decoder.Decode(req, &sts); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode the StatefulSet: %w", err))
		}
		oldR, newR = cluster.Replicas(&old), cluster.Replicas(&sts)
		sts.Generation = old.Generation // the generation this update replaces
		if newR >= oldR {
			return admission.Allowed("")
		}
		var live appsv1.StatefulSet
		if err := h.Reader.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, &live); err != nil ||
			live.UID != old.UID ||
			cluster.Replicas(&live) != oldR {
			// Not the StatefulSet as it is (forged, or stale): nothing started; the controller's
			// deletions are still held one by one.
			return response(h.Gate.Unmatched(
				"statefulset",
				req.Namespace,
				req.Name,
				"the review's statefulset is not the statefulset as it is",
			))
		}
	default:
		return admission.Allowed("")
	}
	if !h.Gate.Matcher.Workload(&sts) {
		return admission.Allowed("")
	}
	dry := req.DryRun != nil && *req.DryRun
	return response(h.Gate.ScaleDown(ctx, &sts, oldR, newR, dry))
}
