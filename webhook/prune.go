package webhook

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Pruner forgets, in every replica, what the webhook keeps per EMQX cluster once the cluster is
// gone (its last EMQX pod deleted): the decision lock, the cached connection, the remembered
// credential refusals. Clusters are named by users' labels; without it each one ever seen would
// stay in memory for the life of the process.
type Pruner struct {
	Gate  *Gate
	Every time.Duration
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
			p.Gate.Log.Error(err, "prune the memory of gone EMQX clusters")
		}
	}
}

// Prune drops what is kept for clusters that have no EMQX pod any more.
func (p *Pruner) Prune(ctx context.Context) error {
	var pods corev1.PodList
	if err := p.Gate.Client.List(ctx, &pods); err != nil {
		return err
	}
	live := map[string]bool{}
	for i := range pods.Items {
		if pod := &pods.Items[i]; p.Gate.Matcher.Match(pod.Labels) {
			live[observe.ClusterKey(pod)] = true
		}
	}
	p.Gate.locks.Range(func(k, _ any) bool {
		if !live[k.(string)] {
			p.Gate.locks.Delete(k)
		}
		return true
	})
	p.Gate.EMQX.Prune(live)
	return nil
}
