package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

// autoFixture: a StatefulSet of 4 whose fourth pod just joined empty, opted into auto-rebalance.
func autoFixture(t *testing.T) (*fixture, *Membership) {
	f := newFixture(t, 3000, 3000, 3000, 0)
	f.Sts.Annotations = map[string]string{
		AnnRebalance:        "auto",
		AnnAbsConnThreshold: "100",
		AnnAbsSessThreshold: "100",
		decide.AnnConnRate:  "500",
		decide.AnnSessRate:  "500",
	}
	f.Update(f.Sts)
	f.Sts.Status.ReadyReplicas = 4
	f.UpdateStatus(f.Sts)
	return f, &Membership{Env: f.env, Poll: 15 * time.Second, Cooldown: time.Minute}
}

func (f *fixture) reconcileMembership(m *Membership) ctrl.Result {
	f.T.Helper()
	res, err := m.Reconcile(
		context.Background(),
		ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "emqx"}},
	)
	if err != nil {
		f.T.Fatal(err)
	}
	return res
}

func (f *fixture) rebalancing() bool {
	conn, _ := f.Conn.Connect(context.Background(), f.Pod(0))
	gs, err := conn.GlobalStatus(context.Background())
	return err == nil && len(gs.Rebalances) > 0
}

// After a node joins, once the membership has been stable for the cool-down, one rebalance starts,
// is followed, and its end is judged by the controller itself; no second one starts for the same
// membership.
func TestAutoRebalanceAfterANodeJoinsEndsBalanced(t *testing.T) {
	f, m := autoFixture(t)
	if res := f.reconcileMembership(m); f.rebalancing() || res.RequeueAfter != 15*time.Second {
		t.Fatalf("started before the cool-down (requeue %v)", res.RequeueAfter)
	}
	f.Clock.Step(time.Minute)
	f.reconcileMembership(m)
	if !f.rebalancing() || !strings.Contains(f.Events(), "Normal RebalanceStarted") {
		t.Fatal("no rebalance after the cool-down")
	}
	for i := 0; f.rebalancing() && i < 600; i++ {
		f.Sim.Advance(time.Second)
	}
	f.reconcileMembership(m)
	if ev := f.Events(); !strings.Contains(ev, "Normal RebalanceCompleted") {
		t.Fatalf("events %q", ev)
	}
	if got := f.StatefulSet().Annotations[AnnRebalanceResult]; !strings.HasPrefix(got, "Completed ") ||
		!strings.Contains(got, "connections per node") {
		t.Fatalf("result %q", got)
	}
	f.Clock.Step(time.Hour)
	f.reconcileMembership(m)
	if f.rebalancing() {
		t.Fatal("a second rebalance for the same membership")
	}
}

// A drain takes the new, empty pod: the gate lets it go at once (nothing to evacuate), and until
// its deletion shows (at most 10 s) the rebalance does not start: its clients would reconnect
// through the Service to that pod too, and stop with it. Control: a rebalance started while the pod
// runs sends it clients.
func TestAutoRebalanceWaitsForAPodLetGoAMomentAgo(t *testing.T) {
	for _, wired := range []bool{true, false} {
		f, m := autoFixture(t)
		if wired {
			m.LetGo = f.gate.LetGoRecently
		}
		f.reconcileMembership(m)
		f.Clock.Step(time.Minute)
		expect(t, f.removal(3), true, decide.ReasonEmpty, "")
		res := f.reconcileMembership(m)
		if wired {
			if f.rebalancing() || res.RequeueAfter != time.Second {
				t.Fatalf("a rebalance started while a pod let go a moment ago runs (requeue %v)", res.RequeueAfter)
			}
			// The wait ends: a pod still running 10 s on (a budget refused its eviction) takes clients.
			f.Clock.Step(11 * time.Second)
			if f.reconcileMembership(m); !f.rebalancing() {
				t.Fatal("no rebalance once the pod let go had run on for 10 s")
			}
			continue
		}
		if !f.rebalancing() {
			t.Fatal("control: no rebalance")
		}
		for i := 0; f.rebalancing() && i < 600; i++ {
			f.Sim.Advance(time.Second)
		}
		if f.Sim.Snapshot().Nodes[3].LiveConnections == 0 {
			t.Fatal("control: no client reached the pod let go; the world cannot show the hazard")
		}
	}
}

// A coordinator whose participant dies mid-rebalance aborts it: reported as aborted, not completed.
func TestAutoRebalanceAbortedIsReportedAsAborted(t *testing.T) {
	f, m := autoFixture(t)
	f.reconcileMembership(m)
	f.Clock.Step(time.Minute)
	f.reconcileMembership(m)
	if !f.rebalancing() {
		t.Fatal("no rebalance")
	}
	if err := f.Sim.StopNode(node(3)); err != nil {
		t.Fatal(err)
	}
	delete(f.Conn.URLs, "emqx-3")
	f.Sim.Advance(5 * time.Second) // EMQX notices at its next RPC, and the coordinator gives up
	f.reconcileMembership(m)
	if ev := f.Events(); !strings.Contains(ev, "Warning RebalanceAborted") ||
		strings.Contains(ev, "RebalanceCompleted") {
		t.Fatalf("events %q", ev)
	}
}

// Thresholds EMQX would reject are refused with a clear Event, and nothing starts.
func TestAutoRebalanceRefusesThresholdsEMQXWouldReject(t *testing.T) {
	f, m := autoFixture(t)
	f.Sts.Annotations[AnnRelConnThreshold] = "1.0"
	f.Update(f.Sts)
	f.reconcileMembership(m)
	f.Clock.Step(time.Minute)
	f.reconcileMembership(m)
	if ev := f.Events(); f.rebalancing() || !strings.Contains(ev, "Warning RebalanceConfigInvalid") ||
		!strings.Contains(ev, "greater than 1.0") {
		t.Fatalf("events %q", ev)
	}
}

// Not opted in: nothing.
func TestAutoRebalanceIsOptIn(t *testing.T) {
	f, m := autoFixture(t)
	delete(f.Sts.Annotations, AnnRebalance)
	f.Update(f.Sts)
	f.reconcileMembership(m)
	f.Clock.Step(time.Hour)
	f.reconcileMembership(m)
	if f.rebalancing() {
		t.Fatal("rebalanced without opting in")
	}
}

// Events name nodes by their pods, as a person reads them.
func TestAutoRebalanceEventsNamePods(t *testing.T) {
	f, m := autoFixture(t)
	f.reconcileMembership(m)
	f.Clock.Step(time.Minute)
	f.reconcileMembership(m)
	for i := 0; f.rebalancing() && i < 600; i++ {
		f.Sim.Advance(time.Second)
	}
	f.reconcileMembership(m)
	ev := f.Events()
	if !strings.Contains(ev, "coordinated by emqx-0") || !strings.Contains(ev, "emqx-3 ") ||
		strings.Contains(ev, "svc.cluster.local") {
		t.Fatalf("events %q", ev)
	}
}
