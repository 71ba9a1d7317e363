package webhook

import (
	"context"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/internal/webhooktest"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

const ns = webhooktest.NS

func node(i int) string { return webhooktest.Node(i) }

func readyPod(i int, uid string) *corev1.Pod { return webhooktest.ReadyPod(i, uid) }

func expect(t *testing.T, v decide.Verdict, allowed bool, reason, msg string) {
	t.Helper()
	webhooktest.Expect(t, v, allowed, reason, msg)
}

// fixture is the test world with a gate over it.
type fixture struct {
	*webhooktest.World
	gate *Gate
	reg  *prometheus.Registry // the gate's metrics
}

func newFixture(t testing.TB, conns ...int64) *fixture {
	t.Helper()
	w := webhooktest.New(t, conns...)
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, w.Clock)
	w.Exec.Counted, w.Exec.Evacuated = metrics.Action, metrics.Evacuated
	g := &Gate{Client: w.Kube, EMQX: w.Conn, Exec: w.Exec, Clock: w.Clock, Config: w.Config, Log: logr.Discard(),
		Metrics: metrics}
	return &fixture{World: w, gate: g, reg: reg}
}

func (f *fixture) removal(i int) decide.Verdict {
	return f.gate.Removal(context.Background(), f.Pod(i), false, "eviction")
}

// The decision table, row by row.

func TestNonEMQXPodIsAllowed(t *testing.T) {
	f := newFixture(t, 100, 100)
	p := f.Pod(0)
	p.Labels = map[string]string{"app": "web"}
	expect(t, f.gate.Removal(context.Background(), p, false, "eviction"), true, decide.ReasonNotEMQX, "")
}

func TestTerminatingPodIsAllowed(t *testing.T) {
	f := newFixture(t, 100, 100)
	p := f.Pod(0)
	p.DeletionTimestamp = &metav1.Time{Time: f.Clock.Now()}
	expect(t, f.gate.Removal(context.Background(), p, false, "delete"), true, decide.ReasonTerminating, "")
	if f.Evacuation(0) != "" {
		t.Fatal("a terminating pod was evacuated")
	}
}

func TestNamespaceTerminatingIsAWayOut(t *testing.T) {
	f := newFixture(t, 100, 100)
	var n corev1.Namespace
	_ = f.Kube.Get(context.Background(), client.ObjectKey{Name: ns}, &n)
	n.Status.Phase = corev1.NamespaceTerminating
	f.UpdateStatus(&n)
	expect(t, f.removal(0), true, decide.ReasonNamespaceGone, "namespace mqtt is being deleted")
	if ev := f.Events(); !strings.Contains(ev, "Normal NamespaceTerminating") {
		t.Fatalf("events %q", ev)
	}
}

func TestOwnerBeingDeletedIsAWayOut(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.Sts.Finalizers = []string{"test"}
	f.Update(f.Sts)
	if err := f.Kube.Delete(context.Background(), f.Sts); err != nil {
		t.Fatal(err)
	}
	expect(t, f.removal(0), true, decide.ReasonOwnerGone, "statefulset emqx is being deleted")
}

// helm uninstall, kubectl delete sts: the owner is already gone when the garbage collector deletes
// the pods. They are let go at once, with an Event, not evacuated into each other one by one.
func TestOwnerAlreadyGoneIsAWayOut(t *testing.T) {
	f := newFixture(t, 100, 100)
	if err := f.Kube.Delete(context.Background(), f.Sts); err != nil {
		t.Fatal(err)
	}
	gc := admission.NewContextWithRequest(
		context.Background(),
		admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UserInfo: authenticationv1.UserInfo{
				Username: "system:serviceaccount:kube-system:generic-garbage-collector",
			}}},
	)
	expect(
		t,
		f.gate.Removal(gc, f.Pod(0), false, "delete"),
		true,
		decide.ReasonOwnerGone,
		"its statefulset emqx is gone",
	)
	if f.Evacuation(0) != "" {
		t.Fatal("an evacuation started for a pod whose owner is gone")
	}
	if ev := f.Events(); !strings.Contains(ev, "Normal OwnerDeleting") {
		t.Fatalf("events %q", ev)
	}
	// Anyone else removing a pod whose owner is missing (an owner reference pointed at nothing is a
	// way around the evacuation): let go too, with a Warning.
	expect(t, f.removal(0), true, decide.ReasonOwnerMissing, "its owner reference was pointed away")
	if ev := f.Events(); !strings.Contains(ev, "Warning OwnerMissing") {
		t.Fatalf("events %q", ev)
	}
	// Re-created under the same name: the old pods' owner is still gone.
	f.Sts.ResourceVersion, f.Sts.UID = "", "another-uid"
	if err := f.Kube.Create(context.Background(), f.Sts); err != nil {
		t.Fatal(err)
	}
	expect(
		t,
		f.gate.Removal(gc, f.Pod(1), false, "delete"),
		true,
		decide.ReasonOwnerGone,
		"one of that name is another object now",
	)
}

func TestBypassAnnotationIsAWayOut(t *testing.T) {
	for _, onOwner := range []bool{false, true} {
		f := newFixture(t, 100, 100)
		if onOwner {
			f.Sts.Annotations = map[string]string{decide.AnnBypass: "true"}
			f.Update(f.Sts)
		} else {
			p := f.Pod(0)
			p.Annotations = map[string]string{decide.AnnBypass: "true"}
			f.Update(p)
		}
		expect(t, f.removal(0), true, decide.ReasonBypass, "bypass annotation")
		if ev := f.Events(); !strings.Contains(ev, "Warning EvacuationBypassed") {
			t.Fatalf("events %q", ev)
		}
	}
}

// Readiness is no evidence: a pod turns NotReady because it evacuates (emqx-operator's on-serving
// gate, an availability_check probe). Such a pod is held like any other until EMQX says its node
// is empty. (The old rule, "not Ready: nothing to evacuate", lost sessions on operator installs.)
func TestNotReadyPodWithSessionsIsHeldUntilEMQXSaysEmpty(t *testing.T) {
	f := newFixture(t, 100, 100)
	p := f.Pod(0)
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	f.UpdateStatus(p)
	expect(t, f.removal(0), false, decide.ReasonStarted, "100 connections and 100 sessions left")
	expect(t, f.removal(0), false, decide.ReasonEvacuating, "is evacuating")
	f.Sim.Advance(10 * time.Second)
	expect(t, f.removal(0), true, decide.ReasonEvacuated, "no connection and no session left")
}

func TestPodWithNoRunningContainerIsAllowed(t *testing.T) {
	for _, phase := range []corev1.PodPhase{corev1.PodPending, corev1.PodFailed, corev1.PodSucceeded} {
		f := newFixture(t, 100, 100)
		p := f.Pod(0)
		p.Status.Phase = phase
		f.UpdateStatus(p)
		expect(t, f.removal(0), true, decide.ReasonNotStarted, "is "+string(phase)+" with no running container")
		if f.Evacuation(0) != "" {
			t.Fatalf("%s: an evacuation started", phase)
		}
	}
}

// A running EMQX cluster that does not list the pod's node proves nothing: held, then the
// unreachable way out after its grace period, with a Warning Event.
func TestPodWhoseNodeEMQXDoesNotListIsHeldThenAllowedAfterGrace(t *testing.T) {
	f := newFixture(t, 100, 100)
	if err := f.Sim.RemoveNode(node(0)); err != nil {
		t.Fatal(err)
	}
	// 2 pods, 1 node: the message names the likely causes (a single-node licence, discovery).
	expect(t, f.removal(0), false, decide.ReasonUnreachable, "EMQX lists no node of pod emqx-0")
	expect(t, f.removal(0), false, decide.ReasonUnreachable, "EMQX lists 1 node while 2 EMQX pods run")
	f.Clock.Step(f.gate.Config.UnreachableGrace)
	expect(t, f.removal(0), true, decide.ReasonUnreachable, "removing the pod without evacuation")
	if ev := f.Events(); !strings.Contains(ev, "Warning EMQXUnreachable") {
		t.Fatalf("events %q", ev)
	}
}

// A node whose name shows neither the pod's IP nor its name is found by the name the pod's own
// environment gives it, as EMQX's entrypoint derives it.
func TestNodeFoundByTheNameThePodsEnvironmentGives(t *testing.T) {
	f := newFixture(t, 100)
	other, err := emqxsim.New(
		emqxsim.Config{
			Nodes: []emqxsim.NodeConfig{
				{Name: "broker@mqtt-a.example", Connections: 50, Sessions: -1},
				{Name: "broker@mqtt-b.example"},
			},
			APIKeys: []emqxsim.APIKey{{Key: "k", Secret: "s"}},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(other.Handler("broker@mqtt-b.example"))
	t.Cleanup(srv.Close)
	f.Conn.URLs = map[string]string{"emqx-0": srv.URL}
	p := f.Pod(0)
	p.Spec.Containers = []corev1.Container{
		{
			Name: "emqx",
			Env:  []corev1.EnvVar{{Name: "EMQX_NAME", Value: "broker"}, {Name: "EMQX_HOST", Value: "mqtt-a.example"}},
		},
	}
	f.Update(p)
	expect(
		t,
		f.removal(0),
		false,
		decide.ReasonStarted,
		"EMQX node broker@mqtt-a.example is evacuating: 50 connections",
	)
}

func TestNodeNotRunningIsAllowed(t *testing.T) {
	f := newFixture(t, 100, 100)
	if err := f.Sim.StopNode(node(0)); err != nil {
		t.Fatal(err)
	}
	expect(t, f.gate.Removal(context.Background(), f.Pod(0), false, "delete"), true, decide.ReasonNodeNotRunning, "")
}

func TestEmptyNodeIsAllowedWithoutEvacuation(t *testing.T) {
	f := newFixture(t, 0, 100)
	expect(t, f.removal(0), true, decide.ReasonEmpty, "holds no connection and no session")
	if f.Evacuation(0) != "" {
		t.Fatal("an empty node was evacuated")
	}
}

func TestEvictionStartsEvacuationAndHoldsWith429UntilNodeEmpty(t *testing.T) {
	f := newFixture(t, 100, 100)
	v := f.removal(0)
	expect(
		t,
		v,
		false,
		decide.ReasonStarted,
		"EMQX node "+node(0)+" is evacuating: 100 connections and 100 sessions left",
	)
	if f.Evacuation(0) == "" {
		t.Fatal("no evacuation started")
	}
	p := f.Pod(0)
	if p.Annotations[decide.AnnStartedAt] == "" || p.Annotations[decide.AnnNode] != node(0) ||
		p.Annotations[decide.AnnReason] != "eviction" {
		t.Fatalf("annotations %v", p.Annotations)
	}
	if ev := f.Events(); !strings.Contains(ev, "Normal EvacuationStarted evacuating EMQX node "+node(0)) {
		t.Fatalf("events %q", ev)
	}
	if v.Allowed || !strings.Contains(v.Message, "retrying is safe") {
		t.Fatalf("verdict %+v", v)
	}
	// A retry while it runs: still held, with progress; no second start.
	f.Sim.Advance(0)
	expect(t, f.removal(0), false, decide.ReasonEvacuating, "left (about")
	// Once empty, allowed, recorded on the owner.
	for f.Evacuation(0) != "prohibiting" {
		f.Sim.Advance(time.Second)
	}
	expect(t, f.removal(0), true, decide.ReasonEvacuated, "is evacuated")
	var sts appsv1.StatefulSet
	_ = f.Kube.Get(context.Background(), client.ObjectKeyFromObject(f.Sts), &sts)
	if decide.ParseRecords(sts.Annotations[decide.AnnEvacuatedPods])["emqx-0"] != "uid-0" {
		t.Fatalf("owner annotations %v", sts.Annotations)
	}
	if s := f.Sim.Snapshot(); s.LostSessions != 0 {
		t.Fatalf("lost %d", s.LostSessions)
	}
}

func TestEvacuationPastItsTimeLimitIsAWayOut(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.removal(0)
	f.Clock.Step(f.gate.Config.EvacuationTimeout + time.Second)
	expect(t, f.removal(0), true, decide.ReasonTimedOut, "past its limit of 30m0s")
	if ev := f.Events(); !strings.Contains(ev, "Warning EvacuationTimedOut") {
		t.Fatalf("events %q", ev)
	}
	// A per-StatefulSet limit overrides the flag.
	f = newFixture(t, 100, 100)
	f.Sts.Annotations = map[string]string{decide.AnnTimeout: "10s"}
	f.Update(f.Sts)
	f.removal(0)
	f.Clock.Step(11 * time.Second)
	expect(t, f.removal(0), true, decide.ReasonTimedOut, "limit of 10s")
}

func TestEMQXUnreachableHoldsForGraceThenAllows(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.Conn.Down = true
	expect(t, f.removal(0), false, decide.ReasonUnreachable, "held for up to 1m0s")
	if f.Pod(0).Annotations[decide.AnnUnreachableSince] == "" {
		t.Fatal("the first failure was not recorded on the pod")
	}
	f.Clock.Step(30 * time.Second)
	expect(t, f.removal(0), false, decide.ReasonUnreachable, "")
	f.Clock.Step(31 * time.Second)
	expect(t, f.removal(0), true, decide.ReasonUnreachable, "has failed for 1m1s")
	if ev := f.Events(); !strings.Contains(ev, "Warning EMQXUnreachable") {
		t.Fatalf("events %q", ev)
	}
	// Back up: the mark is cleared.
	f.Conn.Down = false
	f.removal(0)
	if f.Pod(0).Annotations[decide.AnnUnreachableSince] != "" {
		t.Fatal("the unreachable mark stayed")
	}
}

func TestOneEvacuationAtATimeOthersWait(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	expect(t, f.removal(2), false, decide.ReasonStarted, "")
	expect(t, f.removal(1), false, decide.ReasonWaiting, "once "+node(2)+" finishes (at most 1 evacuation at a time)")
	if f.Evacuation(1) != "" {
		t.Fatal("a second evacuation started")
	}
	if f.Pod(1).Annotations[decide.AnnWaitingSince] == "" {
		t.Fatal("the wait was not recorded")
	}
	f.gate.Config.MaxConcurrent = 2
	expect(t, f.removal(1), false, decide.ReasonStarted, "")
	if f.Pod(1).Annotations[decide.AnnWaitingSince] != "" {
		t.Fatal("the wait mark stayed after the start")
	}
}

func TestWaitingForAnEvacuationThatNeverEndsHasAWayOut(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	// emqx-2's node is being evacuated by hand, and that evacuation never ends (the simulator's
	// clock does not move here).
	c, _ := f.Conn.Connect(context.Background(), f.Pod(0))
	if err := c.StartEvacuation(context.Background(), node(2), emqx.EvacuationRequest{}); err != nil {
		t.Fatal(err)
	}
	expect(t, f.removal(1), false, decide.ReasonWaiting, "once "+node(2)+" finishes")
	f.Clock.Step(f.gate.Config.EvacuationTimeout)
	expect(t, f.removal(1), false, decide.ReasonStarted, "")
	if f.Evacuation(1) == "" {
		t.Fatal("no evacuation started after the wait ran out")
	}
	if ev := f.Events(); !strings.Contains(ev, "Warning ConcurrencyLimitExceeded") {
		t.Fatalf("events %q", ev)
	}
}

func TestDryRunHasNoSideEffects(t *testing.T) {
	f := newFixture(t, 100, 100)
	v := f.gate.Removal(context.Background(), f.Pod(0), true, "eviction")
	expect(t, v, false, decide.ReasonStarted, "would be evacuated first, for about 2s (dry run)")
	if f.Evacuation(0) != "" || f.Pod(0).Annotations[decide.AnnStartedAt] != "" || f.Events() != "" {
		t.Fatal("a dry run had side effects")
	}
	f.Conn.Down = true
	f.gate.Removal(context.Background(), f.Pod(0), true, "eviction")
	if f.Pod(0).Annotations[decide.AnnUnreachableSince] != "" {
		t.Fatal("a dry run wrote the unreachable mark")
	}
}

func TestLastNodeCannotBeEvacuatedSoItIsAllowed(t *testing.T) {
	f := newFixture(t, 100)
	expect(t, f.removal(0), true, decide.ReasonNoTarget, "no other running EMQX node can take the sessions")
}

func TestRequestUsesFlagsAndStatefulSetAnnotations(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	f.gate.Config.ConnEvictRate = 7
	f.Sts.Annotations = map[string]string{decide.AnnSessRate: "9", decide.AnnWaitTakeover: "3s"}
	f.Update(f.Sts)
	f.removal(0)
	g, _ := mustClient(t, f).GlobalStatus(context.Background())
	ev, _ := g.Evacuation(node(0))
	if ev.ConnectionEvictionRate != 7 || ev.SessionEvictionRate != 9 || len(ev.SessionRecipients) != 2 {
		t.Fatalf("evacuation %+v", ev)
	}
}

func mustClient(t *testing.T, f *fixture) observe.EMQX {
	c, err := f.Conn.Connect(context.Background(), f.Pod(1))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Victims come from the pods that exist: a scale-down claiming 2147483647 old replicas names only
// them (it once built every name in the range: about 237 GiB).
func TestScaleDownVictimsComeFromExistingPodsWhateverTheClaim(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	v := f.gate.ScaleDown(context.Background(), f.Sts, math.MaxInt32, 1, true)
	if !v.Allowed || len(v.Warnings) != 1 ||
		!strings.Contains(v.Warnings[0], "EMQX pods emqx-2, emqx-1 are evacuated") {
		t.Fatalf("verdict %+v", v)
	}
}

func TestScaleDownIsAdmittedAndEvacuatesTheVictims(t *testing.T) {
	f := newFixture(t, 100, 100, 100, 100)
	f.gate.Config.MaxConcurrent = 2
	v := f.gate.ScaleDown(context.Background(), f.Sts, 4, 2, false)
	if !v.Allowed || len(v.Warnings) != 1 ||
		!strings.Contains(v.Warnings[0], "EMQX pods emqx-3, emqx-2 are evacuated before they are removed") ||
		!strings.Contains(v.Warnings[0], "kubectl emqx status -n mqtt") {
		t.Fatalf("verdict %+v", v)
	}
	if f.Evacuation(3) == "" || f.Evacuation(2) == "" || f.Evacuation(1) != "" {
		t.Fatal("the victims (ordinals 2 and 3) were not the ones evacuated")
	}
	g, _ := mustClient(t, f).GlobalStatus(context.Background())
	ev, _ := g.Evacuation(node(3))
	if strings.Join(ev.SessionRecipients, ",") != node(0)+","+node(1) {
		t.Fatalf("sessions go to %v, want the pods that stay", ev.SessionRecipients)
	}
	if f.Pod(3).Annotations[decide.AnnReason] != decide.CauseScaleDown {
		t.Fatal("the cause is not recorded")
	}
}

func TestStrictScaleDownIsHeldUntilVictimsAreEmpty(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	f.Sts.Annotations = map[string]string{decide.AnnScaleDown: "strict"}
	f.Update(f.Sts)
	expect(
		t,
		f.gate.ScaleDown(context.Background(), f.Sts, 3, 2, false),
		false,
		decide.ReasonEvacuating,
		"strict scale-down of statefulset emqx from 3 to 2",
	)
	for f.Evacuation(2) != "prohibiting" {
		f.Sim.Advance(time.Second)
	}
	expect(t, f.gate.ScaleDown(context.Background(), f.Sts, 3, 2, false), true, decide.ReasonEvacuated, "emqx-2")
}

func TestOrderedReadyScaleDownEvacuatesHighestFirst(t *testing.T) {
	f := newFixture(t, 100, 100, 100, 100)
	f.Sts.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	f.gate.Config.MaxConcurrent = 3
	f.gate.ScaleDown(context.Background(), f.Sts, 4, 1, false)
	if f.Evacuation(3) == "" || f.Evacuation(2) != "" || f.Evacuation(1) != "" {
		t.Fatal("OrderedReady: only the highest ordinal goes first")
	}
}

func TestVictimsRespectOrdinalsStart(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	f.Sts.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 1}
	got, err := f.gate.victims(context.Background(), f.Sts, 2, 1) // ordinals 1..2 → keep 1, remove 2
	if err != nil || len(got) != 1 || got[0].Name != "emqx-2" {
		t.Fatalf("victims %v %v", got, err)
	}
}

func TestConcurrentRemovalsStartOnceAndRespectTheLimit(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	results := make(chan decide.Verdict, 6)
	for range 3 {
		for _, i := range []int{1, 2} {
			go func() { results <- f.gate.Removal(context.Background(), f.Pod(i), false, "delete") }()
		}
	}
	started := 0
	for range 6 {
		if v := <-results; v.Reason == decide.ReasonStarted {
			started++
		}
	}
	if started != 1 || (f.Evacuation(1) == "") == (f.Evacuation(2) == "") {
		t.Fatalf("%d starts; evacuations %q %q: want exactly one", started, f.Evacuation(1), f.Evacuation(2))
	}
	if ev := f.Events(); strings.Count(ev, "EvacuationStarted") != 1 {
		t.Fatalf("events %q", ev)
	}
}

// staleEMQX reads a global_status from before someone else's start: the race in which the
// webhook's own start meets already_started.
type staleEMQX struct{ observe.EMQX }

func (s staleEMQX) GlobalStatus(ctx context.Context) (emqx.GlobalStatus, error) {
	g, err := s.EMQX.GlobalStatus(ctx)
	g.Evacuations = nil
	return g, err
}

type staleConnector struct{ *webhooktest.SimConnector }

func (s staleConnector) Connect(ctx context.Context, pod *corev1.Pod) (observe.EMQX, error) {
	c, err := s.SimConnector.Connect(ctx, pod)
	return staleEMQX{c}, err
}

func TestAlreadyStartedElsewhereIsHeldWithoutASecondStart(t *testing.T) {
	f := newFixture(t, 100, 100)
	c, _ := f.Conn.Connect(context.Background(), f.Pod(0))
	if err := c.StartEvacuation(context.Background(), node(0), emqx.EvacuationRequest{}); err != nil {
		t.Fatal(err)
	}
	f.gate.EMQX = staleConnector{f.Conn}
	v := f.removal(0)
	if v.Allowed || v.Reason != decide.ReasonEvacuating || !strings.Contains(v.Message, "just started") ||
		strings.Contains(f.Events(), "EvacuationStarted") || f.Pod(0).Annotations[decide.AnnStartedAt] != "" {
		t.Fatalf("verdict %+v", v)
	}
}

func TestUnexpectedEMQXAnswerTakesTheSameWayOut(t *testing.T) {
	f := newFixture(t, 100, 100)
	// emqx-0's node is held by another operation: EMQX answers eviction_agent_busy.
	if err := f.Sim.HoldEvictionAgent(node(0), "purge"); err != nil {
		t.Fatal(err)
	}
	v := f.removal(0)
	expect(t, v, false, decide.ReasonUnreachable, "eviction_agent_busy")
	if !strings.Contains(v.Message, "BAD_REQUEST") {
		t.Fatalf("the message lacks EMQX's code: %s", v.Message)
	}
	f.Clock.Step(f.gate.Config.UnreachableGrace)
	expect(t, f.removal(0), true, decide.ReasonUnreachable, "eviction_agent_busy")
}

func TestExtraSelectorMarksFurtherPodsAsEMQX(t *testing.T) {
	f := newFixture(t, 100, 100)
	p := f.Pod(0)
	p.Labels = map[string]string{"app": "my-broker", "app.kubernetes.io/instance": "emqx"}
	f.Update(p)
	expect(t, f.removal(0), true, decide.ReasonNotEMQX, "")
	sel, _ := labels.Parse("app=my-broker")
	f.gate.Matcher = cluster.Matcher{Extra: sel}
	expect(t, f.removal(0), false, decide.ReasonStarted, "")
}

// blockingEMQX never answers until its context ends: an EMQX API that hangs.
type blockingConnector struct{}

func (blockingConnector) Connect(ctx context.Context, _ *corev1.Pod) (observe.EMQX, error) {
	<-ctx.Done()
	return nil, &emqx.UnreachableError{URL: "http://198.18.1.2:18083", Err: ctx.Err()}
}

func (blockingConnector) Forget(*corev1.Pod) {}

func (blockingConnector) Prune(map[string]bool) {}

func TestDecisionsEndInsideTheAdmissionTimeout(t *testing.T) {
	f := newFixture(t, 100, 100)
	f.gate.EMQX = blockingConnector{}
	f.gate.Config.DecisionTimeout = 200 * time.Millisecond
	results := make(chan decide.Verdict, 3)
	start := time.Now()
	for range 3 {
		go func() { results <- f.gate.Removal(context.Background(), f.Pod(0), false, "eviction") }()
	}
	for range 3 {
		if v := <-results; v.Allowed {
			t.Fatalf("a hanging EMQX API must hold, not allow: %+v", v)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("three concurrent decisions took %v; each must end by its own deadline, not queue", took)
	}
	// The first failure was recorded despite the expired deadline, so the grace period runs out.
	if f.Pod(0).Annotations[decide.AnnUnreachableSince] == "" {
		t.Fatal("a hanging API left no mark: the removal would be held for ever")
	}
	f.Clock.Step(f.gate.Config.UnreachableGrace)
	expect(t, f.gate.Removal(context.Background(), f.Pod(0), false, "eviction"), true, decide.ReasonUnreachable, "")
}

// A node name EMQX reports with terminal escapes reaches no message or Event unescaped.
func TestEMQXProvidedTextIsEscapedInMessagesAndEvents(t *testing.T) {
	v := decide.Hold(decide.ReasonEvacuating, "EMQX node emqx@\x1b]0;pwned\x07evil is evacuating")
	if strings.ContainsAny(v.Message, "\x1b\x07") || !strings.Contains(v.Message, `\x1b]0;pwned\a`) {
		t.Fatalf("%q", v.Message)
	}
	f := newFixture(t, 0)
	f.gate.Exec.Event(f.Pod(0), corev1.EventTypeNormal, "X", "node %s", "a\x1b[2Jb")
	if ev := f.Events(); strings.Contains(ev, "\x1b") {
		t.Fatalf("event %q", ev)
	}
}

// A removal during a rebalance: a donor refuses to evacuate (eviction_agent_busy), which once
// ended in the grace period's unevacuated allow. The rebalance is stopped (Event) and the
// evacuation starts.
func TestRemovalDuringARebalanceStopsItAndEvacuates(t *testing.T) {
	f := newFixture(t, 1000, 1000, 0)
	conn, _ := f.Conn.Connect(context.Background(), f.Pod(2))
	abs := int64(10)
	if err := conn.(*emqx.Client).StartRebalance(context.Background(), node(2), emqx.RebalanceRequest{
		AbsConnThreshold: &abs,
		AbsSessThreshold: &abs,
	}); err != nil {
		t.Fatal(err)
	}
	expect(t, f.removal(0), false, decide.ReasonStarted, "is evacuating")
	if f.Evacuation(0) == "" {
		t.Fatal("no evacuation started")
	}
	if ev := f.Events(); !strings.Contains(
		ev,
		"Normal RebalanceStopped stopped the rebalance coordinated by "+node(2),
	) {
		t.Fatalf("events %q", ev)
	}
	gs, err := conn.GlobalStatus(context.Background())
	if err != nil || len(gs.Rebalances) != 0 {
		t.Fatalf("rebalance still running: %+v %v", gs.Rebalances, err)
	}
}

// A 3→1 scale-down one pod at a time (OrderedReady): emqx-2's sessions go to emqx-0 only, never
// into emqx-1, which is removed next; later, emqx-1's deletion sends its sessions to emqx-0 too.
func TestScaleDownNeverMigratesIntoTheNextVictim(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	f.Sts.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	f.Update(f.Sts)
	v := f.gate.ScaleDown(context.Background(), f.Sts, 3, 1, false)
	if !v.Allowed || f.Evacuation(2) == "" || f.Evacuation(1) != "" {
		t.Fatalf("verdict %+v; evacuations: emqx-2 %q, emqx-1 %q", v, f.Evacuation(2), f.Evacuation(1))
	}
	g, _ := mustClient(t, f).GlobalStatus(context.Background())
	ev, _ := g.Evacuation(node(2))
	if strings.Join(ev.SessionRecipients, ",") != node(0) {
		t.Fatalf("emqx-2's sessions go to %v, want emqx-0 only", ev.SessionRecipients)
	}
	// The scale-down is admitted: the StatefulSet now wants one replica, and deletes emqx-1 next.
	one := int32(1)
	f.Sts.Spec.Replicas = &one
	f.Update(f.Sts)
	f.gate.Config.MaxConcurrent = 2
	expect(t, f.removal(1), false, decide.ReasonStarted, "")
	g, _ = mustClient(t, f).GlobalStatus(context.Background())
	ev, _ = g.Evacuation(node(1))
	if strings.Join(ev.SessionRecipients, ",") != node(0) {
		t.Fatalf("emqx-1's sessions go to %v, want emqx-0 only", ev.SessionRecipients)
	}
}

// A target that stops taking sessions under our feet (here: its agent held by a purge, which
// global_status does not show) makes EMQX answer "Nodes unavailable": the removal is held and
// retried, not treated as an unreachable API, and the wait ends at the evacuation time limit.
func TestUnavailableTargetsAreAWaitNotAnOutage(t *testing.T) {
	f := newFixture(t, 100, 100)
	if err := f.Sim.HoldEvictionAgent(node(0), "purge"); err != nil {
		t.Fatal(err)
	}
	expect(t, f.removal(1), false, decide.ReasonWaiting, "a node to move them to became unavailable")
	if f.Pod(1).Annotations[decide.AnnUnreachableSince] != "" {
		t.Fatal("an EMQX answer was taken for an unreachable API")
	}
	f.Clock.Step(f.gate.Config.EvacuationTimeout)
	expect(t, f.removal(1), true, decide.ReasonTimedOut, "refused every set of target nodes")
}

// An eviction a PodDisruptionBudget will refuse starts no evacuation: the webhook runs before the
// API server's budget check, and a drain's retries would otherwise keep the node evacuated while
// the eviction never happens. An unhealthy pod is judged as the API server judges it.
func TestEvictionTheBudgetRefusesStartsNothing(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: ns},
		Spec:   policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: webhooktest.Labels()}},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0, CurrentHealthy: 3, DesiredHealthy: 3}}
	if err := f.Kube.Create(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	if err := f.Kube.Status().Update(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	expect(
		t,
		f.removal(1),
		false,
		decide.ReasonBudget,
		"PodDisruptionBudget emqx allows no disruption of pod emqx-1 now",
	)
	if ev := f.Sim.Snapshot(); ev.Nodes[1].Evacuation != "" {
		t.Fatalf("an evacuation started behind a refusing budget: %+v", ev.Nodes[1])
	}
	// A deletion is no eviction: budgets do not apply.
	if v := f.gate.Removal(context.Background(), f.Pod(2), false, "delete"); v.Reason != decide.ReasonStarted {
		t.Fatalf("a deletion: %+v", v)
	}
	// The budget allows one: the eviction starts the evacuation.
	pdb.Status.DisruptionsAllowed = 1
	if err := f.Kube.Status().Update(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	f.Sim.Advance(10 * time.Minute) // emqx-2's evacuation ends: the concurrency limit is free
	if v := f.removal(1); v.Reason != decide.ReasonStarted && v.Reason != decide.ReasonWaiting {
		t.Fatalf("allowed by the budget: %+v", v)
	}
}

// Audit mode (the StatefulSet's emqx.kubectl-emqx.io/mode=audit, or --audit) observes only: a busy
// pod's removal is allowed, nothing is started or written, and a Warning Event says what would
// have been held and for about how long; mode=enforce on a StatefulSet overrides --audit.
func TestAuditModeAllowsAndSaysWhatItWouldHold(t *testing.T) {
	f := newFixture(t, 100, 100, 100)
	f.Sts.Annotations = map[string]string{decide.AnnMode: decide.ModeAudit}
	f.Update(f.Sts)
	v := f.gate.Removal(context.Background(), f.Pod(1), false, decide.CauseEviction)
	expect(
		t,
		v,
		true,
		decide.ReasonWouldHold,
		"would hold: EMQX node "+node(1)+" holds 100 connections and 100 sessions",
	)
	if !strings.Contains(v.Message, "for about") {
		t.Fatalf("no estimate: %s", v.Message)
	}
	if ev := f.Events(); !strings.Contains(ev, "Warning AuditWouldHold audit mode") {
		t.Fatalf("events %q", ev)
	}
	if f.Evacuation(1) != "" || f.Pod(1).Annotations[decide.AnnStartedAt] != "" {
		t.Fatal("audit mode started an evacuation")
	}

	// --audit for every cluster, and one StatefulSet that enforces.
	f.gate.Config.Audit = true
	f.Sts.Annotations = map[string]string{decide.AnnMode: decide.ModeEnforce}
	f.Update(f.Sts)
	v = f.gate.Removal(context.Background(), f.Pod(1), false, decide.CauseEviction)
	expect(t, v, false, decide.ReasonStarted, "is evacuating")
	if f.Evacuation(1) == "" {
		t.Fatal("mode=enforce under --audit started nothing")
	}
}
