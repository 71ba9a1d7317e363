package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Waiting is how an operation waits: it polls every Interval on Clock, and gives up after Timeout
// (measured on Clock; 0: never), leaving EMQX's work running.
type Waiting struct {
	Clock    clock.WithTicker
	Interval time.Duration
	Timeout  time.Duration
}

// deadline is when a wait starting now gives up (zero: never).
func (w Waiting) deadline() time.Time {
	if w.Timeout <= 0 {
		return time.Time{}
	}
	return w.Clock.Now().Add(w.Timeout)
}

// Poll calls fn every interval until it returns done, an error, or ctx ends; past deadline (on
// clk; zero: none) it returns context.DeadlineExceeded.
func Poll(
	ctx context.Context,
	clk clock.WithTicker,
	interval time.Duration,
	deadline time.Time,
	fn func() (bool, error),
) error {
	tick := clk.NewTicker(interval)
	defer tick.Stop()
	for {
		done, err := fn()
		if err != nil || done {
			return err
		}
		if !deadline.IsZero() && !clk.Now().Before(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C():
		}
	}
}

// stillRunning words an interrupted or timed-out wait: EMQX keeps working, and the message says
// in which state and how to undo it. Any other error of the wait is returned as it is.
func stillRunning(ctx context.Context, err error, state string, timeout time.Duration) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted: %s", state)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timed out after %v: %s", timeout, state)
	}
	return err
}

// Evacuating is one node's evacuation progress, with the pod it is known by.
type Evacuating struct {
	Pod string
	evacuation.Progress
}

// waitEvacuated polls global_status until every node's evacuation is done, reporting progress. It
// returns the last evacuation seen of each node. Where sessions may be durable (5.8+), EMQX's own
// count may never reach 0, and the node list is read too: the node's own channels decide.
func waitEvacuated(
	ctx context.Context,
	w Waiting,
	deadline time.Time,
	t *Target,
	r Reporter,
	nodes []emqx.Node,
	waits evacuation.Waits,
) (map[string]emqx.Evacuation, error) {
	last := map[string]emqx.Evacuation{}
	durable, err := evacuation.AskDurability(ctx, t.Conn, nodes[0].Version)
	if err != nil {
		return last, err
	}
	err = Poll(ctx, w.Clock, w.Interval, deadline, func() (bool, error) {
		gs, err := t.Conn.GlobalStatus(ctx)
		if err != nil {
			return false, err
		}
		var listed []emqx.Node
		if durable != evacuation.DurableOff {
			if listed, err = t.Conn.Nodes(ctx); err != nil {
				return false, err
			}
		}
		done := true
		ps := make([]Evacuating, 0, len(nodes))
		for _, n := range nodes {
			ev, ok := gs.Evacuation(n.Node)
			if !ok {
				return false, fmt.Errorf(
					"the evacuation of %s is gone: someone stopped it, or the node restarted without its data",
					printable(n.Node),
				)
			}
			last[n.Node] = ev
			now, _ := cluster.NodeByName(listed, n.Node)
			p := evacuation.ProgressOf(ev, now, durable, waits)
			done = done && p.Done
			ps = append(ps, Evacuating{Pod: t.PodLabel(n.Node), Progress: p})
		}
		r.Evacuations(ps)
		return done, nil
	})
	return last, err
}

// printable escapes and bounds a string from EMQX for messages.
func printable(s string) string { return emqx.Printable(s, 256) }
