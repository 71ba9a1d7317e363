package emqxcache

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllertest"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
)

// fakeCache reads its objects and hands out fake informers.
type fakeCache struct {
	client.Reader
	*informertest.FakeInformers
}

func (f fakeCache) Get(ctx context.Context, k client.ObjectKey, o client.Object, opts ...client.GetOption) error {
	return f.Reader.Get(ctx, k, o, opts...)
}

func (f fakeCache) List(ctx context.Context, l client.ObjectList, opts ...client.ListOption) error {
	return f.Reader.List(ctx, l, opts...)
}

func newFake(objs ...client.Object) fakeCache {
	return fakeCache{
		Reader:        fake.NewClientBuilder().WithObjects(objs...).Build(),
		FakeInformers: &informertest.FakeInformers{Scheme: clientgoscheme.Scheme},
	}
}

func pod(name, uid string, l map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid), Labels: l}}
}

var (
	helm     = map[string]string{cluster.LabelName: "emqx"}
	operator = map[string]string{cluster.LabelOperatorManaged: "emqx-operator"}
	both     = map[string]string{cluster.LabelName: "emqx", cluster.LabelOperatorManaged: "emqx-operator"}
)

func TestUnionReadsEveryAlternativeForScopedKinds(t *testing.T) {
	ctx := context.Background()
	first := newFake(pod("a", "1", helm), pod("c", "3", both),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "only-first"}})
	second := newFake(pod("b", "2", operator), pod("c", "3", both),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "only-second"}})
	u := NewUnion(clientgoscheme.Scheme, first, second)

	var p corev1.Pod
	if err := u.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "b"}, &p); err != nil || p.UID != "2" {
		t.Fatalf("pod b of the second alternative: %v (%q)", err, p.UID)
	}
	if err := u.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "none"}, &p); !apierrors.IsNotFound(err) {
		t.Fatalf("a pod no alternative holds: want NotFound, got %v", err)
	}
	var sts appsv1.StatefulSet
	if err := u.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "only-first"}, &sts); err != nil {
		t.Fatalf("a StatefulSet is read from the first cache: %v", err)
	}
	if err := u.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "only-second"}, &sts); !apierrors.IsNotFound(err) {
		t.Fatalf("StatefulSets are not scoped: the other caches hold none of the webhook's; got %v", err)
	}

	var list corev1.PodList
	if err := u.List(ctx, &list, client.InNamespace("ns")); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Name)
	}
	if len(names) != 3 || names[0] != "a" || names[1] != "c" || names[2] != "b" {
		t.Fatalf("merged list: want a, c, b (c once), got %v", names)
	}
	list = corev1.PodList{}
	if err := u.List(ctx, &list, client.MatchingLabels(operator)); err != nil || len(list.Items) != 2 {
		t.Fatalf("a List's options go to every alternative: want 2 operator pods, got %d (%v)", len(list.Items), err)
	}
}

func TestUnionInformerHandsOnEveryAlternativesEvents(t *testing.T) {
	ctx := context.Background()
	first, second := newFake(), newFake()
	podGVK := corev1.SchemeGroupVersion.WithKind("Pod")
	for _, f := range []fakeCache{first, second} { // not synced until the test says so
		f.InformersByGVK = map[schema.GroupVersionKind]toolscache.SharedIndexInformer{
			podGVK: controllertest.NewFakeInformer()}
	}
	u := NewUnion(clientgoscheme.Scheme, first, second)
	inf, err := u.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { added = append(added, obj.(*corev1.Pod).Name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f1, _ := first.FakeInformerFor(ctx, &corev1.Pod{})
	f2, _ := second.FakeInformerFor(ctx, &corev1.Pod{})
	f1.Add(pod("a", "1", helm))
	f2.Add(pod("b", "2", operator))
	if len(added) != 2 || added[0] != "a" || added[1] != "b" {
		t.Fatalf("events of both alternatives: got %v", added)
	}
	if inf.HasSynced() || reg.HasSynced() {
		t.Fatal("synced before the alternatives are")
	}
	f1.Synced()
	if inf.HasSynced() {
		t.Fatal("synced when only the first alternative is")
	}
	f2.Synced()
	if !inf.HasSynced() {
		t.Fatal("not synced when every alternative is")
	}
	<-inf.HasSyncedChecker().Done() // closes once every alternative's does
	if err := inf.RemoveEventHandler(reg); err != nil {
		t.Fatal(err)
	}
	if err := inf.RemoveEventHandler(f1.HasSyncedChecker().(toolscache.ResourceEventHandlerRegistration)); err == nil {
		t.Fatal("a registration of another informer was taken")
	}

	// Kinds that are not scoped have the first cache's informer itself.
	nsInf, err := u.GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := nsInf.(*controllertest.FakeInformer); !ok {
		t.Fatalf("namespaces: want the first cache's informer, got %T", nsInf)
	}
}

func TestSelectorsAreTheMatchersAlternatives(t *testing.T) {
	m, err := cluster.NewMatcher("tier=mqtt")
	if err != nil {
		t.Fatal(err)
	}
	sels, err := Selectors(m)
	if err != nil {
		t.Fatal(err)
	}
	// Every label set the matcher takes is picked by some alternative, and none it refuses.
	for _, l := range []map[string]string{
		helm, operator, {cluster.LabelName: "emqx-enterprise"}, {"tier": "mqtt"}, {cluster.LabelName: "redis"}, {},
	} {
		picked := false
		for _, s := range sels {
			picked = picked || s.Matches(labels.Set(l))
		}
		if picked != m.Match(l) {
			t.Errorf("labels %v: picked by a selector %v, matched %v", l, picked, m.Match(l))
		}
	}
	none, _ := cluster.NewMatcher("")
	if sels, _ := Selectors(none); len(sels) != 2 {
		t.Fatalf("without --emqx-selector: want the two install styles' selectors, got %v", sels)
	}
}

func TestSlimStatefulSetKeepsWhatTheWebhookReads(t *testing.T) {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "emqx", Labels: helm,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "helm"}}}}
	sts.Spec.Template.Labels = helm
	sts.Spec.Template.Spec.Containers = []corev1.Container{{Name: "emqx", Image: "emqx/emqx:5.8.6"}}
	sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{}}
	var r int32 = 3
	sts.Spec.Replicas = &r
	out, err := slimStatefulSet(cache.TransformStripManagedFields())(sts)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*appsv1.StatefulSet)
	if len(got.ManagedFields) != 0 || len(got.Spec.Template.Spec.Containers) != 0 ||
		got.Spec.VolumeClaimTemplates != nil {
		t.Fatalf("not stripped: %+v", got)
	}
	if *got.Spec.Replicas != 3 || got.Spec.Template.Labels[cluster.LabelName] != "emqx" || got.Labels == nil {
		t.Fatalf("lost what the webhook reads: %+v", got)
	}
}

func TestSlimPodKeepsWhatTheWebhookReads(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "emqx-0", Labels: helm,
		Annotations: map[string]string{"a": "b"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "x"}}},
		Spec: corev1.PodSpec{NodeName: "n", Hostname: "emqx-0", Subdomain: "emqx-headless",
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "emqx.kubectl-emqx.io/serving"}},
			Containers: []corev1.Container{{Name: "sidecar", Image: "busybox"}, {Name: "emqx", Image: "emqx:5.8.6",
				Env:            []corev1.EnvVar{{Name: "EMQX_HOST", Value: "h"}},
				Ports:          []corev1.ContainerPort{{Name: "dashboard", ContainerPort: 18083}},
				VolumeMounts:   []corev1.VolumeMount{{Name: "keys", MountPath: "/keys"}},
				Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{}},
				ReadinessProbe: &corev1.Probe{}}},
			Volumes: []corev1.Volume{{Name: "keys", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: "api-keys"}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Tolerations: []corev1.Toleration{{Key: "k"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.1.2",
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, Message: "m"},
				{Type: "emqx.kubectl-emqx.io/serving", Status: corev1.ConditionFalse, Reason: "r"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "emqx"}}},
	}
	out, err := slimPod(cache.TransformStripManagedFields())(pod.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Pod)
	c := cluster.EMQXContainer(&got.Spec)
	switch {
	case len(got.ManagedFields) != 0 || len(got.Spec.Tolerations) != 0 || len(got.Status.ContainerStatuses) != 0:
		t.Fatalf("not stripped: %+v", got)
	case len(got.Spec.Containers) != 1 || c.Name != "emqx" || c.Image != "emqx:5.8.6" || c.ReadinessProbe != nil:
		t.Fatalf("containers: %+v", got.Spec.Containers)
	case c.Env[0].Value != "h" || c.Ports[0].ContainerPort != 18083 || c.VolumeMounts[0].Name != "keys":
		t.Fatalf("the EMQX container lost what reaches EMQX: %+v", c)
	case len(got.Spec.Volumes) != 1 || got.Spec.Volumes[0].Secret.SecretName != "api-keys":
		t.Fatalf("volumes: %+v", got.Spec.Volumes)
	case got.Spec.NodeName != "n" || got.Spec.Subdomain != "emqx-headless" || len(got.Spec.ReadinessGates) != 1 ||
		got.Labels[cluster.LabelName] != "emqx" || got.Annotations["a"] != "b":
		t.Fatalf("spec or metadata: %+v", got)
	case got.Status.PodIP != "198.18.1.2" || got.Status.Phase != corev1.PodRunning || !cluster.Ready(got):
		t.Fatalf("status: %+v", got.Status)
	case len(got.Status.Conditions) != 2 || got.Status.Conditions[1] != (corev1.PodCondition{
		Type: "emqx.kubectl-emqx.io/serving", Status: corev1.ConditionFalse}):
		t.Fatalf("conditions: want Ready and the readiness gate's, type and status only: %+v", got.Status.Conditions)
	}
}
