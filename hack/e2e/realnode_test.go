//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// The webhook as users run it: its own image (make image), the shipped manifests through an overlay
// that only sets the image and the real node (make webhook-up, kubectl apply -k), two replicas on a
// real kubelet, the built-in certificate rotator behind the Service, leader election. The leader's
// pod is killed and the other takes over; then kubectl drain and kubectl scale of an EMQX
// StatefulSet (pods on the fake nodes) lose no session. Then the Helm chart, installed with helm
// install on the same node, guards a scale-down as well.
func TestShippedDeploymentOnARealNode(t *testing.T) {
	f := features.New("shipped Deployment").
		Assess("on a real kubelet", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			webhookUp(t, "self-signed", filepath.Join(repoRoot, "hack", "realnode"))
			for _, p := range webhookPods(t, cs) {
				if p.Spec.NodeName != "kemqx-real-0" || !ready(&p) || *p.Spec.SecurityContext.RunAsUser != 65532 {
					t.Fatalf("pod %s on %s, ready %v", p.Name, p.Spec.NodeName, ready(&p))
				}
			}
			// Leader election: kill the leader's pod, the other replica takes the lease.
			leader := func() string {
				l, err := cs.CoordinationV1().Leases(webhookNS).Get(ctx, "emqx-webhook-controller", metav1.GetOptions{})
				if err != nil || l.Spec.HolderIdentity == nil {
					return ""
				}
				return holderPod(l)
			}
			var first string
			eventually(t, 60*time.Second, "a leader", func() bool { first = leader(); return first != "" })
			zero := int64(0)
			if err := cs.CoreV1().Pods(webhookNS).Delete(ctx, first,
				metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 90*time.Second, "another replica to lead", func() bool {
				l := leader()
				return l != "" && l != first
			})
			runKubectl(t, "-n", webhookNS, "rollout", "status", "deployment/emqx-webhook", "--timeout=120s")

			// The shipped webhook guards a drain and a scale-down.
			ns := emqxWithClients(t, cfg, 1500)
			var p corev1.Pod
			if err := cfg.Client().Resources().Get(ctx, "emqx-1", ns, &p); err != nil {
				t.Fatal(err)
			}
			out := runKubectl(t, "drain", p.Spec.NodeName, "--ignore-daemonsets", "--delete-emptydir-data",
				"--pod-selector", "app.kubernetes.io/instance=emqx", "--timeout=180s")
			if !strings.Contains(out, "evacuating") {
				t.Fatalf("the drain was not held by the webhook:\n%s", out)
			}
			runKubectl(t, "uncordon", p.Spec.NodeName)
			waitPods(t, cfg, ns, helmSelector, 3)
			expectNothingLost(t, ns, 1500)
			scaleDownTo(t, cs, ns, 2, 1500)
			if len(events(t, cfg, ns, "EvacuationStarted")) < 2 {
				t.Fatal("the shipped webhook started fewer than two evacuations")
			}

			// The Helm chart installs the same thing: helm install on the real node, both replicas
			// ready (so their caches synced through the kubernetes Service), then it guards a removal.
			// With client authentication: each replica refuses a caller without the API server's
			// certificate at TLS, and the API server, presenting it, is answered.
			runKubectl(
				t,
				"delete",
				"-k",
				filepath.Join(repoRoot, "hack", "realnode"),
				"--ignore-not-found",
				"--wait=true",
				"--timeout=120s",
			)
			// The chart as released: packaged into a .tgz (links resolved), then installed from it.
			pkgDir := t.TempDir()
			if out, err := exec.Command(helmBin(t), "package",
				filepath.Join(repoRoot, "manifests", "helm", "emqx-webhook"),
				"-d", pkgDir).CombinedOutput(); err != nil {
				t.Fatalf("helm package: %v\n%s", err, out)
			}
			tgz, _ := filepath.Glob(filepath.Join(pkgDir, "emqx-webhook-*.tgz"))
			if len(tgz) != 1 {
				t.Fatalf("helm package made %v", tgz)
			}
			install := exec.Command(
				helmBin(t),
				"install",
				"emqx-webhook",
				tgz[0],
				"--kubeconfig",
				kubeconfig,
				"-n",
				webhookNS,
				"--create-namespace",
				"--wait",
				"--timeout",
				"180s",
				"--set",
				"clientAuth.enabled=true",
				"--set-file",
				"clientAuth.caBundle="+filepath.Join(webhookClientDir(), "ca.crt"),
				"--set",
				"clientAuth.allowedNames={kube-apiserver-webhook-client}",
				"--set",
				"image.tag=local",
				"--set-string",
				"nodeSelector.kemqx\\.io/real-node=true",
				"--set",
				"tolerations[0].key=kemqx.io/real-node",
				"--set",
				"tolerations[0].operator=Exists",
				"--set",
				"tolerations[0].effect=NoSchedule",
			)
			notes, err := install.CombinedOutput()
			if err != nil {
				t.Fatalf("helm install: %v\n%s", err, notes)
			}
			// The chart's NOTES say what was installed and how safe it is.
			for _, want := range []string{"It guards EMQX pods in every namespace but kube-system and " + webhookNS,
				"answers only the API server's client certificate", "kubectl emqx status"} {
				if !strings.Contains(string(notes), want) {
					t.Errorf("helm install's notes lack %q:\n%s", want, notes)
				}
			}
			t.Cleanup(func() {
				_ = exec.Command(helmBin(t), "uninstall", "emqx-webhook", "--kubeconfig", kubeconfig, "-n", webhookNS,
					"--wait").
					Run()
				_ = runKubectlQuiet("delete", "namespace", webhookNS, "--ignore-not-found", "--wait=false")
			})
			// The NetworkPolicy admits to the admission port what the kubernetes Service's
			// EndpointSlice named at install, and nothing else.
			slice, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			np, err := cs.NetworkingV1().NetworkPolicies(webhookNS).Get(ctx, "emqx-webhook", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var want, got []string
			for _, e := range slice.Endpoints {
				for _, a := range e.Addresses {
					want = append(want, a+"/32")
				}
			}
			for _, f := range np.Spec.Ingress[0].From {
				got = append(got, f.IPBlock.CIDR)
			}
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Fatalf("the admission port admits %v; the API server's endpoints are %v", got, want)
			}
			for _, p := range webhookPods(t, cs) {
				if err := refusedWithoutClientCert(net.JoinHostPort(p.Status.PodIP, "9443")); err != nil {
					t.Fatalf("pod %s: %v", p.Name, err)
				}
			}
			scaleDownTo(t, cs, ns, 1, 1500)
			// helm test: a pod of the image, bound to the metrics reader role, reads the webhook's
			// metrics through its Service. Then, with no replica serving, the same test fails.
			// This node has no kube-proxy: the Service's address is routed to a replica here, as
			// kube-proxy would (hairpin traffic masqueraded, so replies come back through the NAT).
			routeServiceToPod(t, cs, webhookNS, "emqx-webhook", 8443)
			helmTest := func() (string, error) {
				out, err := exec.Command(helmBin(t), "test", "emqx-webhook", "--kubeconfig", kubeconfig, "-n",
					webhookNS,
					"--timeout", "120s", "--logs").CombinedOutput()
				return string(out), err
			}
			if out, err := helmTest(); err != nil || !strings.Contains(out, "Succeeded") ||
				!strings.Contains(out, "serves the webhook's metrics") {
				t.Fatalf("helm test: %v\n%s", err, out)
			}
			runKubectl(t, "-n", webhookNS, "scale", "deployment/emqx-webhook", "--replicas=0")
			eventually(t, 90*time.Second, "no webhook replica left", func() bool {
				list, err := cs.CoreV1().Pods(webhookNS).List(ctx,
					metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=emqx-webhook"})
				return err == nil && len(list.Items) == 0
			})
			if out, err := helmTest(); err == nil {
				t.Fatalf("helm test passed with no webhook replica: the test checks nothing\n%s", out)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// holderPod is the pod name in a controller-runtime lease holder identity ("<pod>_<uuid>").
func holderPod(l *coordinationv1.Lease) string {
	id, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
	return id
}

// manifests/cert-manager as users run it: cert-manager's own controllers and CA injector (built from
// its module, running beside the cluster: hack/cert-manager-up.sh) issue the serving certificate
// from the overlay's Issuer and inject its CA into both webhook configurations; our image on the
// real node serves that certificate (read from the Secret volume, --tls=files), and the API server,
// trusting only the injected CA, calls it through the Service while it guards a scale-down.
func TestCertManagerOnARealNode(t *testing.T) {
	f := features.New("cert-manager install").
		Assess("on a real kubelet", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := clientset(t, cfg)
			waitWebhookNamespace(t, cs)
			webhookUp(t, "cert-manager", filepath.Join(repoRoot, "hack", "realnode", "cert-manager"))
			runKubectl(t, "-n", webhookNS, "wait", "--for=condition=Ready", "certificate/emqx-webhook", "--timeout=60s")
			secret, err := cs.CoreV1().Secrets(webhookNS).Get(ctx, "emqx-webhook-cert", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if secret.Annotations["cert-manager.io/certificate-name"] != "emqx-webhook" ||
				len(secret.Data["ca.crt"]) == 0 {
				t.Fatalf(
					"the Secret was not issued by cert-manager for Certificate emqx-webhook: %v",
					secret.Annotations,
				)
			}
			// The kustomize install carries no caBundle: what is there, cert-manager's injector put.
			eventually(t, 60*time.Second, "the CA injected into both webhook configurations", func() bool {
				v, err := cs.AdmissionregistrationV1().
					ValidatingWebhookConfigurations().
					Get(ctx, "emqx-webhook", metav1.GetOptions{})
				if err != nil {
					return false
				}
				m, err := cs.AdmissionregistrationV1().
					MutatingWebhookConfigurations().
					Get(ctx, "emqx-webhook", metav1.GetOptions{})
				if err != nil {
					return false
				}
				for _, w := range v.Webhooks {
					if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
						return false
					}
				}
				for _, w := range m.Webhooks {
					if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
						return false
					}
				}
				return len(v.Webhooks) > 0 && len(m.Webhooks) > 0
			})
			// Each replica serves the certificate cert-manager issued.
			issued, _ := pem.Decode(secret.Data["tls.crt"])
			if issued == nil {
				t.Fatal("the Secret's tls.crt is not PEM")
			}
			for _, p := range webhookPods(t, cs) {
				if p.Spec.NodeName != "kemqx-real-0" {
					t.Fatalf("pod %s runs on %s, not the real node", p.Name, p.Spec.NodeName)
				}
				served := servedCertificate(t, net.JoinHostPort(p.Status.PodIP, "9443"))
				if !bytes.Equal(served, issued.Bytes) {
					t.Fatalf("pod %s serves a certificate that is not the one cert-manager issued", p.Name)
				}
			}

			// cert-manager keeps the certificate and the caBundle: the webhook's account may not.
			for _, what := range []string{
				"patch validatingwebhookconfigurations/emqx-webhook",
				"create secrets -n " + webhookNS,
				"update secrets/emqx-webhook-tls -n " + webhookNS,
			} {
				if out, _ := runKubectlErr(append([]string{
					"auth",
					"can-i",
					"--as=system:serviceaccount:" + webhookNS + ":emqx-webhook",
				},
					strings.Fields(what)...)...); !strings.HasSuffix(
					strings.TrimSpace(out),
					"\nno",
				) &&
					strings.TrimSpace(out) != "no" {
					t.Errorf("the webhook's account installed with cert-manager may %s: %s", what, out)
				}
			}
			// The API server trusts the webhook only through the injected CA: a scale-down is held and
			// evacuated (failurePolicy Fail: without that trust the pod could not go at all).
			ns := emqxWithClients(t, cfg, 900)
			scaleDownTo(t, cs, ns, 2, 900)
			if len(events(t, cfg, ns, "EvacuationStarted")) < 1 {
				t.Fatal("the webhook installed with cert-manager started no evacuation")
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// webhookUp runs make webhook-up with the TLS mode, and removes what the overlay installed
// when the test ends.
func webhookUp(t *testing.T, tls, overlay string) {
	t.Helper()
	up := exec.Command("make", "webhook-up", "TLS="+tls)
	up.Dir = repoRoot
	up.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("make webhook-up TLS=%s: %v\n%s", tls, err, out)
	}
	t.Cleanup(func() {
		_ = runKubectlQuiet("delete", "-k", overlay, "--ignore-not-found", "--wait=false")
	})
}

// emqxWithClients is a 3-pod Helm-style EMQX StatefulSet on the fake nodes, in a new namespace,
// with short evacuations and clients connected.
func emqxWithClients(t *testing.T, cfg *envconf.Config, clients int) string {
	t.Helper()
	ns := newNamespace(t, cfg)
	applyFixture(t, cfg, "helm-emqx.yaml", ns, 3)
	waitPods(t, cfg, ns, helmSelector, 3)
	simNodesReady(t, ns+"/emqx", 3)
	runKubectl(
		t,
		"annotate",
		"statefulset",
		"emqx",
		"-n",
		ns,
		"emqx.kubectl-emqx.io/wait-health-check=2",
		"emqx.kubectl-emqx.io/wait-takeover=2",
		"emqx.kubectl-emqx.io/conn-evict-rate=200",
		"emqx.kubectl-emqx.io/sess-evict-rate=200",
	)
	connectClients(t, ns+"/emqx", clients)
	return ns
}

// scaleDownTo runs kubectl scale to replicas (one fewer than now) and waits until the removed pod
// is gone, with no session lost of clients.
func scaleDownTo(t *testing.T, cs *kubernetes.Clientset, ns string, replicas int, clients int64) {
	t.Helper()
	runKubectl(t, "-n", ns, "scale", "statefulset/emqx", fmt.Sprintf("--replicas=%d", replicas))
	gone := fmt.Sprintf("emqx-%d", replicas)
	eventually(t, 120*time.Second, gone+" gone", func() bool {
		_, err := cs.CoreV1().Pods(ns).Get(context.Background(), gone, metav1.GetOptions{})
		return err != nil
	})
	expectNothingLost(t, ns, clients)
}

// webhookPods waits for the webhook's two pods, none terminating (a rollout may be ending).
func webhookPods(t *testing.T, cs *kubernetes.Clientset) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, 60*time.Second, "two webhook pods, none terminating", func() bool {
		list, err := cs.CoreV1().
			Pods(webhookNS).
			List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=emqx-webhook"})
		if err != nil {
			return false
		}
		pods = list.Items
		return len(pods) == 2 && pods[0].DeletionTimestamp == nil && pods[1].DeletionTimestamp == nil
	})
	return pods
}

// servedCertificate is the DER of the leaf certificate a TLS server presents at addr.
func servedCertificate(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true}) // #nosec G402 -- only reads what is presented, compared below
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// refusedWithoutClientCert: a TLS client without a certificate gets no HTTP answer from addr.
func refusedWithoutClientCert(addr string) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true}}} // #nosec G402 -- the server's client authentication is under test
	resp, err := c.Post("https://"+addr+"/evict", "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		return fmt.Errorf("a caller without a client certificate got HTTP %d", resp.StatusCode)
	}
	if !strings.Contains(err.Error(), "certificate") {
		return fmt.Errorf("a caller without a client certificate failed, but not at TLS: %w", err)
	}
	return nil
}

// realNodeRange is the real node's pod range (hack/lib.sh's NODE_RANGE).
const realNodeRange = "198.19.0.0/24"

// routeServiceToPod routes a Service's ClusterIP:port from the real node's pods to its first Ready
// pod, as kube-proxy would; this node has none. Removed at the end of the test.
func routeServiceToPod(t *testing.T, cs kubernetes.Interface, ns, name string, port int) {
	t.Helper()
	ctx := context.Background()
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	target := ""
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && ready(&p) {
			target = p.Status.PodIP
			break
		}
	}
	if target == "" {
		t.Fatalf("no Ready pod behind service %s/%s", ns, name)
	}
	p := strconv.Itoa(port)
	rules := [][]string{
		{"PREROUTING", "-s", realNodeRange, "-d", svc.Spec.ClusterIP, "-p", "tcp", "--dport", p, "-j", "DNAT",
			"--to-destination", target + ":" + p},
		{"POSTROUTING", "-s", realNodeRange, "-d", target, "-p", "tcp", "--dport", p, "-j", "MASQUERADE"},
	}
	for _, r := range rules {
		out, err := exec.Command("iptables", append([]string{"-t", "nat", "-A"}, r...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("iptables -A %v: %v\n%s", r, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("iptables", append([]string{"-t", "nat", "-D"}, r...)...).Run() })
	}
}
