package cluster

import (
	"context"
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Host is the host part of an Erlang node name (after the '@').
func Host(node string) string {
	_, host, _ := strings.Cut(node, "@")
	return host
}

// PodOf tells whether node runs in pod, by what the node's host part shows of it (pkg/emqx/API.md,
// "Node names"): any of the pod's IPs (IPv4 or IPv6, dual stack; replicants and IP-named nodes), the
// dashed form of an IP (k8s discovery with address type dns), or a DNS name whose first label is
// the pod's hostname (core pods: <pod>.<headless>.<ns>.svc...).
func PodOf(node string, pod *corev1.Pod) bool {
	host := strings.Trim(Host(node), "[]")
	if host == "" {
		return false
	}
	for _, ip := range podIPs(pod) {
		if host == ip || strings.HasPrefix(host, strings.ReplaceAll(ip, ".", "-")+".") {
			return true
		}
	}
	first, _, _ := strings.Cut(host, ".")
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	return first == hostname && net.ParseIP(host) == nil
}

func podIPs(pod *corev1.Pod) []string {
	ips := make([]string, 0, 1+len(pod.Status.PodIPs))
	if pod.Status.PodIP != "" {
		ips = append(ips, pod.Status.PodIP)
	}
	for _, ip := range pod.Status.PodIPs {
		if ip.IP != "" && ip.IP != pod.Status.PodIP {
			ips = append(ips, ip.IP)
		}
	}
	return ips
}

// NodeOfPod finds the pod's node among the nodes /api/v5/nodes listed: by what a node's name shows
// of the pod (PodOf), else by expected, when not empty: the name the pod's own environment gives
// its node (NodeName of Env).
func NodeOfPod(nodes []emqx.Node, pod *corev1.Pod, expected string) (emqx.Node, bool) {
	for _, n := range nodes {
		if PodOf(n.Node, pod) {
			return n, true
		}
	}
	if expected != "" {
		for _, n := range nodes {
			if n.Node == expected {
				return n, true
			}
		}
	}
	return emqx.Node{}, false
}

// FindNode is NodeOfPod reading the pod's environment (ConfigMaps and Secrets through kube) only
// when the node's name shows nothing of the pod. The name the environment gives is returned when
// it was read, for messages.
func FindNode(
	ctx context.Context,
	kube kubernetes.Interface,
	nodes []emqx.Node,
	pod *corev1.Pod,
) (emqx.Node, string, bool) {
	if n, ok := NodeOfPod(nodes, pod, ""); ok {
		return n, "", true
	}
	expected := ExpectedNodeName(ctx, kube, pod)
	n, ok := NodeOfPod(nodes, pod, expected)
	return n, expected, ok
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

// MissingNodesHint explains why EMQX lists fewer nodes than the install runs pods, "" when it
// lists as many: each pod alone is what EMQX 5.9+ without a licence key does (its built-in
// licence is single-node), or what failed cluster discovery looks like.
func MissingNodesHint(nodes []emqx.Node, runningPods int) string {
	switch {
	case runningPods < 2 || len(nodes) >= runningPods:
		return ""
	case len(nodes) == 1:
		return fmt.Sprintf("EMQX lists 1 node while %d EMQX pods run: each pod may be a cluster of its own. EMQX 5.9+ "+
			"without a licence key is single-node (set license.key, EMQX_LICENSE__KEY); otherwise check cluster "+
			"discovery (EMQX_CLUSTER__DISCOVERY_STRATEGY and the headless Service)", runningPods)
	}
	return fmt.Sprintf("EMQX lists %d nodes while %d EMQX pods run: the others have not joined (still starting, "+
		"or cluster discovery failed)", len(nodes), runningPods)
}
