// Package effects is the webhook's only writer. An Executor carries out what a decision
// (webhook/decide) asks for: annotations on pods and their owners, Events, the owner's record of
// evacuated pods, the in-memory marks, and the EMQX calls that start an evacuation. Failed
// annotation writes are logged and never stretch a hold (the marks keep the clocks), and every
// write is bounded in time even after the decision's deadline.
//
// It may import pkg/ packages, webhook/decide and webhook/observe; never the webhook, which
// decides what to write, nor the plugin.
package effects
