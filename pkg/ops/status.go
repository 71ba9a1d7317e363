package ops

import (
	"context"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/status"
)

// Status reads a cluster's status: `kubectl emqx status`, once or, with Watch, every Interval
// until ctx ends.
type Status struct {
	Cluster string
	Watch   bool
	Waiting
}

// Run calls show with each report (first: the first one).
func (s Status) Run(ctx context.Context, a Access, show func(r status.Report, first bool) error) error {
	t, err := a.Cluster(ctx, s.Cluster)
	if err != nil {
		return err
	}
	defer t.Close()
	first := true
	err = Poll(ctx, s.Clock, s.Interval, time.Time{}, func() (bool, error) {
		// The first report uses the pods Cluster just read; a watch reads them again each time.
		r, err := report(ctx, t, !first)
		if err != nil {
			return false, err
		}
		if err := show(r, first); err != nil {
			return false, err
		}
		first = false
		return !s.Watch, nil
	})
	if s.Watch && ctx.Err() != nil {
		return nil
	}
	return err
}

func report(ctx context.Context, t *Target, refresh bool) (status.Report, error) {
	// EMQX's two answers and the pods at once: a user waits for round trips.
	var nodes []emqx.Node
	var g emqx.GlobalStatus
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() (err error) { nodes, err = t.Conn.Nodes(ectx); return err })
	eg.Go(func() (err error) { g, err = t.Conn.GlobalStatus(ectx); return err })
	if refresh && t.Cluster != nil {
		eg.Go(func() error { return t.RefreshPods(ectx) })
	}
	if err := eg.Wait(); err != nil {
		return status.Report{}, err
	}
	return judge(ctx, t, nodes, g)
}

// judge builds the report from EMQX's answers already read: how to read its evacuations (asked
// only when one is unfinished), the pods, and what emqx-webhook recorded on the StatefulSets.
func judge(ctx context.Context, t *Target, nodes []emqx.Node, g emqx.GlobalStatus) (status.Report, error) {
	durable := evacuation.DurableOff
	if g.Unfinished() {
		var err error
		if durable, err = evacuation.AskDurability(ctx, t.Conn, versionOf(nodes)); err != nil {
			return status.Report{}, err
		}
	}
	if t.Cluster == nil {
		return status.Build(nodes, g, nil, durable), nil
	}
	r := status.Build(nodes, g, t.Cluster.Pods, durable)
	r.Cluster, r.Namespace = t.Cluster.Name, t.Namespace
	for _, s := range t.Cluster.StatefulSets {
		if v := s.Annotations[cluster.AnnAPIAccess]; v != "" && !strings.HasPrefix(v, "ok ") {
			r.WebhookAccess = v
		}
		if v := s.Annotations[cluster.AnnRebalanceRun]; v != "" {
			f := strings.Fields(v)
			r.AutoRebalance = "running since " + f[min(1, len(f)-1)] + ", coordinated by " + f[0]
		} else if v := s.Annotations[cluster.AnnRebalanceResult]; v != "" {
			r.AutoRebalance = "last: " + v
		}
	}
	return r, nil
}

// versionOf is the release the cluster's running nodes report ("" when none does).
func versionOf(nodes []emqx.Node) string {
	for _, n := range nodes {
		if n.Running() && n.Version != "" {
			return n.Version
		}
	}
	return ""
}

// StatusAll reads the status of every EMQX cluster of every namespace: `kubectl emqx status -A`.
// Clusters are read a few at a time, each through its own port-forward; one that cannot be read
// is reported with its error and does not stop the others.
type StatusAll struct{}

// ClusterStatus is one cluster's report, or why it could not be read.
type ClusterStatus struct {
	Namespace string
	Cluster   string
	Report    status.Report
	Err       error
}

// Run reads every cluster's status, ordered by namespace and name.
func (StatusAll) Run(ctx context.Context, a Access) ([]ClusterStatus, error) {
	clusters, err := cluster.Discover(ctx, a.Kube, metav1.NamespaceAll, a.Matcher)
	if err != nil {
		return nil, err
	}
	out := make([]ClusterStatus, len(clusters))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, c := range clusters {
		out[i] = ClusterStatus{Namespace: c.Namespace, Cluster: c.Name}
		g.Go(func() error {
			t, err := a.connected(gctx, c)
			if err != nil {
				out[i].Err = err
				return nil
			}
			defer t.Close()
			out[i].Report, out[i].Err = report(gctx, t, false)
			return nil
		})
	}
	_ = g.Wait() // each cluster's error is its own
	return out, ctx.Err()
}
