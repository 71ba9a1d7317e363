package webhook

import "testing"

// The gate drops the decision locks of clusters that are gone, and only those.
func TestGateForgetsTheLocksOfGoneClusters(t *testing.T) {
	g := &Gate{}
	for _, key := range []string{"mqtt/emqx", "gone/emqx"} {
		g.locks.Store(key, make(chan struct{}, 1))
	}
	g.Prune(map[string]bool{"mqtt/emqx": true})
	_, kept := g.locks.Load("mqtt/emqx")
	_, gone := g.locks.Load("gone/emqx")
	if !kept || gone {
		t.Fatalf("after a prune: lock of the live cluster kept %v, of the gone one dropped %v", kept, !gone)
	}
	g.Prune(map[string]bool{})
	if _, ok := g.locks.Load("mqtt/emqx"); ok {
		t.Fatal("the cluster is gone, its lock stays")
	}
}
