package emqx_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

const (
	nodeD = "emqx@emqx-0.emqx-headless.default.svc.cluster.local"
	nodeR = "emqx@emqx-1.emqx-headless.default.svc.cluster.local"
)

type simEnv struct {
	cluster *emqxsim.Cluster
	urls    map[string]string
}

func newSim(t *testing.T, cfg emqxsim.Config) *simEnv {
	t.Helper()
	cfg.APIKeys = append(cfg.APIKeys, emqxsim.APIKey{Key: "key", Secret: "s3cr3t-9f2a"})
	c, err := emqxsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := &simEnv{cluster: c, urls: map[string]string{}}
	for _, n := range cfg.Nodes {
		srv := httptest.NewServer(c.Handler(n.Name))
		t.Cleanup(srv.Close)
		env.urls[n.Name] = srv.URL
	}
	return env
}

func (e *simEnv) client(t *testing.T, node string, creds emqx.Credentials, opts ...emqx.Option) *emqx.Client {
	t.Helper()
	c, err := emqx.New(e.urls[node], creds, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var apiKey = emqx.Credentials{APIKey: "key", APISecret: "s3cr3t-9f2a"}

func ptr[T any](v T) *T { return &v }

func TestClientDrivesAnEvacuationToTheEnd(t *testing.T) {
	ctx := context.Background()
	env := newSim(t, emqxsim.Config{Nodes: []emqxsim.NodeConfig{
		{Name: nodeD, Connections: 120, Sessions: 100}, {Name: nodeR},
	}})
	c := env.client(t, nodeD, apiKey)
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].LiveConnections != 120 || nodes[0].Connections != 120 ||
		!nodes[0].Running() {
		t.Fatalf("nodes = %+v, %v", nodes, err)
	}
	if ok, err := c.Available(ctx); !ok || err != nil {
		t.Fatalf("available = %v, %v", ok, err)
	}
	err = c.StartEvacuation(ctx, nodeD, emqx.EvacuationRequest{
		ConnEvictRate: ptr(int64(50)), SessEvictRate: ptr(int64(50)),
		WaitHealthCheck: ptr(1500 * time.Millisecond), WaitTakeover: ptr(time.Second), MigrateTo: []string{nodeR},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.LocalStatus(ctx)
	if err != nil || st.Process != emqx.ProcessEvacuation || st.State != emqx.EvacuationWaitingHealthCheck ||
		st.Stats.InitialConnected != 120 {
		t.Fatalf("local status %+v, %v", st, err)
	}
	if ok, err := c.Available(ctx); ok || err != nil {
		t.Fatalf("available while evacuating = %v, %v", ok, err)
	}
	if err := c.StartEvacuation(ctx, nodeD, emqx.EvacuationRequest{}); !emqx.IsAlreadyStarted(err) {
		t.Fatalf("second start: %v", err)
	}
	for i := 0; ; i++ {
		g, err := c.GlobalStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev, ok := g.Evacuation(nodeD)
		if !ok {
			t.Fatal("evacuation not listed")
		}
		if ev.Done() {
			if ev.SessionRecipients[0] != nodeR {
				t.Fatalf("recipients %v", ev.SessionRecipients)
			}
			break
		}
		if i > 100 {
			t.Fatalf("evacuation never completed: %+v", ev)
		}
		env.cluster.Advance(time.Second)
	}
	if err := c.StopEvacuation(ctx, nodeD); err != nil {
		t.Fatal(err)
	}
	if err := c.StopEvacuation(ctx, nodeD); !emqx.IsNotStarted(err) {
		t.Fatalf("second stop: %v", err)
	}
}

func TestClientRebalanceDecodesFloatGoals(t *testing.T) {
	ctx := context.Background()
	env := newSim(t, emqxsim.Config{Nodes: []emqxsim.NodeConfig{
		{Name: nodeD, Connections: 900, Sessions: -1}, {Name: nodeR, Connections: 100, Sessions: -1},
	}})
	c := env.client(t, nodeR, apiKey)
	req := emqx.RebalanceRequest{
		ConnEvictRate: ptr(int64(10)), WaitHealthCheck: ptr(time.Duration(0)), AbsConnThreshold: ptr(int64(10)),
		RelConnThreshold: ptr(1.05), ConnEvictRPCTimeout: ptr(2 * time.Second),
	}
	if err := c.StartRebalance(ctx, nodeR, req); err != nil {
		t.Fatal(err)
	}
	env.cluster.Advance(time.Second)
	g, err := c.GlobalStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rb, ok := g.Rebalance(nodeR)
	if !ok || rb.ConnectionGoal == nil || rb.DonorConnAvg == nil || *rb.ConnectionEvictionRPCTimeout != 2000 {
		t.Fatalf("rebalance %+v", rb)
	}
	if len(rb.Donors) != 1 || rb.Donors[0] != nodeD {
		t.Fatalf("donors %v", rb.Donors)
	}
	// The donor's own status, served by the donor.
	donor, err := env.client(t, nodeD, apiKey).LocalStatus(ctx)
	if err != nil || donor.CoordinatorNode != nodeR || donor.Stats.CurrentDisconnectedSessions == nil {
		t.Fatalf("donor status %+v, %v", donor, err)
	}
	if err := c.StopRebalance(ctx, nodeD); !emqx.IsNotStarted(err) {
		t.Fatalf("stop on a donor: %v", err)
	}
	if err := c.StopRebalance(ctx, nodeR); err != nil {
		t.Fatal(err)
	}
}

func TestClientErrorPredicatesAgainstSimulator(t *testing.T) {
	ctx := context.Background()
	env := newSim(t, emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: nodeD}, {Name: nodeR}}})
	c := env.client(t, nodeD, apiKey)
	cases := []struct {
		name string
		err  error
		pred func(error) bool
	}{
		{
			"unknown node",
			c.StartEvacuation(ctx, "emqx@nowhere", emqx.EvacuationRequest{}),
			says("not running in this EMQX cluster"),
		},
		{"nothing to balance", c.StartRebalance(ctx, nodeD, emqx.RebalanceRequest{}), emqx.IsNothingToBalance},
		{
			"invalid nodes",
			c.StartRebalance(ctx, nodeD, emqx.RebalanceRequest{Nodes: []string{"emqx@typo"}}),
			says("Invalid nodes"),
		},
		{"not started", c.StopRebalance(ctx, nodeD), emqx.IsNotStarted},
	}
	for _, tc := range cases {
		if !tc.pred(tc.err) {
			t.Errorf("%s: %v does not match its predicate", tc.name, tc.err)
		}
	}
	if err := env.cluster.HoldEvictionAgent(nodeR, "purge"); err != nil {
		t.Fatal(err)
	}
	err := c.StartEvacuation(ctx, nodeD, emqx.EvacuationRequest{MigrateTo: []string{nodeR}})
	if !emqx.IsNodesUnavailable(err) {
		t.Fatalf("unavailable: %v", err)
	}
	if err := c.StartEvacuation(ctx, nodeR, emqx.EvacuationRequest{}); !says("eviction_agent_busy")(err) {
		t.Fatalf("busy: %v", err)
	}
	bad := env.client(t, nodeD, emqx.Credentials{APIKey: "key", APISecret: "wrong-secret-value"})
	_, err = bad.GlobalStatus(ctx)
	if !emqx.IsUnauthorized(err) || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("unauthorized: %v", err)
	}
}

func TestClientReportsMissingRebalanceAPI(t *testing.T) {
	env := newSim(
		t,
		emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: nodeD}}, Edition: "Opensource", Version: "5.8.9"},
	)
	_, err := env.client(t, nodeD, apiKey).GlobalStatus(context.Background())
	if !says("no rebalance API")(err) || says("not running in this EMQX cluster")(err) {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "EMQX 5.9+") {
		t.Fatalf("the error does not say what to do: %v", err)
	}
}

func TestLoginTokenIsRenewedOnExpiry(t *testing.T) {
	ctx := context.Background()
	env := newSim(t, emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: nodeD}}})
	c := env.client(t, nodeD, emqx.Credentials{Username: "admin", Password: "public"})
	if _, err := c.GlobalStatus(ctx); err != nil {
		t.Fatal(err)
	}
	env.cluster.Advance(emqxsim.DefaultTokenTTL + time.Minute)
	if _, err := c.GlobalStatus(ctx); err != nil {
		t.Fatalf("after token expiry: %v", err)
	}
	wrong := env.client(t, nodeD, emqx.Credentials{Username: "admin", Password: "hunter2"})
	_, err := wrong.GlobalStatus(ctx)
	if !emqx.IsUnauthorized(err) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad login: %v", err)
	}
}

// Exact EMQX error bodies (API.md §3.11), served by a stub, map to the right predicates and text.
func TestErrorBodiesFromEMQX(t *testing.T) {
	cases := []struct {
		status int
		body   string
		pred   func(error) bool
		text   string
	}{
		{
			404,
			`{"code":"NOT_FOUND","message":"Node not found: emqx@emqx-core-9.emqx-headless.default.svc.cluster.local"}`,
			nil,
			"not running in this EMQX cluster",
		},
		{
			400,
			`{"code":"BAD_REQUEST","message":"error on node ` +
				`'emqx@emqx-core-0.emqx-headless.default.svc.cluster.local': already_started"}`,
			emqx.IsAlreadyStarted,
			"already running",
		},
		{
			400,
			`{"code":"BAD_REQUEST","message":"error on node 'emqx@e': not_started"}`,
			emqx.IsNotStarted,
			"nothing is running",
		},
		{
			400,
			`{"code":"BAD_REQUEST","message":"error on node 'emqx@e': nothing_to_balance"}`,
			emqx.IsNothingToBalance,
			"lower the thresholds",
		},
		{400, `{"code":"BAD_REQUEST","message":"error on node 'emqx@10.244.2.17': eviction_agent_busy"}`, nil, "busy"},
		{400, `{"code":"BAD_REQUEST","message":"Invalid nodes: [<<\"emqx@typo\">>]"}`, nil, "every named node"},
		{
			400,
			`{"code":"NOT_FOUND","message":"Nodes unavailable: ['emqx@10.244.1.9']"}`,
			emqx.IsNodesUnavailable,
			"every named node",
		},
		{503, `{"code":"RPC_ERROR","message":"RPC error on node 'emqx@10.244.2.17': nodedown"}`, nil, "internal RPC"},
		{401, `{"code":"BAD_API_KEY_OR_SECRET","message":"Check api_key/api_secret"}`, emqx.IsUnauthorized, "API key"},
		{
			403,
			`{"code":"UNAUTHORIZED_ROLE","message":"This API Key don't have permission to access this resource"}`,
			nil,
			"administrator",
		},
		{404, `{"code": "NOT_FOUND", "message": "Request Path Not Found"}`, nil, "no rebalance API"},
		{404, `<html><h1>404 - NOT FOUND</h1></html>`, nil, "no rebalance API"},
	}
	for _, tc := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tc.status)
			fmt.Fprint(w, tc.body)
		}))
		c, _ := emqx.New(srv.URL, apiKey, emqx.WithGETRetries(1, 0))
		err := c.StopEvacuation(context.Background(), "emqx@e")
		srv.Close()
		var e *emqx.Error
		if !errors.As(err, &e) || e.StatusCode != tc.status || tc.pred != nil && !tc.pred(err) {
			t.Errorf("%s: got %v", tc.body, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.text) || strings.Contains(err.Error(), "s3cr3t-9f2a") {
			t.Errorf("%s: text %q lacks %q (or leaks the secret)", tc.body, err, tc.text)
		}
	}
}

func TestGETsAreRetriedAndPOSTsAreNot(t *testing.T) {
	var gets, posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		} else if gets.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"code":"RPC_ERROR","message":"RPC error on node 'emqx@e': timeout"}`)
			return
		}
		fmt.Fprint(w, `{"evacuations":[],"purges":[],"rebalances":[]}`)
	}))
	defer srv.Close()
	clk := clocktesting.NewFakeClock(time.Now())
	c, _ := emqx.New(srv.URL, apiKey, emqx.WithClock(clk), emqx.WithGETRetries(3, time.Second))
	done := make(chan error, 1)
	go func() { _, err := c.GlobalStatus(context.Background()); done <- err }()
	for i := 0; i < 2; i++ {
		for !clk.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		clk.Step(time.Duration(i+1) * time.Second)
	}
	if err := <-done; err != nil || gets.Load() != 3 {
		t.Fatalf("GET after 2 failures: %v after %d tries", err, gets.Load())
	}
	var e *emqx.Error
	if err := c.StopEvacuation(context.Background(), "emqx@e"); !errors.As(err, &e) || e.Code != "RPC_ERROR" ||
		posts.Load() != 1 {
		t.Fatalf("POST: %v after %d tries", err, posts.Load())
	}
}

func TestUnreachableAndTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"evacuations":[`+strings.Repeat(`{"node":"x"},`, emqx.DefaultMaxResponseBytes/12)+`{}]}`)
	}))
	defer srv.Close()
	c, _ := emqx.New(srv.URL, apiKey)
	var tooLarge *emqx.ResponseTooLargeError
	if _, err := c.GlobalStatus(context.Background()); !errors.As(err, &tooLarge) {
		t.Fatalf("got %v", err)
	}
	srv.Close()
	c, _ = emqx.New(srv.URL, apiKey, emqx.WithGETRetries(2, time.Millisecond))
	_, err := c.GlobalStatus(context.Background())
	if !emqx.IsUnreachable(err) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("got %v", err)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:18083", "ftp://x", "http://admin:public@127.0.0.1:18083", "http://%zz"} {
		if _, err := emqx.New(u, apiKey); err == nil {
			t.Errorf("%q accepted", u)
		} else if strings.Contains(err.Error(), "public") {
			t.Errorf("%q: error leaks the password: %v", u, err)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", apiKey, apiKey, apiKey); strings.Contains(s, "s3cr3t-9f2a") {
		t.Fatalf("credentials print their secret: %s", s)
	}
}

func TestRequestsRejectWhatEMQXWouldReject(t *testing.T) {
	c, _ := emqx.New("http://127.0.0.1:1", apiKey)
	ctx := context.Background()
	for name, err := range map[string]error{
		"rate 0":      c.StartEvacuation(ctx, "n", emqx.EvacuationRequest{ConnEvictRate: ptr(int64(0))}),
		"negative":    c.StartEvacuation(ctx, "n", emqx.EvacuationRequest{WaitTakeover: ptr(-time.Second)}),
		"rel 1.0":     c.StartRebalance(ctx, "n", emqx.RebalanceRequest{RelConnThreshold: ptr(1.0)}),
		"abs 0":       c.StartRebalance(ctx, "n", emqx.RebalanceRequest{AbsSessThreshold: ptr(int64(0))}),
		"huge wait":   c.StartRebalance(ctx, "n", emqx.RebalanceRequest{WaitHealthCheck: ptr(5000000 * time.Second)}),
		"neg timeout": c.StartRebalance(ctx, "n", emqx.RebalanceRequest{ConnEvictRPCTimeout: ptr(-time.Millisecond)}),
	} {
		if err == nil || emqx.IsUnreachable(err) {
			t.Errorf("%s: %v, want a validation error before any request", name, err)
		}
	}
}

func TestRequestBodiesOmitUnsetFields(t *testing.T) {
	got, _ := emqx.EvacuationRequest{WaitHealthCheck: ptr(1500 * time.Millisecond)}.MarshalJSON()
	if string(got) != `{"wait_health_check":2}` {
		t.Fatalf("got %s", got)
	}
	got, _ = emqx.RebalanceRequest{}.MarshalJSON()
	if string(got) != `{}` {
		t.Fatalf("got %s", got)
	}
	got, _ = emqx.RebalanceRequest{
		RelSessThreshold:    ptr(1.5),
		SessEvictRPCTimeout: ptr(3 * time.Second),
		Nodes:               []string{"a"},
	}.MarshalJSON()
	if string(got) != `{"nodes":["a"],"rel_sess_threshold":1.5,"sess_evict_rpc_timeout":3000}` {
		t.Fatalf("got %s", got)
	}
}

func TestClientForceLeavesAStoppedNode(t *testing.T) {
	ctx := context.Background()
	env := newSim(t, emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: nodeD}, {Name: nodeR}}})
	c := env.client(t, nodeD, apiKey)
	if err := env.cluster.StopNode(nodeR); err != nil {
		t.Fatal(err)
	}
	if err := c.ForceLeave(ctx, nodeR); err != nil {
		t.Fatal(err)
	}
	if err := c.ForceLeave(ctx, nodeR); !emqx.IsNotInCluster(err) {
		t.Fatalf("second force_leave: %v", err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes %v, %v", nodes, err)
	}
}

// says matches an error whose text contains what.
func says(what string) func(error) bool {
	return func(err error) bool { return err != nil && strings.Contains(err.Error(), what) }
}

// Node names come from EMQX: escaped into the path, they cannot add segments or a query.
func TestNodeNamesAreEscapedInPaths(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath() + "?" + r.URL.RawQuery
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c, err := emqx.New(srv.URL, emqx.Credentials{APIKey: "k", APISecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StopEvacuation(context.Background(), "emqx@x/../../api_key?y=1"); err != nil {
		t.Fatal(err)
	}
	if want := "/api/v5/load_rebalance/emqx@x%2F..%2F..%2Fapi_key%3Fy=1/evacuation/stop?"; got != want {
		t.Fatalf("path %q, want %q", got, want)
	}
}
