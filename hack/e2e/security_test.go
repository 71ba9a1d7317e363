//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"
)

// A drain whose eviction a PodDisruptionBudget refuses starts no evacuation: the webhook runs
// before the API server's budget check, and each retry would otherwise keep the node evacuated
// while the eviction never happens.
func TestDrainRefusedByABudgetStartsNothing(t *testing.T) {
	f := features.New("PodDisruptionBudget").Assess("no evacuation behind a refusing budget", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
		installWebhook(t, cfg)
		ns := webhookCluster(t, cfg, "helm-emqx.yaml", 3, 900)
		cs := clientset(t, cfg)
		all := intstr.FromInt32(3)
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: ns},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &all,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/instance": "emqx"}}}}
		if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the disruption controller's verdict", func() bool {
			got, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "emqx", metav1.GetOptions{})
			return err == nil && got.Status.ObservedGeneration == got.Generation && got.Status.CurrentHealthy == 3 &&
				got.Status.DisruptionsAllowed == 0
		})
		pod, err := cs.CoreV1().Pods(ns).Get(ctx, "emqx-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = runKubectlErr("uncordon", pod.Spec.NodeName) })
		out, err := runKubectlErr("drain", pod.Spec.NodeName, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=15s",
			"--pod-selector", helmSelector)
		if err == nil || !strings.Contains(out, "PodDisruptionBudget emqx allows no disruption of pod emqx-1") {
			t.Fatalf("the drain was not refused for the budget:\n%s", out)
		}
		if started := events(t, cfg, ns, "EvacuationStarted"); len(started) != 0 {
			t.Fatalf("an evacuation started behind a refusing budget: %v", started[0].Message)
		}
		for _, n := range simStats(t, ns+"/emqx").Nodes {
			if n.Evacuation != "" {
				t.Fatalf("node %s is evacuating (%s)", n.Name, n.Evacuation)
			}
		}
		expectNothingLost(t, ns, 900)
		return ctx
	}).Feature()
	testenv.Test(t, f)
}

// A stolen webhook token can set nothing of a pod's status but the routing gate's condition, and
// that only on pods that carry the gate: not its IP (which would redirect a Service), its phase
// (an EMQX pod marked Failed goes unevacuated) or its container statuses. Enforced by the
// manifests' ValidatingAdmissionPolicy on the real API server.
func TestWebhookAccountCannotRewritePodStatus(t *testing.T) {
	f := features.New("the webhook's account").Assess("refused a podIP patch", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
		installWebhook(t, cfg)
		ns := webhookCluster(t, cfg, "helm-emqx.yaml", 1, 0)
		restCfg, err := clientcmd.BuildConfigFromFlags("", serviceAccountKubeconfig(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		as, err := kubernetes.NewForConfig(restCfg)
		if err != nil {
			t.Fatal(err)
		}
		pod0, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// A merge patch replaces the conditions: they are kept, with the gate's condition added.
		conds, _ := json.Marshal(append(pod0.Status.Conditions, corev1.PodCondition{Type: "emqx.kubectl-emqx.io/serving", Status: "False"}))
		for what, patch := range map[string]string{
			"podIP": `{"status":{"podIP":"198.18.200.1","podIPs":[{"ip":"198.18.200.1"}]}}`,
			"phase": `{"status":{"phase":"Failed"}}`,
			"readiness gate condition on an ungated pod": "",
		} {
			if patch == "" {
				patch = `{"status":{"conditions":` + string(conds) + `}}`
			}
			_, err := as.CoreV1().Pods(ns).Patch(ctx, "emqx-0", types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
			if err == nil || !strings.Contains(err.Error(), "emqx-webhook may") {
				t.Errorf("a %s patch by the webhook's account: %v, want refused by the admission policy", what, err)
			}
		}
		pod, err := clientset(t, cfg).CoreV1().Pods(ns).Get(ctx, "emqx-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Status.PodIP == "198.18.200.1" || pod.Status.Phase != "Running" {
			t.Fatalf("the pod's status changed: %s %s", pod.Status.PodIP, pod.Status.Phase)
		}
		return ctx
	}).Feature()
	testenv.Test(t, f)
}
