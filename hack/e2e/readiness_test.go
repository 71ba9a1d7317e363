//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// installShape is one way users run EMQX, as its pods' readiness behaves.
type installShape struct {
	name     string
	fixture  string
	selector string
	sts      string // the StatefulSet to scale and restart
	pods     int
	creds    emqx.Credentials
	mutate   func(k8s.Object) // changes to the fixture's objects, or nil
	// followsEvacuation: the pod turns NotReady while its node evacuates.
	followsEvacuation bool
}

// availabilityProbe makes the chart's readinessProbe EMQX's availability_check, a hardening
// users apply since EMQX 5.4 made that endpoint public.
func availabilityProbe(obj k8s.Object) {
	if sts, ok := obj.(*appsv1.StatefulSet); ok {
		p := sts.Spec.Template.Spec.Containers[0].ReadinessProbe
		p.HTTPGet.Path = "/api/v5/load_rebalance/availability_check"
		p.InitialDelaySeconds, p.PeriodSeconds, p.FailureThreshold = 0, 1, 1
	}
}

var installShapes = []installShape{
	{
		"operator 2.x (readiness gate)",
		"operator-emqx.yaml",
		"apps.emqx.io/instance=emqx",
		"emqx-core-5d4b8c7f9",
		4,
		operatorKey,
		nil,
		true,
	},
	{
		"operator 3.x (availability_check probe)",
		"operator3-emqx.yaml",
		"apps.emqx.io/instance=emqx",
		"emqx-core-5d4b8c7f9",
		4,
		operatorKey,
		nil,
		true,
	},
	{
		"Helm chart (/status probe)",
		"helm-chart.yaml",
		helmSelector,
		"emqx-emqx-enterprise",
		3,
		helmDashboard,
		nil,
		false,
	},
	{
		"Helm chart with an availability_check probe",
		"helm-chart.yaml",
		helmSelector,
		"emqx-emqx-enterprise",
		3,
		helmDashboard,
		availabilityProbe,
		true,
	},
}

// shapeCluster creates one install shape with clients, in a namespace the webhook watches when
// watched is true.
func shapeCluster(t *testing.T, cfg *envconf.Config, s installShape, clients int, watched bool) (string, []corev1.Pod) {
	t.Helper()
	ns := newNamespace(t, cfg)
	if watched {
		labelWatched(t, cfg, ns)
	}
	applyFixtureWith(t, cfg, s.fixture, ns, 3, s.mutate)
	pods := waitPods(t, cfg, ns, s.selector, s.pods)
	simNodesReady(t, ns+"/emqx", s.pods)
	if clients > 0 { // every node takes its share: a scale-down's victim holds clients
		connectClients(t, ns+"/emqx", clients)
		eventually(t, 20*time.Second, "every client connected", func() bool {
			st := simStats(t, ns+"/emqx")
			return st.ReconnectingClients == 0 && st.ConnectedClients == int64(clients)
		})
	}
	return ns, pods
}

func podReady(t *testing.T, cfg *envconf.Config, ns, name string) bool {
	t.Helper()
	p, err := clientset(t, cfg).CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	return err == nil && ready(p)
}

// The simulated world behaves like the real one around EMQX: where the install's readiness
// follows availability_check, a pod turns NotReady as soon as its node starts evacuating, while
// the node still holds its sessions. Negative control: removing such a pod then, as the old
// "not Ready: nothing to evacuate" rule allowed, loses them. Where the readiness probe is /status
// (the Helm chart), the pod stays Ready.
func TestReadinessFollowsEvacuationAndNotReadyPodsStillHoldSessions(t *testing.T) {
	f := features.New("readiness").
		Assess("per install shape", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			for _, s := range installShapes {
				t.Run(s.name, func(t *testing.T) {
					ns, pods := shapeCluster(t, cfg, s, 2000, false)
					victim := pods[len(pods)-1]
					c := nodeClient(t, victim, s.creds)
					nodes, err := c.Nodes(ctx)
					if err != nil {
						t.Fatal(err)
					}
					var node emqx.Node
					for _, n := range nodes {
						if n.Node == nodeOfPodName(t, nodes, victim) {
							node = n
						}
					}
					if node.Connections == 0 {
						t.Fatalf("node of %s holds no session: %+v", victim.Name, nodes)
					}
					rate := int64(1)
					if err := c.StartEvacuation(ctx, node.Node, emqx.EvacuationRequest{
						ConnEvictRate: &rate,
						SessEvictRate: &rate,
					}); err != nil {
						t.Fatal(err)
					}
					if !s.followsEvacuation {
						time.Sleep(5 * time.Second)
						if !podReady(t, cfg, ns, victim.Name) {
							t.Fatalf(
								"%s turned NotReady while evacuating; its /status probe should keep it Ready",
								victim.Name,
							)
						}
						return
					}
					eventually(
						t,
						15*time.Second,
						victim.Name+" NotReady while evacuating",
						func() bool { return !podReady(t, cfg, ns, victim.Name) },
					)
					held := int64(0)
					for _, n := range simStats(t, ns+"/emqx").Nodes {
						if n.Name == node.Node {
							held = n.PersistentSessions
						}
					}
					if held == 0 {
						t.Fatal("the NotReady pod's node already holds nothing; the control proves nothing")
					}
					runKubectl(t, "-n", ns, "delete", "pod", victim.Name, "--wait=false")
					var lost int64
					eventually(t, 15*time.Second, "sessions of the deleted NotReady pod counted lost", func() bool {
						lost = simStats(t, ns+"/emqx").LostSessions
						return lost > 0
					})
					t.Logf(
						"%s: NotReady pod deleted while evacuating, %d sessions lost (it held %d)",
						s.name,
						lost,
						held,
					)
				})
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// nodeOfPodName finds the pod's node in a node list the way the webhook does.
func nodeOfPodName(t *testing.T, nodes []emqx.Node, pod corev1.Pod) string {
	t.Helper()
	for _, n := range nodes {
		host := n.Node[strings.Index(n.Node, "@")+1:]
		if host == pod.Status.PodIP || strings.HasPrefix(host, pod.Name+".") {
			return n.Node
		}
	}
	t.Fatalf("no node of pod %s in %v", pod.Name, nodes)
	return ""
}

// With the webhook, drains, scale-downs and rolling restarts of every install shape lose nothing,
// whether or not the pods turn NotReady while they evacuate.
func TestWebhookHoldsEveryInstallShapeWithZeroLostSessions(t *testing.T) {
	f := features.New("install shapes").
		Assess("drain, scale, restart", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			// Slow evacuations (about 10 s a node), so that a NotReady pod is asked about while its node
			// still holds sessions: with faster ones a drain's 5 s retry would only come once it is empty.
			installWebhook(t, cfg, "--conn-evict-rate", "10", "--sess-evict-rate", "10")
			waitController(t, cfg)
			const clients = 2000
			routed := installShape{
				"Helm chart with the routing gate",
				"helm-chart.yaml",
				helmSelector,
				"emqx-emqx-enterprise",
				3,
				helmDashboard,
				withRouting,
				true,
			}
			for _, s := range append(installShapes, routed) {
				t.Run(s.name+"/drain", func(t *testing.T) {
					ns, pods := shapeCluster(t, cfg, s, clients, true)
					node := pods[len(pods)-1].Spec.NodeName
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
					if !strings.Contains(out, "drained") || !strings.Contains(out, "retrying is safe") {
						t.Fatalf("kubectl drain was not held, or did not finish:\n%s", out)
					}
					runKubectl(t, "uncordon", node)
					waitPods(t, cfg, ns, s.selector, s.pods)
					expectNothingLost(t, ns, clients)
				})
				t.Run(s.name+"/scale", func(t *testing.T) {
					ns, _ := shapeCluster(t, cfg, s, clients, true)
					var sts appsv1.StatefulSet
					if err := cfg.Client().Resources(ns).Get(ctx, s.sts, ns, &sts); err != nil {
						t.Fatal(err)
					}
					to := *sts.Spec.Replicas - 1
					out := runKubectl(t, "-n", ns, "scale", "statefulset/"+s.sts, fmt.Sprintf("--replicas=%d", to))
					if !strings.Contains(out, "are evacuated before they are removed") {
						t.Fatalf("no admission warning:\n%s", out)
					}
					waitPods(t, cfg, ns, s.selector, s.pods-1)
					expectNothingLost(t, ns, clients)
				})
				t.Run(s.name+"/rolling restart", func(t *testing.T) {
					ns, _ := shapeCluster(t, cfg, s, clients, true)
					runKubectl(t, "-n", ns, "rollout", "restart", "statefulset/"+s.sts)
					runKubectl(t, "-n", ns, "rollout", "status", "statefulset/"+s.sts, "--timeout=240s")
					waitPods(t, cfg, ns, s.selector, s.pods)
					expectNothingLost(t, ns, clients)
				})
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}
