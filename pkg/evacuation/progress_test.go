package evacuation

import (
	"testing"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

func TestProgressReadsTheEvacuationOnce(t *testing.T) {
	ev := emqx.Evacuation{
		Node:                   "emqx@a",
		State:                  emqx.EvacuationEvictingConns,
		ConnectionEvictionRate: 100,
		SessionEvictionRate:    100,
		Stats: emqx.Stats{
			InitialConnected: 1000,
			CurrentConnected: 834,
			InitialSessions:  1100,
			CurrentSessions:  1034,
		},
	}
	p := ProgressOf(ev, emqx.Node{}, DurableOff, Waits{Takeover: 10 * time.Second})
	if p.Done || p.Moved() != 232 || p.Left != 9*time.Second+10*time.Second+11*time.Second {
		t.Fatalf("progress %+v moved %d", p, p.Moved())
	}
	if got, want := p.Summary(), "834 connections and 1034 sessions left (about 30s)"; got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
	ev.State, ev.Stats.CurrentConnected, ev.Stats.CurrentSessions = emqx.EvacuationProhibiting, 0, 0
	p = ProgressOf(ev, emqx.Node{}, DurableOff, DefaultWaits)
	if !p.Done || p.Left != 0 || p.Moved() != 2100 || p.Summary() != "0 connections and 0 sessions left" {
		t.Fatalf("done: %+v %q", p, p.Summary())
	}
}

func TestWaitsOfARequestAreItsOwnElseEMQXsDefaults(t *testing.T) {
	ten := 10 * time.Second
	if w := WaitsOf(emqx.EvacuationRequest{WaitTakeover: &ten}); w != (Waits{HealthCheck: DefaultWait, Takeover: ten}) {
		t.Fatalf("waits %+v", w)
	}
	if w := WaitsOf(emqx.EvacuationRequest{WaitHealthCheck: &ten}); w != (Waits{
		HealthCheck: ten,
		Takeover:    DefaultWait,
	}) {
		t.Fatalf("waits %+v", w)
	}
}
