package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-emqx/kubectl-emqx/pkg/cluster"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/decide"
	"github.com/kubectl-emqx/kubectl-emqx/webhook/observe"
)

// The access check: the webhook tries each EMQX cluster it may guard before anything is removed
// (at start-up, within a minute of a cluster appearing, then every --access-check-interval), so a
// cluster it cannot authenticate to is known on day one, not after a drain whose removals it would
// then let through unevacuated once the grace period is over. Each finding is written on the
// cluster's StatefulSets (AnnAPIAccess, which `kubectl emqx status` shows), counted in the gauge
// emqx_webhook_cluster_api_access, and a change is an Event on the StatefulSets.

// AnnAPIAccess on an EMQX StatefulSet: "<result> <RFC3339 time>: <detail>".
const AnnAPIAccess = cluster.AnnAPIAccess

// Results of an access check.
const (
	AccessOK          = "ok"
	AccessRejected    = "credentials-rejected"
	AccessUnreachable = "unreachable"
)

// Events of the access check.
const (
	ReasonCredentialsRejected = "EMQXCredentialsRejected"
	ReasonAccessUnreachable   = "EMQXAPIUnreachable"
	ReasonAccessRestored      = "EMQXAPIAccessRestored"
)

// AccessFinding turns the outcome of connecting to a cluster into a result and a detail for
// people: which credentials were tried (never their secrets), or what failed.
func AccessFinding(err error) (result, detail string) {
	var ce *cluster.CredentialsError
	switch {
	case err == nil:
		return AccessOK, "the webhook authenticates to this EMQX cluster"
	case errors.As(err, &ce):
		return AccessRejected, "EMQX accepts none of the credentials the webhook found (" + strings.Join(
			ce.Tried,
			"; ",
		) +
			"); removals of its pods would be held for the grace period, then allowed without evacuation. Give " +
			"the webhook an API key: " +
			"a Secret with keys api-key and api-secret, named on the StatefulSet by annotation " +
			decide.AnnCredentialsSecret
	}
	return AccessUnreachable, "EMQX's API did not answer the webhook: " + decide.Shorten(err)
}

// AccessChecker runs the access check on the elected leader.
type AccessChecker struct {
	*Env
	Interval time.Duration // every cluster, this often
	gauge    *prometheus.GaugeVec
	checked  map[string]time.Time // cluster key → last check
}

// NewAccessChecker registers the checker's gauge with reg.
func NewAccessChecker(env *Env, interval time.Duration, reg prometheus.Registerer) *AccessChecker {
	a := &AccessChecker{Env: env, Interval: interval, checked: map[string]time.Time{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "emqx_webhook_cluster_api_access",
			Help: "1 for the result of the last access check of each EMQX cluster (ok, credentials-rejected, " +
				"unreachable), 0 for the others.",
		}, []string{"namespace", "cluster", "result"})}
	reg.MustRegister(a.gauge)
	return a
}

// NeedLeaderElection: one replica checks, so Events are not doubled.
func (a *AccessChecker) NeedLeaderElection() bool { return true }

// accessScan is how often the checker looks for clusters it has not checked yet.
const accessScan = 30 * time.Second

// Start implements manager.Runnable.
func (a *AccessChecker) Start(ctx context.Context) error {
	for {
		a.CheckDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(accessScan):
		}
	}
}

// CheckDue checks every cluster not checked within the interval.
func (a *AccessChecker) CheckDue(ctx context.Context) {
	var list appsv1.StatefulSetList
	if err := a.Client.List(ctx, &list); err != nil {
		a.Log.Error(err, "access check: list StatefulSets")
		return
	}
	byCluster := map[string][]*appsv1.StatefulSet{}
	for i := range list.Items {
		s := &list.Items[i]
		if a.Matcher.Workload(s) && s.DeletionTimestamp == nil {
			k := observe.Key(s.Namespace, s.Spec.Template.Labels)
			byCluster[k] = append(byCluster[k], s)
		}
	}
	for k := range a.checked { // clusters that are gone: their series and times go too
		if _, ok := byCluster[k]; !ok {
			delete(a.checked, k)
			ns, inst, _ := strings.Cut(k, "/")
			for _, r := range []string{AccessOK, AccessRejected, AccessUnreachable} {
				a.gauge.DeleteLabelValues(ns, inst, r)
			}
		}
	}
	keys := make([]string, 0, len(byCluster))
	for k := range byCluster {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	now := a.Clock.Now()
	for _, k := range keys {
		if last, ok := a.checked[k]; ok && now.Sub(last) < a.Interval {
			continue
		}
		if a.check(ctx, k, byCluster[k]) {
			a.checked[k] = now
		}
	}
}

// check tries one cluster through one of its running pods; false when it has none yet.
func (a *AccessChecker) check(ctx context.Context, key string, sets []*appsv1.StatefulSet) bool {
	ns, inst, _ := strings.Cut(key, "/")
	var pods corev1.PodList
	if err := a.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return false
	}
	var pod *corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if a.Matcher.OfInstance(p.Labels, inst) && cluster.Running(p) {
			pod = p
			break
		}
	}
	if pod == nil {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a.EMQX.Forget(pod) // a fresh connection: credentials may have changed
	_, err := a.EMQX.Connect(cctx, pod)
	result, detail := AccessFinding(err)
	for _, r := range []string{AccessOK, AccessRejected, AccessUnreachable} {
		v := 0.0
		if r == result {
			v = 1
		}
		a.gauge.WithLabelValues(ns, inst, r).Set(v)
	}
	value := fmt.Sprintf("%s %s: %s", result, a.Clock.Now().UTC().Format(time.RFC3339), detail)
	for _, s := range sets {
		prev, _, _ := strings.Cut(s.Annotations[AnnAPIAccess], " ")
		if prev == result {
			continue
		}
		switch {
		case result == AccessRejected:
			a.Exec.Event(s, corev1.EventTypeWarning, ReasonCredentialsRejected, "%s", detail)
		case result == AccessUnreachable:
			a.Exec.Event(s, corev1.EventTypeWarning, ReasonAccessUnreachable, "%s", detail)
		case prev != "":
			a.Exec.Event(s, corev1.EventTypeNormal, ReasonAccessRestored, "%s", detail)
		}
		a.Log.Info("EMQX API access", "cluster", key, "result", result, "detail", detail)
		_ = a.Exec.PatchAnnotations(ctx, s, map[string]*string{AnnAPIAccess: &value}) // logged; checked again next time
	}
	return true
}
