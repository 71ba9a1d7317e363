package emqx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// A stub of the EMQX 4.4 Enterprise management API, shaped after API.md §9.
func v4Stub(t *testing.T) *httptest.Server {
	t.Helper()
	started := false
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v4/nodes", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"code":0,"data":[{"node":"emqx-ee@emqx-ee-0.emqx-ee-headless.default.svc.cluster.local","node_status":"Running",
			"connections":12,"live_connections":10,"version":"4.4.19","uptime":"3 days, 2 hours"},
			{"name":"emqx-ee@emqx-ee-1.emqx-ee-headless.default.svc.cluster.local","node_status":"Stopped"}]}`)
	})
	mux.HandleFunc("/api/v4/load_rebalance/global_status", func(w http.ResponseWriter, _ *http.Request) {
		if started {
			fmt.Fprint(w, `{"rebalances":[],"evacuations":[{"node":"emqx-ee@emqx-ee-0","state":"prohibiting","connection_eviction_rate":500,
				"session_eviction_rate":500,"connection_goal":0,"session_goal":0,"session_recipients":[],
				"stats":{"initial_connected":10,"current_connected":0,"initial_sessions":12,"current_sessions":0}}]}`)
			return
		}
		fmt.Fprint(w, `{"rebalances":[],"evacuations":[]}`)
	})
	mux.HandleFunc("/api/v4/load_rebalance/emqx-ee@emqx-ee-0/evacuation/start", func(w http.ResponseWriter, _ *http.Request) {
		if started {
			fmt.Fprint(w, `{"code":400,"message":"already_started"}`)
			return
		}
		started = true
		fmt.Fprint(w, `{"data":[],"code":0}`)
	})
	mux.HandleFunc("/api/v4/load_rebalance/emqx-ee@emqx-ee-0/evacuation/stop", func(w http.ResponseWriter, _ *http.Request) {
		if !started {
			fmt.Fprint(w, `{"code":400,"message":["not_started"]}`)
			return
		}
		started = false
		fmt.Fprint(w, `{"data":[],"code":0}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestV4DialectBehindTheSameInterface(t *testing.T) {
	ctx := context.Background()
	c, err := emqx.New(v4Stub(t).URL, apiKey, emqx.WithAPIVersion(emqx.V4))
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 2 || !nodes[0].Running() || nodes[0].LiveConnections != 10 || nodes[1].Running() ||
		nodes[1].Node != "emqx-ee@emqx-ee-1.emqx-ee-headless.default.svc.cluster.local" {
		t.Fatalf("nodes %+v, %v", nodes, err)
	}
	if err := c.StopEvacuation(ctx, "emqx-ee@emqx-ee-0"); !emqx.IsNotStarted(err) {
		t.Fatalf("stop before start: %v", err)
	}
	if err := c.StartEvacuation(ctx, "emqx-ee@emqx-ee-0", emqx.EvacuationRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := c.StartEvacuation(ctx, "emqx-ee@emqx-ee-0", emqx.EvacuationRequest{}); !emqx.IsAlreadyStarted(err) {
		t.Fatalf("second start: %v", err)
	}
	g, err := c.GlobalStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev, ok := g.Evacuation("emqx-ee@emqx-ee-0"); !ok || !ev.Done() {
		t.Fatalf("global %+v", g)
	}
	if err := c.StopEvacuation(ctx, "emqx-ee@emqx-ee-0"); err != nil {
		t.Fatal(err)
	}
}
