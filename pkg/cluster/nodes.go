package cluster

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Host is the host part of an Erlang node name (after the '@').
func Host(node string) string {
	_, host, _ := strings.Cut(node, "@")
	return host
}

// PodOf tells whether node runs in pod: its host is the pod's IP (replicants, IP-named nodes) or
// its first DNS label is the pod's name (core pods: <pod>.<headless>.<ns>.svc...). SPEC §8.2.
func PodOf(node string, pod *corev1.Pod) bool {
	host := Host(node)
	if host == "" {
		return false
	}
	if pod.Status.PodIP != "" && host == pod.Status.PodIP {
		return true
	}
	first, _, _ := strings.Cut(host, ".")
	return first == pod.Name
}

// NodeOfPod finds the pod's node among the nodes /api/v5/nodes listed.
func NodeOfPod(nodes []emqx.Node, pod *corev1.Pod) (emqx.Node, bool) {
	for _, n := range nodes {
		if PodOf(n.Node, pod) {
			return n, true
		}
	}
	return emqx.Node{}, false
}

// PodOfNode finds the node's pod.
func PodOfNode(pods []corev1.Pod, node string) (*corev1.Pod, bool) {
	for i := range pods {
		if PodOf(node, &pods[i]) {
			return &pods[i], true
		}
	}
	return nil, false
}

// NodeByName resolves what a user typed in direct mode: an EMQX node name, or a pod name matched
// against the first label of the nodes' host names (emqx-2 → emqx@emqx-2.emqx-headless...).
func NodeByName(nodes []emqx.Node, name string) (emqx.Node, bool) {
	for _, n := range nodes {
		if n.Node == name {
			return n, true
		}
	}
	for _, n := range nodes {
		first, _, _ := strings.Cut(Host(n.Node), ".")
		if first == name || Host(n.Node) == name {
			return n, true
		}
	}
	return emqx.Node{}, false
}
