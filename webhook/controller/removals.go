package controller

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
)

// Removals counts the EMQX pods whose removal began, as the cache sees them
// (emqx_webhook_emqx_pod_removals_total): beside the admission requests counted per webhook, it
// tells a webhook the API server does not call (with failurePolicy Ignore, such removals go
// through unevacuated and nothing else says so). Run by the leader only, so counted once.
type Removals struct {
	Matcher   cluster.Matcher
	Informers cache.Informers
	total     prometheus.Counter
}

// NewRemovals registers the counter with reg.
func NewRemovals(m cluster.Matcher, informers cache.Informers, reg prometheus.Registerer) *Removals {
	r := &Removals{Matcher: m, Informers: informers, total: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "emqx_webhook_emqx_pod_removals_total",
		Help: "EMQX pods whose removal began (deletion started, or deleted at once), " +
			"as the webhook's cache saw them.",
	})}
	reg.MustRegister(r.total)
	return r
}

// NeedLeaderElection: one replica counts.
func (r *Removals) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (r *Removals) Start(ctx context.Context) error {
	inf, reg, err := r.watch(ctx)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return inf.RemoveEventHandler(reg)
}

// watch counts removals from now on.
func (r *Removals) watch(ctx context.Context) (cache.Informer, toolscache.ResourceEventHandlerRegistration, error) {
	inf, err := r.Informers.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, nil, fmt.Errorf("pod informer: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			old, ok1 := oldObj.(*corev1.Pod)
			cur, ok2 := newObj.(*corev1.Pod)
			if ok1 && ok2 && old.DeletionTimestamp == nil && cur.DeletionTimestamp != nil &&
				r.Matcher.Match(cur.Labels) {
				r.total.Inc()
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			// A pod whose deletion began was counted then; this one went at once.
			if pod, ok := obj.(*corev1.Pod); ok && pod.DeletionTimestamp == nil && r.Matcher.Match(pod.Labels) {
				r.total.Inc()
			}
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("watch pod removals: %w", err)
	}
	return inf, reg, nil
}
