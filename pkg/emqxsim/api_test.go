package emqxsim

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A1 t_start_evacuation_validation
func TestEvacuationStartRejectsWhatEMQXRejects(t *testing.T) {
	h := twoNodes(t, 0)
	for _, body := range []string{
		`{"conn_evict_rate":"conn"}`, `{"sess_evict_rate":"sess"}`, `{"wait_takeover":"wait"}`,
		`{"wait_health_check":"wait"}`, `{"migrate_to":[]}`, `{"migrate_to":"migrate_to"}`,
		`{"migrate_to":["bad_node"]}`, `{"migrate_to":["bad_node","` + nodeD + `"]}`, `{"unknown":"Value"}`,
		`{"conn_evict_rate":0}`, `{"wait_takeover":-1}`, `{"wait_takeover":4294968}`, `[1,2]`,
	} {
		r := h.post(nodeD, "/evacuation/start", body)
		expectStatus(t, r, http.StatusBadRequest, "BAD_REQUEST", "")
	}
	expectStatus(
		t,
		h.call(nodeD, http.MethodPost, "/api/v5/load_rebalance/bad@node/evacuation/start", map[string]any{}),
		http.StatusNotFound,
		"NOT_FOUND",
		"Node not found: bad@node",
	)
	if l := h.list(nodeD, "evacuations"); len(l) != 0 {
		t.Fatalf("a rejected start left an evacuation: %v", l)
	}
	r := h.post(nodeD, "/evacuation/start", map[string]any{
		"conn_evict_rate": 10, "sess_evict_rate": 10, "wait_takeover": "10s", "wait_health_check": "10s",
		"redirect_to": "srv", "migrate_to": []string{nodeR},
	})
	if r.status != http.StatusOK || r.raw != "{}\n" {
		t.Fatalf("valid start: %d %q", r.status, r.raw)
	}
	evs := h.list(nodeD, "evacuations")
	if len(evs) != 1 || evs[0].(map[string]any)["node"] != nodeD {
		t.Fatalf("evacuations = %v, want one for D", evs)
	}
}

// A2 t_start_rebalance_validation
func TestRebalanceStartRejectsWhatEMQXRejects(t *testing.T) {
	h := twoNodes(t, 0)
	var bad []string
	for _, f := range []string{
		"conn_evict_rate",
		"sess_evict_rate",
		"conn_evict_rpc_timeout",
		"sess_evict_rpc_timeout",
		"abs_conn_threshold",
		"rel_conn_threshold",
		"abs_sess_threshold",
		"rel_sess_threshold",
		"wait_takeover",
		"wait_health_check",
	} {
		bad = append(bad, `{"`+f+`":"`+f+`"}`)
	}
	bad = append(
		bad,
		`{"nodes":"nodes"}`,
		`{"nodes":[]}`,
		`{"nodes":["bad_node"]}`,
		`{"nodes":["bad_node","`+nodeD+`"]}`,
		`{"unknown":"Value"}`,
		`{"rel_conn_threshold":1.0}`,
		`{"rel_sess_threshold":0.5}`,
		`{"abs_conn_threshold":0}`,
	)
	for _, body := range bad {
		expectStatus(t, h.post(nodeD, "/start", body), http.StatusBadRequest, "BAD_REQUEST", "")
	}
	expectStatus(t, h.call(nodeD, http.MethodPost, "/api/v5/load_rebalance/bad@node/start", map[string]any{}),
		http.StatusNotFound, "NOT_FOUND", "Node not found: bad@node")
	if err := h.c.Connect(nodeD, 50, 50); err != nil {
		t.Fatal(err)
	}
	r := h.post(nodeD, "/start", map[string]any{
		"conn_evict_rate": 10, "conn_evict_rpc_timeout": "10s", "sess_evict_rate": 10, "sess_evict_rpc_timeout": "10s",
		"wait_takeover": "10s", "wait_health_check": "10s", "abs_conn_threshold": 10, "rel_conn_threshold": 1.001,
		"abs_sess_threshold": 10, "rel_sess_threshold": 1.001, "nodes": []string{nodeD, nodeR},
	})
	if r.status != http.StatusOK {
		t.Fatalf("valid start: %d %s", r.status, r.raw)
	}
	rs := h.list(nodeD, "rebalances")
	if len(rs) != 1 || rs[0].(map[string]any)["node"] != nodeD {
		t.Fatalf("rebalances = %v", rs)
	}
	if got := num(rs[0].(map[string]any)["connection_eviction_rpc_timeout"]); got != 10000 {
		t.Fatalf("rpc timeout \"10s\" reported as %v ms, want 10000", got)
	}
}

// A3 t_start_stop_evacuation
func TestEvacuationStartStatusStop(t *testing.T) {
	h := twoNodes(t, 0)
	r := h.post(nodeD, "/evacuation/start", map[string]any{
		"wait_health_check": "10s", "conn_evict_rate": 100, "sess_evict_rate": 100,
		"redirect_to": "othernode:1883", "wait_takeover": "10s", "migrate_to": []string{nodeR},
	})
	if r.status != http.StatusOK {
		t.Fatalf("start: %d %s", r.status, r.raw)
	}
	st := h.localStatus(nodeD)
	want := map[string]any{"status": "enabled", "process": "evacuation", "state": "waiting_health_check",
		"connection_eviction_rate": 100.0, "session_eviction_rate": 100.0, "connection_goal": 0.0, "session_goal": 0.0}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("status[%s] = %v, want %v", k, st[k], v)
		}
	}
	stats, _ := st["stats"].(map[string]any)
	for _, k := range []string{"initial_connected", "current_connected", "initial_sessions", "current_sessions"} {
		if _, ok := stats[k]; !ok {
			t.Errorf("stats lacks %s: %v", k, stats)
		}
	}
	if _, ok := st["server_reference"]; ok {
		t.Error("the evacuation document carries no server_reference")
	}
	if st := h.localStatus(nodeR); st["status"] != "disabled" {
		t.Errorf("status served by R = %v; status is node-local", st)
	}
	g := h.global(nodeR)
	if len(g["rebalances"].([]any)) != 0 || len(g["evacuations"].([]any)) != 1 {
		t.Fatalf("global_status = %v", g)
	}
	ev := g["evacuations"].([]any)[0].(map[string]any)
	if ev["node"] != nodeD || ev["state"] != "waiting_health_check" || ev["status"] != nil {
		t.Fatalf("evacuation entry = %v", ev)
	}
	if r := h.post(nodeD, "/evacuation/stop", nil); r.status != http.StatusOK {
		t.Fatalf("stop: %d %s", r.status, r.raw)
	}
	if st := h.localStatus(nodeD); len(st) != 1 || st["status"] != "disabled" {
		t.Fatalf("status after stop = %v", st)
	}
	g = h.global(nodeD)
	if len(g["evacuations"].([]any))+len(g["rebalances"].([]any))+len(g["purges"].([]any)) != 0 {
		t.Fatalf("global_status after stop = %v", g)
	}
}

// A4 t_start_stop_rebalance
func TestRebalanceStartStatusStop(t *testing.T) {
	h := twoNodes(t, 0)
	if st := h.localStatus(nodeD); st["status"] != "disabled" {
		t.Fatalf("initial status %v", st)
	}
	if err := h.c.Connect(nodeD, 100, 100); err != nil {
		t.Fatal(err)
	}
	r := h.post(nodeD, "/start", map[string]any{
		"wait_health_check": "10s", "conn_evict_rate": 10, "sess_evict_rate": 20, "abs_conn_threshold": 10,
		"rel_conn_threshold": 1.5, "abs_sess_threshold": 10, "rel_sess_threshold": 1.5, "wait_takeover": "10s",
	})
	if r.status != http.StatusOK {
		t.Fatalf("start: %d %s", r.status, r.raw)
	}
	st := h.localStatus(nodeD)
	if st["process"] != "rebalance" || num(st["connection_eviction_rate"]) != 10 ||
		num(st["session_eviction_rate"]) != 20 {
		t.Fatalf("donor status = %v", st)
	}
	if st := h.localStatus(nodeR); st["status"] != "disabled" {
		t.Fatalf("a recipient reports %v, want disabled", st)
	}
	g := h.global(nodeD)
	if len(g["evacuations"].([]any)) != 0 || len(g["rebalances"].([]any)) != 1 {
		t.Fatalf("global = %v", g)
	}
	rb := g["rebalances"].([]any)[0].(map[string]any)
	want := map[string]any{
		"node":                            nodeD,
		"coordinator_node":                nodeD,
		"connection_eviction_rate":        10.0,
		"connection_eviction_rpc_timeout": 15000.0,
		"session_eviction_rate":           20.0,
		"session_eviction_rpc_timeout":    15000.0,
	}
	for k, v := range want {
		if rb[k] != v {
			t.Errorf("rebalance[%s] = %v, want %v", k, rb[k], v)
		}
	}
	if d := rb["donors"].([]any); len(d) != 1 || d[0] != nodeD {
		t.Errorf("donors = %v", d)
	}
	if r := rb["recipients"].([]any); len(r) != 1 || r[0] != nodeR {
		t.Errorf("recipients = %v", r)
	}
	if _, ok := rb["stats"]; ok {
		t.Error("global rebalance entries carry no stats")
	}
	if r := h.post(nodeD, "/stop", nil); r.status != http.StatusOK {
		t.Fatalf("stop: %d %s", r.status, r.raw)
	}
	if st := h.localStatus(nodeD); st["status"] != "disabled" {
		t.Fatalf("status after stop %v", st)
	}
	if l := h.list(nodeD, "rebalances"); len(l) != 0 {
		t.Fatalf("rebalances after stop %v", l)
	}
}

// A5 t_availability_check
func TestAvailabilityCheckFollowsTheEvictionAgent(t *testing.T) {
	h := twoNodes(t, 0)
	check := func() response {
		req, _ := http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/load_rebalance/availability_check", nil)
		req.SetBasicAuth("bogus", "bogus") // ignored: no auth since e5.4.0
		req.Header.Set("Accept", "application/json")
		return h.send(req)
	}
	if r := check(); r.status != http.StatusOK || r.raw != "{}\n" {
		t.Fatalf("before: %d %q", r.status, r.raw)
	}
	h.post(nodeD, "/evacuation/start", nil)
	r := check()
	expectStatus(t, r, http.StatusServiceUnavailable, "NODE_EVACUATING", "Node Evacuating")
	h.post(nodeD, "/evacuation/stop", nil)
	if r := check(); r.status != http.StatusOK {
		t.Fatalf("after stop: %d", r.status)
	}
}

func TestErrorBodiesMatchEMQX(t *testing.T) {
	h := twoNodes(t, 0)
	quoted := "'" + nodeD + "'"
	expectStatus(
		t,
		h.post(nodeD, "/evacuation/stop", nil),
		http.StatusBadRequest,
		"BAD_REQUEST",
		"error on node "+quoted+": not_started",
	)
	expectStatus(
		t,
		h.post(nodeD, "/stop", nil),
		http.StatusBadRequest,
		"BAD_REQUEST",
		"error on node "+quoted+": not_started",
	)
	expectStatus(
		t,
		h.post(nodeD, "/start", nil),
		http.StatusBadRequest,
		"BAD_REQUEST",
		"error on node "+quoted+": nothing_to_balance",
	)
	r := h.post(nodeD, "/evacuation/start", `{"migrate_to":["emqx@typo"]}`)
	if r.str("message") != `Invalid nodes: [<<"emqx@typo">>]` {
		t.Fatalf("invalid nodes message %q", r.str("message"))
	}
	r = h.post(nodeD, "/evacuation/start", `{"conn_evict_rate":"x"}`)
	if !strings.Contains(r.str("message"), `"path":"root.conn_evict_rate"`) ||
		!strings.Contains(r.str("message"), `"kind":"validation_error"`) {
		t.Fatalf("schema message %q", r.str("message"))
	}
	req, _ := http.NewRequest(
		http.MethodPost,
		h.urls[nodeD]+"/api/v5/load_rebalance/"+nodeD+"/evacuation/start",
		strings.NewReader("conn_evict_rate=1"),
	)
	req.SetBasicAuth(apiKey, apiSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	expectStatus(
		t,
		h.send(req),
		http.StatusUnsupportedMediaType,
		"UNSUPPORTED_MEDIA_TYPE",
		"content-type:application/json Required",
	)
	// A single-atom node name needs no quotes.
	if erlAtom("emqx@host") != "emqx@host" || erlAtom("emqx@10.0.0.1") != "'emqx@10.0.0.1'" {
		t.Fatal("atom quoting differs from Erlang's")
	}
}

func TestAuthenticationErrors(t *testing.T) {
	h := newHarness(t, Config{
		Nodes:   []NodeConfig{{Name: nodeD}, {Name: nodeR}},
		APIKeys: []APIKey{{Key: "viewer", Secret: "v", Role: "viewer"}},
	})
	url := h.urls[nodeD] + "/api/v5/load_rebalance/global_status"
	sendBody := func(method, u, body string, set func(*http.Request)) response {
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		set(req)
		return h.send(req)
	}
	send := func(method, u string, set func(*http.Request)) response {
		return sendBody(method, u, "{}", set)
	}
	r := send(http.MethodGet, url, func(*http.Request) {})
	expectStatus(t, r, http.StatusUnauthorized, "AUTHORIZATION_HEADER_ERROR", "")
	r = send(http.MethodGet, url, func(q *http.Request) { q.SetBasicAuth("key", "wrong") })
	expectStatus(t, r, http.StatusUnauthorized, "BAD_API_KEY_OR_SECRET", "Check api_key/api_secret")
	r = send(http.MethodGet, url, func(q *http.Request) { q.SetBasicAuth("admin", "public") })
	expectStatus(t, r, http.StatusUnauthorized, "BAD_API_KEY_OR_SECRET", "")
	if r := send(http.MethodGet, url,
		func(q *http.Request) { q.SetBasicAuth("viewer", "v") }); r.status != http.StatusOK {
		t.Fatalf("viewer GET: %d", r.status)
	}
	r = send(
		http.MethodPost,
		h.urls[nodeD]+"/api/v5/load_rebalance/"+nodeD+"/evacuation/start",
		func(q *http.Request) { q.SetBasicAuth("viewer", "v") },
	)
	expectStatus(t, r, http.StatusForbidden, "UNAUTHORIZED_ROLE", "")
	if l := h.list(nodeD, "evacuations"); len(l) != 0 {
		t.Fatal("a forbidden start took effect")
	}

	login := func(user, pw string) response {
		return sendBody(
			http.MethodPost,
			h.urls[nodeD]+"/api/v5/login",
			`{"username":"`+user+`","password":"`+pw+`"}`,
			func(*http.Request) {},
		)
	}
	expectStatus(t, login("admin", "nope"), http.StatusUnauthorized, "BAD_USERNAME_OR_PWD", "Auth failed")
	lr := login("admin", "public")
	token := lr.str("token")
	if lr.status != http.StatusOK || token == "" {
		t.Fatalf("login: %d %s", lr.status, lr.raw)
	}
	bearer := func(tok string) func(*http.Request) {
		return func(q *http.Request) { q.Header.Set("Authorization", "Bearer "+tok) }
	}
	if r := send(http.MethodGet, url, bearer(token)); r.status != http.StatusOK {
		t.Fatalf("bearer: %d %s", r.status, r.raw)
	}
	expectStatus(t, send(http.MethodGet, url, bearer("nope")), http.StatusUnauthorized, "BAD_TOKEN", "")
	h.c.Advance(DefaultTokenTTL + time.Second)
	expectStatus(t, send(http.MethodGet, url, bearer(token)), http.StatusUnauthorized, "TOKEN_TIME_OUT", "")
}

func TestOpenSourceBefore59HasNoRebalanceRoutes(t *testing.T) {
	h := newHarness(t, Config{Nodes: []NodeConfig{{Name: nodeD}}, Edition: "Opensource", Version: "5.8.9"})
	r := h.get(nodeD, "/load_rebalance/global_status")
	expectStatus(t, r, http.StatusNotFound, "NOT_FOUND", "Request Path Not Found")
	expectStatus(t, h.post(nodeD, "/evacuation/start", nil), http.StatusNotFound, "NOT_FOUND", "Request Path Not Found")
	if r := h.get(nodeD, "/nodes"); r.status != http.StatusOK {
		t.Fatalf("/nodes on CE: %d", r.status)
	}
	req, _ := http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/load_rebalance/status", nil)
	req.SetBasicAuth(apiKey, apiSecret)
	if r := h.send(req); r.status != http.StatusNotFound || !strings.Contains(r.raw, "<h1>404 - NOT FOUND</h1>") {
		t.Fatalf("without Accept: JSON the router answers HTML: %d %q", r.status, r.raw)
	}
}

func TestNodesListsRunningThenStoppedCores(t *testing.T) {
	h := newHarness(t, Config{Nodes: []NodeConfig{
		{Name: nodeD, Connections: 30, Sessions: 10}, {Name: nodeR}, {Name: "emqx@10.244.2.17", Role: "replicant"},
	}})
	if err := h.c.StopNode(nodeD); err != nil {
		t.Fatal(err)
	}
	if err := h.c.StopNode("emqx@10.244.2.17"); err != nil {
		t.Fatal(err)
	}
	r := h.call(nodeR, http.MethodGet, "/api/v5/nodes", nil)
	var nodes []map[string]any
	if err := jsonUnmarshal(r.raw, &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0]["node"] != nodeR || nodes[0]["node_status"] != "running" {
		t.Fatalf("nodes = %v", nodes)
	}
	if stub := nodes[1]; stub["node"] != nodeD || stub["node_status"] != "stopped" || stub["role"] != "core" ||
		len(stub) != 3 {
		t.Fatalf("stopped core stub = %v (a stopped replicant is not listed)", stub)
	}
	expectStatus(t, h.get(nodeR, "/nodes/"+nodeD), http.StatusNotFound, "NOT_FOUND", "Node not found: "+nodeD)
	if r := h.get(nodeR, "/nodes/"+nodeR); r.status != http.StatusOK || r.str("edition") != "Enterprise" {
		t.Fatalf("GET /nodes/R: %d %s", r.status, r.raw)
	}
	if lost := h.c.LostSessions(); lost != 10 {
		t.Fatalf("lost sessions = %d, want the 10 persistent sessions of the stopped node", lost)
	}
}

func TestStoppedNodeDoesNotAnswer(t *testing.T) {
	h := twoNodes(t, 0)
	if err := h.c.StopNode(nodeD); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/nodes", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a stopped node answered HTTP %d", resp.StatusCode)
	}
}

func TestAPIDownDropsAPIRequestsButKeepsClients(t *testing.T) {
	h := twoNodes(t, 10)
	h.c.SetAPIDown(true)
	req, _ := http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/nodes", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the API answered %d while down", resp.StatusCode)
	}
	if s := h.c.Snapshot(); s.ConnectedClients != 10 {
		t.Fatalf("clients %d", s.ConnectedClients)
	}
	h.c.SetAPIDown(false)
	if r := h.get(nodeD, "/nodes"); r.status != http.StatusOK {
		t.Fatalf("after: %d", r.status)
	}
}

// emqx-operator reads the configuration as HOCON (Accept: text/plain) and PUTs its changes.
func TestConfigsServeHOCONAndTakeUpdates(t *testing.T) {
	h := twoNodes(t, 0)
	req, _ := http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/configs", nil)
	req.Header.Set("Accept", "text/plain")
	req.SetBasicAuth(apiKey, apiSecret)
	r := h.send(req)
	if r.status != 200 || !strings.Contains(r.raw, "dashboard {") || !strings.Contains(r.raw, `bind = "0.0.0.0:1883"`) {
		t.Fatalf("GET configs text: %d %s", r.status, r.raw)
	}
	req, _ = http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/configs", nil)
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(apiKey, apiSecret)
	if r := h.send(req); r.status != 200 || r.body["dashboard"] == nil || r.body["node"] != nil {
		t.Fatalf("GET configs json: %d %s", r.status, r.raw)
	}
	put := func(mode, body string) response {
		req, _ := http.NewRequest(
			http.MethodPut,
			h.urls[nodeD]+"/api/v5/configs?mode="+mode+"&ignore_readonly=true",
			strings.NewReader(body),
		)
		req.Header.Set("Content-Type", "text/plain")
		req.SetBasicAuth(apiKey, apiSecret)
		return h.send(req)
	}
	expectStatus(t, put("merge", "log.console.level = debug"), 200, "", "")
	expectStatus(t, put("merge", "log {"), 400, "BAD_REQUEST", "invalid HOCON")
	expectStatus(t, put("sideways", "a = 1"), 400, "BAD_REQUEST", "mode")
	req, _ = http.NewRequest(http.MethodGet, h.urls[nodeR]+"/api/v5/configs", nil)
	req.SetBasicAuth(apiKey, apiSecret)
	if r := h.send(req); !strings.Contains(r.raw, "log.console.level = debug") {
		t.Fatalf("the update is not the cluster's configuration: %s", r.raw)
	}
	req, _ = http.NewRequest(http.MethodGet, h.urls[nodeD]+"/api/v5/configs", nil)
	if r := h.send(req); r.status != 401 {
		t.Fatalf("configs without credentials: %d", r.status)
	}
}

// /status (the Helm chart's probe) answers 200 while the node runs, evacuating or not.
func TestStatusEndpointAnswersWhileEvacuating(t *testing.T) {
	h := twoNodes(t, 10)
	expectStatus(t, h.post(nodeD, "/evacuation/start", nil), 200, "", "")
	resp, err := http.Get(h.urls[nodeD] + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "is started") {
		t.Fatalf("/status: %d %s", resp.StatusCode, body)
	}
}

// force_leave as recorded on EMQX 5.3.2: a stopped node is dropped (204); the serving node cannot
// leave; an unknown or already removed node is not in the cluster; a running node is expelled.
func TestForceLeaveAsEMQXAnswersIt(t *testing.T) {
	h := newHarness(
		t,
		Config{Nodes: []NodeConfig{{Name: nodeD}, {Name: nodeR}, {Name: "emqx@third", Connections: 5, Sessions: -1}}},
	)
	del := func(via, node string) response {
		req, _ := http.NewRequest(http.MethodDelete, h.urls[via]+"/api/v5/cluster/"+node+"/force_leave", nil)
		req.SetBasicAuth(apiKey, apiSecret)
		return h.send(req)
	}
	if err := h.c.StopNode(nodeR); err != nil {
		t.Fatal(err)
	}
	if r := del(nodeD, nodeR); r.status != http.StatusNoContent || r.raw != "" {
		t.Fatalf("force_leave of a stopped node: %d %q", r.status, r.raw)
	}
	var nodes []map[string]any
	if err := jsonUnmarshal(h.get(nodeD, "/nodes").raw, &nodes); err != nil || len(nodes) != 2 {
		t.Fatalf("nodes after force_leave: %v %v", nodes, err)
	}
	expectStatus(t, del(nodeD, nodeD), 400, "BAD_REQUEST", "Can't leave self")
	expectStatus(t, del(nodeD, nodeR), 400, "BAD_REQUEST", "node_not_in_cluster")
	expectStatus(t, del(nodeD, "emqx@never-seen"), 400, "BAD_REQUEST", "node_not_in_cluster")
	if r := del(nodeD, "emqx@third"); r.status != http.StatusNoContent {
		t.Fatalf("force_leave of a running node: %d", r.status)
	}
	if lost := h.c.LostSessions(); lost != 5 {
		t.Fatalf("an expelled running node took %d sessions with it, want its 5", lost)
	}
}

// Each node counts the REST API requests it serves (what a caller costs EMQX), not its probes
// or the simulator's own endpoints.
func TestNodesCountTheAPIRequestsTheyServe(t *testing.T) {
	h := twoNodes(t, 0)
	for range 3 {
		h.get(nodeD, "/nodes")
	}
	h.get(nodeR, "/load_rebalance/global_status")
	h.call(nodeD, http.MethodGet, "/status", nil)
	h.call(nodeD, http.MethodGet, "/sim/v1/stats", nil)
	d, _ := h.c.Node(nodeD)
	r, _ := h.c.Node(nodeR)
	if d.APIRequests != 3 || r.APIRequests != 1 {
		t.Fatalf("API requests: D %d, R %d; want 3 and 1", d.APIRequests, r.APIRequests)
	}
}
