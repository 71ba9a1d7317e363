package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// Annotations the webhook reads and writes. State lives in the cluster, so every replica and any
// restart sees it.
const (
	prefix = "emqx.kubectl-emqx.io/"
	// AnnBypass "true" on a pod or its StatefulSet/ReplicaSet: never hold its removal.
	AnnBypass = prefix + "bypass"
	// On a pod whose evacuation the webhook started.
	AnnStartedAt   = prefix + "evacuation-started-at"
	AnnNode        = prefix + "evacuation-node"
	AnnReason      = prefix + "evacuation-reason" // eviction, delete, scale-down
	AnnCompletedAt = prefix + "evacuation-completed-at"
	// AnnStartedBy "other" marks an evacuation the webhook found running (kubectl emqx evacuate,
	// another tool): it times the hold, and leaves the evacuation to whoever started it.
	AnnStartedBy = prefix + "evacuation-started-by"
	// AnnLastRequest: the last removal request for a pod the webhook evacuates (written at most
	// every lastRequestEvery): when none has come for abandon-after since its node became empty,
	// the removal was abandoned.
	AnnLastRequest = prefix + "last-request-at"
	// AnnScaleGeneration: the StatefulSet's generation before the scale-down that started the
	// evacuation; a withdrawal can only show in a later generation.
	AnnScaleGeneration = prefix + "scale-down-generation"
	// On a pod whose EMQX API did not answer: when that began.
	AnnUnreachableSince = prefix + "api-unreachable-since"
	// On a pod waiting for another evacuation (the concurrency limit): since when.
	AnnWaitingSince = prefix + "waiting-since"
	// On a StatefulSet/ReplicaSet: pods removed while evacuated (name=uid,...), and the last touch
	// that made its controller resync.
	AnnEvacuatedPods = prefix + "evacuated-pods"
	AnnRequeuedAt    = prefix + "requeued-at"
	// Per-StatefulSet settings.
	AnnConnRate          = prefix + "conn-evict-rate"
	AnnSessRate          = prefix + "sess-evict-rate"
	AnnWaitHealthCheck   = prefix + "wait-health-check"
	AnnWaitTakeover      = prefix + "wait-takeover"
	AnnTimeout           = prefix + "evacuation-timeout"
	AnnAbandonAfter      = prefix + "abandon-after"
	AnnScaleDown         = prefix + "scale-down" // "strict": deny scale-downs until the victims are empty
	AnnCredentialsSecret = cluster.AnnCredentialsSecret
)

// StartedByOther is AnnStartedBy's value for evacuations the webhook did not start.
const StartedByOther = "other"

// Reasons are the ways a decision went, as Events, log lines and the metric's reason label.
const (
	ReasonNotEMQX          = "NotEMQX"
	ReasonTerminating      = "PodTerminating"
	ReasonNamespaceGone    = "NamespaceTerminating"
	ReasonOwnerGone        = "OwnerDeleting"
	ReasonNotInCache       = "PodNotInCache"
	ReasonUIDMismatch      = "UIDPreconditionMismatch"
	ReasonBypass           = "EvacuationBypassed"
	ReasonNotStarted       = "PodNotRunning"
	ReasonNodeNotRunning   = "NodeNotRunning"
	ReasonEmpty            = "NodeEmpty"
	ReasonEvacuated        = "EvacuationCompleted"
	ReasonTimedOut         = "EvacuationTimedOut"
	ReasonUnreachable      = "EMQXUnreachable"
	ReasonNoTarget         = "NoNodeToMigrateTo"
	ReasonStarted          = "EvacuationStarted"
	ReasonRebalanceStopped = "RebalanceStopped"
	ReasonEvacuating       = "Evacuating"
	ReasonWaiting          = "WaitingForOtherEvacuation"
	ReasonLimitExceeded    = "ConcurrencyLimitExceeded"
)

// Config holds the webhook's global defaults; StatefulSet annotations override some per cluster.
type Config struct {
	ConnEvictRate     int64          // 0: EMQX's default
	SessEvictRate     int64          // 0: EMQX's default
	WaitHealthCheck   *time.Duration // nil: EMQX's default (60 s)
	WaitTakeover      *time.Duration // nil: EMQX's default (60 s)
	EvacuationTimeout time.Duration  // then the removal is allowed anyway
	AbandonAfter      time.Duration  // no removal request this long after the node became empty: the evacuation is stopped
	UnreachableGrace  time.Duration  // EMQX API down this long: allow
	MaxConcurrent     int            // evacuations at once per EMQX cluster
	// DecisionTimeout bounds one decision's EMQX calls, well inside the API server's admission
	// timeout (10 s; annotation writes get 2 s more): a timed-out webhook call is allowed under
	// failurePolicy Ignore.
	DecisionTimeout time.Duration
}

// DefaultConfig is the webhook's default configuration.
func DefaultConfig() Config {
	return Config{EvacuationTimeout: 30 * time.Minute, AbandonAfter: 5 * time.Minute, UnreachableGrace: time.Minute, MaxConcurrent: 1, DecisionTimeout: 6 * time.Second}
}

// Verdict is the answer to a removal (or scale-down) request.
type Verdict struct {
	Allowed  bool
	Reason   string
	Message  string
	Warnings []string
}

// Messages carry EMQX-provided text (node names, error messages): escaped and bounded, as they are
// shown by kubectl after the API server's prefix.
const maxMessage = 1024

func allow(reason, msg string) Verdict {
	return Verdict{Allowed: true, Reason: reason, Message: emqx.Printable(msg, maxMessage)}
}
func hold(reason, msg string) Verdict {
	return Verdict{Reason: reason, Message: emqx.Printable(msg, maxMessage)}
}

// Gate makes the decisions. Its clients, recorder and clock are injected.
type Gate struct {
	Matcher  Matcher              // which pods are EMQX
	Client   client.Client        // cached reads; writes annotations
	Kube     kubernetes.Interface // uncached reads of the ConfigMaps and Secrets a pod's environment names (nil: none)
	EMQX     Connector
	Recorder record.EventRecorder
	Clock    clock.PassiveClock
	Config   Config
	Log      logr.Logger
	Metrics  *Metrics

	locks sync.Map // per EMQX cluster: a semaphore; decisions that may start an evacuation run one at a time
	marks marks    // first-seen times of timed states, in case an annotation write fails
}

// lock serialises decisions about one EMQX cluster within this replica, so concurrent requests
// (a scale-down and the controller's deletions) neither start twice nor exceed the concurrency
// limit. It waits only as long as ctx allows. Replicas are not coordinated: EMQX's
// already_started keeps a node from starting twice.
func (g *Gate) lock(ctx context.Context, pod *corev1.Pod) (func(), bool) {
	m, _ := g.locks.LoadOrStore(ClusterKey(pod), make(chan struct{}, 1))
	sem := m.(chan struct{})
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, true
	case <-ctx.Done():
		return nil, false
	}
}

// bounded gives a decision its deadline.
func (g *Gate) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.Config.DecisionTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, g.Config.DecisionTimeout)
}

// Removal decides whether an EMQX pod may be removed (evicted or deleted) now. dryRun answers
// without side effects.
func (g *Gate) Removal(ctx context.Context, pod *corev1.Pod, dryRun bool, cause string) Verdict {
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	v := g.removal(ctx, pod, dryRun, cause, nil, nil)
	g.Metrics.observe(cause, v)
	if !dryRun {
		g.noteRequest(ctx, pod)
	}
	if v.Reason != ReasonNotEMQX {
		g.Log.Info("removal decided", "pod", pod.Namespace+"/"+pod.Name, "cause", cause, "allowed", v.Allowed, "reason", v.Reason, "message", v.Message, "dryRun", dryRun)
	}
	return v
}

// removal decides; extra annotations go on the pod if an evacuation is started. replicas is what
// the pod's StatefulSet is being scaled down to, when a scale-down asks (nil: its spec says).
func (g *Gate) removal(ctx context.Context, pod *corev1.Pod, dryRun bool, cause string, extra map[string]*string, replicas *int32) (v Verdict) {
	answered := false // EMQX was asked and answered
	defer func() {
		if dryRun {
			return
		}
		// EMQX answered as it should: forget an earlier failure. (A decision that never asked it,
		// such as one that timed out waiting for the cluster's lock, proves nothing.)
		if answered && v.Reason != ReasonUnreachable {
			g.clearMark(ctx, pod, AnnUnreachableSince)
		}
		// A wait for another evacuation ends with any other answer.
		if v.Reason != ReasonWaiting {
			g.clearMark(ctx, pod, AnnWaitingSince)
		}
	}()
	if !g.Matcher.Match(pod.Labels) {
		return allow(ReasonNotEMQX, "not an EMQX pod")
	}
	if pod.DeletionTimestamp != nil {
		return allow(ReasonTerminating, "the pod is already terminating")
	}
	if g.namespaceTerminating(ctx, pod.Namespace) {
		return g.wayOut(pod, dryRun, ReasonNamespaceGone, "namespace %s is being deleted: not holding its EMQX pods", pod.Namespace)
	}
	owner, gone := g.ownerOf(ctx, pod)
	if gone != "" {
		// helm uninstall, kubectl delete sts: the garbage collector removes the pods; evacuating
		// them into each other one by one would only delay the inevitable.
		return g.wayOut(pod, dryRun, ReasonOwnerGone, "%s: not holding its pods", gone)
	}
	if pod.Annotations[AnnBypass] == "true" || owner != nil && owner.GetAnnotations()[AnnBypass] == "true" {
		return g.wayOut(pod, dryRun, ReasonBypass, "bypass annotation %s=true: removed without evacuation", AnnBypass)
	}
	// Readiness is no evidence: a pod turns NotReady *because* it evacuates (emqx-operator's
	// on-serving gate, an availability_check probe). Only a pod whose containers never started or
	// have ended holds nothing; for every other pod EMQX decides.
	if !cluster.Running(pod) {
		return g.wayOut(pod, dryRun, ReasonNotStarted, "pod is %s with no running container: its EMQX holds no client", podPhase(pod))
	}
	unlock, ok := g.lock(ctx, pod)
	if !ok {
		return hold(ReasonWaiting, "another decision about this EMQX cluster is in progress; retrying is safe")
	}
	defer unlock()
	conn, err := g.EMQX.Connect(ctx, pod)
	if err != nil {
		return g.unreachable(ctx, pod, dryRun, err)
	}
	nodes, err := conn.Nodes(ctx)
	if err != nil {
		g.EMQX.Forget(pod)
		return g.unreachable(ctx, pod, dryRun, err)
	}
	node, expected, ok := cluster.FindNode(ctx, g.Kube, nodes, pod)
	if !ok {
		// A running EMQX cluster that does not list the pod's node is no proof that the node holds
		// nothing (a name we cannot recognise, a node still joining): treated like an API failure.
		return g.unreachable(ctx, pod, dryRun, fmt.Errorf("EMQX lists no node of pod %s (its environment names %s)", pod.Name, expected))
	}
	if !node.Running() {
		return g.wayOut(pod, dryRun, ReasonNodeNotRunning, "EMQX lists the pod's node %s as %s: nothing to evacuate", node.Node, node.NodeStatus)
	}
	gs, err := conn.GlobalStatus(ctx)
	if err != nil {
		g.EMQX.Forget(pod)
		return g.unreachable(ctx, pod, dryRun, err)
	}
	answered = true
	ev, evacuating := gs.Evacuation(node.Node)
	switch {
	case evacuating && evacuation.SafeToRemove(ev):
		if !dryRun {
			_ = g.recordEvacuated(ctx, pod, owner) // logged; the controller retries it
		}
		return allow(ReasonEvacuated, fmt.Sprintf("EMQX node %s is evacuated: no connection and no session left", node.Node))
	case !evacuating && node.LiveConnections == 0 && node.Connections == 0:
		return allow(ReasonEmpty, fmt.Sprintf("EMQX node %s holds no connection and no session", node.Node))
	case evacuating:
		return g.evacuating(ctx, pod, owner, dryRun, node, ev)
	}
	return g.start(ctx, pod, owner, dryRun, cause, extra, conn, nodes, gs, node, replicas)
}

// NotInCache answers an eviction of a pod the synced cache does not have.
func (g *Gate) NotInCache(ns, name string) Verdict {
	v := allow(ReasonNotInCache, "pod not in the webhook's cache: the API server decides (it does not exist, or is too new to hold clients)")
	g.Metrics.observe("eviction", v)
	g.Log.Info("removal decided", "pod", ns+"/"+name, "cause", "eviction", "allowed", true, "reason", v.Reason)
	return v
}

// ReadFailed answers a removal whose pod the webhook could not read: held like an EMQX API that
// does not answer, then, past the grace period, allowed with a Warning Event. Never a silent allow.
func (g *Gate) ReadFailed(_ context.Context, ns, name, cause string, err error) Verdict {
	now := g.Clock.Now()
	key := types.UID("read:" + ns + "/" + name)
	since := g.marks.firstSeen(key, "read", now)
	var v Verdict
	if now.Sub(since) >= g.Config.UnreachableGrace {
		g.marks.forget(key, "read")
		v = allow(ReasonUnreachable, fmt.Sprintf("the webhook could not read pod %s/%s for %v (%s): removing it without evacuation",
			ns, name, now.Sub(since).Round(time.Second), shorten(err)))
		g.event(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, corev1.EventTypeWarning, ReasonUnreachable, "%s", v.Message)
	} else {
		v = hold(ReasonUnreachable, fmt.Sprintf("the webhook could not read pod %s/%s (%s); the removal is held for up to %v, then allowed; retrying is safe",
			ns, name, shorten(err), g.Config.UnreachableGrace))
	}
	g.Metrics.observe(cause, v)
	g.Log.Info("removal decided", "pod", ns+"/"+name, "cause", cause, "allowed", v.Allowed, "reason", v.Reason, "message", v.Message)
	return v
}

// evacuating holds the removal while the evacuation runs, up to the time limit.
func (g *Gate) evacuating(ctx context.Context, pod *corev1.Pod, owner client.Object, dryRun bool, node emqx.Node, ev emqx.Evacuation) Verdict {
	now := g.Clock.Now()
	if pod.Annotations[AnnStartedAt] == "" && !dryRun {
		// Started by someone else (kubectl emqx evacuate): the clock starts now, and the pod is
		// marked so that the controller leaves that evacuation to whoever started it.
		g.annotate(ctx, pod, map[string]*string{AnnNode: &node.Node, AnnStartedBy: ptr(StartedByOther)})
	}
	started := g.markedSince(ctx, pod, AnnStartedAt, dryRun)
	limit := g.timeout(owner)
	if now.Sub(started) >= limit {
		return g.wayOut(pod, dryRun, ReasonTimedOut, "the evacuation of EMQX node %s has run %v, past its limit of %v: removing the pod anyway (%d connections, %d sessions left)",
			node.Node, now.Sub(started).Round(time.Second), limit, ev.Stats.CurrentConnected, ev.Stats.CurrentSessions)
	}
	left := evacuation.Remaining(ev, g.waits(owner))
	return hold(ReasonEvacuating, fmt.Sprintf("EMQX node %s is evacuating (%s): %d connections and %d sessions left (about %v); retrying is safe",
		node.Node, ev.State, ev.Stats.CurrentConnected, ev.Stats.CurrentSessions, left))
}

// start starts an evacuation, within the concurrency limit, and holds the removal.
func (g *Gate) start(ctx context.Context, pod *corev1.Pod, owner client.Object, dryRun bool, cause string, extra map[string]*string,
	conn EMQX, nodes []emqx.Node, gs emqx.GlobalStatus, node emqx.Node, replicas *int32) Verdict {
	var busy []string
	for _, e := range gs.Evacuations {
		if !evacuation.SafeToRemove(e) {
			busy = append(busy, e.Node)
		}
	}
	if len(busy) >= max(1, g.Config.MaxConcurrent) {
		sort.Strings(busy)
		now := g.Clock.Now()
		since := g.markedSince(ctx, pod, AnnWaitingSince, dryRun)
		// The limit has a way out too: an evacuation that never ends must not hold every other
		// removal for ever. After the evacuation time limit, this one starts anyway.
		if limit := g.timeout(owner); now.Sub(since) < limit {
			return hold(ReasonWaiting, fmt.Sprintf("EMQX node %s holds %d connections and %d sessions; it will be evacuated once %s finishes (at most %d evacuation at a time); retrying is safe",
				node.Node, node.LiveConnections, node.Connections, strings.Join(busy, ", "), max(1, g.Config.MaxConcurrent)))
		}
		if !dryRun {
			g.event(pod, corev1.EventTypeWarning, ReasonLimitExceeded, "waited %v for %s to finish: evacuating %s anyway, beyond --max-concurrent-evacuations",
				now.Sub(since).Round(time.Second), strings.Join(busy, ", "), node.Node)
		}
	}
	// The rebalances are stopped below, before the evacuation starts: their donors are free then.
	free := gs
	free.Rebalances = nil
	req := g.request(owner, evacuation.Targets(nodes, free, g.going(ctx, pod, owner, replicas, nodes, node.Node)))
	if len(req.MigrateTo) == 0 {
		return g.wayOut(pod, dryRun, ReasonNoTarget, "no other running EMQX node can take the sessions of %s: removing it without evacuation", node.Node)
	}
	if dryRun {
		return hold(ReasonStarted, fmt.Sprintf("EMQX node %s holds %d connections and %d sessions: the pod would be evacuated first (dry run)", node.Node, node.LiveConnections, node.Connections))
	}
	// A removal comes before a rebalance: a rebalance's donors refuse to evacuate
	// (eviction_agent_busy) and cannot take sessions. Rebalances are ephemeral; run one again
	// once the removal is done.
	for _, rb := range gs.Rebalances {
		if err := conn.StopRebalance(ctx, rb.CoordinatorNode); err != nil && !emqx.IsNotStarted(err) {
			g.EMQX.Forget(pod)
			return g.unreachable(ctx, pod, dryRun, fmt.Errorf("stop the rebalance coordinated by %s before evacuating %s: %w", rb.CoordinatorNode, node.Node, err))
		}
		g.event(pod, corev1.EventTypeNormal, ReasonRebalanceStopped, "stopped the rebalance coordinated by %s: evacuating EMQX node %s for the removal of pod %s comes first",
			rb.CoordinatorNode, node.Node, pod.Name)
		g.Log.Info("rebalance stopped for a removal", "coordinator", rb.CoordinatorNode, "pod", pod.Namespace+"/"+pod.Name)
		g.Metrics.action(ReasonRebalanceStopped)
	}
	err := conn.StartEvacuation(ctx, node.Node, req)
	if emqx.IsAlreadyStarted(err) {
		// Someone (another replica, kubectl emqx) started it a moment ago.
		return hold(ReasonEvacuating, fmt.Sprintf("EMQX node %s is evacuating (just started): %d connections and %d sessions left; retrying is safe",
			node.Node, node.LiveConnections, node.Connections))
	}
	if emqx.IsNodesUnavailable(err) {
		// A target stopped taking sessions between our read and EMQX's check (it began evacuating,
		// donating or purging): the next retry computes the targets again. A wait like any other,
		// bounded by the evacuation time limit; EMQX answered, so this is no unreachable API.
		since := g.markedSince(ctx, pod, AnnWaitingSince, dryRun)
		if limit := g.timeout(owner); g.Clock.Now().Sub(since) >= limit {
			return g.wayOut(pod, dryRun, ReasonTimedOut, "EMQX refused every set of target nodes for %s for %v (%v): removing the pod without evacuation",
				node.Node, limit, err)
		}
		return hold(ReasonWaiting, fmt.Sprintf("EMQX node %s holds %d connections and %d sessions, and a node to move them to became unavailable (%s); retrying is safe",
			node.Node, node.LiveConnections, node.Connections, err))
	}
	if err != nil {
		// Unexpected answers (a busy node, an RPC error, a refusal) take the same way out as an API
		// that does not answer: held for the grace period, then allowed.
		g.EMQX.Forget(pod)
		return g.unreachable(ctx, pod, dryRun, fmt.Errorf("start evacuating %s: %w", node.Node, err))
	}
	g.marks.forget(pod.UID, AnnStartedAt)
	ann := map[string]*string{AnnStartedAt: ptr(g.Clock.Now().UTC().Format(time.RFC3339Nano)), AnnNode: &node.Node, AnnReason: &cause,
		AnnCompletedAt: nil, AnnWaitingSince: nil, AnnStartedBy: nil, AnnLastRequest: nil}
	for k, v := range extra {
		ann[k] = v
	}
	g.annotate(ctx, pod, ann)
	g.event(pod, corev1.EventTypeNormal, ReasonStarted, "evacuating EMQX node %s (%d connections, %d sessions) before the pod is removed (%s)", node.Node, node.LiveConnections, node.Connections, cause)
	return hold(ReasonStarted, fmt.Sprintf("EMQX node %s is evacuating: %d connections and %d sessions left (evacuation just started); retrying is safe",
		node.Node, node.LiveConnections, node.Connections))
}

// going is the node being evacuated and the nodes of the other pods its StatefulSet no longer
// wants (the other victims of a scale-down): sessions must not move into a node that goes next.
func (g *Gate) going(ctx context.Context, pod *corev1.Pod, owner client.Object, replicas *int32, nodes []emqx.Node, self string) map[string]bool {
	out := map[string]bool{self: true}
	sts, ok := owner.(*appsv1.StatefulSet)
	if !ok {
		return out
	}
	if replicas != nil {
		sts = sts.DeepCopy()
		sts.Spec.Replicas = replicas
	}
	var pods corev1.PodList
	if err := g.Client.List(ctx, &pods, client.InNamespace(pod.Namespace)); err != nil {
		return out // then only the node itself: EMQX moves sessions at most twice
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.UID == pod.UID || !metav1.IsControlledBy(p, sts) || cluster.Stays(sts, p.Name) {
			continue
		}
		if n, _, ok := cluster.FindNode(ctx, g.Kube, nodes, p); ok {
			out[n.Node] = true
		}
	}
	return out
}

// request is the evacuation request: global defaults, StatefulSet annotations, and the sessions
// migrated to targets.
func (g *Gate) request(owner client.Object, targets []string) emqx.EvacuationRequest {
	req := emqx.EvacuationRequest{MigrateTo: targets}
	if r := intAnnotation(owner, AnnConnRate, g.Config.ConnEvictRate); r > 0 {
		req.ConnEvictRate = &r
	}
	if r := intAnnotation(owner, AnnSessRate, g.Config.SessEvictRate); r > 0 {
		req.SessEvictRate = &r
	}
	req.WaitHealthCheck = durAnnotation(owner, AnnWaitHealthCheck, g.Config.WaitHealthCheck)
	req.WaitTakeover = durAnnotation(owner, AnnWaitTakeover, g.Config.WaitTakeover)
	return req
}

func (g *Gate) waits(owner client.Object) evacuation.Waits {
	w := evacuation.DefaultWaits
	if d := durAnnotation(owner, AnnWaitHealthCheck, g.Config.WaitHealthCheck); d != nil {
		w.HealthCheck = *d
	}
	if d := durAnnotation(owner, AnnWaitTakeover, g.Config.WaitTakeover); d != nil {
		w.Takeover = *d
	}
	return w
}

// lastRequestEvery bounds how often a pod's last removal request is written.
const lastRequestEvery = 30 * time.Second

// noteRequest records that the removal of a pod the webhook evacuates was asked for again: the
// controller abandons only evacuations whose removal nobody asks for any more.
func (g *Gate) noteRequest(ctx context.Context, pod *corev1.Pod) {
	if pod.Annotations[AnnReason] == "" || pod.DeletionTimestamp != nil {
		return
	}
	now := g.Clock.Now()
	if last, err := time.Parse(time.RFC3339Nano, pod.Annotations[AnnLastRequest]); err == nil && now.Sub(last) < lastRequestEvery && !last.After(now) {
		return
	}
	g.annotate(ctx, pod, map[string]*string{AnnLastRequest: ptr(now.UTC().Format(time.RFC3339Nano))})
}

// abandonAfter is how long after its node became empty an evacuation waits for its removal.
func (g *Gate) abandonAfter(owner client.Object) time.Duration {
	if d := durAnnotation(owner, AnnAbandonAfter, nil); d != nil && *d > 0 {
		return min(*d, MaxEvacuationTimeout)
	}
	return g.Config.AbandonAfter
}

// MaxEvacuationTimeout caps the per-StatefulSet evacuation time limit: no hold lasts longer.
const MaxEvacuationTimeout = 24 * time.Hour

func (g *Gate) timeout(owner client.Object) time.Duration {
	if d := durAnnotation(owner, AnnTimeout, nil); d != nil && *d > 0 {
		return min(*d, MaxEvacuationTimeout)
	}
	return g.Config.EvacuationTimeout
}

// unreachable: the EMQX API did not answer, or answered what it should not (the error carries
// EMQX's code and message). Hold for the grace period, then allow.
func (g *Gate) unreachable(ctx context.Context, pod *corev1.Pod, dryRun bool, err error) Verdict {
	now := g.Clock.Now()
	since := g.markedSince(ctx, pod, AnnUnreachableSince, dryRun)
	if now.Sub(since) >= g.Config.UnreachableGrace {
		return g.wayOut(pod, dryRun, ReasonUnreachable, "EMQX's API has failed for %v (%v): removing the pod without evacuation",
			now.Sub(since).Round(time.Second), shorten(err))
	}
	g.Log.Info("EMQX API failed", "pod", pod.Namespace+"/"+pod.Name, "error", err.Error())
	return hold(ReasonUnreachable, fmt.Sprintf("EMQX's API failed (%v); the removal is held for up to %v, then allowed; retrying is safe",
		shorten(err), g.Config.UnreachableGrace))
}

// markedSince is when the pod entered the state timed under key: the time recorded on the pod,
// else the first time this replica saw it (a write that failed does not restart the clock), which
// it records (not in a dry run).
func (g *Gate) markedSince(ctx context.Context, pod *corev1.Pod, key string, dryRun bool) time.Time {
	now := g.Clock.Now()
	if since, err := time.Parse(time.RFC3339Nano, pod.Annotations[key]); err == nil && !since.After(now) {
		return since
	}
	// None, unreadable, or in the future (a clock ahead, a hand edit): counted from when this
	// replica first saw it.
	if dryRun {
		return now
	}
	since := g.marks.firstSeen(pod.UID, key, now)
	g.annotate(ctx, pod, map[string]*string{key: ptr(since.UTC().Format(time.RFC3339Nano))})
	return since
}

// clearMark ends the state timed under key.
func (g *Gate) clearMark(ctx context.Context, pod *corev1.Pod, key string) {
	g.marks.forget(pod.UID, key)
	if pod.Annotations[key] != "" {
		g.annotate(ctx, pod, map[string]*string{key: nil})
	}
}

// wayOut allows a removal that is not safe, or not needed, and says so: Event and log line.
func (g *Gate) wayOut(pod *corev1.Pod, dryRun bool, reason, format string, args ...any) Verdict {
	msg := fmt.Sprintf(format, args...)
	if !dryRun {
		typ := corev1.EventTypeWarning
		if reason == ReasonNotStarted || reason == ReasonNodeNotRunning || reason == ReasonNamespaceGone || reason == ReasonOwnerGone {
			typ = corev1.EventTypeNormal
		}
		g.event(pod, typ, reason, "%s", msg)
	}
	return allow(reason, msg)
}

func (g *Gate) event(obj client.Object, typ, reason, format string, args ...any) {
	if g.Recorder != nil {
		g.Recorder.Event(obj, typ, reason, emqx.Printable(fmt.Sprintf(format, args...), maxMessage))
	}
}

// recordEvacuated notes, on the owner, that the pod leaves evacuated: if it comes back (same name,
// new UID) with the evacuation persisted on its volume, the controller reopens it.
// The admission path tries once; the controller, which also calls it when it sees the node empty,
// retries until the record lands: a recreated pod must not keep a persisted evacuation because a
// write timed out.
func (g *Gate) recordEvacuated(ctx context.Context, pod *corev1.Pod, owner client.Object) error {
	if pod.Annotations[AnnCompletedAt] == "" {
		g.event(pod, corev1.EventTypeNormal, ReasonEvacuated, "EMQX node %s is empty: the pod may go", pod.Annotations[AnnNode])
		g.annotate(ctx, pod, map[string]*string{AnnCompletedAt: ptr(g.Clock.Now().UTC().Format(time.RFC3339Nano))})
	}
	return g.setRecord(ctx, owner, pod.Name, string(pod.UID))
}

// setRecord sets (uid "" removes) the pod's entry in its owner's record of evacuated pods.
func (g *Gate) setRecord(ctx context.Context, owner client.Object, pod, uid string) error {
	if owner == nil {
		return nil
	}
	recs := parseRecords(owner.GetAnnotations()[AnnEvacuatedPods])
	if recs[pod] == uid {
		return nil
	}
	if uid == "" {
		delete(recs, pod)
	} else {
		recs[pod] = uid
	}
	var val *string
	if len(recs) > 0 {
		val = ptr(formatRecords(recs))
	}
	return g.patchAnnotations(ctx, owner, map[string]*string{AnnEvacuatedPods: val})
}

func parseRecords(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

func formatRecords(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// annotate merges annotations into the pod (nil removes); failures are logged: the decision
// stands, and the next request rebuilds what it needs from EMQX.
func (g *Gate) annotate(ctx context.Context, pod *corev1.Pod, ann map[string]*string) {
	_ = g.patchAnnotations(ctx, pod, ann) // logged; the decision stands on what was seen (and the in-memory marks)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	for k, v := range ann {
		if v == nil {
			delete(pod.Annotations, k)
		} else {
			pod.Annotations[k] = *v
		}
	}
}

// patchAnnotations writes with a context of its own: a decision whose deadline passed (EMQX
// hanging) must still record what it saw, or the grace period would never start.
func (g *Gate) patchAnnotations(ctx context.Context, obj client.Object, ann map[string]*string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err := g.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		g.Log.Error(err, "annotate", "object", obj.GetNamespace()+"/"+obj.GetName())
		return fmt.Errorf("annotate %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

func (g *Gate) namespaceTerminating(ctx context.Context, name string) bool {
	var ns corev1.Namespace
	if err := g.Client.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		return false
	}
	return ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating
}

// owner is the pod's StatefulSet or ReplicaSet, from the cache, or nil.
func (g *Gate) owner(ctx context.Context, pod *corev1.Pod) client.Object {
	obj, _ := g.ownerOf(ctx, pod)
	return obj
}

// ownerOf is the pod's StatefulSet or ReplicaSet, from the cache, or nil; gone says why the pod's
// owner is going or gone (being deleted, deleted, or replaced by another of the same name), "" when
// it is not.
func (g *Gate) ownerOf(ctx context.Context, pod *corev1.Pod) (client.Object, string) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return nil, ""
	}
	var obj client.Object
	switch ref.Kind {
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "ReplicaSet":
		obj = &appsv1.ReplicaSet{}
	default:
		return nil, ""
	}
	kind := strings.ToLower(ref.Kind)
	err := g.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Sprintf("its %s %s is gone", kind, ref.Name)
	case err != nil:
		return nil, ""
	case obj.GetUID() != ref.UID:
		return nil, fmt.Sprintf("its %s %s was deleted (one of that name is another object now)", kind, ref.Name)
	case obj.GetDeletionTimestamp() != nil:
		return obj, fmt.Sprintf("its %s %s is being deleted", kind, ref.Name)
	}
	return obj, ""
}

func intAnnotation(obj client.Object, key string, def int64) int64 {
	if obj != nil {
		var v int64
		if _, err := fmt.Sscan(obj.GetAnnotations()[key], &v); err == nil && v > 0 {
			return v
		}
	}
	return def
}

// durAnnotation reads a duration annotation: seconds as in EMQX ("10") or a duration ("10s").
func durAnnotation(obj client.Object, key string, def *time.Duration) *time.Duration {
	if obj != nil {
		if d, err := evacuation.ParseWait(obj.GetAnnotations()[key]); err == nil {
			return &d
		}
	}
	return def
}

func ptr[T any](v T) *T { return &v }

func podPhase(pod *corev1.Pod) string {
	if pod.Status.Phase == "" {
		return "Pending"
	}
	return string(pod.Status.Phase)
}

// shorten keeps error text in one readable, escaped line for messages shown by kubectl.
func shorten(err error) string { return emqx.Printable(err.Error(), 300) }

func httpClient(timeout time.Duration) *http.Client { return &http.Client{Timeout: timeout} }
