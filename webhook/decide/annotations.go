package decide

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/utils/ptr"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Annotations the webhook reads and writes. State lives in the cluster, so every replica and any
// restart sees it.
const (
	AnnotationPrefix = "emqx.kubectl-emqx.io/"
	// AnnBypass "true" on a pod or its StatefulSet/ReplicaSet: never hold its removal.
	AnnBypass = AnnotationPrefix + "bypass"
	// On a pod whose evacuation the webhook started.
	AnnStartedAt   = AnnotationPrefix + "evacuation-started-at"
	AnnNode        = AnnotationPrefix + "evacuation-node"
	AnnReason      = AnnotationPrefix + "evacuation-reason" // eviction, delete, scale-down
	AnnCompletedAt = AnnotationPrefix + "evacuation-completed-at"
	// AnnStartedBy "other" marks an evacuation the webhook found running (kubectl emqx evacuate,
	// another tool): it times the hold, and leaves the evacuation to whoever started it.
	AnnStartedBy = AnnotationPrefix + "evacuation-started-by"
	// AnnLastRequest: the last removal request for a pod the webhook evacuates (written at most
	// every lastRequestEvery): when none has come for abandon-after since its node became empty,
	// the removal was abandoned.
	AnnLastRequest = AnnotationPrefix + "last-request-at"
	// AnnAbandonedAt: when the webhook abandoned the pod's evacuation (row 10c): a new one starts
	// only abandon-after later, so requests that keep coming (a replayed eviction) cannot keep the
	// node evacuated for good.
	AnnAbandonedAt = AnnotationPrefix + "evacuation-abandoned-at"
	// AnnScaleGeneration: the StatefulSet's generation before the scale-down that started the
	// evacuation; a withdrawal can only show in a later generation.
	AnnScaleGeneration = AnnotationPrefix + "scale-down-generation"
	// On a pod whose EMQX API did not answer: when that began.
	AnnUnreachableSince = AnnotationPrefix + "api-unreachable-since"
	// On a pod waiting for another evacuation (the concurrency limit): since when.
	AnnWaitingSince = AnnotationPrefix + "waiting-since"
	// On a core pod that leaves for good while its durable-storage site still holds replicas: since
	// when the removal waits for them to move.
	AnnReplicasMovingSince = AnnotationPrefix + "replicas-moving-since"
	// On a pod whose evacuation moves sessions: the last count seen, and since when it has not
	// moved.
	AnnSessionsLeft = cluster.AnnSessionsLeft
	AnnStalledSince = AnnotationPrefix + "sessions-stalled-since"
	// On a StatefulSet/ReplicaSet: pods removed while evacuated (name=uid,...), and the last touch
	// that made its controller resync.
	AnnEvacuatedPods = AnnotationPrefix + "evacuated-pods"
	AnnRequeuedAt    = AnnotationPrefix + "requeued-at"
	// Per-StatefulSet settings.
	AnnConnRate        = AnnotationPrefix + "conn-evict-rate"
	AnnSessRate        = AnnotationPrefix + "sess-evict-rate"
	AnnWaitHealthCheck = AnnotationPrefix + "wait-health-check"
	AnnWaitTakeover    = AnnotationPrefix + "wait-takeover"
	AnnTimeout         = AnnotationPrefix + "evacuation-timeout"
	AnnAbandonAfter    = AnnotationPrefix + "abandon-after"
	AnnScaleDown       = AnnotationPrefix + "scale-down" // "strict": deny scale-downs until the victims are empty
	// AnnMode "audit" makes the webhook observe only for this StatefulSet (or ReplicaSet): every
	// removal is allowed, and what it would have held is an Event; "enforce" overrides --audit.
	AnnMode              = AnnotationPrefix + "mode"
	AnnCredentialsSecret = cluster.AnnCredentialsSecret
)

// AnnMode's values.
const (
	ModeAudit   = "audit"
	ModeEnforce = "enforce"
)

// StartedByOther is AnnStartedBy's value for evacuations the webhook did not start.
const StartedByOther = "other"

// The record of evacuated pods on an owner: "name=uid,...", sorted by name.

func ParseRecords(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

func FormatRecords(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func IntAnnotation(obj metav1.Object, key string, def int64) int64 {
	if obj != nil {
		var v int64
		if _, err := fmt.Sscan(obj.GetAnnotations()[key], &v); err == nil && v > 0 {
			return v
		}
	}
	return def
}

// DurationAnnotation reads a duration annotation: seconds as in EMQX ("10") or a duration ("10s").
func DurationAnnotation(obj metav1.Object, key string, def *time.Duration) *time.Duration {
	if obj != nil {
		if d, err := evacuation.ParseWait(obj.GetAnnotations()[key]); err == nil {
			return &d
		}
	}
	return def
}

// Stamp is a time as the webhook writes it into an annotation.
func Stamp(t time.Time) *string { return ptr.To(t.UTC().Format(time.RFC3339Nano)) }

// Stamped reads a time the webhook wrote into annotations[key]; false when there is none, it does
// not parse, or it lies after now (a clock ahead, a hand edit: never trusted to stretch a hold).
func Stamped(annotations map[string]string, key string, now time.Time) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, annotations[key])
	return t, err == nil && !t.After(now)
}

// EvacuationAnnotations are the annotations of an evacuation on its pod; forgetting the
// evacuation clears them all.
func EvacuationAnnotations() []string {
	return []string{
		AnnStartedAt,
		AnnNode,
		AnnReason,
		AnnCompletedAt,
		AnnStartedBy,
		AnnLastRequest,
		AnnScaleGeneration,
		AnnSessionsLeft,
		AnnStalledSince,
	}
}

// Routing by readiness gate (see the webhook guide): AnnRouting=RoutingReadinessGate on a
// StatefulSet opts its pods in; they get the readiness gate ConditionServing at creation.
const (
	AnnRouting           = AnnotationPrefix + "routing"
	RoutingReadinessGate = "readiness-gate"
	// ConditionServing is the readiness gate's condition type.
	ConditionServing corev1.PodConditionType = "emqx.kubectl-emqx.io/serving"
)

// HasServingGate says whether the pod waits for ConditionServing to be Ready.
func HasServingGate(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		if g.ConditionType == ConditionServing {
			return true
		}
	}
	return false
}
