// Package cluster finds EMQX clusters in Kubernetes (the Helm chart's StatefulSet, emqx-operator's
// core StatefulSet and replicant ReplicaSets), maps pods to EMQX nodes, and connects to their API
// with the user's own Kubernetes credentials.
package cluster

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
func Instance(labels map[string]string) string {
	if v := labels[LabelOperatorInstance]; v != "" {
		return v
	}
	if v := labels[LabelHelmInstance]; v != "" {
		return v
	}
	return "emqx"
}

// IsEMQX reports whether labels mark an EMQX pod or workload of either install style.
func IsEMQX(labels map[string]string) bool {
	n := labels[LabelName]
	return n == "emqx" || n == "emqx-enterprise" || labels[LabelOperatorManaged] == "emqx-operator"
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
