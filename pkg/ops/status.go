package ops

import (
	"context"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

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
