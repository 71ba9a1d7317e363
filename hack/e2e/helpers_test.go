//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient/decoder"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/pkg/envconf"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// Credentials the fixtures install.
var (
	helmDashboard = emqx.Credentials{Username: "admin", Password: "kemqx-dashboard-pw"}
	operatorKey   = emqx.Credentials{
		APIKey:    "emqx-operator-controller",
		APISecret: "kemqx-operator-secret-0123456789abcdef0123456789abcdef0123456789ab",
	}
)

const helmSelector = "app.kubernetes.io/instance=emqx"

func clientset(t *testing.T, cfg *envconf.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// newNamespace creates a namespace for one test and deletes it (and its PVs) afterwards.
func newNamespace(t *testing.T, cfg *envconf.Config) string {
	t.Helper()
	ns := fmt.Sprintf(
		"e2e-%s-%04d",
		strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), ""))[:min(20, len(t.Name()))],
		rand.IntN(10000),
	)
	cs := clientset(t, cfg)
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		_ = cs.CoreV1().
			PersistentVolumes().
			DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "kemqx/namespace=" + ns})
	})
	return ns
}

// applyFixture creates the objects of hack/fixtures/NAME in ns.
func applyFixture(t *testing.T, cfg *envconf.Config, name, ns string, replicas int) {
	t.Helper()
	applyFixtureWith(t, cfg, name, ns, replicas, nil)
}

// applyFixtureWith creates the objects of hack/fixtures/NAME in ns, each changed by mutate first.
func applyFixtureWith(t *testing.T, cfg *envconf.Config, name, ns string, replicas int, mutate func(k8s.Object)) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "hack", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("__NAMESPACE__", ns, "__REPLICAS__", fmt.Sprint(replicas)).Replace(string(raw))
	create := decoder.CreateHandler(cfg.Client().Resources())
	err = decoder.DecodeEach(
		context.Background(),
		strings.NewReader(text),
		func(ctx context.Context, obj k8s.Object) error {
			if mutate != nil {
				mutate(obj)
			}
			return create(ctx, obj)
		},
	)
	if err != nil {
		t.Fatalf("apply %s: %v", name, err)
	}
}

// labelWatched puts ns under the test webhook configuration's namespace selector.
func labelWatched(t *testing.T, cfg *envconf.Config, ns string) {
	t.Helper()
	cs := clientset(t, cfg)
	nsObj, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Labels[enabledLabel] = "true"
	if _, err := cs.CoreV1().Namespaces().Update(context.Background(), nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// makePVs pre-creates n volumes for ns's claims (kwok has no provisioner).
func makePVs(t *testing.T, cfg *envconf.Config, ns string, n int) {
	t.Helper()
	for i := range n {
		raw, _ := os.ReadFile(filepath.Join(repoRoot, "hack", "fixtures", "pvs.yaml"))
		text := strings.NewReplacer("__NAMESPACE__", ns, "__INDEX__", fmt.Sprint(i)).Replace(string(raw))
		if err := decoder.DecodeEach(context.Background(), strings.NewReader(text),
			decoder.CreateHandler(cfg.Client().Resources())); err != nil {
			t.Fatalf("create PV: %v", err)
		}
	}
}

// waitPods waits until exactly n pods match selector, all Running and Ready, and returns them.
func waitPods(t *testing.T, cfg *envconf.Config, ns, selector string, n int) []corev1.Pod {
	t.Helper()
	cs := clientset(t, cfg)
	var pods []corev1.Pod
	eventually(t, 60*time.Second, fmt.Sprintf("%d ready pods %s in %s", n, selector, ns), func() bool {
		list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false
		}
		pods = nil
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && ready(&p) {
				pods = append(pods, p)
			}
		}
		return len(pods) == n && len(list.Items) == n
	})
	return pods
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// eventually polls cond until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// nodeClient talks to the simulated EMQX node of a pod, at its pod IP.
func nodeClient(t *testing.T, pod corev1.Pod, creds emqx.Credentials) *emqx.Client {
	t.Helper()
	c, err := emqx.New("http://"+pod.Status.PodIP+":18083", creds)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sim calls the simulator-only API for the cluster ns/instance.
func sim(t *testing.T, method, path, cluster string, body any) emqxsim.Stats {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, simAdmin+path+"?cluster="+cluster, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	var s emqxsim.Stats
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return s
}

func simStats(t *testing.T, cluster string) emqxsim.Stats {
	return sim(t, http.MethodGet, "/sim/v1/stats", cluster, nil)
}

// connectClients connects n clients with persistent sessions through the listener Service.
func connectClients(t *testing.T, cluster string, n int) {
	sim(t, http.MethodPost, "/sim/v1/connect", cluster, map[string]any{"clients": n})
}

// runKubectl runs the real kubectl against the test cluster.
func runKubectl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 18083`)

// portForward runs `kubectl port-forward pod/NAME :18083` and returns the local base URL.
func portForward(t *testing.T, ns, pod string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "-n", ns, "port-forward", "pod/"+pod, ":18083")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case port := <-found:
		return "http://127.0.0.1:" + port
	case <-time.After(15 * time.Second):
		t.Fatalf("kubectl port-forward pod/%s printed no forwarding line", pod)
	}
	return ""
}

// runKubectlErr runs kubectl and returns its output and error instead of failing the test.
func runKubectlErr(args ...string) (string, error) {
	out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// runKubectlQuiet runs kubectl for a cleanup, where a failure changes nothing.
func runKubectlQuiet(args ...string) error {
	_, err := runKubectlErr(args...)
	return err
}

// runKubectlIn runs kubectl with stdin.
func runKubectlIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// readyNodes counts the simulated nodes whose pods are Ready: behind the listener Service.
func readyNodes(s emqxsim.Stats) int {
	n := 0
	for _, node := range s.Nodes {
		if node.Ready {
			n++
		}
	}
	return n
}

// simStatsErr reads the simulator's stats outside the test goroutine.
func simStatsErr(cluster string) (emqxsim.Stats, error) {
	var s emqxsim.Stats
	resp, err := http.Get(simAdmin + "/sim/v1/stats?cluster=" + cluster)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// simNode is the simulator's state of the node whose name starts with prefix.
func simNode(s emqxsim.Stats, prefix string) (emqxsim.NodeState, bool) {
	for _, n := range s.Nodes {
		if strings.HasPrefix(n.Name, prefix) {
			return n, true
		}
	}
	return emqxsim.NodeState{}, false
}

// removal is when a pod's removal went through its stages, as a poll saw them (zero: not seen).
type removal struct {
	began time.Time // its node evacuating
	empty time.Time // its node evacuated: prohibiting, no session left
	gone  time.Time // the pod deleted
}

// removalTimes polls the simulated cluster and the API server until pod emqx-N of ns is gone,
// within limit, and says when each stage was first seen.
func removalTimes(t *testing.T, cs kubernetes.Interface, ns, cluster, pod string, limit time.Duration) removal {
	t.Helper()
	var r removal
	eventually(t, limit, pod+" gone", func() bool {
		now := time.Now()
		if s, err := simStatsErr(cluster); err == nil {
			n, ok := simNode(s, "emqx@"+pod+".")
			if ok && n.Evacuation != "" && r.began.IsZero() {
				r.began = now
			}
			if ok && n.Evacuation == "prohibiting" && n.PersistentSessions == 0 && r.empty.IsZero() {
				r.empty = now
			}
		}
		_, err := cs.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			r.gone = now
			return true
		}
		return false
	})
	return r
}

// simNodesReady waits until the simulator runs n nodes of cluster, each seen Ready: clients reach
// the nodes its Service routes to, and its informer may lag the API server's (a node left out
// holds no client, and a test of a busy pod is void).
func simNodesReady(t *testing.T, cluster string, n int) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("%d simulated nodes of %s, each Ready", n, cluster), func() bool {
		s := simStats(t, cluster)
		return len(s.Nodes) == n && readyNodes(s) == n
	})
}
