package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Reasons of the serving condition.
const (
	ReasonServing   = "NodeServing"
	ReasonNoService = "NodeEvacuating"
)

// syncServing keeps the serving condition of a gated pod: False while its node evacuates, True
// otherwise, and True when EMQX cannot be asked (the gate never holds a pod out on doubt).
func (c *Controller) syncServing(ctx context.Context, pod *corev1.Pod) (ctrl.Result, error) {
	serving, why := true, "EMQX node serves clients"
	o := observe.Node(ctx, c.EMQX, c.Kube, pod, observe.Question{Status: true})
	if o.Err != nil {
		if o.Stale {
			c.EMQX.Forget(pod)
		}
		why = "EMQX's API did not answer: the gate does not hold the pod out of service on doubt"
	} else if _, evacuating := o.Status.Evacuation(o.Node.Node); o.Found && o.Node.Running() && evacuating {
		serving, why = false, fmt.Sprintf("EMQX node %s is evacuating: it refuses new clients", o.Node.Node)
	}
	status, reason := corev1.ConditionTrue, ReasonServing
	if !serving {
		status, reason = corev1.ConditionFalse, ReasonNoService
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == decide.ConditionServing && cond.Status == status {
			return ctrl.Result{RequeueAfter: c.Poll}, nil
		}
	}
	cond := corev1.PodCondition{
		Type:               decide.ConditionServing,
		Status:             status,
		Reason:             reason,
		Message:            why,
		LastTransitionTime: metav1.NewTime(c.Clock.Now()),
	}
	if err := c.Exec.SetCondition(ctx, pod, cond); err != nil {
		return ctrl.Result{}, err
	}
	c.Log.Info("routing gate", "pod", klog.KObj(pod), "serving", serving, "why", why)
	return ctrl.Result{RequeueAfter: c.Poll}, nil
}
