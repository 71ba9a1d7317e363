// Package webhook holds emqx-webhook's admission handlers (pod evictions, pod deletions,
// StatefulSet scale-downs) and the small controller beside them. A removal decision is the pure
// function Decide (decide.go: a Snapshot in, a verdict and its effects out, row by row the
// decision table of the README); snapshot.go gathers the facts it asks for, effects.go applies
// its effects, gate.go runs the two (nothing applied in a dry run). The controller's decisions
// (follow.go: Follow and Reopen) are pure the same way; controller.go gathers and applies.
//
// It may import pkg/ packages, never the plugin; webhook/app wires it, webhook/custommetrics sits beside it.
package webhook
