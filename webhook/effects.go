package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Effect is one side effect of a decision, applied by the gate's executor (never in a dry run).
type Effect interface{ effect() }

// Annotate merges annotations into the pod (nil removes) and drops the in-memory marks Forget
// names (a new evacuation restarts its clock).
type Annotate struct {
	Set    map[string]*string
	Forget []string
}

// MarkSince records, in memory and on the pod, that the state timed under Key began at Since.
type MarkSince struct {
	Key   string
	Since time.Time
}

// Remember records, in this replica's memory only, that the state timed under Key began at Since.
type Remember struct {
	Key   string
	Since time.Time
}

// ClearMark ends the state timed under Key.
type ClearMark struct{ Key string }

// Event is an Event on the pod.
type Event struct{ Type, Reason, Message string }

// RecordEvacuated puts the pod in its owner's record of pods removed while evacuated.
type RecordEvacuated struct{}

// ForgetConnection drops the cached connection to the pod's EMQX cluster (it failed).
type ForgetConnection struct{}

func (Annotate) effect()         {}
func (MarkSince) effect()        {}
func (Remember) effect()         {}
func (ClearMark) effect()        {}
func (Event) effect()            {}
func (RecordEvacuated) effect()  {}
func (ForgetConnection) effect() {}

// event builds an Event effect; EMQX-provided text is escaped and bounded.
func event(typ, reason, format string, args ...any) Event {
	return Event{Type: typ, Reason: reason, Message: emqx.Printable(fmt.Sprintf(format, args...), maxMessage)}
}

// apply is the executor: it carries out effects on the pod (and its owner) in order. Failed
// annotation writes are logged and the decision stands: the in-memory marks keep the clocks
// running, and the next request rebuilds what it needs from EMQX. The first failed write of the
// owner's record is returned (the admission path logs it; the controller retries it).
func (g *Gate) apply(ctx context.Context, pod *corev1.Pod, owner client.Object, effects []Effect) error {
	var failed error
	record := func(uid string) {
		if err := g.setRecord(ctx, owner, pod.Name, uid); err != nil && failed == nil {
			failed = fmt.Errorf("record of evacuated pods of %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	for _, e := range effects {
		switch e := e.(type) {
		case Annotate:
			for _, k := range e.Forget {
				g.marks.forget(pod.UID, k)
			}
			g.annotate(ctx, pod, e.Set)
		case MarkSince:
			since := g.marks.firstSeen(pod.UID, e.Key, e.Since)
			g.annotate(ctx, pod, map[string]*string{e.Key: stamp(since)})
		case Remember:
			g.marks.firstSeen(pod.UID, e.Key, e.Since)
		case ClearMark:
			g.marks.forget(pod.UID, e.Key)
			if pod.Annotations[e.Key] != "" {
				g.annotate(ctx, pod, map[string]*string{e.Key: nil})
			}
		case Event:
			g.event(pod, e.Type, e.Reason, "%s", e.Message)
		case RecordEvacuated:
			record(string(pod.UID))
		case ClearRecord:
			record("")
		case ForgetConnection:
			g.EMQX.Forget(pod)
		case ForgetEvacuation:
			ann := map[string]*string{}
			for _, k := range evacuationMarks {
				ann[k] = nil
				g.marks.forget(pod.UID, k)
			}
			g.annotate(ctx, pod, ann)
		case RequeueOwner:
			if owner != nil {
				_ = g.patchAnnotations(ctx, owner, map[string]*string{AnnRequeuedAt: stamp(g.Clock.Now())}) // logged
			}
		case Counted:
			g.Log.Info(e.Log, "pod", klog.KObj(pod), "node", e.Node, "reason", e.Reason)
			g.Metrics.action(e.Reason)
		}
	}
	return failed
}

// startEvacuation carries out a decision's StartRequest: the rebalances first, then the evacuation.
func (g *Gate) startEvacuation(ctx context.Context, conn EMQX, pod *corev1.Pod, req *StartRequest) *StartOutcome {
	out := &StartOutcome{}
	for _, c := range req.Rebalances {
		if err := conn.StopRebalance(ctx, c); err != nil && !emqx.IsNotStarted(err) {
			out.StopErr = fmt.Errorf("stop the rebalance coordinated by %s before evacuating %s: %w", c, req.Node, err)
			g.Log.Info("EMQX API failed", "pod", klog.KObj(pod), "error", out.StopErr.Error())
			return out
		}
		out.Stopped = append(out.Stopped, c)
		g.Log.Info("rebalance stopped for a removal", "coordinator", c, "pod", klog.KObj(pod))
		g.Metrics.action(ReasonRebalanceStopped)
	}
	out.Err = conn.StartEvacuation(ctx, req.Node, req.Request)
	if out.Err != nil && !emqx.IsAlreadyStarted(out.Err) {
		g.Log.Info(
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

func (g *Gate) event(obj client.Object, typ, reason, format string, args ...any) {
	if g.Recorder != nil {
		g.Recorder.Event(obj, typ, reason, emqx.Printable(fmt.Sprintf(format, args...), maxMessage))
	}
}

// setRecord sets (uid "" removes) the pod's entry in its owner's record of evacuated pods.
func (g *Gate) setRecord(ctx context.Context, owner client.Object, pod, uid string) error {
	if owner == nil {
		return nil
	}
	recs := parseRecords(owner.GetAnnotations()[AnnEvacuatedPods])
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
		val = ptr(formatRecords(recs))
	}
	return g.patchAnnotations(ctx, owner, map[string]*string{AnnEvacuatedPods: val})
}

// annotate merges annotations into the pod (nil removes), on the server and in the copy at hand;
// failures are logged.
func (g *Gate) annotate(ctx context.Context, pod *corev1.Pod, ann map[string]*string) {
	_ = g.patchAnnotations(ctx, pod, ann) // logged; the decision stands on what was seen (and the in-memory marks)
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

// patchAnnotations writes with a context of its own: a decision whose deadline passed (EMQX
// hanging) must still record what it saw, or the grace period would never start; writeDeadline
// bounds it.
func (g *Gate) patchAnnotations(ctx context.Context, obj client.Object, ann map[string]*string) error {
	d, ok := ctx.Deadline()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout(time.Until(d), ok))
	defer cancel()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err := g.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		g.Log.Error(err, "annotate", "object", obj.GetNamespace()+"/"+obj.GetName())
		return fmt.Errorf("annotate %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}
