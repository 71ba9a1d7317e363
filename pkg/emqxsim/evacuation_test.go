package emqxsim

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The evacuation options of emqx_node_rebalance_evacuation_SUITE.
var suiteEvacuation = map[string]any{
	"redirect_to": "srv", "conn_evict_rate": 10, "sess_evict_rate": 10, "wait_takeover": 1, "wait_health_check": 1,
	"migrate_to": []string{nodeR},
}

func evacState(h *harness, via string) string {
	st, _ := h.localStatus(via)["state"].(string)
	return st
}

// E1 t_agent_busy
func TestEvacuationOfBusyNodeFails(t *testing.T) {
	h := twoNodes(t, 0)
	if err := h.c.HoldEvictionAgent(nodeD, "purge"); err != nil {
		t.Fatal(err)
	}
	r := h.post(nodeD, "/evacuation/start", suiteEvacuation)
	expectStatus(t, r, http.StatusBadRequest, "BAD_REQUEST", "error on node '"+nodeD+"': eviction_agent_busy")
}

// E2 t_already_started, E3 t_not_started
func TestEvacuationStartTwiceAndStopUnstarted(t *testing.T) {
	h := twoNodes(t, 0)
	expectStatus(t, h.post(nodeD, "/evacuation/stop", nil), http.StatusBadRequest, "BAD_REQUEST", "not_started")
	if r := h.post(nodeD, "/evacuation/start", suiteEvacuation); r.status != http.StatusOK {
		t.Fatalf("start: %s", r.raw)
	}
	expectStatus(
		t,
		h.post(nodeD, "/evacuation/start", suiteEvacuation),
		http.StatusBadRequest,
		"BAD_REQUEST",
		"already_started",
	)
}

// E4 t_start and E7 t_conn_evicted
func TestEvacuationAcceptsDuringHealthCheckThenRefusesAndEvicts(t *testing.T) {
	h := twoNodes(t, 25)
	h.post(nodeD, "/evacuation/start", suiteEvacuation)
	if err := h.c.Connect(nodeD, 1, 1); err != nil {
		t.Fatalf("connect during wait_health_check: %v", err)
	}
	h.c.Advance(time.Second) // the health-check wait ends; the first eviction tick runs at once
	if err := h.c.Connect(nodeD, 1, 1); !errors.Is(err, ErrRefused) {
		t.Fatalf("connect after the health check: %v, want refusal 0x9C", err)
	}
	if got := h.node(nodeD).LiveConnections; got != 16 {
		t.Fatalf("after the first tick %d connections remain, want 26-10", got)
	}
	st := h.localStatus(nodeD)
	if st["state"] != "evicting_conns" || num(st["stats"].(map[string]any)["current_connected"]) != 26 {
		t.Fatalf("status %v: current_connected is the pre-eviction count", st)
	}
}

// E5 t_persistence
func TestEvacuationSurvivesRestartWithItsData(t *testing.T) {
	h := twoNodes(t, 0)
	h.post(nodeD, "/evacuation/start", suiteEvacuation)
	h.advanceUntil(10*time.Second, "prohibiting", func() bool { return evacState(h, nodeD) == "prohibiting" })
	if err := h.c.Connect(nodeD, 1, 1); !errors.Is(err, ErrRefused) {
		t.Fatalf("prohibiting node accepted a client: %v", err)
	}
	if err := h.c.RestartNode(nodeD, true); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Connect(nodeD, 1, 1); !errors.Is(err, ErrRefused) {
		t.Fatalf("restarted node accepted a client: %v", err)
	}
	st := h.localStatus(nodeD)
	if st["status"] != "enabled" || num(st["connection_eviction_rate"]) != 10 {
		t.Fatalf("status after restart %v", st)
	}
	if r := h.get(nodeD, "/load_rebalance/availability_check"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("availability after restart: %d", r.status)
	}
	// Without its data (no PVC) the node forgets the evacuation.
	if err := h.c.RestartNode(nodeD, false); err != nil {
		t.Fatal(err)
	}
	if st := h.localStatus(nodeD); st["status"] != "disabled" {
		t.Fatalf("a node restarted without data still evacuates: %v", st)
	}
}

// E8 t_migrate_to
func TestEvacuationSessionRecipients(t *testing.T) {
	h := twoNodes(t, 0)
	h.post(nodeD, "/evacuation/start", map[string]any{})
	recipients := func() []any { l, _ := h.localStatus(nodeD)["session_recipients"].([]any); return l }
	if r := recipients(); len(r) != 1 || r[0] != nodeR {
		t.Fatalf("default recipients %v, want [R]", r)
	}
	if err := h.c.HoldEvictionAgent(nodeR, "purge"); err != nil {
		t.Fatal(err)
	}
	if r := recipients(); len(r) != 0 {
		t.Fatalf("a busy R is still a recipient: %v", r)
	}
	// Internally an unknown name resolves to nothing (REST rejects it before).
	e := &evacuation{n: h.c.node(nodeD), opts: evacOpts{migrateTo: []string{"unknown@node"}}}
	if got := e.targets(); len(got) != 0 {
		t.Fatalf("unknown migrate_to resolved to %v", got)
	}
}

// E9 t_session_evicted, in count form, and API.md §8.1's view of it through /nodes.
func TestEvacuationMovesSessionsToRecipient(t *testing.T) {
	h := twoNodes(t, 1)
	h.post(nodeD, "/evacuation/start", suiteEvacuation)
	h.advanceUntil(10*time.Second, "prohibiting", func() bool { return evacState(h, nodeD) == "prohibiting" })
	d, r := h.node(nodeD), h.node(nodeR)
	if d.LiveConnections != 0 || d.PersistentSessions != 0 {
		t.Fatalf("D still holds %+v", d)
	}
	if r.DisconnectedSessions != 1 || r.LiveConnections != 0 {
		t.Fatalf("R holds %+v, want the migrated session", r)
	}
	var nodes []map[string]any
	_ = json.Unmarshal([]byte(h.get(nodeR, "/nodes").raw), &nodes)
	if num(nodes[1]["connections"]) != 1 || num(nodes[1]["live_connections"]) != 0 {
		t.Fatalf("R in /nodes: %v (a migrated session counts in connections, not live)", nodes[1])
	}
	ev := h.list(nodeR, "evacuations")[0].(map[string]any)
	stats := ev["stats"].(map[string]any)
	if ev["state"] != "prohibiting" || num(stats["current_connected"]) != 0 || num(stats["current_sessions"]) != 0 ||
		num(stats["initial_connected"]) != 1 || num(stats["initial_sessions"]) != 1 {
		t.Fatalf("evacuation entry %v", ev)
	}
	if h.c.LostSessions() != 0 {
		t.Fatal("an evacuation lost a session")
	}
}

// API.md §5.3: with no node to take sessions, the session phase retries every 30 s.
func TestEvacuationWithoutTargetsRetriesEvery30s(t *testing.T) {
	h := newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD, Connections: 5, Sessions: -1}}})
	h.post(
		nodeD,
		"/evacuation/start",
		map[string]any{"wait_health_check": 0, "wait_takeover": 0, "conn_evict_rate": 10},
	)
	h.c.Advance(2 * time.Second)
	if s := evacState(h, nodeD); s != "evicting_sessions" {
		t.Fatalf("state %s", s)
	}
	st := h.localStatus(nodeD)["stats"].(map[string]any)
	if num(st["current_sessions"]) != 5 {
		t.Fatalf("stats %v: sessions stay while nobody can take them", st)
	}
	// A second node joins: the next retry (30 s later) moves the sessions.
	if err := h.c.AddNode(NodeConfig{Name: nodeR}); err != nil {
		t.Fatal(err)
	}
	h.c.Advance(25 * time.Second)
	if h.node(nodeD).DisconnectedSessions != 5 {
		t.Fatal("sessions moved before the 30 s retry")
	}
	h.c.Advance(10 * time.Second)
	if h.node(nodeD).DisconnectedSessions != 0 {
		t.Fatal("sessions did not move at the retry")
	}
}

// API.md §5.4 t_persistence file cases, on disk.
func TestPersistenceFile(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD, DataDir: dir}, {Name: nodeR}}})
	h.post(
		nodeD,
		"/evacuation/start",
		map[string]any{"conn_evict_rate": 1001, "sess_evict_rate": 1002, "wait_takeover": 1003},
	)
	raw, err := os.ReadFile(filepath.Join(dir, ".evacuation"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"server_reference": nil,
		"conn_evict_rate":  1001.0,
		"sess_evict_rate":  1002.0,
		"wait_takeover":    1003.0,
	}
	if len(m) != len(want) {
		t.Fatalf("file %s, want exactly %v", raw, want)
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Fatalf("file[%s] = %v, want %v", k, got, v)
		}
	}
	h.post(nodeD, "/evacuation/stop", nil)
	if _, err := os.Stat(filepath.Join(dir, ".evacuation")); !os.IsNotExist(err) {
		t.Fatalf("stop left the file: %v", err)
	}
	for _, content := range []string{"{}", "not json"} {
		if err := os.WriteFile(filepath.Join(dir, ".evacuation"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := h.c.RestartNode(nodeD, true); err != nil {
			t.Fatal(err)
		}
		st := h.localStatus(nodeD)
		if st["status"] != "enabled" || num(st["connection_eviction_rate"]) != defaultRate ||
			st["state"] != "evicting_conns" &&
				st["state"] != "waiting_takeover" {
			t.Fatalf("file %q: status %v, want the defaults", content, st)
		}
	}
}

// The stats say how many evacuations moved clients at one time: two started together count two,
// one started after the first finished (prohibiting, empty) counts one.
func TestStatsCountEvacuationsMovingAtOnce(t *testing.T) {
	opts := map[string]any{"conn_evict_rate": 100, "sess_evict_rate": 100, "wait_takeover": 0,
		"wait_health_check": 0}
	h := newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD, Connections: 10, Sessions: -1},
		{Name: nodeR, Connections: 10, Sessions: -1}, {Name: "emqx@third"}}})
	if r := h.post(nodeD, "/evacuation/start", opts); r.status != http.StatusOK {
		t.Fatalf("start: %s", r.raw)
	}
	h.c.Advance(5 * time.Second)
	if got := h.c.Snapshot().MostEvacuating; got != 1 {
		t.Fatalf("one evacuation: most_evacuating %d", got)
	}
	if r := h.post(nodeR, "/evacuation/start", opts); r.status != http.StatusOK {
		t.Fatalf("start: %s", r.raw)
	}
	if got := h.c.Snapshot().MostEvacuating; got != 1 {
		t.Fatalf("the second started after the first was done: most_evacuating %d, want 1", got)
	}
	h2 := newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD, Connections: 10, Sessions: -1},
		{Name: nodeR, Connections: 10, Sessions: -1}, {Name: "emqx@third"}}})
	if r := h2.post(nodeD, "/evacuation/start", opts); r.status != http.StatusOK {
		t.Fatalf("start: %s", r.raw)
	}
	if r := h2.post(nodeR, "/evacuation/start", opts); r.status != http.StatusOK {
		t.Fatalf("start: %s", r.raw)
	}
	if got := h2.c.Snapshot().MostEvacuating; got != 2 {
		t.Fatalf("two started together: most_evacuating %d, want 2", got)
	}
}
