package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
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
  kubectl emqx scale sts/emqx --replicas 2 -n mqtt --conn-evict-rate 200 --wait-takeover 20s
  kubectl emqx scale statefulset/emqx --replicas 4 -n mqtt --rebalance`,
		Args: exactlyOne("statefulset/NAME"),
		RunE: runE(o),
	}
	f := cmd.Flags()
	f.Int32Var(&o.Replicas, "replicas", -1, "the new number of replicas (required)")
	o.evictionFlags.add(f, "scale-down: ")
	f.BoolVar(&o.Rebalance, "rebalance", false, "scale-up: rebalance onto the new nodes afterwards (EMQX's default thresholds)")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up waiting after this long")
	f.DurationVar(&o.Interval, "interval", o.Interval, "how often to poll")
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
	return nil
}

// Run scales.
func (o *ScaleOptions) Run(ctx context.Context) error {
	ns, err := o.Namespace()
	if err != nil {
		return err
	}
	_, cs, err := o.kube()
	if err != nil {
		return err
	}
	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, o.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("statefulset %q not found in namespace %q; list EMQX clusters with: kubectl emqx status -n %s", o.Name, ns, ns)
	}
	if err != nil {
		return fmt.Errorf("get statefulset %q: %w", o.Name, err)
	}
	if !cluster.IsEMQX(sts.Labels) {
		return fmt.Errorf("statefulset %q is not an EMQX StatefulSet (no app.kubernetes.io/name=emqx or apps.emqx.io/managed-by=emqx-operator label); scale it with kubectl scale", o.Name)
	}
	cur := cluster.Replicas(sts)
	switch {
	case o.Replicas == cur:
		fmt.Fprintf(o.Out, "statefulset %s already has %d replicas; nothing to do\n", o.Name, cur)
		return nil
	case o.Replicas < cur:
		return o.down(ctx, ns, sts, cur)
	}
	return o.up(ctx, ns, sts, cur)
}

func (o *ScaleOptions) down(ctx context.Context, ns string, sts *appsv1.StatefulSet, cur int32) error {
	u := o.ui()
	gone := cluster.ReplicaPods(sts, o.Replicas, cur)
	t, err := o.resolve(ctx, cluster.Instance(sts.Labels), gone...)
	if err != nil {
		return err
	}
	defer t.Close()
	nodes, err := t.conn.Nodes(ctx)
	if err != nil {
		return err
	}
	isVictim := map[string]bool{}
	var evacuate []emqx.Node
	for _, name := range gone {
		p, ok := t.cl.Pod(name)
		if !ok {
			continue
		}
		if n, ok := t.nodeOfPod(ctx, nodes, p); ok && n.Running() {
			evacuate = append(evacuate, n)
			isVictim[n.Node] = true
		} else {
			fmt.Fprintf(o.ErrOut, "pod %s has no running EMQX node: nothing to evacuate there\n", name)
		}
	}
	g, err := t.conn.GlobalStatus(ctx)
	if err != nil {
		return err
	}
	// Nodes that stay and that EMQX accepts as targets: never another victim, an evacuating node
	// or a rebalance donor (EMQX would answer "Nodes unavailable").
	stay := evacuation.Targets(nodes, g, isVictim)
	if len(evacuate) > 0 && len(stay) == 0 {
		return fmt.Errorf("scaling %s to %d leaves no EMQX node that can take the sessions (running, not evacuating, not a rebalance donor); scale to at least 1 first, or wait for the evacuation or rebalance under way", o.Name, o.Replicas)
	}
	for _, n := range evacuate {
		if _, running := g.Evacuation(n.Node); running {
			continue
		}
		req := o.evacuationRequest()
		req.MigrateTo = stay
		if err := t.conn.StartEvacuation(ctx, n.Node, req); err != nil && !emqx.IsAlreadyStarted(err) {
			return fmt.Errorf("evacuate %s before scaling down: %w", t.podLabel(n.Node), err)
		}
		fmt.Fprintf(o.ErrOut, "evacuating %s (%d connections, %d sessions)\n", t.podLabel(n.Node), n.LiveConnections, n.Connections)
	}
	deadline := o.Clock.Now().Add(o.Timeout)
	if _, err := waitEvacuated(ctx, o.Clock, o.Interval, deadline, t, u, evacuate, o.waits()); err != nil {
		return stillRunning(ctx, err, fmt.Sprintf("the replicas are unchanged and %s still evacuating; reopen with: kubectl emqx evacuate stop POD -n %s",
			strings.Join(gone, ", "), ns), o.Timeout)
	}
	if err := o.setReplicas(ctx, t, ns); err != nil {
		return err
	}
	err = poll(ctx, o.Clock, o.Interval, deadline, func() (bool, error) {
		if err := t.refreshPods(ctx); err != nil {
			return false, err
		}
		for _, name := range gone {
			if _, still := t.cl.Pod(name); still {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("scaled to %d, but the removed pods are still there: %w", o.Replicas, err)
	}
	fmt.Fprintf(o.Out, "%s statefulset %s scaled from %d to %d; %s were emptied before they went\n", u.green("scaled:"), o.Name, cur, o.Replicas, strings.Join(gone, ", "))
	return nil
}

func (o *ScaleOptions) setReplicas(ctx context.Context, t *target, ns string) error {
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: o.Replicas}}
	if _, err := t.kube.AppsV1().StatefulSets(ns).UpdateScale(ctx, o.Name, scale, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("scale statefulset %s to %d: %w", o.Name, o.Replicas, err)
	}
	return nil
}

func (o *ScaleOptions) up(ctx context.Context, ns string, sts *appsv1.StatefulSet, cur int32) error {
	u := o.ui()
	t, err := o.resolve(ctx, cluster.Instance(sts.Labels))
	if err != nil {
		return err
	}
	defer t.Close()
	if err := o.setReplicas(ctx, t, ns); err != nil {
		return err
	}
	added := cluster.ReplicaPods(sts, cur, o.Replicas)
	deadline := o.Clock.Now().Add(o.Timeout)
	var fresh []emqx.Node
	err = poll(ctx, o.Clock, o.Interval, deadline, func() (bool, error) {
		if err := t.refreshPods(ctx); err != nil {
			return false, err
		}
		nodes, err := t.conn.Nodes(ctx)
		if err != nil {
			return false, err
		}
		fresh = fresh[:0]
		for _, name := range added {
			p, ok := t.cl.Pod(name)
			if !ok || !cluster.Ready(p) {
				return false, nil
			}
			n, ok := t.nodeOfPod(ctx, nodes, p)
			if !ok || !n.Running() {
				return false, nil
			}
			fresh = append(fresh, n)
		}
		return true, nil
	})
	if err != nil {
		return stillRunning(ctx, err, fmt.Sprintf("statefulset %s was scaled to %d but %s are not all running EMQX nodes yet", o.Name, o.Replicas, strings.Join(added, ", ")), o.Timeout)
	}
	g, err := t.conn.GlobalStatus(ctx)
	if err != nil {
		return err
	}
	for _, n := range fresh {
		if _, stale := g.Evacuation(n.Node); stale {
			if err := t.conn.StopEvacuation(ctx, n.Node); err != nil && !emqx.IsNotStarted(err) {
				return fmt.Errorf("%s came back with an evacuation persisted on its volume; reopening it failed: %w", t.podLabel(n.Node), err)
			}
			fmt.Fprintf(o.ErrOut, "%s came back with an old evacuation persisted on its volume: reopened it\n", t.podLabel(n.Node))
		}
	}
	fmt.Fprintf(o.Out, "%s statefulset %s scaled from %d to %d; new nodes: %s\n", u.green("scaled:"), o.Name, cur, o.Replicas, strings.Join(added, ", "))
	if !o.Rebalance {
		fmt.Fprintf(o.Out, "existing connections stay where they are; move some to the new nodes with: kubectl emqx rebalance%s --dry-run\n", t.nsFlag())
		return nil
	}
	r := &RebalanceOptions{GlobalOptions: o.GlobalOptions, Cluster: t.cl.Name, Thresholds: evacuation.DefaultThresholds,
		Timeout: o.Timeout, Interval: o.Interval, evictionFlags: evictionFlags{set: map[string]bool{}}}
	return r.Run(ctx)
}
