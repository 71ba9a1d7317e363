package ops

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// The engines called as plain functions, without cobra or a terminal: in direct mode against a
// simulated cluster, with a reporter that records what it hears.

type recorder struct {
	events []string
	plan   *evacuation.Plan
}

func (r *recorder) EvacuationStarted(pod, _ string, conns, sessions int64) {
	r.events = append(r.events, fmt.Sprintf("started %s %d %d", pod, conns, sessions))
}
func (r *recorder) EvacuationJoined(pod, _ string) { r.events = append(r.events, "joined "+pod) }
func (r *recorder) NothingToEvacuate(pod string)   { r.events = append(r.events, "nothing "+pod) }
func (r *recorder) EvacuationReopened(pod string)  { r.events = append(r.events, "reopened "+pod) }
func (r *recorder) Evacuations(ps []Evacuating) {
	for _, p := range ps {
		r.events = append(r.events, "progress "+p.Pod+" "+p.State)
	}
}
func (r *recorder) RebalancePlanned(p evacuation.Plan, _ evacuation.Thresholds, _ int64, _ func(string) string) {
	r.plan = &p
}
func (r *recorder) RebalanceJoined(c string)  { r.events = append(r.events, "rebalance joined "+c) }
func (r *recorder) RebalanceStarted(c string) { r.events = append(r.events, "rebalance started "+c) }
func (r *recorder) Rebalance(emqx.Rebalance)  {}

func node(i int) string { return fmt.Sprintf("emqx@10.0.0.%d", i) }

// direct is Access to a simulated cluster of len(conns) nodes through its first node's API.
func direct(t *testing.T, conns ...int64) (Access, *emqxsim.Cluster) {
	t.Helper()
	var nodes []emqxsim.NodeConfig
	for i, c := range conns {
		nodes = append(nodes, emqxsim.NodeConfig{Name: node(i), Connections: c, Sessions: -1})
	}
	sim, err := emqxsim.New(emqxsim.Config{Nodes: nodes, Start: time.Unix(1e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler(node(0)))
	t.Cleanup(srv.Close)
	return Access{
		EMQX: cluster.Access{URL: srv.URL, Creds: emqx.Credentials{Username: "admin", Password: "public"}},
	}, sim
}

func TestEvacuateStartsWithTheTargetsEMQXAccepts(t *testing.T) {
	a, sim := direct(t, 100, 100, 100)
	r := &recorder{}
	res, err := Evacuate{
		Pod:     node(2),
		NoWait:  true,
		Waiting: Waiting{Clock: clock.RealClock{}, Interval: time.Second},
	}.Run(
		context.Background(),
		a,
		r,
	)
	if err != nil || res.Waited || res.Undo != "kubectl emqx evacuate stop "+node(2) {
		t.Fatalf("%+v %v", res, err)
	}
	if strings.Join(r.events, ";") != "started "+node(2)+" 100 100" {
		t.Fatalf("events %v", r.events)
	}
	if st, _ := sim.Node(node(2)); st.Evacuation == "" {
		t.Fatal("not evacuating")
	}
	// A second one cannot take emqx-2's node as a target, and --migrate-to names what EMQX takes.
	_, err = Evacuate{
		Pod:       node(1),
		MigrateTo: []string{node(2)},
		NoWait:    true,
		Waiting:   Waiting{Clock: clock.RealClock{}, Interval: time.Second},
	}.Run(
		context.Background(),
		a,
		r,
	)
	if err == nil || !strings.Contains(err.Error(), "EMQX would refuse it") ||
		!strings.Contains(err.Error(), "choose among "+node(0)) {
		t.Fatalf("got %v", err)
	}
	// Joining a running one starts nothing.
	r.events = nil
	if _, err := (Evacuate{Pod: node(2), NoWait: true}).Run(context.Background(), a, r); err != nil ||
		strings.Join(r.events, ";") != "joined "+node(2) {
		t.Fatalf("%v %v", err, r.events)
	}
	if _, stopped, err := StopEvacuation(context.Background(), a, node(2)); err != nil || !stopped {
		t.Fatalf("stop: %v %v", stopped, err)
	}
}

func TestRebalanceDryRunPlansAndStartsNothing(t *testing.T) {
	a, sim := direct(t, 1500, 1500, 0)
	r := &recorder{}
	res, err := Rebalance{
		Thresholds: evacuation.Thresholds{AbsConn: 50, RelConn: 1.1, AbsSess: 50, RelSess: 1.1},
		DryRun:     true,
	}.Run(
		context.Background(),
		a,
		r,
	)
	if err != nil || !res.Planned || res.Started || r.plan == nil || len(r.plan.Donors) != 2 ||
		len(r.plan.Recipients) != 1 {
		t.Fatalf("%+v %v plan %+v", res, err, r.plan)
	}
	for _, n := range sim.Snapshot().Nodes {
		if n.RebalanceRole != "" {
			t.Fatalf("a dry run started a rebalance: %+v", n)
		}
	}
}
