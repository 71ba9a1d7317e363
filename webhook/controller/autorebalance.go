package controller

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/emqx"
	"github.com/kubectl-emqx/kubectl-emqx/pkg/evacuation"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// Automatic rebalance (opt-in: StatefulSet annotation AnnRebalance: "auto", or --auto-rebalance):
// when the cluster's membership changes (a scale-up, a pod back after a drain, a rolling update or
// a recreation) and EMQX's own rule says it is not balanced, the controller waits until every pod
// is Ready and its node running and the membership has been stable for the cool-down, starts one
// rebalance (never while an evacuation or another rebalance runs), follows it and judges its end
// itself: EMQX forgets a finished rebalance, and a completed, stopped or aborted one look the same.
const (
	AnnRebalance = decide.AnnotationPrefix + "rebalance" // "auto"
	// AnnRebalanceRun: the rebalance the controller started and follows: "<coordinator> <RFC3339>
	// <donor,...> <recipient,...>".
	AnnRebalanceRun = cluster.AnnRebalanceRun
	// AnnRebalanceResult: how the last one ended: "<result> <RFC3339>: <detail>", shown by
	// `kubectl emqx status`.
	AnnRebalanceResult = cluster.AnnRebalanceResult
	// AnnMembership: the running nodes' fingerprint, since when it holds, and whether a rebalance
	// was considered for it: "<fingerprint> <RFC3339> <considered|pending>".
	AnnMembership = decide.AnnotationPrefix + "membership"
	// Thresholds of EMQX's rebalance (EMQX's defaults when absent: 1000 and 1.1).
	AnnAbsConnThreshold = decide.AnnotationPrefix + "abs-conn-threshold"
	AnnRelConnThreshold = decide.AnnotationPrefix + "rel-conn-threshold"
	AnnAbsSessThreshold = decide.AnnotationPrefix + "abs-sess-threshold"
	AnnRelSessThreshold = decide.AnnotationPrefix + "rel-sess-threshold"
)

// Events and results of the automatic rebalance.
const (
	ReasonRebalanceStarted     = "RebalanceStarted"
	ReasonRebalanceCompleted   = "RebalanceCompleted"
	ReasonRebalanceNotBalanced = "RebalanceNotBalanced"
	ReasonRebalanceAborted     = "RebalanceAborted"
	ReasonRebalanceRefused     = "RebalanceRefused"
	ReasonRebalanceConfig      = "RebalanceConfigInvalid"
)

// rebalanceRun is a rebalance the controller follows.
type rebalanceRun struct {
	coordinator        string
	started            time.Time
	donors, recipients []string
}

func (r rebalanceRun) String() string {
	return fmt.Sprintf(
		"%s %s %s %s",
		r.coordinator,
		r.started.UTC().Format(time.RFC3339),
		strings.Join(r.donors, ","),
		strings.Join(r.recipients, ","),
	)
}

func parseRun(s string) (rebalanceRun, bool) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return rebalanceRun{}, false
	}
	t, err := time.Parse(time.RFC3339, f[1])
	if err != nil {
		return rebalanceRun{}, false
	}
	return rebalanceRun{
		coordinator: f[0],
		started:     t,
		donors:      strings.Split(f[2], ","),
		recipients:  strings.Split(f[3], ","),
	}, true
}

// thresholds reads the StatefulSet's thresholds; an error names the annotation EMQX would reject.
func thresholds(sts *appsv1.StatefulSet) (evacuation.Thresholds, error) {
	t := evacuation.DefaultThresholds
	for key, dst := range map[string]*int64{AnnAbsConnThreshold: &t.AbsConn, AnnAbsSessThreshold: &t.AbsSess} {
		if v, ok := sts.Annotations[key]; ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 1 {
				return t, fmt.Errorf("annotation %s=%q: EMQX takes a whole number of at least 1", key, v)
			}
			*dst = n
		}
	}
	for key, dst := range map[string]*float64{AnnRelConnThreshold: &t.RelConn, AnnRelSessThreshold: &t.RelSess} {
		if v, ok := sts.Annotations[key]; ok {
			x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || !(x > 1.0) {
				return t, fmt.Errorf("annotation %s=%q: EMQX takes a number greater than 1.0", key, v)
			}
			*dst = x
		}
	}
	return t, nil
}

// autoRebalance follows or starts the StatefulSet's automatic rebalance; it returns how soon to
// look again (0: at the usual poll).
func (m *Membership) autoRebalance(
	ctx context.Context,
	sts *appsv1.StatefulSet,
	pods []corev1.Pod,
	conn observe.EMQX,
	nodes []emqx.Node,
) time.Duration {
	if !m.AutoRebalance && sts.Annotations[AnnRebalance] != "auto" {
		return 0
	}
	gs, err := conn.GlobalStatus(ctx)
	if err != nil {
		return 0
	}
	now := m.Clock.Now()
	if run, ok := parseRun(sts.Annotations[AnnRebalanceRun]); ok {
		for _, rb := range gs.Rebalances {
			if rb.CoordinatorNode == run.coordinator {
				return followEvery
			}
		}
		m.judge(ctx, sts, run, nodes, pods)
		return 0
	}
	running := map[string]emqx.Node{}
	var names []string
	for _, n := range nodes {
		if n.Running() {
			running[n.Node] = n
			names = append(names, n.Node)
		}
	}
	sort.Strings(names)
	fingerprint := strconv.FormatUint(hash(strings.Join(names, ",")), 36)
	f := strings.Fields(sts.Annotations[AnnMembership])
	if len(f) != 3 || f[0] != fingerprint {
		// The membership changed: the cool-down starts now.
		m.setAnnotations(
			ctx,
			sts,
			map[string]*string{AnnMembership: ptr.To(fingerprint + " " + now.UTC().Format(time.RFC3339) + " pending")},
		)
		return m.Cooldown
	}
	since, _ := time.Parse(time.RFC3339, f[1])
	switch {
	case f[2] == "considered":
		return 0
	case now.Sub(since) < m.Cooldown:
		return m.Cooldown - now.Sub(since)
	case len(gs.Rebalances) > 0 || len(gs.Evacuations) > 0 || !settled(sts, pods, nodes):
		return 0 // another rebalance, an evacuation, a scale or an update under way: later
	case m.letGoAMomentAgo(sts, pods):
		return time.Second // its deletion shows in a moment, and changes the membership
	}
	considered := map[string]*string{AnnMembership: ptr.To(fingerprint + " " + f[1] + " considered")}
	t, err := thresholds(sts)
	if err != nil {
		m.Exec.Event(sts, corev1.EventTypeWarning, ReasonRebalanceConfig, "automatic rebalance not started: %v", err)
		m.setAnnotations(ctx, sts, considered)
		return 0
	}
	var counts []evacuation.Count
	var participants []string
	for _, name := range names {
		counts = append(counts, evacuation.CountOf(running[name]))
		participants = append(participants, name)
	}
	plan := evacuation.PlanRebalance(counts, t)
	if !plan.Needed {
		m.setAnnotations(ctx, sts, considered)
		return 0
	}
	coord := coordinatorOf(sts, pods, nodes, participants)
	req := emqx.RebalanceRequest{
		Nodes:            participants,
		AbsConnThreshold: &t.AbsConn,
		RelConnThreshold: &t.RelConn,
		AbsSessThreshold: &t.AbsSess,
		RelSessThreshold: &t.RelSess,
		ConnEvictRate:    positiveOrNil(decide.IntAnnotation(sts, decide.AnnConnRate, m.Config.ConnEvictRate)),
		SessEvictRate:    positiveOrNil(decide.IntAnnotation(sts, decide.AnnSessRate, m.Config.SessEvictRate)),
		WaitHealthCheck:  decide.DurationAnnotation(sts, decide.AnnWaitHealthCheck, m.Config.WaitHealthCheck),
		WaitTakeover:     decide.DurationAnnotation(sts, decide.AnnWaitTakeover, m.Config.WaitTakeover),
	}
	if err := m.Exec.StartRebalance(ctx, conn, coord, req); err != nil {
		what := "EMQX refused it: " + decide.Shorten(err)
		if emqx.IsNothingToBalance(err) {
			what = "EMQX says there is nothing to balance"
		}
		m.Exec.Event(sts, corev1.EventTypeWarning, ReasonRebalanceRefused, "automatic rebalance not started: %s", what)
		m.Exec.Count(ReasonRebalanceRefused)
		considered[AnnRebalanceResult] = ptr.To("refused " + now.UTC().Format(time.RFC3339) + ": " + what)
		m.setAnnotations(ctx, sts, considered)
		return 0
	}
	run := rebalanceRun{coordinator: coord, started: now}
	for _, c := range plan.Donors {
		run.donors = append(run.donors, c.Node)
	}
	for _, c := range plan.Recipients {
		run.recipients = append(run.recipients, c.Node)
	}
	considered[AnnRebalanceRun] = ptr.To(run.String())
	m.setAnnotations(ctx, sts, considered)
	coordPod := coord
	if p, ok := cluster.PodOfNode(pods, coord); ok {
		coordPod = p.Name
	}
	m.Exec.Event(
		sts,
		corev1.EventTypeNormal,
		ReasonRebalanceStarted,
		"rebalancing after the cluster changed: at least %d connections to move from %d donors to %d "+
			"recipients, coordinated by %s",
		plan.ExpectedConnMoves,
		len(run.donors),
		len(run.recipients),
		coordPod,
	)
	m.Log.Info("automatic rebalance started", "statefulset", klog.KObj(sts), "coordinator", coord)
	m.Exec.Count(ReasonRebalanceStarted)
	return followEvery
}

// followEvery is how often a running rebalance is looked at.
const followEvery = 2 * time.Second

// judge records how a rebalance the controller started ended: aborted when a participant is no
// longer running (EMQX aborts then, and says nothing), else balanced or not by EMQX's own rule, with
// the spread per node that a dashboard shows.
func (m *Membership) judge(
	ctx context.Context,
	sts *appsv1.StatefulSet,
	run rebalanceRun,
	nodes []emqx.Node,
	pods []corev1.Pod,
) {
	label := func(node string) string { // a node by its pod's name where it has one
		if p, ok := cluster.PodOfNode(pods, node); ok {
			return p.Name
		}
		return node
	}
	byName := map[string]emqx.Node{}
	for _, n := range nodes {
		byName[n.Node] = n
	}
	var donors, recipients []evacuation.Count
	var spread []string
	var gone []string
	for _, list := range []struct {
		names []string
		into  *[]evacuation.Count
	}{{run.donors, &donors}, {run.recipients, &recipients}} {
		for _, name := range list.names {
			n, ok := byName[name]
			if !ok || !n.Running() {
				gone = append(gone, label(name))
				continue
			}
			*list.into = append(*list.into, evacuation.CountOf(n))
			spread = append(spread, fmt.Sprintf("%s %d", label(name), n.LiveConnections))
		}
	}
	t, _ := thresholds(sts)
	reason, typ := ReasonRebalanceCompleted, corev1.EventTypeNormal
	detail := "balanced by EMQX's rule; connections per node: " + strings.Join(spread, ", ")
	switch {
	case len(gone) > 0:
		reason, typ = ReasonRebalanceAborted, corev1.EventTypeWarning
		detail = "EMQX aborted it: " + strings.Join(
			gone,
			", ",
		) + " stopped running; connections per node: " + strings.Join(
			spread,
			", ",
		)
	case !evacuation.Balanced(donors, recipients, t):
		reason, typ = ReasonRebalanceNotBalanced, corev1.EventTypeWarning
		detail = "it ended (stopped, or EMQX gave up) " +
			"with the donors still outside the thresholds; connections per node: " + strings.Join(
			spread,
			", ",
		)
	}
	now := m.Clock.Now()
	m.setAnnotations(ctx, sts, map[string]*string{AnnRebalanceRun: nil,
		AnnRebalanceResult: ptr.To(
			fmt.Sprintf("%s %s: %s", strings.TrimPrefix(reason, "Rebalance"), now.UTC().Format(time.RFC3339), detail),
		)})
	m.Exec.Event(sts, typ, reason, "rebalance coordinated by %s: %s", label(run.coordinator), detail)
	m.Log.Info(
		"automatic rebalance ended",
		"statefulset",
		klog.KObj(sts),
		"result",
		reason,
		"detail",
		detail,
	)
	m.Exec.Count(reason)
}

// letGoAMomentAgo: this replica's gate let a pod of the StatefulSet go a moment ago (an empty node:
// nothing to evacuate) and the cache does not show it terminating yet. The clients a rebalance
// moves reconnect through the Service to any Ready pod, that one too, and would stop with it (the
// hazard of the gate's row 11b).
func (m *Membership) letGoAMomentAgo(sts *appsv1.StatefulSet, pods []corev1.Pod) bool {
	if m.LetGo == nil {
		return false
	}
	for i := range pods {
		p := &pods[i]
		if metav1.IsControlledBy(p, sts) && p.DeletionTimestamp == nil && m.LetGo(p.UID) {
			return true
		}
	}
	return false
}

// settled: every pod the StatefulSet wants exists, runs, is Ready and has its node running, and
// no rolling update is under way.
func settled(sts *appsv1.StatefulSet, pods []corev1.Pod, nodes []emqx.Node) bool {
	want := cluster.Replicas(sts)
	if sts.Status.ReadyReplicas != want ||
		(sts.Status.UpdateRevision != "" && sts.Status.CurrentRevision != sts.Status.UpdateRevision) {
		return false
	}
	var have int32
	for i := range pods {
		p := &pods[i]
		if !metav1.IsControlledBy(p, sts) {
			continue
		}
		n, ok := cluster.NodeOfPod(nodes, p, "")
		if !cluster.Ready(p) || !ok || !n.Running() {
			return false
		}
		have++
	}
	return have == want
}

// coordinatorOf picks the core node of the lowest ordinal the StatefulSet keeps.
func coordinatorOf(sts *appsv1.StatefulSet, pods []corev1.Pod, nodes []emqx.Node, participants []string) string {
	best, bestOrd := participants[0], int32(-1)
	for i := range pods {
		ord, ok := cluster.Ordinal(sts, pods[i].Name)
		if !ok || !cluster.Stays(sts, pods[i].Name) {
			continue
		}
		if n, found := cluster.NodeOfPod(nodes, &pods[i], ""); found && n.Running() && (bestOrd < 0 || ord < bestOrd) {
			best, bestOrd = n.Node, ord
		}
	}
	return best
}

func positiveOrNil(v int64) *int64 {
	if v > 0 {
		return &v
	}
	return nil
}

// hash is FNV-1a, enough to tell one membership from another.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
