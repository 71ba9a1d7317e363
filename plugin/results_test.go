package plugin

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// decode reads a result object printed with -o json: stdout holds that object alone.
func decode[T any](t *testing.T, kind, out string) T {
	t.Helper()
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	var v T
	if err := json.Unmarshal([]byte(out), &head); err != nil || head.Kind != kind ||
		head.APIVersion != apiVersion || head.Metadata.Name == "" {
		t.Fatalf("want one %s object on stdout: %v %+v\n%s", kind, err, head, out)
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// evacuate, rebalance and scale print with -o json what moved, where, how long it took, the
// final counts and how it ended; progress stays on stderr.
func TestResultsPrintAsObjects(t *testing.T) {
	fast := []string{"-n", "mqtt", "--wait-health-check", "1s", "--wait-takeover", "1s", "--conn-evict-rate", "100",
		"--interval", "20ms", "-o", "json"}
	e := newEnv(t, 300, 300, 300)
	out, errOut, err := e.run(context.Background(), append([]string{"evacuate", "pod", "emqx-2", "--dry-run"},
		fast...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	plan := decode[evacuationResult](t, "EvacuationResult", out)
	if plan.Outcome != "DryRun" || plan.Before.Connections != 300 || plan.EstimatedSeconds < 5 ||
		!slices.Equal(plan.MovedTo, []string{"emqx-0", "emqx-1"}) || plan.After != nil {
		t.Errorf("evacuate --dry-run -o json: %+v", plan)
	}
	out, errOut, err = e.run(context.Background(), append([]string{"evacuate", "pod", "emqx-2", "--migrate-to",
		"emqx-0"}, fast...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	ev := decode[evacuationResult](t, "EvacuationResult", out)
	if ev.Outcome != "Evacuated" || ev.Pod != "emqx-2" || ev.Before.Connections != 300 || ev.Before.Sessions != 300 ||
		ev.After == nil || ev.After.Connections != 0 || ev.After.Sessions != 0 ||
		!slices.Equal(ev.MovedTo, []string{"emqx-0"}) || ev.Seconds < 3 || !strings.Contains(ev.Undo, "evacuate stop") {
		t.Errorf("evacuate -o json: %+v", ev)
	}
	if !strings.Contains(errOut, "evacuation of emqx-2") {
		t.Errorf("progress left stderr: %q", errOut)
	}
	// README's example, with the waits shortened.
	e = newEnv(t, 300, 300, 300)
	args := append([]string{"evacuate", "pod", "emqx-2"}, fast[:len(fast)-2]...)
	out, _, err = e.run(context.Background(), append(args,
		"-o", "jsonpath={.outcome} {.seconds}s {.before.connections}→{.after.connections} to {.movedTo}")...)
	if err != nil || !regexp.MustCompile(`^Evacuated \d+s 300→0 to \["emqx-0","emqx-1"\]$`).MatchString(out) {
		t.Errorf("README's jsonpath example: %v %q", err, out)
	}

	e = newEnv(t, 1500, 1500, 0)
	out, errOut, err = e.run(context.Background(), append([]string{"rebalance", "--abs-conn-threshold", "50",
		"--abs-sess-threshold", "50"}, fast...)...)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errOut)
	}
	rb := decode[rebalanceResult](t, "RebalanceResult", out)
	if rb.Outcome != "Balanced" || rb.Coordinator == "" || rb.Plan == nil || !rb.Plan.Needed ||
		len(rb.Plan.Donors) != 2 || rb.Plan.Recipients[0].Pod != "emqx-2" || rb.Plan.ConnectionsToMove == 0 ||
		len(rb.Recipients) != 1 || rb.Recipients[0].Connections == 0 || rb.Seconds <= 0 {
		t.Errorf("rebalance -o json: %+v (plan %+v)", rb, rb.Plan)
	}

	e = newEnv(t, 300, 300, 300)
	out, errOut, err = e.run(context.Background(), append([]string{"scale", "statefulset/emqx", "--replicas", "1",
		"--dry-run"}, fast...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	sc := decode[scaleResult](t, "ScaleResult", out)
	if sc.Outcome != "DryRun" || sc.From != 3 || sc.To != 1 ||
		!slices.Equal(sc.Removed, []string{"emqx-1", "emqx-2"}) || len(sc.Evacuations) != 2 ||
		sc.Evacuations[0].Outcome != "DryRun" ||
		!slices.Equal(sc.Evacuations[0].MovedTo, []string{"emqx-0"}) {
		t.Errorf("scale --dry-run -o json: %+v", sc)
	}
	if out, _, err := e.run(context.Background(), "scale", "statefulset/emqx", "--replicas", "3", "-n", "mqtt",
		"-o", "name"); err != nil || out != "scaleresult.kubectl-emqx.io/emqx\n" {
		t.Errorf("scale to the same count -o name: %v %q", err, out)
	}
	if _, _, err := e.run(context.Background(), "evacuate", "pod", "emqx-1", "-n", "mqtt", "-o", "table"); err == nil ||
		!strings.Contains(err.Error(), `--output "table": use one of json, yaml, name`) {
		t.Errorf("a bad -o: %v", err)
	}
	states, _, _ := e.run(context.Background(), "status", "-n", "mqtt", "-o", "jsonpath={.nodes[*].state}")
	if states != "" {
		t.Errorf("a dry run or a bad -o started something: states %q", states)
	}
}
