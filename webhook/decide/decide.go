package decide

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/utils/ptr"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// The removal decision is a pure function: Decide reads a Snapshot and returns a Decision (a
// verdict and the effects that go with it) and never touches the cluster, EMQX or the clock. Facts
// that cost a call are gathered only when a decision asks for them (Decision.Need): the gate fills
// them in and decides again. README's decision table is this file, row by row.

// Snapshot is everything a removal decision reads.
type Snapshot struct {
	Now    time.Time
	Cause  string // eviction, delete, scale-down
	DryRun bool
	Pod    *corev1.Pod // never modified by Decide

	EMQXPod              bool          // the matcher calls it an EMQX pod
	NamespaceTerminating bool          // its namespace is being deleted
	Owner                metav1.Object // its StatefulSet or ReplicaSet, nil when none
	OwnerGone            string        // why its owner is going or gone, "" when it is not
	OwnerMissing         bool          // gone rather than being deleted
	Requester            string        // who asks for the removal (the admission request's user), "" when unknown
	Settings             Settings      // the Config for its owner
	// Budget names the PodDisruptionBudget that refuses this eviction now ("" when none does, and
	// for removals that are not evictions): the API server would refuse it after the webhook.
	Budget string
	// Timed are the pod's timed states (AnnUnreachableSince, AnnWaitingSince, AnnStartedAt).
	Timed map[string]TimedState
	// Extra annotations an evacuation started by this decision carries (a scale-down's generation).
	Extra map[string]*string

	EMQX    *EMQXState      // nil until asked for (NeedEMQX)
	Leaving map[string]bool // nil until asked for (NeedTargets): EMQX nodes of the pods that go
	// Returning are EMQX nodes that cannot take sessions now (stopped, or evacuating) whose pods the
	// StatefulSet keeps: restarting or recreated elsewhere (a drain), so they take sessions again
	// soon (asked with NeedTargets).
	Returning []string
	// Going are EMQX nodes of the cluster's other pods being removed now (terminating, or let go a
	// moment ago): no session goes to them (asked with NeedTargets).
	Going map[string]bool
	// Departing are the pods among Going this replica let go a moment ago that still run: the
	// Service may still send clients to their nodes (asked with NeedTargets).
	Departing []string
	Started   *StartOutcome // nil until the evacuation was asked to start (NeedStart)
	// LeavesForGood: the pod's ordinal leaves its StatefulSet (a scale-down's victim), so its
	// node's durable-storage site goes with it.
	LeavesForGood bool
	Storage       *StorageState // nil until asked for (NeedStorage)
	Moved         *error        // nil until the replicas were asked to move (NeedMove); then EMQX's answer
}

// StorageState is what durable storage says about the pod's node, or why it could not be read.
type StorageState struct {
	evacuation.Storage
	Err error
}

// TimedState is when a timed state began, as far as this replica knows.
type TimedState struct {
	Since time.Time
	// OnPod: Since comes from the pod's annotation; otherwise from this replica's memory (a write
	// that failed), and the decision that uses it records it.
	OnPod bool
	Known bool // false: the state has not begun; Since is Now
}

// EMQXState is what EMQX answered about the pod's node.
type EMQXState struct {
	Busy     bool  // another decision about this cluster holds its lock: EMQX was not asked
	Err      error // the API failed, answered what it should not, or lists no node of the pod
	Stale    bool  // with Err: the cached connection should be dropped
	Answered bool  // EMQX answered every question (nodes and global status)
	Nodes    []emqx.Node
	Node     emqx.Node // the pod's node
	Status   emqx.GlobalStatus
	Durable  evacuation.Durability // how to read the evacuations' session counts (asked when any runs)
	// Shared: the answers may be another decision's, up to --emqx-shared-reads old; with Err, the
	// listing that lacks the pod's node was (a failure itself is never shared).
	Shared bool
}

// safe is the one rule for an evacuation of the cluster (pkg/evacuation.SafeToRemove), its node as
// EMQX lists it now.
func (e *EMQXState) safe(ev emqx.Evacuation) bool {
	node, _ := cluster.NodeByName(e.Nodes, ev.Node)
	return evacuation.SafeToRemove(ev, node, e.Durable)
}

// confirmed: an allow that rests on shared answers (up to --emqx-shared-reads old) is decided
// again on EMQX's answers now. A node that looked empty may have taken clients since (rows 6–8).
func (e *EMQXState) confirmed(d Decision) Decision {
	if e.Shared && d.Need == NeedNothing && d.Verdict.Allowed {
		return Decision{Need: NeedFresh}
	}
	return d
}

// StartOutcome is how asking EMQX to evacuate went.
type StartOutcome struct {
	Stopped []string // rebalances stopped first, by coordinator
	StopErr error    // a rebalance could not be stopped: the evacuation was not asked for
	Err     error    // EMQX's answer to the start; nil: started
}

// Need names the facts a decision asks for before it can be final.
type Need int

// Facts a decision may ask for.
const (
	NeedNothing Need = iota // the decision is final
	NeedEMQX                // EMQX's nodes and global status (under the cluster's lock)
	NeedTargets             // the nodes of the other pods that go
	NeedStart               // stop Start.Rebalances and start Start.Node's evacuation
	NeedStop                // the controller: stop Action.Stop's evacuation
	NeedStorage             // durable storage's sites and DBs (a core that leaves for good)
	NeedMove                // ask EMQX for Decision.Moves (replica sets per DB)
	NeedFresh               // EMQX's nodes and status again, not shared: an allow or a missing node rests on them
)

// Decision is a verdict and its effects, or a request for more facts.
type Decision struct {
	Verdict Verdict
	Effects []Effect
	Need    Need
	Start   *StartRequest       // with NeedStart
	Moves   map[string][]string // with NeedMove: the sites each DB keeps its replicas on
}

// StartRequest is the evacuation a decision starts: the rebalances it stops first, then the node.
type StartRequest struct {
	Rebalances []string // coordinators
	Node       string
	Request    emqx.EvacuationRequest
}

// Decide is the removal decision.
func Decide(s Snapshot) Decision {
	d := decide(s)
	if d.Need != NeedNothing {
		return d
	}
	// EMQX answered as it should: forget an earlier failure. (A decision that never asked it,
	// such as one that waited for the cluster's lock, proves nothing.) A wait for another
	// evacuation ends with any other answer.
	if s.EMQX != nil && s.EMQX.Answered && d.Verdict.Reason != ReasonUnreachable && s.known(d, AnnUnreachableSince) {
		d.Effects = append(d.Effects, ForgetStart{Key: AnnUnreachableSince})
	}
	if d.Verdict.Reason != ReasonWaiting && d.Verdict.Reason != ReasonWaitingForTarget && s.known(d, AnnWaitingSince) {
		d.Effects = append(d.Effects, ForgetStart{Key: AnnWaitingSince})
	}
	if d.Verdict.Reason != ReasonReplicasMoving && s.known(d, AnnReplicasMovingSince) {
		d.Effects = append(d.Effects, ForgetStart{Key: AnnReplicasMovingSince})
	}
	if d.Verdict.Reason != ReasonEvacuating && d.Verdict.Reason != ReasonStalled && s.known(d, AnnStalledSince) {
		d.Effects = append(d.Effects, ForgetStart{Key: AnnStalledSince})
	}
	return d
}

func decide(s Snapshot) Decision {
	pod := s.Pod
	switch {
	case !s.EMQXPod: // row 1
		return final(Allow(ReasonNotEMQX, "")) // the answer of a pod that does not exist too (NotInCache)
	case pod.DeletionTimestamp != nil: // row 1
		return final(Allow(ReasonTerminating, "the pod is already terminating"))
	case s.NamespaceTerminating: // row 2
		return s.allowWithEvent(
			ReasonNamespaceGone,
			"namespace %s is being deleted: not holding its EMQX pods",
			pod.Namespace,
		)
	case s.OwnerGone != "" && s.OwnerMissing && !garbageCollector(s.Requester): // row 2
		// Someone other than the garbage collector removes a pod whose owner is missing: after an
		// uninstall that is late, but an owner reference pointed at nothing is a way around the
		// evacuation. Let go like row 2, with a Warning.
		return s.allowWithEvent(
			ReasonOwnerMissing,
			"%s and %s removes the pod: not holding it. If nobody deleted its owner, "+
				"its owner reference was pointed away: the pod leaves without evacuation",
			s.OwnerGone,
			orSomeone(s.Requester),
		)
	case s.OwnerGone != "": // row 2
		// helm uninstall, kubectl delete sts: the garbage collector removes the pods; evacuating
		// them into each other one by one would only delay the inevitable.
		return s.allowWithEvent(ReasonOwnerGone, "%s: not holding its pods", s.OwnerGone)
	case s.Requester == garbageCollectorAccount && len(pod.OwnerReferences) > 0: // row 2
		// The garbage collector deletes a dependent only once its owners are gone or being deleted:
		// its word is enough, whatever this replica's cache shows yet (an uninstall's deletions can
		// arrive before the owner's own deletion reaches the cache). Only its own account: where
		// controllers share one identity, the StatefulSet controller's deletions look the same.
		return s.allowWithEvent(
			ReasonOwnerGone,
			"the garbage collector removes the pod: its owner is gone or being deleted; "+
				"not holding it",
		)
	case pod.Annotations[AnnBypass] == "true" || s.Owner != nil &&
		s.Owner.GetAnnotations()[AnnBypass] == "true": // row 3
		return s.allowWithEvent(ReasonBypass, "bypass annotation %s=true: removed without evacuation", AnnBypass)
	case !cluster.Running(pod): // row 4
		// Readiness is no evidence: a pod turns NotReady *because* it evacuates (emqx-operator's
		// on-serving gate, an availability_check probe). Only a pod whose containers never started
		// or have ended holds nothing; for every other pod EMQX decides.
		return s.allowWithEvent(
			ReasonNotStarted,
			"pod is %s with no running container: its EMQX holds no client",
			podPhase(pod),
		)
	case s.EMQX == nil:
		return Decision{Need: NeedEMQX}
	}
	e := s.EMQX
	switch {
	case e.Busy: // row 11
		// A wait like the others, with the same timed end: a flood of reviews for one cluster must
		// not hold its real removals for ever.
		since, recordStart := s.timed(AnnWaitingSince)
		if s.Now.Sub(since) >= s.Settings.Timeout {
			return s.allowWithEvent(ReasonTimedOut, "other decisions about this EMQX cluster kept it busy for %v: "+
				"removing the pod without evacuation",
				s.Now.Sub(since).Round(time.Second)).
				with(recordStart...)
		}
		return Decision{
			Verdict: Hold(ReasonWaiting, "another decision about this EMQX cluster is in progress; retrying is safe"),
			Effects: recordStart,
		}
	case e.Err != nil && e.Shared: // row 5
		// EMQX listed no node of the pod in an answer up to --emqx-shared-reads old: the node may
		// have joined since (pods created together, a decision read moments before). Asked now.
		return Decision{Need: NeedFresh}
	case e.Err != nil: // row 5
		return s.unreachable(e.Err, e.Stale)
	case !e.Node.Running(): // row 6
		return e.confirmed(s.allowWithEvent(
			ReasonNodeNotRunning,
			"EMQX lists the pod's node %s as %s: nothing to evacuate",
			e.Node.Node,
			e.Node.NodeStatus,
		))
	}
	node := e.Node
	ev, evacuating := e.Status.Evacuation(node.Node)
	switch {
	case evacuating && e.safe(ev): // row 7
		return e.confirmed(s.unlessReplicas(
			node,
			Decision{Verdict: Allow(ReasonEvacuated, evacuatedMessage(node.Node, ev, e.Durable)),
				Effects: evacuatedEffects(pod, s.Now)},
		))
	case !evacuating && node.LiveConnections == 0 && node.Connections == 0: // row 8
		return s.empty(node)
	case evacuating: // rows 9 and 10
		return s.evacuating(node, ev)
	}
	if s.Budget != "" { // row 10b
		return final(
			Hold(
				ReasonBudget,
				fmt.Sprintf("PodDisruptionBudget %s allows no disruption of pod %s now: the eviction would be "+
					"refused anyway, so EMQX node %s is not evacuated; retrying is safe",
					s.Budget, pod.Name, node.Node),
			),
		)
	}
	if m := s.Timed[AnnAbandonedAt]; m.Known { // row 10c
		if at, again := m.Since, m.Since.Add(s.Settings.AbandonAfter); s.Now.Before(again) {
			return final(
				Hold(
					ReasonCoolingDown,
					fmt.Sprintf(
						"the evacuation of EMQX node %s was abandoned at %s (nobody asked to "+
							"remove the pod for %v after its node was empty); "+
							"a new one starts from %s; retrying is safe",
						node.Node,
						at.UTC().Format(time.RFC3339),
						s.Settings.AbandonAfter,
						again.UTC().Format(time.RFC3339),
					),
				),
			)
		}
	}
	return s.start(node) // rows 11 to 14
}

// empty lets the pod of an empty node go (row 8), unless clients are on the move in its cluster
// (row 8c): the clients another evacuation evicts, or a rebalance sends this way, reconnect through
// the Service to any node that takes them, this one too, and their sessions follow them. Then the
// removal waits until they have settled, timed like the other waits: past the evacuation time
// limit the empty node goes anyway, with a Warning Event.
func (s Snapshot) empty(node emqx.Node) Decision {
	allow := s.EMQX.confirmed(s.unlessReplicas(
		node,
		final(Allow(ReasonEmpty, fmt.Sprintf("EMQX node %s holds no connection and no session", node.Node))),
	))
	movers := s.EMQX.moving(node.Node)
	if len(movers) == 0 {
		return allow
	}
	since, recordStart := s.timed(AnnWaitingSince)
	waited := s.Now.Sub(since)
	if waited < s.Settings.Timeout {
		return Decision{Verdict: Hold(ReasonWaiting, fmt.Sprintf("EMQX node %s holds no client now, but %s "+
			"moves clients that may reconnect to it: its removal waits until they have settled, at most %v "+
			"more; retrying is safe", node.Node, strings.Join(movers, " and "),
			(s.Settings.Timeout-waited).Round(time.Second))), Effects: recordStart}
	}
	if allow.Verdict.Allowed {
		allow.Effects = append(allow.Effects, NewEvent(corev1.EventTypeWarning, ReasonEmpty,
			"waited %v for %s to settle: removing empty EMQX node %s anyway", waited.Round(time.Second),
			strings.Join(movers, " and "), node.Node))
	}
	return allow.with(recordStart...)
}

// moving names what moves clients in the cluster that node may receive: the evacuations of other
// nodes that still move theirs, and the rebalances that send clients to node.
func (e *EMQXState) moving(node string) []string {
	var out []string
	for _, ev := range e.Status.Evacuations {
		if ev.Node != node && !e.safe(ev) {
			out = append(out, "the evacuation of "+ev.Node)
		}
	}
	for _, r := range e.Status.Rebalances {
		if slices.Contains(r.Recipients, node) {
			out = append(out, "the rebalance coordinated by "+r.CoordinatorNode)
		}
	}
	return out
}

// unlessReplicas lets an empty node's pod go (allowed) unless it leaves for good while its durable-
// storage site holds shard replicas (5.9+ cores, row 7b): then they are asked to move to the sites
// that stay, as emqx-operator 2.3 does, and the removal is held until the site holds none, up to
// the evacuation time limit.
func (s Snapshot) unlessReplicas(node emqx.Node, allowed Decision) Decision {
	if !s.LeavesForGood || node.Role != emqx.RoleCore || !emqx.MayHave(node.Version, emqx.Version.HasDurableStorage) {
		return allowed
	}
	if s.Leaving == nil {
		return Decision{Need: NeedTargets}
	}
	if s.Storage == nil {
		return Decision{Need: NeedStorage}
	}
	st := s.Storage
	since, recordStart := s.timed(AnnReplicasMovingSince)
	waited := s.Now.Sub(since)
	if st.Err == nil && st.Held == 0 {
		return allowed
	}
	if waited >= s.Settings.Timeout {
		what := fmt.Sprintf("%d shard replicas", st.Held)
		if st.Err != nil {
			what = fmt.Sprintf("replicas EMQX would not describe (%s)", Shorten(st.Err))
		}
		return s.allowWithEvent(ReasonReplicasTimedOut, "the durable-storage site %s of EMQX node %s still holds %s "+
			"after %v: removing the pod anyway; the cluster has lost that redundancy until it re-replicates",
			st.Site, node.Node, what, waited.Round(time.Second)).
			with(recordStart...)
	}
	// Every answer below holds the removal while the replicas move, timed from the same start.
	hold := func(effects []Effect, format string, args ...any) Decision {
		return Decision{Verdict: Hold(ReasonReplicasMoving, fmt.Sprintf(format, args...)), Effects: effects}
	}
	if st.Err != nil {
		return hold(recordStart, "EMQX node %s is empty, but its durable storage could not be read (%s); "+
			"held for up to %v; retrying is safe", node.Node, Shorten(st.Err), s.Settings.Timeout)
	}
	moves, ok := st.Moves()
	if !ok {
		return hold(recordStart, "EMQX node %s is empty, but its durable-storage site %s holds %d shard replicas "+
			"and no site that stays can take them; held for up to %v; retrying is safe",
			node.Node, st.Site, st.Held, s.Settings.Timeout)
	}
	if len(moves) > 0 && !s.DryRun {
		if s.Moved == nil {
			return Decision{Need: NeedMove, Moves: moves}
		}
		if err := *s.Moved; err != nil {
			return hold(recordStart, "EMQX node %s is empty, but EMQX refused to move the %d shard replicas "+
				"of its durable-storage site %s (%s); held for up to %v; retrying is safe",
				node.Node, st.Held, st.Site, Shorten(err), s.Settings.Timeout)
		}
		started := NewEvent(
			corev1.EventTypeNormal,
			ReasonReplicasMoving,
			"moving the %d durable-storage shard replicas of site %s "+
				"(EMQX node %s) to the sites that stay before the pod leaves for good",
			st.Held,
			st.Site,
			node.Node,
		)
		return hold(append(recordStart, started),
			"EMQX node %s is empty; the %d shard replicas of its durable-storage "+
				"site %s are moving to the sites that stay; retrying is safe", node.Node, st.Held, st.Site)
	}
	return hold(recordStart, "EMQX node %s is empty; its durable-storage site %s still holds %d shard "+
		"replicas, moving to the sites that stay; retrying is safe", node.Node, st.Site, st.Held)
}

// evacuating holds the removal while the evacuation runs, up to the time limit.
func (s Snapshot) evacuating(node emqx.Node, ev emqx.Evacuation) Decision {
	var fx []Effect
	if s.Pod.Annotations[AnnStartedAt] == "" {
		// Started by someone else (kubectl emqx evacuate): the clock starts now, and the pod is
		// marked so that the controller leaves that evacuation to whoever started it.
		fx = append(fx, Annotate{Set: map[string]*string{AnnNode: ptr.To(node.Node),
			AnnStartedBy: ptr.To(StartedByOther)}})
	}
	started, recordStart := s.timed(AnnStartedAt)
	fx = append(fx, recordStart...)
	if limit := s.Settings.Timeout; s.Now.Sub(started) >= limit {
		return s.allowWithEvent(ReasonTimedOut, "the evacuation of EMQX node %s has run %v, past its limit of %v: "+
			"removing the pod anyway (%d connections, %d sessions left)",
			node.Node, s.Now.Sub(started).Round(time.Second), limit,
			ev.Stats.CurrentConnected, ev.Stats.CurrentSessions).
			with(fx...)
	}
	p := evacuation.ProgressOf(ev, node, s.EMQX.Durable, evacuation.WaitsOf(s.Settings.Request))
	d := Decision{Verdict: Hold(ReasonEvacuating, fmt.Sprintf("EMQX node %s is evacuating (%s): %s; retrying is safe",
		node.Node, p.State, p.Summary())), Effects: fx}
	return s.stalled(d, node, ev, started)
}

// stalled watches the session count while EMQX moves sessions: one that has not moved for
// StallAfter is reported (a Warning Event once, the hold's reason and message, the pod's
// annotation that kubectl emqx status shows) long before the time limit lets the pod go. EMQX
// before 5.8.4 can loop for ever on a session whose process died.
func (s Snapshot) stalled(d Decision, node emqx.Node, ev emqx.Evacuation, started time.Time) Decision {
	if ev.State != emqx.EvacuationEvictingSessions || s.Settings.StallAfter <= 0 {
		return d
	}
	left := strconv.FormatInt(ev.Stats.CurrentSessions, 10)
	seen := s.Pod.Annotations[AnnSessionsLeft]
	if strings.TrimSuffix(seen, cluster.StalledSuffix) != left {
		d.Effects = append(d.Effects, Annotate{Set: map[string]*string{AnnSessionsLeft: &left}})
		if s.Timed[AnnStalledSince].Known {
			d.Effects = append(d.Effects, ForgetStart{Key: AnnStalledSince})
		}
		return d
	}
	since, recordStart := s.timed(AnnStalledSince)
	d.Effects = append(d.Effects, recordStart...)
	if s.Now.Sub(since) < s.Settings.StallAfter {
		return d
	}
	d.Verdict = Hold(
		ReasonStalled,
		fmt.Sprintf("EMQX node %s is evacuating, but its %s sessions have not moved for %v: EMQX before 5.8.4 "+
			"can loop on a session whose process died (upgrade, or stop the evacuation and restart the node); "+
			"the time limit lets the pod go %v after the evacuation started; retrying is safe",
			node.Node, left, s.Now.Sub(since).Round(time.Second), s.Settings.Timeout),
	)
	if !strings.HasSuffix(seen, cluster.StalledSuffix) {
		stalled := left + cluster.StalledSuffix
		d.Effects = append(
			d.Effects,
			Annotate{Set: map[string]*string{AnnSessionsLeft: &stalled}},
			NewEvent(
				corev1.EventTypeWarning,
				ReasonStalled,
				"the session eviction of EMQX node %s has not moved for %v (%s sessions left, "+
					"version %s); the evacuation started %v ago",
				node.Node,
				s.Now.Sub(since).Round(time.Second),
				left,
				node.Version,
				s.Now.Sub(started).Round(time.Second),
			),
		)
	}
	return d
}

// start starts an evacuation, within the concurrency limit, and holds the removal.
func (s Snapshot) start(node emqx.Node) Decision {
	gs := s.EMQX.Status
	var fx []Effect
	var busy []string
	for _, e := range gs.Evacuations {
		if !s.EMQX.safe(e) {
			busy = append(busy, e.Node)
		}
	}
	if len(busy) >= s.Settings.MaxConcurrent {
		sort.Strings(busy)
		since, recordStart := s.timed(AnnWaitingSince)
		// The limit has a way out too: an evacuation that never ends must not hold every other
		// removal for ever. After the evacuation time limit, this one starts anyway.
		if s.Now.Sub(since) < s.Settings.Timeout {
			return Decision{
				Verdict: Hold(ReasonWaiting, fmt.Sprintf(
					"EMQX node %s holds %d connections and %d sessions; it will be evacuated once %s finishes (at "+
						"most %d evacuation at a time); retrying is safe",
					node.Node,
					node.LiveConnections,
					node.Connections,
					strings.Join(busy, ", "),
					s.Settings.MaxConcurrent,
				)),
				Effects: recordStart,
			}
		}
		fx = append(fx, recordStart...)
		fx = append(
			fx,
			NewEvent(
				corev1.EventTypeWarning,
				ReasonLimitExceeded,
				"waited %v for %s to finish: evacuating %s anyway, beyond --max-concurrent-evacuations",
				s.Now.Sub(since).Round(time.Second),
				strings.Join(busy, ", "),
				node.Node,
			),
		)
	}
	if s.Leaving == nil {
		return Decision{Need: NeedTargets}
	}
	if len(s.Departing) > 0 {
		// Row 11b: the clients an evacuation evicts reconnect through the Service to any Ready
		// pod, a pod let go a moment ago too until its deletion takes it out, and their sessions
		// stop with it. The evacuation starts once those pods are deleted (the API server deletes
		// them right after the webhook lets them go); a pod still running after goingFor (a budget
		// refused its eviction) is no longer departing.
		return Decision{Verdict: Hold(ReasonWaitingForDeletion, fmt.Sprintf("EMQX node %s holds %d connections "+
			"and %d sessions; the removal of pod %s was allowed a moment ago and it still runs: the evacuation "+
			"starts once it is deleted, so no client moves to it; retrying is safe", node.Node,
			node.LiveConnections, node.Connections, strings.Join(s.Departing, ", "))), Effects: fx}
	}
	// The rebalances are stopped first: their donors are free then. A removal comes before a
	// rebalance: a rebalance's donors refuse to evacuate (eviction_agent_busy) and cannot take
	// sessions. Rebalances are ephemeral; run one again once the removal is done.
	free := gs
	free.Rebalances = nil
	away := maps.Clone(s.Leaving)
	maps.Copy(away, s.Going)
	req := evacuation.Request(s.Settings.Request, s.EMQX.Nodes, free, away)
	if len(req.MigrateTo) == 0 && len(s.Returning) > 0 {
		// Every other node is away, some only for a moment (a drain that takes a whole cluster's
		// pods at once): wait for them, within the evacuation time limit, rather than lose the
		// sessions.
		since, recordStart := s.timed(AnnWaitingSince)
		if left := s.Settings.Timeout - s.Now.Sub(since); left > 0 {
			return Decision{Verdict: Hold(ReasonWaitingForTarget, fmt.Sprintf("no running EMQX node can take "+
				"the sessions of %s now; %s will be back (the StatefulSet keeps its pod): the removal is held "+
				"until one runs, at most %v more; retrying is safe", node.Node, strings.Join(s.Returning, ", "),
				left.Round(time.Second))), Effects: append(fx, recordStart...)}
		}
	}
	if len(req.MigrateTo) == 0 {
		return s.allowWithEvent(ReasonNoTarget, "no other running EMQX node can take the sessions of %s: "+
			"removing it without evacuation", node.Node).
			with(fx...)
	}
	if s.DryRun {
		return final(
			Hold(
				ReasonStarted,
				fmt.Sprintf(
					"EMQX node %s holds %d connections and %d sessions: "+
						"the pod would be evacuated first, for about %v (dry run)",
					node.Node,
					node.LiveConnections,
					node.Connections,
					evacuation.Estimate(req, node.LiveConnections, node.Connections),
				),
			),
		)
	}
	if s.Started == nil {
		start := &StartRequest{Node: node.Node, Request: req}
		for _, rb := range gs.Rebalances {
			start.Rebalances = append(start.Rebalances, rb.CoordinatorNode)
		}
		return Decision{Need: NeedStart, Start: start}
	}
	for _, c := range s.Started.Stopped {
		fx = append(
			fx,
			NewEvent(
				corev1.EventTypeNormal,
				ReasonRebalanceStopped,
				"stopped the rebalance coordinated by %s: "+
					"evacuating EMQX node %s for the removal of pod %s comes first",
				c,
				node.Node,
				s.Pod.Name,
			),
		)
	}
	if err := s.Started.StopErr; err != nil {
		return s.unreachable(err, true).with(fx...)
	}
	return s.started(node, s.Started.Err).with(fx...)
}

// started decides on EMQX's answer to the start of an evacuation.
func (s Snapshot) started(node emqx.Node, err error) Decision {
	switch {
	case emqx.IsAlreadyStarted(err):
		// Someone (another replica, kubectl emqx) started it a moment ago.
		return final(
			Hold(
				ReasonEvacuating,
				fmt.Sprintf(
					"EMQX node %s is evacuating (just started): %d connections and %d sessions left; retrying is safe",
					node.Node,
					node.LiveConnections,
					node.Connections,
				),
			),
		)
	case emqx.IsNodesUnavailable(err):
		// A target stopped taking sessions between our read and EMQX's check (it began evacuating,
		// donating or purging): the next retry computes the targets again. A wait like any other,
		// bounded by the evacuation time limit; EMQX answered, so this is no unreachable API.
		since, recordStart := s.timed(AnnWaitingSince)
		if limit := s.Settings.Timeout; s.Now.Sub(since) >= limit {
			return s.allowWithEvent(ReasonTimedOut, "EMQX refused every set of target nodes for %s for %v (%v): "+
				"removing the pod without evacuation",
				node.Node, limit, err).
				with(recordStart...)
		}
		return Decision{
			Verdict: Hold(
				ReasonWaiting,
				fmt.Sprintf(
					"EMQX node %s holds %d connections and %d sessions, "+
						"and a node to move them to became unavailable (%s); retrying is safe",
					node.Node,
					node.LiveConnections,
					node.Connections,
					err,
				),
			),
			Effects: recordStart,
		}
	case err != nil:
		// Unexpected answers (a busy node, an RPC error, a refusal) take the same way out as an API
		// that does not answer: held for the grace period, then allowed.
		return s.unreachable(fmt.Errorf("start evacuating %s: %w", node.Node, err), true)
	}
	set := map[string]*string{
		AnnStartedAt:    Stamp(s.Now),
		AnnNode:         ptr.To(node.Node),
		AnnReason:       ptr.To(s.Cause),
		AnnCompletedAt:  nil,
		AnnWaitingSince: nil,
		AnnStartedBy:    nil,
		AnnLastRequest:  nil,
		AnnSessionsLeft: nil,
		AnnStalledSince: nil,
		AnnAbandonedAt:  nil,
	}
	for k, v := range s.Extra {
		set[k] = v
	}
	return Decision{
		Verdict: Hold(
			ReasonStarted,
			fmt.Sprintf(
				"EMQX node %s is evacuating: %d connections and %d sessions left (evacuation just "+
					"started); retrying is safe",
				node.Node,
				node.LiveConnections,
				node.Connections,
			),
		),
		Effects: []Effect{
			Annotate{Set: set, Forget: []string{AnnStartedAt, AnnAbandonedAt}},
			NewEvent(
				corev1.EventTypeNormal,
				ReasonStarted,
				"evacuating EMQX node %s (%d connections, %d sessions) before the pod is removed (%s)",
				node.Node,
				node.LiveConnections,
				node.Connections,
				s.Cause,
			),
		},
	}
}

// unreachable: the EMQX API did not answer, or answered what it should not (the error carries
// EMQX's code and message). Hold for the grace period, then allow.
func (s Snapshot) unreachable(err error, stale bool) Decision {
	var fx []Effect
	if stale {
		fx = append(fx, ForgetConnection{})
	}
	since, recordStart := s.timed(AnnUnreachableSince)
	fx = append(fx, recordStart...)
	if s.Now.Sub(since) >= s.Settings.UnreachableGrace {
		return s.allowWithEvent(ReasonUnreachable, "EMQX's API has failed for %v (%v): "+
			"removing the pod without evacuation",
			s.Now.Sub(since).Round(time.Second), Shorten(err)).
			with(fx...)
	}
	return Decision{
		Verdict: Hold(
			ReasonUnreachable,
			fmt.Sprintf("EMQX's API failed (%v); the removal is held for up to %v, then allowed; retrying is safe",
				Shorten(err), s.Settings.UnreachableGrace),
		),
		Effects: fx,
	}
}

// allowWithEvent allows a removal that is not safe, or not needed, and says so with an Event (the gate
// logs every decision).
func (s Snapshot) allowWithEvent(reason, format string, args ...any) Decision {
	typ := corev1.EventTypeWarning
	if reason == ReasonNotStarted || reason == ReasonNodeNotRunning || reason == ReasonNamespaceGone ||
		reason == ReasonOwnerGone {
		typ = corev1.EventTypeNormal
	}
	msg := fmt.Sprintf(format, args...)
	return Decision{Verdict: Allow(reason, msg), Effects: []Effect{NewEvent(typ, reason, "%s", msg)}}
}

// timed is when the pod entered the state timed under key, and the effect that records it when only
// this replica's memory had it (a write failed) or nobody did (it begins now).
func (s Snapshot) timed(key string) (time.Time, []Effect) {
	m, ok := s.Timed[key]
	if !ok || !m.Known {
		return s.Now, []Effect{RecordStart{Key: key, Since: s.Now}}
	}
	if m.OnPod {
		return m.Since, nil
	}
	return m.Since, []Effect{RecordStart{Key: key, Since: m.Since}}
}

// known: the state timed under key has begun, before or in decision d.
func (s Snapshot) known(d Decision, key string) bool {
	if s.Timed[key].Known {
		return true
	}
	for _, e := range d.Effects {
		if m, ok := e.(RecordStart); ok && m.Key == key {
			return true
		}
	}
	return false
}

// evacuatedEffects record that the pod leaves evacuated: an Event and the completion time, once,
// and the pod's entry in its owner's record (if it comes back with the evacuation persisted on its
// volume, the controller reopens it).
func evacuatedEffects(pod *corev1.Pod, now time.Time) []Effect {
	var fx []Effect
	if pod.Annotations[AnnCompletedAt] == "" {
		fx = append(
			fx,
			NewEvent(
				corev1.EventTypeNormal,
				ReasonEvacuated,
				"EMQX node %s is empty: the pod may go",
				pod.Annotations[AnnNode],
			),
			Annotate{Set: map[string]*string{AnnCompletedAt: Stamp(now)}},
		)
	}
	return append(fx, RecordEvacuated{})
}

// evacuatedMessage says why the node is empty: by EMQX's own count, or, where sessions may be
// durable, by its own channels while EMQX's count holds the cluster's offline durable sessions.
func evacuatedMessage(node string, ev emqx.Evacuation, d evacuation.Durability) string {
	if ev.Done() {
		return fmt.Sprintf("EMQX node %s is evacuated: no connection and no session left", node)
	}
	return fmt.Sprintf("EMQX node %s is evacuated: no connection and no session left on it (durable sessions %s: "+
		"EMQX's count of %d adds the cluster's disconnected durable sessions, which stay in durable storage)",
		node, d, ev.Stats.CurrentSessions)
}

// garbageCollector: the user kube-controller-manager's garbage collector acts as (its own
// ServiceAccount with --use-service-account-credentials, else the controller manager's user).
// garbageCollectorAccount is the garbage collector's own identity (kube-controller-manager with
// --use-service-account-credentials).
const garbageCollectorAccount = "system:serviceaccount:kube-system:generic-garbage-collector"

func garbageCollector(user string) bool {
	return user == garbageCollectorAccount || user == "system:kube-controller-manager"
}

func orSomeone(user string) string {
	if user == "" {
		return "someone"
	}
	return user
}

func final(v Verdict) Decision { return Decision{Verdict: v} }

// with puts effects that came first (recorded starts, earlier events) before the decision's own.
func (d Decision) with(first ...Effect) Decision {
	d.Effects = prepend(first, d.Effects)
	return d
}

// prepend is first, then effects, in a new slice.
func prepend(first, effects []Effect) []Effect {
	return append(append([]Effect{}, first...), effects...)
}
