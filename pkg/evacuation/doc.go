// Package evacuation holds the decisions the plugin and the webhook share: how far an evacuation
// is from done, whether a node is safe to remove, and how a rebalance is planned and judged.
//
// It is pure: it imports pkg/emqx only, no Kubernetes client and no clock (times are passed in).
package evacuation
