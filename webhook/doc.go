// Package webhook carries out emqx-webhook's decisions: the admission handlers (pod evictions,
// pod deletions, StatefulSet scale-downs, the routing gate), the snapshot that gathers the facts a
// decision asks for (snapshot.go; every question to EMQX goes through webhook/observe), the
// executor that applies its effects (effects.go: the only writer of annotations, Events and owner
// records), and the controllers beside them (evacuations, membership, automatic rebalance, access
// check, pruning). The judgement itself is webhook/decide: pure, a Snapshot in and a Decision out.
//
// It may import pkg/ packages, webhook/decide and webhook/observe, never the plugin; webhook/app
// wires it.
package webhook
