// Package follow runs one simulated EMQX node per Running EMQX pod of a Kubernetes cluster, on
// that pod's IP, with the node name and credentials the pod's spec would give a real EMQX.
package follow

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqxsim"
)

// ClusterKey groups pods into EMQX clusters: namespace and instance label.
func ClusterKey(pod *corev1.Pod) string {
	return pod.Namespace + "/" + cluster.Instance(pod.Labels)
}

// Credentials are what a real EMQX in this pod would accept: its dashboard user and the API keys
// of its bootstrap file when that is mounted from a Secret.
func Credentials(pod *corev1.Pod, env map[string]string, src cluster.Sources) (map[string]string, []emqxsim.APIKey) {
	user, pw := cluster.DashboardUser(env)
	users := map[string]string{user: pw}
	name, key, ok := cluster.BootstrapSecret(pod, env)
	if !ok || src.Secret == nil {
		return users, nil
	}
	data, _ := src.Secret(name)
	var keys []emqxsim.APIKey
	for _, k := range cluster.ParseBootstrapFile(string(data[key])) {
		keys = append(keys, emqxsim.APIKey{Key: k.Key, Secret: k.Secret, Role: k.Role})
	}
	return users, keys
}

// DataKey names the volume holding the pod's EMQX data: its first PersistentVolumeClaim, which
// survives the pod (StatefulSet volumeClaimTemplates). "" when the data dies with the pod.
func DataKey(pod *corev1.Pod) string {
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			return pod.Namespace + "/" + v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

// describe is a short label for logs.
func describe(pod *corev1.Pod) string { return fmt.Sprintf("%s/%s", pod.Namespace, pod.Name) }
