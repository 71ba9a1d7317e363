package plugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// RebalanceOptions are the flags of `kubectl emqx rebalance`.
type RebalanceOptions struct {
	*GlobalOptions
	evictionFlags
	Cluster    string
	Nodes      []string
	Thresholds evacuation.Thresholds
	DryRun     bool
	NoWait     bool
	Timeout    time.Duration
	Interval   time.Duration
}

// ErrNotBalanced is returned when a rebalance ended without reaching balance.
var ErrNotBalanced = errors.New("the rebalance ended without reaching balance: it was aborted (a node went down) or stopped")

func newRebalanceCmd(g *GlobalOptions) *cobra.Command {
	o := &RebalanceOptions{GlobalOptions: g, Thresholds: evacuation.DefaultThresholds, Interval: time.Second}
	cmd := &cobra.Command{
		Use:   "rebalance [CLUSTER]",
		Short: "Move connections and sessions from loaded EMQX nodes to the others, and wait for balance",
		Long: `Start EMQX's rebalance across the cluster's running, non-evacuating nodes (or --nodes):
nodes with at least the average connection count are donors, the others recipients. Donors fail
their health check for --wait-health-check, then disconnect clients at --conn-evict-rate a second
until their average is within --abs-conn-threshold or --rel-conn-threshold of the recipients',
wait --wait-takeover, and migrate disconnected sessions the same way. Clients reconnect through
the load balancer to the recipients. EMQX keeps no record of a finished run, so this command
judges the end itself from the final counts: "balanced" (exit 0), or "ended without reaching
balance" (exit 2). A cluster already within the thresholds is reported as balanced. Small
clusters need smaller thresholds than EMQX's defaults (1000 connections).`,
		Example: `  kubectl emqx rebalance -n mqtt --dry-run
  kubectl emqx rebalance -n mqtt --abs-conn-threshold 100 --rel-conn-threshold 1.1 --wait-health-check 10s --wait-takeover 10s
  kubectl emqx rebalance emqx -n mqtt --nodes emqx-0,emqx-3 --conn-evict-rate 50
  kubectl emqx rebalance stop -n mqtt`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeClusters(g),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Nodes, "nodes", nil, "pods (or, with --emqx-url, nodes) taking part; default: every running node not evacuating")
	o.evictionFlags.add(f, "donors: ")
	f.Int64Var(&o.Thresholds.AbsConn, "abs-conn-threshold", o.Thresholds.AbsConn, "balanced when donors average at most this many connections above recipients")
	f.Float64Var(&o.Thresholds.RelConn, "rel-conn-threshold", o.Thresholds.RelConn, "... or at most this factor of them (> 1.0)")
	f.Int64Var(&o.Thresholds.AbsSess, "abs-sess-threshold", o.Thresholds.AbsSess, "the same for sessions: absolute difference")
	f.Float64Var(&o.Thresholds.RelSess, "rel-sess-threshold", o.Thresholds.RelSess, "the same for sessions: factor (> 1.0)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print donors, recipients and the connections expected to move; start nothing")
	f.BoolVar(&o.NoWait, "no-wait", false, "start the rebalance and return")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up waiting after this long (the rebalance keeps going)")
	f.DurationVar(&o.Interval, "interval", o.Interval, "how often to poll EMQX")
	cmd.AddCommand(newRebalanceStopCmd(g))
	return cmd
}

// Complete takes the arguments and records which flags were given.
func (o *RebalanceOptions) Complete(cmd *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Cluster = args[0]
	}
	o.record(cmd)
	return nil
}

// Validate checks the flags (the same rules EMQX applies, before anything is sent).
func (o *RebalanceOptions) Validate() error {
	if err := o.GlobalOptions.Validate(); err != nil {
		return err
	}
	if err := o.evictionFlags.validate(); err != nil {
		return err
	}
	switch {
	case o.Thresholds.AbsConn < 1 || o.Thresholds.AbsSess < 1:
		return errors.New("--abs-conn-threshold and --abs-sess-threshold must be at least 1")
	case !(o.Thresholds.RelConn > 1) || !(o.Thresholds.RelSess > 1):
		return errors.New("--rel-conn-threshold and --rel-sess-threshold must be greater than 1.0 (EMQX rejects 1.0)")
	case o.Timeout <= 0 || o.Interval <= 0:
		return errors.New("--timeout and --interval must be positive")
	case o.DryRun && o.NoWait:
		return errors.New("--dry-run starts nothing; --no-wait does not go with it")
	}
	return nil
}

// connRate is the connection eviction rate the rebalance runs with.
func (o *RebalanceOptions) connRate() int64 {
	if r := o.evacuationRequest().ConnEvictRate; r != nil {
		return *r
	}
	return evacuation.DefaultRate
}

func (o *RebalanceOptions) request(nodes []string) emqx.RebalanceRequest {
	e := o.evacuationRequest()
	return emqx.RebalanceRequest{
		Nodes: nodes, ConnEvictRate: e.ConnEvictRate, SessEvictRate: e.SessEvictRate, WaitHealthCheck: e.WaitHealthCheck, WaitTakeover: e.WaitTakeover,
		AbsConnThreshold: given(&o.evictionFlags, "abs-conn-threshold", &o.Thresholds.AbsConn),
		RelConnThreshold: given(&o.evictionFlags, "rel-conn-threshold", &o.Thresholds.RelConn),
		AbsSessThreshold: given(&o.evictionFlags, "abs-sess-threshold", &o.Thresholds.AbsSess),
		RelSessThreshold: given(&o.evictionFlags, "rel-sess-threshold", &o.Thresholds.RelSess),
	}
}

// Run plans, starts and watches the rebalance, then judges its outcome.
func (o *RebalanceOptions) Run(ctx context.Context) error {
	t, err := o.resolve(ctx, o.Cluster)
	if err != nil {
		return err
	}
	defer t.Close()
	u := o.ui()
	nodes, err := t.conn.Nodes(ctx)
	if err != nil {
		return err
	}
	g, err := t.conn.GlobalStatus(ctx)
	if err != nil {
		return err
	}
	if len(g.Rebalances) > 0 {
		rb := g.Rebalances[0]
		fmt.Fprintf(o.ErrOut, "a rebalance coordinated by %s is already running; watching it\n", safe(t.podLabel(rb.CoordinatorNode)))
		return o.watch(ctx, t, u, rb.CoordinatorNode, rb.Donors, rb.Recipients)
	}
	participants, err := o.participants(ctx, t, nodes, g)
	if err != nil {
		return err
	}
	var counts []evacuation.Count
	for _, n := range participants {
		counts = append(counts, evacuation.CountOf(n))
	}
	plan := evacuation.PlanRebalance(counts, o.Thresholds)
	o.printPlan(u, t, plan)
	if o.DryRun {
		return nil
	}
	coord, err := o.coordinator(t, participants)
	if err != nil {
		return err
	}
	var names []string
	for _, n := range participants {
		names = append(names, n.Node)
	}
	err = t.conn.StartRebalance(ctx, coord, o.request(names))
	switch {
	case emqx.IsNothingToBalance(err):
		fmt.Fprintf(o.Out, "%s EMQX says there is nothing to balance: the nodes are within the thresholds\n", u.green("balanced:"))
		return nil
	case err != nil:
		return fmt.Errorf("start the rebalance: %w", err)
	}
	fmt.Fprintf(o.ErrOut, "rebalance started, coordinated by %s\n", safe(t.podLabel(coord)))
	if o.NoWait {
		fmt.Fprintf(o.Out, "rebalancing; watch with: kubectl emqx status%s; stop with: kubectl emqx rebalance stop%s\n", t.nsFlag(), t.nsFlag())
		return nil
	}
	var donors, recipients []string
	for _, c := range plan.Donors {
		donors = append(donors, c.Node)
	}
	for _, c := range plan.Recipients {
		recipients = append(recipients, c.Node)
	}
	return o.watch(ctx, t, u, coord, donors, recipients)
}

// participants are the --nodes, or every running node that is not evacuating.
func (o *RebalanceOptions) participants(ctx context.Context, t *target, nodes []emqx.Node, g emqx.GlobalStatus) ([]emqx.Node, error) {
	if len(o.Nodes) > 0 {
		var out []emqx.Node
		for _, name := range o.Nodes {
			n, err := t.nodeOf(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("--nodes %s: %w", name, err)
			}
			out = append(out, n)
		}
		return out, nil
	}
	var out []emqx.Node
	for _, n := range nodes {
		if _, evacuating := g.Evacuation(n.Node); n.Running() && !evacuating {
			out = append(out, n)
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("a rebalance needs at least two running nodes that are not evacuating; this cluster has %d", len(out))
	}
	return out, nil
}

// coordinator picks a stable node to coordinate: a core node whose pod is Ready and not about to
// go (lowest ordinal within the StatefulSet's replicas); in direct mode, the first core node.
func (o *RebalanceOptions) coordinator(t *target, participants []emqx.Node) (string, error) {
	type cand struct {
		node    string
		ordinal int
	}
	var cands []cand
	for _, n := range participants {
		if n.Role == emqx.RoleReplicant {
			continue // replicant names change with their IP
		}
		if t.cl == nil {
			cands = append(cands, cand{n.Node, len(cands)})
			continue
		}
		p, ok := cluster.PodOfNode(t.cl.Pods, n.Node)
		if !ok || !cluster.Ready(p) {
			continue
		}
		ord, keep := ordinal(t.cl, p.Name)
		if keep {
			cands = append(cands, cand{n.Node, ord})
		}
	}
	if len(cands) == 0 {
		if len(participants) > 0 {
			return participants[0].Node, nil
		}
		return "", errors.New("no node can coordinate the rebalance")
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].ordinal < cands[j].ordinal })
	return cands[0].node, nil
}

// ordinal is a StatefulSet pod's ordinal, and whether the pod stays at the current replica count.
func ordinal(cl *cluster.Cluster, pod string) (int, bool) {
	for i := range cl.StatefulSets {
		if n, ok := cluster.Ordinal(&cl.StatefulSets[i], pod); ok {
			return int(n), cluster.Stays(&cl.StatefulSets[i], pod)
		}
	}
	return 1 << 30, true
}

func (o *RebalanceOptions) printPlan(u *ui, t *target, p evacuation.Plan) {
	fmt.Fprintln(o.Out, u.bold("Rebalance plan"))
	tw := newTable(o.Out)
	fmt.Fprintln(tw, "  NODE\tROLE\tCONNECTIONS\tSESSIONS")
	for _, group := range []struct {
		role   string
		counts []evacuation.Count
	}{{"donor", p.Donors}, {"recipient", p.Recipients}} {
		counts := slices.Clone(group.counts)
		// A stable order: by pod ordinal (emqx-2 before emqx-10), whatever order EMQX lists them in.
		slices.SortStableFunc(counts, func(a, b evacuation.Count) int { return comparePods(t.podLabel(a.Node), t.podLabel(b.Node)) })
		for _, c := range counts {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\n", safe(t.podLabel(c.Node)), group.role, c.Conns, c.Sessions)
		}
	}
	_ = tw.Flush()
	if p.Needed {
		fmt.Fprintf(o.Out, "at least %d connections to move, up to %d: EMQX evicts %d per donor each second and checks after each step (thresholds: %d or ×%.3g connections, %d or ×%.3g sessions)\n",
			p.ExpectedConnMoves, p.MostConnMoves(o.connRate()), o.connRate(), o.Thresholds.AbsConn, o.Thresholds.RelConn, o.Thresholds.AbsSess, o.Thresholds.RelSess)
	} else {
		fmt.Fprintln(o.Out, "already within the thresholds: nothing to move")
	}
}

// watch follows the rebalance until it disappears from global_status, then judges the counts.
func (o *RebalanceOptions) watch(ctx context.Context, t *target, u *ui, coord string, donors, recipients []string) error {
	p := &progress{u: u}
	err := poll(ctx, o.Clock, o.Interval, o.Clock.Now().Add(o.Timeout), func() (bool, error) {
		g, err := t.conn.GlobalStatus(ctx)
		if err != nil {
			return false, err
		}
		rb, running := g.Rebalance(coord)
		if !running {
			return true, nil
		}
		line := "rebalance " + rb.State
		if rb.DonorConnAvg != nil && rb.ConnectionGoal != nil {
			line += fmt.Sprintf(": donors average %.0f connections, recipients %.0f", *rb.DonorConnAvg, *rb.ConnectionGoal)
		}
		p.update(line)
		return false, nil
	})
	p.done()
	if err != nil {
		return stillRunning(ctx, err, fmt.Sprintf("the rebalance coordinated by %s is still running; stop it with: kubectl emqx rebalance stop%s",
			safe(t.podLabel(coord)), t.nsFlag()), o.Timeout)
	}
	nodes, err := t.conn.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("the rebalance ended; reading the final counts failed: %w", err)
	}
	pick := func(names []string) []evacuation.Count {
		var out []evacuation.Count
		for _, n := range nodes {
			for _, name := range names {
				if n.Node == name && n.Running() {
					out = append(out, evacuation.CountOf(n))
				}
			}
		}
		return out
	}
	d, r := pick(donors), pick(recipients)
	tw := newTable(o.Out)
	fmt.Fprintln(tw, "NODE\tROLE\tCONNECTIONS\tSESSIONS")
	for _, c := range d {
		fmt.Fprintf(tw, "%s\tdonor\t%d\t%d\n", safe(t.podLabel(c.Node)), c.Conns, c.Sessions)
	}
	for _, c := range r {
		fmt.Fprintf(tw, "%s\trecipient\t%d\t%d\n", safe(t.podLabel(c.Node)), c.Conns, c.Sessions)
	}
	_ = tw.Flush()
	if len(d)+len(r) < len(donors)+len(recipients) {
		fmt.Fprintf(o.Out, "%s a node taking part is no longer running\n", u.red("not balanced:"))
		return ErrNotBalanced
	}
	if !evacuation.Balanced(d, r, o.Thresholds) {
		fmt.Fprintf(o.Out, "%s donors still hold more than the thresholds allow\n", u.red("not balanced:"))
		return ErrNotBalanced
	}
	fmt.Fprintf(o.Out, "%s the donors are within the thresholds of the recipients (%s)\n", u.green("balanced:"), spread(append(slices.Clone(d), r...)))
	return nil
}

// spread says how far apart the nodes still are: EMQX's rule compares donors with the recipients'
// average, so a cluster it calls balanced can still look uneven on a dashboard (28 / 10 / 22).
func spread(counts []evacuation.Count) string {
	if len(counts) == 0 {
		return "no node"
	}
	lo, hi := counts[0].Conns, counts[0].Conns
	for _, c := range counts[1:] {
		lo, hi = min(lo, c.Conns), max(hi, c.Conns)
	}
	return fmt.Sprintf("connections per node from %d to %d: a spread of %d", lo, hi, hi-lo)
}

func newRebalanceStopCmd(g *GlobalOptions) *cobra.Command {
	return &cobra.Command{
		Use:               "stop [CLUSTER]",
		Short:             "Stop the running rebalance: donors accept clients again",
		Example:           "  kubectl emqx rebalance stop -n mqtt",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeClusters(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.Validate(); err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			ctx := cmd.Context()
			t, err := g.resolve(ctx, name)
			if err != nil {
				return err
			}
			defer t.Close()
			gs, err := t.conn.GlobalStatus(ctx)
			if err != nil {
				return err
			}
			if len(gs.Rebalances) == 0 {
				fmt.Fprintln(g.Out, "no rebalance is running; nothing to do")
				return nil
			}
			for _, rb := range gs.Rebalances {
				// A rebalance is stopped on its coordinator (API.md §3.9).
				if err := t.conn.StopRebalance(ctx, rb.CoordinatorNode); err != nil && !emqx.IsNotStarted(err) {
					return fmt.Errorf("stop the rebalance coordinated by %s: %w", t.podLabel(rb.CoordinatorNode), err)
				}
				fmt.Fprintf(g.Out, "rebalance coordinated by %s stopped: its donors accept clients again\n", safe(t.podLabel(rb.CoordinatorNode)))
			}
			return nil
		},
	}
}

// comparePods orders names by their prefix, then by the number after the last dash (a
// StatefulSet ordinal) numerically.
func comparePods(a, b string) int {
	pa, na, oka := splitOrdinal(a)
	pb, nb, okb := splitOrdinal(b)
	if pa != pb || !oka || !okb {
		return strings.Compare(a, b)
	}
	return cmp.Compare(na, nb)
}

func splitOrdinal(name string) (string, int, bool) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name, 0, false
	}
	n, err := strconv.Atoi(name[i+1:])
	return name[:i], n, err == nil
}
