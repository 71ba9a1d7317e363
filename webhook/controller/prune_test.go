package controller

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

// What is kept per EMQX cluster goes when the cluster's last pod does, and only then: the
// connector and the gate's locks are both told which clusters are live.
func TestPrunerForgetsClustersThatAreGone(t *testing.T) {
	pod := readyPod(0, "uid-0")
	kube := fake.NewClientBuilder().WithObjects(pod).Build()
	conns, locks := &pruneRecorder{}, &pruneRecorder{}
	p := &Pruner{Env: &Env{Client: kube, EMQX: conns, Log: logr.Discard()}, Locks: locks}
	if err := p.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"mqtt/emqx": true}
	if !maps.Equal(conns.live, want) || !maps.Equal(locks.live, want) {
		t.Fatalf("after a prune: connector told %v are live, locks %v; want %v", conns.live, locks.live, want)
	}
	if err := kube.Delete(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if err := p.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(conns.live) != 0 || len(locks.live) != 0 {
		t.Fatalf("the cluster's last pod is gone: connector told %v are live, locks %v", conns.live, locks.live)
	}
}
