package admission

import (
	"fmt"
	"net/http"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// CachesSynced is a readiness check: the informers of every kind a decision reads exist (the first
// check starts them) and have synced.
func CachesSynced(c cache.Cache) healthz.Checker {
	kinds := []client.Object{&corev1.Pod{}, &appsv1.StatefulSet{}, &appsv1.ReplicaSet{}, &corev1.Namespace{}}
	return func(r *http.Request) error {
		for _, obj := range kinds {
			inf, err := c.GetInformer(r.Context(), obj, cache.BlockUntilSynced(false))
			if err != nil {
				return fmt.Errorf("informer for %T: %w", obj, err)
			}
			if !inf.HasSynced() {
				return fmt.Errorf("informer for %T has not synced yet", obj)
			}
		}
		return nil
	}
}
