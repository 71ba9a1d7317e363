package decide

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
)

// Reasons are the ways a decision went, as Events, log lines and the metric's reason label.
const (
	ReasonNotEMQX            = "NotEMQX"
	ReasonTerminating        = "PodTerminating"
	ReasonNamespaceGone      = "NamespaceTerminating"
	ReasonOwnerGone          = "OwnerDeleting"
	ReasonOwnerMissing       = "OwnerMissing"
	ReasonNotInCache         = "PodNotInCache"
	ReasonNotYetCached       = "PodNotYetCached"
	ReasonUIDMismatch        = "UIDPreconditionMismatch"
	ReasonBypass             = "EvacuationBypassed"
	ReasonNotStarted         = "PodNotRunning"
	ReasonNodeNotRunning     = "NodeNotRunning"
	ReasonEmpty              = "NodeEmpty"
	ReasonEvacuated          = "EvacuationCompleted"
	ReasonTimedOut           = "EvacuationTimedOut"
	ReasonUnreachable        = "EMQXUnreachable"
	ReasonNoTarget           = "NoNodeToMigrateTo"
	ReasonWaitingForTarget   = "WaitingForNodeToReturn"
	ReasonWaitingForDeletion = "WaitingForPodDeletion"
	ReasonStarted            = "EvacuationStarted"
	ReasonRebalanceStopped   = "RebalanceStopped"
	ReasonEvacuating         = "Evacuating"
	ReasonWaiting            = "WaitingForOtherEvacuation"
	ReasonLimitExceeded      = "ConcurrencyLimitExceeded"
	ReasonStalled            = "SessionEvictionStalled"
	ReasonBudget             = "DisruptionBudgetExhausted"
	ReasonCoolingDown        = "EvacuationCoolingDown"
	ReasonWouldHold          = "AuditWouldHold"
	// Durable storage (5.9+): a leaving core's shard replicas move before its pod goes.
	ReasonReplicasMoving   = "DurableStorageReplicasMoving"
	ReasonReplicasTimedOut = "DurableStorageReplicasTimedOut"
)

// Verdict is the answer to a removal (or scale-down) request.
type Verdict struct {
	Allowed  bool
	Reason   string
	Message  string
	Warnings []string
}

// Messages carry EMQX-provided text (node names, error messages): escaped and bounded, as they are
// shown by kubectl after the API server's prefix.
const MaxMessage = 1024

func Allow(reason, msg string) Verdict {
	return Verdict{Allowed: true, Reason: reason, Message: emqx.Printable(msg, MaxMessage)}
}
func Hold(reason, msg string) Verdict {
	return Verdict{Reason: reason, Message: emqx.Printable(msg, MaxMessage)}
}

// Shorten keeps error text in one readable, escaped line for messages shown by kubectl.
func Shorten(err error) string { return emqx.Printable(err.Error(), 300) }

func podPhase(pod *corev1.Pod) string {
	if pod.Status.Phase == "" {
		return "Pending"
	}
	return string(pod.Status.Phase)
}

// CauseScaleDown marks evacuations started for a StatefulSet scale-down.
const CauseScaleDown = "scale-down"

// CauseEviction is the cause of a removal asked through pods/eviction (kubectl drain, autoscalers).
const CauseEviction = "eviction"

// Events of the controller.
const (
	ReasonStopped      = "EvacuationStopped"
	ReasonStaleStopped = "StaleEvacuationStopped"
	ReasonAbandoned    = "EvacuationAbandoned"
)
