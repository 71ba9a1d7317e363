package cluster

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStatefulSetOrdinals(t *testing.T) {
	three := int32(3)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx"},
		Spec:       appsv1.StatefulSetSpec{Replicas: &three},
	}
	if got := strings.Join(ReplicaPods(sts, 1, 3), ","); got != "emqx-1,emqx-2" {
		t.Fatalf("ReplicaPods %s", got)
	}
	if got := strings.Join(ReplicaPods(sts, 2, 4), ","); got != "emqx-2,emqx-3" {
		t.Fatalf("a scale-down from 4 to 2 removes %s", got)
	}
	for pod, want := range map[string]bool{
		"emqx-0":  true,
		"emqx-2":  true,
		"emqx-3":  false,
		"emqx-x":  false,
		"other-0": false,
		"emqx--1": false,
	} {
		if Stays(sts, pod) != want {
			t.Errorf("Stays(%s) = %v", pod, !want)
		}
	}
	sts.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
	if got := strings.Join(ReplicaPods(sts, 1, 3), ","); got != "emqx-6,emqx-7" {
		t.Fatalf("ReplicaPods with ordinals.start 5: %s", got)
	}
	if Stays(sts, "emqx-4") || !Stays(sts, "emqx-7") || Stays(sts, "emqx-8") {
		t.Fatal("Stays ignores ordinals.start")
	}
	sts.Spec.Replicas = nil
	if Replicas(sts) != 1 {
		t.Fatal("unset replicas default to 1")
	}
}
