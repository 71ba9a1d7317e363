// Package follow runs one simulated EMQX node per Running EMQX pod of a Kubernetes cluster, on
// that pod's IP, with the node name and credentials the pod's spec would give a real EMQX.
//
// It may import pkg/ packages (the simulator, the cluster model), never the plugin or the webhook.
package follow
