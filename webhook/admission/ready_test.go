package admission

import (
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllertest"
)

// Ready means synced: a replica with an unsynced cache gets no admission request.
func TestReadyOnlyOnceTheCachesHaveSynced(t *testing.T) {
	pods := controllertest.NewFakeInformer() // not synced
	c := &informertest.FakeInformers{
		InformersByGVK: map[schema.GroupVersionKind]toolscache.SharedIndexInformer{
			corev1.SchemeGroupVersion.WithKind("Pod"): pods,
		},
	}
	check := CachesSynced(c)
	if err := check(httptest.NewRequest("GET", "/readyz", nil)); err == nil {
		t.Fatal("ready while the pod informer has not synced")
	}
	pods.Synced()
	if err := check(httptest.NewRequest("GET", "/readyz", nil)); err != nil {
		t.Fatalf("not ready with synced caches: %v", err)
	}
	if len(c.InformersByGVK) != 4 {
		t.Fatalf("informers %v: the check starts one per kind a decision reads", c.InformersByGVK)
	}
}
