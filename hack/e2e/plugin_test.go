//go:build e2e

package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// kubectlEMQX runs `kubectl emqx ARGS` through the real kubectl, which finds the plugin on PATH.
// A port-forward to a pod on a kwok node goes through kwok's PortForward objects, and kwok can
// answer "no forward found" for one it has not synced (seen for pods registered long before, so
// not only right after the simulator made the object): a world artifact, not kubelet's behaviour.
// Such a run failed while connecting, before anything was started, so it is run again, up to five
// times two seconds apart (logged); CI saw kwok answer so for two runs a second apart.
func kubectlEMQX(t *testing.T, args ...string) (string, error) {
	t.Helper()
	run := func() (string, error) {
		cmd := exec.Command(kubectl, append([]string{"emqx"}, args...)...)
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run()
	for try := 1; try <= 5 && err != nil && strings.Contains(out, "no forward found for port") &&
		strings.Contains(out, "reach EMQX through"); try++ {
		t.Logf("kwok had no port-forward yet; kubectl emqx %s once more (%d):\n%s", strings.Join(args, " "), try, out)
		time.Sleep(2 * time.Second)
		out, err = run()
	}
	return out, err
}

func mustEMQX(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlEMQX(t, args...)
	if err != nil {
		t.Fatalf("kubectl emqx %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// helmCluster installs the Helm fixture with n pods and c clients, and returns its namespace.
func helmCluster(t *testing.T, cfg *envconf.Config, n, clients int) string {
	t.Helper()
	ns := newNamespace(t, cfg)
	applyFixture(t, cfg, "helm-emqx.yaml", ns, n)
	waitPods(t, cfg, ns, helmSelector, n)
	simNodesReady(t, ns+"/emqx", n)
	if clients > 0 {
		connectClients(t, ns+"/emqx", clients)
	}
	return ns
}

func TestPluginStatusAndEvacuateThroughKubectl(t *testing.T) {
	f := features.New("kubectl emqx status, evacuate").
		Assess("works through port-forward",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				ns := helmCluster(t, cfg, 3, 3000)
				out := mustEMQX(t, "status", "-n", ns)
				for _, want := range []string{
					"POD",
					"emqx-0",
					"emqx-1",
					"emqx-2",
					"emqx@emqx-2.emqx-headless." + ns + ".svc.cluster.local",
					"TOTAL",
					"3000",
				} {
					if !strings.Contains(out, want) {
						t.Fatalf("status lacks %q:\n%s", want, out)
					}
				}
				out = mustEMQX(
					t,
					"evacuate",
					"pod",
					"emqx-2",
					"-n",
					ns,
					"--wait-health-check",
					"2s",
					"--wait-takeover",
					"2s",
					"--conn-evict-rate",
					"200",
				)
				if !strings.Contains(out, "evacuated: emqx-2 is empty") {
					t.Fatalf("evacuate:\n%s", out)
				}
				s := simStats(t, ns+"/emqx")
				for _, n := range s.Nodes {
					if strings.HasPrefix(n.Name, "emqx@emqx-2.") &&
						(n.PersistentSessions != 0 || n.Evacuation != "prohibiting") {
						t.Fatalf("emqx-2 after evacuate: %+v", n)
					}
				}
				// Clients the evacuating node refused through the Service may still be retrying.
				expectNothingLost(t, ns, 3000)
				out = mustEMQX(t, "status", "-n", ns, "-o", "json")
				if !strings.Contains(out, `"state": "evacuated"`) {
					t.Fatalf("status -o json after evacuate:\n%s", out)
				}
				// The support bundle, through the real API server and port-forward: the evacuation in
				// EMQX's own answer, the dashboard password redacted.
				zipFile := filepath.Join(t.TempDir(), "report.zip")
				if out := mustEMQX(t, "report", "-n", ns, "-f", zipFile); !strings.Contains(out, "wrote "+zipFile) {
					t.Fatalf("report:\n%s", out)
				}
				bundle := unzip(t, zipFile)
				if !strings.Contains(bundle["emqx/global-status.json"], `"state": "prohibiting"`) ||
					!strings.Contains(bundle["pods.yaml"], "REDACTED") ||
					strings.Contains(strings.Join(slices.Collect(maps.Values(bundle)), ""), "kemqx-dashboard-pw") {
					t.Fatalf("report's bundle: %v\n%s\n%s", slices.Sorted(maps.Keys(bundle)),
						bundle["emqx/global-status.json"], bundle["summary.txt"])
				}
				mustEMQX(t, "evacuate", "stop", "emqx-2", "-n", ns)
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

func TestPluginRebalanceAfterScaleUp(t *testing.T) {
	f := features.New("kubectl emqx rebalance").
		Assess("after 3→4", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := helmCluster(t, cfg, 3, 3000)
			runKubectl(t, "-n", ns, "scale", "statefulset/emqx", "--replicas=4")
			waitPods(t, cfg, ns, helmSelector, 4)
			eventually(
				t,
				10*time.Second,
				"four simulated nodes",
				func() bool { return len(simStats(t, ns+"/emqx").Nodes) == 4 },
			)
			out := mustEMQX(t, "rebalance", "-n", ns, "--abs-conn-threshold", "50", "--abs-sess-threshold", "50",
				"--wait-health-check", "2s", "--wait-takeover", "2s", "--conn-evict-rate", "50")
			if !strings.Contains(out, "balanced: the donors are within the thresholds") {
				t.Fatalf("rebalance:\n%s", out)
			}
			expectNothingLost(t, ns, 3000) // clients a donor refused through the Service retry first
			s := simStats(t, ns+"/emqx")
			var newest int64
			for _, n := range s.Nodes {
				if strings.HasPrefix(n.Name, "emqx@emqx-3.") {
					newest = n.LiveConnections
				}
			}
			if newest < 500 || s.LostSessions != 0 || s.ConnectedClients != 3000 {
				t.Fatalf(
					"after the rebalance emqx-3 holds %d; lost %d; connected %d",
					newest,
					s.LostSessions,
					s.ConnectedClients,
				)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

func TestPluginSafeScaleDownLosesNothing(t *testing.T) {
	f := features.New("kubectl emqx scale").
		Assess("3→2 with zero lost sessions",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				ns := helmCluster(t, cfg, 3, 3000)
				out := mustEMQX(
					t,
					"scale",
					"statefulset/emqx",
					"--replicas",
					"2",
					"-n",
					ns,
					"--wait-health-check",
					"2s",
					"--wait-takeover",
					"2s",
					"--conn-evict-rate",
					"200",
				)
				if !strings.Contains(out, "scaled: statefulset emqx scaled from 3 to 2") {
					t.Fatalf("scale:\n%s", out)
				}
				waitPods(t, cfg, ns, helmSelector, 2)
				s := simStats(t, ns+"/emqx")
				if s.LostSessions != 0 || s.ConnectedClients+s.ReconnectingClients != 3000 {
					t.Fatalf("lost %d sessions; %d clients connected", s.LostSessions, s.ConnectedClients)
				}
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}

func TestPluginBadInputThroughKubectl(t *testing.T) {
	f := features.New("kubectl emqx bad input").
		Assess("clear errors", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := helmCluster(t, cfg, 2, 0)
			for _, tc := range []struct {
				args []string
				want string
			}{
				{[]string{"evacuate", "pod", "emqx-9", "-n", ns}, `pod "emqx-9" not found`},
				{[]string{"status", "-n", "kube-system"}, "no EMQX cluster in namespace"},
				{[]string{"status", "-n", ns, "--api-key", "k", "--api-secret", "wrong"}, "BAD_API_KEY_OR_SECRET"},
				{[]string{"status", "--emqx-url", "http://127.0.0.1:1"}, "unreachable"},
				{[]string{"rebalance", "-n", ns, "--rel-conn-threshold", "0.9"}, "greater than 1.0"},
			} {
				out, err := kubectlEMQX(t, tc.args...)
				if err == nil || !strings.Contains(out, tc.want) {
					t.Errorf(
						"kubectl emqx %s: err %v, output %q, want %q",
						strings.Join(tc.args, " "),
						err,
						out,
						tc.want,
					)
				}
			}
			// Completion through kubectl: kubectl runs kubectl_complete-emqx from PATH.
			cmd := exec.Command(kubectl, "__complete", "emqx", "evacuate", "pod", "-n", ns, "")
			cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
			completion, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(completion), "emqx-0") ||
				!strings.Contains(string(completion), "emqx-1") {
				t.Fatalf("completion of pod names: %v\n%s", err, completion)
			}
			out := mustEMQX(t, "version")
			if !strings.HasPrefix(out, "kubectl-emqx ") {
				t.Fatalf("version: %q", out)
			}
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// Ctrl-C through the real kubectl: kubectl emqx exits 130, says the evacuation goes on and how to
// undo it, and the evacuation does go on.
func TestPluginInterruptedExits130(t *testing.T) {
	f := features.New("kubectl emqx interrupted").
		Assess("SIGINT", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := helmCluster(t, cfg, 2, 200)
			cmd := exec.Command(kubectl, "emqx", "evacuate", "pod", "emqx-1", "-n", ns, "--wait-health-check", "60s")
			cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, "the evacuation to start", func() bool {
				for _, n := range simStats(t, ns+"/emqx").Nodes {
					if strings.HasPrefix(n.Name, "emqx@emqx-1.") && n.Evacuation != "" {
						return true
					}
				}
				return false
			})
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 130 ||
				!strings.Contains(out.String(), "interrupted: EMQX node") ||
				!strings.Contains(out.String(), "Undo with: kubectl emqx evacuate stop emqx-1 -n "+ns) {
				t.Fatalf("exit %v, output:\n%s", err, out.String())
			}
			for _, n := range simStats(t, ns+"/emqx").Nodes {
				if strings.HasPrefix(n.Name, "emqx@emqx-1.") && n.Evacuation == "" {
					t.Fatal("the interrupted command stopped the evacuation; it should go on")
				}
			}
			mustEMQX(t, "evacuate", "stop", "emqx-1", "-n", ns)
			return ctx
		}).
		Feature()
	testenv.Test(t, f)
}

// unzip returns a zip's files by name.
func unzip(t *testing.T, file string) map[string]string {
	t.Helper()
	z, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	out := map[string]string{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		_ = r.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = string(b)
	}
	return out
}
