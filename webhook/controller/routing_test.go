package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

func servingCondition(p *corev1.Pod) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == decide.ConditionServing {
			return c.Status
		}
	}
	return ""
}

// The controller keeps the serving condition True except while the node evacuates, and True when
// EMQX cannot be asked.
func TestControllerKeepsServingConditionFalseOnlyWhileEvacuating(t *testing.T) {
	f := newFixture(t, 100, 100)
	p := f.Pod(0)
	p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: decide.ConditionServing}}
	f.Update(p)
	if res := f.reconcile(0); res.RequeueAfter == 0 || servingCondition(f.Pod(0)) != corev1.ConditionTrue {
		t.Fatalf("a gated pod whose node serves: condition %q, requeue %v", servingCondition(f.Pod(0)), res)
	}
	f.removal(0) // the webhook starts the evacuation
	f.reconcile(0)
	if servingCondition(f.Pod(0)) != corev1.ConditionFalse {
		t.Fatalf("evacuating: condition %q", servingCondition(f.Pod(0)))
	}
	f.Conn.Down = true
	f.reconcile(0)
	if servingCondition(f.Pod(0)) != corev1.ConditionTrue {
		t.Fatalf(
			"EMQX unreachable: condition %q, want True (never out of service on doubt)",
			servingCondition(f.Pod(0)),
		)
	}
	// A pod without the gate is never given the condition.
	f.Conn.Down = false
	f.reconcile(1)
	if servingCondition(f.Pod(1)) != "" {
		t.Fatal("ungated pod got the condition")
	}
}
