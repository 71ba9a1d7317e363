//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// hostAddr is the host's address on the pod network (hack/lib.sh HOST_ADDR): the API server's
// aggregator reaches the custom metrics API of the webhook process there.
const hostAddr = "198.18.255.1"

const apiService = "v1beta2.custom.metrics.k8s.io"

// serveCustomMetrics installs what manifests/autoscaling/ adds for the custom metrics API (its
// RBAC, admission policy and APIService) with the webhook's Service pointing at the webhook
// process on the host, and returns the webhook's arguments that serve it.
func serveCustomMetrics(t *testing.T, cfg *envconf.Config) []string {
	t.Helper()
	cs := clientset(t, cfg)
	ctx := context.Background()
	waitWebhookNamespace(t, cs)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhookNS}},
		metav1.CreateOptions{}); err != nil &&
		!apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	out := runKubectl(t, "kustomize", filepath.Join(repoRoot, "manifests", "autoscaling"))
	var docs []string
	for _, doc := range strings.Split(out, "\n---\n") {
		for _, want := range []string{
			"name: emqx-webhook-auth-reader",
			"name: emqx-webhook-apiservice",
			"name: " + apiService,
		} {
			if strings.Contains(doc, want) {
				docs = append(docs, doc)
				break
			}
		}
	}
	if len(docs) != 6 { // RoleBinding, ClusterRole, ClusterRoleBinding, policy and binding, APIService
		t.Fatalf("manifests/autoscaling renders %d of the custom metrics objects, want 6", len(docs))
	}
	port := freePort(t)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "emqx-webhook", Namespace: webhookNS},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{
				{Name: "custom-metrics", Port: 6443, TargetPort: intstr.FromInt32(int32(port))},
			},
		}}
	eps := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "emqx-webhook", Namespace: webhookNS},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: hostAddr}},
			Ports: []corev1.EndpointPort{{Name: "custom-metrics", Port: int32(port)}}}}}
	_ = cs.CoreV1().Services(webhookNS).Delete(ctx, svc.Name, metav1.DeleteOptions{})
	if _, err := cs.CoreV1().Services(webhookNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Endpoints(webhookNS).Create(ctx, eps, metav1.CreateOptions{}); err != nil &&
		!apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	apply := runKubectlIn(t, strings.Join(docs, "\n---\n"), "apply", "-f", "-")
	t.Logf("%s", apply)
	// An APIService whose server is gone breaks discovery for every later kubectl: remove it first.
	t.Cleanup(func() {
		_ = runKubectlQuiet("delete", "apiservice", apiService, "--ignore-not-found")
		_ = cs.CoreV1().Services(webhookNS).Delete(context.Background(), svc.Name, metav1.DeleteOptions{})
	})
	return []string{"--custom-metrics-bind-address", net.JoinHostPort(hostAddr, fmt.Sprint(port)),
		"--tls-dns-name", "emqx-webhook." + webhookNS + ".svc"}
}

// A plain autoscaling/v2 HPA on the StatefulSet, fed by the webhook's custom metrics API: clients
// arrive, it scales 2→4 and the automatic rebalance gives the new nodes their share; clients leave,
// it scales back to 2 through the webhook's evacuations, with nothing lost and no stopped node left.
func TestHorizontalPodAutoscalerBothWays(t *testing.T) {
	f := features.New("HPA").
		Assess("2→4→2", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			extra := serveCustomMetrics(t, cfg)
			installWebhook(t, cfg, append(extra, "--rebalance-cooldown", "2s")...)
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 2, 0)
			runKubectl(t, "-n", ns, "annotate", "statefulset", "emqx", "emqx.kubectl-emqx.io/rebalance=auto",
				"emqx.kubectl-emqx.io/abs-conn-threshold=100", "emqx.kubectl-emqx.io/abs-sess-threshold=100")
			eventually(t, 60*time.Second, "the custom metrics API to serve both pods", func() bool {
				out, err := runKubectlErr(
					"get",
					"--raw",
					"/apis/custom.metrics.k8s.io/v1beta2/namespaces/"+ns+"/pods/*/emqx_live_connections",
				)
				return err == nil && strings.Count(out, `"kind":"Pod"`) == 2
			})
			// The API server authorizes each caller: one without a grant reads nothing.
			if out, err := runKubectlErr("--as=system:serviceaccount:default:default", "get", "--raw",
				"/apis/custom.metrics.k8s.io/v1beta2/namespaces/"+ns+"/pods/*/emqx_live_connections"); err == nil ||
				!strings.Contains(out, "forbidden") {
				t.Fatalf("a ServiceAccount without a grant read the metrics: %v\n%s", err, out)
			}
			cs := clientset(t, cfg)
			zero := int32(0)
			minR := int32(2)
			hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: ns},
				Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
						APIVersion: "apps/v1",
						Kind:       "StatefulSet",
						Name:       "emqx",
					},
					MinReplicas: &minR, MaxReplicas: 4,
					Metrics: []autoscalingv2.MetricSpec{
						{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
							Metric: autoscalingv2.MetricIdentifier{Name: "emqx_live_connections"},
							Target: autoscalingv2.MetricTarget{
								Type:         autoscalingv2.AverageValueMetricType,
								AverageValue: resource.NewQuantity(1000, resource.DecimalSI),
							}}},
					},
					Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
						ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &zero},
					},
				}}
			if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa,
				metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			stop := timeline(t, cfg, ns)
			defer stop()

			connectClients(t, ns+"/emqx", 3600) // 1,800 per pod: the HPA wants 4
			eventually(t, 120*time.Second, "the HPA to scale to 4", func() bool {
				s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "emqx", metav1.GetOptions{})
				return err == nil && s.Status.ReadyReplicas == 4
			})
			eventually(t, 120*time.Second, "the automatic rebalance to end", func() bool {
				return len(
					events(t, cfg, ns, "RebalanceCompleted"),
				)+len(
					events(t, cfg, ns, "RebalanceNotBalanced"),
				)+len(
					events(t, cfg, ns, "RebalanceAborted"),
				) > 0
			})
			if n := len(events(t, cfg, ns, "RebalanceCompleted")); n != 1 {
				t.Fatalf("the rebalance after the scale-up did not complete balanced (%d RebalanceCompleted)", n)
			}
			expectNothingLost(t, ns, 3600)
			for _, n := range simStats(t, ns+"/emqx").Nodes {
				if n.LiveConnections < 500 {
					t.Fatalf("after the rebalance %s holds %d connections", n.Name, n.LiveConnections)
				}
			}

			sim(t, "POST", "/sim/v1/disconnect", ns+"/emqx", map[string]any{"clients": 3000})
			eventually(t, 240*time.Second, "the HPA to scale back to 2", func() bool {
				s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "emqx", metav1.GetOptions{})
				return err == nil && s.Status.Replicas == 2 && *s.Spec.Replicas == 2
			})
			expectNothingLost(t, ns, 600)
			eventually(t, 60*time.Second, "the removed nodes to leave the cluster", func() bool {
				nodes := simStats(t, ns+"/emqx").Nodes
				for _, n := range nodes {
					if !n.Running {
						return false
					}
				}
				return len(nodes) == 2
			})
			if n := len(events(t, cfg, ns, "NodeLeftCluster")); n != 2 {
				t.Fatalf("%d NodeLeftCluster events, want 2", n)
			}
			if n := len(events(t, cfg, ns, "RebalanceStarted")); n != 1 {
				t.Fatalf("%d automatic rebalances started, want 1 (the scale-down must not start one)", n)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// timeline logs, every 2 s and once more when stopped, the StatefulSet's replicas, the HPA's view
// and each node's live connections.
func timeline(t *testing.T, cfg *envconf.Config, ns string) func() {
	cs := clientset(t, cfg)
	start := time.Now()
	sample := func() {
		line := fmt.Sprintf("t=%3.0fs", time.Since(start).Seconds())
		if s, err := cs.AppsV1().StatefulSets(ns).Get(context.Background(), "emqx", metav1.GetOptions{}); err == nil {
			line += fmt.Sprintf(" replicas %d (ready %d)", *s.Spec.Replicas, s.Status.ReadyReplicas)
		}
		if h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(context.Background(), "emqx",
			metav1.GetOptions{}); err == nil {
			line += fmt.Sprintf(" hpa desired %d", h.Status.DesiredReplicas)
			for _, m := range h.Status.CurrentMetrics {
				if m.Pods != nil && m.Pods.Current.AverageValue != nil {
					line += " avg " + m.Pods.Current.AverageValue.String()
				}
			}
		}
		if st, err := simStatsErr(ns + "/emqx"); err == nil {
			var per []string
			for _, n := range st.Nodes {
				state := ""
				if !n.Running {
					state = " stopped"
				} else if n.Evacuation != "" {
					state = " " + n.Evacuation
				}
				per = append(
					per,
					fmt.Sprintf(
						"%s=%d%s",
						strings.SplitN(strings.TrimPrefix(n.Name, "emqx@"), ".", 2)[0],
						n.LiveConnections,
						state,
					),
				)
			}
			line += " | " + strings.Join(per, " ")
		}
		t.Log(line)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			sample()
			select {
			case <-done:
				sample()
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
