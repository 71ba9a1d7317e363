package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"k8s.io/utils/ptr"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// apply is the executor: it carries out effects on the pod (and its owner) in order. Failed
// annotation writes are logged and the decision stands: the in-memory marks keep the clocks
// running, and the next request rebuilds what it needs from EMQX. The first failed write of the
// owner's record is returned (the admission path logs it; the controller retries it).
func (g *Gate) apply(ctx context.Context, pod *corev1.Pod, ownerMeta metav1.Object, effects []decide.Effect) error {
	owner, _ := ownerMeta.(client.Object) // the decisions see metadata; the writes need the object
	var failed error
	record := func(uid string) {
		if err := g.setRecord(ctx, owner, pod.Name, uid); err != nil && failed == nil {
			failed = fmt.Errorf("record of evacuated pods of %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	for _, e := range effects {
		switch e := e.(type) {
		case decide.Annotate:
			for _, k := range e.Forget {
				g.marks.forget(pod.UID, k)
			}
			g.annotate(ctx, pod, e.Set)
		case decide.MarkSince:
			since := g.marks.firstSeen(pod.UID, e.Key, e.Since)
			g.annotate(ctx, pod, map[string]*string{e.Key: decide.Stamp(since)})
		case decide.Remember:
			g.marks.firstSeen(pod.UID, e.Key, e.Since)
		case decide.ClearMark:
			g.marks.forget(pod.UID, e.Key)
			if pod.Annotations[e.Key] != "" {
				g.annotate(ctx, pod, map[string]*string{e.Key: nil})
			}
		case decide.Event:
			g.event(pod, e.Type, e.Reason, "%s", e.Message)
		case decide.RecordEvacuated:
			record(string(pod.UID))
		case decide.ClearRecord:
			record("")
		case decide.ForgetConnection:
			g.EMQX.Forget(pod)
		case decide.ForgetEvacuation:
			ann := map[string]*string{}
			for _, k := range evacuationMarks {
				ann[k] = nil
				g.marks.forget(pod.UID, k)
			}
			g.annotate(ctx, pod, ann)
		case decide.RequeueOwner:
			if owner != nil {
				touch := map[string]*string{decide.AnnRequeuedAt: decide.Stamp(g.Clock.Now())}
				_ = g.patchAnnotations(ctx, owner, touch) // logged
			}
		case decide.Counted:
			g.Log.Info(e.Log, "pod", klog.KObj(pod), "node", e.Node, "reason", e.Reason)
			g.Metrics.action(e.Reason)
		}
	}
	return failed
}

// startEvacuation carries out a decision's StartRequest: the rebalances first, then the evacuation.
func (g *Gate) startEvacuation(
	ctx context.Context,
	conn observe.EMQX,
	pod *corev1.Pod,
	req *decide.StartRequest,
) *decide.StartOutcome {
	out := &decide.StartOutcome{}
	for _, c := range req.Rebalances {
		if err := conn.StopRebalance(ctx, c); err != nil && !emqx.IsNotStarted(err) {
			out.StopErr = fmt.Errorf("stop the rebalance coordinated by %s before evacuating %s: %w", c, req.Node, err)
			g.Log.Info("EMQX API failed", "pod", klog.KObj(pod), "error", out.StopErr.Error())
			return out
		}
		out.Stopped = append(out.Stopped, c)
		g.Log.Info("rebalance stopped for a removal", "coordinator", c, "pod", klog.KObj(pod))
		g.Metrics.action(decide.ReasonRebalanceStopped)
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
		g.Recorder.Event(obj, typ, reason, emqx.Printable(fmt.Sprintf(format, args...), decide.MaxMessage))
	}
}

// setRecord sets (uid "" removes) the pod's entry in its owner's record of evacuated pods.
func (g *Gate) setRecord(ctx context.Context, owner client.Object, pod, uid string) error {
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
	return g.patchAnnotations(ctx, owner, map[string]*string{decide.AnnEvacuatedPods: val})
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
