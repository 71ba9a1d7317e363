package decide

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// The world the decisions are tested in: StatefulSet emqx of namespace mqtt, its pods and nodes.

const ns = "mqtt"

var emqxLabels = map[string]string{"app.kubernetes.io/name": "emqx", "app.kubernetes.io/instance": "emqx"}

func node(i int) string { return fmt.Sprintf("emqx@emqx-%d.emqx-headless.mqtt.svc.cluster.local", i) }

func readyPod(i int, uid string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("emqx-%d", i), Namespace: ns, Labels: emqxLabels, UID: types.UID(uid),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "emqx",
				UID: "sts-uid", Controller: ptr.To(true)}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("198.18.1.%d", i+2),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}
