package plugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
)

// RebalanceOptions are the flags of `kubectl emqx rebalance`.
type RebalanceOptions struct {
	*GlobalOptions
	evictionFlags
	Cluster    string
	Nodes      []string
	Thresholds evacuation.Thresholds
	DryRun     bool
	Output     string // -o: the result as an object
	NoWait     bool
	Timeout    time.Duration
	Interval   time.Duration
}

// ErrNotBalanced is returned when a rebalance ended without reaching balance.
var ErrNotBalanced = errors.New(
	"the rebalance ended without reaching balance: it was aborted (a node went down) or stopped",
)

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
  kubectl emqx rebalance -n mqtt --abs-conn-threshold 100 --rel-conn-threshold 1.1 \
    --wait-health-check 10s --wait-takeover 10s
  kubectl emqx rebalance emqx -n mqtt --nodes emqx-0,emqx-3 --conn-evict-rate 50
  kubectl emqx rebalance stop -n mqtt`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeClusters(g),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	f.StringSliceVar(
		&o.Nodes,
		"nodes",
		nil,
		"pods (or, with --emqx-url, nodes) taking part; default: every running node not evacuating",
	)
	_ = cmd.RegisterFlagCompletionFunc("nodes", completePods(g))
	o.evictionFlags.add(f, "donors: ")
	f.Int64Var(
		&o.Thresholds.AbsConn,
		"abs-conn-threshold",
		o.Thresholds.AbsConn,
		"balanced when donors average at most this many connections above recipients",
	)
	f.Float64Var(
		&o.Thresholds.RelConn,
		"rel-conn-threshold",
		o.Thresholds.RelConn,
		"... or at most this factor of them (> 1.0)",
	)
	f.Int64Var(
		&o.Thresholds.AbsSess,
		"abs-sess-threshold",
		o.Thresholds.AbsSess,
		"the same for sessions: absolute difference",
	)
	f.Float64Var(
		&o.Thresholds.RelSess,
		"rel-sess-threshold",
		o.Thresholds.RelSess,
		"the same for sessions: factor (> 1.0)",
	)
	f.BoolVar(
		&o.DryRun,
		"dry-run",
		false,
		"print donors, recipients and the connections expected to move; start nothing",
	)
	f.BoolVar(&o.NoWait, "no-wait", false, "start the rebalance and return")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up waiting after this long (the rebalance keeps going)")
	f.DurationVar(&o.Interval, "interval", o.Interval, "how often to poll EMQX")
	addOutputFlag(cmd, &o.Output)
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
	return validatePrinter(o.Output)
}

func (o *RebalanceOptions) request() emqx.RebalanceRequest {
	e := o.evacuationRequest()
	return emqx.RebalanceRequest{
		ConnEvictRate:    e.ConnEvictRate,
		SessEvictRate:    e.SessEvictRate,
		WaitHealthCheck:  e.WaitHealthCheck,
		WaitTakeover:     e.WaitTakeover,
		AbsConnThreshold: given(&o.evictionFlags, "abs-conn-threshold", &o.Thresholds.AbsConn),
		RelConnThreshold: given(&o.evictionFlags, "rel-conn-threshold", &o.Thresholds.RelConn),
		AbsSessThreshold: given(&o.evictionFlags, "abs-sess-threshold", &o.Thresholds.AbsSess),
		RelSessThreshold: given(&o.evictionFlags, "rel-sess-threshold", &o.Thresholds.RelSess),
	}
}

// Run plans, starts and watches the rebalance, then judges its outcome.
func (o *RebalanceOptions) Run(ctx context.Context) error {
	a, err := o.access()
	if err != nil {
		return err
	}
	rep, start := newReporter(o.GlobalOptions, o.Output), o.Clock.Now()
	b := ops.Rebalance{
		Cluster:    o.Cluster,
		Nodes:      o.Nodes,
		Thresholds: o.Thresholds,
		Request:    o.request(),
		DryRun:     o.DryRun,
		NoWait:     o.NoWait,
		Waiting:    o.waiting(o.Interval, o.Timeout),
	}
	res, err := b.Run(ctx, a, rep)
	rep.close()
	if err == nil && o.Output != "" {
		return printRebalanceResult(o.Out, o.Output, a.Namespace, o.Cluster,
			newRebalanceResult(res, rep.plan, o.Clock.Since(start)))
	}
	return printRebalance(o.ui(), o.Out, res, err)
}

// printRebalanceResult prints a rebalance's result object; one that did not reach balance is
// ErrNotBalanced, as in the table.
func printRebalanceResult(w io.Writer, format, namespace, name string, r rebalanceResult) error {
	if name == "" {
		name = "emqx"
	}
	obj, err := object("RebalanceResult", namespace, name, r)
	if err != nil {
		return err
	}
	if err := printObject(w, format, obj); err != nil {
		return err
	}
	if r.Outcome == "NotBalanced" || r.Outcome == "NodeLost" {
		return ErrNotBalanced
	}
	return nil
}

// printRebalance prints how a rebalance ended: started and left running, or the final counts and
// the verdict (ErrNotBalanced when it ended without reaching balance).
func printRebalance(u *ui, out io.Writer, res ops.RebalanceResult, err error) error {
	switch {
	case err != nil:
		return err
	case res.NothingToBalance:
		fmt.Fprintf(
			out,
			"%s EMQX says there is nothing to balance: the nodes are within the thresholds\n",
			u.green("balanced:"),
		)
		return nil
	case res.Started && !res.Waited:
		fmt.Fprintf(out, "rebalancing; watch with: %s; stop with: %s\n", res.Watch, res.Stop)
		return nil
	case !res.Waited:
		return nil // a dry run: the plan is printed
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "NODE\tROLE\tCONNECTIONS\tSESSIONS")
	for _, c := range res.Donors {
		fmt.Fprintf(tw, "%s\tdonor\t%d\t%d\n", safe(c.Pod), c.Conns, c.Sessions)
	}
	for _, c := range res.Recipients {
		fmt.Fprintf(tw, "%s\trecipient\t%d\t%d\n", safe(c.Pod), c.Conns, c.Sessions)
	}
	_ = tw.Flush()
	switch {
	case res.Lost:
		fmt.Fprintf(out, "%s a node taking part is no longer running\n", u.red("not balanced:"))
		return ErrNotBalanced
	case !res.Balanced:
		fmt.Fprintf(out, "%s donors still hold more than the thresholds allow\n", u.red("not balanced:"))
		return ErrNotBalanced
	}
	var counts []evacuation.Count
	for _, c := range append(slices.Clone(res.Donors), res.Recipients...) {
		counts = append(counts, c.Count)
	}
	fmt.Fprintf(
		out,
		"%s the donors are within the thresholds of the recipients (%s)\n",
		u.green("balanced:"),
		spread(counts),
	)
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
			a, err := g.access()
			if err != nil {
				return err
			}
			stopped, err := ops.StopRebalance(cmd.Context(), a, name)
			for _, c := range stopped {
				fmt.Fprintf(g.Out, "rebalance coordinated by %s stopped: its donors accept clients again\n", safe(c))
			}
			if err == nil && len(stopped) == 0 {
				fmt.Fprintln(g.Out, "no rebalance is running; nothing to do")
			}
			return err
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
