//go:build monitoring

package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var component = filepath.Join("..", "..", "manifests", "components", "monitoring")

// promtool finds promtool ($PROMTOOL, else on PATH).
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run hack/prometheus.sh (Debian's prometheus package) or set PROMTOOL")
	}
	return p
}

// ruleGroups is the PrometheusRule's spec.groups, as a Prometheus rules file.
func ruleGroups(t *testing.T) map[string]any {
	t.Helper()
	var rule struct {
		Kind string         `yaml:"kind"`
		Spec map[string]any `yaml:"spec"`
	}
	b, err := os.ReadFile(filepath.Join(component, "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rule); err != nil || rule.Kind != "PrometheusRule" {
		t.Fatalf("prometheusrule.yaml: kind %q, %v", rule.Kind, err)
	}
	return rule.Spec
}

type panel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// dashboardRules are the dashboard's queries as recording rules, dashboard:panel_<id>_<refId>, so
// promtool parses them and its tests can ask what each returns.
func dashboardRules(t *testing.T) (map[string]any, []string) {
	t.Helper()
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	b, err := os.ReadFile(filepath.Join(component, "dashboard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["emqx-webhook.json"]), &dash); err != nil {
		t.Fatalf("the dashboard's JSON: %v", err)
	}
	var rules []map[string]string
	var names []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			name := fmt.Sprintf("dashboard:panel_%d_%s", p.ID, q.RefID)
			rules = append(rules, map[string]string{"record": name, "expr": q.Expr})
			names = append(names, name)
		}
	}
	return map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}, names
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The alerts and the dashboard's queries parse, each is tested, and each test passes.
func TestAlertsAndDashboardWithPromtool(t *testing.T) {
	tool := promtool(t)
	dir := t.TempDir()
	groups := ruleGroups(t)
	dashboard, queries := dashboardRules(t)
	writeYAML(t, filepath.Join(dir, "rules.yaml"), groups)
	writeYAML(t, filepath.Join(dir, "dashboard-rules.yaml"), dashboard)
	tests, err := os.ReadFile(filepath.Join("testdata", "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "rules", "rules.yaml", "dashboard-rules.yaml"},
		{"test", "rules", "rules_test.yaml"},
	} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Coverage: every alert fires in some test, and every query is asked in some test.
	var suite struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
			PromQLExprTest []struct {
				Expr string `yaml:"expr"`
			} `yaml:"promql_expr_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tests, &suite); err != nil {
		t.Fatal(err)
	}
	fired, asked := map[string]bool{}, map[string]bool{}
	for _, tc := range suite.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
		for _, q := range tc.PromQLExprTest {
			asked[strings.TrimSpace(q.Expr)] = true
		}
	}
	var alerts []string
	for _, g := range groups["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			if a, ok := r.(map[string]any)["alert"].(string); ok {
				alerts = append(alerts, a)
			}
		}
	}
	if len(alerts) < 5 {
		t.Fatalf("only %d alerts in the PrometheusRule", len(alerts))
	}
	for _, a := range alerts {
		if !fired[a] {
			t.Errorf("alert %s fires in no test of testdata/rules_test.yaml", a)
		}
	}
	for _, q := range queries {
		if !asked[q] {
			t.Errorf("dashboard query %s is asked in no test of testdata/rules_test.yaml", q)
		}
	}
}
