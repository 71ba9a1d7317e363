package cluster

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
)

// Replicas is a StatefulSet's spec.replicas (1 when unset, as the API server defaults it).
func Replicas(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Replicas == nil {
		return 1
	}
	return *sts.Spec.Replicas
}

func ordinalsStart(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Ordinals == nil {
		return 0
	}
	return sts.Spec.Ordinals.Start
}

// ReplicaPods names the StatefulSet's pods of replicas from..to-1, lowest first: the pods a scale
// from `to` down to `from` replicas removes, or a scale from `from` up to `to` adds. Ordinals
// count from spec.ordinals.start.
func ReplicaPods(sts *appsv1.StatefulSet, from, to int32) []string {
	start := ordinalsStart(sts)
	var out []string
	for i := start + from; i < start+to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", sts.Name, i))
	}
	return out
}

// Removed reports whether pod is one of the StatefulSet's pods that a scale from `to` down to
// `from` replicas removes (its ordinal in from..to-1, counted from spec.ordinals.start). Unlike
// ReplicaPods it builds nothing, whatever the replica counts claim.
func Removed(sts *appsv1.StatefulSet, pod string, from, to int32) bool {
	n, ok := Ordinal(sts, pod)
	start := int64(ordinalsStart(sts))
	return ok && int64(n) >= start+int64(from) && int64(n) < start+int64(to)
}

// Ordinal is the ordinal of the StatefulSet's pod, or ok false when pod is not one of its pods.
func Ordinal(sts *appsv1.StatefulSet, pod string) (int32, bool) {
	rest, ok := strings.CutPrefix(pod, sts.Name+"-")
	n, err := strconv.ParseInt(rest, 10, 32)
	if !ok || err != nil || n < 0 {
		return 0, false
	}
	return int32(n), true
}

// Stays reports whether the pod is one of the StatefulSet's pods within its current replicas.
func Stays(sts *appsv1.StatefulSet, pod string) bool {
	n, ok := Ordinal(sts, pod)
	start := ordinalsStart(sts)
	return ok && n >= start && n < start+Replicas(sts)
}
