package admission

import (
	"context"
	"testing"
	"time"
)

// BenchmarkEvictionNonEMQXPod: an eviction of an ordinary pod: not in the cache (EMQX's pods only),
// and no EMQX workload the cache holds could have named it, so allowed without an API read.
func BenchmarkEvictionNonEMQXPod(b *testing.B) {
	f := newFixture(b, 100, 100)
	web := readyPod(9, "web")
	web.Name, web.Labels, web.OwnerReferences = "web-0", map[string]string{"app": "web"}, nil
	if err := f.Kube.Create(context.Background(), web); err != nil {
		b.Fatal(err)
	}
	h := &EvictionHandler{Gate: f.gate, Reader: emptyCache(f), Uncached: Uncached{Live: f.Kube}}
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
