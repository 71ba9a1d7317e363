package admission

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// BenchmarkEvictionNonEMQXPod: an eviction of an ordinary pod, answered from the cache alone.
func BenchmarkEvictionNonEMQXPod(b *testing.B) {
	f := newFixture(b, 100, 100)
	web := readyPod(9, "web")
	web.Name, web.Labels, web.OwnerReferences = "web-0", map[string]string{"app": "web"}, nil
	if err := f.Kube.Create(context.Background(), web); err != nil {
		b.Fatal(err)
	}
	h := &EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	req := evictionRequest(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"web-0"}}`, ns, false)
	b.ReportAllocs()
	for b.Loop() {
		if resp := h.Handle(context.Background(), req); !resp.Allowed {
			b.Fatal(resp.Result)
		}
	}
}

// BenchmarkEvictionEMQXPodEvacuating: an eviction of an EMQX pod whose evacuation runs: the cache,
// two EMQX API calls over loopback, a 429 with progress.
func BenchmarkEvictionEMQXPodEvacuating(b *testing.B) {
	f := newFixture(b, 100, 100)
	f.gate.Config.EvacuationTimeout = 24 * time.Hour
	h := &EvictionHandler{Gate: f.gate, Reader: f.Kube, Uncached: Uncached{Live: f.Kube}}
	req := evictionRequest(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"emqx-0"}}`, ns, false)
	h.Handle(context.Background(), req) // starts the evacuation
	b.ReportAllocs()
	for b.Loop() {
		if resp := h.Handle(context.Background(), req); resp.Allowed {
			b.Fatal("allowed")
		}
	}
}

// benchPod is a pod as the API server stores it, managed fields included.
func benchPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf(
				"app-%d-7c9f6d5b4-x2kz%d",
				i%500,
				i,
			), Namespace: fmt.Sprintf("team-%d", i%40), UID: "0f7a1c2e-1b2d-4c5e-9f8a-7b6c5d4e3f2a",
			Labels: map[string]string{
				"app.kubernetes.io/name":     "app",
				"app.kubernetes.io/instance": fmt.Sprint(i % 500),
				"pod-template-hash":          "7c9f6d5b4",
			},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-21T18:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "app-7c9f6d5b4", UID: "1"},
			},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1",
					FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: make([]byte, 1500)}},
			},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1.2.3",
				Ports: []corev1.ContainerPort{{ContainerPort: 8080}}, Env: []corev1.EnvVar{{Name: "A", Value: "b"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
				}}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      "10.1.2.3",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

// BenchmarkPodCacheMemory10k: the heap the webhook's pod cache holds for 10,000 pods, after the
// managed-fields transform the binary installs.
func BenchmarkPodCacheMemory10k(b *testing.B) {
	strip := cache.TransformStripManagedFields()
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		store := toolscache.NewIndexer(
			toolscache.MetaNamespaceKeyFunc,
			toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc},
		)
		for i := range 10000 {
			obj, err := strip(benchPod(i))
			if err != nil {
				b.Fatal(err)
			}
			if err := store.Add(obj); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/10k-pods")
		runtime.KeepAlive(store)
	}
}
