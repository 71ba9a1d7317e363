package observe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

const ns = "mqtt"

var emqxLabels = map[string]string{"app.kubernetes.io/name": "emqx", "app.kubernetes.io/instance": "emqx"}

func node(i int) string { return fmt.Sprintf("emqx@emqx-%d.emqx-headless.mqtt.svc.cluster.local", i) }

// readyPod is emqx-i of StatefulSet emqx, Running and Ready.
func readyPod(i int, uid string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("emqx-%d", i),
			Namespace: ns,
			Labels:    emqxLabels,
			UID:       types.UID(uid),
			OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "emqx", UID: "sts-uid", Controller: ptr.To(true)},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("198.18.1.%d", i+2),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// servedPods are emqx-0 and emqx-1 of StatefulSet emqx, each serving its simulated node's API on
// loopback (through wrap, when given), and a reader that holds them.
func servedPods(t testing.TB, sim *emqxsim.Cluster, wrap func(http.Handler) http.Handler) ([]*corev1.Pod,
	client.Client) {
	t.Helper()
	pods := make([]*corev1.Pod, 2)
	for i := range pods {
		h := sim.Handler(node(i))
		if wrap != nil {
			h = wrap(h)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		p, _ := strconv.Atoi(port)
		pods[i] = readyPod(i, "uid-"+strconv.Itoa(i))
		pods[i].Status.PodIP = "127.0.0.1"
		pods[i].Spec.Containers = []corev1.Container{
			{Name: "emqx", Ports: []corev1.ContainerPort{{Name: "dashboard", ContainerPort: int32(p)}}},
		}
		pods[i].Status.ContainerStatuses = []corev1.ContainerStatus{
			{Name: "emqx", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		}
	}
	n := int32(2)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: ns, Labels: emqxLabels, UID: "sts-uid"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &n,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: emqxLabels}},
		},
	}
	return pods, fake.NewClientBuilder().WithObjects(sts, pods[0], pods[1]).Build()
}

// A cached connection is reused only while the pod it goes through is the same pod (UID) at the
// same IP: a pod that went and another that has its IP now gets neither the credentials nor trust.
func TestConnectionIsNotReusedThroughAnotherPod(t *testing.T) {
	sim, err := emqxsim.New(emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: node(0)}, {Name: node(1)}},
		Users: map[string]string{"admin": "public"}})
	if err != nil {
		t.Fatal(err)
	}
	pods, kube := servedPods(t, sim, nil)
	c := &PodConnector{Matcher: cluster.Matcher{}, Reader: kube, Secrets: kubefake.NewClientset()}
	ctx := context.Background()
	first, err := c.Connect(ctx, pods[1]) // any pod but the one removed: through emqx-0
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Connect(ctx, pods[1]); again != first {
		t.Fatal("a connection through a pod that is still there was not reused")
	}
	// emqx-0 is replaced: same name, same IP, another pod.
	replaced := pods[0].DeepCopy()
	replaced.UID = types.UID("uid-new")
	replaced.ResourceVersion = ""
	if err := kube.Delete(ctx, pods[0]); err != nil {
		t.Fatal(err)
	}
	if err := kube.Create(ctx, replaced); err != nil {
		t.Fatal(err)
	}
	next, err := c.Connect(ctx, pods[1])
	if err != nil {
		t.Fatal(err)
	}
	if next == first {
		t.Fatal("the connection was reused through another pod at the same IP")
	}
}

// Prune drops the connections of clusters that are not live, and only those.
func TestPruneDropsConnectionsOfGoneClusters(t *testing.T) {
	c := &PodConnector{conns: map[string]*cluster.Conn{"mqtt/emqx": {}, "gone/emqx": {}}}
	c.Prune(map[string]bool{"mqtt/emqx": true})
	if c.conns["mqtt/emqx"] == nil || c.conns["gone/emqx"] != nil {
		t.Fatalf("after a prune: %v", c.conns)
	}
	c.Prune(map[string]bool{})
	if len(c.conns) != 0 {
		t.Fatalf("the last cluster is gone, its connection stays: %v", c.conns)
	}
}

// With SharedFor, the decisions about one cluster that arrive together send EMQX one read per
// path and age: ten lookups of a pod's node are one GET of /nodes, until the age passes.
func TestDecisionsTogetherShareEMQXsAnswers(t *testing.T) {
	sim, err := emqxsim.New(emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: node(0)}, {Name: node(1)}},
		Users: map[string]string{"admin": "public"}})
	if err != nil {
		t.Fatal(err)
	}
	var nodesRead atomic.Int32
	pods, kube := servedPods(t, sim, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/api/v5/nodes" {
				nodesRead.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	clk := clocktesting.NewFakeClock(time.Unix(1e9, 0))
	c := &PodConnector{Matcher: cluster.Matcher{}, Reader: kube, Secrets: kubefake.NewClientset(),
		SharedFor: time.Second, Clock: clk}
	ctx := context.Background()
	lookups := func() int32 {
		t.Helper()
		before := nodesRead.Load()
		for range 10 {
			if s := Node(ctx, c, nil, pods[1], Question{Node: node(1), Status: true}); s.Err != nil {
				t.Fatal(s.Err)
			}
			if s := Node(ctx, c, nil, pods[0], Question{}); s.Err != nil || !s.Found {
				t.Fatalf("emqx-0's node: %+v", s)
			}
		}
		return nodesRead.Load() - before
	}
	if got := lookups(); got > 1 {
		t.Fatalf("20 lookups at once read /nodes %d times", got)
	}
	clk.Step(time.Second)
	if got := lookups(); got != 1 {
		t.Fatalf("a second later, 20 lookups read /nodes %d times, want 1", got)
	}
	c.SharedFor = 0
	c.Forget(pods[0])
	if got := lookups(); got < 10 {
		t.Fatalf("without sharing, 20 lookups read /nodes only %d times", got)
	}
}
