package plugin

import (
	"context"
	"testing"
)

// BenchmarkStatus100Nodes: `kubectl emqx status` over a 100-pod cluster (fake Kubernetes, one
// simulated node per pod): discovery, pod↔node mapping, two EMQX calls, the table.
func BenchmarkStatus100Nodes(b *testing.B) {
	conns := make([]int64, 100)
	for i := range conns {
		conns[i] = int64(1000 * (i % 7))
	}
	e := newEnv(b, conns...)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.run(context.Background(), "status", "-n", "mqtt", "--color", "never"); err != nil {
			b.Fatal(err)
		}
	}
}
