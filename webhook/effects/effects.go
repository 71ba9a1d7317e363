package effects

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/go-logr/logr"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Executor carries out decisions' effects. Its client, recorder, clock and marks are the
// webhook's own (the gate's); it holds no state of its own.
type Executor struct {
	Client   client.Client
	Recorder record.EventRecorder
	Clock    clock.PassiveClock
	Log      logr.Logger
	EMQX     observe.Connector   // its cached connections are dropped by ForgetConnection
	Starts   *StartTimes         // in-memory first-seen times of timed states
	Counted  func(reason string) // counts what the controllers did (nil: not counted)
	// Evacuated times an evacuation the webhook started, when its node is found empty (nil: not timed).
	Evacuated func(took time.Duration)
}

// Apply carries out effects on the pod (and its owner) in order. Failed
// annotation writes are logged and the decision stands: the in-memory marks keep the clocks
// running, and the next request rebuilds what it needs from EMQX. The first failed write of the
// owner's record is returned (the admission path logs it; the controller retries it).
func (x *Executor) Apply(ctx context.Context, pod *corev1.Pod, ownerMeta metav1.Object, effects []decide.Effect) error {
	owner, _ := ownerMeta.(client.Object) // the decisions see metadata; the writes need the object
	var failed error
	record := func(uid string) {
		if err := x.setRecord(ctx, owner, pod.Name, uid); err != nil && failed == nil {
			failed = fmt.Errorf("record of evacuated pods of %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	for _, e := range effects {
		switch e := e.(type) {
		case decide.Annotate:
			for _, k := range e.Forget {
				x.Starts.Forget(pod.UID, k)
			}
			x.Annotate(ctx, pod, e.Set)
		case decide.RecordStart:
			since := x.Starts.FirstSeen(pod.UID, e.Key, e.Since)
			x.Annotate(ctx, pod, map[string]*string{e.Key: decide.Stamp(since)})
		case decide.RememberStart:
			x.Starts.FirstSeen(pod.UID, e.Key, e.Since)
		case decide.ForgetStart:
			x.Starts.Forget(pod.UID, e.Key)
			if pod.Annotations[e.Key] != "" {
				x.Annotate(ctx, pod, map[string]*string{e.Key: nil})
			}
		case decide.Event:
			x.Event(pod, e.Type, e.Reason, "%s", e.Message)
			x.timeEvacuation(pod, e.Reason)
		case decide.RecordEvacuated:
			record(string(pod.UID))
		case decide.ClearRecord:
			record("")
		case decide.ForgetConnection:
			x.EMQX.Forget(pod)
		case decide.ForgetEvacuation:
			ann := map[string]*string{}
			for _, k := range decide.EvacuationAnnotations() {
				ann[k] = nil
				x.Starts.Forget(pod.UID, k)
			}
			x.Annotate(ctx, pod, ann)
		case decide.RequeueOwner:
			if owner != nil {
				touch := map[string]*string{decide.AnnRequeuedAt: decide.Stamp(x.Clock.Now())}
				_ = x.PatchAnnotations(ctx, owner, touch) // logged
			}
		case decide.Counted:
			x.Log.Info(e.Log, "pod", klog.KObj(pod), "node", e.Node, "reason", e.Reason)
			x.Count(e.Reason)
		}
	}
	return failed
}

// StartEvacuation carries out a decision's StartRequest: the rebalances first, then the evacuation.
func (x *Executor) StartEvacuation(
	ctx context.Context,
	conn observe.EMQX,
	pod *corev1.Pod,
	req *decide.StartRequest,
) *decide.StartOutcome {
	out := &decide.StartOutcome{}
	for _, c := range req.Rebalances {
		if err := conn.StopRebalance(ctx, c); err != nil && !emqx.IsNotStarted(err) {
			out.StopErr = fmt.Errorf("stop the rebalance coordinated by %s before evacuating %s: %w", c, req.Node, err)
			x.Log.Info("EMQX API failed", "pod", klog.KObj(pod), "error", out.StopErr.Error())
			return out
		}
		out.Stopped = append(out.Stopped, c)
		x.Log.Info("rebalance stopped for a removal", "coordinator", c, "pod", klog.KObj(pod))
		x.Count(decide.ReasonRebalanceStopped)
	}
	out.Err = conn.StartEvacuation(ctx, req.Node, req.Request)
	if out.Err != nil && !emqx.IsAlreadyStarted(out.Err) {
		x.Log.Info(
			"EMQX refused the evacuation",
			"pod",
			klog.KObj(pod),
			"node",
			req.Node,
			"error",
			out.Err.Error(),
		)
	}
	return out
}

// Event records an Event on obj, its message escaped and bounded.
func (x *Executor) Event(obj client.Object, typ, reason, format string, args ...any) {
	if x.Recorder != nil {
		x.Recorder.Event(obj, typ, reason, emqx.Printable(fmt.Sprintf(format, args...), decide.MaxMessage))
	}
}

// setRecord sets (uid "" removes) the pod's entry in its owner's record of evacuated pods.
func (x *Executor) setRecord(ctx context.Context, owner client.Object, pod, uid string) error {
	if owner == nil {
		return nil
	}
	recs := decide.ParseRecords(owner.GetAnnotations()[decide.AnnEvacuatedPods])
	if recs[pod] == uid {
		return nil
	}
	if uid == "" {
		delete(recs, pod)
	} else {
		recs[pod] = uid
	}
	var val *string
	if len(recs) > 0 {
		val = ptr.To(decide.FormatRecords(recs))
	}
	return x.PatchAnnotations(ctx, owner, map[string]*string{decide.AnnEvacuatedPods: val})
}

// Annotate merges annotations into the pod (nil removes), on the server and in the copy at hand;
// failures are logged.
func (x *Executor) Annotate(ctx context.Context, pod *corev1.Pod, ann map[string]*string) {
	_ = x.PatchAnnotations(ctx, pod, ann) // logged; the decision stands on what was seen (and the in-memory marks)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	for k, v := range ann {
		if v == nil {
			delete(pod.Annotations, k)
		} else {
			pod.Annotations[k] = *v
		}
	}
}

// writeGrace is how long a decision's writes may run past its deadline, all of them together.
const writeGrace = 2 * time.Second

// writeTimeout bounds one write: writeGrace, and never past the decision's deadline plus writeGrace
// (shared by every write of the call), so the whole admission call ends inside the API server's
// timeout. left is what remains of the decision's deadline (a context's deadlines are wall-clock
// time); a context without one (a controller's) gets writeGrace.
func writeTimeout(left time.Duration, hasDeadline bool) time.Duration {
	if hasDeadline {
		return max(0, min(writeGrace, left+writeGrace))
	}
	return writeGrace
}

// PatchAnnotations writes with a context of its own: a decision whose deadline passed (EMQX
// hanging) must still record what it saw, or the grace period would never start; writeDeadline
// bounds it.
func (x *Executor) PatchAnnotations(ctx context.Context, obj client.Object, ann map[string]*string) error {
	d, ok := ctx.Deadline()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout(time.Until(d), ok))
	defer cancel()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err := x.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		x.Log.Error(err, "annotate", "object", obj.GetNamespace()+"/"+obj.GetName())
		return fmt.Errorf("annotate %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// Count counts one thing the controllers did, by reason (the metric of a way out or an action).
func (x *Executor) Count(reason string) {
	if x.Counted != nil {
		x.Counted(reason)
	}
}

// MoveReplicas asks EMQX to keep each DB's replicas on the given sites.
func (x *Executor) MoveReplicas(ctx context.Context, conn observe.EMQX, moves map[string][]string) error {
	for _, db := range slices.Sorted(maps.Keys(moves)) {
		if err := conn.SetReplicaSites(ctx, db, moves[db]); err != nil {
			return fmt.Errorf("move the replicas of durable storage %s: %w", db, err)
		}
	}
	return nil
}

// StopEvacuation stops the evacuation of an EMQX node: it accepts clients again. This and the
// other EMQX writes below return EMQX's error as it is: callers judge it by its code.
func (x *Executor) StopEvacuation(ctx context.Context, conn observe.EMQX, node string) error {
	return conn.StopEvacuation(ctx, node)
}

// StartRebalance starts a rebalance coordinated by coordinator.
func (x *Executor) StartRebalance(
	ctx context.Context,
	conn observe.EMQX,
	coordinator string,
	req emqx.RebalanceRequest,
) error {
	return conn.StartRebalance(ctx, coordinator, req)
}

// ForceLeave removes a stopped EMQX node from the cluster's membership.
func (x *Executor) ForceLeave(ctx context.Context, conn observe.EMQX, node string) error {
	return conn.ForceLeave(ctx, node)
}

// ForgetSite drops a durable-storage site whose node left for good.
func (x *Executor) ForgetSite(ctx context.Context, conn observe.EMQX, site string) error {
	return conn.ForgetSite(ctx, site)
}

// SetCondition sets one condition of the pod's status (merged by type; the others stay).
func (x *Executor) SetCondition(ctx context.Context, pod *corev1.Pod, cond corev1.PodCondition) error {
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{cond}}})
	if err := x.Client.Status().Patch(ctx, pod, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return fmt.Errorf("set %s of pod %s/%s: %w", cond.Type, pod.Namespace, pod.Name, err)
	}
	return nil
}

// timeEvacuation times the evacuation of the pod's node once its completion is announced (the
// decisions announce it once, with the completion time).
func (x *Executor) timeEvacuation(pod *corev1.Pod, reason string) {
	if reason != decide.ReasonEvacuated || x.Evacuated == nil {
		return
	}
	if started, ok := decide.Stamped(pod.Annotations, decide.AnnStartedAt, x.Clock.Now()); ok {
		x.Evacuated(x.Clock.Now().Sub(started))
	}
}
