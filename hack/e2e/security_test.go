//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/certs/certstest"
)

// A drain whose eviction a PodDisruptionBudget refuses starts no evacuation: the webhook runs
// before the API server's budget check, and each retry would otherwise keep the node evacuated
// while the eviction never happens.
func TestDrainRefusedByABudgetStartsNothing(t *testing.T) {
	f := features.New("PodDisruptionBudget").
		Assess("no evacuation behind a refusing budget",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				installWebhook(t, cfg)
				ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 900)
				cs := clientset(t, cfg)
				all := intstr.FromInt32(3)
				pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: ns},
					Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &all,
						Selector: &metav1.LabelSelector{
							MatchLabels: map[string]string{"app.kubernetes.io/instance": "emqx"},
						}}}
				if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb,
					metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				eventually(t, 30*time.Second, "the disruption controller's verdict", func() bool {
					got, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "emqx", metav1.GetOptions{})
					return err == nil && got.Status.ObservedGeneration == got.Generation &&
						got.Status.CurrentHealthy == 3 &&
						got.Status.DisruptionsAllowed == 0
				})
				pod, err := cs.CoreV1().Pods(ns).Get(ctx, "emqx-1", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _, _ = runKubectlErr("uncordon", pod.Spec.NodeName) })
				out, err := runKubectlErr(
					"drain",
					pod.Spec.NodeName,
					"--ignore-daemonsets",
					"--delete-emptydir-data",
					"--timeout=15s",
					"--pod-selector",
					helmSelector,
				)
				if err == nil || !strings.Contains(out, "PodDisruptionBudget emqx allows no disruption of pod emqx-1") {
					t.Fatalf("the drain was not refused for the budget:\n%s", out)
				}
				if started := events(t, cfg, ns, "EvacuationStarted"); len(started) != 0 {
					t.Fatalf("an evacuation started behind a refusing budget: %v", started[0].Message)
				}
				for _, n := range simStats(t, ns+"/emqx").Nodes {
					if n.Evacuation != "" {
						t.Fatalf("node %s is evacuating (%s)", n.Name, n.Evacuation)
					}
				}
				expectNothingLost(t, ns, 900)
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

// A stolen webhook token can set nothing of a pod's status but the routing gate's condition, and
// that only on pods that carry the gate: not its IP (which would redirect a Service), its phase
// (an EMQX pod marked Failed goes unevacuated) or its container statuses. Enforced by the
// manifests' ValidatingAdmissionPolicy on the real API server.
func TestWebhookAccountCannotRewritePodStatus(t *testing.T) {
	f := features.New("the webhook's account").
		Assess("refused a podIP patch", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			installWebhook(t, cfg)
			ns := webhookCluster(t, cfg, "helm-emqx.yaml", 1, 0)
			restCfg, err := clientcmd.BuildConfigFromFlags("", serviceAccountKubeconfig(t, cfg))
			if err != nil {
				t.Fatal(err)
			}
			as, err := kubernetes.NewForConfig(restCfg)
			if err != nil {
				t.Fatal(err)
			}
			pod0, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-0", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A merge patch replaces the conditions: they are kept, with the gate's condition added.
			conds, _ := json.Marshal(
				append(
					pod0.Status.Conditions,
					corev1.PodCondition{Type: "emqx.kubectl-emqx.io/serving", Status: "False"},
				),
			)
			for what, patch := range map[string]string{
				"podIP": `{"status":{"podIP":"198.18.200.1","podIPs":[{"ip":"198.18.200.1"}]}}`,
				"phase": `{"status":{"phase":"Failed"}}`,
				"readiness gate condition on an ungated pod": "",
			} {
				if patch == "" {
					patch = `{"status":{"conditions":` + string(conds) + `}}`
				}
				_, err := as.CoreV1().
					Pods(ns).
					Patch(ctx, "emqx-0", types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
				if err == nil || !strings.Contains(err.Error(), "emqx-webhook may") {
					t.Errorf("a %s patch by the webhook's account: %v, want refused by the admission policy", what, err)
				}
			}
			pod, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-0", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if pod.Status.PodIP == "198.18.200.1" || pod.Status.Phase != "Running" {
				t.Fatalf("the pod's status changed: %s %s", pod.Status.PodIP, pod.Status.Phase)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// forgedReview is an AdmissionReview as the API server would send it, for anyone to post.
func forgedReview(req map[string]any) []byte {
	req["uid"] = fmt.Sprintf("forged-%d", time.Now().UnixNano())
	req["userInfo"] = map[string]any{"username": "system:serviceaccount:kube-system:forger"}
	b, _ := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
	return b
}

func evictionReview(ns, pod string) []byte {
	return forgedReview(map[string]any{"kind": map[string]any{"group": "policy", "version": "v1", "kind": "Eviction"},
		"resource": map[string]any{"group": "", "version": "v1", "resource": "pods"}, "subResource": "eviction",
		"name": pod, "namespace": ns, "operation": "CREATE",
		"object": map[string]any{
			"apiVersion": "policy/v1",
			"kind":       "Eviction",
			"metadata":   map[string]any{"name": pod, "namespace": ns},
		}})
}

func scaleReview(ns, sts string, from, to int) []byte {
	return forgedReview(map[string]any{"kind": map[string]any{"group": "autoscaling", "version": "v1", "kind": "Scale"},
		"resource": map[string]any{
			"group":    "apps",
			"version":  "v1",
			"resource": "statefulsets",
		}, "subResource": "scale",
		"name": sts, "namespace": ns, "operation": "UPDATE",
		"object": map[string]any{
			"apiVersion": "autoscaling/v1",
			"kind":       "Scale",
			"spec":       map[string]any{"replicas": to},
		},
		"oldObject": map[string]any{
			"apiVersion": "autoscaling/v1",
			"kind":       "Scale",
			"spec":       map[string]any{"replicas": from},
		}})
}

// reviewAnswer is what the webhook answered a posted review.
type reviewAnswer struct {
	Response struct {
		Allowed bool `json:"allowed"`
		Status  struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	} `json:"response"`
}

// postReview sends body to the webhook's path at 127.0.0.1:port as any pod could, presenting
// certs (none when empty). An error is the webhook refusing the connection or the request.
func postReview(port int, path string, body []byte, certs ...tls.Certificate) (reviewAnswer, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // #nosec G402 -- the caller is the attacker here; the server side is under test
		Certificates:       certs}}}
	var a reviewAnswer
	resp, err := c.Post(fmt.Sprintf("https://127.0.0.1:%d%s", port, path), "application/json", bytes.NewReader(body))
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return a, json.NewDecoder(resp.Body).Decode(&a)
}

func noEvacuation(t *testing.T, cfg *envconf.Config, ns string) {
	t.Helper()
	if started := events(t, cfg, ns, "EvacuationStarted"); len(started) != 0 {
		t.Fatalf("an evacuation started: %s", started[0].Message)
	}
	for _, n := range simStats(t, ns+"/emqx").Nodes {
		if n.Evacuation != "" {
			t.Fatalf("node %s is evacuating (%s)", n.Name, n.Evacuation)
		}
	}
}

// With client authentication on (--client-ca-file, the API server presenting its certificate
// through its AdmissionConfiguration, as every e2e webhook runs), a forged eviction and a forged
// scale-down posted by anyone else are refused during the TLS handshake and start nothing, with no
// certificate or with one of another CA. The negative control: the same eviction presented with
// the API server's certificate is acted on, so the refusal is the certificate's doing; and a
// review that does not match live state is answered without a replica count.
func TestForgedReviewsRefusedAtTLS(t *testing.T) {
	f := features.New("client authentication").
		Assess("forged reviews refused at TLS",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				p := installWebhook(t, cfg)
				ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 600)
				other := certstest.NewCA(t, "other").
					Issue(t, "kube-apiserver-webhook-client", x509.ExtKeyUsageClientAuth, nil)
				for what, body := range map[string][]byte{
					"eviction": evictionReview(ns, "emqx-1"),
					"scale":    scaleReview(ns, "emqx", 3, 2),
				} {
					path := map[string]string{"eviction": "/evict", "scale": "/scale"}[what]
					for who, certs := range map[string][]tls.Certificate{
						"no certificate":           nil,
						"another CA's certificate": {other},
					} {
						if a, err := postReview(p.port, path, body, certs...); err == nil {
							t.Errorf("a forged %s with %s was answered: %+v", what, who, a.Response)
						} else if !strings.Contains(err.Error(), "certificate") {
							t.Errorf("a forged %s with %s failed, but not at TLS: %v", what, who, err)
						}
					}
				}
				time.Sleep(2 * time.Second)
				noEvacuation(t, cfg, ns)

				apiserver, err := tls.LoadX509KeyPair(
					filepath.Join(webhookClientDir(), "client.crt"),
					filepath.Join(webhookClientDir(), "client.key"),
				)
				if err != nil {
					t.Fatal(err)
				}
				a, err := postReview(p.port, "/scale", scaleReview(ns, "emqx", 7, 1), apiserver)
				if err != nil || !a.Response.Allowed || a.Response.Status.Message != "" {
					t.Fatalf(
						"a scale with a wrong count, with the API server's certificate: %+v, %v; "+
							"want allowed with nothing said",
						a.Response,
						err,
					)
				}
				noEvacuation(t, cfg, ns)
				a, err = postReview(p.port, "/evict", evictionReview(ns, "emqx-1"), apiserver)
				if err != nil || a.Response.Allowed || a.Response.Status.Code != http.StatusTooManyRequests {
					t.Fatalf("the eviction with the API server's certificate: %+v, %v; want held", a.Response, err)
				}
				eventually(
					t,
					10*time.Second,
					"the control: an evacuation started",
					func() bool { return len(events(t, cfg, ns, "EvacuationStarted")) == 1 },
				)
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

// With client authentication off (managed control planes), a replayed eviction — the same review
// posted every 2 s, for ever — cannot keep a node evacuated: the requests after its node became
// empty count only within the evacuation time limit, so the evacuation is abandoned at most
// evacuation-timeout + abandon-after after the node became empty (README's bound; 20 s + 15 s
// here), and for abandon-after no new one starts, whoever keeps asking: the node takes clients.
func TestReplayedEvictionCannotKeepANodeEvacuated(t *testing.T) {
	f := features.New("replayed eviction").
		Assess("abandoned within the bound",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				p := installWebhook(t, cfg, "--client-ca-file=")
				ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 300)
				runKubectl(
					t,
					"-n",
					ns,
					"annotate",
					"statefulset",
					"emqx",
					"emqx.kubectl-emqx.io/evacuation-timeout=20s",
					"emqx.kubectl-emqx.io/abandon-after=15s",
				)
				const timeLimit, abandonAfter = 20 * time.Second, 15 * time.Second
				evacuating := func() string {
					for _, n := range simStats(t, ns+"/emqx").Nodes {
						if strings.HasPrefix(n.Name, "emqx@emqx-1.") {
							return n.Evacuation
						}
					}
					return "?"
				}
				var empty, abandoned time.Time
				var last reviewAnswer
				deadline := time.Now().Add(timeLimit + abandonAfter + 60*time.Second)
				for time.Now().Before(deadline) && abandoned.IsZero() {
					a, err := postReview(p.port, "/evict", evictionReview(ns, "emqx-1"))
					if err != nil {
						t.Fatalf("the replayed eviction: %v", err)
					}
					last = a
					if a.Response.Allowed && empty.IsZero() {
						empty = time.Now() // the webhook lets it go: the node is empty
					}
					if !empty.IsZero() && evacuating() == "" {
						abandoned = time.Now()
					}
					time.Sleep(2 * time.Second)
				}
				switch {
				case empty.IsZero():
					t.Fatalf("the node never became empty; the last answer: %+v", last.Response)
				case abandoned.IsZero():
					t.Fatalf(
						"the node was still evacuated %v after it became empty, replays kept it",
						time.Since(empty).Round(time.Second),
					)
				}
				// The bound, plus the controller's poll and the replay's period.
				if took := abandoned.Sub(empty); took > timeLimit+abandonAfter+8*time.Second {
					t.Fatalf(
						"abandoned %v after the node became empty, past the bound of %v",
						took.Round(time.Second),
						timeLimit+abandonAfter,
					)
				}
				t.Logf(
					"replayed every 2 s: empty, then abandoned %v later (bound %v)",
					abandoned.Sub(empty).Round(time.Second),
					timeLimit+abandonAfter,
				)
				eventually(t, 10*time.Second, "one EvacuationAbandoned Event", func() bool {
					return len(events(t, cfg, ns, "EvacuationAbandoned")) == 1
				})
				// The node takes clients again; the replays go on, and for abandon-after none starts a new
				// evacuation of it.
				connectClients(t, ns+"/emqx", 300)
				eventually(t, 5*time.Second, "clients on emqx-1 again", func() bool {
					for _, n := range simStats(t, ns+"/emqx").Nodes {
						if strings.HasPrefix(n.Name, "emqx@emqx-1.") {
							return n.LiveConnections > 0
						}
					}
					return false
				})
				end := abandoned.Add(abandonAfter - 3*time.Second)
				for ; time.Now().Before(end); time.Sleep(2 * time.Second) {
					a, err := postReview(p.port, "/evict", evictionReview(ns, "emqx-1"))
					if err != nil || a.Response.Allowed ||
						!strings.Contains(a.Response.Status.Message, "was abandoned at") {
						t.Fatalf("a replay after the abandonment: %+v, %v; want held, nothing started", a.Response, err)
					}
					if state := evacuating(); state != "" {
						t.Fatalf("emqx-1 evacuates again (%s) within abandon-after of its abandonment", state)
					}
				}
				if n := len(events(t, cfg, ns, "EvacuationStarted")); n != 1 {
					t.Fatalf("%d evacuations started, want the one the replays began with", n)
				}
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

// The namespaced install (the chart's watchNamespaces): the webhook's account reads and annotates
// only the namespaces that run EMQX (Roles there), so a stolen token reads no other namespace's
// Secrets or pods; the webhook guards a scale-down there with those Roles alone, and an EMQX pod
// elsewhere never reaches it.
func TestNamespacedInstall(t *testing.T) {
	f := features.New("namespaced install").
		Assess("Roles in EMQX's namespace only",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				ns, elsewhere := newNamespace(t, cfg), newNamespace(t, cfg)
				installRendered(
					t,
					cfg,
					helmTemplate(t, webhookNS, "watchNamespaces={"+ns+"}"),
					true,
					"--watch-namespace",
					ns,
				)
				as := "--as=system:serviceaccount:" + webhookNS + ":emqx-webhook"
				for what, want := range map[string]string{
					"get secrets -n " + ns:        "yes",
					"patch pods -n " + ns:         "yes",
					"get secrets -n " + elsewhere: "no",
					"list pods -n " + elsewhere:   "no",
					"get secrets -A":              "no",
					"list pods -A":                "no",
				} {
					out, _ := runKubectlErr(append([]string{"auth", "can-i", as}, strings.Fields(what)...)...)
					if got := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]); got != want {
						t.Errorf("the webhook's account may %s: %q, want %s", what, out, want)
					}
				}
				emqxIn(t, cfg, ns, "helm-emqx.yaml", 3, 900)
				emqxIn(t, cfg, elsewhere, "helm-emqx.yaml", 2, 600)
				// Clients reach only Ready pods: until emqx-1 holds sessions, its loss could show nothing.
				eventually(t, 20*time.Second, "sessions on emqx-1 elsewhere", func() bool {
					for _, n := range simStats(t, elsewhere+"/emqx").Nodes {
						if strings.HasPrefix(n.Name, "emqx@emqx-1.") && n.PersistentSessions > 0 {
							return true
						}
					}
					connectClients(t, elsewhere+"/emqx", 50)
					return false
				})
				cs := clientset(t, cfg)
				scaleDownTo(t, cs, ns, 2, 900)
				if len(events(t, cfg, ns, "EvacuationStarted")) != 1 {
					t.Fatal("the namespaced webhook started no evacuation in its namespace")
				}
				runKubectl(t, "-n", elsewhere, "scale", "statefulset/emqx", "--replicas=1")
				eventually(t, 30*time.Second, "emqx-1 gone elsewhere", func() bool {
					_, err := cs.CoreV1().Pods(elsewhere).Get(ctx, "emqx-1", metav1.GetOptions{})
					return err != nil
				})
				if len(events(t, cfg, elsewhere, "EvacuationStarted")) != 0 {
					t.Fatal("the namespaced webhook acted outside its namespaces")
				}
				eventually(t, 10*time.Second, "sessions lost elsewhere: unguarded there, as installed", func() bool {
					return simStats(t, elsewhere+"/emqx").LostSessions > 0
				})
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

// EMQX's dashboard over HTTPS (EMQX_DASHBOARD__LISTENERS__HTTPS__*, its certificate from a Secret
// volume, as a real EMQX reads it; the simulator serves it the same way): with the StatefulSet
// naming the dashboard's CA, the webhook reaches EMQX at the HTTPS port and guards a scale-down.
// The negative control: the same cluster with another CA named is never believed: the removal is
// held as "EMQX's API failed", and nothing starts.
func TestWebhookReachesEMQXOverHTTPS(t *testing.T) {
	f := features.New("EMQX over HTTPS").
		Assess("the dashboard's CA verified",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				installWebhook(t, cfg)
				cs := clientset(t, cfg)
				emqxHTTPS := func(ca, named certstest.CA) string {
					ns := newNamespace(t, cfg)
					labelWatched(t, cfg, ns)
					dns := "*.emqx-headless." + ns + ".svc"
					crt, key := certstest.PEM(t, ca.Issue(t, dns, x509.ExtKeyUsageServerAuth, []string{dns}))
					for name, data := range map[string]map[string][]byte{
						"emqx-dashboard-tls": {"tls.crt": crt, "tls.key": key},
						"emqx-dashboard-ca":  {"ca.crt": named.PEM},
					} {
						secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}
						if _, err := cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
							t.Fatal(err)
						}
					}
					applyFixtureWith(t, cfg, "helm-emqx.yaml", ns, 3, func(o k8s.Object) {
						sts, ok := o.(*appsv1.StatefulSet)
						if !ok {
							return
						}
						sts.Annotations = map[string]string{
							"emqx.kubectl-emqx.io/dashboard-ca-secret": "emqx-dashboard-ca",
							"emqx.kubectl-emqx.io/wait-health-check":   "2",
							"emqx.kubectl-emqx.io/wait-takeover":       "2",
						}
						spec := &sts.Spec.Template.Spec
						spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "dashboard-tls",
							VolumeSource: corev1.VolumeSource{
								Secret: &corev1.SecretVolumeSource{SecretName: "emqx-dashboard-tls"},
							}})
						c := &spec.Containers[0]
						c.VolumeMounts = append(
							c.VolumeMounts,
							corev1.VolumeMount{
								Name:      "dashboard-tls",
								MountPath: "/opt/emqx/etc/dashboard-tls",
								ReadOnly:  true,
							},
						)
						c.Ports = append(c.Ports, corev1.ContainerPort{Name: "dashboardtls", ContainerPort: 18084})
						c.Env = append(
							c.Env,
							corev1.EnvVar{Name: "EMQX_DASHBOARD__LISTENERS__HTTPS__ENABLE", Value: "true"},
							corev1.EnvVar{Name: "EMQX_DASHBOARD__LISTENERS__HTTPS__BIND", Value: "0.0.0.0:18084"},
							corev1.EnvVar{
								Name:  "EMQX_DASHBOARD__LISTENERS__HTTPS__SSL_OPTIONS__CERTFILE",
								Value: "/opt/emqx/etc/dashboard-tls/tls.crt",
							},
							corev1.EnvVar{
								Name:  "EMQX_DASHBOARD__LISTENERS__HTTPS__SSL_OPTIONS__KEYFILE",
								Value: "/opt/emqx/etc/dashboard-tls/tls.key",
							},
						)
					})
					waitPods(t, cfg, ns, helmSelector, 3)
					simNodesReady(t, ns+"/emqx", 3)
					connectClients(t, ns+"/emqx", 600)
					return ns
				}
				ca := certstest.NewCA(t, "emqx-dashboard-ca")
				ns := emqxHTTPS(ca, ca)
				scaleDownTo(t, cs, ns, 2, 600)
				if len(events(t, cfg, ns, "EvacuationStarted")) != 1 {
					t.Fatal("no evacuation started over HTTPS")
				}

				// The control: the CA named is not the one that signed the dashboard's certificate.
				wrong := emqxHTTPS(certstest.NewCA(t, "signer"), certstest.NewCA(t, "named"))
				out, err := runKubectlErr("-n", wrong, "delete", "pod", "emqx-1", "--wait=false")
				if err == nil || !strings.Contains(out, "is not from the CA") {
					t.Fatalf("a deletion with EMQX's certificate unverifiable: %v\n%s", err, out)
				}
				if len(events(t, cfg, wrong, "EvacuationStarted")) != 0 {
					t.Fatal("an evacuation started through an unverified EMQX")
				}
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}
