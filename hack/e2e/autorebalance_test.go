//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// A scale-up of a StatefulSet opted into automatic rebalance: the new node gets its share without
// anyone running kubectl emqx rebalance, and the controller says how it ended.
func TestAutomaticRebalanceAfterAScaleUp(t *testing.T) {
	f := features.New("automatic rebalance").
		Assess("3→4", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg, "--rebalance-cooldown", "2s")
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 3000)
			runKubectl(t, "-n", ns, "annotate", "statefulset", "emqx", "emqx.kubectl-emqx.io/rebalance=auto",
				"emqx.kubectl-emqx.io/abs-conn-threshold=100", "emqx.kubectl-emqx.io/abs-sess-threshold=100")
			runKubectl(t, "-n", ns, "scale", "statefulset/emqx", "--replicas=4")
			waitPods(t, cfg, ns, helmSelector, 4)
			eventually(t, 120*time.Second, "the automatic rebalance to end", func() bool {
				return len(
					events(t, cfg, ns, "RebalanceCompleted"),
				)+len(
					events(t, cfg, ns, "RebalanceNotBalanced"),
				)+len(
					events(t, cfg, ns, "RebalanceAborted"),
				) > 0
			})
			if evs := events(t, cfg, ns, "RebalanceCompleted"); len(evs) != 1 {
				t.Fatalf(
					"no RebalanceCompleted: started %d, not balanced %d, aborted %d",
					len(
						events(t, cfg, ns, "RebalanceStarted"),
					),
					len(events(t, cfg, ns, "RebalanceNotBalanced")),
					len(events(t, cfg, ns, "RebalanceAborted")),
				)
			} else {
				t.Logf("%s", evs[0].Message)
			}
			expectNothingLost(t, ns, 3000)
			var newest int64
			for _, n := range simStats(t, ns+"/emqx").Nodes {
				if strings.HasPrefix(n.Name, "emqx@emqx-3.") {
					newest = n.LiveConnections
				}
			}
			if newest < 500 {
				t.Fatalf("emqx-3 holds %d connections after the automatic rebalance", newest)
			}
			out := mustEMQX(t, "status", "-n", ns)
			if !strings.Contains(out, "Automatic rebalance: last: Completed") {
				t.Fatalf("status does not show the automatic rebalance:\n%s", out)
			}
			sts, err := clientset(t, cfg).AppsV1().StatefulSets(ns).Get(ctx, "emqx", metav1.GetOptions{})
			if err != nil || sts.Annotations["emqx.kubectl-emqx.io/rebalance-run"] != "" {
				t.Fatalf("a run still recorded: %v %v", err, sts.Annotations)
			}
			if n := len(events(t, cfg, ns, "RebalanceStarted")); n != 1 {
				t.Fatalf("%d automatic rebalances started, want 1", n)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}
