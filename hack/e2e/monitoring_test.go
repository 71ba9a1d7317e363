//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// prometheusOperator is the release whose CRDs (monitoring.coreos.com/v1) validate the monitoring
// component; the Go module proxy serves its source, CRDs included.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.95.2"

// prometheusOperatorCRDs downloads the release's module and returns its CRD directory.
func prometheusOperatorCRDs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", prometheusOperator).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", prometheusOperator, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v (%s)", prometheusOperator, err, out)
	}
	return filepath.Join(mod.Dir, "example", "prometheus-operator-crd")
}

// kubectlStdin runs kubectl with stdin, returning its output and error.
func kubectlStdin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The monitoring component's ServiceMonitor and PrometheusRule are what the Prometheus Operator's
// CRDs accept, as a real API server validates them; broken ones are refused there (negative
// controls, so the acceptance means something).
func TestMonitoringObjectsPassThePrometheusOperatorsCRDs(t *testing.T) {
	f := features.New("monitoring objects").
		Assess("validated by the API server",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				crds := prometheusOperatorCRDs(t)
				for _, crd := range []string{"monitoring.coreos.com_servicemonitors.yaml",
					"monitoring.coreos.com_prometheusrules.yaml"} {
					runKubectl(t, "apply", "--server-side", "--force-conflicts", "-f", filepath.Join(crds, crd))
				}
				runKubectl(t, "wait", "--for=condition=Established", "--timeout=60s",
					"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
				docs := map[string]string{}
				rendered := runKubectl(t, "kustomize", filepath.Join(repoRoot, "manifests", "monitoring"))
				for _, doc := range strings.Split(rendered, "\n---\n") {
					for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap"} {
						if strings.Contains("\n"+doc+"\n", "\nkind: "+kind+"\n") {
							docs[kind] = doc
						}
					}
				}
				if len(docs) != 3 {
					t.Fatalf("manifests/monitoring renders %d of the ServiceMonitor, PrometheusRule and ConfigMap",
						len(docs))
				}
				ns := newNamespace(t, cfg)
				all := docs["ServiceMonitor"] + "\n---\n" + docs["PrometheusRule"] + "\n---\n" + docs["ConfigMap"]
				out, err := kubectlStdin(all, "apply", "--dry-run=server", "-n", ns, "-f", "-")
				if err != nil {
					t.Fatalf("the API server refuses the monitoring objects: %v\n%s", err, out)
				}
				for _, want := range []string{"servicemonitor.monitoring.coreos.com/emqx-webhook",
					"prometheusrule.monitoring.coreos.com/emqx-webhook", "configmap/emqx-webhook-dashboard"} {
					if !strings.Contains(out, want) {
						t.Errorf("server-side dry run: no %s in\n%s", want, out)
					}
				}
				for what, broken := range map[string]string{
					"a ServiceMonitor with scheme gopher": strings.Replace(docs["ServiceMonitor"],
						"scheme: https", "scheme: gopher", 1),
					"a PrometheusRule whose rule has no expr": strings.Replace(docs["PrometheusRule"],
						"expr: absent(", "exp: absent(", 1),
				} {
					if broken == docs["ServiceMonitor"] || broken == docs["PrometheusRule"] {
						t.Fatalf("%s: the negative control changed nothing", what)
					}
					if out, err := kubectlStdin(broken, "apply", "--dry-run=server", "-n", ns, "-f", "-"); err == nil {
						t.Errorf("%s was accepted: the CRDs validate nothing here\n%s", what, out)
					}
				}
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}
