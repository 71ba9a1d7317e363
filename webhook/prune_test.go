package webhook

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
)

// What is kept per EMQX cluster goes when the cluster's last pod does, and only then.
func TestPrunerForgetsClustersThatAreGone(t *testing.T) {
	pod := readyPod(0, "uid-0")
	kube := fake.NewClientBuilder().WithObjects(pod).Build()
	conns := &PodConnector{Reader: kube, conns: map[string]*cluster.Conn{"mqtt/emqx": {}, "gone/emqx": {}}}
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
	if !lockKept || lockGone || conns.conns["mqtt/emqx"] == nil || conns.conns["gone/emqx"] != nil {
		t.Fatalf(
			"after a prune: lock of the live cluster %v, of the gone one %v; connections %v",
			lockKept,
			!lockGone,
			conns.conns,
		)
	}
	if err := kube.Delete(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if err := p.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.locks.Load("mqtt/emqx"); ok || len(conns.conns) != 0 {
		t.Fatal("the cluster's last pod is gone, its lock or connection stays")
	}
}
