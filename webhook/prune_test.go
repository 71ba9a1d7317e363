package webhook

import (
	"context"
	"maps"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// pruneRecorder records which clusters it was told are live.
type pruneRecorder struct {
	observe.Connector
	live map[string]bool
}

func (p *pruneRecorder) Prune(live map[string]bool) { p.live = live }

// What is kept per EMQX cluster goes when the cluster's last pod does, and only then.
func TestPrunerForgetsClustersThatAreGone(t *testing.T) {
	pod := readyPod(0, "uid-0")
	kube := fake.NewClientBuilder().WithObjects(pod).Build()
	conns := &pruneRecorder{}
	g := &Gate{Client: kube, EMQX: conns, Log: logr.Discard()}
	for _, key := range []string{"mqtt/emqx", "gone/emqx"} {
		g.locks.Store(key, make(chan struct{}, 1))
	}
	p := &Pruner{Gate: g}
	if err := p.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, lockKept := g.locks.Load("mqtt/emqx")
	_, lockGone := g.locks.Load("gone/emqx")
	if !lockKept || lockGone || !maps.Equal(conns.live, map[string]bool{"mqtt/emqx": true}) {
		t.Fatalf("after a prune: lock of the live cluster %v, of the gone one %v; connector told %v are live",
			lockKept, !lockGone, conns.live)
	}
	if err := kube.Delete(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if err := p.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.locks.Load("mqtt/emqx"); ok || len(conns.live) != 0 {
		t.Fatal("the cluster's last pod is gone, its lock or connection stays")
	}
}
