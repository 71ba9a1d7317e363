package ops

import (
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Reporter hears what an operation does as it goes; the plugin prints it. Pods are named as
// people know them (the pod, or in direct mode the node); EMQX-provided text is not escaped here.
type Reporter interface {
	// EvacuationStarted: the node of pod was asked to evacuate, holding conns and sessions.
	EvacuationStarted(pod, node string, conns, sessions int64)
	// EvacuationJoined: the node was evacuating already; the operation only watches it.
	EvacuationJoined(pod, node string)
	// NothingToEvacuate: pod has no running EMQX node (a scale-down removes it as it is).
	NothingToEvacuate(pod string)
	// EvacuationReopened: pod came back with an evacuation persisted on its volume; it was stopped.
	EvacuationReopened(pod string)
	// Evacuations is the progress of the evacuations waited for, each time they are read.
	Evacuations([]Evacuating)
	// RebalancePlanned: who gives, who takes, what is expected to move. label names a node.
	RebalancePlanned(
		p evacuation.Plan,
		thresholds evacuation.Thresholds,
		connRate int64,
		label func(node string) string,
	)
	// RebalanceJoined and RebalanceStarted name the coordinator's pod.
	RebalanceJoined(coordinator string)
	RebalanceStarted(coordinator string)
	// Rebalance is the running rebalance, each time it is read.
	Rebalance(emqx.Rebalance)
}
