// Package emqxcache is the webhook's informer cache: EMQX's pods and ReplicaSets only, so the
// webhook's memory follows EMQX, not the cluster.
//
// A label selector is an AND of requirements, while EMQX's objects are those of the Helm chart
// OR of emqx-operator OR of --emqx-selector. So the cache is a union: one controller-runtime cache
// per alternative, each holding the Pods and ReplicaSets its selector picks; the first also holds
// every other kind the webhook reads (StatefulSets, stripped of their pod template's spec, since a
// StatefulSet is EMQX's by its template's labels too; namespaces; budgets). Reads look in each, a
// List merges them (an object two selectors pick appears once), and an informer of a scoped kind
// hands its handlers the events of every alternative.
//
// A pod that no alternative picks is not in the cache at all: whoever asks about one (the eviction
// handler) confirms it with a read of the API server.
package emqxcache
