// Package decide is the webhook's judgement, and nothing else: Decide takes a Snapshot of a removal
// (the pod, its owner, EMQX's answers, the pod's timed states, the clock's reading) and returns a
// Decision (a verdict and the effects to carry out), row by row the decision table of the README;
// Follow and Reopen do the same for the controller. The facts that cost a call are asked for
// (Need), never fetched here; the effects are data, carried out by the webhook's executor.
//
// It is pure: it imports pkg/ packages and API types only, no Kubernetes client, no clock and no
// other package of the webhook (hack/layout checks it).
package decide
