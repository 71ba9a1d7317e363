// Package krew holds the krew plugin manifest's template (emqx.yaml, rendered by hack/dist.sh) and
// the tests that check it against krew's validation rules (sigs.k8s.io/krew itself is not
// available from the module proxy here, so the rules are written out) and install the plugin from
// its archive.
package krew
