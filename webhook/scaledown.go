package webhook

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/klog/v2"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
)

// ScaleDown decides a StatefulSet scale-down from old to new replicas (sts as it was before: its
// generation is the one the scale-down replaces): it is admitted (the
// user's intent stays in spec.replicas) and the pods that will go start evacuating at once,
// migrating to the pods that stay; a warning names them. With the StatefulSet annotation
// scale-down=strict it is held (429) until they are all empty.
func (g *Gate) ScaleDown(ctx context.Context, sts *appsv1.StatefulSet, old, new int32, dryRun bool) decide.Verdict {
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	v := g.scaleDown(ctx, sts, old, new, dryRun)
	g.Metrics.observe(decide.CauseScaleDown, v)
	g.Log.Info(
		"scale-down decided",
		"statefulset",
		klog.KObj(sts),
		"from",
		old,
		"to",
		new,
		"allowed",
		v.Allowed,
		"reason",
		v.Reason,
		"message",
		v.Message,
		"dryRun",
		dryRun,
	)
	return v
}

func (g *Gate) scaleDown(ctx context.Context, sts *appsv1.StatefulSet, old, new int32, dryRun bool) decide.Verdict {
	victims, err := g.victims(ctx, sts, old, new)
	if err != nil {
		return decide.Allow(
			decide.ReasonUnreachable,
			fmt.Sprintf(
				"could not list the pods of statefulset %s (%v): admitted; their deletions are still held one by one",
				sts.Name,
				err,
			),
		)
	}
	if len(victims) == 0 {
		return decide.Allow(decide.ReasonEmpty, "no running pod is removed")
	}
	// OrderedReady removes one pod at a time, highest ordinal first: evacuate that one now; the
	// deletion of each next one starts its own. Parallel removes them all at once.
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		victims = victims[:1]
	}
	gen := strconv.FormatInt(sts.Generation, 10)
	var empty, busy []string
	for i := range victims {
		p := &victims[i]
		v := g.removal(ctx, p, dryRun, decide.CauseScaleDown, map[string]*string{decide.AnnScaleGeneration: &gen}, &new)
		if v.Allowed {
			empty = append(empty, p.Name)
		} else {
			busy = append(busy, p.Name+" ("+v.Message+")")
		}
	}
	watch := fmt.Sprintf("watch with: kubectl emqx status -n %s", sts.Namespace)
	if len(busy) == 0 {
		return decide.Allow(
			decide.ReasonEvacuated,
			fmt.Sprintf("the removed EMQX pods hold nothing: %s", strings.Join(empty, ", ")),
		)
	}
	if sts.Annotations[decide.AnnScaleDown] == "strict" {
		return decide.Hold(
			decide.ReasonEvacuating,
			fmt.Sprintf(
				"strict scale-down of statefulset %s from %d to %d: waiting until the removed pods are empty: "+
					"%s; retrying is safe, %s",
				sts.Name,
				old,
				new,
				strings.Join(busy, "; "),
				watch,
			),
		)
	}
	v := decide.Allow(
		decide.ReasonStarted,
		fmt.Sprintf("scale-down of statefulset %s admitted; its removed pods are evacuated first", sts.Name),
	)
	names := make([]string, 0, len(busy))
	for _, b := range busy {
		names = append(names, strings.SplitN(b, " ", 2)[0])
	}
	v.Warnings = []string{
		fmt.Sprintf("EMQX pods %s are evacuated before they are removed; their deletion waits until they are empty; %s",
			strings.Join(names, ", "), watch),
	}
	return v
}

// victims are the existing EMQX pods a scale-down from old to new replicas removes, highest
// ordinal first. They come from the pods that exist, never from the range the request claims: a
// review saying old replicas = 2147483647 costs no more than a real one.
func (g *Gate) victims(ctx context.Context, sts *appsv1.StatefulSet, old, new int32) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := g.Client.List(ctx, &pods, client.InNamespace(sts.Namespace)); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if metav1.IsControlledBy(&p, sts) && cluster.Removed(sts, p.Name, new, old) && g.Matcher.Match(p.Labels) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := cluster.Ordinal(sts, out[i].Name)
		b, _ := cluster.Ordinal(sts, out[j].Name)
		return a > b
	})
	return out, nil
}
