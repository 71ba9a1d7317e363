//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

const servingGate = "emqx.kubectl-emqx.io/serving"

// withRouting opts the chart's StatefulSet into the routing gate.
func withRouting(obj k8s.Object) {
	if sts, ok := obj.(*appsv1.StatefulSet); ok {
		sts.Annotations = map[string]string{"emqx.kubectl-emqx.io/routing": "readiness-gate"}
	}
}

// waitController waits until the webhook's controller holds a fresh leader lease: the routing
// gate is only added while one runs.
func waitController(t *testing.T, cfg *envconf.Config) {
	t.Helper()
	eventually(t, 30*time.Second, "a controller holding the lease", func() bool {
		l, err := clientset(
			t,
			cfg,
		).CoordinationV1().
			Leases(webhookNS).
			Get(context.Background(), "emqx-webhook-controller", metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" && l.Spec.RenewTime != nil &&
			time.Since(l.Spec.RenewTime.Time) < 10*time.Second
	})
}

func gated(p corev1.Pod) bool {
	for _, g := range p.Spec.ReadinessGates {
		if g.ConditionType == servingGate {
			return true
		}
	}
	return false
}

// scaleDownRefusals scales the chart 3→2 through the webhook and returns how many connects the
// evacuating node refused meanwhile; nothing may be lost either way.
func scaleDownRefusals(t *testing.T, cfg *envconf.Config, routing bool) int64 {
	t.Helper()
	mutate := func(k8s.Object) {}
	if routing {
		mutate = withRouting
	}
	s := installShape{
		fixture:  "helm-chart.yaml",
		selector: helmSelector,
		sts:      "emqx-emqx-enterprise",
		pods:     3,
		mutate:   mutate,
	}
	const clients = 3000
	ns, pods := shapeCluster(t, cfg, s, clients, true)
	for _, p := range pods {
		if gated(p) != routing {
			t.Fatalf("pod %s gated = %v, want %v", p.Name, gated(p), routing)
		}
	}
	before := simStats(t, ns+"/emqx").RefusedConnects
	runKubectl(t, "-n", ns, "scale", "statefulset/"+s.sts, "--replicas=2")
	waitPods(t, cfg, ns, s.selector, 2)
	expectNothingLost(t, ns, clients)
	return simStats(t, ns+"/emqx").RefusedConnects - before
}

// Where the install's probe cannot see an evacuation (the chart's /status), the Service keeps
// sending reconnecting clients to the evacuating node, which refuses them. With the routing gate
// the pod leaves the Service as its evacuation starts.
func TestRoutingGateKeepsClientsAwayFromAnEvacuatingNode(t *testing.T) {
	f := features.New("routing gate").
		Assess("refused connects", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			// wait_health_check 10s (EMQX's default is 60s): the time load balancers are given to notice.
			installWebhook(t, cfg, "--wait-health-check", "10s")
			waitController(t, cfg)
			without := scaleDownRefusals(t, cfg, false)
			with := scaleDownRefusals(t, cfg, true)
			t.Logf(
				"refused connects during a 3→2 scale-down with 3000 clients: %d without the routing gate, %d with it",
				without,
				with,
			)
			if without < 100 {
				t.Fatalf(
					"only %d refusals without routing: the world does not show the problem the gate solves",
					without,
				)
			}
			if with*100 >= without {
				t.Fatalf("with the routing gate %d refusals, not under 1%% of the %d without", with, without)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// Fail safe: a pod created while the webhook is down has no gate and serves as without the
// feature; drains through a PodDisruptionBudget (maxUnavailable 1) complete under both
// unhealthyPodEvictionPolicy values while the gated pod is NotReady during its evacuation.
func TestRoutingGateFailsSafe(t *testing.T) {
	f := features.New("routing gate fail-safe").
		Assess("webhook down, PDB", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			p := installWebhook(t, cfg, "--wait-health-check", "10s")
			waitController(t, cfg)
			s := installShape{
				fixture:  "helm-chart.yaml",
				selector: helmSelector,
				sts:      "emqx-emqx-enterprise",
				pods:     3,
				mutate:   withRouting,
			}

			t.Run("webhook down at pod creation", func(t *testing.T) {
				p.stop()
				defer func() { p.start(); waitController(t, cfg) }()
				ns := newNamespace(t, cfg)
				labelWatched(t, cfg, ns)
				applyFixtureWith(t, cfg, s.fixture, ns, 3, s.mutate)
				for _, pod := range waitPods(t, cfg, ns, s.selector, 3) {
					if gated(pod) {
						t.Fatalf("pod %s got the gate with the webhook down", pod.Name)
					}
				}
			})

			for _, policy := range []policyv1.UnhealthyPodEvictionPolicyType{
				policyv1.IfHealthyBudget,
				policyv1.AlwaysAllow,
			} {
				t.Run("drain with a PDB, "+string(policy), func(t *testing.T) {
					ns, pods := shapeCluster(t, cfg, s, 2000, true)
					one := intstr.FromInt32(1)
					pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: ns},
						Spec: policyv1.PodDisruptionBudgetSpec{
							MaxUnavailable:             &one,
							UnhealthyPodEvictionPolicy: &policy,
							Selector: &metav1.LabelSelector{
								MatchLabels: map[string]string{"app.kubernetes.io/instance": "emqx"},
							},
						}}
					if _, err := clientset(t, cfg).PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb,
						metav1.CreateOptions{}); err != nil {
						t.Fatal(err)
					}
					for _, pod := range pods {
						if !gated(pod) {
							t.Fatalf("pod %s has no routing gate", pod.Name)
						}
					}
					node := pods[0].Spec.NodeName
					t.Cleanup(func() { _ = runKubectlQuiet("uncordon", node) })
					out := runKubectl(
						t,
						"drain",
						node,
						"--ignore-daemonsets",
						"--delete-emptydir-data",
						"--timeout=180s",
						"--pod-selector",
						s.selector,
					)
					if !strings.Contains(out, "drained") {
						t.Fatalf("kubectl drain did not finish:\n%s", out)
					}
					runKubectl(t, "uncordon", node)
					waitPods(t, cfg, ns, s.selector, 3)
					expectNothingLost(t, ns, 2000)
				})
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}
