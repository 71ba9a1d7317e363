package controller

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
)

// An EMQX pod's removal is counted once, when its deletion begins or when it goes at once; other
// pods and other changes are not counted.
func TestRemovalsOfEMQXPodsAreCountedOnce(t *testing.T) {
	informers := &informertest.FakeInformers{}
	reg := prometheus.NewRegistry()
	r := NewRemovals(cluster.Matcher{}, informers, reg)
	ctx := context.Background()
	if _, _, err := r.watch(ctx); err != nil {
		t.Fatal(err)
	}
	inf, err := informers.FakeInformerFor(ctx, &corev1.Pod{})
	if err != nil {
		t.Fatal(err)
	}
	emqx, web := readyPod(0, "uid-0"), readyPod(1, "uid-1")
	web.Labels = map[string]string{"app": "web"}
	deleting := func(p *corev1.Pod) *corev1.Pod {
		p = p.DeepCopy()
		p.DeletionTimestamp = &metav1.Time{Time: time.Unix(0, 0)}
		return p
	}
	inf.Update(emqx, emqx.DeepCopy()) // not a removal
	inf.Update(emqx, deleting(emqx))  // its deletion begins: 1
	inf.Delete(deleting(emqx))        // counted when it began
	inf.Update(web, deleting(web))    // not EMQX's
	inf.Delete(readyPod(2, "uid-2"))  // deleted at once: 2
	if got := testutil.ToFloat64(r.total); got != 2 {
		t.Fatalf("%v removals counted, want 2", got)
	}
}
