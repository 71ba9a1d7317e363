//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// The webhook runs with the manifests' own namespace, names and RBAC: as the ServiceAccount
// emqx-webhook, so any permission the manifests lack fails these tests.
const (
	webhookNS     = "emqx-webhook"
	webhookConfig = "emqx-webhook"
	enabledLabel  = "kemqx-e2e/webhook"
)

// webhookProc is emqx-webhook running as a host process, reached by the API server through
// clientConfig.url with the CA its own rotator injected.
type webhookProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	logf   string
	args   []string
	env    []string // the Go runtime's settings of the rendered Deployment, as the pod would have them
	health string
	port   int // the admission port on 127.0.0.1
}

// goRuntimeEnv is the Go runtime's environment (GOGC, GOMEMLIMIT) of the Deployment's first
// container, as the kubelet would give it: literal values, and the memory limit in bytes.
func goRuntimeEnv(d *appsv1.Deployment) []string {
	c := d.Spec.Template.Spec.Containers[0]
	var out []string
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, "GO") {
			continue
		}
		switch {
		case e.ValueFrom == nil:
			out = append(out, e.Name+"="+e.Value)
		case e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			out = append(out, fmt.Sprintf("%s=%d", e.Name, c.Resources.Limits.Memory().Value()))
		}
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	// Below the kernel's ephemeral range (32768–60999 here): a port the kernel hands out for
	// ":0" is free only until this listener closes, and any outgoing connection to the API
	// server may take it as its source port before the webhook binds it (seen in CI: "bind:
	// address already in use" for a health port). Nothing here binds 20000–32767 on its own.
	for range 100 {
		port := 20000 + rand.IntN(32768-20000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port on 127.0.0.1 in 20000-32767 after 100 tries")
	return 0
}

// installWebhook registers the webhook configuration rendered from manifests/ (pointed at
// https://127.0.0.1:port, limited to namespaces labelled for this test, failurePolicy Fail so a
// webhook outage is seen) and starts the webhook with extra flags. The webhook requires the API
// server's client certificate (--client-ca-file; "--client-ca-file=" among extra turns it off):
// every test through it shows the API server presents one.
func installWebhook(t *testing.T, cfg *envconf.Config, extra ...string) *webhookProc {
	t.Helper()
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(repoRoot, "manifests")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize manifests: %v", err)
	}
	return installRendered(t, cfg, string(out), false, extra...)
}

// installRendered is installWebhook from a rendered install (kustomize's or the chart's):
// its RBAC and admission policies applied, its webhook configurations pointed at the process.
// keepSelectors keeps the configurations' namespace selectors (a namespaced install's own).
func installRendered(t *testing.T, cfg *envconf.Config, out string, keepSelectors bool, extra ...string) *webhookProc {
	t.Helper()
	cs := clientset(t, cfg)
	ctx := context.Background()
	waitWebhookNamespace(t, cs)
	port := freePort(t)
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	var mwc *admissionregistrationv1.MutatingWebhookConfiguration
	var rbac, runtimeEnv []string
	for _, doc := range strings.Split(out, "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("manifests/ renders an object the API does not know: %v", err)
		}
		switch o := obj.(type) {
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			vwc = o
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			mwc = o
		case *appsv1.Deployment:
			runtimeEnv = goRuntimeEnv(o)
		case *corev1.Namespace, *corev1.ServiceAccount,
			*rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding, *rbacv1.Role, *rbacv1.RoleBinding,
			*admissionregistrationv1.ValidatingAdmissionPolicy,
			*admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			rbac = append(rbac, doc)
		}
	}
	// The chart renders no Namespace (helm install --create-namespace makes it).
	_, _ = cs.CoreV1().
		Namespaces().
		Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: webhookNS}}, metav1.CreateOptions{})
	if vwc == nil || mwc == nil || len(rbac) < 6 {
		t.Fatalf("manifests/ renders no webhook configuration or not its RBAC (%d objects)", len(rbac))
	}
	apply := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(strings.Join(rbac, "\n---\n"))
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("apply the manifests' RBAC: %v\n%s", err, out)
	}
	fail := admissionregistrationv1.Fail
	for i := range vwc.Webhooks {
		w := &vwc.Webhooks[i]
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, *w.ClientConfig.Service.Path)
		w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
		if !keepSelectors {
			w.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{enabledLabel: "true"}}
		}
		w.FailurePolicy = &fail
	}
	// The routing gate's mutating webhook keeps the shipped failurePolicy (Ignore): its fail-safe
	// behaviour is part of what the tests check.
	for i := range mwc.Webhooks {
		w := &mwc.Webhooks[i]
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, *w.ClientConfig.Service.Path)
		w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
		if !keepSelectors {
			w.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{enabledLabel: "true"}}
		}
	}
	adm := cs.AdmissionregistrationV1()
	_ = adm.ValidatingWebhookConfigurations().Delete(ctx, webhookConfig, metav1.DeleteOptions{})
	_ = adm.MutatingWebhookConfigurations().Delete(ctx, webhookConfig, metav1.DeleteOptions{})
	if _, err := adm.ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = adm.ValidatingWebhookConfigurations().Delete(context.Background(), webhookConfig, metav1.DeleteOptions{})
		_ = adm.MutatingWebhookConfigurations().Delete(context.Background(), webhookConfig, metav1.DeleteOptions{})
	})
	p := &webhookProc{t: t, health: fmt.Sprintf("127.0.0.1:%d", freePort(t)), port: port, env: runtimeEnv}
	p.args = append(
		[]string{
			"--kubeconfig",
			serviceAccountKubeconfig(t, cfg),
			"--namespace",
			webhookNS,
			"--host",
			"127.0.0.1",
			"--port",
			fmt.Sprint(port),
			"--client-ca-file",
			filepath.Join(webhookClientDir(), "ca.crt"),
			"--tls-ip",
			"127.0.0.1",
			"--tls-dns-name",
			"localhost",
			"--webhook-config",
			webhookConfig,
			"--cert-dir",
			t.TempDir(),
			"--metrics-bind-address",
			"0",
			"--health-probe-bind-address",
			p.health,
			"--leader-elect=true",
			"--wait-health-check",
			"2s",
			"--wait-takeover",
			"2s",
			"--conn-evict-rate",
			"200",
			"--sess-evict-rate",
			"200",
			"--controller-poll",
			"300ms",
		},
		extra...)
	p.start()
	t.Cleanup(p.stop)
	eventually(t, 20*time.Second, "the CA injected into every webhook", func() bool {
		got, err := adm.ValidatingWebhookConfigurations().Get(ctx, webhookConfig, metav1.GetOptions{})
		if err != nil {
			return false
		}
		m, err := adm.MutatingWebhookConfigurations().Get(ctx, webhookConfig, metav1.GetOptions{})
		if err != nil || len(m.Webhooks[0].ClientConfig.CABundle) == 0 {
			return false
		}
		for _, w := range got.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false
			}
		}
		return true
	})
	return p
}

// waitWebhookNamespace waits until the webhook's namespace is not terminating: an earlier test may
// have deleted it, and nothing can be created in it until it is gone.
func waitWebhookNamespace(t *testing.T, cs *kubernetes.Clientset) {
	t.Helper()
	eventually(t, 90*time.Second, "namespace "+webhookNS+" not terminating", func() bool {
		n, err := cs.CoreV1().Namespaces().Get(context.Background(), webhookNS, metav1.GetOptions{})
		return apierrors.IsNotFound(err) || err == nil && n.DeletionTimestamp == nil
	})
}

// serviceAccountKubeconfig is a kubeconfig for the ServiceAccount emqx-webhook, with a token from
// the TokenRequest API, as the webhook has inside the cluster.
func serviceAccountKubeconfig(t *testing.T, cfg *envconf.Config) string {
	t.Helper()
	exp := int64(3600)
	tok, err := clientset(t, cfg).CoreV1().ServiceAccounts(webhookNS).CreateToken(context.Background(), "emqx-webhook",
		&authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp},
		}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	sa := clientcmdapi.NewConfig()
	sa.Clusters["kemqx"] = c
	sa.AuthInfos["emqx-webhook"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	sa.Contexts["emqx-webhook"] = &clientcmdapi.Context{Cluster: "kemqx", AuthInfo: "emqx-webhook"}
	sa.CurrentContext = "emqx-webhook"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*sa, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *webhookProc) start() {
	p.t.Helper()
	p.logf = filepath.Join(logDir, "emqx-webhook-"+sanitize(p.t.Name())+".log")
	logf, err := os.OpenFile(p.logf, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(filepath.Join(binDir, "emqx-webhook"), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), p.env...)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	go func() {
		_ = p.cmd.Wait()
		logf.Close()
		close(exited)
	}()
	eventually(p.t, 20*time.Second, "emqx-webhook ready", func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(p.logf)
			p.t.Fatalf("emqx-webhook exited before it was ready: %s", lastLine(string(b)))
		default:
		}
		resp, err := http.Get("http://" + p.health + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (p *webhookProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

func sanitize(s string) string { return strings.NewReplacer("/", "_", " ", "_").Replace(s) }

// webhookCluster is a Helm-shaped EMQX with clients, in a namespace the webhook watches.
func webhookCluster(t *testing.T, cfg *envconf.Config, fixture string, n, clients int) string {
	t.Helper()
	ns := newNamespace(t, cfg)
	labelWatched(t, cfg, ns)
	emqxIn(t, cfg, ns, fixture, n, clients)
	return ns
}

// emqxIn is a Helm-shaped EMQX of n pods with clients in ns.
func emqxIn(t *testing.T, cfg *envconf.Config, ns, fixture string, n, clients int) {
	t.Helper()
	if fixture == "helm-emqx-pvc.yaml" {
		makePVs(t, cfg, ns, n)
	}
	applyFixture(t, cfg, fixture, ns, n)
	waitPods(t, cfg, ns, helmSelector, n)
	simNodesReady(t, ns+"/emqx", n)
	if clients > 0 {
		connectClients(t, ns+"/emqx", clients)
	}
}

func expectNothingLost(t *testing.T, ns string, clients int64) {
	t.Helper()
	var s = simStats(t, ns+"/emqx")
	eventually(t, 20*time.Second, "every client connected again", func() bool {
		s = simStats(t, ns+"/emqx")
		return s.ReconnectingClients == 0
	})
	if s.LostSessions != 0 || s.ConnectedClients != clients {
		t.Fatalf("lost %d sessions; %d of %d clients connected", s.LostSessions, s.ConnectedClients, clients)
	}
}

// waitEvents waits until ns has Events of reason (the recorder sends them asynchronously) and
// returns them.
func waitEvents(t *testing.T, cfg *envconf.Config, ns, reason string) []corev1.Event {
	t.Helper()
	var evs []corev1.Event
	eventually(t, 10*time.Second, "an Event "+reason, func() bool {
		evs = events(t, cfg, ns, reason)
		return len(evs) > 0
	})
	return evs
}

func events(t *testing.T, cfg *envconf.Config, ns, reason string) []corev1.Event {
	t.Helper()
	list, err := clientset(
		t,
		cfg,
	).CoreV1().
		Events(ns).
		List(context.Background(), metav1.ListOptions{FieldSelector: "reason=" + reason})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func TestWebhookDrainCompletesWithZeroLostSessions(t *testing.T) {
	f := features.New("kubectl drain").
		Assess("waits for the evacuation",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				installWebhook(t, cfg)
				ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 3000)
				pod, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-1", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				node := pod.Spec.NodeName
				t.Cleanup(func() { _ = runKubectlQuiet("uncordon", node) })
				out := runKubectl(
					t,
					"drain",
					node,
					"--ignore-daemonsets",
					"--delete-emptydir-data",
					"--timeout=120s",
					"--pod-selector",
					helmSelector,
				)
				if !strings.Contains(out, "drained") || !strings.Contains(out, "will retry after") ||
					!strings.Contains(out, "retrying is safe") {
					t.Fatalf("kubectl drain was not held, or did not finish:\n%s", out)
				}
				waitPods(t, cfg, ns, helmSelector, 3) // recreated elsewhere
				expectNothingLost(t, ns, 3000)
				if len(events(t, cfg, ns, "EvacuationStarted")) == 0 ||
					len(events(t, cfg, ns, "EvacuationCompleted")) == 0 {
					t.Fatal("no EvacuationStarted/EvacuationCompleted events")
				}
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

func TestWebhookScaleDownCompletesWithZeroLostSessions(t *testing.T) {
	f := features.New("kubectl scale 3→2").
		Assess("nothing lost", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg)
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 3000)
			out := runKubectl(t, "-n", ns, "scale", "statefulset/emqx", "--replicas=2")
			if !strings.Contains(out, "Warning: EMQX pods emqx-2 are evacuated before they are removed") {
				t.Fatalf("no admission warning:\n%s", out)
			}
			// How long from the node being empty to the pod being gone.
			r := removalTimes(t, clientset(t, cfg), ns, ns+"/emqx", "emqx-2", 90*time.Second)
			if !r.empty.IsZero() {
				t.Logf("node empty → pod gone: %v", r.gone.Sub(r.empty).Round(10*time.Millisecond))
			}
			expectNothingLost(t, ns, 3000)
			// The removed core node leaves the EMQX cluster instead of staying listed as stopped.
			pod0, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-0", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 40*time.Second, "no stopped node left in /api/v5/nodes", func() bool {
				nodes, err := nodeClient(t, *pod0, helmDashboard).Nodes(ctx)
				if err != nil || len(nodes) != 2 {
					return false
				}
				for _, n := range nodes {
					if !n.Running() {
						return false
					}
				}
				return true
			})
			if len(events(t, cfg, ns, "NodeLeftCluster")) == 0 {
				t.Fatal("no NodeLeftCluster event")
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

func TestWebhookRollingRestartLosesNothing(t *testing.T) {
	f := features.New("rolling restart").
		Assess("nothing lost", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg)
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 3000)
			runKubectl(t, "-n", ns, "rollout", "restart", "statefulset/emqx")
			runKubectl(t, "-n", ns, "rollout", "status", "statefulset/emqx", "--timeout=180s")
			expectNothingLost(t, ns, 3000)
			if n := len(events(t, cfg, ns, "EvacuationStarted")); n < 3 {
				t.Fatalf("%d evacuations for 3 restarted pods", n)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// deleteUntilAllowed runs `kubectl delete pod` until the webhook lets it through, as a person
// retrying after "TooManyRequests" would; it returns the first refusal.
func deleteUntilAllowed(t *testing.T, ns, pod string, limit time.Duration) string {
	t.Helper()
	first := ""
	deadline := time.Now().Add(limit)
	for {
		out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "-n", ns, "delete", "pod", pod, "--wait=false").
			CombinedOutput()
		if err == nil {
			return first
		}
		if first == "" {
			first = string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl delete pod %s still refused after %v: %s", pod, limit, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestWebhookReopensRecreatedPodWithPersistedEvacuation(t *testing.T) {
	f := features.New("persisted evacuation").
		Assess("reopened", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg)
			ns := webhookCluster(t, cfg, "helm-emqx-pvc.yaml", 2, 1000)
			refusal := deleteUntilAllowed(t, ns, "emqx-0", 60*time.Second)
			if !strings.Contains(refusal, "TooManyRequests") || !strings.Contains(refusal, "retrying is safe") {
				t.Fatalf("the first delete was not held with 429: %q", refusal)
			}
			eventually(t, 60*time.Second, "emqx-0 recreated and reopened", func() bool {
				for _, n := range simStats(t, ns+"/emqx").Nodes {
					if strings.HasPrefix(n.Name, "emqx@emqx-0.") {
						return n.Evacuation == "" && n.Accepting &&
							len(events(t, cfg, ns, "StaleEvacuationStopped")) > 0
					}
				}
				return false
			})
			expectNothingLost(t, ns, 1000)
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

func TestWebhookEMQXAPIDownTakesTheConfiguredWayOut(t *testing.T) {
	f := features.New("EMQX API down").
		Assess("allowed after the grace period, with an Event",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				installWebhook(t, cfg, "--api-unreachable-grace", "3s")
				ns := webhookCluster(t, cfg, "helm-emqx.yaml", 2, 0)
				sim(t, http.MethodPost, "/sim/v1/api", ns+"/emqx&down=true", nil)
				t.Cleanup(func() { sim(t, http.MethodPost, "/sim/v1/api", ns+"/emqx&down=false", nil) })
				start := time.Now()
				refusal := deleteUntilAllowed(t, ns, "emqx-1", 30*time.Second)
				if !strings.Contains(refusal, "EMQX's API failed") {
					t.Fatalf("first refusal %q", refusal)
				}
				if waited := time.Since(start); waited < 3*time.Second {
					t.Fatalf("allowed after %v, before the 3s grace period", waited)
				}
				evs := waitEvents(t, cfg, ns, "EMQXUnreachable")
				if evs[0].Type != corev1.EventTypeWarning ||
					!strings.Contains(evs[0].Message, "removing the pod without evacuation") {
					t.Fatalf("events %+v", evs)
				}
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

func TestWebhookRestartMidEvacuation(t *testing.T) {
	f := features.New("webhook restart").
		Assess("no duplicate start, nothing lost",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				p := installWebhook(t, cfg, "--conn-evict-rate", "20")
				ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 3000)
				runKubectl(t, "-n", ns, "scale", "statefulset/emqx", "--replicas=2")
				var started string
				eventually(t, 20*time.Second, "emqx-2 evacuating", func() bool {
					pod, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-2", metav1.GetOptions{})
					if err != nil {
						return false
					}
					started = pod.Annotations["emqx.kubectl-emqx.io/evacuation-started-at"]
					return started != ""
				})
				p.stop()
				time.Sleep(2 * time.Second)
				p.start()
				eventually(t, 120*time.Second, "emqx-2 gone", func() bool {
					pod, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-2", metav1.GetOptions{})
					if apierrors.IsNotFound(err) {
						return true
					}
					if err == nil && pod.Annotations["emqx.kubectl-emqx.io/evacuation-started-at"] != started {
						t.Fatalf(
							"the evacuation was started again after the restart (%s, was %s)",
							pod.Annotations["emqx.kubectl-emqx.io/evacuation-started-at"],
							started,
						)
					}
					return false
				})
				if n := len(events(t, cfg, ns, "EvacuationStarted")); n != 1 {
					t.Fatalf("%d EvacuationStarted events, want 1", n)
				}
				expectNothingLost(t, ns, 3000)
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

func TestManifestsApplyToTheAPIServer(t *testing.T) {
	f := features.New("manifests").
		Assess("server-side dry run", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			webhookNamespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "emqx-webhook"}}
			if _, err := cs.CoreV1().Namespaces().Create(ctx, webhookNamespace, metav1.CreateOptions{}); err != nil &&
				!apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cs.CoreV1().Namespaces().Delete(context.Background(), "emqx-webhook", metav1.DeleteOptions{})
			})
			out := runKubectl(t, "apply", "--dry-run=server", "-k", filepath.Join(repoRoot, "manifests"))
			for _, want := range []string{
				"deployment.apps/emqx-webhook",
				"validatingwebhookconfiguration.admissionregistration.k8s.io/emqx-webhook",
				"poddisruptionbudget.policy/emqx-webhook",
				"clusterrole.rbac.authorization.k8s.io/emqx-webhook",
				"role.rbac.authorization.k8s.io/emqx-webhook",
			} {
				if !strings.Contains(out, want) {
					t.Fatalf("server-side dry run lacks %s:\n%s", want, out)
				}
			}
			out = runKubectl(t, "apply", "--dry-run=server", "-k", filepath.Join(repoRoot, "manifests", "autoscaling"))
			for _, want := range []string{
				"apiservice.apiregistration.k8s.io/v1beta2.custom.metrics.k8s.io",
				"rolebinding.rbac.authorization.k8s.io/emqx-webhook-auth-reader",
				"validatingadmissionpolicy.admissionregistration.k8s.io/emqx-webhook-apiservice-cabundle-only",
			} {
				if !strings.Contains(out, want) {
					t.Fatalf("server-side dry run of manifests/autoscaling lacks %s:\n%s", want, out)
				}
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// helm uninstall / kubectl delete sts while pods hold clients: the garbage collector's deletions
// are let through at once, with an Event, instead of evacuating the pods into each other.
func TestWebhookLetsAnUninstallThroughAtOnce(t *testing.T) {
	f := features.New("uninstall").
		Assess("allowed at once", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg)
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 3000)
			start := time.Now()
			runKubectl(t, "-n", ns, "delete", "statefulset", "emqx", "--wait=false")
			eventually(t, 30*time.Second, "every EMQX pod gone", func() bool {
				list, err := clientset(
					t,
					cfg,
				).CoreV1().
					Pods(ns).
					List(ctx, metav1.ListOptions{LabelSelector: helmSelector})
				return err == nil && len(list.Items) == 0
			})
			t.Logf(
				"3 pods holding 3000 clients gone %v after kubectl delete statefulset",
				time.Since(start).Round(100*time.Millisecond),
			)
			if len(events(t, cfg, ns, "OwnerDeleting")) == 0 {
				t.Fatal("no OwnerDeleting event")
			}
			if n := len(events(t, cfg, ns, "EvacuationStarted")); n != 0 {
				t.Fatalf("%d evacuations started for an uninstall", n)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// A drain that gives up: the evacuation it started completes, nobody asks for the removal any more,
// and within abandon-after the node accepts clients again. Nothing is lost.
func TestWebhookAbandonedDrainReopensTheNode(t *testing.T) {
	f := features.New("abandoned drain").
		Assess("node reopened", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg, "--abandon-after", "5s")
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 3000)
			pod, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			node := pod.Spec.NodeName
			t.Cleanup(
				func() { _, _ = exec.Command(kubectl, "--kubeconfig", kubeconfig, "uncordon", node).CombinedOutput() },
			)
			out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "drain", node, "--ignore-daemonsets",
				"--delete-emptydir-data",
				"--timeout=2s", "--pod-selector", helmSelector).
				CombinedOutput()
			if err == nil || !strings.Contains(string(out), "retrying is safe") {
				t.Fatalf("the drain was not held and given up: %v\n%s", err, out)
			}
			start := time.Now()
			eventually(t, 90*time.Second, "emqx-1's node evacuated, then reopened", func() bool {
				return len(events(t, cfg, ns, "EvacuationAbandoned")) > 0
			})
			for _, n := range simStats(t, ns+"/emqx").Nodes {
				if strings.HasPrefix(n.Name, "emqx@emqx-1.") && (n.Evacuation != "" || !n.Accepting) {
					t.Fatalf("node %+v still refuses clients after the abandonment", n)
				}
			}
			t.Logf("abandoned %v after the drain gave up", time.Since(start).Round(100*time.Millisecond))
			runKubectl(t, "uncordon", node)
			expectNothingLost(t, ns, 3000)
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// The webhook's ServiceAccount may patch pods, StatefulSets and its webhook configurations (RBAC
// cannot say "annotations only"); the shipped admission policies make that all it can change.
// The webhook's own writes pass them in every other e2e test, which runs it as that account.
func TestServiceAccountMayChangeOnlyItsAnnotations(t *testing.T) {
	f := features.New("least privilege").
		Assess("admission policy", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg)
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 1, 0)
			sa := serviceAccountKubeconfig(t, cfg)
			as := func(args ...string) (string, error) {
				out, err := exec.Command(kubectl, append([]string{"--kubeconfig", sa, "-n", ns}, args...)...).
					CombinedOutput()
				return string(out), err
			}
			denied := "emqx-webhook may change only"
			var out string
			eventually(t, 30*time.Second, "the admission policy in force", func() bool {
				var err error
				out, err = as("set", "image", "pod/emqx-0", "emqx=evil.example/emqx:latest")
				return err != nil && strings.Contains(out, denied)
			})
			t.Logf("kubectl set image as emqx-webhook: %s", strings.TrimSpace(out))
			for _, args := range [][]string{
				{"annotate", "pod", "emqx-0", "other.example/x=1"},
				{"label", "pod", "emqx-0", "x=1"},
				{"scale", "statefulset", "emqx", "--replicas=0"},
				{
					"patch",
					"statefulset",
					"emqx",
					"--type=merge",
					"-p",
					`{"spec":{"template":{"spec":{"containers":[{"name":"emqx","image":"evil.example/emqx"}]}}}}`,
				},
				{
					"patch",
					"validatingwebhookconfiguration",
					webhookConfig,
					"--type=json",
					"-p",
					`[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Ignore"}]`,
				},
			} {
				if out, err := as(args...); err == nil ||
					!(strings.Contains(out, denied) || strings.Contains(out, "forbidden")) {
					t.Fatalf("kubectl %s as emqx-webhook: %v %s", strings.Join(args, " "), err, out)
				}
			}
			if out, err := as("annotate", "pod", "emqx-0", "emqx.kubectl-emqx.io/note=allowed"); err != nil {
				t.Fatalf("its own annotation was refused: %s", out)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// Audit mode (emqx.kubectl-emqx.io/mode=audit on the StatefulSet): the deletion of a busy EMQX
// pod goes through at once with a Warning Event that says what would have been held; nothing is
// evacuated, so its sessions are lost as without the webhook (observe only, as documented).
func TestAuditModeAllowsABusyPodsDeletionWithAWouldHoldEvent(t *testing.T) {
	f := features.New("audit mode").
		Assess("would hold", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg)
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 900)
			runKubectl(t, "-n", ns, "annotate", "statefulset", "emqx", "emqx.kubectl-emqx.io/mode=audit")
			// The webhook reads the annotation from its cache.
			time.Sleep(time.Second)
			runKubectl(t, "-n", ns, "delete", "pod", "emqx-1", "--wait=false")
			would := waitEvents(t, cfg, ns, "AuditWouldHold")
			if msg := would[0].Message; !strings.Contains(msg, "would hold: EMQX node emqx@emqx-1.") ||
				!strings.Contains(msg, "for about") {
				t.Fatalf("the Event does not say what would be held and for how long: %s", msg)
			}
			if len(events(t, cfg, ns, "EvacuationStarted")) != 0 {
				t.Fatal("audit mode started an evacuation")
			}
			eventually(t, 20*time.Second, "emqx-1's sessions lost: audit mode holds nothing", func() bool {
				return simStats(t, ns+"/emqx").LostSessions > 0
			})
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}
