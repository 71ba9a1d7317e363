package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/effects"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Gate makes the decisions. Its clients, recorder and clock are injected.
type Gate struct {
	Matcher cluster.Matcher      // which pods are EMQX
	Client  client.Client        // cached reads; writes annotations
	Kube    kubernetes.Interface // uncached reads of the ConfigMaps and Secrets a pod's environment names (nil: none)
	EMQX    observe.Connector
	Exec    *effects.Executor // the only writer; its marks keep the first-seen times of timed states
	Clock   clock.PassiveClock
	Config  decide.Config
	Log     logr.Logger
	Metrics *Metrics

	locks sync.Map  // per EMQX cluster: a semaphore; decisions that may start an evacuation run one at a time
	going goingPods // EMQX pods let go a moment ago
}

// lock serialises decisions about one EMQX cluster within this replica, so concurrent requests
// (a scale-down and the controller's deletions) neither start twice nor exceed the concurrency
// limit. It waits only as long as ctx allows. Replicas are not coordinated: EMQX's
// already_started keeps a node from starting twice.
func (g *Gate) lock(ctx context.Context, pod *corev1.Pod) (func(), bool) {
	m, _ := g.locks.LoadOrStore(observe.ClusterKey(pod), make(chan struct{}, 1))
	sem := m.(chan struct{})
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, true
	case <-ctx.Done():
		return nil, false
	}
}

// Prune drops the decision locks of EMQX clusters live does not name (by observe.ClusterKey):
// they are gone.
func (g *Gate) Prune(live map[string]bool) {
	g.locks.Range(func(k, _ any) bool {
		if !live[k.(string)] {
			g.locks.Delete(k)
		}
		return true
	})
}

// Unmatched answers a review that does not match live state (forged, or stale) or names an object
// the webhook's cache does not hold: allowed, nothing started, and the same empty answer as for any
// object that is not EMQX's, so that a caller learns nothing of what exists or of its state (no
// replica count, node name or pod existence). The log says which it was.
func (g *Gate) Unmatched(kind, ns, name, why string) decide.Verdict {
	g.Log.Info("review not acted on: nothing started", "kind", kind, "object", ns+"/"+name, "why", why)
	return decide.Verdict{Allowed: true}
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
func (g *Gate) Removal(ctx context.Context, pod *corev1.Pod, dryRun bool, cause string) decide.Verdict {
	ctx, cancel := g.bounded(ctx)
	defer cancel()
	v := g.removal(ctx, pod, dryRun, cause, nil, nil)
	g.Metrics.observe(cause, v)
	if !dryRun {
		g.Metrics.removal(pod, v)
		g.noteRequest(ctx, pod)
	}
	if v.Reason != decide.ReasonNotEMQX {
		g.Log.Info(
			"removal decided",
			"pod",
			klog.KObj(pod),
			"cause",
			cause,
			"allowed",
			v.Allowed,
			"reason",
			v.Reason,
			"message",
			v.Message,
			"dryRun",
			dryRun,
		)
	}
	return v
}

// removal runs the decision: it gathers the facts Decide asks for, one step at a time, then applies
// the effects (none in a dry run). extra annotations go on the pod if an evacuation is started;
// replicas is what the pod's StatefulSet is being scaled down to, when a scale-down asks (nil: its
// spec says).
func (g *Gate) removal(
	ctx context.Context,
	pod *corev1.Pod,
	dryRun bool,
	cause string,
	extra map[string]*string,
	replicas *int32,
) decide.Verdict {
	s := g.snapshot(ctx, pod, dryRun, cause, extra)
	s.LeavesForGood = leavesForGood(s.Owner, pod, replicas)
	// Audit mode decides as a dry run does (nothing started, nothing written), then lets go what it
	// would have held, and says so.
	audit := s.Settings.Audit && !dryRun
	s.DryRun = s.DryRun || audit
	var conn observe.EMQX
	for {
		d := decide.Decide(s)
		switch d.Need {
		case decide.NeedEMQX:
			unlock, ok := g.lock(ctx, pod)
			if !ok {
				s.EMQX = &decide.EMQXState{Busy: true}
				continue
			}
			defer unlock() // held until the effects are applied (reached once per decision)
			conn, s.EMQX = g.askEMQX(ctx, pod)
		case decide.NeedFresh:
			// The rest of this decision reads EMQX now, durable storage included.
			ctx = emqx.Fresh(ctx)
			conn, s.EMQX = g.askEMQX(ctx, pod)
			s.Storage = nil
		case decide.NeedTargets:
			pods := g.namespacePods(ctx, pod.Namespace) // read once for both
			s.Leaving = g.leavingNodes(ctx, s, pods, replicas)
			s.Going, s.Departing = g.goingNodes(ctx, s, pods)
			s.Returning = returningNodes(s, replicas)
		case decide.NeedStart:
			s.Started = g.Exec.StartEvacuation(ctx, conn, pod, d.Start)
		case decide.NeedStorage:
			st, err := observe.Storage(ctx, conn, s.EMQX.Node.Node, s.Leaving)
			s.Storage = &decide.StorageState{Storage: st, Err: err}
		case decide.NeedMove:
			err := g.Exec.MoveReplicas(ctx, conn, d.Moves)
			s.Moved = &err
		default:
			if audit {
				return g.wouldHold(pod, d.Verdict)
			}
			if !dryRun {
				_ = g.Exec.Apply(ctx, pod, s.Owner, d.Effects) // logged; the controller retries the owner's record
				if d.Verdict.Allowed && s.EMQXPod {
					g.going.mark(pod.UID, g.Clock.Now())
				}
			}
			return d.Verdict
		}
	}
}

// NotInCache answers a removal of a pod that does not exist, or that is outside the namespaces the
// webhook watches.
func (g *Gate) NotInCache(ns, name, cause string) decide.Verdict {
	// The answer of a pod that is not EMQX's: a caller learns nothing of what exists.
	v := decide.Allow(decide.ReasonNotInCache, "")
	g.Metrics.observe(cause, v)
	g.Log.Info(
		"removal decided",
		"pod",
		ns+"/"+name,
		"cause",
		cause,
		"allowed",
		true,
		"reason",
		v.Reason,
	)
	return v
}

// NotEMQX answers a removal of a pod that is not EMQX's, read outside the cache: counted, not
// logged (most evictions in a cluster are such), as Removal does for one the cache holds.
func (g *Gate) NotEMQX(cause string) decide.Verdict {
	v := decide.Allow(decide.ReasonNotEMQX, "")
	g.Metrics.observe(cause, v)
	return v
}

// NotYetCached holds the removal of a pod that is EMQX's by its labels while the cache, which
// has not seen it yet, catches up (milliseconds): nothing is started, the retry decides.
func (g *Gate) NotYetCached(ns, name, cause string) decide.Verdict {
	v := decide.Hold(decide.ReasonNotYetCached, fmt.Sprintf("pod %s/%s is EMQX's, and the webhook has not "+
		"seen it yet; retrying is safe", ns, name))
	g.Metrics.observe(cause, v)
	g.Log.Info("removal decided", "pod", ns+"/"+name, "cause", cause, "allowed", false,
		"reason", v.Reason)
	return v
}

// ReadFailed answers a removal whose pod the webhook could not read: held like an EMQX API that
// does not answer, then, past the grace period, allowed with a Warning Event. Never a silent allow.
func (g *Gate) ReadFailed(_ context.Context, ns, name, cause string, err error) decide.Verdict {
	now := g.Clock.Now()
	key := types.UID("read:" + ns + "/" + name)
	since := g.Exec.Starts.FirstSeen(key, "read", now)
	var v decide.Verdict
	if now.Sub(since) >= g.Config.UnreachableGrace {
		g.Exec.Starts.Forget(key, "read")
		v = decide.Allow(
			decide.ReasonUnreachable,
			fmt.Sprintf("the webhook could not read pod %s/%s for %v (%s): removing it without evacuation",
				ns, name, now.Sub(since).Round(time.Second), decide.Shorten(err)),
		)
		g.Exec.Event(
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
			corev1.EventTypeWarning,
			decide.ReasonUnreachable,
			"%s",
			v.Message,
		)
	} else {
		v = decide.Hold(decide.ReasonUnreachable, fmt.Sprintf("the webhook could not read pod %s/%s (%s); "+
			"the removal is held for up to %v, then allowed; retrying is safe",
			ns, name, decide.Shorten(err), g.Config.UnreachableGrace))
	}
	g.Metrics.observe(cause, v)
	g.Log.Info(
		"removal decided",
		"pod",
		ns+"/"+name,
		"cause",
		cause,
		"allowed",
		v.Allowed,
		"reason",
		v.Reason,
		"message",
		v.Message,
	)
	return v
}

// lastRequestEvery bounds how often a pod's last removal request is written.
const lastRequestEvery = 30 * time.Second

// noteRequest records that the removal of a pod the webhook evacuates was asked for again: the
// controller abandons only evacuations whose removal nobody asks for any more.
func (g *Gate) noteRequest(ctx context.Context, pod *corev1.Pod) {
	if pod.Annotations[decide.AnnReason] == "" || pod.DeletionTimestamp != nil {
		return
	}
	now := g.Clock.Now()
	if last, ok := decide.Stamped(pod.Annotations, decide.AnnLastRequest, now); ok && now.Sub(last) < lastRequestEvery {
		return
	}
	g.Exec.Annotate(ctx, pod, map[string]*string{decide.AnnLastRequest: decide.Stamp(now)})
}

func httpClient(timeout time.Duration) *http.Client { return &http.Client{Timeout: timeout} }

// wouldHold is audit mode's answer: allowed, and what would have been held is an Event on the pod
// (the decision's log line and metric carry the reason AuditWouldHold).
func (g *Gate) wouldHold(pod *corev1.Pod, v decide.Verdict) decide.Verdict {
	if v.Allowed {
		return v
	}
	msg := "audit mode (" + decide.AnnMode + "=" + decide.ModeAudit + " or --audit): allowed; would hold: " + v.Message
	g.Exec.Event(pod, corev1.EventTypeWarning, decide.ReasonWouldHold, "%s", msg)
	return decide.Allow(decide.ReasonWouldHold, msg)
}
