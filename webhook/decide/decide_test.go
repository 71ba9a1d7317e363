package decide

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
)

// The decision table (README, "How it decides"), row by row, on snapshots: no client, no EMQX, no
// clock, no recorder. The gate's tests (gate_test.go) run the same decisions with their effects.

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// snap is emqx-1 of a running 3-node cluster holding clients, with nothing timed yet.
func snap(mutate ...func(*Snapshot)) Snapshot {
	pod := readyPod(1, "uid-1")
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "emqx", Namespace: ns, UID: "sts-uid"}}
	s := Snapshot{Now: t0, Cause: "eviction", Pod: pod, EMQXPod: true, Owner: sts, Settings: DefaultConfig().For(sts),
		Timed: map[string]TimedState{
			AnnUnreachableSince: {Since: t0},
			AnnWaitingSince:     {Since: t0},
			AnnStartedAt:        {Since: t0},
		},
		EMQX: &EMQXState{
			Answered: true,
			Nodes:    []emqx.Node{runningNode(0, 10), runningNode(1, 10), runningNode(2, 10)},
			Node:     runningNode(1, 10),
		},
	}
	for _, m := range mutate {
		m(&s)
	}
	return s
}

func runningNode(i int, conns int64) emqx.Node {
	return emqx.Node{Node: node(i), NodeStatus: emqx.NodeRunning, Connections: conns, LiveConnections: conns}
}

func evacuationOf(i int, state string, conns, sessions int64) emqx.Evacuation {
	return emqx.Evacuation{
		Node:  node(i),
		State: state,
		Stats: emqx.Stats{CurrentConnected: conns, CurrentSessions: sessions},
	}
}

// annotated is the last value effects set for key ("" when none does).
func annotated(fx []Effect, key string) string {
	var v string
	for _, e := range fx {
		if a, ok := e.(Annotate); ok && a.Set[key] != nil {
			v = *a.Set[key]
		}
	}
	return v
}

// reasons lists the Event reasons among effects, in order.
func reasons(fx []Effect) []string {
	var out []string
	for _, e := range fx {
		if ev, ok := e.(Event); ok {
			out = append(out, ev.Reason)
		}
	}
	return out
}

func TestDecisionTable(t *testing.T) {
	nodesUnavailable := &emqx.Error{
		Method:     "POST",
		Path:       "/api/v5/load_rebalance/x/evacuation/start",
		StatusCode: 400,
		Code:       "BAD_REQUEST",
		Message:    "Nodes unavailable: [x]",
	}
	alreadyStarted := &emqx.Error{
		Method:     "POST",
		Path:       "/api/v5/load_rebalance/x/evacuation/start",
		StatusCode: 400,
		Code:       "BAD_REQUEST",
		Message:    "already_started",
	}
	since := func(key string, d time.Duration) func(*Snapshot) {
		return func(s *Snapshot) { s.Timed[key] = TimedState{Since: t0.Add(-d), OnPod: true, Known: true} }
	}
	evacuating := func(ev emqx.Evacuation) func(*Snapshot) {
		return func(s *Snapshot) { s.EMQX.Status.Evacuations = append(s.EMQX.Status.Evacuations, ev) }
	}
	nodeLeaves := func(s *Snapshot) { s.Leaving = map[string]bool{node(1): true} }
	// leaving: node 1 (a 6.2 core) leaves for good; its site holds held shard replicas of one DB
	// replicated on sites 0 to 2; moved is the answer to the move, nil when not asked yet.
	leaving := func(held int, moved *error) func(*Snapshot) {
		return func(s *Snapshot) {
			s.EMQX.Node.Role, s.EMQX.Node.Version, s.LeavesForGood = emqx.RoleCore, "6.2.2", true
			nodeLeaves(s)
			db := emqx.Storage{Name: "messages", Shards: []emqx.StorageShard{{ID: "0"}}}
			for _, site := range []string{"site-0", "site-1", "site-2"} {
				db.Shards[0].Replicas = append(db.Shards[0].Replicas, struct {
					Site   string `json:"site"`
					Status string `json:"status"`
				}{site, "up"})
			}
			s.Storage = &StorageState{Storage: evacuation.Storage{Site: "site-1", Held: held, DBs: []emqx.Storage{db},
				Going: map[string]bool{
					"site-1": true,
				}, Up: map[string]bool{"site-0": true, "site-1": true, "site-2": true}}}
			s.Moved = moved
		}
	}
	// counted: the pod's last recorded session count.
	counted := func(v string) func(*Snapshot) {
		return func(s *Snapshot) { s.Pod.Annotations = map[string]string{AnnSessionsLeft: v} }
	}
	// drained: node 1 holds no connection and no channel, as GET /nodes lists it.
	drained := func(d evacuation.Durability) func(*Snapshot) {
		return func(s *Snapshot) {
			s.EMQX.Durable, s.EMQX.Nodes[1], s.EMQX.Node = d, runningNode(1, 0), runningNode(1, 0)
		}
	}
	started := func(o StartOutcome) func(*Snapshot) { return func(s *Snapshot) { nodeLeaves(s); s.Started = &o } }

	for _, c := range []struct {
		row      string
		snap     Snapshot
		allowed  bool
		reason   string
		message  string
		events   []string
		need     Need
		evidence func(t *testing.T, d Decision)
	}{
		{row: "1 not EMQX", snap: snap(func(s *Snapshot) { s.EMQXPod = false }), allowed: true, reason: ReasonNotEMQX},
		{
			row:     "1 terminating",
			snap:    snap(func(s *Snapshot) { s.Pod.DeletionTimestamp = &metav1.Time{Time: t0} }),
			allowed: true,
			reason:  ReasonTerminating,
		},
		{
			row:     "2 namespace",
			snap:    snap(func(s *Snapshot) { s.NamespaceTerminating = true }),
			allowed: true,
			reason:  ReasonNamespaceGone,
			events:  []string{ReasonNamespaceGone},
		},
		{
			row:     "2 owner",
			snap:    snap(func(s *Snapshot) { s.OwnerGone = "its statefulset emqx is being deleted" }),
			allowed: true,
			reason:  ReasonOwnerGone,
			message: "its statefulset emqx is being deleted",
			events:  []string{ReasonOwnerGone},
		},
		{row: "2 the garbage collector removes a pod whose owner the cache still shows", snap: snap(func(s *Snapshot) {
			s.Requester = "system:serviceaccount:kube-system:generic-garbage-collector"
		}), allowed: true, reason: ReasonOwnerGone, message: "the garbage collector removes the pod",
			events: []string{ReasonOwnerGone}},
		{row: "2 controllers sharing one identity are not the garbage collector", snap: snap(func(s *Snapshot) {
			s.Requester = "system:kube-controller-manager"
			s.EMQX = nil
		}), need: NeedEMQX},
		{
			row:     "3 bypass",
			snap:    snap(func(s *Snapshot) { s.Owner.SetAnnotations(map[string]string{AnnBypass: "true"}) }),
			allowed: true,
			reason:  ReasonBypass,
			events:  []string{ReasonBypass},
		},
		{
			row:     "4 not running",
			snap:    snap(func(s *Snapshot) { s.Pod.Status.Phase = corev1.PodPending }),
			allowed: true,
			reason:  ReasonNotStarted,
			message: "Pending",
			events:  []string{ReasonNotStarted},
		},
		{row: "4 NotReady is no evidence: EMQX is asked", snap: snap(func(s *Snapshot) {
			s.Pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
			s.EMQX = nil
		}), need: NeedEMQX},
		{
			row: "5 unreachable, within grace",
			snap: snap(func(s *Snapshot) {
				s.EMQX = &EMQXState{
					Err:   errors.New("connection refused"),
					Stale: true,
				}
			}),
			reason:  ReasonUnreachable,
			message: "held for up to 1m0s",
			evidence: func(t *testing.T, d Decision) {
				want := []Effect{ForgetConnection{}, RecordStart{Key: AnnUnreachableSince, Since: t0}}
				if !reflect.DeepEqual(d.Effects, want) {
					t.Fatalf("effects %#v, want %#v", d.Effects, want)
				}
			},
		},
		{
			row: "5 unreachable, past grace",
			snap: snap(since(AnnUnreachableSince, time.Minute),
				func(s *Snapshot) { s.EMQX = &EMQXState{Err: errors.New("connection refused")} }),
			allowed: true,
			reason:  ReasonUnreachable,
			message: "has failed for 1m0s",
			events:  []string{ReasonUnreachable},
		},
		{row: "5 a failure this replica remembers (its write failed) keeps its time", snap: snap(func(s *Snapshot) {
			s.Timed[AnnUnreachableSince] = TimedState{Since: t0.Add(-2 * time.Minute), Known: true}
			s.EMQX = &EMQXState{Err: errors.New("timeout")}
		}), allowed: true, reason: ReasonUnreachable, events: []string{ReasonUnreachable}},
		{
			row:     "6 stopped node",
			snap:    snap(func(s *Snapshot) { s.EMQX.Node.NodeStatus = emqx.NodeStopped; s.EMQX.Answered = false }),
			allowed: true,
			reason:  ReasonNodeNotRunning,
			events:  []string{ReasonNodeNotRunning},
		},
		{
			row:     "7 evacuated",
			snap:    snap(evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			allowed: true,
			reason:  ReasonEvacuated,
			events:  []string{ReasonEvacuated},
			evidence: func(t *testing.T, d Decision) {
				if _, ok := d.Effects[len(d.Effects)-1].(RecordEvacuated); !ok {
					t.Fatalf("no record on the owner: %#v", d.Effects)
				}
			},
		},
		{
			row: "7 evacuated, already recorded on the pod",
			snap: snap(evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0)), func(s *Snapshot) {
				s.Pod.Annotations = map[string]string{AnnCompletedAt: t0.Format(time.RFC3339Nano)}
			}),
			allowed: true,
			reason:  ReasonEvacuated,
		},
		{
			row: "7 prohibiting with sessions left is not done",
			snap: snap(since(AnnStartedAt, time.Minute),
				evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 3))),
			reason:  ReasonEvacuating,
			message: "3 sessions left",
		},
		{
			row: "7 durable sessions: the node's own channels decide",
			snap: snap(since(AnnStartedAt, time.Minute), drained(evacuation.DurableOn),
				evacuating(evacuationOf(1, emqx.EvacuationEvictingSessions, 0, 812))),
			allowed: true,
			reason:  ReasonEvacuated,
			message: "EMQX's count of 812 adds the cluster's disconnected durable sessions",
		},
		{
			row: "7 durable sessions unknown (no scope to read them): judged as on",
			snap: snap(since(AnnStartedAt, time.Minute),
				drained(evacuation.DurableUnknown),
				evacuating(evacuationOf(1, emqx.EvacuationWaitingTakeover, 0, 812))),
			allowed: true,
			reason:  ReasonEvacuated,
		},
		{
			row: "7 negative control: without durable sessions EMQX's count decides",
			snap: snap(since(AnnStartedAt, time.Minute),
				drained(evacuation.DurableOff), evacuating(evacuationOf(1, emqx.EvacuationEvictingSessions, 0, 812))),
			reason:  ReasonEvacuating,
			message: "0 connections and 812 sessions left",
		},
		{
			row: "9 durable sessions, channels still on the node",
			snap: snap(since(AnnStartedAt, time.Minute), func(s *Snapshot) {
				s.EMQX.Durable = evacuation.DurableOn
				s.EMQX.Nodes[1].LiveConnections, s.EMQX.Node.LiveConnections = 0, 0
			}, evacuating(evacuationOf(1, emqx.EvacuationEvictingSessions, 0, 812))),
			reason:  ReasonEvacuating,
			message: "0 connections and 10 sessions left on the node",
		},
		{
			row: "9 durable sessions, connections not yet evicted",
			snap: snap(since(AnnStartedAt, time.Minute), drained(evacuation.DurableOn),
				evacuating(evacuationOf(1, emqx.EvacuationWaitingHealthCheck, 0, 812))),
			reason: ReasonEvacuating,
		},
		{
			row: "11 a durable evacuation done on its node holds no other",
			snap: snap(since(AnnStartedAt, time.Minute), func(s *Snapshot) {
				s.EMQX.Durable = evacuation.DurableOn
				s.EMQX.Nodes[0] = runningNode(0, 0)
			}, evacuating(evacuationOf(0, emqx.EvacuationEvictingSessions, 0, 812)), started(StartOutcome{})),
			reason: ReasonStarted,
			events: []string{ReasonStarted},
		},
		{
			row: "7b a core leaving for good with durable-storage replicas: they move first",
			snap: snap(leaving(32, nil),
				evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			need: NeedMove,
			evidence: func(t *testing.T, d Decision) {
				if want := map[string][]string{"messages": {"site-0", "site-2"}}; !reflect.DeepEqual(d.Moves, want) {
					t.Fatalf("moves %v, want %v", d.Moves, want)
				}
			},
		},
		{
			row:     "7b replicas asked to move: held",
			snap:    snap(leaving(32, new(error)), evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			reason:  ReasonReplicasMoving,
			message: "32 shard replicas of its durable-storage site site-1 are moving",
			events:  []string{ReasonReplicasMoving},
		},
		{
			row: "7b EMQX refuses the move: held",
			snap: snap(leaving(32, ptr.To(errors.New("HTTP 400 BAD_REQUEST"))),
				evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			reason:  ReasonReplicasMoving,
			message: "EMQX refused to move",
		},
		{
			row: "7b moving already: held, nothing asked",
			snap: snap(leaving(32, nil), func(s *Snapshot) {
				s.Storage.DBs[0].Shards[0].Transitions = append(s.Storage.DBs[0].Shards[0].Transitions, struct {
					Site       string `json:"site"`
					Transition string `json:"transition"`
				}{"site-1", emqx.TransitionLeaving})
			}, evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			reason:  ReasonReplicasMoving,
			message: "still holds 32 shard replicas",
		},
		{
			row:     "7b the site holds nothing: allowed",
			snap:    snap(leaving(0, nil), evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			allowed: true,
			reason:  ReasonEvacuated,
		},
		{
			row: "7b past the time limit: allowed with a Warning",
			snap: snap(leaving(32, new(error)), since(AnnReplicasMovingSince, 30*time.Minute),
				evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			allowed: true,
			reason:  ReasonReplicasTimedOut,
			events:  []string{ReasonReplicasTimedOut},
		},
		{
			row: "7b a restart keeps its site: allowed, nothing asked",
			snap: snap(leaving(32, nil), func(s *Snapshot) { s.LeavesForGood = false },
				evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			allowed: true,
			reason:  ReasonEvacuated,
		},
		{
			row: "7b before 5.9 there is no replicated storage",
			snap: snap(leaving(32, nil), func(s *Snapshot) { s.EMQX.Node.Version = "5.8.4" },
				evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			allowed: true,
			reason:  ReasonEvacuated,
		},
		{row: "8b an empty core leaving for good asks for durable storage", snap: snap(func(s *Snapshot) {
			s.EMQX.Node = runningNode(1, 0)
			s.EMQX.Node.Role, s.EMQX.Node.Version, s.LeavesForGood = emqx.RoleCore, "6.2.2", true
			nodeLeaves(s)
		}), need: NeedStorage},
		{
			row:     "8 empty",
			snap:    snap(func(s *Snapshot) { s.EMQX.Node = runningNode(1, 0) }),
			allowed: true,
			reason:  ReasonEmpty,
		},
		{
			row: "8c empty while another node's evacuation moves clients: held, timed",
			snap: snap(func(s *Snapshot) { s.EMQX.Node = runningNode(1, 0) },
				evacuating(evacuationOf(2, emqx.EvacuationEvictingConns, 5, 5))),
			reason:  ReasonWaiting,
			message: "the evacuation of " + node(2) + " moves clients that may reconnect to it",
			evidence: func(t *testing.T, d Decision) {
				if len(d.Effects) != 1 || d.Effects[0] != (RecordStart{Key: AnnWaitingSince, Since: t0}) {
					t.Fatalf("effects %#v", d.Effects)
				}
			},
		},
		{
			row: "8c a rebalance sends clients to it: held",
			snap: snap(func(s *Snapshot) {
				s.EMQX.Node = runningNode(1, 0)
				s.EMQX.Status.Rebalances = []emqx.Rebalance{{CoordinatorNode: node(0), Recipients: []string{node(1)}}}
			}),
			reason:  ReasonWaiting,
			message: "the rebalance coordinated by " + node(0),
		},
		{
			row: "8c a rebalance to other nodes: allowed",
			snap: snap(func(s *Snapshot) {
				s.EMQX.Node = runningNode(1, 0)
				s.EMQX.Status.Rebalances = []emqx.Rebalance{{CoordinatorNode: node(0), Recipients: []string{node(2)}}}
			}),
			allowed: true,
			reason:  ReasonEmpty,
		},
		{
			row: "8c the other evacuation is done: allowed",
			snap: snap(func(s *Snapshot) { s.EMQX.Node = runningNode(1, 0) },
				evacuating(evacuationOf(2, emqx.EvacuationProhibiting, 0, 0))),
			allowed: true,
			reason:  ReasonEmpty,
		},
		{
			row: "8c past the evacuation time limit: allowed with a Warning",
			snap: snap(func(s *Snapshot) { s.EMQX.Node = runningNode(1, 0) }, since(AnnWaitingSince, time.Hour),
				evacuating(evacuationOf(2, emqx.EvacuationEvictingConns, 5, 5))),
			allowed: true,
			reason:  ReasonEmpty,
			events:  []string{ReasonEmpty},
		},
		{
			row: "9 evacuating",
			snap: snap(since(AnnStartedAt, time.Minute),
				evacuating(evacuationOf(1, emqx.EvacuationEvictingConns, 7, 9))),
			reason:  ReasonEvacuating,
			message: "7 connections and 9 sessions left",
		},
		{
			row:    "9 started by someone else: marked as theirs",
			snap:   snap(evacuating(evacuationOf(1, emqx.EvacuationEvictingConns, 7, 9))),
			reason: ReasonEvacuating,
			evidence: func(t *testing.T, d Decision) {
				a, ok := d.Effects[0].(Annotate)
				if !ok || *a.Set[AnnStartedBy] != StartedByOther || d.Effects[1] != (RecordStart{
					Key:   AnnStartedAt,
					Since: t0,
				}) {
					t.Fatalf("effects %#v", d.Effects)
				}
			},
		},
		{
			row: "9 sessions moving: the count is recorded",
			snap: snap(since(AnnStartedAt, time.Minute),
				evacuating(evacuationOf(1, emqx.EvacuationEvictingSessions, 0, 9))),
			reason: ReasonEvacuating,
			evidence: func(t *testing.T, d Decision) {
				if got := annotated(d.Effects, AnnSessionsLeft); got != "9" {
					t.Fatalf("recorded %q: %#v", got, d.Effects)
				}
			},
		},
		{
			row: "9 the count has not moved, within --stall-after",
			snap: snap(since(AnnStartedAt, 5*time.Minute), since(AnnStalledSince, time.Minute),
				counted("9"), evacuating(evacuationOf(1, emqx.EvacuationEvictingSessions, 0, 9))),
			reason: ReasonEvacuating,
		},
		{
			row: "9 stalled: reported once",
			snap: snap(since(AnnStartedAt, 5*time.Minute), since(AnnStalledSince, 3*time.Minute),
				counted("9"), evacuating(evacuationOf(1, emqx.EvacuationEvictingSessions, 0, 9))),
			reason:  ReasonStalled,
			message: "its 9 sessions have not moved for 3m0s",
			events:  []string{ReasonStalled},
			evidence: func(t *testing.T, d Decision) {
				if got := annotated(d.Effects, AnnSessionsLeft); got != "9 stalled" {
					t.Fatalf("recorded %q: %#v", got, d.Effects)
				}
			},
		},
		{
			row: "9 stalled, already reported",
			snap: snap(since(AnnStartedAt, 6*time.Minute), since(AnnStalledSince, 4*time.Minute),
				counted("9 stalled"), evacuating(evacuationOf(1, emqx.EvacuationEvictingSessions, 0, 9))),
			reason: ReasonStalled,
		},
		{
			row: "9 the count moves again",
			snap: snap(since(AnnStartedAt, 6*time.Minute), since(AnnStalledSince, 4*time.Minute),
				counted("9 stalled"), evacuating(evacuationOf(1, emqx.EvacuationEvictingSessions, 0, 7))),
			reason: ReasonEvacuating,
			evidence: func(t *testing.T, d Decision) {
				if !reflect.DeepEqual(d.Effects[len(d.Effects)-1], ForgetStart{Key: AnnStalledSince}) {
					t.Fatalf("effects %#v", d.Effects)
				}
			},
		},
		{
			row: "10 past the time limit",
			snap: snap(since(AnnStartedAt, 30*time.Minute),
				evacuating(evacuationOf(1, emqx.EvacuationEvictingConns, 7, 9))),
			allowed: true,
			reason:  ReasonTimedOut,
			message: "past its limit of 30m0s",
			events:  []string{ReasonTimedOut},
		},
		{
			row: "10 the StatefulSet's own limit",
			snap: snap(since(AnnStartedAt, 2*time.Minute),
				evacuating(evacuationOf(1, emqx.EvacuationEvictingConns, 7, 9)), func(s *Snapshot) {
					own := &appsv1.StatefulSet{}
					own.Annotations = map[string]string{AnnTimeout: "90s"}
					s.Settings = DefaultConfig().For(own)
				}),
			allowed: true,
			reason:  ReasonTimedOut,
			message: "past its limit of 1m30s",
		},
		{
			row:     "10b a PodDisruptionBudget refuses the eviction: nothing is started",
			snap:    snap(func(s *Snapshot) { s.Budget = "emqx-pdb" }),
			reason:  ReasonBudget,
			message: "PodDisruptionBudget emqx-pdb allows no disruption of pod emqx-1 now",
		},
		{
			row: "10b an evacuated node is let go whatever the budget (the API server decides)",
			snap: snap(func(s *Snapshot) { s.Budget = "emqx-pdb" },
				evacuating(evacuationOf(1, emqx.EvacuationProhibiting, 0, 0))),
			allowed: true,
			reason:  ReasonEvacuated,
		},
		{
			row:     "10c abandoned a moment ago: nothing starts until abandon-after has passed",
			snap:    snap(since(AnnAbandonedAt, 4*time.Minute)),
			reason:  ReasonCoolingDown,
			message: "a new one starts from " + t0.Add(time.Minute).UTC().Format(time.RFC3339),
		},
		{
			row:    "10c abandoned abandon-after ago: a new evacuation starts, the mark goes",
			snap:   snap(since(AnnAbandonedAt, 5*time.Minute), started(StartOutcome{})),
			reason: ReasonStarted,
			events: []string{ReasonStarted},
			evidence: func(t *testing.T, d Decision) {
				a := d.Effects[0].(Annotate)
				if v, ok := a.Set[AnnAbandonedAt]; !ok || v != nil {
					t.Fatalf("the abandonment mark is kept: %#v", a.Set)
				}
			},
		},
		{row: "11 another evacuation runs", snap: snap(evacuating(evacuationOf(0, emqx.EvacuationEvictingConns, 5, 5))),
			reason: ReasonWaiting, message: "once " + node(0) + " finishes", evidence: func(t *testing.T, d Decision) {
				if !reflect.DeepEqual(d.Effects, []Effect{RecordStart{Key: AnnWaitingSince, Since: t0}}) {
					t.Fatalf("effects %#v", d.Effects)
				}
			}},
		{
			row: "11 waited as long as the time limit: starts anyway",
			snap: snap(since(AnnWaitingSince, 30*time.Minute),
				evacuating(evacuationOf(0, emqx.EvacuationEvictingConns, 5, 5)), started(StartOutcome{})),
			reason: ReasonStarted,
			events: []string{ReasonLimitExceeded, ReasonStarted},
		},
		{
			row:     "11 another decision holds the cluster's lock",
			snap:    snap(func(s *Snapshot) { s.EMQX = &EMQXState{Busy: true} }),
			reason:  ReasonWaiting,
			message: "another decision",
		},
		{
			row: "11 kept busy as long as the time limit: allowed",
			snap: snap(since(AnnWaitingSince, 30*time.Minute),
				func(s *Snapshot) { s.EMQX = &EMQXState{Busy: true} }),
			allowed: true,
			reason:  ReasonTimedOut,
			message: "kept it busy for 30m0s",
			events:  []string{ReasonTimedOut},
		},
		{row: "11b a pod let go a moment ago still runs: held, nothing started",
			snap: snap(nodeLeaves, func(s *Snapshot) {
				s.Going, s.Departing = map[string]bool{node(2): true}, []string{"emqx-2"}
			}), reason: ReasonWaitingForDeletion, message: "the removal of pod emqx-2 was allowed a moment ago"},
		{row: "11b the pod let go is deleted (terminating): starts without it",
			snap: snap(nodeLeaves, func(s *Snapshot) { s.Going = map[string]bool{node(2): true} }),
			need: NeedStart, evidence: func(t *testing.T, d Decision) {
				to := d.Start.Request.MigrateTo
				if slices.Contains(to, node(2)) || !slices.Contains(to, node(0)) {
					t.Fatalf("migrate_to %v: want %s, not the terminating %s", to, node(0), node(2))
				}
			}},
		{row: "12 no target", snap: snap(func(s *Snapshot) {
			s.Leaving = map[string]bool{node(0): true, node(1): true, node(2): true}
		}), allowed: true, reason: ReasonNoTarget, events: []string{ReasonNoTarget}},
		{row: "12 no target now, a node coming back: held, the wait recorded", snap: snap(func(s *Snapshot) {
			s.EMQX.Nodes[0].NodeStatus, s.EMQX.Nodes[2].NodeStatus = emqx.NodeStopped, emqx.NodeStopped
			s.Leaving = map[string]bool{node(1): true}
			s.Returning = []string{node(0), node(2)}
		}), reason: ReasonWaitingForTarget, evidence: func(t *testing.T, d Decision) {
			if !strings.Contains(d.Verdict.Message, node(0)+", "+node(2)+" will be back") || len(d.Effects) != 1 ||
				d.Effects[0] != (RecordStart{Key: AnnWaitingSince, Since: t0}) {
				t.Fatalf("%q, effects %#v", d.Verdict.Message, d.Effects)
			}
		}},
		{row: "12 no node came back within the evacuation time limit", snap: snap(func(s *Snapshot) {
			s.EMQX.Nodes[0].NodeStatus, s.EMQX.Nodes[2].NodeStatus = emqx.NodeStopped, emqx.NodeStopped
			s.Leaving = map[string]bool{node(1): true}
			s.Returning = []string{node(0), node(2)}
			s.Timed[AnnWaitingSince] = TimedState{Since: t0.Add(-s.Settings.Timeout), OnPod: true, Known: true}
		}), allowed: true, reason: ReasonNoTarget, events: []string{ReasonNoTarget}},
		{row: "13 asks for the nodes that go", snap: snap(), need: NeedTargets},
		{row: "13 starts, after the rebalance", snap: snap(nodeLeaves, func(s *Snapshot) {
			s.EMQX.Status.Rebalances = []emqx.Rebalance{{CoordinatorNode: node(0), Donors: []string{node(0)}}}
			s.Extra = map[string]*string{AnnScaleGeneration: ptr.To("4")}
		}), need: NeedStart, evidence: func(t *testing.T, d Decision) {
			want := &StartRequest{
				Rebalances: []string{node(0)},
				Node:       node(1),
				Request:    emqx.EvacuationRequest{MigrateTo: []string{node(0), node(2)}},
			}
			if !reflect.DeepEqual(d.Start, want) {
				t.Fatalf("start %#v, want %#v", d.Start, want)
			}
		}},
		{
			row: "13 started",
			snap: snap(started(StartOutcome{Stopped: []string{node(0)}}),
				func(s *Snapshot) { s.Extra = map[string]*string{AnnScaleGeneration: ptr.To("4")} }),
			reason:  ReasonStarted,
			message: "evacuation just started",
			events:  []string{ReasonRebalanceStopped, ReasonStarted},
			evidence: func(t *testing.T, d Decision) {
				a := d.Effects[1].(Annotate)
				if *a.Set[AnnStartedAt] != t0.Format(time.RFC3339Nano) || *a.Set[AnnScaleGeneration] != "4" ||
					a.Set[AnnCompletedAt] != nil {
					t.Fatalf("annotations %v", a.Set)
				}
			},
		},
		{
			row:     "13 dry run: no start",
			snap:    snap(nodeLeaves, func(s *Snapshot) { s.DryRun = true }),
			reason:  ReasonStarted,
			message: "(dry run)",
		},
		{
			row:     "13 a rebalance that cannot be stopped",
			snap:    snap(started(StartOutcome{StopErr: errors.New("stop: HTTP 500")})),
			reason:  ReasonUnreachable,
			message: "stop: HTTP 500",
		},
		{
			row:     "13 started a moment ago elsewhere",
			snap:    snap(started(StartOutcome{Err: alreadyStarted})),
			reason:  ReasonEvacuating,
			message: "just started",
		},
		{
			row:     "5 EMQX refuses the start",
			snap:    snap(started(StartOutcome{Err: errors.New("rpc error")})),
			reason:  ReasonUnreachable,
			message: "start evacuating " + node(1),
		},
		{
			row:     "14 targets unavailable",
			snap:    snap(started(StartOutcome{Err: nodesUnavailable})),
			reason:  ReasonWaiting,
			message: "became unavailable",
		},
		{
			row:     "14 targets unavailable for the time limit",
			snap:    snap(since(AnnWaitingSince, 30*time.Minute), started(StartOutcome{Err: nodesUnavailable})),
			allowed: true,
			reason:  ReasonTimedOut,
			message: "refused every set of target nodes",
			events:  []string{ReasonTimedOut},
		},
	} {
		t.Run(c.row, func(t *testing.T) {
			d := Decide(c.snap)
			if d.Need != c.need {
				t.Fatalf("need %v, want %v (verdict %+v)", d.Need, c.need, d.Verdict)
			}
			if c.need != NeedNothing {
				if c.evidence != nil {
					c.evidence(t, d)
				}
				return
			}
			v := d.Verdict
			if v.Allowed != c.allowed || v.Reason != c.reason || !strings.Contains(v.Message, c.message) {
				t.Fatalf("verdict %+v, want allowed=%v %s %q", v, c.allowed, c.reason, c.message)
			}
			if got := reasons(d.Effects); c.events != nil && !reflect.DeepEqual(got, c.events) {
				t.Fatalf("events %v, want %v", got, c.events)
			}
			if c.evidence != nil {
				c.evidence(t, d)
			}
		})
	}
}

func TestAnAnswerFromEMQXEndsTheTimedWaits(t *testing.T) {
	was := func(s *Snapshot) {
		s.Timed[AnnUnreachableSince] = TimedState{Since: t0.Add(-time.Second), OnPod: true, Known: true}
		s.Timed[AnnWaitingSince] = TimedState{Since: t0.Add(-time.Second), OnPod: true, Known: true}
	}
	d := Decide(snap(was, func(s *Snapshot) { s.EMQX.Node = runningNode(1, 0) }))
	if !reflect.DeepEqual(d.Effects,
		[]Effect{ForgetStart{Key: AnnUnreachableSince}, ForgetStart{Key: AnnWaitingSince}}) {
		t.Fatalf("effects %#v", d.Effects)
	}
	// The lock was busy: EMQX was not asked, nothing is proven; the wait goes on.
	d = Decide(snap(was, func(s *Snapshot) { s.EMQX = &EMQXState{Busy: true} }))
	if len(d.Effects) != 0 {
		t.Fatalf("effects %#v", d.Effects)
	}
	// Nothing timed: nothing to clear.
	if d := Decide(snap(func(s *Snapshot) { s.EMQX.Node = runningNode(1, 0) })); len(d.Effects) != 0 {
		t.Fatalf("effects %#v", d.Effects)
	}
}

func TestEMQXTextInEffectsIsEscaped(t *testing.T) {
	d := Decide(snap(func(s *Snapshot) {
		s.EMQX.Node.NodeStatus = "stopped\x1b[2J"
	}))
	for _, e := range d.Effects {
		if ev, ok := e.(Event); ok && strings.ContainsRune(ev.Message, '\x1b') {
			t.Fatalf("raw escape in %q", ev.Message)
		}
	}
	if strings.ContainsRune(d.Verdict.Message, '\x1b') {
		t.Fatalf("raw escape in %q", d.Verdict.Message)
	}
}

// An allow that rests on a shared answer (--emqx-shared-reads) asks for EMQX's answer now first
// (rows 6–8): a node that looked empty a moment ago may hold clients since. Holds and starts do not.
func TestAnAllowOnASharedAnswerIsConfirmedFresh(t *testing.T) {
	shared := func(s *Snapshot) { s.EMQX.Shared = true }
	empty := func(s *Snapshot) { s.EMQX.Node = runningNode(1, 0) }
	stopped := func(s *Snapshot) { s.EMQX.Node.NodeStatus = emqx.NodeStopped }
	done := func(s *Snapshot) {
		s.EMQX.Status.Evacuations = []emqx.Evacuation{evacuationOf(1, emqx.EvacuationProhibiting, 0, 0)}
	}
	for name, m := range map[string]func(*Snapshot){"row 6": stopped, "row 7": done, "row 8": empty} {
		if d := Decide(snap(m)); !d.Verdict.Allowed || d.Need != NeedNothing {
			t.Fatalf("%s, fresh answer: want allowed, got %+v", name, d)
		}
		if d := Decide(snap(m, shared)); d.Need != NeedFresh || len(d.Effects) != 0 {
			t.Fatalf("%s, shared answer: want NeedFresh and no effect, got %+v", name, d)
		}
	}
	// A node with clients: the shared answer is enough to hold and start (EMQX refuses what is stale).
	if d := Decide(snap(shared)); d.Need == NeedFresh || d.Verdict.Allowed {
		t.Fatalf("busy node on a shared answer: want the way to a start, got %+v", d)
	}
}

// Row 5 on a shared answer that lists no node of the pod: asked again, nothing recorded; on
// EMQX's answer now, the usual hold.
func TestAMissingNodeOnASharedAnswerIsAskedAgain(t *testing.T) {
	missing := func(s *Snapshot) {
		s.EMQX = &EMQXState{Err: errors.New("EMQX lists no node of pod emqx-1"), Shared: true}
	}
	if d := Decide(snap(missing)); d.Need != NeedFresh || len(d.Effects) != 0 {
		t.Fatalf("shared answer: want NeedFresh and no effect, got %+v", d)
	}
	fresh := func(s *Snapshot) { s.EMQX.Shared = false }
	if d := Decide(snap(missing, fresh)); d.Need != NeedNothing || d.Verdict.Allowed ||
		d.Verdict.Reason != ReasonUnreachable {
		t.Fatalf("fresh answer: want the unreachable hold, got %+v", d)
	}
}
