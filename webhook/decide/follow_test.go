package decide

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// The controller's decisions on FollowedPods: no client, EMQX, clock or recorder.

// watch is emqx-1 evacuated by the webhook for a removal, its node still evacuating.
func watch(mutate ...func(*FollowedPod)) FollowedPod {
	pod := readyPod(1, "uid-1")
	pod.Annotations = map[string]string{
		AnnStartedAt: t0.Add(-time.Minute).Format(time.RFC3339Nano),
		AnnNode:      node(1),
		AnnReason:    "eviction",
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: ns, UID: "sts-uid", Generation: 5},
	}
	w := FollowedPod{Now: t0, Pod: pod, Owner: sts, Settings: DefaultConfig().For(sts), Poll: 2 * time.Second,
		EMQX: &NodeSeen{
			Node:       node(1),
			Evacuating: true,
			Evacuation: evacuationOf(1, emqx.EvacuationEvictingConns, 5, 5),
		}}
	for _, m := range mutate {
		m(&w)
	}
	return w
}

func done(w *FollowedPod) { w.EMQX.Evacuation = evacuationOf(1, emqx.EvacuationProhibiting, 0, 0) }

func stopped(err error) func(*FollowedPod) { return func(w *FollowedPod) { w.Stopped = &err } }

func kinds(fx []Effect) []string {
	var out []string
	for _, e := range fx {
		switch e := e.(type) {
		case Event:
			out = append(out, "Event "+e.Reason)
		default:
			out = append(out, reflect.TypeOf(e).Name())
		}
	}
	return out
}

// actionCase is one expected Action: a need, or (final) a requeue and the effects by kind.
type actionCase struct {
	name    string
	w       FollowedPod
	need    Need
	requeue time.Duration
	effects []string
	// evidence, when set, checks more of the action.
	evidence func(*testing.T, Action)
}

func checkActions(t *testing.T, decide func(FollowedPod) Action, cases []actionCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := decide(c.w)
			if a.Need != c.need ||
				a.Need == NeedNothing && (a.Requeue != c.requeue || !reflect.DeepEqual(kinds(a.Effects), c.effects)) {
				t.Fatalf(
					"action need %v requeue %v effects %v; want need %v requeue %v effects %v",
					a.Need,
					a.Requeue,
					kinds(a.Effects),
					c.need,
					c.requeue,
					c.effects,
				)
			}
			if c.evidence != nil {
				c.evidence(t, a)
			}
		})
	}
}

func TestFollowDecisions(t *testing.T) {
	notStarted := &emqx.Error{StatusCode: 400, Code: "BAD_REQUEST", Message: "not_started"}
	withdrawnScaleDown := func(w *FollowedPod) {
		w.Pod.Annotations[AnnReason], w.Pod.Annotations[AnnScaleGeneration] = CauseScaleDown, "3"
		sts := w.Owner.(*appsv1.StatefulSet)
		sts.Spec.Replicas = ptr.To(int32(3))
	}
	checkActions(t, Follow, []actionCase{
		{name: "asks EMQX first", w: watch(func(w *FollowedPod) { w.EMQX = nil }), need: NeedEMQX},
		{
			name:    "EMQX failed: look again, drop the connection",
			w:       watch(func(w *FollowedPod) { w.EMQX = &NodeSeen{Err: errors.New("x"), Stale: true} }),
			requeue: 2 * time.Second,
			effects: []string{"ForgetConnection"},
		},
		{name: "in progress", w: watch(), requeue: 2 * time.Second},
		{
			name:    "stopped by someone else: forgotten",
			w:       watch(func(w *FollowedPod) { w.EMQX.Evacuating = false }),
			effects: []string{"ForgetEvacuation"},
		},
		{
			name:    "not ours: left to whoever started it",
			w:       watch(done, func(w *FollowedPod) { w.Pod.Annotations[AnnStartedBy] = StartedByOther }),
			requeue: 2 * time.Second,
		},
		{name: "scale-down withdrawn: stop", w: watch(withdrawnScaleDown), need: NeedStop},
		{name: "scale-down withdrawn, stopped", w: watch(withdrawnScaleDown, stopped(nil)),
			effects: []string{"ForgetEvacuation", "Event " + ReasonStopped, "Counted"}},
		{
			name:    "scale-down withdrawn, the stop failed: again later",
			w:       watch(withdrawnScaleDown, stopped(errors.New("HTTP 500"))),
			requeue: 2 * time.Second,
		},
		{name: "scale-down withdrawn, someone stopped it first", w: watch(withdrawnScaleDown, stopped(notStarted)),
			effects: []string{"ForgetEvacuation", "Event " + ReasonStopped, "Counted"}},
		{
			name:    "empty: the owner retries the deletion, the record is written, the abandon clock starts",
			w:       watch(done),
			requeue: 2 * time.Second,
			effects: []string{"RequeueOwner", "Event " + ReasonEvacuated, "Annotate", "RecordEvacuated",
				"RememberStart"},
		},
		{name: "empty a while, asked for lately: waits", w: watch(done, func(w *FollowedPod) {
			w.Pod.Annotations[AnnCompletedAt] = t0.Add(-10 * time.Minute).Format(time.RFC3339Nano)
			w.Pod.Annotations[AnnLastRequest] = t0.Add(-4 * time.Minute).Format(time.RFC3339Nano)
		}), requeue: 2 * time.Second, effects: []string{"RecordEvacuated"}},
		{
			name: "asked for again and again long after it became empty (a replay): stop past the bound",
			w: watch(done, func(w *FollowedPod) {
				w.Pod.Annotations[AnnCompletedAt] = t0.Add(-40 * time.Minute).Format(time.RFC3339Nano)
				w.Pod.Annotations[AnnLastRequest] = t0.Add(-time.Minute).Format(time.RFC3339Nano)
			}),
			need: NeedStop,
		},
		{name: "empty for abandon-after and nobody asks: stop", w: watch(done, func(w *FollowedPod) {
			w.Pod.Annotations[AnnCompletedAt] = t0.Add(-5 * time.Minute).Format(time.RFC3339Nano)
		}), need: NeedStop},
		{
			name: "abandoned",
			w: watch(done, stopped(nil), func(w *FollowedPod) {
				w.Pod.Annotations[AnnCompletedAt] = t0.Add(-5 * time.Minute).Format(time.RFC3339Nano)
			}),
			effects: []string{
				"RecordEvacuated",
				"ForgetEvacuation",
				"ClearRecord",
				"RecordStart",
				"Event " + ReasonAbandoned,
				"Counted",
			},
			evidence: func(t *testing.T, a Action) {
				if !slices.Contains(a.Effects, Effect(RecordStart{Key: AnnAbandonedAt, Since: t0})) {
					t.Fatalf("no abandonment mark at now (the cool-down of row 10c): %#v", a.Effects)
				}
			},
		},
		{
			name: "this replica remembers when it became empty (its write failed)",
			w: watch(done, stopped(nil), func(w *FollowedPod) {
				w.Pod.Annotations[AnnCompletedAt] = "garbled"
				w.EmptySince = TimedState{Since: t0.Add(-6 * time.Minute), Known: true}
			}),
			effects: []string{
				"RecordEvacuated",
				"RememberStart",
				"ForgetEvacuation",
				"ClearRecord",
				"RecordStart",
				"Event " + ReasonAbandoned,
				"Counted",
			},
		},
	})
}

func TestReopenDecisions(t *testing.T) {
	back := func(w *FollowedPod) { w.Pod.Annotations = nil; w.EMQX.Joined = true }
	checkActions(t, Reopen, []actionCase{
		{name: "asks EMQX first", w: watch(func(w *FollowedPod) { w.EMQX = nil }), need: NeedEMQX},
		{name: "not joined yet", w: watch(func(w *FollowedPod) { w.EMQX.Joined = false }), requeue: 2 * time.Second},
		{name: "inherited an evacuation: stop it", w: watch(back), need: NeedStop},
		{
			name:    "stopped",
			w:       watch(back, stopped(nil)),
			effects: []string{"Event " + ReasonStaleStopped, "ClearRecord"},
		},
		{name: "the stop failed", w: watch(back, stopped(errors.New("HTTP 500"))), requeue: 2 * time.Second},
		{
			name:    "nothing inherited: only the record goes",
			w:       watch(back, func(w *FollowedPod) { w.EMQX.Evacuating = false }),
			effects: []string{"ClearRecord"},
		},
	})
}
