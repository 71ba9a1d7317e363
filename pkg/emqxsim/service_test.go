package emqxsim

import (
	"testing"
	"time"
)

// The listener Service routes by pod readiness, not by what EMQX thinks: a Ready pod whose node
// evacuates still receives clients, refuses them (CONNACK 0x9C), and they retry elsewhere. The
// refusals are counted; nothing is lost.
func TestServiceSendsClientsToReadyEvacuatingNodeWhichRefusesThem(t *testing.T) {
	h := newHarness(
		t,
		Config{
			Nodes:     []NodeConfig{{Name: nodeD}, {Name: nodeR}},
			Reconnect: ReconnectConfig{Share: 1, Delay: time.Second},
		},
	)
	expectStatus(
		t,
		h.post(nodeD, "/evacuation/start", map[string]any{"wait_health_check": 0, "wait_takeover": 0}),
		200,
		"",
		"",
	)
	h.c.Advance(time.Second)
	if err := h.c.Connect("", 1000, 1000); err != nil {
		t.Fatal(err)
	}
	h.c.Advance(30 * time.Second)
	s := h.c.Snapshot()
	if s.RefusedConnects < 800 || s.RefusedConnects > 1200 {
		t.Fatalf(
			"refused connects = %d; each try hits the evacuating Ready node with odds 1/2: "+
				"about 1000 refusals in all for 1000 clients",
			s.RefusedConnects,
		)
	}
	if d, r := h.node(nodeD), h.node(nodeR); d.LiveConnections != 0 || r.LiveConnections != 1000 ||
		s.ReconnectingClients != 0 ||
		s.LostSessions != 0 {
		t.Fatalf("D %+v, R %+v, stats %+v: every client should end up on R, none lost", d, r, s)
	}
}

// A NotReady pod is no endpoint: with readiness following the evacuation (an availability_check
// probe, the operator's gate, our routing gate), no client is refused.
func TestServiceSendsNoClientToNotReadyNode(t *testing.T) {
	h := newHarness(
		t,
		Config{
			Nodes:     []NodeConfig{{Name: nodeD}, {Name: nodeR}},
			Reconnect: ReconnectConfig{Share: 1, Delay: time.Second},
		},
	)
	expectStatus(
		t,
		h.post(nodeD, "/evacuation/start", map[string]any{"wait_health_check": 0, "wait_takeover": 0}),
		200,
		"",
		"",
	)
	if err := h.c.SetReady(nodeD, false); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Connect("", 1000, 1000); err != nil {
		t.Fatal(err)
	}
	h.c.Advance(5 * time.Second)
	if s := h.c.Snapshot(); s.RefusedConnects != 0 || h.node(nodeR).LiveConnections != 1000 {
		t.Fatalf("stats %+v", s)
	}
	if err := h.c.SetReady(nodeR, false); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Connect("", 1, 1); err == nil {
		t.Fatal("a Service with no Ready endpoint accepted a client")
	}
}

// A stopped core node stays listed until it rejoins; Rejoin boots it again under its name.
func TestRejoinBootsAStoppedNodeAgain(t *testing.T) {
	h := twoNodes(t, 10)
	if err := h.c.StopNode(nodeD); err != nil {
		t.Fatal(err)
	}
	if n := h.node(nodeD); n.Running {
		t.Fatalf("%+v", n)
	}
	if err := h.c.Rejoin(NodeConfig{Name: nodeD}); err != nil {
		t.Fatal(err)
	}
	if n := h.node(nodeD); !n.Running || n.LiveConnections != 0 {
		t.Fatalf("after rejoin %+v", n)
	}
	if err := h.c.Rejoin(NodeConfig{Name: "emqx@new"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.c.Node("emqx@new"); !ok {
		t.Fatal("a new name did not join")
	}
}
