package evacuation

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// The worked example of API.md §6.6.
func TestPlanRebalanceWorkedExample(t *testing.T) {
	p := PlanRebalance(
		[]Count{
			{Node: "A", Conns: 1200, Sessions: 1200},
			{Node: "B", Conns: 1100, Sessions: 1100},
			{Node: "C", Conns: 100, Sessions: 100},
		},
		Thresholds{AbsConn: 100, AbsSess: 100, RelConn: 1.1, RelSess: 1.1},
	)
	if !p.Needed || len(p.Donors) != 2 || p.Donors[0].Node != "A" || p.Donors[1].Node != "B" ||
		p.Recipients[0].Node != "C" {
		t.Fatalf("plan %+v", p)
	}
	// Donor average 1150, recipient 100: balanced once 1150 - m/2 <= 100 + m + 100, m >= 634.
	if p.ExpectedConnMoves != 634 {
		t.Fatalf("expected moves %d, want 634", p.ExpectedConnMoves)
	}
}

func TestPlanRebalanceNothingToBalance(t *testing.T) {
	for name, counts := range map[string][]Count{
		"one node":     {{Conns: 5000}},
		"all equal":    {{Conns: 10}, {Conns: 10}},
		"within abs":   {{Conns: 900, Sessions: 900}, {Conns: 0}},
		"empty":        nil,
		"within ratio": {{Conns: 105000, Sessions: 105000}, {Conns: 100000, Sessions: 100000}},
	} {
		if p := PlanRebalance(counts, DefaultThresholds); p.Needed {
			t.Errorf("%s: plan says a rebalance is needed: %+v", name, p)
		}
	}
}

// PlanRebalance must agree with EMQX's own decision; the simulator follows EMQX's code.
func TestPlanAgreesWithSimulatorOnRandomLoads(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 200 {
		n := 2 + rng.IntN(4)
		var nodes []emqxsim.NodeConfig
		var counts []Count
		for j := range n {
			conns := int64(rng.IntN(3000))
			persistent := int64(rng.IntN(int(conns) + 1))
			nodes = append(
				nodes,
				emqxsim.NodeConfig{Name: fmt.Sprintf("emqx@n%d", j), Connections: conns, Sessions: persistent},
			)
			counts = append(counts, Count{Node: nodes[j].Name, Conns: conns, Sessions: conns})
		}
		th := Thresholds{
			AbsConn: int64(1 + rng.IntN(800)),
			AbsSess: int64(1 + rng.IntN(800)),
			RelConn: 1 + rng.Float64(),
			RelSess: 1 + rng.Float64(),
		}
		c, err := emqxsim.New(emqxsim.Config{Nodes: nodes, APIKeys: []emqxsim.APIKey{{Key: "k", Secret: "s"}}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(c.Handler(nodes[0].Name))
		cl, _ := emqx.New(srv.URL, emqx.Credentials{APIKey: "k", APISecret: "s"})
		err = cl.StartRebalance(context.Background(), nodes[0].Name, emqx.RebalanceRequest{
			AbsConnThreshold: &th.AbsConn,
			AbsSessThreshold: &th.AbsSess,
			RelConnThreshold: &th.RelConn,
			RelSessThreshold: &th.RelSess,
		})
		srv.Close()
		plan := PlanRebalance(counts, th)
		if plan.Needed != (err == nil) || !plan.Needed && !emqx.IsNothingToBalance(err) {
			t.Fatalf(
				"case %d: counts %+v thresholds %+v: plan needed=%v, EMQX said %v",
				i,
				counts,
				th,
				plan.Needed,
				err,
			)
		}
	}
}

func TestRemaining(t *testing.T) {
	ev := emqx.Evacuation{State: emqx.EvacuationEvictingConns, ConnectionEvictionRate: 100, SessionEvictionRate: 50,
		Stats: emqx.Stats{CurrentConnected: 250, CurrentSessions: 100}}
	if got := Remaining(ev, ev.Stats.CurrentSessions, Waits{Takeover: 10 * time.Second}); got != 15*time.Second {
		t.Fatalf("remaining %v, want 3s + 10s + 2s", got)
	}
	ev.State = emqx.EvacuationProhibiting
	if got := Remaining(ev, ev.Stats.CurrentSessions, DefaultWaits); got != 0 {
		t.Fatalf("prohibiting: %v", got)
	}
}

// A dry run's estimate: both waits, then the ticks of connections and of sessions at the rates.
func TestEstimate(t *testing.T) {
	rate, wait := int64(200), 2*time.Second
	req := emqx.EvacuationRequest{ConnEvictRate: &rate, SessEvictRate: &rate,
		WaitHealthCheck: &wait, WaitTakeover: &wait}
	if got := Estimate(req, 1000, 700); got != 2*time.Second+5*time.Second+2*time.Second+4*time.Second {
		t.Fatalf("estimate %v, want 2s + 5s + 2s + 4s", got)
	}
	if got := Estimate(emqx.EvacuationRequest{}, 0, 0); got != DefaultWaits.HealthCheck+DefaultWaits.Takeover {
		t.Fatalf("an empty node with EMQX's defaults: %v, want the two waits", got)
	}
}

func TestRatesWithin(t *testing.T) {
	c, s, ok := RatesWithin(
		2*time.Minute,
		Waits{HealthCheck: 10 * time.Second, Takeover: 10 * time.Second},
		10000,
		5000,
	)
	if !ok || c != 200 || s != 100 {
		t.Fatalf("rates %d %d %v, want 200 and 100 (50 s per phase)", c, s, ok)
	}
	if _, _, ok := RatesWithin(time.Minute, DefaultWaits, 1, 1); ok {
		t.Fatal("a minute cannot hold two 60 s waits")
	}
}

func TestBalanced(t *testing.T) {
	th := Thresholds{AbsConn: 100, AbsSess: 100, RelConn: 1.1, RelSess: 1.1}
	if !Balanced([]Count{{Conns: 2553}, {Conns: 2553}}, []Count{{Conns: 2340}}, th) {
		t.Fatal("within the relative threshold is balanced")
	}
	if Balanced([]Count{{Conns: 3000}}, []Count{{Conns: 1000}}, th) {
		t.Fatal("3000 vs 1000 is not balanced")
	}
	if Balanced([]Count{{Conns: 10, Disconnected: 900}}, []Count{{Conns: 10}}, th) {
		t.Fatal("disconnected sessions left on the donor are not balanced")
	}
}

// Flags named after EMQX's parameters take EMQX's units: seconds, or a duration.
func TestParseWaitTakesSecondsAsEMQXDoesAndDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"10":    10 * time.Second,
		"0":     0,
		"10s":   10 * time.Second,
		"1m":    time.Minute,
		"500ms": 500 * time.Millisecond,
	} {
		if got, err := ParseWait(in); err != nil || got != want {
			t.Errorf("ParseWait(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "-1s", "ten", "", "4294968", "2000h"} {
		if _, err := ParseWait(in); err == nil {
			t.Errorf("ParseWait(%q) accepted", in)
		}
	}
}
