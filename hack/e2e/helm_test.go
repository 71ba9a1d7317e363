//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"sigs.k8s.io/yaml"
)

// helmBin builds (once, cached) and returns the pinned helm.
func helmBin(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot, "hack", "tools.sh")).Output()
	if err != nil {
		t.Fatalf("hack/tools.sh: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "helm")
}

// objects parses a rendered stream into objects keyed by kind, namespace and name.
func objects(t *testing.T, stream string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, doc := range strings.Split(stream, "\n---\n") {
		var o map[string]any
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		md, _ := o["metadata"].(map[string]any)
		dropChartLabels(md)
		if spec, ok := o["spec"].(map[string]any); ok {
			if tmpl, ok := spec["template"].(map[string]any); ok {
				tm, _ := tmpl["metadata"].(map[string]any)
				dropChartLabels(tm)
			}
		}
		if o["kind"] == "ValidatingAdmissionPolicy" || o["kind"] == "ValidatingAdmissionPolicyBinding" {
			// kustomize's namespace transformer does not know these kinds are cluster-scoped and
			// names a namespace the API server ignores; the chart names none.
			delete(md, "namespace")
		}
		out[o["kind"].(string)+"/"+str(md["namespace"])+"/"+str(md["name"])] = o
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

// dropChartLabels removes the labels only the chart sets (which release, which chart): the objects
// are otherwise compared with kustomize's.
func dropChartLabels(md map[string]any) {
	labels, _ := md["labels"].(map[string]any)
	for _, k := range []string{"app.kubernetes.io/instance", "app.kubernetes.io/version",
		"app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"} {
		delete(labels, k)
	}
	if labels != nil && len(labels) == 0 {
		delete(md, "labels")
	}
}

// kubeVersion is the local control plane's: helm template assumes 1.20, which the chart refuses.
const kubeVersion = "1.36.3"

// anySource is the chart's value that admits any source to the admission port, as the kustomize
// install does: helm template reads no cluster, so it cannot find the API server's addresses.
const anySource = "networkPolicy.admissionFrom={0.0.0.0/0,::/0}"

func helmTemplate(t *testing.T, ns string, set ...string) string {
	t.Helper()
	args := []string{
		"template",
		"emqx-webhook",
		filepath.Join(repoRoot, "manifests", "helm", "emqx-webhook"),
		"-n",
		ns,
		"--kube-version",
		kubeVersion,
		"--set",
		anySource,
		"--skip-tests", // the helm test's pod is the chart's alone (realnode_test runs it)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helmBin(t), args...).Output()
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// The chart installs what kustomize installs, object for object, for each of the three installs
// (the Namespace aside: helm install --create-namespace makes it); it passes helm lint, refuses bad
// values with a message naming them, and follows the release's namespace.
func TestHelmChartRendersTheKustomizeInstalls(t *testing.T) {
	lint, err := exec.Command(helmBin(t), "lint", "--strict",
		filepath.Join(repoRoot, "manifests", "helm", "emqx-webhook")).
		CombinedOutput()
	if err != nil {
		t.Fatalf("helm lint: %v\n%s", err, lint)
	}
	for _, c := range []struct {
		kustomize string
		set       []string
	}{
		{"manifests", nil},
		{"manifests/autoscaling", []string{"customMetrics.enabled=true"}},
		{"manifests/cert-manager", []string{"tls.mode=cert-manager"}},
		{"manifests/client-auth", []string{"clientAuth.enabled=true"}},
		{"manifests/monitoring", []string{"monitoring.serviceMonitor.enabled=true",
			"monitoring.prometheusRule.enabled=true", "monitoring.dashboard.enabled=true"}},
	} {
		t.Run(c.kustomize, func(t *testing.T) {
			want := objects(t, runKubectl(t, "kustomize", filepath.Join(repoRoot, c.kustomize)))
			delete(want, "Namespace//emqx-webhook")
			got := objects(t, helmTemplate(t, "emqx-webhook", c.set...))
			var keys []string
			for k := range want {
				keys = append(keys, k)
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("the chart renders %s, kustomize does not", k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				g, ok := got[k]
				if !ok {
					t.Errorf("kustomize renders %s, the chart does not", k)
					continue
				}
				if !reflect.DeepEqual(g, want[k]) {
					gj, _ := json.MarshalIndent(g, "", " ")
					wj, _ := json.MarshalIndent(want[k], "", " ")
					t.Errorf("%s differs:\nchart:\n%s\nkustomize:\n%s", k, gj, wj)
				}
			}
		})
	}
	other := helmTemplate(
		t,
		"mqtt-guard",
		"failurePolicy=Fail",
		"routingGate=true",
		"extraArgs={--conn-evict-rate=200}",
	)
	for _, want := range []string{"namespace: mqtt-guard", "- --routing-gate", "- --conn-evict-rate=200"} {
		if !strings.Contains(other, want) {
			t.Errorf("rendered into mqtt-guard without %q", want)
		}
	}
	if strings.Contains(other, "namespace: emqx-webhook") || strings.Contains(other, ":emqx-webhook:") {
		t.Error("rendered into mqtt-guard, the namespace emqx-webhook is still named")
	}
	for _, o := range objects(t, other) {
		if o["kind"] == "ValidatingWebhookConfiguration" {
			for _, w := range o["webhooks"].([]any) {
				if w.(map[string]any)["failurePolicy"] != "Fail" {
					t.Error("failurePolicy=Fail left a validating webhook on Ignore")
				}
			}
		}
	}
	for set, want := range map[string]string{
		"tls.mode=files": "value must be one of 'self-signed', 'cert-manager'",
		// A mistyped value is refused by the schema, not ignored.
		"replica=3":              "additional properties 'replica' not allowed",
		"evacuationTimeout=soon": "'soon' does not match pattern",
		"clientAuth.allowedNames={kube-apiserver}": "clientAuth.caBundle and clientAuth.allowedNames " +
			"need clientAuth.enabled=true",
		// Never any source silently: without a cluster to read, the value must be given.
		"networkPolicy.admissionFrom=null": "networkPolicy.admissionFrom is empty and the API server's " +
			"addresses could not be read",
	} {
		bad, err := exec.Command(helmBin(t), "template", "x",
			filepath.Join(repoRoot, "manifests", "helm", "emqx-webhook"),
			"--kube-version", kubeVersion, "--set", anySource, "--set", set).
			CombinedOutput()
		if err == nil || !strings.Contains(string(bad), want) {
			t.Errorf("%s: %v\n%s", set, err, bad)
		}
	}
}

// The ValidatingAdmissionPolicies bind the webhook's ServiceAccount wherever it is installed: a
// kustomize overlay into another namespace and the chart's release namespace stay bound (their
// matchConditions, evaluated with CEL, take the account there), and no other account is.
func TestAdmissionPoliciesFollowTheNamespace(t *testing.T) {
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(repoRoot, "manifests", "autoscaling"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" +
		"namespace: mqtt-guard\nresources:\n- " + base + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := cel.NewEnv(cel.Variable("request", cel.MapType(cel.StringType, cel.DynType)))
	if err != nil {
		t.Fatal(err)
	}
	binds := func(expr, user string) bool {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", expr, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := prg.Eval(map[string]any{"request": map[string]any{"userInfo": map[string]any{"username": user}}})
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return out.Value() == true
	}
	for name, stream := range map[string]string{
		"kustomize overlay": runKubectl(t, "kustomize", "--load-restrictor", "LoadRestrictionsNone", dir),
		"helm":              helmTemplate(t, "mqtt-guard", "customMetrics.enabled=true"),
	} {
		policies := 0
		for _, o := range objects(t, stream) {
			switch o["kind"] {
			case "ServiceAccount":
				if ns := str(o["metadata"].(map[string]any)["namespace"]); ns != "mqtt-guard" {
					t.Fatalf("%s: the ServiceAccount is in %q", name, ns)
				}
			case "ValidatingAdmissionPolicy":
				policies++
				for _, c := range o["spec"].(map[string]any)["matchConditions"].([]any) {
					expr := c.(map[string]any)["expression"].(string)
					if !binds(expr, "system:serviceaccount:mqtt-guard:emqx-webhook") {
						t.Errorf("%s: policy %v does not bind the webhook's account in mqtt-guard", name, o["metadata"])
					}
					for _, other := range []string{
						"system:serviceaccount:mqtt-guard:default",
						"system:serviceaccount:mqtt-guard:emqx-webhook-x",
						"admin",
					} {
						if binds(expr, other) {
							t.Errorf("%s: policy %v binds %s", name, o["metadata"], other)
						}
					}
				}
			}
		}
		if policies != 3 {
			t.Errorf("%s: %d admission policies, want 3", name, policies)
		}
	}
}
