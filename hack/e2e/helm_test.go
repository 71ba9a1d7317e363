//go:build e2e

package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

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

func helmTemplate(t *testing.T, ns string, set ...string) string {
	t.Helper()
	args := []string{"template", "emqx-webhook", filepath.Join(repoRoot, "manifests", "helm", "emqx-webhook"), "-n", ns}
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
	lint, err := exec.Command(helmBin(t), "lint", "--strict", filepath.Join(repoRoot, "manifests", "helm", "emqx-webhook")).CombinedOutput()
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
	other := helmTemplate(t, "mqtt-guard", "failurePolicy=Fail", "routingGate=true", "extraArgs={--conn-evict-rate=200}")
	for _, want := range []string{"system:serviceaccount:mqtt-guard:emqx-webhook", "namespace: mqtt-guard", "- --routing-gate", "- --conn-evict-rate=200"} {
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
		"tls.mode=files": `tls.mode must be self-signed or cert-manager, not "files"`,
		"clientAuth.allowedNames={kube-apiserver}": "clientAuth.caBundle and clientAuth.allowedNames need clientAuth.enabled=true",
	} {
		bad, err := exec.Command(helmBin(t), "template", "x", filepath.Join(repoRoot, "manifests", "helm", "emqx-webhook"), "--set", set).CombinedOutput()
		if err == nil || !strings.Contains(string(bad), want) {
			t.Errorf("%s: %v\n%s", set, err, bad)
		}
	}
}
