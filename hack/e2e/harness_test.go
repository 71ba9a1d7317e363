//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Three Helm-shaped EMQX pods run; their simulated nodes answer at the pod IPs, under the names
// the chart gives them, and through `kubectl port-forward`.
func TestHelmPodsAnswerAtPodIPsAndThroughPortForward(t *testing.T) {
	f := features.New("helm install").
		Assess("nodes answer", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := newNamespace(t, cfg)
			applyFixture(t, cfg, "helm-emqx.yaml", ns, 3)
			pods := waitPods(t, cfg, ns, helmSelector, 3)
			var want []string
			for _, p := range pods {
				want = append(want, "emqx@"+p.Name+".emqx-headless."+ns+".svc.cluster.local")
			}
			for _, p := range pods {
				var names []string
				eventually(t, 10*time.Second, "all nodes listed by "+p.Name, func() bool {
					nodes, err := nodeClient(t, p, helmDashboard).Nodes(ctx)
					names = names[:0]
					for _, n := range nodes {
						if n.Running() {
							names = append(names, n.Node)
						}
					}
					return err == nil && len(names) == 3
				})
				for _, w := range want {
					if !slices.Contains(names, w) {
						t.Fatalf("%s lists %v, want %s among them", p.Name, names, w)
					}
				}
			}

			// Evacuate emqx-1 through its pod IP; port-forward shows node-local answers per pod.
			var evac, other = pods[0], pods[1]
			for _, p := range pods {
				switch p.Name {
				case "emqx-1":
					evac = p
				case "emqx-0":
					other = p
				}
			}
			c := nodeClient(t, evac, helmDashboard)
			node := "emqx@emqx-1.emqx-headless." + ns + ".svc.cluster.local"
			if err := c.StartEvacuation(ctx, node, emqx.EvacuationRequest{}); err != nil {
				t.Fatal(err)
			}
			for pod, want := range map[string]int{evac.Name: http.StatusServiceUnavailable, other.Name: http.StatusOK} {
				resp, err := http.Get(portForward(t, ns, pod) + "/api/v5/load_rebalance/availability_check")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Fatalf("availability_check of %s through port-forward: %d, want %d", pod, resp.StatusCode, want)
				}
			}
			if err := c.StopEvacuation(ctx, node); err != nil {
				t.Fatal(err)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// The baseline we exist to beat: `kubectl scale` from 3 to 2 with no webhook kills the removed
// pod's node with its clients' sessions.
func TestScaleDownWithoutWebhookLosesSessions(t *testing.T) {
	f := features.New("scale down, no webhook").
		Assess("sessions are lost", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := newNamespace(t, cfg)
			cluster := ns + "/emqx"
			applyFixture(t, cfg, "helm-emqx.yaml", ns, 3)
			waitPods(t, cfg, ns, helmSelector, 3)
			simNodesReady(t, cluster, 3)
			connectClients(t, cluster, 3000)
			var onVictim int64
			for _, n := range simStats(t, cluster).Nodes {
				if strings.HasPrefix(n.Name, "emqx@emqx-2.") {
					onVictim = n.PersistentSessions
				}
			}
			if onVictim == 0 {
				t.Fatal("no sessions landed on emqx-2")
			}
			runKubectl(t, "-n", ns, "scale", "statefulset/emqx", "--replicas=2")
			waitPods(t, cfg, ns, helmSelector, 2)
			var lost int64
			eventually(t, 10*time.Second, "the removed node's sessions counted lost", func() bool {
				lost = simStats(t, cluster).LostSessions
				return lost > 0
			})
			if lost != onVictim {
				t.Fatalf("lost %d sessions, want the %d emqx-2 held", lost, onVictim)
			}
			t.Logf("scale 3→2 without the webhook lost %d of 3000 sessions", lost)
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// emqx-operator's shape: core nodes named after the headless Service, replicants after their IP,
// and the bootstrap API key from the operator's Secret accepted.
func TestOperatorInstallNamesAndBootstrapKey(t *testing.T) {
	f := features.New("operator install").
		Assess("names and key", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := newNamespace(t, cfg)
			applyFixture(t, cfg, "operator-emqx.yaml", ns, 0)
			pods := waitPods(t, cfg, ns, "apps.emqx.io/instance=emqx", 4)
			want := map[string]string{}
			for _, p := range pods {
				if p.Labels["apps.emqx.io/db-role"] == "core" {
					want["emqx@"+p.Name+".emqx-headless."+ns+".svc.cluster.local"] = "core"
				} else {
					want["emqx@"+p.Status.PodIP] = "replicant"
				}
			}
			var nodes []emqx.Node
			eventually(t, 10*time.Second, "four running nodes", func() bool {
				var err error
				nodes, err = nodeClient(t, pods[0], operatorKey).Nodes(ctx)
				return err == nil && len(nodes) == 4
			})
			for _, n := range nodes {
				if want[n.Node] != n.Role {
					t.Fatalf("node %s role %s; want %v", n.Node, n.Role, want)
				}
			}
			_, err := nodeClient(
				t,
				pods[0],
				emqx.Credentials{APIKey: "emqx-operator-controller", APISecret: "wrong"},
			).Nodes(ctx)
			if !emqx.IsUnauthorized(err) {
				t.Fatalf("a wrong secret: %v", err)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// An evacuation is persisted on the node's data volume: a pod recreated with the same PVC comes
// back evacuating; one whose data was an emptyDir comes back open.
func TestEvacuationPersistsAcrossRecreationOnlyWithPVC(t *testing.T) {
	f := features.New("persistence").
		Assess("pvc keeps it", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			for _, tc := range []struct {
				fixture string
				pvc     bool
			}{{"helm-emqx-pvc.yaml", true}, {"helm-emqx.yaml", false}} {
				ns := newNamespace(t, cfg)
				if tc.pvc {
					makePVs(t, cfg, ns, 2)
				}
				applyFixture(t, cfg, tc.fixture, ns, 2)
				pods := waitPods(t, cfg, ns, helmSelector, 2)
				node := "emqx@emqx-0.emqx-headless." + ns + ".svc.cluster.local"
				if err := nodeClient(t, pods[0], helmDashboard).StartEvacuation(ctx, node,
					emqx.EvacuationRequest{WaitHealthCheck: new(time.Duration)}); err != nil {
					t.Fatal(err)
				}
				old := map[string]bool{}
				for _, p := range pods {
					old[string(p.UID)] = true
				}
				if err := clientset(t, cfg).CoreV1().Pods(ns).Delete(ctx, "emqx-0",
					metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				var evacuating bool
				eventually(t, 30*time.Second, "emqx-0 recreated", func() bool {
					for _, p := range waitPods(t, cfg, ns, helmSelector, 2) {
						if p.Name == "emqx-0" && !old[string(p.UID)] {
							st, err := nodeClient(t, p, helmDashboard).LocalStatus(ctx)
							evacuating = st.Process == emqx.ProcessEvacuation
							return err == nil
						}
					}
					return false
				})
				if evacuating != tc.pvc {
					t.Fatalf("%s: recreated emqx-0 evacuating = %v, want %v", tc.fixture, evacuating, tc.pvc)
				}
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}
