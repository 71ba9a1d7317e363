package plugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
)

// ScaleOptions are the flags of `kubectl emqx scale`.
type ScaleOptions struct {
	*GlobalOptions
	evictionFlags
	Name      string
	Replicas  int32
	Rebalance bool
	Timeout   time.Duration
	Interval  time.Duration
	DryRun    bool
	Output    string // -o: the result as an object
}

func newScaleCmd(g *GlobalOptions) *cobra.Command {
	o := &ScaleOptions{GlobalOptions: g, Interval: time.Second}
	cmd := &cobra.Command{
		Use:   "scale statefulset/NAME --replicas N",
		Short: "Scale an EMQX StatefulSet without cutting live sessions",
		Long: `Scale an EMQX StatefulSet safely, with or without the webhook installed.
Scaling down evacuates the pods that will be removed (the highest ordinals) into the pods that
stay, waits until their nodes are empty, then lowers the replicas. Scaling up raises the replicas,
waits for the new nodes, reopens any of them that came back with an evacuation persisted on its
volume, and then rebalances (--rebalance) or says how to.`,
		Example: `  kubectl emqx scale statefulset/emqx --replicas 2 -n mqtt
  kubectl emqx scale statefulset/emqx --replicas 2 -n mqtt --dry-run
  kubectl emqx scale sts/emqx --replicas 2 -n mqtt --conn-evict-rate 200 --wait-takeover 20s
  kubectl emqx scale statefulset/emqx --replicas 4 -n mqtt --rebalance`,
		Args:              exactlyOne("statefulset/NAME"),
		ValidArgsFunction: completeStatefulSets(g),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	f.Int32Var(&o.Replicas, "replicas", -1, "the new number of replicas (required)")
	o.evictionFlags.add(f, "scale-down: ")
	f.BoolVar(
		&o.Rebalance,
		"rebalance",
		false,
		"scale-up: rebalance onto the new nodes afterwards (EMQX's default thresholds)",
	)
	f.BoolVar(&o.DryRun, "dry-run", false, "print which pods would go, where their clients would move and about how "+
		"long it would take; change nothing")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up waiting after this long")
	f.DurationVar(&o.Interval, "interval", o.Interval, "how often to poll")
	addOutputFlag(cmd, &o.Output)
	return cmd
}

// Complete reads statefulset/NAME.
func (o *ScaleOptions) Complete(cmd *cobra.Command, args []string) error {
	kind, name, ok := strings.Cut(args[0], "/")
	if !ok {
		kind, name = "statefulset", args[0]
	}
	switch strings.ToLower(kind) {
	case "statefulset", "statefulsets", "sts", "statefulset.apps":
	default:
		return fmt.Errorf("kubectl emqx scale scales StatefulSets, not %q; write statefulset/NAME", kind)
	}
	o.Name = name
	o.record(cmd)
	return nil
}

// Validate checks the flags.
func (o *ScaleOptions) Validate() error {
	if err := o.GlobalOptions.Validate(); err != nil {
		return err
	}
	if err := o.evictionFlags.validate(); err != nil {
		return err
	}
	switch {
	case o.direct():
		return errors.New("kubectl emqx scale changes a StatefulSet: it needs Kubernetes access, not --emqx-url")
	case o.Replicas < 0:
		return errors.New("--replicas is required and cannot be negative")
	case o.Timeout <= 0 || o.Interval <= 0:
		return errors.New("--timeout and --interval must be positive")
	}
	return validatePrinter(o.Output)
}

// Run scales.
func (o *ScaleOptions) Run(ctx context.Context) error {
	a, err := o.access()
	if err != nil {
		return err
	}
	u, rep, start := o.ui(), newReporter(o.GlobalOptions, o.Output), o.Clock.Now()
	sc := ops.Scale{
		Name:     o.Name,
		Replicas: o.Replicas,
		Request:  o.evacuationRequest(),
		DryRun:   o.DryRun,
		Waiting:  o.waiting(o.Interval, o.Timeout),
	}
	if o.Rebalance {
		sc.Rebalance = &ops.Rebalance{Thresholds: evacuation.DefaultThresholds, Waiting: sc.Waiting}
	}
	res, err := sc.Run(ctx, a, rep)
	rep.close()
	switch {
	case err != nil && res.Rebalance == nil:
		return err
	case o.Output != "":
		r := newScaleResult(res, o.DryRun, rep.plan, o.Clock.Since(start))
		obj, oerr := object("ScaleResult", a.Namespace, o.Name, r)
		if oerr != nil {
			return oerr
		}
		if oerr := printObject(o.Out, o.Output, obj); oerr != nil || err != nil {
			return cmp.Or(oerr, err)
		}
		if r.Rebalance != nil && (r.Rebalance.Outcome == "NotBalanced" || r.Rebalance.Outcome == "NodeLost") {
			return ErrNotBalanced // the rebalance after the scale-up did not reach balance, as in the table
		}
		return nil
	case res.From == res.To:
		fmt.Fprintf(o.Out, "statefulset %s already has %d replicas; nothing to do\n", o.Name, res.From)
		return nil
	case o.DryRun:
		printScalePlan(o.Out, o.Name, res)
		return nil
	case res.To < res.From:
		fmt.Fprintf(
			o.Out,
			"%s statefulset %s scaled from %d to %d; %s were emptied before they went\n",
			u.green("scaled:"),
			o.Name,
			res.From,
			res.To,
			strings.Join(res.Removed, ", "),
		)
		return nil
	}
	fmt.Fprintf(
		o.Out,
		"%s statefulset %s scaled from %d to %d; new nodes: %s\n",
		u.green("scaled:"),
		o.Name,
		res.From,
		res.To,
		strings.Join(res.Added, ", "),
	)
	if res.Rebalance == nil {
		fmt.Fprintf(
			o.Out,
			"existing connections stay where they are; move some to the new nodes with: "+
				"kubectl emqx rebalance -n %s --dry-run\n",
			a.Namespace,
		)
		return nil
	}
	return printRebalance(u, o.Out, *res.Rebalance, err)
}
