package custommetrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// fakeEMQX answers GET /api/v5/nodes with nodes, or fails with err.
type fakeEMQX struct {
	observe.EMQX
	nodes []emqx.Node
	err   error
}

func (f *fakeEMQX) Nodes(context.Context) ([]emqx.Node, error) { return f.nodes, f.err }

// connector hands out one fake per Helm release; forgotten counts Forget calls.
type connector struct {
	byInstance map[string]*fakeEMQX
	forgotten  int
}

func (c *connector) Connect(_ context.Context, pod *corev1.Pod) (observe.EMQX, error) {
	f, ok := c.byInstance[pod.Labels["app.kubernetes.io/instance"]]
	if !ok {
		return nil, errors.New("no such cluster")
	}
	return f, nil
}

func (c *connector) Forget(*corev1.Pod) { c.forgotten++ }

func (c *connector) Prune(map[string]bool) {}

func pod(name, instance, ip string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "mqtt", Labels: map[string]string{
			"app.kubernetes.io/name": "emqx", "app.kubernetes.io/instance": instance}},
		Status: corev1.PodStatus{Phase: phase, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func node(name, status string, live, conns int64) emqx.Node {
	return emqx.Node{Node: name, NodeStatus: status, LiveConnections: live, Connections: conns}
}

var at = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newProvider(conn *connector, pods ...*corev1.Pod) *Provider {
	b := fake.NewClientBuilder()
	for _, p := range pods {
		b = b.WithObjects(p)
	}
	return &Provider{
		Reader: b.Build(),
		Kube:   kubefake.NewClientset(),
		EMQX:   conn,
		Clock:  clocktesting.NewFakeClock(at),
		Log:    logr.Discard(),
	}
}

func info(metric string) provider.CustomMetricInfo {
	return provider.CustomMetricInfo{GroupResource: pods, Namespaced: true, Metric: metric}
}

// Each pod gets its own node's count, found by its name; a stopped node, a pod that is not
// running, a pod that is not EMQX and a cluster whose API fails give no value.
func TestConnectionsPerPod(t *testing.T) {
	conn := &connector{byInstance: map[string]*fakeEMQX{
		"emqx": {nodes: []emqx.Node{
			node("emqx@emqx-0.emqx-headless.mqtt.svc.cluster.local", "running", 1200, 1500),
			node("emqx@emqx-1.emqx-headless.mqtt.svc.cluster.local", "running", 800, 800),
			node("emqx@emqx-2.emqx-headless.mqtt.svc.cluster.local", "stopped", 0, 0),
		}},
		"broken": {err: errors.New("connection refused")},
	}}
	other := pod("web-0", "emqx", "198.18.1.9", corev1.PodRunning)
	other.Labels = map[string]string{"app": "web"}
	p := newProvider(conn,
		pod("emqx-0", "emqx", "198.18.1.2", corev1.PodRunning),
		pod("emqx-1", "emqx", "198.18.2.2", corev1.PodRunning),
		pod("emqx-2", "emqx", "198.18.3.2", corev1.PodRunning),
		pod("emqx-3", "emqx", "", corev1.PodPending),
		pod("broken-0", "broken", "198.18.1.3", corev1.PodRunning),
		other)
	list, err := p.GetMetricBySelector(
		context.Background(),
		"mqtt",
		labels.Everything(),
		info(LiveConnections),
		labels.Everything(),
	)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, v := range list.Items {
		got[v.DescribedObject.Name] = v.Value.Value()
		if v.DescribedObject.Kind != "Pod" || v.Metric.Name != LiveConnections || !v.Timestamp.Time.Equal(at) {
			t.Fatalf("malformed value %+v", v)
		}
	}
	if len(got) != 2 || got["emqx-0"] != 1200 || got["emqx-1"] != 800 {
		t.Fatalf("live connections %v, want emqx-0 1200 and emqx-1 800 only", got)
	}
	if conn.forgotten != 1 {
		t.Fatalf("the failing cluster's connection was forgotten %d times, want 1", conn.forgotten)
	}
	one, err := p.GetMetricByName(
		context.Background(),
		types.NamespacedName{Namespace: "mqtt", Name: "emqx-0"},
		info(Connections),
		labels.Everything(),
	)
	if err != nil || one.Value.Value() != 1500 {
		t.Fatalf("emqx_connections of emqx-0: %v %v, want 1500", one, err)
	}
	for name, call := range map[string]func() error{
		"stopped node": func() error {
			_, err := p.GetMetricByName(context.Background(), types.NamespacedName{
				Namespace: "mqtt",
				Name:      "emqx-2",
			}, info(LiveConnections), labels.Everything())
			return err
		},
		"missing pod": func() error {
			_, err := p.GetMetricByName(context.Background(), types.NamespacedName{
				Namespace: "mqtt",
				Name:      "emqx-9",
			}, info(LiveConnections), labels.Everything())
			return err
		},
		"no EMQX pod selected": func() error {
			_, err := p.GetMetricBySelector(context.Background(), "mqtt",
				labels.SelectorFromSet(labels.Set{"app": "web"}), info(LiveConnections), labels.Everything())
			return err
		},
		"unknown metric": func() error {
			_, err := p.GetMetricBySelector(context.Background(), "mqtt", labels.Everything(), info("cpu"),
				labels.Everything())
			return err
		},
		"metric labels": func() error {
			_, err := p.GetMetricBySelector(context.Background(), "mqtt", labels.Everything(), info(LiveConnections),
				labels.SelectorFromSet(labels.Set{"a": "b"}))
			return err
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: a value was served", name)
		}
	}
}
