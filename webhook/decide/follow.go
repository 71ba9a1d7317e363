package decide

import (
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// The controller's decisions are pure like the gate's: Follow (a pod whose evacuation the webhook
// recorded) and Reopen (a recreated pod that may have inherited one) read a FollowedPod and return an
// Action: effects, when to look again, or a request for EMQX's state or for a stop. The controller
// gathers, stops and applies (controller.go).

// FollowedPod is what the controller sees of one pod.
type FollowedPod struct {
	Now      time.Time
	Pod      *corev1.Pod // never modified here
	Owner    metav1.Object
	Settings Settings
	Poll     time.Duration // how often an evacuation in progress is checked
	// EmptySince is this replica's memory of when the pod's node was found empty, for a pod whose
	// annotations say nothing readable about it (Known false: none).
	EmptySince TimedState

	EMQX    *NodeSeen // nil until asked for (NeedEMQX)
	Stopped *error    // nil until the stop was asked for (NeedStop); then its error, nil when it stopped
}

// NodeSeen is what EMQX said about the pod's node.
type NodeSeen struct {
	Err        error // EMQX could not be asked (the pod is looked at again after Poll)
	Stale      bool  // with Err: the cached connection should be dropped
	Node       string
	Joined     bool // Reopen: the pod's node is listed and running
	Evacuation emqx.Evacuation
	Evacuating bool
	// Listed and Durable judge an evacuation that EMQX's own rule does not call done: the node as
	// GET /nodes lists it, and how to read its session count (durable sessions, 5.8+).
	Listed  emqx.Node
	Durable evacuation.Durability
}

// Action is what the controller does about a pod.
type Action struct {
	Need    Need   // NeedEMQX or NeedStop (of Stop), else final
	Stop    string // the node whose evacuation to stop, with NeedStop
	Effects []Effect
	Requeue time.Duration // look again after this long (0: when something changes)
}

// Effects of the controller, besides the gate's.
type (
	// ForgetEvacuation removes every annotation of an evacuation from the pod, and its marks.
	ForgetEvacuation struct{}
	// RequeueOwner touches the owner: its controller retries the held deletion at once.
	RequeueOwner struct{}
	// ClearRecord removes the pod from its owner's record of evacuated pods.
	ClearRecord struct{}
	// Counted is a way out taken by the controller: its metric and its log line (the Event is
	// an Event effect).
	Counted struct{ Reason, Log, Node string }
)

func (ForgetEvacuation) effect() {}
func (RequeueOwner) effect()     {}
func (ClearRecord) effect()      {}
func (Counted) effect()          {}

// Follow decides about an evacuation the webhook recorded on the pod.
func Follow(w FollowedPod) Action {
	if w.EMQX == nil {
		return Action{Need: NeedEMQX}
	}
	e := w.EMQX
	if e.Err != nil {
		return Action{Requeue: w.Poll, Effects: forgetIf(e.Stale)}
	}
	pod, node := w.Pod, w.Pod.Annotations[AnnNode]
	if sts, ok := w.Owner.(*appsv1.StatefulSet); ok && pod.Annotations[AnnReason] == CauseScaleDown &&
		withdrawn(sts, pod) {
		if e.Evacuating && w.Stopped == nil {
			return Action{Need: NeedStop, Stop: node}
		}
		if w.Stopped != nil && *w.Stopped != nil && !emqx.IsNotStarted(*w.Stopped) {
			return Action{Requeue: w.Poll}
		}
		return Action{Effects: []Effect{ForgetEvacuation{},
			NewEvent(
				corev1.EventTypeNormal,
				ReasonStopped,
				"the scale-down of statefulset %s was withdrawn: EMQX node %s accepts clients again",
				sts.Name,
				node,
			),
			Counted{Reason: ReasonStopped, Log: "evacuation stopped: scale-down withdrawn", Node: node}}}
	}
	switch {
	case !e.Evacuating:
		// Stopped by someone else (kubectl emqx evacuate stop): forget it.
		return Action{Effects: []Effect{ForgetEvacuation{}}}
	case pod.Annotations[AnnStartedBy] == StartedByOther:
		// Not ours: whoever started it finishes it.
		return Action{Requeue: w.Poll}
	case !evacuation.SafeToRemove(e.Evacuation, e.Listed, e.Durable):
		return Action{Requeue: w.Poll}
	}
	var fx []Effect
	if pod.Annotations[AnnCompletedAt] == "" && w.Owner != nil {
		fx = append(fx, RequeueOwner{}) // any update of the owner requeues its controller at once
	}
	fx = append(fx, evacuatedEffects(pod, w.Now)...)
	return w.abandonIfNobodyAsks(node).with(fx...)
}

// abandonIfNobodyAsks stops an evacuation the webhook started whose node is empty when no removal
// request has come for abandon-after since then (a drain that gave up or was interrupted, an
// autoscaler that changed its mind, a strict scale-down refused and not retried): the node would
// otherwise refuse every client for good while its pod lives on.
//
// A request only counts within the evacuation time limit after the node became empty: a genuine
// removal is allowed as soon as the node is empty, so requests long after that carry nothing new,
// and a replayed eviction must not keep a node evacuated for ever. The bound: empty, plus the time
// limit, plus abandon-after (35 minutes by default). Then the pod records when (AnnAbandonedAt)
// and no new evacuation of it starts for abandon-after (row 10c): its node accepts clients again
// for at least that long, whoever keeps asking.
func (w FollowedPod) abandonIfNobodyAsks(node string) Action {
	var fx []Effect
	empty, ok := Stamped(w.Pod.Annotations, AnnCompletedAt, w.Now)
	if !ok {
		empty = w.Now
		if w.EmptySince.Known {
			empty = w.EmptySince.Since
		}
		fx = append(fx, RememberStart{Key: AnnCompletedAt, Since: empty})
	}
	last := empty // the node became empty, or the removal was last asked for within the limit
	if asked, ok := Stamped(w.Pod.Annotations, AnnLastRequest, w.Now); ok && asked.After(last) {
		last = minTime(asked, empty.Add(w.Settings.Timeout))
	}
	wait := w.Settings.AbandonAfter
	if left := wait - w.Now.Sub(last); left > 0 {
		return Action{Requeue: min(left, max(w.Poll, time.Second)), Effects: fx}
	}
	if w.Stopped == nil {
		return Action{Need: NeedStop, Stop: node}
	}
	if err := *w.Stopped; err != nil && !emqx.IsNotStarted(err) {
		return Action{Requeue: w.Poll, Effects: fx}
	}
	return Action{Effects: append(fx, ForgetEvacuation{}, ClearRecord{},
		RecordStart{Key: AnnAbandonedAt, Since: w.Now},
		NewEvent(
			corev1.EventTypeWarning,
			ReasonAbandoned,
			"EMQX node %s was empty for %v and nobody asked to remove the pod any more: evacuation stopped, "+
				"the node accepts clients "+
				"again; a new evacuation of it starts no sooner than %v from now",
			node,
			wait,
			wait,
		),
		Counted{Reason: ReasonAbandoned, Log: fmt.Sprintf("evacuation abandoned after %v", wait), Node: node})}
}

// Reopen decides about a pod that came back (same name, new UID) while its owner records the old
// pod as removed evacuated: once its node has joined, an evacuation it inherited from its volume is
// stopped, and the record goes.
func Reopen(w FollowedPod) Action {
	if w.EMQX == nil {
		return Action{Need: NeedEMQX}
	}
	e := w.EMQX
	switch {
	case e.Err != nil:
		return Action{Requeue: w.Poll, Effects: forgetIf(e.Stale)}
	case !e.Joined:
		return Action{Requeue: w.Poll} // not joined yet
	case e.Evacuating && w.Stopped == nil:
		return Action{Need: NeedStop, Stop: e.Node}
	case w.Stopped != nil && *w.Stopped != nil && !emqx.IsNotStarted(*w.Stopped):
		return Action{Requeue: w.Poll}
	}
	var fx []Effect
	if w.Stopped != nil {
		fx = append(fx, NewEvent(
			corev1.EventTypeNormal,
			ReasonStaleStopped,
			"pod %s came back with the evacuation of EMQX node %s persisted on its volume: stopped it, "+
				"the node accepts clients again",
			w.Pod.Name,
			e.Node,
		))
	}
	return Action{Effects: append(fx, ClearRecord{})}
}

func forgetIf(stale bool) []Effect {
	if stale {
		return []Effect{ForgetConnection{}}
	}
	return nil
}

// with puts effects that came first before the action's own.
func (a Action) with(first ...Effect) Action {
	a.Effects = prepend(first, a.Effects)
	return a
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// withdrawn: a StatefulSet generation after the scale-down's keeps the pod. Until the admitted
// scale-down has landed in the cache, nothing is judged.
func withdrawn(sts *appsv1.StatefulSet, pod *corev1.Pod) bool {
	before, err := strconv.ParseInt(pod.Annotations[AnnScaleGeneration], 10, 64)
	return err == nil && sts.Generation > before+1 && cluster.Stays(sts, pod.Name)
}
