package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

func (f *fixture) reconcile(i int) ctrl.Result {
	f.T.Helper()
	c := &Controller{Env: f.env, Poll: time.Second}
	res, err := c.Reconcile(
		context.Background(),
		ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: f.Pod(i).Name}},
	)
	if err != nil {
		f.T.Fatal(err)
	}
	return res
}

func TestControllerTouchesOwnerWhenEvacuationCompletes(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.removal(0)
	if res := f.reconcile(0); res.RequeueAfter == 0 {
		t.Fatal("an evacuation in progress is polled")
	}
	for f.Evacuation(0) != "prohibiting" {
		f.Sim.Advance(time.Second)
	}
	f.Events()
	f.reconcile(0)
	if f.StatefulSet().Annotations[decide.AnnRequeuedAt] == "" || f.Pod(0).Annotations[decide.AnnCompletedAt] == "" {
		t.Fatalf("owner %v pod %v", f.StatefulSet().Annotations, f.Pod(0).Annotations)
	}
	if ev := f.Events(); !strings.Contains(ev, "Normal EvacuationCompleted") {
		t.Fatalf("events %q", ev)
	}
}

func TestControllerStopsEvacuationsOfAWithdrawnScaleDown(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	f.Sts.Generation = 4
	f.Update(f.Sts)
	f.gate.ScaleDown(context.Background(), f.StatefulSet(), 3, 2, false)
	if f.Evacuation(2) == "" || f.Pod(2).Annotations[decide.AnnScaleGeneration] != "4" {
		t.Fatalf("no evacuation, or no generation recorded: %v", f.Pod(2).Annotations)
	}
	// The controller sees the pod before the admitted scale-down lands: nothing is judged.
	f.reconcile(2)
	if f.Evacuation(2) == "" {
		t.Fatal("stopped before the scale-down landed")
	}
	down := f.StatefulSet() // the scale-down lands (the API server bumps the generation)
	down.Spec.Replicas, down.Generation = ptr.To(int32(2)), 5
	f.Update(down)
	f.reconcile(2)
	if f.Evacuation(2) == "" {
		t.Fatal("stopped while the scale-down stands")
	}
	s := f.StatefulSet() // withdrawn
	s.Spec.Replicas, s.Generation = ptr.To(int32(3)), 6
	f.Update(s)
	f.Events()
	f.reconcile(2)
	if f.Evacuation(2) != "" || f.Pod(2).Annotations[decide.AnnStartedAt] != "" {
		t.Fatal("the evacuation of a pod that stays was not stopped")
	}
	if ev := f.Events(); !strings.Contains(
		ev,
		"Normal EvacuationStopped the scale-down of statefulset emqx was withdrawn",
	) {
		t.Fatalf("events %q", ev)
	}
}

func TestControllerReopensARecreatedPodsPersistedEvacuation(t *testing.T) {
	f := newFixture(t, 100, 100)
	// emqx-0 was removed while evacuated (old UID) and came back as uid-0 with the evacuation
	// persisted on its volume.
	s := f.StatefulSet()
	s.Annotations = map[string]string{decide.AnnEvacuatedPods: "emqx-0=old-uid,emqx-9=other"}
	f.Update(s)
	c, _ := f.Conn.Connect(context.Background(), f.Pod(1))
	if err := c.StartEvacuation(context.Background(), node(0), emqx.EvacuationRequest{}); err != nil {
		t.Fatal(err)
	}
	f.reconcile(0)
	if f.Evacuation(0) != "" {
		t.Fatal("the stale evacuation is still running")
	}
	if got := f.StatefulSet().Annotations[decide.AnnEvacuatedPods]; got != "emqx-9=other" {
		t.Fatalf("records %q", got)
	}
	if ev := f.Events(); !strings.Contains(ev, "Normal StaleEvacuationStopped") {
		t.Fatalf("events %q", ev)
	}
	// An evacuation of a pod with no such record (kubectl emqx evacuate) is left alone.
	if err := c.StartEvacuation(context.Background(), node(0), emqx.EvacuationRequest{}); err != nil {
		t.Fatal(err)
	}
	f.reconcile(0)
	if f.Evacuation(0) == "" {
		t.Fatal("a deliberate evacuation was stopped")
	}
}

// A drain that gives up leaves an empty node refusing every client while its pod lives on: the
// controller stops that evacuation once nobody has asked for the removal for abandon-after.
func TestControllerAbandonsAnEvacuationWhoseRemovalNeverCame(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.removal(0)
	for f.Evacuation(0) != "prohibiting" {
		f.Sim.Advance(time.Second)
	}
	f.reconcile(0) // node empty: completed
	if f.Pod(0).Annotations[decide.AnnCompletedAt] == "" {
		t.Fatal("not marked completed")
	}
	f.Clock.Step(4 * time.Minute)
	f.removal(0) // the drain asks again (and is allowed), but the pod is not removed
	f.reconcile(0)
	f.Clock.Step(4 * time.Minute)
	if res := f.reconcile(0); res.RequeueAfter == 0 || f.Evacuation(0) != "prohibiting" {
		t.Fatalf(
			"abandoned within abandon-after of the last request (requeue %v, state %q)",
			res.RequeueAfter,
			f.Evacuation(0),
		)
	}
	f.Clock.Step(time.Minute)
	f.reconcile(0)
	if f.Evacuation(0) != "" {
		t.Fatalf("evacuation %q still running after abandon-after without a request", f.Evacuation(0))
	}
	for _, k := range decide.EvacuationAnnotations() {
		if v := f.Pod(0).Annotations[k]; v != "" {
			t.Fatalf("annotation %s=%q left behind", k, v)
		}
	}
	if ev := f.Events(); !strings.Contains(ev, "Warning EvacuationAbandoned") {
		t.Fatalf("events %q", ev)
	}
	// A later removal starts afresh, with a clock of its own.
	expect(t, f.removal(0), true, decide.ReasonEmpty, "holds no connection and no session")
}

// Evacuations the webhook found running (kubectl emqx evacuate pod) are left to whoever started them.
func TestControllerLeavesEvacuationsItDidNotStart(t *testing.T) {
	f := newFixture(t, 100, 100)
	conn, _ := f.Conn.Connect(context.Background(), f.Pod(1))
	if err := conn.StartEvacuation(context.Background(), node(0), emqx.EvacuationRequest{}); err != nil {
		t.Fatal(err)
	}
	f.removal(0)
	if f.Pod(0).Annotations[decide.AnnStartedBy] != decide.StartedByOther {
		t.Fatalf("annotations %v", f.Pod(0).Annotations)
	}
	for f.Evacuation(0) != "prohibiting" {
		f.Sim.Advance(time.Second)
	}
	f.Clock.Step(time.Hour)
	f.reconcile(0)
	if f.Evacuation(0) != "prohibiting" {
		t.Fatal("the controller stopped an evacuation it did not start")
	}
}

// The owner's record of evacuated pods does not depend on one write in admission: the controller
// retries it until it lands.
func TestEvacuatedRecordIsRetriedByTheControllerUntilItLands(t *testing.T) {
	f := newFixture(t, 100, 100)
	failing := true
	f.FailWrites(func(obj client.Object) bool {
		_, isSts := obj.(*appsv1.StatefulSet)
		return isSts && failing
	})
	f.removal(0)
	for f.Evacuation(0) != "prohibiting" {
		f.Sim.Advance(time.Second)
	}
	expect(t, f.removal(0), true, decide.ReasonEvacuated, "")
	if recs := f.StatefulSet().Annotations[decide.AnnEvacuatedPods]; recs != "" {
		t.Fatalf("record %q written although writes fail", recs)
	}
	c := &Controller{Env: f.env, Poll: time.Second}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "emqx-0"}}
	if _, err := c.Reconcile(context.Background(), req); err == nil {
		t.Fatal("a failed record is not retried")
	}
	failing = false
	if _, err := c.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if recs := f.StatefulSet().Annotations[decide.AnnEvacuatedPods]; recs != "emqx-0=uid-0" {
		t.Fatalf("record %q", recs)
	}
}
