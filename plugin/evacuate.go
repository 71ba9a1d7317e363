package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
	"github.com/spf13/cobra"
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
	DryRun     bool
	Output     string // -o: the result as an object
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
  kubectl emqx evacuate pod emqx-2 -n mqtt --dry-run
  kubectl emqx evacuate pod emqx-2 -n mqtt --within 5m --then-delete
  kubectl emqx evacuate pod emqx-2 -n mqtt --conn-evict-rate 100 --wait-takeover 30s \
    --migrate-to emqx-0 --migrate-to emqx-1
  kubectl emqx evacuate pod emqx-2 --emqx-url http://127.0.0.1:18083 --api-key KEY --api-secret SECRET`,
		Args:              exactlyOne("POD"),
		ValidArgsFunction: completePods(g),
		RunE:              runE(o),
	}
	f := cmd.Flags()
	o.evictionFlags.add(f, "")
	f.StringSliceVar(
		&o.MigrateTo,
		"migrate-to",
		nil,
		"pods (or, with --emqx-url, nodes) that receive the sessions; default: every other node",
	)
	_ = cmd.RegisterFlagCompletionFunc("migrate-to", completePods(g))
	f.DurationVar(
		&o.Within,
		"within",
		0,
		"choose the eviction rates so the node is empty within this time (after the waits)",
	)
	f.BoolVar(&o.NoWait, "no-wait", false, "start the evacuation and return")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up waiting after this long (the evacuation keeps going)")
	f.BoolVar(&o.ThenDelete, "then-delete", false, "delete the pod once its node is empty")
	f.BoolVar(&o.DryRun, "dry-run", false,
		"print what would move where and about how long it would take; start nothing")
	f.DurationVar(&o.Interval, "interval", o.Interval, "how often to poll EMQX")
	addOutputFlag(cmd, &o.Output)
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
	case o.DryRun && (o.ThenDelete || o.NoWait):
		return errors.New("--dry-run starts nothing; --then-delete and --no-wait do not go with it")
	case o.ThenDelete && o.direct():
		return errors.New("--then-delete deletes a pod: it needs Kubernetes access, not --emqx-url")
	}
	return validatePrinter(o.Output)
}

// Run starts (or joins) the evacuation and waits for it.
func (o *EvacuateOptions) Run(ctx context.Context) error {
	a, err := o.access()
	if err != nil {
		return err
	}
	u, rep, start := o.ui(), newReporter(o.GlobalOptions, o.Output), o.Clock.Now()
	e := ops.Evacuate{Pod: o.Pod, Request: o.evacuationRequest(), MigrateTo: o.MigrateTo, Within: o.Within,
		NoWait: o.NoWait, ThenDelete: o.ThenDelete, DryRun: o.DryRun, Waiting: o.waiting(o.Interval, o.Timeout)}
	res, err := e.Run(ctx, a, rep)
	rep.close()
	if err != nil {
		return err
	}
	if o.Output != "" {
		obj, err := object("EvacuationResult", a.Namespace, o.Pod, newEvacuationResult(res, o.Clock.Since(start)))
		if err != nil {
			return err
		}
		return printObject(o.Out, o.Output, obj)
	}
	if res.Plan != nil {
		printPlans(o.Out, []ops.EvacuationPlan{*res.Plan})
		return nil
	}
	if !res.Waited {
		fmt.Fprintf(o.Out, "evacuating %s; watch with: %s; undo with: %s\n", o.Pod, res.Watch, res.Undo)
		return nil
	}
	fmt.Fprintf(
		o.Out,
		"%s %s is empty: its EMQX node refuses new clients until: %s\n",
		u.green("evacuated:"),
		o.Pod,
		res.Undo,
	)
	if res.Deleted {
		fmt.Fprintf(o.Out, "pod %s deleted\n", o.Pod)
	}
	return nil
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
	a, err := o.access()
	if err != nil {
		return err
	}
	node, stopped, err := ops.StopEvacuation(ctx, a, o.Pod)
	switch {
	case err != nil:
		return err
	case !stopped:
		fmt.Fprintf(o.Out, "%s (EMQX node %s) was not evacuating; nothing to do\n", o.Pod, safe(node))
		return nil
	}
	fmt.Fprintf(o.Out, "evacuation of %s stopped: EMQX node %s accepts clients again\n", o.Pod, safe(node))
	return nil
}
