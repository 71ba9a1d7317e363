package observe

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Owner is the pod's StatefulSet or ReplicaSet, from the cache, or nil; gone says why the pod's
// owner is going or gone (being deleted, deleted, or replaced by another of the same name), "" when
// it is not; missing: gone rather than being deleted (no such object, or another one now).
func Owner(ctx context.Context, reader client.Reader, pod *corev1.Pod) (obj client.Object, gone string, missing bool) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil, "", false
	}
	switch ref.Kind {
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "ReplicaSet":
		obj = &appsv1.ReplicaSet{}
	default:
		return nil, "", false
	}
	kind := strings.ToLower(ref.Kind)
	err := reader.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Sprintf("its %s %s is gone", kind, ref.Name), true
	case err != nil:
		return nil, "", false
	case obj.GetUID() != ref.UID:
		return nil, fmt.Sprintf("its %s %s was deleted (one of that name is another object now)", kind, ref.Name), true
	case obj.GetDeletionTimestamp() != nil:
		return obj, fmt.Sprintf("its %s %s is being deleted", kind, ref.Name), false
	}
	return obj, "", false
}
