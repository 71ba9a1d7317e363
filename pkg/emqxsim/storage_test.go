package emqxsim

import (
	"encoding/json"
	"net/http"
	"sort"
	"testing"
	"time"
)

// Durable storage (emqx_mgmt_api_ds.erl on 6.x, builtin_raft): cores are sites, PUT
// /ds/storages/{db}/replicas moves shards one membership step at a time, a site is forgotten only
// once its node has left the cluster and it holds nothing (emqx_ds_builtin_raft_meta:forget_site/1).
func TestDurableStorageReplicasMoveBeforeACoreLeaves(t *testing.T) {
	h := newHarness(t, Config{Version: "6.2.2", DurableSessions: true,
		Nodes: []NodeConfig{{Name: nodeD}, {Name: nodeR}, {Name: nodeX}}})
	var sites []string
	if r := h.get(nodeD, "/ds/sites"); r.status != http.StatusOK || json.Unmarshal([]byte(r.raw), &sites) != nil ||
		len(sites) != 3 {
		t.Fatalf("/ds/sites: %d %s", r.status, r.raw)
	}
	siteX := siteOf(nodeX)
	shardsOn := func(site string) int {
		r := h.get(nodeD, "/ds/sites/"+site)
		l, _ := r.body["shards"].([]any)
		return len(l)
	}
	// Allocated on the sites up when the DB opened (n_sites = 1: the first core alone); spread over
	// all three as emqx-operator 2.3 (or an administrator) does.
	if got := shardsOn(siteOf(nodeD)); got != 2*dsShards || shardsOn(siteX) != 0 {
		t.Fatalf("after allocation D holds %d replicas and X %d, want %d and 0", got, shardsOn(siteX), 2*dsShards)
	}
	for _, db := range dsDBs {
		r := h.call(nodeD, http.MethodPut, "/api/v5/ds/storages/"+db+"/replicas", sites)
		if r.status != http.StatusAccepted {
			t.Fatalf("assign %s: %d %s", db, r.status, r.raw)
		}
	}
	settled := func() bool {
		for _, db := range dsDBs {
			for _, sh := range h.get(nodeD, "/ds/storages/"+db).body["shards"].([]any) {
				if sh.(map[string]any)["transitions"] != nil {
					return false
				}
			}
		}
		return true
	}
	h.advanceUntil(time.Minute, "replicas on every site", settled)
	if got := shardsOn(siteX); got != 2*dsShards {
		t.Fatalf("site of X holds %d shard replicas, want %d", got, 2*dsShards)
	}
	// Stopping X with its replicas loses redundancy.
	if err := h.c.StopNode(nodeX); err != nil {
		t.Fatal(err)
	}
	if got := h.c.Snapshot().ReplicasDown; got != 2*dsShards {
		t.Fatalf("replicas down with X stopped: %d", got)
	}
	expectStatus(
		t,
		h.call(nodeD, http.MethodPut, "/api/v5/ds/sites/"+siteX+"/forget", nil),
		http.StatusBadRequest,
		"BAD_REQUEST",
		"site_temporarily_down",
	)
	if err := h.c.Rejoin(NodeConfig{Name: nodeX}); err != nil {
		t.Fatal(err)
	}
	// Move everything off X (what emqx-operator 2.3 does before it lets a core go).
	others := []string{siteOf(nodeD), siteOf(nodeR)}
	sort.Strings(others)
	for _, db := range dsDBs {
		r := h.call(nodeD, http.MethodPut, "/api/v5/ds/storages/"+db+"/replicas", others)
		if r.status != http.StatusAccepted {
			t.Fatalf("assign %s: %d %s", db, r.status, r.raw)
		}
	}
	if r := h.get(nodeD, "/ds/storages/messages"); r.status != http.StatusOK ||
		r.body["shards"].([]any)[0].(map[string]any)["transitions"] == nil {
		t.Fatalf("no transition shown: %s", r.raw)
	}
	h.advanceUntil(time.Minute, "X's replicas gone", func() bool { return settled() && shardsOn(siteX) == 0 })
	if err := h.c.StopNode(nodeX); err != nil {
		t.Fatal(err)
	}
	if got := h.c.Snapshot().ReplicasDown; got != 0 {
		t.Fatalf("replicas down after the move: %d", got)
	}
	expectStatus(
		t,
		h.call(nodeD, http.MethodPut, "/api/v5/ds/sites/"+siteX+"/forget", nil),
		http.StatusBadRequest,
		"BAD_REQUEST",
		"site_temporarily_down",
	)
	r := h.call(nodeD, http.MethodDelete, "/api/v5/cluster/"+nodeX+"/force_leave", nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("force_leave: %d %s", r.status, r.raw)
	}
	if r := h.call(nodeD, http.MethodPut, "/api/v5/ds/sites/"+siteX+"/forget", nil); r.status != http.StatusNoContent {
		t.Fatalf("forget: %d %s", r.status, r.raw)
	}
	if r := h.get(nodeD, "/ds/sites"); json.Unmarshal([]byte(r.raw), &sites) != nil || len(sites) != 2 {
		t.Fatalf("sites after forget: %s", r.raw)
	}
}

// No durable storage API without durable sessions, nor before 5.9; no forget before 6.0.
func TestDurableStorageAPIByRelease(t *testing.T) {
	for _, c := range []struct {
		version string
		durable bool
		sites   int
		forget  int
	}{{"6.2.2", false, 404, 404}, {"5.8.4", true, 404, 404}, {"5.10.0", true, 200, 404}, {"6.0.1", true, 200, 400}} {
		h := newHarness(t, Config{Version: c.version, DurableSessions: c.durable, Nodes: []NodeConfig{{Name: nodeD}}})
		if r := h.get(nodeD, "/ds/sites"); r.status != c.sites {
			t.Errorf("%s durable=%v: /ds/sites %d, want %d", c.version, c.durable, r.status, c.sites)
		}
		if r := h.call(nodeD, http.MethodPut, "/api/v5/ds/sites/"+siteOf(nodeD)+"/forget", nil); r.status != c.forget {
			t.Errorf("%s: forget %d, want %d", c.version, r.status, c.forget)
		}
	}
}
