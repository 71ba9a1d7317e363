package webhook

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/internal/webhooktest"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// sharingConnector plays a connector whose reads are shared (--emqx-shared-reads): without
// emqx.Fresh its nodes are those of an earlier answer.
type sharingConnector struct {
	observe.Connector
	shares  bool
	earlier []emqx.Node
}

func (s *sharingConnector) SharesReads() bool { return s.shares }

func (s *sharingConnector) Connect(ctx context.Context, pod *corev1.Pod) (observe.EMQX, error) {
	c, err := s.Connector.Connect(ctx, pod)
	if err != nil || emqx.IsFresh(ctx) {
		return c, err
	}
	return earlierNodes{EMQX: c, nodes: s.earlier}, nil
}

type earlierNodes struct {
	observe.EMQX
	nodes []emqx.Node
}

func (e earlierNodes) Nodes(context.Context) ([]emqx.Node, error) { return e.nodes, nil }

// nodesNow are the nodes EMQX lists now: what a shared answer was, in the tests that change it.
func (f *fixture) nodesNow() []emqx.Node {
	f.T.Helper()
	conn, err := f.Conn.Connect(context.Background(), f.Pod(0))
	if err != nil {
		f.T.Fatal(err)
	}
	nodes, err := conn.Nodes(context.Background())
	if err != nil {
		f.T.Fatal(err)
	}
	return nodes
}

// A shared answer read before clients reached the node says it is empty; the removal is not let
// go on it: EMQX is asked again, sees the clients, and the evacuation starts.
func TestAnEmptyNodeOnASharedAnswerIsAskedAgainBeforeTheRemoval(t *testing.T) {
	for _, shares := range []bool{true, false} {
		f := newFixture(t, 10, 10)
		nodes := f.nodesNow()
		for i := range nodes { // as EMQX answered before emqx-1's clients arrived
			if nodes[i].Node == webhooktest.Node(1) {
				nodes[i].Connections, nodes[i].LiveConnections = 0, 0
			}
		}
		f.gate.EMQX = &sharingConnector{Connector: f.Conn, shares: shares, earlier: nodes}
		v := f.removal(1)
		if shares && (v.Allowed || v.Reason != decide.ReasonStarted || f.Evacuation(1) == "") {
			t.Fatalf("shared answer: want the evacuation started, got %+v", v)
		}
		// Negative control: the same earlier answer taken as EMQX's own lets the pod go.
		if !shares && (!v.Allowed || v.Reason != decide.ReasonEmpty) {
			t.Fatalf("control: the world cannot show the hazard: %+v", v)
		}
	}
}

// A shared answer read before the pod's node joined (pods created together, a decision read a
// moment earlier) lists no node of it: EMQX is asked again, lists it, and the evacuation starts
// instead of a hold that a drain with a short --timeout never retries (seen in CI).
func TestAMissingNodeOnASharedAnswerIsAskedAgain(t *testing.T) {
	for _, shares := range []bool{true, false} {
		f := newFixture(t, 10, 10, 10)
		nodes := f.nodesNow()
		before := slices.DeleteFunc(nodes, func(n emqx.Node) bool { return n.Node == webhooktest.Node(2) })
		f.gate.EMQX = &sharingConnector{Connector: f.Conn, shares: shares, earlier: before}
		v := f.removal(2)
		if shares && (v.Allowed || v.Reason != decide.ReasonStarted || f.Evacuation(2) == "") {
			t.Fatalf("shared answer: want the evacuation started, got %+v", v)
		}
		// Negative control: the same listing taken as EMQX's own is a hold that starts nothing.
		if !shares && (v.Allowed || v.Reason != decide.ReasonUnreachable || f.Evacuation(2) != "") {
			t.Fatalf("control: the world cannot show the hazard: %+v", v)
		}
	}
}

// A drain that takes a whole cluster's pods at once: the other nodes are stopped for a moment
// (their pods recreated elsewhere, which the StatefulSet keeps). The removal waits for one to come
// back instead of losing the sessions, then evacuates into it.
func TestRemovalWaitsForANodeThatComesBack(t *testing.T) {
	f := newFixture(t, 10, 10, 10)
	for _, i := range []int{0, 2} {
		if err := f.Sim.StopNode(webhooktest.Node(i)); err != nil {
			t.Fatal(err)
		}
		delete(f.Conn.URLs, fmt.Sprintf("emqx-%d", i)) // their pods are gone: EMQX is asked through emqx-1
	}
	v := f.removal(1)
	if v.Allowed || v.Reason != decide.ReasonWaitingForTarget || f.Evacuation(1) != "" {
		t.Fatalf("other nodes stopped, their pods kept: want held, got %+v", v)
	}
	if err := f.Sim.StartNode(webhooktest.Node(0), true); err != nil {
		t.Fatal(err)
	}
	if v := f.removal(1); v.Allowed || v.Reason != decide.ReasonStarted {
		t.Fatalf("a node back: want the evacuation started, got %+v", v)
	}
	// Negative control: a StatefulSet scaled to zero keeps no pod; nothing comes back.
	g := newFixture(t, 10, 10, 10)
	for _, i := range []int{0, 2} {
		if err := g.Sim.StopNode(webhooktest.Node(i)); err != nil {
			t.Fatal(err)
		}
		delete(g.Conn.URLs, fmt.Sprintf("emqx-%d", i))
	}
	sts := g.StatefulSet()
	zero := int32(0)
	sts.Spec.Replicas = &zero
	g.Update(sts)
	if v := g.removal(1); !v.Allowed || v.Reason != decide.ReasonNoTarget {
		t.Fatalf("nothing to wait for: want allowed without a target, got %+v", v)
	}
}

// The same when the other nodes are still running but evacuated (their pods are next in the
// drain, and the StatefulSet brings them back): held, not let go without a target.
func TestRemovalWaitsWhenEveryOtherNodeIsEvacuatedButKept(t *testing.T) {
	f := newFixture(t, 10, 0, 0)
	f.gate.Config.MaxConcurrent = 3 // the evacuations of the others do not make this one wait
	ctx := context.Background()
	conn, err := f.Conn.Connect(ctx, f.Pod(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		if err := conn.StartEvacuation(ctx, webhooktest.Node(i),
			emqx.EvacuationRequest{MigrateTo: []string{webhooktest.Node(0)}}); err != nil {
			t.Fatal(err)
		}
	}
	if v := f.removal(0); v.Allowed || v.Reason != decide.ReasonWaitingForTarget || f.Evacuation(0) != "" {
		t.Fatalf("other nodes evacuated, their pods kept: want held, got %+v", v)
	}
}

// Drains that take several pods of one cluster at once: their removals arrive together, and only
// --max-concurrent-evacuations of them start (the others wait), whatever the order they run in.
func TestRemovalsArrivingTogetherStartOneEvacuation(t *testing.T) {
	for round := range 20 {
		f := newFixture(t, 10, 10, 10, 10)
		verdicts := make(chan decide.Verdict, 3)
		for i := range 3 {
			go func() { verdicts <- f.removal(i) }()
		}
		started := 0
		for range 3 {
			if v := <-verdicts; v.Reason == decide.ReasonStarted {
				started++
			}
		}
		evacuating := 0
		for i := range 4 {
			if f.Evacuation(i) != "" {
				evacuating++
			}
		}
		if started != 1 || evacuating != 1 {
			t.Fatalf("round %d: %d started, %d evacuating; want 1 (at most 1 at a time)", round, started, evacuating)
		}
	}
}

// An empty node while another node's evacuation moves clients (a drain taking two pods of one
// cluster): the evicted clients reconnect through the Service to any node that takes them, this
// one too, with their sessions. Its removal waits until they have settled, then it is evacuated
// like any other. The world shows why: the empty node does receive clients.
func TestEmptyNodeWaitsWhileAnotherEvacuationMovesClients(t *testing.T) {
	f := newFixture(t, 100, 0, 100)
	expect(t, f.removal(0), false, decide.ReasonStarted, "")
	expect(t, f.removal(1), false, decide.ReasonWaiting, "moves clients that may reconnect to it")
	f.Sim.Advance(10 * time.Second)
	got := f.Sim.Snapshot().Nodes[1]
	if got.LiveConnections == 0 {
		t.Fatal("control: no client of the evacuated node reached the empty one; the world cannot show the hazard")
	}
	expect(t, f.removal(1), false, decide.ReasonStarted, fmt.Sprintf("%d connections", got.LiveConnections))
}

// sessionRecipients are the nodes the evacuation of node i sends sessions to, as EMQX says.
func sessionRecipients(t *testing.T, f *fixture, i int) []string {
	t.Helper()
	conn, err := f.Conn.Connect(context.Background(), f.Pod(i))
	if err != nil {
		t.Fatal(err)
	}
	gs, err := conn.GlobalStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := gs.Evacuation(node(i))
	if !ok {
		t.Fatalf("%s is not evacuating", node(i))
	}
	return ev.SessionRecipients
}

// A drain that takes two pods of one cluster: the first, empty, is let go; the evacuation of the
// second must not move clients into it, which stops a moment later with their sessions. Until its
// pod is deleted the Service may still send clients to it, so the evacuation waits for that; then
// it starts, its node left out of migrate_to. One let go longer ago that still runs (a budget
// refused the eviction after the webhook) is a target again. The world shows the hazard: an
// evacuation started while the empty node runs sends it clients.
func TestEvacuationWaitsForANodeLetGoAMomentAgo(t *testing.T) {
	f := newFixture(t, 100, 0, 100)
	expect(t, f.removal(1), true, decide.ReasonEmpty, "")
	expect(t, f.removal(0), false, decide.ReasonWaitingForDeletion, "the removal of pod emqx-1 was allowed")
	if f.Evacuation(0) != "" {
		t.Fatal("an evacuation started while the pod let go still runs")
	}
	f.Terminating(1)
	expect(t, f.removal(0), false, decide.ReasonStarted, "")
	if got := sessionRecipients(t, f, 0); slices.Contains(got, node(1)) || !slices.Contains(got, node(2)) {
		t.Fatalf("sessions go to %v, want %s only", got, node(2))
	}
	// Control: the same, the empty pod let go 11 s before, still running: a target again.
	g := newFixture(t, 100, 0, 100)
	expect(t, g.removal(1), true, decide.ReasonEmpty, "")
	g.Clock.Step(11 * time.Second)
	expect(t, g.removal(0), false, decide.ReasonStarted, "")
	if got := sessionRecipients(t, g, 0); !slices.Contains(got, node(1)) {
		t.Fatalf("control: sessions go to %v, want %s among them", got, node(1))
	}
	// Control: the world sends an evacuation's clients to the empty node while it runs.
	g.Sim.Advance(10 * time.Second)
	if g.Sim.Snapshot().Nodes[1].LiveConnections == 0 {
		t.Fatal("control: no client reached the running empty node; the world cannot show the hazard")
	}
}

// A terminating pod's node takes no sessions either (another replica let it go, or this one
// restarted); when every other node goes and the StatefulSet keeps their pods (a drain of the
// whole cluster), the removal waits for one to come back.
func TestEvacuationSendsNothingToATerminatingPodsNode(t *testing.T) {
	f := newFixture(t, 100, 0, 100)
	f.Terminating(1)
	expect(t, f.removal(0), false, decide.ReasonStarted, "")
	if got := sessionRecipients(t, f, 0); slices.Contains(got, node(1)) {
		t.Fatalf("sessions go to %v, among them a terminating pod's node", got)
	}
	g := newFixture(t, 100, 0, 100)
	g.Terminating(1)
	g.Terminating(2)
	expect(t, g.removal(0), false, decide.ReasonWaitingForTarget, "will be back")
}
