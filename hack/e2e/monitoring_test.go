//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
	"sigs.k8s.io/yaml"
)

// prometheusOperator is the release whose CRDs (monitoring.coreos.com/v1) validate the monitoring
// component; the Go module proxy serves its source, CRDs included.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.94.0"

// prometheusOperatorCRDs downloads the release's module and returns its CRD directory.
func prometheusOperatorCRDs(t *testing.T) string {
	t.Helper()
	// Outside this module: a module that is not a dependency is downloaded as it is.
	cmd := exec.Command("go", "mod", "download", "-json", prometheusOperator)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", prometheusOperator, err, stderr.String())
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
							// Into the test's namespace: the install's own may not exist here.
							docs[kind] = regexp.MustCompile(`(?m)^  namespace: emqx-webhook$`).ReplaceAllString(doc, "")
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

// prometheusBin is Debian's prometheus (hack/prometheus.sh installs it when missing).
func prometheusBin(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot, "hack", "prometheus.sh")).Output()
	if err != nil {
		t.Fatalf("hack/prometheus.sh: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "prometheus")
}

// monitoringQueries are the PrometheusRule's alerts (name → expr) and the dashboard's queries
// (panel title and refId → expr), read from the component.
func monitoringQueries(t *testing.T) (rules map[string]any, alerts, panels map[string]string) {
	t.Helper()
	var rule struct {
		Spec map[string]any `json:"spec"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "manifests", "components", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rule); err != nil {
		t.Fatal(err)
	}
	alerts = map[string]string{}
	for _, g := range rule.Spec["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			r := r.(map[string]any)
			alerts[r["alert"].(string)] = r["expr"].(string)
		}
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if b, err = os.ReadFile(filepath.Join(repoRoot, "manifests", "components", "monitoring",
		"dashboard.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["emqx-webhook.json"]), &dash); err != nil {
		t.Fatal(err)
	}
	panels = map[string]string{}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			panels[p.Title+"/"+q.RefID] = q.Expr
		}
	}
	return rule.Spec, alerts, panels
}

// sample is one series of a Prometheus query's answer.
type sample struct {
	Metric map[string]string
	Value  float64
}

// promQuery asks Prometheus's HTTP API for an instant query; a query Prometheus refuses fails the test.
func promQuery(t *testing.T, base, expr string) []sample {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("query %s: %v %s %s", expr, err, body.Status, body.Error)
	}
	var out []sample
	for _, r := range body.Data.Result {
		v, _ := strconv.ParseFloat(r.Value[1].(string), 64)
		out = append(out, sample{Metric: r.Metric, Value: v})
	}
	return out
}

// firing is the set of alerts Prometheus has firing now.
func firing(t *testing.T, base string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("Prometheus's alerts: %v", err)
	}
	out := map[string]bool{}
	for _, a := range body.Data.Alerts {
		if a.State == "firing" {
			out[a.Labels["alertname"]] = true
		}
	}
	return out
}

// ignoreWebhookFailures sets the test's validating webhooks to the shipped failurePolicy, Ignore:
// a removal the webhook cannot answer then goes through.
func ignoreWebhookFailures(ctx context.Context, t *testing.T, cfg *envconf.Config) {
	t.Helper()
	vwcs := clientset(t, cfg).AdmissionregistrationV1().ValidatingWebhookConfigurations()
	vwc, err := vwcs.Get(ctx, webhookConfig, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ignore := admissionregistrationv1.Ignore
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].FailurePolicy = &ignore
	}
	if _, err := vwcs.Update(ctx, vwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A real Prometheus scrapes the webhook's HTTPS metrics with a ServiceAccount token, loads the
// alerts, and every alert expression and dashboard query answers what the cluster did: a removal
// held while EMQX's API is down, then let go by the unreachable way out; the webhook up, then gone
// during a drain, when EMQXWebhookDown fires.
func TestPrometheusScrapesTheWebhookAndItsQueriesTell(t *testing.T) {
	f := features.New("monitoring with a real Prometheus").
		Assess("scraped, alerted, charted",
			func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
				prom := prometheusBin(t)
				metricsPort := freePort(t)
				p := installWebhook(t, cfg, "--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort),
					"--api-unreachable-grace", "5s")
				// Prometheus's account may get /metrics, as the guide binds it.
				cs := clientset(t, cfg)
				promNS := newNamespace(t, cfg)
				runKubectl(t, "-n", promNS, "create", "serviceaccount", "prometheus")
				binding := "prometheus-metrics-" + promNS
				runKubectl(t, "create", "clusterrolebinding", binding,
					"--clusterrole=emqx-webhook-metrics-reader", "--serviceaccount="+promNS+":prometheus")
				t.Cleanup(func() { _ = runKubectlQuiet("delete", "clusterrolebinding", binding) })
				exp := int64(3600)
				tok, err := cs.CoreV1().ServiceAccounts(promNS).CreateToken(ctx, "prometheus",
					&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}},
					metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				write := func(name string, v any) {
					b, err := yaml.Marshal(v)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok.Status.Token), 0o600); err != nil {
					t.Fatal(err)
				}
				rules, alerts, panels := monitoringQueries(t)
				// The alerts' `for` waits (5 and 15 minutes) shortened to seconds, so they fire within the
				// test; promtool's tests (hack/monitoring) hold them to the shipped durations.
				for _, g := range rules["groups"].([]any) {
					for _, r := range g.(map[string]any)["rules"].([]any) {
						if _, ok := r.(map[string]any)["for"]; ok {
							r.(map[string]any)["for"] = "5s"
						}
					}
				}
				write("rules.yaml", rules)
				write("prometheus.yml", map[string]any{
					"global":     map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
					"rule_files": []string{"rules.yaml"},
					"scrape_configs": []any{map[string]any{
						"job_name":      "emqx-webhook",
						"scheme":        "https",
						"tls_config":    map[string]any{"insecure_skip_verify": true},
						"authorization": map[string]any{"credentials_file": filepath.Join(dir, "token")},
						"static_configs": []any{map[string]any{
							"targets": []string{fmt.Sprintf("127.0.0.1:%d", metricsPort)},
						}},
					}},
				})
				promPort := freePort(t)
				base := fmt.Sprintf("http://127.0.0.1:%d", promPort)
				logf, err := os.Create(filepath.Join(logDir, "prometheus.log"))
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
					"--storage.tsdb.path="+filepath.Join(dir, "data"),
					fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
				cmd.Stdout, cmd.Stderr = logf, logf
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logf.Close() })
				query := func(expr string) []sample { return promQuery(t, base, expr) }
				eventually(t, 60*time.Second, "Prometheus scrapes the webhook (up == 1)", func() bool {
					resp, err := http.Get(base + "/-/ready")
					if err != nil || resp.Body.Close() != nil || resp.StatusCode != http.StatusOK {
						return false
					}
					s := query(`up{job="emqx-webhook"}`)
					return len(s) == 1 && s[0].Value == 1
				})
				// The alerts load and evaluate without error.
				eventually(t, 30*time.Second, "the five alerts evaluated, healthy", func() bool {
					resp, err := http.Get(base + "/api/v1/rules?type=alert")
					if err != nil {
						return false
					}
					defer resp.Body.Close()
					var r struct {
						Data struct {
							Groups []struct {
								Rules []struct {
									Name      string `json:"name"`
									Health    string `json:"health"`
									LastError string `json:"lastError"`
								} `json:"rules"`
							} `json:"groups"`
						} `json:"data"`
					}
					if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Groups) != 1 {
						return false
					}
					ok := 0
					for _, rule := range r.Data.Groups[0].Rules {
						if rule.Health == "ok" {
							ok++
						} else if rule.LastError != "" {
							t.Fatalf("alert %s does not evaluate: %s", rule.Name, rule.LastError)
						}
					}
					return ok == len(alerts)
				})
				ns := webhookCluster(t, cfg, "helm-emqx.yaml", 2, 0)
				eventually(t, 90*time.Second, "the access check of "+ns+"/emqx charted ok", func() bool {
					for _, s := range query(panels["EMQX API access/A"]) {
						if s.Metric["namespace"] == ns && s.Metric["result"] == "ok" {
							return true
						}
					}
					return false
				})
				sim(t, http.MethodPost, "/sim/v1/api", ns+"/emqx&down=true", nil)
				t.Cleanup(func() { sim(t, http.MethodPost, "/sim/v1/api", ns+"/emqx&down=false", nil) })
				if refusal := deleteUntilAllowed(t, ns, "emqx-1", 60*time.Second); !strings.Contains(refusal,
					"EMQX's API failed") {
					t.Fatalf("first refusal %q", refusal)
				}
				eventually(t, 30*time.Second, "the way out charted and alerted", func() bool {
					let := query(alerts["EMQXWebhookRemovalLetGo"])
					return len(let) == 1 && let[0].Metric["reason"] == "EMQXUnreachable" &&
						firing(t, base)["EMQXWebhookRemovalLetGo"] &&
						len(query(panels["Removals let go without evacuation (1h)/A"])) == 1 &&
						query(panels["Removals let go without evacuation (1h)/A"])[0].Value >= 1
				})
				held := query(`max_over_time(emqx_webhook_hold_started_timestamp_seconds{namespace="` + ns +
					`",pod="emqx-1"}[5m])`)
				if len(held) != 1 {
					t.Errorf("the hold of emqx-1 was never scraped as in progress: %v", held)
				}
				checks := map[string]func([]sample) bool{
					"Webhook replicas up/A": func(s []sample) bool { return len(s) == 1 && s[0].Value == 1 },
					"Removals held now/A":   func(s []sample) bool { return len(s) == 1 && s[0].Value == 0 },
					"Oldest hold/A":         func(s []sample) bool { return len(s) == 1 && s[0].Value == 0 },
					"Decisions by verdict and reason/A": func(s []sample) bool {
						for _, x := range s {
							if x.Metric["verdict"] == "allowed" && x.Metric["reason"] == "EMQXUnreachable" &&
								x.Value > 0 {
								return true
							}
						}
						return false
					},
					"Hold duration p95 by way out/A": func(s []sample) bool {
						for _, x := range s {
							if x.Metric["reason"] == "EMQXUnreachable" && x.Value >= 4 && x.Value <= 16 {
								return true
							}
						}
						return false
					},
					// No evacuation was started here: nothing to chart, and no error.
					"Evacuation duration p50 / p95/A": func(s []sample) bool { return len(s) <= 1 },
					"Evacuation duration p50 / p95/B": func(s []sample) bool { return len(s) <= 1 },
					"Admission reviews by webhook/A": func(s []sample) bool {
						for _, x := range s {
							if x.Metric["webhook"] == "pod-delete" && x.Value > 0 {
								return true
							}
						}
						return false
					},
					"EMQX pod removals seen (15m)/A": func(s []sample) bool { return len(s) == 1 && s[0].Value >= 1 },
				}
				eventually(t, 30*time.Second, "every dashboard query charts what happened", func() bool {
					for name, ok := range checks {
						if !ok(query(panels[name])) {
							return false
						}
					}
					return true
				})
				// Besides these, the API access and let-go panels were checked above.
				if len(checks)+2 != len(panels) {
					t.Errorf("%d dashboard queries checked of %d", len(checks)+2, len(panels))
				}
				// The alerts that must stay quiet here do: the webhook is up, called, and holds nothing old.
				for _, quiet := range []string{"EMQXWebhookDown", "EMQXWebhookNotCalled", "EMQXWebhookHoldTooLong"} {
					if s := query(alerts[quiet]); len(s) != 0 {
						t.Errorf("%s's expression returns %v", quiet, s)
					}
				}
				// The webhook stops during a drain. As shipped (failurePolicy Ignore), the API server then
				// lets the drain's eviction through unevacuated, and EMQXWebhookDown must fire.
				p.stop()
				ignoreWebhookFailures(ctx, t, cfg)
				eventually(t, 30*time.Second, "EMQXWebhookDown's expression, once the webhook is gone", func() bool {
					s := query(alerts["EMQXWebhookDown"])
					return len(s) == 1 && s[0].Value == 1
				})
				if err := cs.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{
					ObjectMeta: metav1.ObjectMeta{Name: "emqx-0", Namespace: ns},
				}); err != nil {
					t.Fatalf("the drain's eviction of emqx-0, with no webhook and failurePolicy Ignore: %v", err)
				}
				eventually(t, 60*time.Second, "EMQXWebhookDown firing", func() bool {
					return firing(t, base)["EMQXWebhookDown"]
				})
				return ctx
			}).
		Feature()
	testenv.Test(t, f)
}
