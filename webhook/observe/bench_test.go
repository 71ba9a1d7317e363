package observe

import (
	"context"
	"sync"
	"testing"
	"time"

	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// What a burst of decisions about one EMQX cluster costs EMQX: 20 lookups of a pod's node and
// the global status at once (a mass drain's retries), without and with shared reads. Reported as
// EMQX API requests per decision (the simulator's count); ns/op is a burst's time.
func BenchmarkBurstOfDecisionsEMQXRequests(b *testing.B) {
	for _, shared := range []time.Duration{0, time.Second} {
		b.Run("shared="+shared.String(), func(b *testing.B) {
			sim, err := emqxsim.New(emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: node(0)}, {Name: node(1)}},
				Users: map[string]string{"admin": "public"}})
			if err != nil {
				b.Fatal(err)
			}
			pods, kube := servedPods(b, sim, nil)
			c := &PodConnector{Matcher: cluster.Matcher{}, Reader: kube, Secrets: kubefake.NewClientset(),
				SharedFor: shared, Clock: clock.RealClock{}}
			ctx := context.Background()
			if s := Node(ctx, c, nil, pods[1], Question{Status: true}); s.Err != nil {
				b.Fatal(s.Err)
			}
			requests := func() int64 {
				var n int64
				for _, ns := range sim.Snapshot().Nodes {
					n += ns.APIRequests
				}
				return n
			}
			before := requests()
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for range 20 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if s := Node(ctx, c, nil, pods[1], Question{Status: true}); s.Err != nil {
							b.Error(s.Err)
						}
					}()
				}
				wg.Wait()
				if shared > 0 {
					b.StopTimer()
					time.Sleep(shared) // the next burst finds no recent answer: each burst asks afresh
					b.StartTimer()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(requests()-before)/float64(20*b.N), "emqx-requests/decision")
		})
	}
}
