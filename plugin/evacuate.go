package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// EvacuateOptions are the flags of `kubectl emqx evacuate pod`.
type EvacuateOptions struct {
	*GlobalOptions
	evictionFlags
	Pod        string
	MigrateTo  []string
	Within     time.Duration
	NoWait     bool
	Timeout    time.Duration
	ThenDelete bool
	Interval   time.Duration
}

func newEvacuateCmd(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evacuate",
		Short: "Empty an EMQX node of its connections and sessions, or reopen it",
	}
	cmd.AddCommand(newEvacuatePodCmd(g), newEvacuateStopCmd(g))
	return cmd
}

func newEvacuatePodCmd(g *GlobalOptions) *cobra.Command {
	o := &EvacuateOptions{GlobalOptions: g, Interval: time.Second}
	cmd := &cobra.Command{
		Use:   "pod POD",
		Short: "Evacuate the EMQX node of a pod and wait until it is empty",
		Long: `Start EMQX's evacuation of the pod's node: it first fails its health check for
--wait-health-check while still accepting clients, then disconnects --conn-evict-rate clients a
second, waits --wait-takeover for them to take their sessions over elsewhere, and migrates the
remaining sessions at --sess-evict-rate a second to the other nodes (or --migrate-to). The node
then refuses new clients until 'kubectl emqx evacuate stop'. If the node is already evacuating,
this only watches it. Interrupting leaves the evacuation running and says how to undo it.`,
		Example: `  kubectl emqx evacuate pod emqx-2 -n mqtt
  kubectl emqx evacuate pod emqx-2 -n mqtt --within 5m --then-delete
  kubectl emqx evacuate pod emqx-2 -n mqtt --conn-evict-rate 100 --wait-takeover 30s --migrate-to emqx-0 --migrate-to emqx-1
  kubectl emqx evacuate pod emqx-2 --emqx-url http://127.0.0.1:18083 --api-key KEY --api-secret SECRET`,
		Args:              exactlyOne("POD"),
		ValidArgsFunction: completePods(g),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	o.evictionFlags.add(f, "")
	f.StringSliceVar(&o.MigrateTo, "migrate-to", nil, "pods (or, with --emqx-url, nodes) that receive the sessions; default: every other node")
	f.DurationVar(&o.Within, "within", 0, "choose the eviction rates so the node is empty within this time (after the waits)")
	f.BoolVar(&o.NoWait, "no-wait", false, "start the evacuation and return")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up waiting after this long (the evacuation keeps going)")
	f.BoolVar(&o.ThenDelete, "then-delete", false, "delete the pod once its node is empty")
	f.DurationVar(&o.Interval, "interval", o.Interval, "how often to poll EMQX")
	return cmd
}

func exactlyOne(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("want exactly one %s argument, got %d", what, len(args))
		}
		return nil
	}
}

// Complete records the pod and which flags were given.
func (o *EvacuateOptions) Complete(cmd *cobra.Command, args []string) error {
	o.Pod = args[0]
	o.record(cmd)
	return nil
}

// Validate checks the flags.
func (o *EvacuateOptions) Validate() error {
	if err := o.GlobalOptions.Validate(); err != nil {
		return err
	}
	if err := o.evictionFlags.validate(); err != nil {
		return err
	}
	switch {
	case o.Within < 0 || o.Timeout <= 0 || o.Interval <= 0:
		return errors.New("--within cannot be negative; --timeout and --interval must be positive")
	case o.Within > 0 && (o.set["conn-evict-rate"] || o.set["sess-evict-rate"]):
		return errors.New("--within computes the rates: give it or --conn-evict-rate/--sess-evict-rate, not both")
	case o.ThenDelete && o.NoWait:
		return errors.New("--then-delete waits for the node to be empty; it cannot go with --no-wait")
	case o.ThenDelete && o.direct():
		return errors.New("--then-delete deletes a pod: it needs Kubernetes access, not --emqx-url")
	}
	return nil
}

// request builds EMQX's request from the flags, resolving --migrate-to pods to nodes. Without
// --migrate-to, the sessions go to every node EMQX accepts as a target (evacuation.Targets).
func (o *EvacuateOptions) request(ctx context.Context, t *target, node emqx.Node, g emqx.GlobalStatus) (emqx.EvacuationRequest, error) {
	req := o.evacuationRequest()
	if o.Within > 0 {
		c, s, ok := evacuation.RatesWithin(o.Within, o.waits(), node.LiveConnections, node.Connections)
		if !ok {
			return req, fmt.Errorf("--within %v leaves no time after the waits (%v health check + %v takeover); lower --wait-health-check/--wait-takeover or raise --within",
				o.Within, o.WaitHealth, o.WaitTake)
		}
		req.ConnEvictRate, req.SessEvictRate = &c, &s
	}
	nodes, err := t.conn.Nodes(ctx)
	if err != nil {
		return req, err
	}
	available := evacuation.Targets(nodes, g, map[string]bool{node.Node: true})
	if len(o.MigrateTo) == 0 {
		if len(available) == 0 {
			return req, fmt.Errorf("no other EMQX node can take the sessions of %s (EMQX takes only running nodes that are not evacuating and not a rebalance donor); scale up first", o.Pod)
		}
		req.MigrateTo = available
		return req, nil
	}
	for _, m := range o.MigrateTo {
		n, err := t.nodeOf(ctx, m)
		if err != nil {
			return req, fmt.Errorf("--migrate-to %s: %w", m, err)
		}
		if n.Node == node.Node {
			return req, fmt.Errorf("--migrate-to %s is the node being evacuated", m)
		}
		if !slices.Contains(available, n.Node) {
			return req, fmt.Errorf("--migrate-to %s: EMQX would refuse it (it takes only running nodes that are not evacuating and not a rebalance donor); choose among %s",
				m, safe(strings.Join(podLabels(t, available), ", ")))
		}
		req.MigrateTo = append(req.MigrateTo, n.Node)
	}
	return req, nil
}

// Run starts (or joins) the evacuation and waits for it.
func (o *EvacuateOptions) Run(ctx context.Context) error {
	t, node, err := o.resolvePod(ctx, o.Pod)
	if err != nil {
		return err
	}
	defer t.Close()
	u := o.ui()
	g, err := t.conn.GlobalStatus(ctx)
	if err != nil {
		return err
	}
	if _, running := g.Evacuation(node.Node); running {
		fmt.Fprintf(o.ErrOut, "EMQX node %s is already evacuating; watching it\n", safe(node.Node))
	} else {
		req, err := o.request(ctx, t, node, g)
		if err != nil {
			return err
		}
		if err := t.conn.StartEvacuation(ctx, node.Node, req); err != nil {
			if !emqx.IsAlreadyStarted(err) {
				return fmt.Errorf("start evacuating %s: %w", o.Pod, err)
			}
		} else {
			fmt.Fprintf(o.ErrOut, "evacuation of %s (EMQX node %s) started: %d connections, %d sessions\n",
				o.Pod, safe(node.Node), node.LiveConnections, node.Connections)
		}
	}
	undo := fmt.Sprintf("kubectl emqx evacuate stop %s%s", o.Pod, t.nsFlag())
	if o.NoWait {
		fmt.Fprintf(o.Out, "evacuating %s; watch with: kubectl emqx status%s; undo with: %s\n", o.Pod, t.nsFlag(), undo)
		return nil
	}
	deadline := o.Clock.Now().Add(o.Timeout)
	ev, err := waitEvacuated(ctx, o.Clock, o.Interval, deadline, t, u, []emqx.Node{node}, o.waits())
	if err != nil {
		return stillRunning(ctx, err, fmt.Sprintf("EMQX node %s is still evacuating (state %s); it goes on without this command. Undo with: %s",
			safe(node.Node), ev[node.Node].State, undo), o.Timeout)
	}
	fmt.Fprintf(o.Out, "%s %s is empty: its EMQX node refuses new clients until: %s\n", u.green("evacuated:"), o.Pod, undo)
	if o.ThenDelete {
		if err := t.kube.CoreV1().Pods(t.ns).Delete(ctx, o.Pod, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("node evacuated, but deleting pod %s failed: %w", o.Pod, err)
		}
		fmt.Fprintf(o.Out, "pod %s deleted\n", o.Pod)
	}
	return nil
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

// waitEvacuated polls global_status until every node's evacuation is done, showing progress (one
// bar per node on a terminal). It returns the last evacuation seen of each node.
func waitEvacuated(ctx context.Context, clk clock.WithTicker, interval time.Duration, deadline time.Time, t *target, u *ui, nodes []emqx.Node, w evacuation.Waits) (map[string]emqx.Evacuation, error) {
	last := map[string]emqx.Evacuation{}
	view := newEvacuationView(u, t.podLabel)
	defer view.close()
	err := poll(ctx, clk, interval, deadline, func() (bool, error) {
		gs, err := t.conn.GlobalStatus(ctx)
		if err != nil {
			return false, err
		}
		done := true
		ps := make([]evacuation.Progress, 0, len(nodes))
		for _, n := range nodes {
			ev, ok := gs.Evacuation(n.Node)
			if !ok {
				return false, fmt.Errorf("the evacuation of %s is gone: someone stopped it, or the node restarted without its data", safe(n.Node))
			}
			last[n.Node] = ev
			p := evacuation.ProgressOf(ev, w)
			done = done && p.Done
			ps = append(ps, p)
		}
		view.show(ps)
		return done, nil
	})
	return last, err
}

// EvacuateStopOptions are the flags of `kubectl emqx evacuate stop`.
type EvacuateStopOptions struct {
	*GlobalOptions
	Pod string
}

func newEvacuateStopCmd(g *GlobalOptions) *cobra.Command {
	o := &EvacuateStopOptions{GlobalOptions: g}
	return &cobra.Command{
		Use:   "stop POD",
		Short: "Stop the evacuation of a pod's EMQX node: it accepts clients again",
		Example: `  kubectl emqx evacuate stop emqx-2 -n mqtt
  kubectl emqx evacuate stop emqx@emqx-2.emqx-headless.mqtt.svc.cluster.local --emqx-url http://127.0.0.1:18083`,
		Args:              exactlyOne("POD"),
		ValidArgsFunction: completePods(g),
		RunE:              runE(o),
	}
}

// Complete takes the pod.
func (o *EvacuateStopOptions) Complete(_ *cobra.Command, args []string) error {
	o.Pod = args[0]
	return nil
}

// Validate checks the shared flags.
func (o *EvacuateStopOptions) Validate() error { return o.GlobalOptions.Validate() }

// Run stops the evacuation.
func (o *EvacuateStopOptions) Run(ctx context.Context) error {
	t, node, err := o.resolvePod(ctx, o.Pod)
	if err != nil {
		return err
	}
	defer t.Close()
	err = t.conn.StopEvacuation(ctx, node.Node)
	switch {
	case emqx.IsNotStarted(err):
		fmt.Fprintf(o.Out, "%s (EMQX node %s) was not evacuating; nothing to do\n", o.Pod, safe(node.Node))
		return nil
	case err != nil:
		return fmt.Errorf("stop the evacuation of %s: %w", o.Pod, err)
	}
	fmt.Fprintf(o.Out, "evacuation of %s stopped: EMQX node %s accepts clients again\n", o.Pod, safe(node.Node))
	return nil
}

// podLabels names nodes by their pods where there are pods.
func podLabels(t *target, nodes []string) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = t.podLabel(n)
	}
	return out
}
