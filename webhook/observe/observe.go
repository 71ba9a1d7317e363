package observe

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Question says what Node asks EMQX beyond the cluster's nodes.
type Question struct {
	// Node names the pod's node when it is known (the controller records it on the pod): its
	// nodes are then read only when an evacuation needs judging. Empty: found among the nodes.
	Node string
	// Status asks the global status (evacuations, rebalances) once the node runs, and how to read
	// the session counts of evacuations EMQX does not call done (durable sessions, 5.8+).
	Status bool
}

// NodeState is what EMQX says about a pod's node. A failure is part of it, not an error: each
// caller knows what to do with it.
type NodeState struct {
	Conn     EMQX
	Err      error // EMQX could not be asked, or answered what it should not
	Stale    bool  // with Err: the connection worked before the failure; drop it
	Nodes    []emqx.Node
	Node     emqx.Node // the pod's node as listed (Found)
	Found    bool
	Expected string // without Found: the node name the pod's environment gives
	Status   emqx.GlobalStatus
	Durable  evacuation.Durability
	// Shared: the answers may be another read's, up to the connection's --emqx-shared-reads old
	// (a connector that shares reads, asked without emqx.Fresh).
	Shared bool
}

// sharesReads reports whether c's connections share reads (PodConnector with SharedFor).
func sharesReads(c Connector) bool {
	s, ok := c.(interface{ SharesReads() bool })
	return ok && s.SharesReads()
}

// Node is the one place the webhook asks EMQX about a pod's node: the gate's snapshot, the
// controller's Follow and Reopen, the routing gate and the custom metrics all come through it.
func Node(ctx context.Context, c Connector, kube kubernetes.Interface, pod *corev1.Pod, q Question) NodeState {
	conn, err := c.Connect(ctx, pod)
	if err != nil {
		return NodeState{Err: err}
	}
	s := NodeState{Conn: conn, Shared: sharesReads(c) && !emqx.IsFresh(ctx)}
	failed := func(err error) NodeState { return NodeState{Err: err, Stale: true} }
	if q.Node == "" {
		if s.Nodes, err = conn.Nodes(ctx); err != nil {
			return failed(err)
		}
		s.Node, s.Expected, s.Found = cluster.FindNode(ctx, kube, s.Nodes, pod)
		if !s.Found || !s.Node.Running() || !q.Status {
			return s
		}
	}
	if s.Status, err = conn.GlobalStatus(ctx); err != nil {
		return failed(err)
	}
	if !s.Status.Unfinished() {
		return s
	}
	if s.Nodes == nil { // the node was known: listed now to judge the evacuations
		if s.Nodes, err = conn.Nodes(ctx); err != nil {
			return failed(err)
		}
		s.Node, s.Found = cluster.NodeByName(s.Nodes, q.Node)
	}
	if s.Durable, err = evacuation.AskDurability(ctx, conn, s.Node.Version); err != nil {
		return failed(err)
	}
	return s
}
