package controller

import (
	"context"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Pruner forgets, in every replica, what the webhook keeps per EMQX cluster once the cluster is
// gone (its last EMQX pod deleted): the decision lock, the cached connection, the remembered
// credential refusals. Clusters are named by users' labels; without it each one ever seen would
// stay in memory for the life of the process.
type Pruner struct {
	*Env
	Every time.Duration
	// Locks is the gate's memory per EMQX cluster (its decision locks).
	Locks interface{ Prune(live map[string]bool) }
}

// NeedLeaderElection: each replica prunes its own memory.
func (p *Pruner) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (p *Pruner) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.Every):
		}
		if err := p.Prune(ctx); err != nil {
			p.Log.Error(err, "prune the memory of gone EMQX clusters")
		}
	}
}

// Prune drops what is kept for clusters that have no EMQX pod any more.
func (p *Pruner) Prune(ctx context.Context) error {
	var pods corev1.PodList
	// Labels only are read: the cache's own objects, not copies of every EMQX pod each minute.
	if err := p.Client.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	live := map[string]bool{}
	for i := range pods.Items {
		if pod := &pods.Items[i]; p.Matcher.Match(pod.Labels) {
			live[observe.ClusterKey(pod)] = true
		}
	}
	p.Locks.Prune(live)
	p.EMQX.Prune(live)
	return nil
}
