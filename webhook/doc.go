// Package webhook is emqx-webhook's admission gate: the admission handlers (pod evictions, pod
// deletions, StatefulSet scale-downs, the routing gate) and the Gate they call, which gathers the
// facts a decision asks for (snapshot.go: the cache, and EMQX through webhook/observe), asks
// webhook/decide for the decision, and has webhook/effects carry out its effects. The controllers
// beside it are webhook/controller.
//
// It may import pkg/ packages, webhook/decide, webhook/observe and webhook/effects; never the
// controllers or the plugin. webhook/app wires it.
package webhook
