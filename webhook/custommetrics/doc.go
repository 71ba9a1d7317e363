// Package custommetrics serves EMQX's connection counts per pod through the Kubernetes custom
// metrics API (custom.metrics.k8s.io), so that a plain autoscaling/v2 HorizontalPodAutoscaler
// can scale an EMQX StatefulSet on MQTT load with a Pods metric. The API server part is the
// maintained sigs.k8s.io/custom-metrics-apiserver; this package is its provider.
//
// It may import pkg/ packages and the webhook's Connector, never the plugin.
package custommetrics
