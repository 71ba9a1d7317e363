// Package cluster finds EMQX clusters in Kubernetes (the Helm chart's StatefulSet, emqx-operator's
// core StatefulSet and replicant ReplicaSets), maps pods to EMQX nodes, and connects to their API
// with the user's own Kubernetes credentials.
//
// It may import pkg/emqx; it never imports the webhook or the plugin.
package cluster
