package cluster

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// objects decodes a fixture for namespace ns and adds a Ready pod per workload replica.
func objects(t *testing.T, fixture, ns string) []runtime.Object {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "hack", "fixtures", fixture))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("__NAMESPACE__", ns, "__REPLICAS__", "2").Replace(string(raw))
	var out []runtime.Object
	pod := func(name string, tmpl corev1.PodTemplateSpec, ip string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: tmpl.Labels},
			Spec:       tmpl.Spec,
			Status: corev1.PodStatus{
				Phase:      corev1.PodRunning,
				PodIP:      ip,
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			},
		}
	}
	for _, doc := range strings.Split(text, "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, obj)
		switch w := obj.(type) {
		case *appsv1.StatefulSet:
			for i := range *w.Spec.Replicas {
				out = append(out, pod(fmt.Sprintf("%s-%d", w.Name, i), w.Spec.Template,
					fmt.Sprintf("198.18.1.%d", 10+i)))
			}
		case *appsv1.ReplicaSet:
			for i := range *w.Spec.Replicas {
				out = append(out, pod(fmt.Sprintf("%s-r%d", w.Name, i), w.Spec.Template,
					fmt.Sprintf("198.18.2.%d", 10+i)))
			}
		}
	}
	return out
}

func TestDiscoverBothInstallStyles(t *testing.T) {
	// Both installs in one namespace; the Helm release is renamed so the two are told apart, and
	// the Services (which share a name and play no part in discovery) are left out.
	var objs []runtime.Object
	for _, o := range append(objects(t, "helm-emqx.yaml", "mqtt"), objects(t, "operator-emqx.yaml", "mqtt")...) {
		if _, svc := o.(*corev1.Service); svc {
			continue
		}
		if l := o.(metav1.Object).GetLabels(); l[LabelHelmInstance] == "emqx" {
			l[LabelHelmInstance] = "broker"
		}
		objs = append(objs, o)
	}
	// Workloads and pods of other applications in the namespace are listed too, and left out.
	web := map[string]string{"app.kubernetes.io/name": "web", LabelHelmInstance: "broker"}
	objs = append(objs, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "mqtt", Labels: web}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "mqtt", Labels: web}})
	cs := fake.NewClientset(objs...)
	clusters, err := Discover(context.Background(), cs, "mqtt", Matcher{})
	if err != nil {
		t.Fatal(err)
	}
	if len(clusters) != 2 {
		t.Fatalf("clusters %v", clusters)
	}
	broker, op := clusters[0], clusters[1]
	if broker.Name != "broker" || broker.Style != Helm || len(broker.StatefulSets) != 1 || len(broker.Pods) != 2 {
		t.Fatalf("helm cluster %+v", broker)
	}
	if op.Name != "emqx" || op.Style != Operator || len(op.StatefulSets) != 1 || len(op.ReplicaSets) != 1 ||
		len(op.Pods) != 4 {
		t.Fatalf("operator cluster %+v", op)
	}
	_, err = Select(clusters, "", "mqtt")
	if err == nil || !strings.Contains(err.Error(), "has 2 EMQX clusters (broker, emqx); name one") {
		t.Fatalf("ambiguous: %v", err)
	}
	if _, err := Select(clusters, "nope", "mqtt"); err == nil ||
		!strings.Contains(err.Error(), "there is: broker, emqx") {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := Select(nil, "", "empty"); err == nil || !strings.Contains(err.Error(), NotFoundHint) {
		t.Fatalf("none: %v", err)
	}
}

func TestForPodRejectsNonEMQXPods(t *testing.T) {
	objs := append(
		objects(t, "helm-emqx.yaml", "mqtt"),
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "mqtt", Labels: map[string]string{"app": "web"}},
		},
	)
	cs := fake.NewClientset(objs...)
	if _, _, err := ForPod(context.Background(), cs, "mqtt", "web", Matcher{}); err == nil ||
		!strings.Contains(err.Error(), `pod "web" in namespace "mqtt" is not an EMQX pod`) {
		t.Fatalf("got %v", err)
	}
	c, p, err := ForPod(context.Background(), cs, "mqtt", "emqx-1", Matcher{})
	if err != nil || c.Name != "emqx" || p.Name != "emqx-1" {
		t.Fatalf("got %v %v %v", c, p, err)
	}
}

func TestConnectUsesTheOperatorBootstrapKey(t *testing.T) {
	objs := objects(t, "operator-emqx.yaml", "mqtt")
	secret := objs[0].(*corev1.Secret)
	secret.Data = map[string][]byte{
		"bootstrap_api_key": []byte(secret.StringData["bootstrap_api_key"]),
	} // the API server would do this
	cs := fake.NewClientset(objs...)
	keys := ParseBootstrapFile(secret.StringData["bootstrap_api_key"])
	sim, _ := emqxsim.New(emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: "emqx@x"}}, NoLogin: true,
		APIKeys: []emqxsim.APIKey{{Key: keys[0].Key, Secret: keys[0].Secret}}})
	srv := httptest.NewServer(sim.Handler("emqx@x"))
	defer srv.Close()
	clusters, _ := Discover(context.Background(), cs, "mqtt", Matcher{})
	forward := func(context.Context, *corev1.Pod, int) (string, func(), error) { return srv.URL, func() {}, nil }
	conn, err := Connect(context.Background(), Access{Kube: cs, Forward: forward}, clusters[0], "emqx-core-5d4b8c7f9-0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conn.Creds, `API key "emqx-operator-controller" from Secret emqx-bootstrap-api-key`) ||
		!strings.Contains(conn.Via, "emqx-core-5d4b8c7f9-1") {
		t.Fatalf("connected with %s via %s (the avoided pod must not be used)", conn.Creds, conn.Via)
	}
	// Remove the Secret: every way is tried and named, secrets never printed.
	_ = cs.CoreV1().Secrets("mqtt").Delete(context.Background(), "emqx-bootstrap-api-key", metav1.DeleteOptions{})
	_, err = Connect(context.Background(), Access{Kube: cs, Forward: forward}, clusters[0])
	if err == nil || !strings.Contains(err.Error(), "Secret emqx-bootstrap-api-key (not found)") ||
		!strings.Contains(
			err.Error(),
			`dashboard user "admin" from pod emqx-core-5d4b8c7f9-0's spec (BAD_USERNAME_OR_PWD)`,
		) ||
		!strings.Contains(err.Error(), "--api-key/--api-secret") || strings.Contains(err.Error(), keys[0].Secret) {
		t.Fatalf("got %v", err)
	}
}

func TestPodOfNode(t *testing.T) {
	core := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx-core-abc-0"},
		Status:     corev1.PodStatus{PodIP: "198.18.1.4"},
	}
	repl := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx-replicant-x"},
		Status:     corev1.PodStatus{PodIP: "198.18.2.9"},
	}
	for node, want := range map[string]*corev1.Pod{
		"emqx@emqx-core-abc-0.emqx-headless.mqtt.svc.cluster.local": core,
		"emqx@198.18.2.9":         repl,
		"emqx@emqx-core-abc-01.x": nil,
		"my-emqx@emqx-core-abc-0": core,
		"nohost":                  nil,
	} {
		got, ok := PodOfNode([]corev1.Pod{*core, *repl}, node)
		if want == nil && ok || want != nil && (!ok || got.Name != want.Name) {
			t.Errorf("%s: got %v", node, got)
		}
	}
	nodes := []emqx.Node{{Node: "emqx@emqx-2.emqx-headless.mqtt.svc.cluster.local"}, {Node: "emqx@198.18.2.9"}}
	if n, ok := NodeByName(nodes, "emqx-2"); !ok || n.Node != nodes[0].Node {
		t.Fatal("a pod name matches the first label of the host")
	}
	if n, ok := NodeByName(nodes, "198.18.2.9"); !ok || n.Node != nodes[1].Node {
		t.Fatal("an IP matches the host")
	}
}

// The Secret a StatefulSet names in AnnCredentialsSecret comes first, for the plugin as for the
// webhook; a named Secret that is missing or lacks both pairs of keys is reported, and the other
// ways are still tried.
func TestTheNamedCredentialsSecretComesFirst(t *testing.T) {
	objs := objects(t, "helm-emqx.yaml", "mqtt")
	cs := fake.NewClientset(objs...)
	clusters, _ := Discover(context.Background(), cs, "mqtt", Matcher{})
	cl := clusters[0]
	cl.StatefulSets[0].Annotations = map[string]string{AnnCredentialsSecret: "emqx-api"}
	sim, _ := emqxsim.New(emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: "emqx@x"}}, NoLogin: true,
		APIKeys: []emqxsim.APIKey{{Key: "ops", Secret: "s3cret"}}})
	srv := httptest.NewServer(sim.Handler("emqx@x"))
	defer srv.Close()
	forward := func(context.Context, *corev1.Pod, int) (string, func(), error) { return srv.URL, func() {}, nil }
	_, err := Connect(context.Background(), Access{Kube: cs, Forward: forward}, cl)
	if err == nil ||
		!strings.Contains(
			err.Error(),
			"Secret emqx-api named by "+AnnCredentialsSecret+" on statefulset emqx (not found)",
		) {
		t.Fatalf("missing named Secret: %v", err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx-api", Namespace: "mqtt"},
		Data:       map[string][]byte{"token": []byte("x")},
	}
	if _, err := cs.CoreV1().Secrets("mqtt").Create(context.Background(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = Connect(context.Background(), Access{Kube: cs, Forward: forward}, cl)
	if err == nil || !strings.Contains(err.Error(), "it has neither api-key/api-secret nor username/password") {
		t.Fatalf("named Secret without keys: %v", err)
	}
	sec.Data = map[string][]byte{"api-key": []byte("ops"), "api-secret": []byte("s3cret")}
	if _, err := cs.CoreV1().Secrets("mqtt").Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	conn, err := Connect(context.Background(), Access{Kube: cs, Forward: forward}, cl)
	if err != nil || !strings.Contains(conn.Creds, "Secret emqx-api named by") {
		t.Fatalf("connected with %v: %v", conn, err)
	}
}
