package controller

import (
	"context"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

func TestLeaversAreOnlyStoppedNodesOfPodsScaledAwayForGood(t *testing.T) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "emqx"},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2))},
	}
	pods := []corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "emqx-0"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "emqx-1"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "emqx-3"}},
	}
	nodes := []emqx.Node{
		{Node: node(0), NodeStatus: emqx.NodeRunning},
		{
			Node:       node(1),
			NodeStatus: emqx.NodeStopped,
		}, // restarting: its ordinal is wanted
		{
			Node:       node(2),
			NodeStatus: emqx.NodeStopped,
		}, // scaled away, pod gone: leaves
		{
			Node:       node(3),
			NodeStatus: emqx.NodeStopped,
		}, // scaled away but its pod still exists (terminating)
		{Node: node(4), NodeStatus: emqx.NodeRunning}, // running: never
		{
			Node:       "emqx@other-0.emqx-headless.mqtt.svc.cluster.local",
			NodeStatus: emqx.NodeStopped,
		}, // not this StatefulSet's
	}
	got := Leavers(sts, pods, nodes)
	if strings.Join(got, ",") != node(2) {
		t.Fatalf("leavers %v, want only %s", got, node(2))
	}
}

// After a scale-down the removed core node leaves the EMQX cluster once its pod is gone.
func TestMembershipMakesAScaledAwayNodeLeave(t *testing.T) {
	f := newFixture(t, 10, 10, 10)
	f.Sts.Spec.Replicas = ptr.To(int32(2))
	f.Update(f.Sts)
	if err := f.Kube.Delete(context.Background(), f.Pod(2)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sim.StopNode(node(2)); err != nil {
		t.Fatal(err)
	}
	delete(f.Conn.URLs, "emqx-2") // its pod is gone
	m := &Membership{Env: f.env}
	if _, err := m.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{
		Namespace: ns,
		Name:      "emqx",
	}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Sim.Node(node(2)); ok {
		t.Fatal("the scaled-away node is still listed")
	}
	if ev := f.Events(); !strings.Contains(ev, "Normal NodeLeftCluster") {
		t.Fatalf("events %q", ev)
	}
	// Opted out: nothing leaves.
	f.Sts.Annotations = map[string]string{AnnForceLeave: "false"}
	f.Sts.Spec.Replicas = ptr.To(int32(1))
	f.Update(f.Sts)
	if err := f.Kube.Delete(context.Background(), f.Pod(1)); err != nil {
		t.Fatal(err)
	}
	_ = f.Sim.StopNode(node(1))
	delete(f.Conn.URLs, "emqx-1")
	if _, err := m.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{
		Namespace: ns,
		Name:      "emqx",
	}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Sim.Node(node(1)); !ok {
		t.Fatal("force_leave despite the opt-out")
	}
}
