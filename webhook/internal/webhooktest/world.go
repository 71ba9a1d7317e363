package webhooktest

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/effects"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// NS is the namespace of the world's EMQX cluster.
const NS = "mqtt"

// Labels are the EMQX Helm chart's labels of the world's pods and StatefulSet.
func Labels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "emqx", "app.kubernetes.io/instance": "emqx"}
}

// Node is the EMQX node name of pod emqx-i.
func Node(i int) string { return fmt.Sprintf("emqx@emqx-%d.emqx-headless.mqtt.svc.cluster.local", i) }

// SimConnector reaches the simulated node of a pod by its name.
type SimConnector struct {
	URLs     map[string]string // by pod name
	Down     bool              // EMQX's API does not answer
	Rejected bool              // EMQX refuses every credential
}

// Connect implements observe.Connector.
func (s *SimConnector) Connect(_ context.Context, pod *corev1.Pod) (observe.EMQX, error) {
	if s.Rejected {
		return nil, &cluster.CredentialsError{
			Via:   "pod " + pod.Name,
			Tried: []string{`dashboard user "admin" from pod ` + pod.Name + `'s spec (BAD_USERNAME_OR_PWD)`},
		}
	}
	if s.Down {
		return nil, &emqx.UnreachableError{
			URL: "http://" + pod.Status.PodIP + ":18083",
			Err: errors.New("connection refused"),
		}
	}
	// Like PodConnector, reach the cluster through another pod than the one being removed.
	url := s.URLs[pod.Name]
	for name, u := range s.URLs {
		if name != pod.Name && (url == s.URLs[pod.Name] || u < url) {
			url = u
		}
	}
	return emqx.New(url, emqx.Credentials{APIKey: "k", APISecret: "s"}, emqx.WithGETRetries(1, 0))
}

// Forget implements observe.Connector.
func (s *SimConnector) Forget(*corev1.Pod) {}

// Prune implements observe.Connector.
func (s *SimConnector) Prune(map[string]bool) {}

// ReadyPod is emqx-i of StatefulSet emqx, Running and Ready.
func ReadyPod(i int, uid string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("emqx-%d", i),
			Namespace: NS,
			Labels:    Labels(),
			UID:       types.UID(uid),
			OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "emqx", UID: "sts-uid", Controller: ptr.To(true)},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("198.18.1.%d", i+2),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// World is a StatefulSet emqx with one Ready pod and one simulated EMQX node per pod.
type World struct {
	T      testing.TB
	Sim    *emqxsim.Cluster
	Conn   *SimConnector
	Clock  *clocktesting.FakeClock
	Rec    *record.FakeRecorder
	Kube   client.Client // the fake API server, with the status subresource of pods and StatefulSets
	Sts    *appsv1.StatefulSet
	Exec   *effects.Executor // writes through Kube (FailWrites swaps its client)
	Config decide.Config     // the defaults, with no health-check or takeover waits
}

// New builds a world with one pod and simulated node per entry of conns (its connections).
func New(t testing.TB, conns ...int64) *World {
	t.Helper()
	w := &World{
		T:     t,
		Conn:  &SimConnector{URLs: map[string]string{}},
		Clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		Rec:   record.NewFakeRecorder(100),
	}
	n := int32(len(conns))
	w.Sts = &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: NS, Labels: Labels(), UID: "sts-uid"},
		Spec:       appsv1.StatefulSetSpec{Replicas: &n, PodManagementPolicy: appsv1.ParallelPodManagement},
	}
	objs := []client.Object{w.Sts, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: NS}}}
	var nodes []emqxsim.NodeConfig
	for i, c := range conns {
		objs = append(objs, ReadyPod(i, fmt.Sprintf("uid-%d", i)))
		nodes = append(nodes, emqxsim.NodeConfig{Name: Node(i), Connections: c, Sessions: -1})
	}
	w.Kube = fake.NewClientBuilder().
		WithObjects(objs...).
		WithStatusSubresource(&corev1.Pod{}, &corev1.Namespace{}, &appsv1.StatefulSet{}).
		Build()
	var err error
	w.Sim, err = emqxsim.New(
		emqxsim.Config{
			Nodes:     nodes,
			APIKeys:   []emqxsim.APIKey{{Key: "k", Secret: "s"}},
			Reconnect: emqxsim.DefaultReconnect,
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	for i := range conns {
		srv := httptest.NewServer(w.Sim.Handler(Node(i)))
		t.Cleanup(srv.Close)
		w.Conn.URLs[fmt.Sprintf("emqx-%d", i)] = srv.URL
	}
	w.Config = decide.DefaultConfig()
	w.Config.WaitHealthCheck, w.Config.WaitTakeover = ptr.To(time.Duration(0)), ptr.To(time.Duration(0))
	w.Exec = &effects.Executor{Client: w.Kube, Recorder: w.Rec, Clock: w.Clock, Log: logr.Discard(), EMQX: w.Conn,
		Starts: &effects.StartTimes{}}
	return w
}

// FailWrites makes the executor's patches fail while failing() says so, as writes timing out
// under load do; objects are passed to failing so a test can fail some kinds only. Reads work.
func (w *World) FailWrites(failing func(client.Object) bool) {
	w.Exec.Client = interceptor.NewClient(w.Kube.(client.WithWatch), interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch,
			opts ...client.PatchOption) error {
			if failing(obj) {
				return errors.New("context deadline exceeded")
			}
			return c.Patch(ctx, obj, p, opts...)
		},
	})
}

// Pod reads emqx-i.
func (w *World) Pod(i int) *corev1.Pod {
	w.T.Helper()
	var p corev1.Pod
	if err := w.Kube.Get(context.Background(), client.ObjectKey{Namespace: NS, Name: fmt.Sprintf("emqx-%d", i)},
		&p); err != nil {
		w.T.Fatal(err)
	}
	return &p
}

// StatefulSet reads the StatefulSet.
func (w *World) StatefulSet() *appsv1.StatefulSet {
	w.T.Helper()
	var s appsv1.StatefulSet
	if err := w.Kube.Get(context.Background(), client.ObjectKeyFromObject(w.Sts), &s); err != nil {
		w.T.Fatal(err)
	}
	return &s
}

// Update writes obj.
func (w *World) Update(obj client.Object) {
	w.T.Helper()
	if err := w.Kube.Update(context.Background(), obj); err != nil {
		w.T.Fatal(err)
	}
}

// Terminating deletes pod i and keeps it, as the API server's deletion leaves a pod until its
// containers stop: a deletion timestamp, still running.
func (w *World) Terminating(i int) {
	w.T.Helper()
	p := w.Pod(i)
	p.Finalizers = []string{"test"}
	w.Update(p)
	if err := w.Kube.Delete(context.Background(), p); err != nil {
		w.T.Fatal(err)
	}
}

// UpdateStatus writes obj's status.
func (w *World) UpdateStatus(obj client.Object) {
	w.T.Helper()
	if err := w.Kube.Status().Update(context.Background(), obj); err != nil {
		w.T.Fatal(err)
	}
}

// Events drains the recorder.
func (w *World) Events() string {
	var out []string
	for {
		select {
		case e := <-w.Rec.Events:
			out = append(out, e)
		default:
			return strings.Join(out, "\n")
		}
	}
}

// Evacuation is the state of node i's evacuation in the simulator ("" when there is none).
func (w *World) Evacuation(i int) string {
	st, _ := w.Sim.Node(Node(i))
	return st.Evacuation
}

// Expect fails t unless v is allowed or not as said, with reason and a message containing msg.
func Expect(t testing.TB, v decide.Verdict, allowed bool, reason, msg string) {
	t.Helper()
	if v.Allowed != allowed || v.Reason != reason || !strings.Contains(v.Message, msg) {
		t.Fatalf("verdict %+v; want allowed=%v reason=%s message containing %q", v, allowed, reason, msg)
	}
}
