package evacuation

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

type zoneAnswer struct {
	zone  emqx.Zone
	err   error
	asked *int
}

func (z zoneAnswer) GlobalZone(context.Context) (emqx.Zone, error) {
	*z.asked++
	return z.zone, z.err
}

func TestAskDurability(t *testing.T) {
	on := emqx.Zone{DurableSessions: &struct {
		Enable bool `json:"enable"`
	}{Enable: true}}
	off := emqx.Zone{DurableSessions: &struct {
		Enable bool `json:"enable"`
	}{}}
	forbidden := &emqx.Error{StatusCode: http.StatusForbidden, Code: emqx.CodeUnauthorizedRole}
	down := &emqx.UnreachableError{Err: errors.New("connection refused")}
	for _, c := range []struct {
		version string
		answer  zoneAnswer
		want    Durability
		asks    int
		fails   bool
	}{
		{version: "5.3.2", answer: zoneAnswer{zone: on}, want: DurableOff, asks: 0},
		{version: "5.8.4", answer: zoneAnswer{zone: off}, want: DurableOff, asks: 1},
		{version: "6.2.2", answer: zoneAnswer{zone: on}, want: DurableOn, asks: 1},
		{version: "6.2.2", answer: zoneAnswer{err: forbidden}, want: DurableUnknown, asks: 1},
		{version: "", answer: zoneAnswer{zone: on}, want: DurableOn, asks: 1}, // no version: ask
		{version: "6.2.2", answer: zoneAnswer{err: down}, fails: true, asks: 1},
	} {
		n := 0
		c.answer.asked = &n
		got, err := AskDurability(context.Background(), c.answer, c.version)
		if (err != nil) != c.fails || got != c.want || n != c.asks {
			t.Errorf(
				"%s %+v: %v %v after %d questions, want %v (fails %v) after %d",
				c.version,
				c.answer.err,
				got,
				err,
				n,
				c.want,
				c.fails,
				c.asks,
			)
		}
	}
}

// The one rule, per durability: EMQX's own done is always enough; where sessions may be durable,
// a node past evicting_conns with no connection and no channel of its own is done too.
func TestSafeToRemove(t *testing.T) {
	ev := func(state string, conns, sessions int64) emqx.Evacuation {
		return emqx.Evacuation{
			Node:  "emqx@a",
			State: state,
			Stats: emqx.Stats{CurrentConnected: conns, CurrentSessions: sessions},
		}
	}
	node := func(live, channels int64) emqx.Node {
		return emqx.Node{Node: "emqx@a", NodeStatus: emqx.NodeRunning, LiveConnections: live, Connections: channels}
	}
	for _, c := range []struct {
		name string
		ev   emqx.Evacuation
		node emqx.Node
		d    Durability
		want bool
	}{
		{"EMQX's done", ev(emqx.EvacuationProhibiting, 0, 0), emqx.Node{}, DurableOff, true},
		{"EMQX's done, durable", ev(emqx.EvacuationProhibiting, 0, 0), node(3, 3), DurableOn, true},
		{"durable count left, off", ev(emqx.EvacuationEvictingSessions, 0, 500), node(0, 0), DurableOff, false},
		{"durable count left, on", ev(emqx.EvacuationEvictingSessions, 0, 500), node(0, 0), DurableOn, true},
		{"durable count left, unknown", ev(emqx.EvacuationWaitingTakeover, 0, 500), node(0, 0), DurableUnknown, true},
		{"channels left", ev(emqx.EvacuationEvictingSessions, 0, 500), node(0, 2), DurableOn, false},
		{"live connections left", ev(emqx.EvacuationWaitingTakeover, 0, 500), node(1, 1), DurableOn, false},
		{"still accepting clients", ev(emqx.EvacuationWaitingHealthCheck, 0, 500), node(0, 0), DurableOn, false},
		{"evicting connections", ev(emqx.EvacuationEvictingConns, 0, 500), node(0, 0), DurableOn, false},
		{
			"another node's entry",
			ev(emqx.EvacuationEvictingSessions, 0, 500),
			emqx.Node{Node: "emqx@b", NodeStatus: emqx.NodeRunning},
			DurableOn,
			false,
		},
		{"not listed", ev(emqx.EvacuationEvictingSessions, 0, 500), emqx.Node{}, DurableOn, false},
	} {
		if got := SafeToRemove(c.ev, c.node, c.d); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
