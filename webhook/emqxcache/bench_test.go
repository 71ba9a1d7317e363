package emqxcache

import (
	"fmt"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// emqxPod is an EMQX pod of the Helm chart as the API server stores it, managed fields included.
func emqxPod(i int) *corev1.Pod {
	status := corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/status"}}
	c := corev1.Container{Name: "emqx", Image: "emqx/emqx-enterprise:5.10.0",
		Ports: []corev1.ContainerPort{{Name: "mqtt", ContainerPort: 1883}, {Name: "ws", ContainerPort: 8083},
			{Name: "dashboard", ContainerPort: 18083}, {Name: "ekka", ContainerPort: 4370}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: status},
		LivenessProbe:  &corev1.Probe{ProbeHandler: status},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/opt/emqx/data"},
			{Name: "bootstrap", MountPath: "/opt/emqx/etc/api_keys", SubPath: "api_keys"}},
	}
	for _, e := range []string{"EMQX_NAME", "EMQX_HOST", "EMQX_CLUSTER__DISCOVERY_STRATEGY", "EMQX_CLUSTER__DNS__NAME",
		"EMQX_CLUSTER__DNS__RECORD_TYPE", "EMQX_DASHBOARD__DEFAULT_USERNAME", "EMQX_NODE__COOKIE"} {
		c.Env = append(c.Env, corev1.EnvVar{Name: e, Value: "emqx-headless.mqtt.svc.cluster.local"})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("emqx-%d", i), Namespace: "mqtt",
			Labels: map[string]string{"app.kubernetes.io/name": "emqx",
				"app.kubernetes.io/instance": fmt.Sprint(i / 100), "controller-revision-hash": "emqx-7c9f6d5b4"},
			OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "emqx", UID: "1"}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update",
				APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: make([]byte, 3000)}}},
		},
		Spec: corev1.PodSpec{NodeName: "node-1", Hostname: fmt.Sprintf("emqx-%d", i), Subdomain: "emqx-headless",
			Containers: []corev1.Container{c},
			Volumes: []corev1.Volume{{Name: "data"},
				{Name: "bootstrap", VolumeSource: corev1.VolumeSource{
					Secret: &corev1.SecretVolumeSource{SecretName: "k"}}}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: "Exists"},
				{Key: "node.kubernetes.io/unreachable", Operator: "Exists"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.2.3",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "emqx", Ready: true, Image: c.Image,
				ImageID: "sha256:0123456789abcdef", ContainerID: "containerd://0123456789abcdef"}}},
	}
}

// BenchmarkEMQXPodCacheMemory10k: the heap the cache holds for 10,000 EMQX pods, with managed
// fields stripped only and with the transform the binary installs (slimPod).
func BenchmarkEMQXPodCacheMemory10k(b *testing.B) {
	for name, transform := range map[string]toolscache.TransformFunc{
		"managed-fields": cache.TransformStripManagedFields(),
		"slim":           slimPod(cache.TransformStripManagedFields()),
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc,
					toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
				for i := range 10000 {
					obj, err := transform(emqxPod(i))
					if err != nil {
						b.Fatal(err)
					}
					if err := store.Add(obj); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/10k-pods")
				runtime.KeepAlive(store)
			}
		})
	}
}
