package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/status"
)

// StatusOptions are the flags of `kubectl emqx status`.
type StatusOptions struct {
	*GlobalOptions
	Cluster   string
	All       bool // -A: every EMQX cluster of every namespace
	Output    string
	NoHeaders bool
	Watch     bool
	Interval  time.Duration
}

func newStatusCmd(g *GlobalOptions) *cobra.Command {
	o := &StatusOptions{GlobalOptions: g, Interval: 2 * time.Second}
	cmd := &cobra.Command{
		Use:   "status [CLUSTER]",
		Short: "Show each EMQX pod's node, load, and evacuation or rebalance state",
		Long: `Show one row per EMQX pod: its EMQX node, role, readiness, live connections, sessions,
evacuation or rebalance state and its share of the cluster's connections; then cluster totals and
any running rebalance. CLUSTER is needed only when the namespace holds more than one EMQX cluster.`,
		Example: `  kubectl emqx status -n mqtt
  kubectl emqx status emqx -n mqtt -o json
  kubectl emqx status -n mqtt -o wide
  kubectl emqx status -n mqtt -o jsonpath='{.connections}'
  kubectl emqx status -n mqtt --watch
  kubectl emqx status -A
  kubectl emqx status --emqx-url http://127.0.0.1:18083 --username admin --password public`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeClusters(g),
		RunE:              runE(o),
	}
	addOutputFlag(cmd, &o.Output, "wide")
	cmd.Flags().BoolVarP(&o.All, "all-namespaces", "A", false, "every EMQX cluster of every namespace")
	cmd.Flags().BoolVar(&o.NoHeaders, "no-headers", false, "omit the table header")
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "refresh until interrupted")
	cmd.Flags().DurationVar(&o.Interval, "interval", o.Interval, "refresh interval with --watch")
	return cmd
}

// Complete takes the arguments.
func (o *StatusOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.Cluster = args[0]
	}
	return nil
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error {
	if err := o.GlobalOptions.Validate(); err != nil {
		return err
	}
	if o.Interval <= 0 {
		return fmt.Errorf("--interval must be positive, got %v", o.Interval)
	}
	switch {
	case o.All && o.Cluster != "":
		return fmt.Errorf("--all-namespaces takes no CLUSTER (got %q): it shows every cluster", o.Cluster)
	case o.All && o.Watch:
		return errors.New("--all-namespaces cannot go with --watch: watch one namespace's cluster")
	case o.All && o.EMQXURL != "":
		return errors.New("--all-namespaces needs Kubernetes access, not --emqx-url: it finds the clusters there")
	}
	return validatePrinter(o.Output, "wide")
}

// table reports whether -o asks for the status table (plain or wide) rather than an object.
func (o *StatusOptions) table() bool { return o.Output == "" || o.Output == "wide" }

// statusObject is a report as the object -o prints: kind ClusterStatus, named for its cluster
// (with --emqx-url, for EMQX's address).
func (o *StatusOptions) statusObject(r status.Report) (*unstructured.Unstructured, error) {
	name := r.Cluster
	if name == "" {
		name = o.EMQXURL
	}
	return object("ClusterStatus", r.Namespace, name, r)
}

// Run prints the status, once or until interrupted.
func (o *StatusOptions) Run(ctx context.Context) error {
	a, err := o.access()
	if err != nil {
		return err
	}
	if o.All {
		return o.runAll(ctx, a)
	}
	u := o.ui()
	st := ops.Status{Cluster: o.Cluster, Watch: o.Watch, Waiting: o.waiting(o.Interval, 0)}
	return st.Run(ctx, a, func(r status.Report, first bool) error {
		if !first {
			separate(u, o.table())
		}
		if !o.table() {
			obj, err := o.statusObject(r)
			if err != nil {
				return err
			}
			return printObject(o.Out, o.Output, obj)
		}
		printReport(u, o.Out, r, o.NoHeaders, o.Output == "wide")
		return nil
	})
}

// separate comes between two reports of --watch: a table on a terminal is redrawn in place (Out is
// that terminal, whatever ErrOut is), anything else follows after a blank line.
func separate(u *ui, table bool) {
	if u.outTTY && table {
		fmt.Fprint(u.out, "\033[H\033[2J")
		return
	}
	fmt.Fprintln(u.out)
}

// printReport writes the status table, totals and rebalances.
func printReport(u *ui, w io.Writer, r status.Report, noHeaders, wide bool) {
	tw := newTable(w)
	if !noHeaders {
		fmt.Fprintf(tw, "POD\tNODE\tROLE\tREADY\tCONNECTIONS\tSESSIONS\t%s\tSHARE%s\n", u.plainCell("STATE"),
			wideHeader(wide))
	}
	for _, row := range rows(u, r, wide) {
		fmt.Fprintln(tw, row)
	}
	if !noHeaders {
		fmt.Fprintf(tw, "TOTAL\t\t\t\t%d\t%d\t%s\t\n", r.Connections, r.Sessions, u.plainCell(""))
	}
	_ = tw.Flush()
	notes(u, w, r, "")
}

// wideHeader is -o wide's further columns' header.
func wideHeader(wide bool) string {
	if !wide {
		return ""
	}
	return "\tVERSION\tUPTIME\tKUBE NODE\tIP"
}

// rows are the report's table rows, their cells separated by tabs; wide adds EMQX's release and
// uptime, the pod's Kubernetes node and IP.
func rows(u *ui, r status.Report, wide bool) []string {
	var out []string
	for _, row := range r.Rows {
		ready := "-"
		if row.Ready != nil {
			ready = fmt.Sprint(*row.Ready)
		}
		st, paintState := safe(row.State), u.plainCell // EMQX's words: escaped before they reach a terminal
		switch {
		case row.NodeStatus == "missing":
			st, paintState = "no EMQX node", u.yellow
		case row.NodeStatus != "running":
			st, paintState = safe(row.NodeStatus), u.red
		case strings.HasPrefix(st, "evacuat"), st == "prohibiting":
			paintState = u.yellow
		case st == "":
			st = "-"
		}
		st = paintState(st)
		conns, sess := fmt.Sprint(row.Connections), fmt.Sprint(row.Sessions)
		if row.NodeStatus != "running" {
			conns, sess = "-", "-" // a stopped or missing node reports no counts: it holds nothing we know of
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s %3.0f%%",
			orDash(safe(row.Pod)), orDash(safe(row.Node)), orDash(safe(row.Role)), ready, conns, sess, st,
			bar(row.Share, 20), row.Share*100)
		if wide {
			uptime := "-"
			if row.Uptime > 0 {
				uptime = duration.HumanDuration(time.Duration(row.Uptime) * time.Second)
			}
			line += fmt.Sprintf("\t%s\t%s\t%s\t%s", orDash(safe(row.Version)), uptime, orDash(safe(row.KubeNode)),
				orDash(safe(row.PodIP)))
		}
		out = append(out, line)
	}
	return out
}

// notes writes what follows a cluster's table: its automatic rebalance, warnings, the webhook's
// access and running rebalances, each line after prefix.
func notes(u *ui, w io.Writer, r status.Report, prefix string) {
	if r.AutoRebalance != "" {
		fmt.Fprintf(w, "\n%s%s %s\n", prefix, u.bold("Automatic rebalance:"), safe(r.AutoRebalance))
	}
	if r.Warning != "" {
		fmt.Fprintf(w, "\n%s%s %s\n", prefix, u.yellow("Warning:"), safe(r.Warning))
	}
	if r.WebhookAccess != "" {
		fmt.Fprintf(w, "\n%s%s %s\n", prefix, u.red("emqx-webhook cannot use this cluster's API:"),
			safe(r.WebhookAccess))
	}
	for _, rb := range r.Rebalances {
		fmt.Fprintf(
			w,
			"\n%s%s coordinated by %s, state %s\n  donors:     %s\n  recipients: %s\n",
			prefix,
			u.bold("Rebalance"),
			safe(rb.Coordinator),
			safe(rb.State),
			safe(strings.Join(rb.Donors, ", ")),
			safe(strings.Join(rb.Recipients, ", ")),
		)
		if rb.ConnectionGoal != nil && rb.DonorConnAvg != nil {
			fmt.Fprintf(w, "  donors average %.0f connections, recipients %.0f\n", *rb.DonorConnAvg, *rb.ConnectionGoal)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runAll prints every cluster of every namespace: one table with the namespace and cluster of
// each pod, each cluster's notes after it; a cluster that could not be read is named on stderr,
// and the command then fails.
func (o *StatusOptions) runAll(ctx context.Context, a ops.Access) error {
	all, err := ops.StatusAll{}.Run(ctx, a)
	if err != nil {
		return err
	}
	u := o.ui()
	var failed []string
	var reports []status.Report
	for _, c := range all {
		if c.Err != nil {
			failed = append(failed, c.Namespace+"/"+c.Cluster)
			fmt.Fprintf(o.ErrOut, "%s %s/%s: %s\n", u.red("error:"), safe(c.Namespace), safe(c.Cluster),
				safe(c.Err.Error()))
			continue
		}
		reports = append(reports, c.Report)
	}
	switch {
	case !o.table():
		var objs []*unstructured.Unstructured
		for _, r := range reports {
			obj, err := o.statusObject(r)
			if err != nil {
				return err
			}
			objs = append(objs, obj)
		}
		if err := printObject(o.Out, o.Output, list(objs)); err != nil {
			return err
		}
	case len(all) == 0:
		fmt.Fprintln(o.ErrOut, "no EMQX cluster in any namespace")
	default:
		printAll(u, o.Out, reports, o.NoHeaders, o.Output == "wide")
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not read %d of %d EMQX clusters: %s", len(failed), len(all),
			strings.Join(failed, ", "))
	}
	return nil
}

// printAll writes one table of every cluster's pods, then each cluster's notes.
func printAll(u *ui, w io.Writer, reports []status.Report, noHeaders, wide bool) {
	tw := newTable(w)
	if !noHeaders {
		fmt.Fprintf(tw, "NAMESPACE\tCLUSTER\tPOD\tNODE\tROLE\tREADY\tCONNECTIONS\tSESSIONS\t%s\tSHARE%s\n",
			u.plainCell("STATE"), wideHeader(wide))
	}
	for _, r := range reports {
		for _, row := range rows(u, r, wide) {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", safe(r.Namespace), safe(r.Cluster), row)
		}
	}
	_ = tw.Flush()
	for _, r := range reports {
		notes(u, w, r, safe(r.Namespace)+"/"+safe(r.Cluster)+": ")
	}
}
