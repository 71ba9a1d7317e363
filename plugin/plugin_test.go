package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/ops"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/status"
)

var update = flag.Bool("update", false, "rewrite golden files")

// env is a fake Kubernetes namespace "mqtt" holding the Helm fixture with n pods, and a simulated
// EMQX node per pod, reached through a stand-in for the port-forward.
type env struct {
	t       testing.TB
	kube    *fake.Clientset
	sim     *emqxsim.Cluster
	urls    map[string]string   // pod → simulated node's URL
	forward atomic.Int32        // port-forwards opened (status -A opens several at once)
	every   func(now time.Time) // what else happens in the world as simulated time passes
}

func nodeName(i int) string {
	return fmt.Sprintf("emqx@emqx-%d.emqx-headless.mqtt.svc.cluster.local", i)
}

func newEnv(t testing.TB, conns ...int64) *env {
	t.Helper()
	objs, sts := helmFixture(t, "mqtt", len(conns))
	e := &env{t: t, urls: map[string]string{}}
	var nodes []emqxsim.NodeConfig
	for i, c := range conns {
		name := fmt.Sprintf("emqx-%d", i)
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "mqtt", Labels: sts.Spec.Template.Labels},
			Spec:       sts.Spec.Template.Spec,
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("198.18.1.%d", i+2),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
		nodes = append(nodes, emqxsim.NodeConfig{Name: nodeName(i), Connections: c, Sessions: -1})
	}
	e.kube = fake.NewClientset(objs...)
	var err error
	e.sim, err = emqxsim.New(emqxsim.Config{Nodes: nodes, Users: map[string]string{"admin": "kemqx-dashboard-pw"},
		Reconnect: emqxsim.DefaultReconnect, Start: time.Unix(1e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range conns {
		srv := httptest.NewServer(e.sim.Handler(nodeName(i)))
		t.Cleanup(srv.Close)
		e.urls[fmt.Sprintf("emqx-%d", i)] = srv.URL
	}
	return e
}

// helmFixture is the Helm chart's EMQX install (hack/fixtures) in namespace ns with replicas
// pods: its objects, and its StatefulSet among them.
func helmFixture(t testing.TB, ns string, replicas int) ([]runtime.Object, *appsv1.StatefulSet) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "hack", "fixtures", "helm-emqx.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("__NAMESPACE__", ns, "__REPLICAS__", fmt.Sprint(replicas)).Replace(string(raw))
	var objs []runtime.Object
	var sts *appsv1.StatefulSet
	for _, doc := range strings.Split(text, "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := obj.(*appsv1.StatefulSet); ok {
			sts = s
		}
		objs = append(objs, obj)
	}
	return objs, sts
}

// run executes `kubectl emqx ARGS` and returns stdout, stderr and the error.
func (e *env) run(ctx context.Context, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	g := NewGlobalOptions(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	g.KubeClient = e.kube
	g.Clock = &simClock{sim: e.sim, every: func(now time.Time) {
		if e.every != nil {
			e.every(now)
		}
	}}
	g.Forward = func(_ context.Context, pod *corev1.Pod, _ int) (string, func(), error) {
		e.forward.Add(1)
		return e.urls[pod.Name], func() {}, nil
	}
	cmd := newRootCmd(g)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// at runs fn once, the first time simulated time reaches d from now.
func (e *env) at(d time.Duration, fn func()) {
	when, done := e.sim.Now().Add(d), false
	e.every = func(now time.Time) {
		if !done && !now.Before(when) {
			done = true
			fn()
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf(
			"output differs from %s (run go test ./plugin -update to accept):\n--- got\n%s--- want\n%s",
			path,
			got,
			want,
		)
	}
}

func TestStatusTable(t *testing.T) {
	e := newEnv(t, 3000, 1000, 0)
	out, _, err := e.run(context.Background(), "status", "-n", "mqtt", "--color", "never")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status.golden", out)
}

// What emqx-webhook found when it tried the cluster's API shows in status when it is not ok.
func TestStatusShowsThatTheWebhookCannotAuthenticate(t *testing.T) {
	e := newEnv(t, 3000, 1000, 0)
	sts, err := e.kube.AppsV1().StatefulSets("mqtt").Get(context.Background(), "emqx", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sts.Annotations = map[string]string{
		cluster.AnnAPIAccess: "credentials-rejected 2026-12-01T10:00:00Z: EMQX accepts none of the credentials the " +
			"webhook found (dashboard user \"admin\" from pod emqx-0's spec (BAD_USERNAME_OR_PWD)); " +
			"give the webhook an API key",
	}
	if _, err := e.kube.AppsV1().StatefulSets("mqtt").Update(context.Background(), sts,
		metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run(context.Background(), "status", "-n", "mqtt", "--color", "never")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status-webhook-access.golden", out)
	sts.Annotations[cluster.AnnAPIAccess] = "ok 2026-12-01T10:05:00Z: the webhook authenticates to this EMQX cluster"
	if _, err := e.kube.AppsV1().StatefulSets("mqtt").Update(context.Background(), sts,
		metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := e.run(context.Background(), "status", "-n", "mqtt", "--color", "never"); strings.Contains(
		out,
		"emqx-webhook",
	) {
		t.Fatalf("an ok access check is shown:\n%s", out)
	}
}

func TestStatusShowsEvacuationAndRebalance(t *testing.T) {
	e := newEnv(t, 3000, 1000, 0)
	if _, _, err := e.run(context.Background(), "evacuate", "pod", "emqx-1", "-n", "mqtt", "--no-wait"); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run(context.Background(), "status", "-n", "mqtt", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r status.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(r.Rows) != 3 || r.Rows[1].Pod != "emqx-1" || r.Rows[1].State != "evacuation waiting_health_check" ||
		r.Connections != 4000 {
		t.Fatalf("report %+v", r)
	}
}

func TestEvacuateWaitsUntilEmpty(t *testing.T) {
	e := newEnv(t, 300, 300, 300)
	out, errOut, err := e.run(
		context.Background(),
		"evacuate",
		"pod",
		"emqx-2",
		"-n",
		"mqtt",
		"--wait-health-check",
		"1s",
		"--wait-takeover",
		"1s",
		"--conn-evict-rate",
		"100",
		"--interval",
		"20ms",
		"--migrate-to",
		"emqx-0",
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !strings.Contains(out, "evacuated: emqx-2 is empty") ||
		!strings.Contains(out, "kubectl emqx evacuate stop emqx-2 -n mqtt") {
		t.Fatalf("stdout %q", out)
	}
	golden(t, "evacuate-wait.golden", out+"--- stderr\n"+errOut)
	s := e.sim.Snapshot()
	if s.LostSessions != 0 || s.Nodes[2].Evacuation != "prohibiting" || s.Nodes[2].PersistentSessions != 0 {
		t.Fatalf("simulator %+v", s)
	}
	// Already evacuating: a second run only watches.
	_, errOut, err = e.run(context.Background(), "evacuate", "pod", "emqx-2", "-n", "mqtt", "--interval", "20ms")
	if err != nil || !strings.Contains(errOut, "already evacuating; watching it") {
		t.Fatalf("second run: %v %q", err, errOut)
	}
	out, _, err = e.run(context.Background(), "evacuate", "stop", "emqx-2", "-n", "mqtt")
	if err != nil || !strings.Contains(out, "accepts clients again") {
		t.Fatalf("stop: %v %q", err, out)
	}
	out, _, err = e.run(context.Background(), "evacuate", "stop", "emqx-2", "-n", "mqtt")
	if err != nil || !strings.Contains(out, "was not evacuating") {
		t.Fatalf("second stop: %v %q", err, out)
	}
}

func TestEvacuateInterruptedLeavesItRunningAndSaysHowToUndo(t *testing.T) {
	e := newEnv(t, 300, 300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.at(300*time.Millisecond, cancel)
	_, _, err := e.run(ctx, "evacuate", "pod", "emqx-1", "-n", "mqtt", "--interval", "20ms")
	if err == nil ||
		!strings.Contains(
			err.Error(),
			"interrupted: EMQX node "+nodeName(1)+" is still evacuating (state waiting_health_check)",
		) ||
		!strings.Contains(err.Error(), "Undo with: kubectl emqx evacuate stop emqx-1 -n mqtt") {
		t.Fatalf("got %v", err)
	}
	if st, _ := e.sim.Node(nodeName(1)); st.Evacuation == "" {
		t.Fatal("the evacuation was stopped; it should go on")
	}
}

func TestEvacuateTimeout(t *testing.T) {
	e := newEnv(t, 300, 300)
	_, _, err := e.run(
		context.Background(),
		"evacuate",
		"pod",
		"emqx-1",
		"-n",
		"mqtt",
		"--interval",
		"20ms",
		"--timeout",
		"100ms",
	)
	if err == nil || !strings.HasPrefix(err.Error(), "timed out after 100ms: EMQX node") {
		t.Fatalf("got %v", err)
	}
}

func TestRebalanceEndsBalanced(t *testing.T) {
	e := newEnv(t, 1500, 1500, 0)
	out, errOut, err := e.run(
		context.Background(),
		"rebalance",
		"-n",
		"mqtt",
		"--abs-conn-threshold",
		"50",
		"--abs-sess-threshold",
		"50",
		"--wait-health-check",
		"1s",
		"--wait-takeover",
		"1s",
		"--conn-evict-rate",
		"50",
		"--interval",
		"20ms",
	)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "balanced: the donors are within the thresholds") ||
		!regexp.MustCompile(`connections per node from \d+ to \d+: a spread of \d+\)`).MatchString(out) ||
		!strings.Contains(errOut, "coordinated by emqx-0") {
		t.Fatalf("out %q err %q", out, errOut)
	}
	// Clients a donor refused through the Service are still retrying: wait for them (bounded).
	s := e.sim.Snapshot()
	for i := 0; s.ReconnectingClients > 0 && i < 500; i, s = i+1, e.sim.Snapshot() {
		e.sim.Advance(100 * time.Millisecond)
	}
	if s.LostSessions != 0 || s.ConnectedClients != 3000 {
		t.Fatalf("simulator %+v", s)
	}
}

func TestRebalanceAbortedIsNotBalanced(t *testing.T) {
	e := newEnv(t, 1500, 1500, 0)
	e.at(4*time.Second, func() { _ = e.sim.StopNode(nodeName(2)) })
	out, _, err := e.run(
		context.Background(),
		"rebalance",
		"-n",
		"mqtt",
		"--abs-conn-threshold",
		"50",
		"--abs-sess-threshold",
		"50",
		"--wait-health-check",
		"1s",
		"--wait-takeover",
		"1s",
		"--conn-evict-rate",
		"10",
		"--interval",
		"20ms",
	)
	if !errors.Is(err, ErrNotBalanced) || !strings.Contains(out, "not balanced") ||
		ExitCode(err, false) != ExitNotBalanced {
		t.Fatalf("got %v (exit %d)\n%s", err, ExitCode(err, false), out)
	}
}

func TestRebalanceNothingToBalanceAndDryRun(t *testing.T) {
	e := newEnv(t, 100, 90, 95)
	out, _, err := e.run(context.Background(), "rebalance", "-n", "mqtt")
	if err != nil || !strings.Contains(out, "nothing to balance") ||
		!strings.Contains(out, "already within the thresholds") {
		t.Fatalf("got %v %q", err, out)
	}
	e = newEnv(t, 3000, 0)
	out, _, err = e.run(context.Background(), "rebalance", "-n", "mqtt", "--dry-run", "--abs-conn-threshold", "10")
	if err != nil ||
		!strings.Contains(out, "at least 1429 connections to move, up to 1500: EMQX evicts 500 per donor each second") {
		t.Fatalf("got %v %q", err, out)
	}
	if rb := e.sim.Snapshot().Nodes[0].RebalanceRole; rb != "" {
		t.Fatalf("--dry-run started a rebalance (%s)", rb)
	}
}

func TestBadInputIsOneLineAndStartsNothing(t *testing.T) {
	e := newEnv(t, 100, 100)
	notFound := `pod "nope" not found in namespace "mqtt"; list EMQX pods with: kubectl emqx status -n mqtt`
	notMember := `--nodes emqx-9: pod "emqx-9" is not part of EMQX cluster "emqx"`
	for args, want := range map[string]string{
		"evacuate pod nope -n mqtt":                           notFound,
		"evacuate pod emqx-0 -n mqtt --migrate-to emqx-0":     "--migrate-to emqx-0 is the node being evacuated",
		"evacuate pod emqx-0 -n mqtt --within 1s":             "--within 1s leaves no time after the waits",
		"evacuate pod emqx-0 -n mqtt --conn-evict-rate 0":     "must be at least 1",
		"evacuate pod emqx-0 -n mqtt --then-delete --no-wait": "cannot go with --no-wait",
		"rebalance -n mqtt --rel-sess-threshold 1":            "greater than 1.0",
		"rebalance -n mqtt --nodes emqx-9":                    notMember,
		"status -n other":                                     `no EMQX cluster in namespace "other"`,
		"status -n mqtt --username admin":                     "--username needs --password",
		"status -n mqtt --username admin --password wrong":    "tried: the given credentials (BAD_USERNAME_OR_PWD)",
		"status -n mqtt -o table":                             `--output "table": use one of wide, json, yaml, name`,
		"scale statefulset/emqx -n mqtt":                      "--replicas is required",
		"scale statefulset/nope --replicas 1 -n mqtt":         `statefulset "nope" not found`,
		"evacuate pod emqx-0 -n mqtt --wait-takeover -1s":     "cannot be negative",
		"evacuate pod": "want exactly one POD argument",
		"status -n mqtt --emqx-url 127.0.0.1:18083 --color never":   "invalid EMQX URL",
		"evacuate pod emqx-0 --emqx-url http://x:1 --then-delete":   "needs Kubernetes access",
		"scale statefulset/emqx --replicas 1 --emqx-url http://x:1": "needs Kubernetes access",
	} {
		_, _, err := e.run(context.Background(), strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s:\n  got  %v\n  want %q on one line", args, err, want)
		}
	}
	s := e.sim.Snapshot()
	for _, n := range s.Nodes {
		if n.Evacuation != "" || n.RebalanceRole != "" {
			t.Fatalf("bad input started something: %+v", n)
		}
	}
}

func TestCredentialsComeFromThePodSpec(t *testing.T) {
	e := newEnv(t, 10, 10)
	// No flags: the dashboard password of the fixture's env is found and used.
	if _, _, err := e.run(context.Background(), "status", "-n", "mqtt"); err != nil {
		t.Fatal(err)
	}
	// Environment variables are read when the flags are empty.
	t.Setenv("EMQX_USERNAME", "admin")
	t.Setenv("EMQX_PASSWORD", "nope")
	_, _, err := e.run(context.Background(), "status", "-n", "mqtt")
	if err == nil || !strings.Contains(err.Error(), "the given credentials (BAD_USERNAME_OR_PWD)") ||
		strings.Contains(err.Error(), "nope") {
		t.Fatalf("got %v", err)
	}
}

func TestDirectModeAcceptsPodOrNodeNames(t *testing.T) {
	e := newEnv(t, 10, 10)
	url := e.urls["emqx-0"]
	for _, name := range []string{"emqx-1", nodeName(1)} {
		out, _, err := e.run(
			context.Background(),
			"evacuate",
			"pod",
			name,
			"--emqx-url",
			url,
			"--username",
			"admin",
			"--password",
			"kemqx-dashboard-pw",
			"--no-wait",
		)
		if err != nil || !strings.Contains(out, "watch with: kubectl emqx status;") {
			t.Fatalf("%s: %v %q", name, err, out)
		}
		if _, _, err := e.run(context.Background(), "evacuate", "stop", name, "--emqx-url", url, "--username", "admin",
			"--password", "kemqx-dashboard-pw"); err != nil {
			t.Fatal(err)
		}
	}
	if e.forward.Load() != 0 {
		t.Fatal("direct mode port-forwarded")
	}
}

func TestNoRebalanceAPIIsClear(t *testing.T) {
	c, err := emqxsim.New(
		emqxsim.Config{Nodes: []emqxsim.NodeConfig{{Name: nodeName(0)}}, Edition: "Opensource", Version: "5.8.9"},
	)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler(nodeName(0)))
	defer srv.Close()
	e := &env{t: t}
	_, _, err = e.run(context.Background(), "status", "--emqx-url", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "this EMQX has no rebalance API") {
		t.Fatalf("got %v", err)
	}
}

func TestSafeEscapesTerminalControl(t *testing.T) {
	if got := safe("emqx@a\x1b[31mred"); strings.ContainsRune(got, 0x1b) || got != `emqx@a\x1b[31mred` {
		t.Fatalf("got %q", got)
	}
	if safe("emqx@emqx-0.emqx-headless") != "emqx@emqx-0.emqx-headless" {
		t.Fatal("plain names must pass unchanged")
	}
}

func TestEvacuationStoppedByOthersWhileWaitingIsSaidPlainly(t *testing.T) {
	e := newEnv(t, 300, 300)
	e.at(time.Second, func() {
		c, _ := emqxClient(e.urls["emqx-0"])
		_ = c.StopEvacuation(context.Background(), nodeName(1))
	})
	_, _, err := e.run(context.Background(), "evacuate", "pod", "emqx-1", "-n", "mqtt", "--interval", "20ms")
	if err == nil || !strings.Contains(err.Error(), "is gone: someone stopped it") ||
		strings.Contains(err.Error(), "still evacuating") {
		t.Fatalf("got %v", err)
	}
}

func emqxClient(url string) (*emqx.Client, error) {
	return emqx.New(url, emqx.Credentials{Username: "admin", Password: "kemqx-dashboard-pw"})
}

// README and the command's own example show `kubectl emqx version -o json`.
func TestVersionPrintsJSONAndYAML(t *testing.T) {
	e := newEnv(t)
	out, _, err := e.run(context.Background(), "version", "-o", "json")
	var v map[string]string
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" || v["platform"] == "" {
		t.Fatalf("version -o json: %v %q", err, out)
	}
	if out, _, err := e.run(context.Background(), "version", "-o", "yaml"); err != nil ||
		!strings.Contains(out, "version: ") {
		t.Fatalf("version -o yaml: %v %q", err, out)
	}
	if _, _, err := e.run(context.Background(), "version", "-o", "xml"); err == nil ||
		!strings.Contains(err.Error(), "use json or yaml") {
		t.Fatalf("version -o xml: %v", err)
	}
}

// emqx-webhook's automatic rebalance shows in status: the one running, or how the last one ended.
func TestStatusShowsTheAutomaticRebalance(t *testing.T) {
	e := newEnv(t, 3000, 1000, 0)
	sts, _ := e.kube.AppsV1().StatefulSets("mqtt").Get(context.Background(), "emqx", metav1.GetOptions{})
	sts.Annotations = map[string]string{
		cluster.AnnRebalanceResult: "Completed 2026-12-01T10:00:00Z: balanced by EMQX's rule; " +
			"connections per node: a 1000, b 1000",
	}
	if _, err := e.kube.AppsV1().StatefulSets("mqtt").Update(context.Background(), sts,
		metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run(context.Background(), "status", "-n", "mqtt", "--color", "never")
	if err != nil || !strings.Contains(out, "Automatic rebalance: last: Completed 2026-12-01T10:00:00Z") {
		t.Fatalf("%v\n%s", err, out)
	}
}

// A stopped node is shown as stopped, with no counts; JSON lists are [] when empty, never null.
func TestStatusShowsStoppedNodesAndEmptyLists(t *testing.T) {
	e := newEnv(t, 3000, 1000, 0)
	if err := e.sim.StopNode(nodeName(2)); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run(context.Background(), "status", "-n", "mqtt", "--color", "never")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status-stopped.golden", out)
	out, _, err = e.run(context.Background(), "status", "-n", "mqtt", "-o", "json")
	if err != nil || !strings.Contains(out, `"rebalances": []`) {
		t.Fatalf("json: %v\n%s", err, out)
	}
}

// evacuate pod names its targets as the webhook does: the nodes EMQX accepts. An evacuating node
// is neither a default target nor accepted in --migrate-to, and the error says which are.
func TestEvacuateSendsOnlyAvailableTargets(t *testing.T) {
	e := newEnv(t, 300, 300, 300)
	ctx := context.Background()
	if _, errOut, err := e.run(ctx, "evacuate", "pod", "emqx-1", "-n", "mqtt", "--no-wait"); err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	_, _, err := e.run(ctx, "evacuate", "pod", "emqx-2", "-n", "mqtt", "--no-wait", "--migrate-to", "emqx-1")
	if err == nil || !strings.Contains(err.Error(), "--migrate-to emqx-1: EMQX would refuse it") ||
		!strings.Contains(err.Error(), "choose among emqx-0") {
		t.Fatalf("--migrate-to an evacuating node: %v", err)
	}
	if _, errOut, err := e.run(ctx, "evacuate", "pod", "emqx-2", "-n", "mqtt", "--no-wait"); err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	c, _ := emqxClient(e.urls["emqx-0"])
	g, err := c.GlobalStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := g.Evacuation(nodeName(2))
	if strings.Join(ev.SessionRecipients, ",") != nodeName(0) {
		t.Fatalf("emqx-2's sessions go to %v, want emqx-0 only", ev.SessionRecipients)
	}
}

// kubectl emqx scale 3→1: emqx-2's sessions never go into emqx-1, which goes too.
func TestScaleDownMigratesOnlyToPodsThatStay(t *testing.T) {
	e := newEnv(t, 300, 300, 300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.at(300*time.Millisecond, cancel)
	_, _, _ = e.run(ctx, "scale", "statefulset/emqx", "--replicas", "1", "-n", "mqtt", "--interval", "20ms")
	c, _ := emqxClient(e.urls["emqx-0"])
	g, err := c.GlobalStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		ev, ok := g.Evacuation(nodeName(i))
		if !ok || strings.Join(ev.SessionRecipients, ",") != nodeName(0) {
			t.Fatalf("emqx-%d: evacuating %v, sessions to %v; want emqx-0 only", i, ok, ev.SessionRecipients)
		}
	}
}

// kubectl emqx scale 3→1 evacuates both victims at once, into the pod that stays, then scales.
func TestScaleDownEvacuatesTheVictimsThenScales(t *testing.T) {
	e := newEnv(t, 300, 300, 300)
	ctx := context.Background()
	// The scale subresource, which the fake clientset does not serve.
	e.kube.PrependReactor("update", "statefulsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u, ok := a.(k8stesting.UpdateAction)
		if !ok || a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		scale := u.GetObject().(*autoscalingv1.Scale)
		obj, err := e.kube.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("statefulsets"), "mqtt", scale.Name)
		if err != nil {
			return true, nil, err
		}
		sts := obj.(*appsv1.StatefulSet)
		sts.Spec.Replicas = &scale.Spec.Replicas
		return true, scale, e.kube.Tracker().Update(appsv1.SchemeGroupVersion.WithResource("statefulsets"), sts, "mqtt")
	})
	// The StatefulSet controller's part: once the replicas are lowered, the removed pods go.
	e.every = func(time.Time) {
		sts, err := e.kube.AppsV1().StatefulSets("mqtt").Get(ctx, "emqx", metav1.GetOptions{})
		if err == nil && sts.Spec.Replicas != nil && *sts.Spec.Replicas == 1 {
			for _, p := range []string{"emqx-1", "emqx-2"} {
				_ = e.kube.CoreV1().Pods("mqtt").Delete(ctx, p, metav1.DeleteOptions{})
			}
		}
	}
	out, errOut, err := e.run(
		ctx,
		"scale",
		"statefulset/emqx",
		"--replicas",
		"1",
		"-n",
		"mqtt",
		"--wait-health-check",
		"1s",
		"--wait-takeover",
		"1s",
		"--conn-evict-rate",
		"100",
		"--sess-evict-rate",
		"100",
		"--interval",
		"500ms",
	)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	golden(t, "scale-down.golden", out+"--- stderr\n"+errOut)
	if s := e.sim.Snapshot(); s.LostSessions != 0 || s.Nodes[0].PersistentSessions != 900 {
		t.Fatalf("simulator %+v", s)
	}
}

// The plan lists pods by ordinal within each role, emqx-2 before emqx-10.
func TestComparePodsByOrdinal(t *testing.T) {
	names := []string{"emqx-10", "emqx-2", "emqx-0", "other", "emqx-1"}
	slices.SortFunc(names, comparePods)
	if want := []string{"emqx-0", "emqx-1", "emqx-2", "emqx-10", "other"}; !slices.Equal(names, want) {
		t.Fatalf("order %v, want %v", names, want)
	}
}

// Exit codes: 2 for a rebalance that ended not balanced (TestRebalanceAbortedIsNotBalanced gets
// it from a real run), 130 for an interrupted command whatever its error (hack/e2e interrupts
// kubectl emqx with SIGINT), 1 for any other error.
func TestExitCodes(t *testing.T) {
	if ExitCode(ErrNotBalanced, true) != ExitInterrupted {
		t.Fatal("an interrupted command did not exit 130")
	}
	for _, c := range []struct {
		err  error
		want int
	}{{nil, 0}, {ErrNotBalanced, 2}, {fmt.Errorf("judged: %w", ErrNotBalanced), 2}, {errors.New("boom"), 1}} {
		if got := ExitCode(c.err, false); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// --emqx-selector finds EMQX installs labelled otherwise, as the webhook's flag does; a bad
// selector is refused by name.
func TestEMQXSelectorFindsOtherInstalls(t *testing.T) {
	e := newEnv(t, 100, 200)
	ctx := context.Background()
	relabel := func(obj metav1.Object) {
		l := obj.GetLabels()
		delete(l, "app.kubernetes.io/name")
		l["broker"] = "mqtt"
		obj.SetLabels(l)
	}
	for _, name := range []string{"emqx-0", "emqx-1"} {
		p, _ := e.kube.CoreV1().Pods("mqtt").Get(ctx, name, metav1.GetOptions{})
		relabel(p)
		_, _ = e.kube.CoreV1().Pods("mqtt").Update(ctx, p, metav1.UpdateOptions{})
	}
	s, _ := e.kube.AppsV1().StatefulSets("mqtt").Get(ctx, "emqx", metav1.GetOptions{})
	relabel(s)
	_, _ = e.kube.AppsV1().StatefulSets("mqtt").Update(ctx, s, metav1.UpdateOptions{})
	if _, _, err := e.run(ctx, "status", "-n", "mqtt"); err == nil ||
		!strings.Contains(err.Error(), "no EMQX cluster") {
		t.Fatalf("without the selector: %v", err)
	}
	out, _, err := e.run(ctx, "status", "-n", "mqtt", "--emqx-selector", "broker=mqtt")
	if err != nil || !strings.Contains(out, "emqx-1") || !strings.Contains(out, "300") {
		t.Fatalf("with the selector: %v\n%s", err, out)
	}
	if _, _, err := e.run(ctx, "status", "-n", "mqtt", "--emqx-selector", "broker in (a"); err == nil ||
		!strings.Contains(err.Error(), `--emqx-selector "broker in (a"`) {
		t.Fatalf("a bad selector: %v", err)
	}
}

// Every output a user reads has a golden file: status during an evacuation and a rebalance (table,
// JSON, YAML), the rebalance plan, the evacuation and scale messages.
func TestOutputsMatchTheirGoldenFiles(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 3000, 1000, 0)
	if _, _, err := e.run(ctx, "evacuate", "pod", "emqx-1", "-n", "mqtt", "--no-wait", "--color", "never"); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"status-evacuation.golden":      {"status", "-n", "mqtt", "--color", "never"},
		"status-evacuation-json.golden": {"status", "-n", "mqtt", "-o", "json"},
		"status-evacuation-yaml.golden": {"status", "-n", "mqtt", "-o", "yaml"},
	} {
		out, _, err := e.run(ctx, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		golden(t, name, out)
	}

	e = newEnv(t, 3000, 1000, 0)
	out, _, err := e.run(ctx, "rebalance", "-n", "mqtt", "--dry-run", "--abs-conn-threshold", "100", "--color", "never")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "rebalance-plan.golden", out)
	out, errOut, err := e.run(
		ctx,
		"rebalance",
		"-n",
		"mqtt",
		"--no-wait",
		"--abs-conn-threshold",
		"100",
		"--color",
		"never",
	)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "rebalance-started.golden", out+"--- stderr\n"+errOut)
	out, _, err = e.run(ctx, "status", "-n", "mqtt", "--color", "never")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status-rebalance.golden", out)

	e = newEnv(t, 300, 300, 300)
	out, errOut, err = e.run(ctx, "evacuate", "pod", "emqx-2", "-n", "mqtt", "--no-wait", "--color", "never")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "evacuate-no-wait.golden", out+"--- stderr\n"+errOut)
}

// On a terminal the view draws one bar per node with mpb, completes the ones that are done, and
// stops its renderer on close (goleak would catch one left running).
func TestEvacuationViewDrawsABarPerNodeOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	v := newEvacuationView(&ui{errOut: &buf, errTTY: true})
	at := func(node, state string, conns, sessions int64) ops.Evacuating {
		ev := emqx.Evacuation{Node: node, State: state, ConnectionEvictionRate: 100, SessionEvictionRate: 100,
			Stats: emqx.Stats{
				InitialConnected: 200,
				CurrentConnected: conns,
				InitialSessions:  200,
				CurrentSessions:  sessions,
			}}
		return ops.Evacuating{
			Pod: strings.TrimPrefix(node, "emqx@"),
			Progress: evacuation.ProgressOf(
				ev,
				emqx.Node{},
				evacuation.DurableOff,
				evacuation.Waits{Takeover: time.Second},
			),
		}
	}
	v.show(
		[]ops.Evacuating{
			at("emqx@a", emqx.EvacuationEvictingConns, 200, 200),
			at("emqx@b", emqx.EvacuationEvictingConns, 200, 200),
		},
	)
	v.show(
		[]ops.Evacuating{
			at("emqx@a", emqx.EvacuationEvictingSessions, 0, 100),
			at("emqx@b", emqx.EvacuationEvictingConns, 100, 200),
		},
	)
	v.show(
		[]ops.Evacuating{
			at("emqx@a", emqx.EvacuationProhibiting, 0, 0),
			at("emqx@b", emqx.EvacuationWaitingTakeover, 0, 200),
		},
	)
	v.close()
	out := buf.String()
	// The renderer draws the latest state: a done, b half-way (200 of 400 moved), in line.
	if !regexp.MustCompile(`a +\[=+\] prohibiting: empty\n`).MatchString(out) ||
		!regexp.MustCompile(`b +\[=+>?-+\] waiting_takeover: 0 conns, 200 sessions, ~3s\n`).MatchString(out) {
		t.Fatalf("bars:\n%s", out)
	}
}

// A hostile EMQX's role, node status and states reach the terminal escaped.
func TestStatusEscapesEMQXProvidedWords(t *testing.T) {
	var buf bytes.Buffer
	esc := "\x1b]0;pwned\x07"
	r := status.Report{Rows: []status.Row{
		{Pod: "emqx-0", Node: "emqx@a", Role: "core" + esc, NodeStatus: "running", State: "evacuation " + esc,
			Version: "5.8.6" + esc},
		{Pod: "emqx-1", Node: "emqx@b", Role: "core", NodeStatus: "stopped" + esc},
	}, Rebalances: []status.Rebalance{{Coordinator: "emqx@a", State: "evicting_conns" + esc}}}
	printReport(&ui{out: &buf}, &buf, r, false, true)
	if strings.ContainsRune(buf.String(), 0x1b) || strings.ContainsRune(buf.String(), 0x07) {
		t.Fatalf("control characters reached the output: %q", buf.String())
	}
}

// EMQX's default admin/public never crosses the network in clear unless asked; secrets given as
// flags are warned about.
func TestDefaultCredentialsAndSecretFlags(t *testing.T) {
	e := &env{t: t}
	_, _, err := e.run(
		context.Background(),
		"status",
		"--emqx-url",
		"http://198.18.9.9:18083",
	) // refused before any traffic
	if err == nil || !strings.Contains(err.Error(), "admin/public would cross the network in clear") {
		t.Fatalf("got %v", err)
	}
	for url, allow := range map[string]bool{"http://198.18.9.9:18083": true, "https://emqx.example:18084": false,
		"http://127.0.0.1:18083": false, "http://localhost:18083": false} {
		g := &GlobalOptions{EMQXURL: url, AllowDefaultCredentials: allow}
		if err := g.checkDefaultCredentials(emqx.Credentials{}); err != nil {
			t.Errorf("%s (allow %v): %v", url, allow, err)
		}
	}
	c, err := emqxsim.New(
		emqxsim.Config{
			Nodes:   []emqxsim.NodeConfig{{Name: nodeName(0)}},
			APIKeys: []emqxsim.APIKey{{Key: "k", Secret: "s"}},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler(nodeName(0)))
	defer srv.Close()
	_, errOut, err := e.run(
		context.Background(),
		"status",
		"--emqx-url",
		srv.URL,
		"--api-key",
		"k",
		"--api-secret",
		"s",
	)
	if err != nil || !strings.Contains(errOut, "Warning: --api-secret on the command line") ||
		!strings.Contains(errOut, "EMQX_API_SECRET") {
		t.Fatalf("no warning for --api-secret (%v): %q", err, errOut)
	}
}

// Colour changes nothing but colour: the table of a world with every kind of STATE cell (serving,
// evacuating, stopped) is aligned the same with colour on, once its escape codes are taken out.
func TestColouredStatusKeepsItsColumnsAligned(t *testing.T) {
	e := newEnv(t, 3000, 1000, 500)
	if err := e.sim.StopNode(nodeName(2)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, errOut, err := e.run(ctx, "evacuate", "pod", "emqx-1", "-n", "mqtt", "--no-wait"); err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	plain, _, err := e.run(ctx, "status", "-n", "mqtt", "--color", "never")
	if err != nil {
		t.Fatal(err)
	}
	coloured, _, err := e.run(ctx, "status", "-n", "mqtt", "--color", "always")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(coloured, "\x1b[33m") || !strings.Contains(coloured, "\x1b[31m") {
		t.Fatalf("no yellow or red cell to test with:\n%q", coloured)
	}
	golden(t, "status-color.golden", coloured)
	if stripped := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(coloured, ""); stripped != plain {
		t.Fatalf("coloured, then stripped:\n%s\nwithout colour:\n%s", stripped, plain)
	}
}

// status --watch redraws the screen only when the table is on a terminal, wherever progress goes.
func TestWatchClearsOnlyTheTerminalItDrawsOn(t *testing.T) {
	for _, c := range []struct {
		outTTY, errTTY bool
		output, want   string
	}{
		{true, false, "", "\033[H\033[2J"},
		{true, false, "wide", "\033[H\033[2J"},
		{false, true, "", "\n"},
		{true, true, "json", "\n"},
	} {
		var buf bytes.Buffer
		o := StatusOptions{Output: c.output}
		separate(&ui{out: &buf, outTTY: c.outTTY, errTTY: c.errTTY}, o.table())
		if buf.String() != c.want {
			t.Errorf(
				"out a terminal %v, err a terminal %v, -o %q: %q, want %q",
				c.outTTY,
				c.errTTY,
				c.output,
				buf.String(),
				c.want,
			)
		}
	}
}

// A dry run says which pods would go, where their clients would move and about how long it would
// take, and starts and changes nothing: EMQX evacuates no node and the StatefulSet keeps its
// replicas.
func TestDryRunsStartNothing(t *testing.T) {
	e := newEnv(t, 1000, 400, 600)
	ctx := context.Background()
	out, errOut, err := e.run(ctx, "scale", "statefulset/emqx", "--replicas", "2", "-n", "mqtt", "--dry-run",
		"--conn-evict-rate", "100", "--sess-evict-rate", "100", "--wait-health-check", "5s", "--wait-takeover", "5s")
	if err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	golden(t, "scale-dry-run.golden", out)
	out, errOut, err = e.run(ctx, "evacuate", "pod", "emqx-1", "-n", "mqtt", "--dry-run", "--migrate-to", "emqx-0")
	if err != nil {
		t.Fatalf("%v %s", err, errOut)
	}
	golden(t, "evacuate-dry-run.golden", out)
	c, _ := emqxClient(e.urls["emqx-0"])
	g, err := c.GlobalStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Evacuations) != 0 {
		t.Fatalf("a dry run started %d evacuations", len(g.Evacuations))
	}
	sts, err := e.kube.AppsV1().StatefulSets("mqtt").Get(ctx, "emqx", metav1.GetOptions{})
	if err != nil || *sts.Spec.Replicas != 3 {
		t.Fatalf("the StatefulSet changed: %v %v", err, sts.Spec.Replicas)
	}
	if _, _, err := e.run(ctx, "evacuate", "pod", "emqx-1", "-n", "mqtt", "--dry-run", "--no-wait"); err == nil ||
		!strings.Contains(err.Error(), "--dry-run starts nothing") {
		t.Fatalf("--dry-run --no-wait: %v", err)
	}
}

// Shell completion offers what each argument and flag takes: the namespace's EMQX StatefulSets for
// scale, its EMQX pods for --migrate-to and --nodes, the fixed values of -o and --color.
func TestCompletionOffersWhatEachArgumentTakes(t *testing.T) {
	e := newEnv(t, 100, 100)
	for args, want := range map[string][]string{
		"scale -n mqtt ": {"statefulset/emqx"},
		"evacuate pod emqx-0 -n mqtt --migrate-to ": {"emqx-0", "emqx-1"},
		"rebalance -n mqtt --nodes ":                {"emqx-0", "emqx-1"},
		"status -o ": {"wide", "json", "yaml", "name", "jsonpath=", "jsonpath-file=", "go-template=",
			"go-template-file="},
		"version -o ":     {"json", "yaml"},
		"status --color ": {"auto", "always", "never"},
	} {
		words := append([]string{"__complete"}, strings.Fields(args)...)
		words = append(words, "") // the word being completed: empty
		out, _, err := e.run(context.Background(), words...)
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") && !strings.HasPrefix(l, "Completion ended") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("kubectl emqx %s<TAB>: %q, want %q\n%s", args, got, want, out)
		}
	}
}

// rbacTable reads README's table of what each command needs: command → "verb resource".
func rbacTable(t *testing.T) map[string]map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 4 || !strings.Contains(cells[2], "pods/portforward") {
			continue
		}
		needs := map[string]bool{}
		for _, part := range strings.Split(cells[2], ";") {
			fields := strings.SplitN(strings.TrimSpace(part), " ", 2)
			verb := strings.Trim(fields[0], "`")
			for _, res := range strings.Split(fields[1], ",") {
				needs[verb+" "+strings.Fields(res)[0]] = true
			}
		}
		for _, cmd := range strings.Split(cells[1], ",") {
			table[strings.Trim(strings.TrimSpace(cmd), "`")] = needs
		}
	}
	return table
}

// Each command asks the API server for nothing README's RBAC table does not list for it.
func TestEachCommandNeedsOnlyWhatTheREADMESays(t *testing.T) {
	table := rbacTable(t)
	for _, c := range []struct {
		row  string // the table's row
		args []string
	}{
		{"status", []string{"status", "-n", "mqtt"}},
		{"status -A", []string{"status", "-A"}},
		{"rebalance", []string{"rebalance", "-n", "mqtt"}},
		{"evacuate", []string{"evacuate", "pod", "emqx-1", "-n", "mqtt", "--no-wait"}},
		{"scale", []string{"scale", "statefulset/emqx", "--replicas", "1", "-n", "mqtt", "--dry-run"}},
		{"report", []string{"report", "-n", "mqtt", "-f", filepath.Join(t.TempDir(), "r.zip")}},
	} {
		args := c.args
		needs, ok := table[c.row]
		if !ok {
			t.Fatalf("README's RBAC table has no row for %s (rows: %v)", c.row, table)
		}
		e := newEnv(t, 100, 100)
		e.kube.ClearActions()
		if _, _, err := e.run(context.Background(), args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		asked := map[string]bool{}
		for _, a := range e.kube.Actions() {
			k := a.GetVerb() + " " + a.GetResource().Resource
			if a.GetSubresource() != "" {
				k += "/" + a.GetSubresource()
			}
			asked[k] = true
		}
		if e.forward.Load() > 0 {
			asked["create pods/portforward"] = true
		}
		if len(asked) < 3 {
			t.Fatalf("%v: only %v recorded; the test sees nothing", args, asked)
		}
		for k := range asked {
			if !needs[k] {
				t.Errorf("kubectl emqx %s asks for %q, which README's RBAC table does not list",
					strings.Join(args, " "), k)
			}
		}
	}
}

// addCluster adds the Helm fixture's EMQX cluster (StatefulSet emqx, pods emqx-0 and emqx-1) in
// namespace ns, its pods Ready or not started; port-forwards reach the same simulated nodes by pod name.
func addCluster(t *testing.T, e *env, ns string, ready bool) {
	t.Helper()
	objs, sts := helmFixture(t, ns, 2)
	for _, obj := range objs {
		if err := e.kube.Tracker().Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		st := corev1.PodStatus{Phase: corev1.PodPending} // not started: nothing to reach EMQX through
		if ready {
			st = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("198.18.2.%d", i+2),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		}
		if err := e.kube.Tracker().Add(&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("emqx-%d", i), Namespace: ns,
				Labels: sts.Spec.Template.Labels},
			Spec:   sts.Spec.Template.Spec,
			Status: st,
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// status -A shows every EMQX cluster of every namespace in one table; a cluster it cannot read is
// named on stderr and fails the command, without hiding the others.
func TestStatusAllNamespaces(t *testing.T) {
	e := newEnv(t, 100, 300)
	addCluster(t, e, "mqtt2", true)
	addCluster(t, e, "broken", false)
	out, errOut, err := e.run(context.Background(), "status", "-A", "--color", "never")
	if err == nil || !strings.Contains(err.Error(), "could not read 1 of 3 EMQX clusters: broken/emqx") ||
		!strings.Contains(errOut, "error: broken/emqx:") {
		t.Fatalf("the unreadable cluster: %v\n%s", err, errOut)
	}
	golden(t, "status-all.golden", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "NAMESPACE") ||
		!strings.HasPrefix(lines[1], "mqtt ") || !strings.HasPrefix(lines[3], "mqtt2 ") {
		t.Fatalf("one table of both readable clusters' pods, by namespace:\n%s", out)
	}
	js, _, _ := e.run(context.Background(), "status", "-A", "-o", "json")
	var l struct {
		Kind  string          `json:"kind"`
		Items []status.Report `json:"items"`
	}
	if err := json.Unmarshal([]byte(js), &l); err != nil || l.Kind != "List" || len(l.Items) != 2 ||
		l.Items[0].Namespace != "mqtt" || l.Items[1].Namespace != "mqtt2" || l.Items[0].Connections != 400 {
		t.Fatalf("-o json, a List of the readable clusters: %v %+v\n%s", err, l, js)
	}
	if out, _, _ := e.run(context.Background(), "status", "-A", "-o",
		"jsonpath={.items[*].metadata.namespace}"); out != "mqtt mqtt2" {
		t.Errorf("-A -o jsonpath: %q", out)
	}
	for args, want := range map[string]string{
		"status -A emqx":         "--all-namespaces takes no CLUSTER",
		"status -A --watch":      "cannot go with --watch",
		"status -A --emqx-url x": "needs Kubernetes access",
	} {
		if _, _, err := e.run(context.Background(), strings.Fields(args)...); err == nil ||
			!strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
}

// status -o goes through kubectl's printers: name, jsonpath and go-template as kubectl's, and wide
// adds EMQX's release, the pod's Kubernetes node and IP.
func TestStatusPrintsAsKubectlDoes(t *testing.T) {
	e := newEnv(t, 100, 300)
	for _, c := range []struct {
		output string
		want   *regexp.Regexp
	}{
		{"name", regexp.MustCompile(`^clusterstatus\.kubectl-emqx\.io/emqx\n$`)},
		{"jsonpath={.connections}", regexp.MustCompile(`^400$`)},
		{
			"go-template={{range .nodes}}{{.pod}}={{.connections}} {{end}}",
			regexp.MustCompile(`^emqx-0=100 emqx-1=300 $`),
		},
		{"yaml", regexp.MustCompile(`(?m)^apiVersion: kubectl-emqx.io/v1alpha1\n(.*\n)*kind: ClusterStatus\n`)},
		{"wide", regexp.MustCompile(`(?m)^POD .* SHARE +VERSION +UPTIME +KUBE NODE +IP\n` +
			`emqx-0 .* 5\.10\.0 +- +\S+ +198\.18\.1\.2\n`)},
	} {
		out, _, err := e.run(context.Background(), "status", "-n", "mqtt", "-o", c.output, "--color", "never")
		if err != nil || !c.want.MatchString(out) {
			t.Errorf("-o %s: %v\n%s\nwant %s", c.output, err, out, c.want)
		}
	}
	if _, _, err := e.run(context.Background(), "status", "-n", "mqtt", "-o", "jsonpath={.nodes[}"); err == nil ||
		!strings.Contains(err.Error(), "--output") {
		t.Errorf("a broken jsonpath: %v", err)
	}
}
