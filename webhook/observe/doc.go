// Package observe is the webhook's one way to EMQX: a Connector keeps a working connection per
// EMQX cluster (through a pod of that cluster, re-checked before each reuse), and Node asks EMQX
// about a pod's node (its listing, the global status, how to read durable sessions). The gate's
// snapshot, the evacuation controller, the routing gate and the custom metrics all ask through it.
//
// It reads and never writes: no annotation, Event or Kubernetes object is changed here. It may
// import pkg/ packages, never webhook, its decisions or the plugin.
package observe
