package cluster

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Labels of the two install styles.
const (
	LabelName             = "app.kubernetes.io/name"
	LabelHelmInstance     = "app.kubernetes.io/instance"
	LabelOperatorInstance = "apps.emqx.io/instance"
	LabelOperatorManaged  = "apps.emqx.io/managed-by"
	LabelOperatorRole     = "apps.emqx.io/db-role"
)

// Selectors of EMQX workloads and pods.
const (
	HelmSelector     = LabelName + " in (emqx,emqx-enterprise)"
	OperatorSelector = LabelOperatorManaged + "=emqx-operator"
)

// Instance is the install's instance name from its labels: the operator's, else Helm's release.
func Instance(l map[string]string) string {
	if v := l[LabelOperatorInstance]; v != "" {
		return v
	}
	if v := l[LabelHelmInstance]; v != "" {
		return v
	}
	return "emqx"
}

// IsEMQX reports whether labels mark an EMQX pod or workload of either install style.
func IsEMQX(l map[string]string) bool {
	n := l[LabelName]
	return n == "emqx" || n == "emqx-enterprise" || l[LabelOperatorManaged] == "emqx-operator"
}

// Matcher tells EMQX pods and workloads by their labels: the Helm chart's and emqx-operator's,
// and those matching Extra (--emqx-selector, of the plugin and of the webhook alike).
type Matcher struct {
	Extra labels.Selector // nil: none
}

// NewMatcher parses selector ("" for none) into a Matcher.
func NewMatcher(selector string) (Matcher, error) {
	if selector == "" {
		return Matcher{}, nil
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return Matcher{}, fmt.Errorf("--emqx-selector %q: %w", selector, err)
	}
	return Matcher{Extra: sel}, nil
}

// Match reports whether labels l mark an EMQX pod or workload.
func (m Matcher) Match(l map[string]string) bool {
	return IsEMQX(l) || m.Extra != nil && !m.Extra.Empty() && m.Extra.Matches(labels.Set(l))
}

// Workload reports whether a StatefulSet is EMQX's: its own labels or its pods' say so.
func (m Matcher) Workload(sts *appsv1.StatefulSet) bool {
	return m.Match(sts.Labels) || m.Match(sts.Spec.Template.Labels)
}

// OfInstance reports whether labels l mark an EMQX pod or workload of the install instance.
func (m Matcher) OfInstance(l map[string]string, instance string) bool {
	return m.Match(l) && Instance(l) == instance
}

// AnnAPIAccess on an EMQX StatefulSet is emqx-webhook's last access check of the cluster's API:
// "<result> <RFC3339 time>: <detail>", result ok, credentials-rejected or unreachable. The plugin
// shows a result other than ok.
const AnnAPIAccess = "emqx.kubectl-emqx.io/api-access"

// Annotations of emqx-webhook's automatic rebalance on an EMQX StatefulSet, which the plugin shows:
// the run it follows ("<coordinator> <time> <donors> <recipients>") and how the last one ended
// ("<result> <time>: <detail>").
const (
	AnnRebalanceRun    = "emqx.kubectl-emqx.io/rebalance-run"
	AnnRebalanceResult = "emqx.kubectl-emqx.io/rebalance-result"
)

// AnnSessionsLeft on an EMQX pod is emqx-webhook's last reading of its evacuation's session
// count while EMQX moves sessions: "<count>", then "<count> stalled" once it has not moved for
// the webhook's --stall-after (EMQX before 5.8.4 can loop on a lost session). The plugin shows it.
const AnnSessionsLeft = "emqx.kubectl-emqx.io/evacuation-sessions-left"

// StalledSuffix ends AnnSessionsLeft's value once the session eviction is reported stalled.
const StalledSuffix = " stalled"
