//go:build e2e && scale

package e2e

// The scale benchmark, `make bench-scale`: not part of `make test`. It prints the figures README's
// performance table shows and fails when a target of issue #23 is missed.

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
)

// parkingGate keeps the benchmark's pods out of the scheduler: they exist, they are never placed,
// and nothing else (kwok, the pod garbage collector) touches them.
const parkingGate = "kemqx-e2e/parked"

// fastClientset is a clientset that may create thousands of pods a second.
func fastClientset(t *testing.T, cfg *envconf.Config) *kubernetes.Clientset {
	t.Helper()
	rc := *cfg.Client().RESTConfig()
	rc.QPS, rc.Burst = 2000, 2000
	cs, err := kubernetes.NewForConfig(&rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// parkedPod is a pod that is scheduled nowhere. An EMQX one carries what the Helm chart's pods
// carry (labels, env, ports, probes, mounts), so the cache's cost per pod is a real pod's.
func parkedPod(name string, l map[string]string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
		Spec: corev1.PodSpec{
			SchedulingGates: []corev1.PodSchedulingGate{{Name: parkingGate}},
			Containers:      []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if l[cluster.LabelName] != "emqx" {
		return p
	}
	c := &p.Spec.Containers[0]
	c.Name, c.Image = "emqx", "emqx/emqx-enterprise:5.10.0"
	for _, e := range []string{"EMQX_CLUSTER__DISCOVERY_STRATEGY=dns", "EMQX_CLUSTER__DNS__RECORD_TYPE=srv",
		"EMQX_CLUSTER__DNS__NAME=emqx-headless.bench.svc.cluster.local", "EMQX_HOST=$(EMQX_POD_NAME).emqx-headless",
		"EMQX_NODE__COOKIE=emqxsecretcookie", "EMQX_DASHBOARD__DEFAULT_USERNAME=admin"} {
		k, v, _ := strings.Cut(e, "=")
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
	}
	for i, port := range []int32{1883, 8883, 8083, 8084, 18083, 4370, 5369} {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: fmt.Sprintf("p%d", i), ContainerPort: port})
	}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: "/status", Port: intstr.FromInt32(18083)}}, InitialDelaySeconds: 10, PeriodSeconds: 5}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/opt/emqx/data"},
		{Name: "bootstrap", MountPath: "/opt/emqx/etc/api_keys", SubPath: "api_keys"}}
	p.Spec.Volumes = []corev1.Volume{{Name: "data"}, {Name: "bootstrap"}}
	return p
}

// createParked creates n parked pods in ns, 16 at a time.
func createParked(t *testing.T, cs *kubernetes.Clientset, ns, prefix string, n int, l func(i int) map[string]string) {
	t.Helper()
	ctx := context.Background()
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := cs.CoreV1().Pods(ns).Create(ctx, parkedPod(fmt.Sprintf("%s-%d", prefix, i), l(i)),
					metav1.CreateOptions{})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("create %s pods: %v", prefix, err)
	default:
	}
}

// rssMiB is the process's resident memory, the median of five readings a second apart.
func rssMiB(t *testing.T, pid int) float64 {
	t.Helper()
	var got []float64
	for range 5 {
		time.Sleep(time.Second)
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				got = append(got, kb/1024)
			}
		}
		f.Close()
	}
	sort.Float64s(got)
	return got[len(got)/2]
}

// histogram is the API server's apiserver_admission_webhook_admission_duration_seconds of one webhook.
type histogram struct {
	buckets map[float64]float64 // le → cumulative count
	sum     float64
	count   float64
}

func webhookHistogram(t *testing.T, cs *kubernetes.Clientset, name string) histogram {
	t.Helper()
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return parseHistogram(string(raw), "apiserver_admission_webhook_admission_duration_seconds", `name="`+name+`"`)
}

// handlerHistogram is the webhook's own controller_runtime_webhook_latency_seconds of one path:
// the time in its handler, without the API server's call (TLS, HTTP) around it.
func handlerHistogram(t *testing.T, metricsAddr, path string) histogram {
	t.Helper()
	return parseHistogram(scrape(t, metricsAddr), "controller_runtime_webhook_latency_seconds", `webhook="`+path+`"`)
}

// scrape is the webhook's metrics page, served on loopback without TLS (--metrics-secure=false).
func scrape(t *testing.T, metricsAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// parseHistogram reads one Prometheus histogram from a text exposition, summing the series whose
// line contains label.
func parseHistogram(raw, metric, label string) histogram {
	h := histogram{buckets: map[float64]float64{}}
	for line := range strings.Lines(raw) {
		if !strings.HasPrefix(line, metric) || !strings.Contains(line, label) {
			continue
		}
		i := strings.LastIndexByte(strings.TrimSpace(line), ' ')
		v, _ := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64)
		switch {
		case strings.HasPrefix(line, metric+"_sum"):
			h.sum += v
		case strings.HasPrefix(line, metric+"_count"):
			h.count += v
		case strings.HasPrefix(line, metric+"_bucket"):
			_, le, _ := strings.Cut(line, `le="`)
			le, _, _ = strings.Cut(le, `"`)
			b, err := strconv.ParseFloat(le, 64)
			if le == "+Inf" {
				b, err = math.Inf(1), nil
			}
			if err == nil {
				h.buckets[b] += v
			}
		}
	}
	return h
}

// since is h minus an earlier reading: the mean and the bucket holding the 99th percentile.
func (h histogram) since(before histogram) (n, mean, p99le float64) {
	n = h.count - before.count
	if n == 0 {
		return 0, 0, 0
	}
	var les []float64
	for le := range h.buckets {
		les = append(les, le)
	}
	sort.Float64s(les)
	for _, le := range les {
		if h.buckets[le]-before.buckets[le] >= 0.99*n {
			return n, (h.sum - before.sum) / n, le
		}
	}
	return n, (h.sum - before.sum) / n, math.Inf(1)
}

// TestBenchScaleWebhookMemory: the webhook's memory as 10,000 then 50,000 pods that are not EMQX's
// appear, then 10,000 EMQX pods.
func TestBenchScaleWebhookMemory(t *testing.T) {
	f := features.New("scale").
		Assess("memory follows EMQX", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := fastClientset(t, cfg)
			metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			p := installWebhook(t, cfg, "--metrics-bind-address", metrics, "--metrics-secure=false")
			pid := p.cmd.Process.Pid
			// memory is the process's RSS and the Go heap in use (live objects and what the collector
			// has not swept yet), both in MiB.
			memory := func() (float64, float64) {
				rss := rssMiB(t, pid)
				for line := range strings.Lines(scrape(t, metrics)) {
					if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
						b, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
						return rss, b / (1 << 20)
					}
				}
				t.Fatal("no go_memstats_heap_inuse_bytes in the webhook's metrics")
				return 0, 0
			}
			ordinary := newNamespace(t, cfg)
			emqxNS := newNamespace(t, cfg)
			plain := func(int) map[string]string { return map[string]string{"app": "web"} }
			type row struct {
				ordinary, emqx int
				rss, heap      float64
			}
			measure := func(ordinary, emqx int) row {
				rss, heap := memory()
				return row{ordinary, emqx, rss, heap}
			}
			rows := []row{measure(0, 0)}
			for _, step := range []int{10000, 40000} {
				start := rows[len(rows)-1].ordinary
				createParked(t, cs, ordinary, fmt.Sprintf("web%d", start), step, plain)
				time.Sleep(5 * time.Second)
				rows = append(rows, measure(start+step, 0))
				t.Logf("%d pods that are not EMQX's: webhook RSS %.0f MiB", start+step, rows[len(rows)-1].rss)
			}
			createParked(t, cs, emqxNS, "emqx", 10000, func(i int) map[string]string {
				return map[string]string{cluster.LabelName: "emqx",
					cluster.LabelHelmInstance: fmt.Sprintf("e%d", i/100)}
			})
			time.Sleep(10 * time.Second)
			rows = append(rows, measure(rows[len(rows)-1].ordinary, 10000))
			t.Logf("| pods that are not EMQX's | EMQX pods | webhook RSS | Go heap in use |")
			for _, r := range rows {
				t.Logf("| %d | %d | %.0f MiB | %.0f MiB |", r.ordinary, r.emqx, r.rss, r.heap)
			}
			base, at50k, withEMQX := rows[0].rss, rows[2].rss, rows[3].rss
			if at50k > base*1.10+5 {
				t.Errorf("RSS grew from %.0f to %.0f MiB with 50,000 pods that are not EMQX's (target: flat, ~10%%)",
					base, at50k)
			}
			if withEMQX-at50k > 64 {
				t.Errorf("RSS grew by %.0f MiB with 10,000 EMQX pods (target ≤ 64 MiB)", withEMQX-at50k)
			}

			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// TestBenchScaleOrdinaryEvictions: what an eviction of a pod that is not EMQX's costs the API
// server, 8 at a time, in a namespace the webhook's configuration selects: the API server's
// histogram of the webhook's calls, and the webhook's own of its handler.
func TestBenchScaleOrdinaryEvictions(t *testing.T) {
	f := features.New("ordinary evictions").
		Assess("cheap", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := fastClientset(t, cfg)
			quiet(t, cs)
			metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			installWebhook(t, cfg, "--metrics-bind-address", metrics, "--metrics-secure=false")
			plain := func(int) map[string]string { return map[string]string{"app": "web"} }
			evictNS := newNamespace(t, cfg)
			labelWatched(t, cfg, evictNS)
			const evictions = 800
			createParked(t, cs, evictNS, "victim", evictions, plain)
			noopFloor(t, cs, evictNS)
			before := webhookHistogram(t, cs, "evictions.emqx.kubectl-emqx.io")
			beforeFloor := webhookHistogram(t, cs, noopWebhook)
			beforeOwn := handlerHistogram(t, metrics, "/evict")
			took := evictAll(t, cs, evictNS, "victim", evictions)
			n, mean, p99 := webhookHistogram(t, cs, "evictions.emqx.kubectl-emqx.io").since(before)
			t.Logf("ordinary evictions, 8 at a time: %d in %v; the webhook's share (API server's histogram): "+
				"mean %.2f ms, p99 in the ≤ %g ms bucket", int(n), took.Round(time.Millisecond), mean*1000, p99*1000)
			_, ownMean, ownP99 := handlerHistogram(t, metrics, "/evict").since(beforeOwn)
			t.Logf("of which in the webhook's handler (its own histogram): mean %.2f ms, p99 in the ≤ %g ms bucket",
				ownMean*1000, ownP99*1000)
			floorN, floorMean, floorP99 := webhookHistogram(t, cs, noopWebhook).since(beforeFloor)
			t.Logf("a webhook that allows at once, called for the same evictions (the API server's cost of any "+
				"webhook call here): mean %.2f ms, p99 in the ≤ %g ms bucket", floorMean*1000, floorP99*1000)
			if floorN < evictions {
				t.Errorf("the API server counted %v calls of the no-op webhook, want %d", floorN, evictions)
			}
			if n < evictions {
				t.Errorf("the API server counted %v calls of the eviction webhook, want %d", n, evictions)
			}
			// The target (#23: a mean under 2 ms, a p99 in the ≤ 25 ms bucket) is the webhook's own
			// share: on a machine where any webhook call costs more (the no-op's figures), the
			// share above that floor, and the time in its handler.
			if mean-floorMean > 0.002 || ownMean > 0.002 || p99 > max(0.025, floorP99) {
				t.Errorf("ordinary evictions: mean %.2f ms (%.2f ms above a no-op webhook's), %.2f ms in the "+
					"handler, p99 ≤ %g ms (target: under 2 ms of the webhook's own, p99 ≤ 25 ms)",
					mean*1000, (mean-floorMean)*1000, ownMean*1000, p99*1000)
			}
			// A namespace the configuration does not select (a namespaced install's other namespaces,
			// or webhook.namespaceSelector): the API server does not call the webhook at all.
			otherNS := newNamespace(t, cfg)
			createParked(t, cs, otherNS, "victim", evictions, plain)
			before = webhookHistogram(t, cs, "evictions.emqx.kubectl-emqx.io")
			took = evictAll(t, cs, otherNS, "victim", evictions)
			if n, _, _ := webhookHistogram(t, cs, "evictions.emqx.kubectl-emqx.io").since(before); n != 0 {
				t.Errorf("%v calls of the webhook for evictions in a namespace its configuration does not select", n)
			}
			t.Logf("in a namespace the configuration does not select: %d evictions in %v, no webhook call",
				evictions, took.Round(time.Millisecond))
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// noopWebhook is the name of noopFloor's webhook in the API server's histogram.
const noopWebhook = "noop-floor.kubectl-emqx.io"

// noopFloor registers, for the evictions in ns, a webhook served by the test that allows at once:
// the API server calls it beside the emqx-webhook (validating webhooks run in parallel), and its
// histogram is the floor any webhook pays on this machine (TLS, HTTP, JSON, scheduling), so the
// emqx-webhook's own share can be told from the machine's.
func noopFloor(t *testing.T, cs *kubernetes.Clientset, ns string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(&review)
	}))
	t.Cleanup(srv.Close)
	url, none, fail, timeout := srv.URL+"/", admissionregistrationv1.SideEffectClassNone,
		admissionregistrationv1.Fail, int32(5)
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kemqx-bench-noop-floor"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: noopWebhook,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: pem.EncodeToMemory(
				&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
					Resources: []string{"pods/eviction"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				"kubernetes.io/metadata.name": ns}},
			SideEffects: &none, FailurePolicy: &fail, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	api := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	_ = api.Delete(context.Background(), vwc.Name, metav1.DeleteOptions{}) // an interrupted run's
	if _, err := api.Create(context.Background(), vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Delete(context.Background(), vwc.Name, metav1.DeleteOptions{}) })
	// The API server picks a new configuration up asynchronously: one eviction of a pod that does
	// not exist is answered by the webhook once it is in use.
	eventually(t, 30*time.Second, "the no-op webhook called", func() bool {
		before := webhookHistogram(t, cs, noopWebhook)
		_ = cs.PolicyV1().Evictions(ns).Evict(context.Background(), &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Name: "kemqx-bench-absent", Namespace: ns}})
		n, _, _ := webhookHistogram(t, cs, noopWebhook).since(before)
		return n > 0
	})
}

// quiet waits until no earlier benchmark's namespace is left: tens of thousands of pod deletions
// keep a 2-core API server busy, and the figures would measure them.
func quiet(t *testing.T, cs *kubernetes.Clientset) {
	t.Helper()
	eventually(t, 10*time.Minute, "earlier benchmarks' namespaces gone", func() bool {
		return !benchNamespacesLeft(cs)
	})
}

// benchNamespacesLeft: a benchmark's namespace still exists (being deleted, or unread).
func benchNamespacesLeft(cs *kubernetes.Clientset) bool {
	nss, err := cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return true
	}
	for _, ns := range nss.Items {
		if strings.HasPrefix(ns.Name, "e2e-testbenchscale") {
			return true
		}
	}
	return false
}

// evictAll evicts the pods prefix-0 … prefix-(n-1) of ns, 8 at a time, and says how long it took.
func evictAll(t *testing.T, cs *kubernetes.Clientset, ns, prefix string, n int) time.Duration {
	t.Helper()
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				err := cs.PolicyV1().Evictions(ns).Evict(context.Background(), &policyv1.Eviction{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: ns}})
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d evictions in %s failed; first: %v", len(failed), n, ns, failed[0])
	}
	return time.Since(start)
}

// benchNodes adds n kwok nodes labelled kemqx-bench=pool, each with a /26 of the pod range the
// network namespace answers (198.18.4.0 to 198.18.13.255), and deletes them afterwards.
func benchNodes(t *testing.T, cs *kubernetes.Clientset, n int) []string {
	t.Helper()
	if n > 40 {
		t.Fatalf("%d nodes: the pod range has room for 40 of /26", n)
	}
	// An earlier run's nodes and pods hold these names and addresses until they are gone.
	eventually(t, 5*time.Minute, "an earlier run's bench nodes and namespaces gone", func() bool {
		nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{
			LabelSelector: "kemqx-bench=pool"})
		return err == nil && len(nodes.Items) == 0 && !benchNamespacesLeft(cs)
	})
	var names []string
	for j := range n {
		name := fmt.Sprintf("kwok-bench-%d", j)
		cidr := fmt.Sprintf("198.18.%d.%d/26", 4+j/4, 64*(j%4))
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
					"kubernetes.io/arch": "amd64", "type": "kwok", "kemqx-bench": "pool"}},
			Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
		}
		if _, err := cs.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	t.Cleanup(func() {
		// kwok gives a pod's address back to its node's pool only while the node exists: nodes
		// deleted under their pods leak addresses, and a later run's pools overflow into the
		// next node's range (two pods, one address). The namespaces' cleanup, which ran first,
		// deletes the pods; the nodes go once they are empty.
		eventually(t, 3*time.Minute, "bench nodes empty", func() bool {
			for _, name := range names {
				pods, err := cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{
					FieldSelector: "spec.nodeName=" + name})
				if err != nil || len(pods.Items) > 0 {
					return false
				}
			}
			return true
		})
		for _, name := range names {
			_ = cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})
	eventually(t, 60*time.Second, "bench nodes Ready", func() bool {
		for _, name := range names {
			nd, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
			if err != nil || !nodeReady(nd) {
				return false
			}
		}
		return true
	})
	return names
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// apiRequests follows the EMQX API requests the simulated nodes of clusters serve, sampled every
// 200 ms; a node recreated under the same name starts counting again from zero.
type apiRequests struct {
	mu    sync.Mutex
	last  map[string]int64
	total int64
	stop  chan struct{}
	done  chan struct{}
}

func countAPIRequests(clusters []string) *apiRequests {
	a := &apiRequests{last: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	a.sample(clusters)
	a.total = 0
	go func() {
		defer close(a.done)
		for {
			select {
			case <-a.stop:
				a.sample(clusters)
				return
			case <-time.After(200 * time.Millisecond):
				a.sample(clusters)
			}
		}
	}()
	return a
}

func (a *apiRequests) sample(clusters []string) {
	for _, c := range clusters {
		s, err := simStatsErr(c)
		if err != nil {
			continue
		}
		a.mu.Lock()
		for _, n := range s.Nodes {
			k := c + " " + n.Name
			if d := n.APIRequests - a.last[k]; d >= 0 {
				a.total += d
			} else {
				a.total += n.APIRequests
			}
			a.last[k] = n.APIRequests
		}
		a.mu.Unlock()
	}
}

func (a *apiRequests) finish() int64 {
	close(a.stop)
	<-a.done
	return a.total
}

// TestBenchScaleMassDrain: 20 nodes carrying 60 EMQX pods of 20 clusters drained at once (what a
// cluster-autoscaler consolidation does), with --emqx-shared-reads off and at 1s: EMQX API
// requests per second, the eviction webhook's p99 as the API server sees it, the time until every
// drain is done, and nothing lost.
func TestBenchScaleMassDrain(t *testing.T) {
	f := features.New("mass drain").
		Assess("20 nodes, 60 EMQX pods of 20 clusters", func(ctx context.Context, t *testing.T,
			cfg *envconf.Config) context.Context {
			cs := fastClientset(t, cfg)
			const nodes, clusters, clients = 20, 20, 300
			pool := benchNodes(t, cs, 2*nodes)
			halves := [][]string{pool[:nodes], pool[nodes:]}
			for _, n := range halves[1] { // the clusters are placed on the first half
				runKubectl(t, "cordon", n)
			}
			var nss, names []string
			for range clusters {
				ns := newNamespace(t, cfg)
				labelWatched(t, cfg, ns)
				applyFixtureWith(t, cfg, "helm-emqx.yaml", ns, 3, func(o k8s.Object) {
					if sts, ok := o.(*appsv1.StatefulSet); ok {
						sts.Spec.Template.Spec.NodeSelector = map[string]string{"kemqx-bench": "pool"}
					}
				})
				nss, names = append(nss, ns), append(names, ns+"/emqx")
			}
			for _, ns := range nss {
				waitPods(t, cfg, ns, helmSelector, 3)
				eventually(t, 30*time.Second, "simulated nodes of "+ns+" behind Ready endpoints", func() bool {
					s, err := simStatsErr(ns + "/emqx")
					return err == nil && readyNodes(s) == 3
				})
				connectClients(t, ns+"/emqx", clients)
			}
			type result struct {
				shared         string
				took           time.Duration
				requests       int64
				n, mean, p99le float64
				lost           int64 // sessions, in all clusters, since the start
				overlapped     int   // clusters that had 2 evacuations moving at once, since the start
			}
			var results []result
			for round, shared := range []string{"0", "1s"} {
				drain, spare := halves[round], halves[1-round]
				for _, n := range spare {
					runKubectl(t, "uncordon", n)
				}
				p := installWebhook(t, cfg, "--emqx-shared-reads", shared)
				before := webhookHistogram(t, cs, "evictions.emqx.kubectl-emqx.io")
				reqs := countAPIRequests(names)
				start := time.Now()
				var wg sync.WaitGroup
				errs := make([]error, len(drain))
				outs := make([]string, len(drain))
				for i, n := range drain {
					wg.Add(1)
					go func() {
						defer wg.Done()
						outs[i], errs[i] = runKubectlErr("drain", n, "--ignore-daemonsets", "--delete-emptydir-data",
							"--timeout=10m", "--pod-selector", helmSelector)
					}()
				}
				wg.Wait()
				took := time.Since(start)
				total := reqs.finish()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("drain %s (shared reads %s): %v\n%s", drain[i], shared, err, outs[i])
					}
				}
				var lost int64
				overlapped := 0
				for _, ns := range nss {
					waitPods(t, cfg, ns, helmSelector, 3)
					eventually(t, 60*time.Second, "clients of "+ns+" connected again", func() bool {
						s, err := simStatsErr(ns + "/emqx")
						return err == nil && s.ReconnectingClients == 0
					})
					s := simStats(t, ns+"/emqx")
					if s.LostSessions > 0 {
						t.Logf("shared reads %s: %s has lost %d sessions since the start", shared, ns, s.LostSessions)
					}
					lost += s.LostSessions
					if s.MostEvacuating > 1 {
						overlapped++
					}
				}
				n, mean, p99 := webhookHistogram(t, cs, "evictions.emqx.kubectl-emqx.io").since(before)
				results = append(results, result{shared, took, total, n, mean, p99, lost, overlapped})
				p.stop()
			}
			t.Logf("| --emqx-shared-reads | drains done in | EMQX API requests | per second | eviction reviews | " +
				"webhook mean | p99 bucket | sessions lost | clusters with 2 evacuations at once |")
			for _, r := range results {
				t.Logf("| %s | %v | %d | %.1f | %d | %.1f ms | ≤ %g ms | %d | %d |", r.shared,
					r.took.Round(time.Second), r.requests, float64(r.requests)/r.took.Seconds(), int(r.n),
					r.mean*1000, r.p99le*1000, r.lost, r.overlapped)
				if r.overlapped > 0 {
					t.Errorf("shared reads %s: %d clusters had two evacuations at once "+
						"(--max-concurrent-evacuations 1)", r.shared, r.overlapped)
				}
				if r.lost > 0 {
					t.Errorf("shared reads %s: %d sessions lost in the mass drain", r.shared, r.lost)
				}
			}
			off, on := results[0], results[1]
			if float64(on.requests)/on.took.Seconds() >= 0.75*float64(off.requests)/off.took.Seconds() {
				t.Errorf("shared reads did not spare EMQX: %.1f requests/s against %.1f without",
					float64(on.requests)/on.took.Seconds(), float64(off.requests)/off.took.Seconds())
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// medianMs runs each command runs times, alternating (both see the same machine load), and
// returns the median wall time of each, in milliseconds.
func medianMs(t *testing.T, runs int, cmds ...func() error) []float64 {
	t.Helper()
	times := make([][]float64, len(cmds))
	for range runs {
		for i, c := range cmds {
			start := time.Now()
			if err := c(); err != nil {
				t.Fatal(err)
			}
			times[i] = append(times[i], float64(time.Since(start).Milliseconds()))
		}
	}
	out := make([]float64, len(cmds))
	for i, ts := range times {
		sort.Float64s(ts)
		out[i] = ts[len(ts)/2]
	}
	return out
}

// progressLines counts the lines of live progress the plugin wrote (a line per change off a
// terminal).
func progressLines(out, marker string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, marker) {
			n++
		}
	}
	return n
}

// TestBenchScale100Nodes: one EMQX cluster of 100 pods and 1,000,000 simulated connections. The
// clients connect to 90 pods; the StatefulSet grows to 100 and a rebalance moves clients into
// the new nodes (with EMQX's default thresholds: one empty node among 100 is within them, as
// EMQX judges, since the recipients' average includes every node below the average). Then
// `kubectl emqx status` against `kubectl get pods`, an evacuation through the plugin with its
// live progress, and a guarded scale-down's time against EMQX's own evacuation time.
func TestBenchScale100Nodes(t *testing.T) {
	f := features.New("100-node EMQX").
		Assess("1,000,000 connections", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs := fastClientset(t, cfg)
			const first, pods, clients = 90, 100, 1000000
			benchNodes(t, cs, 10)
			ns := newNamespace(t, cfg)
			labelWatched(t, cfg, ns)
			applyFixtureWith(t, cfg, "helm-emqx.yaml", ns, first, func(o k8s.Object) {
				if sts, ok := o.(*appsv1.StatefulSet); ok {
					sts.Spec.Template.Spec.NodeSelector = map[string]string{"kemqx-bench": "pool"}
				}
			})
			name := ns + "/emqx"
			readyAll := func(n int) {
				waitPods(t, cfg, ns, helmSelector, n)
				eventually(t, 3*time.Minute, fmt.Sprintf("%d simulated nodes behind Ready endpoints", n), func() bool {
					s, err := simStatsErr(name)
					return err == nil && readyNodes(s) == n
				})
			}
			readyAll(first)
			connectClients(t, name, clients)
			settled := func(what string) {
				eventually(t, 3*time.Minute, what, func() bool {
					s, err := simStatsErr(name)
					return err == nil && s.ReconnectingClients == 0 && s.ConnectedClients == clients
				})
			}
			settled("1,000,000 clients connected")
			runKubectl(t, "-n", ns, "scale", "statefulset/emqx", fmt.Sprintf("--replicas=%d", pods))
			readyAll(pods)

			// A rebalance into the 10 new nodes, with live progress. The simulator runs EMQX's clock
			// 10× the real one (hack/e2e's --time-scale).
			start := time.Now()
			out, err := kubectlEMQX(t, "rebalance", "-n", ns, "--wait-health-check", "2s", "--wait-takeover", "2s")
			rebTook := time.Since(start)
			t.Logf("kubectl emqx rebalance:\n%s", out)
			// Progress: a line per state (evicting_conns may last less than one poll at 10×).
			rebProgress := progressLines(out, "rebalance wait") + progressLines(out, "rebalance evicting")
			if err != nil || !strings.Contains(out, "rebalance started") || !strings.Contains(out, "balanced:") ||
				rebProgress < 2 {
				t.Fatalf("rebalance: %v\n%s", err, out)
			}
			settled("clients of the rebalance connected again")
			var least int64 = clients
			for _, n := range simStats(t, name).Nodes {
				least = min(least, n.LiveConnections)
			}
			t.Logf("| rebalance of 90 loaded nodes into 10 new ones | %v (%v of EMQX's time), %d progress lines; "+
				"the least loaded node then holds %d connections |", rebTook.Round(100*time.Millisecond),
				10*rebTook.Round(100*time.Millisecond), rebProgress, least)

			// status against get pods, 5 pairs.
			ms := medianMs(t, 5,
				func() error { _, err := runKubectlErr("get", "pods", "-n", ns); return err },
				func() error { _, err := kubectlEMQX(t, "status", "-n", ns); return err })
			t.Logf("| status at 100 pods, 1M connections | %.0f ms against kubectl get pods %.0f ms (×%.2f) |",
				ms[1], ms[0], ms[1]/ms[0])
			if ms[1] >= 1000 || ms[1] > 1.5*ms[0] {
				t.Errorf("kubectl emqx status took %.0f ms, kubectl get pods %.0f ms: want < 1 s and ≤ 1.5×",
					ms[1], ms[0])
			}

			// An evacuation of one node, with live progress.
			start = time.Now()
			out = mustEMQX(t, "evacuate", "pod", "emqx-50", "-n", ns, "--conn-evict-rate", "1000",
				"--sess-evict-rate", "1000", "--wait-health-check", "2s", "--wait-takeover", "2s")
			evacTook := time.Since(start)
			t.Logf("kubectl emqx evacuate pod emqx-50:\n%s", out)
			if !strings.Contains(out, "evacuated: emqx-50 is empty") || progressLines(out, "left") < 3 {
				t.Fatalf("no live progress, or not evacuated:\n%s", out)
			}
			t.Logf("| evacuation of 1 node of 100 (1,000 connections and sessions/s, waits 2s) | %v (%v of EMQX's "+
				"time), %d progress lines |", evacTook.Round(100*time.Millisecond),
				10*evacTook.Round(100*time.Millisecond), progressLines(out, "left"))
			settled("clients of emqx-50 connected elsewhere")
			mustEMQX(t, "evacuate", "stop", "emqx-50", "-n", ns)

			// A guarded scale-down: EMQX's evacuation time against the removal's.
			installWebhook(t, cfg, "--conn-evict-rate", "1000", "--sess-evict-rate", "1000")
			before := simStats(t, name)
			victim, _ := simNode(before, "emqx@emqx-99.")
			start = time.Now()
			runKubectl(t, "-n", ns, "scale", "statefulset/emqx", "--replicas=99")
			r := removalTimes(t, cs, ns, name, "emqx-99", 3*time.Minute)
			if r.began.IsZero() || r.empty.IsZero() {
				t.Fatalf("emqx-99 went without an evacuation seen (began %v, empty %v)", r.began, r.empty)
			}
			t.Logf("| guarded scale-down 100→99 (%d connections on the node) | evacuation started after %v, "+
				"EMQX's evacuation %v, node empty → pod gone %v |", victim.LiveConnections,
				r.began.Sub(start).Round(100*time.Millisecond), r.empty.Sub(r.began).Round(100*time.Millisecond),
				r.gone.Sub(r.empty).Round(10*time.Millisecond))
			if r.gone.Sub(r.empty) > 2*time.Second+time.Second { // the poll's own period and the API's lag aside
				t.Errorf("node empty → pod gone took %v: want EMQX's own time plus at most ~2 s", r.gone.Sub(r.empty))
			}
			settled("every client connected again after the scale-down")
			if s := simStats(t, name); s.LostSessions != 0 {
				t.Errorf("%d sessions lost", s.LostSessions)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}
