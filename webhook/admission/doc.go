// Package admission holds emqx-webhook's admission handlers: each decodes a review (an eviction,
// a pod deletion, a StatefulSet scale-down, a pod creation for the routing gate), checks it
// against live state from the cache (a review that does not match starts nothing and learns
// nothing), asks the gate (package webhook) for a verdict, and answers: allowed, or 429 Too Many
// Requests so that drainers retry. Bounded limits what an unauthenticated caller may send.
//
// It may import pkg/ packages, webhook (the gate) and webhook/decide; never the executor, EMQX
// (webhook/observe) or the controllers: a handler reads reviews and the cache, and writes nothing.
package admission
