package ops

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Access is how to reach EMQX clusters: through Kubernetes (Kube set: discovery, port-forward,
// credentials from the cluster) or directly (EMQX.URL set, Kube nil).
type Access struct {
	Namespace string
	Matcher   cluster.Matcher // which pods and StatefulSets are EMQX
	Kube      kubernetes.Interface
	EMQX      cluster.Access
}

// Target is an EMQX cluster to work on and a connection to its API.
type Target struct {
	Namespace string
	Matcher   cluster.Matcher
	Cluster   *cluster.Cluster // nil in direct mode
	Kube      kubernetes.Interface
	Conn      *cluster.Conn
}

// Close ends the connection (its port-forward).
func (t *Target) Close() {
	if t.Conn != nil {
		t.Conn.Close()
	}
}

// Cluster finds the cluster (by name, or the only one of the namespace) and connects to its API,
// avoiding the pods named in avoid when it can.
func (a Access) Cluster(ctx context.Context, name string, avoid ...string) (*Target, error) {
	return a.connect(ctx, func(ctx context.Context) (*cluster.Cluster, error) {
		clusters, err := cluster.Discover(ctx, a.Kube, a.Namespace, a.Matcher)
		if err != nil {
			return nil, err
		}
		return cluster.Select(clusters, name, a.Namespace)
	}, avoid...)
}

// Pod finds the cluster of an EMQX pod (or, in direct mode, a node by pod or node name), connects
// through another pod when it can, and returns the pod's running node.
func (a Access) Pod(ctx context.Context, pod string) (*Target, emqx.Node, error) {
	t, err := a.connect(ctx, func(ctx context.Context) (*cluster.Cluster, error) {
		cl, _, err := cluster.ForPod(ctx, a.Kube, a.Namespace, pod, a.Matcher)
		return cl, err
	}, pod)
	if err != nil {
		return nil, emqx.Node{}, err
	}
	node, err := t.NodeOf(ctx, pod)
	if err != nil {
		t.Close()
		return nil, emqx.Node{}, err
	}
	return t, node, nil
}

// connected connects to the API of cluster c, found already (in c's namespace).
func (a Access) connected(ctx context.Context, c *cluster.Cluster) (*Target, error) {
	a.Namespace = c.Namespace
	return a.connect(ctx, func(context.Context) (*cluster.Cluster, error) { return c, nil })
}

func (a Access) connect(
	ctx context.Context,
	find func(context.Context) (*cluster.Cluster, error),
	avoid ...string,
) (*Target, error) {
	t := &Target{Namespace: a.Namespace, Matcher: a.Matcher, Kube: a.Kube}
	var err error
	if a.Kube != nil {
		if t.Cluster, err = find(ctx); err != nil {
			return nil, err
		}
	}
	if t.Conn, err = cluster.Connect(ctx, a.EMQX, t.Cluster, avoid...); err != nil {
		return nil, err
	}
	return t, nil
}

// NodeOf maps a pod (or, in direct mode, a pod or node name) to its running EMQX node.
func (t *Target) NodeOf(ctx context.Context, pod string) (emqx.Node, error) {
	nodes, err := t.Conn.Nodes(ctx)
	if err != nil {
		return emqx.Node{}, err
	}
	return t.NodeAmong(ctx, nodes, pod)
}

// NodeAmong is NodeOf among nodes already read.
func (t *Target) NodeAmong(ctx context.Context, nodes []emqx.Node, pod string) (emqx.Node, error) {
	if t.Cluster == nil {
		if n, ok := cluster.NodeByName(nodes, pod); ok && n.Running() {
			return n, nil
		}
		return emqx.Node{}, fmt.Errorf(
			"no running EMQX node %q at %s; list nodes with: kubectl emqx status --emqx-url %s",
			pod,
			t.Conn.Via,
			t.Conn.Via,
		)
	}
	p, ok := t.Cluster.Pod(pod)
	if !ok {
		return emqx.Node{}, fmt.Errorf(
			"pod %q is not part of EMQX cluster %q; list its pods with: kubectl emqx status -n %s",
			pod,
			t.Cluster.Name,
			t.Namespace,
		)
	}
	n, ok := t.NodeOfPod(ctx, nodes, p)
	if !ok || !n.Running() {
		return emqx.Node{}, fmt.Errorf(
			"pod %q has no running EMQX node (not started, or not part of the cluster yet); check: "+
				"kubectl emqx status -n %s",
			pod,
			t.Namespace,
		)
	}
	return n, nil
}

// NodeOfPod finds the pod's node among nodes, recognising it also by the name its environment gives.
func (t *Target) NodeOfPod(ctx context.Context, nodes []emqx.Node, p *corev1.Pod) (emqx.Node, bool) {
	n, _, ok := cluster.FindNode(ctx, t.Kube, nodes, p)
	return n, ok
}

// PodLabel names a node by its pod where known.
func (t *Target) PodLabel(node string) string {
	if t.Cluster != nil {
		if p, ok := cluster.PodOfNode(t.Cluster.Pods, node); ok {
			return p.Name
		}
	}
	return node
}

// NSFlag is " -n NS" for commands printed as advice, or "" in direct mode.
func (t *Target) NSFlag() string {
	if t.Cluster == nil {
		return ""
	}
	return " -n " + t.Namespace
}

// RefreshPods re-reads the cluster's workloads and pods.
func (t *Target) RefreshPods(ctx context.Context) error {
	clusters, err := cluster.Discover(ctx, t.Kube, t.Namespace, t.Matcher)
	if err != nil {
		return err
	}
	c, err := cluster.Select(clusters, t.Cluster.Name, t.Namespace)
	if err != nil {
		return err
	}
	t.Cluster = c
	return nil
}
