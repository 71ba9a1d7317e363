package emqxsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The rebalance options of emqx_node_rebalance_SUITE, through REST (rel must exceed 1.0 there).
func suiteRebalance(nodes ...string) map[string]any {
	return map[string]any{
		"conn_evict_rate": 10, "sess_evict_rate": 10, "conn_evict_rpc_timeout": 1000, "sess_evict_rpc_timeout": 1000,
		"abs_conn_threshold": 50, "abs_sess_threshold": 50, "rel_conn_threshold": 1.001, "rel_sess_threshold": 1.001,
		"wait_health_check": 0, "wait_takeover": 0, "nodes": nodes,
	}
}

func (h *harness) rebalanceGone(via string) bool { return len(h.list(via, "rebalances")) == 0 }

// R1 t_rebalance
func TestRebalanceMovesConnectionsAndSessions(t *testing.T) {
	h := twoNodes(t, 500)
	if r := h.post(nodeD, "/start", suiteRebalance(nodeD, nodeR)); r.status != http.StatusOK {
		t.Fatalf("start: %s", r.raw)
	}
	h.advanceUntil(5*time.Minute, "rebalance end", func() bool { return h.rebalanceGone(nodeD) })
	d, r := h.node(nodeD), h.node(nodeR)
	if !(d.LiveConnections-50 <= r.LiveConnections) || !(d.DisconnectedSessions-50 <= r.DisconnectedSessions) {
		t.Fatalf("not balanced: D %+v R %+v", d, r)
	}
	if r.DisconnectedSessions == 0 {
		t.Fatal("no session moved to R")
	}
	if st := h.localStatus(nodeD); st["status"] != "disabled" {
		t.Fatalf("D after the rebalance: %v", st)
	}
	if resp := h.get(nodeD, "/load_rebalance/availability_check"); resp.status != http.StatusOK {
		t.Fatalf("D stays unavailable after the rebalance: %d", resp.status)
	}
}

// R2 t_rebalance_node_crash
func TestRebalanceAbortsWhenRecipientStops(t *testing.T) {
	h := twoNodes(t, 500)
	opts := suiteRebalance(nodeD, nodeR)
	opts["wait_health_check"] = 1
	h.post(nodeD, "/start", opts)
	if err := h.c.StopNode(nodeR); err != nil {
		t.Fatal(err)
	}
	if h.rebalanceGone(nodeD) {
		t.Fatal("a recipient loss is noticed at the next RPC, not at once")
	}
	h.c.Advance(time.Second)
	if !h.rebalanceGone(nodeD) {
		t.Fatal("the coordinator survived a participant going down")
	}
	if st := h.localStatus(nodeD); st["status"] != "disabled" {
		t.Fatalf("donor after the abort: %v", st)
	}
	if err := h.c.Connect(nodeD, 1, 1); err != nil {
		t.Fatalf("donor refuses clients after the abort: %v", err)
	}
}

func TestRebalanceAbortsAtOnceWhenDonorStops(t *testing.T) {
	h := newHarness(
		t,
		Config{Nodes: []NodeConfig{{Name: nodeX}, {Name: nodeD, Connections: 500, Sessions: -1}, {Name: nodeR}}},
	)
	h.post(nodeX, "/start", suiteRebalance(nodeD, nodeR))
	if h.rebalanceGone(nodeX) {
		t.Fatal("rebalance did not start")
	}
	if err := h.c.StopNode(nodeD); err != nil {
		t.Fatal(err)
	}
	if !h.rebalanceGone(nodeX) {
		t.Fatal("losing a donor aborts the coordinator at once")
	}
}

// R3 t_no_need_to_rebalance
func TestNothingToBalance(t *testing.T) {
	h := twoNodes(t, 0)
	expectStatus(
		t,
		h.post(nodeD, "/start", suiteRebalance(nodeD, nodeR)),
		http.StatusBadRequest,
		"BAD_REQUEST",
		"nothing_to_balance",
	)
	if err := h.c.Connect(nodeD, 50, 50); err != nil {
		t.Fatal(err)
	}
	expectStatus(
		t,
		h.post(nodeD, "/start", suiteRebalance(nodeD, nodeR)),
		http.StatusBadRequest,
		"BAD_REQUEST",
		"nothing_to_balance",
	)
	h2 := newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD, Connections: 5000, Sessions: -1}}})
	expectStatus(t, h2.post(nodeD, "/start", nil), http.StatusBadRequest, "BAD_REQUEST", "nothing_to_balance")
}

// R4 t_available_nodes
func TestBusyNodeIsUnavailableForRebalance(t *testing.T) {
	h := twoNodes(t, 100)
	if err := h.c.HoldEvictionAgent(nodeR, "purge"); err != nil {
		t.Fatal(err)
	}
	r := h.post(nodeD, "/start", suiteRebalance(nodeD, nodeR))
	expectStatus(t, r, http.StatusBadRequest, "NOT_FOUND", "Nodes unavailable: ['"+nodeR+"']")
}

// API.md §3.8: without "nodes", a busy donor crashes the coordinator: 503 RPC_ERROR.
func TestBusyDonorWithoutNodeListIsRPCError(t *testing.T) {
	h := twoNodes(t, 100)
	if err := h.c.HoldEvictionAgent(nodeD, "purge"); err != nil {
		t.Fatal(err)
	}
	opts := suiteRebalance()
	delete(opts, "nodes")
	r := h.post(nodeD, "/start", opts)
	expectStatus(t, r, http.StatusServiceUnavailable, "RPC_ERROR", "RPC error on node '"+nodeD+"'")
	if !strings.Contains(r.str("message"), "eviction_agent_busy") || !h.rebalanceGone(nodeD) {
		t.Fatalf("message %q, rebalances %v", r.str("message"), h.list(nodeD, "rebalances"))
	}
}

// R5 t_before_health_check_over
func TestRebalanceDonorAcceptsUntilHealthCheckEnds(t *testing.T) {
	h := twoNodes(t, 50)
	opts := suiteRebalance(nodeD, nodeR)
	opts["abs_conn_threshold"], opts["abs_sess_threshold"], opts["wait_health_check"] = 1, 1, 2
	if r := h.post(nodeD, "/start", opts); r.status != http.StatusOK {
		t.Fatal(r.raw)
	}
	if r := h.get(nodeD, "/load_rebalance/availability_check"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("a donor is unavailable from the start: %d", r.status)
	}
	h.c.Advance(1500 * time.Millisecond)
	if err := h.c.Connect(nodeD, 1, 1); err != nil {
		t.Fatalf("connect during wait_health_check: %v", err)
	}
	h.c.Advance(time.Second)
	if err := h.c.Connect(nodeD, 1, 1); !errors.Is(err, ErrRefused) {
		t.Fatalf("connect after the health check: %v", err)
	}
}

// G3 t_rebalance_agent_coordinator_fail: the coordinator's node dies; its donors reopen.
func TestDonorsReopenWhenCoordinatorDies(t *testing.T) {
	h := newHarness(
		t,
		Config{Nodes: []NodeConfig{{Name: nodeX}, {Name: nodeD, Connections: 500, Sessions: -1}, {Name: nodeR}}},
	)
	h.post(nodeX, "/start", suiteRebalance(nodeD, nodeR))
	h.c.Advance(2 * time.Second)
	if err := h.c.Connect(nodeD, 1, 1); !errors.Is(err, ErrRefused) {
		t.Fatalf("donor should refuse while evicting: %v", err)
	}
	if err := h.c.StopNode(nodeX); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Connect(nodeD, 1, 1); err != nil {
		t.Fatalf("donor still refuses after its coordinator died: %v", err)
	}
	if !h.rebalanceGone(nodeD) {
		t.Fatal("rebalance still listed")
	}
}

// S1 t_cluster_status: global_status computed on a replicant.
func TestGlobalStatusFromReplicant(t *testing.T) {
	h := newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD}, {Name: "emqx@10.244.2.17", Role: "replicant"}}})
	h.post(nodeD, "/evacuation/start", nil)
	g := h.global("emqx@10.244.2.17")
	if len(g["evacuations"].([]any)) != 1 || len(g["rebalances"].([]any)) != 0 {
		t.Fatalf("global_status on the replicant: %v", g)
	}
}

func TestStopRebalanceOnlyOnCoordinator(t *testing.T) {
	h := newHarness(
		t,
		Config{Nodes: []NodeConfig{{Name: nodeX}, {Name: nodeD, Connections: 500, Sessions: -1}, {Name: nodeR}}},
	)
	h.post(nodeX, "/start", suiteRebalance(nodeD, nodeR))
	expectStatus(t, h.post(nodeD, "/stop", nil), http.StatusBadRequest, "BAD_REQUEST", "not_started")
	st := h.localStatus(nodeD)
	if st["coordinator_node"] != nodeX || st["process"] != "rebalance" {
		t.Fatalf("donor status %v", st)
	}
	if r := h.post(nodeX, "/stop", nil); r.status != http.StatusOK {
		t.Fatal(r.raw)
	}
	if r := h.get(nodeD, "/load_rebalance/availability_check"); r.status != http.StatusOK {
		t.Fatalf("donor after stop: %d", r.status)
	}
}

// Goals are floats: EMQX prints 25.0, never 25, and a client must cope.
func TestGoalsAreFloats(t *testing.T) {
	h := twoNodes(t, 500)
	h.post(nodeD, "/start", suiteRebalance(nodeD, nodeR))
	h.c.Advance(100 * time.Millisecond)
	raw := h.get(nodeD, "/load_rebalance/global_status").raw
	if !strings.Contains(raw, `"connection_goal":0.0`) || !strings.Contains(raw, `"donor_conn_avg":500.0`) {
		t.Fatalf("goals not printed as floats: %s", raw)
	}
}

// Per-tick eviction on every donor over the goal at once overshoots, as EMQX does (API.md §6.3).
func TestRebalanceEvictsOnEveryDonorEachTick(t *testing.T) {
	h := newHarness(t, Config{Nodes: []NodeConfig{
		{
			Name:        nodeD,
			Connections: 1200,
			Sessions:    -1,
		}, {Name: nodeX, Connections: 1100, Sessions: -1}, {Name: nodeR, Connections: 100, Sessions: -1},
	}})
	opts := map[string]any{
		"abs_conn_threshold": 100,
		"abs_sess_threshold": 100,
		"conn_evict_rate":    500,
		"wait_health_check":  0,
	}
	if r := h.post(nodeD, "/start", opts); r.status != http.StatusOK {
		t.Fatal(r.raw)
	}
	rb := h.list(nodeD, "rebalances")[0].(map[string]any)
	if d := rb["donors"].([]any); len(d) != 2 || d[0] != nodeD || d[1] != nodeX {
		t.Fatalf("donors %v, want [A B] of the worked example", d)
	}
	h.c.Advance(0) // the zero-length health-check timer fires; the first tick runs at once
	if a, b := h.node(nodeD).LiveConnections, h.node(nodeX).LiveConnections; a != 700 || b != 600 {
		t.Fatalf("after one tick A=%d B=%d, want 700 and 600", a, b)
	}
}

// The acceptance run of the foundation issue: the EMQX blog example on 4 nodes, with reconnecting
// clients, ends balanced within the thresholds with all 10,000 clients still connected.
func TestBlogExampleEndsBalancedWithEveryClientConnected(t *testing.T) {
	h := newHarness(t, Config{
		Nodes: []NodeConfig{
			{
				Name:        "emqx@emqx-0.x",
				Connections: 3333,
				Sessions:    -1,
			}, {Name: "emqx@emqx-1.x", Connections: 3333, Sessions: -1},
			{Name: "emqx@emqx-2.x", Connections: 3334, Sessions: -1}, {Name: "emqx@emqx-3.x"},
		},
		Reconnect: DefaultReconnect,
	})
	r := h.post("emqx@emqx-0.x", "/start", map[string]any{
		"conn_evict_rate": 10, "sess_evict_rate": 10, "wait_health_check": "10s", "wait_takeover": "10s",
		"abs_conn_threshold": 100, "abs_sess_threshold": 100, "rel_conn_threshold": 1.1, "rel_sess_threshold": 1.1,
	})
	if r.status != http.StatusOK {
		t.Fatal(r.raw)
	}
	h.advanceUntil(30*time.Minute, "rebalance end", func() bool { return h.rebalanceGone("emqx@emqx-0.x") })
	s := h.c.Snapshot()
	if s.ConnectedClients != 10000 || s.LostSessions != 0 {
		t.Fatalf("connected %d lost %d", s.ConnectedClients, s.LostSessions)
	}
	var donors []int64
	for _, n := range s.Nodes[:3] {
		donors = append(donors, n.LiveConnections)
	}
	avg := float64(donors[0]+donors[1]+donors[2]) / 3
	rec := float64(s.Nodes[3].LiveConnections)
	if !within(avg, rec, 100, 1.1) {
		t.Fatalf("donors %v (avg %.1f) vs recipient %.0f: not within abs 100 / rel 1.1", donors, avg, rec)
	}
	out, _ := json.Marshal(s.Nodes)
	t.Logf("end state: %s", out)
}
