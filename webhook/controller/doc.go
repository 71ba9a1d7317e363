// Package controller holds emqx-webhook's controllers, each on the same path as the admission
// gate: read (the cache, EMQX through webhook/observe), judge (webhook/decide, or a judgement of
// its own kept free of side effects), then write through the one executor (webhook/effects).
//
//   - Controller follows every evacuation the webhook started until it is done, abandoned or
//     withdrawn, reopens pods that came back, and keeps the routing gate's serving condition.
//   - Membership makes nodes of pods scaled away for good leave the EMQX cluster, forgets their
//     durable-storage sites, and starts the automatic rebalance after membership changes.
//   - AccessChecker tries each EMQX cluster's credentials before anything is removed.
//   - Pruner forgets, in every replica, what is kept for EMQX clusters that are gone.
//
// It may import pkg/ packages, webhook/decide, webhook/observe and webhook/effects; never the
// admission gate (webhook) or its handlers, nor the plugin.
package controller
