#!/usr/bin/env bash
# Benchmark: wall time of `kubectl emqx status` against `kubectl get pods` on a 3-pod EMQX cluster
# of the local control plane. Brings the cluster up if needed (and leaves it as it found it).
# Usage: hack/bench-status.sh [RUNS]   (default 20)
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
runs=${1:-20}
was_up=; [[ -f $STATE_DIR/ready ]] && was_up=1
export KUBECONFIG
KUBECONFIG=$("$HACK_DIR/cluster-up.sh")
tmp=$(mktemp -d)
ns=bench-$$
cleanup() {
	kill "$sim" 2>/dev/null || true
	kubectl delete ns "$ns" --wait=false >/dev/null 2>&1 || true
	[[ -n $was_up ]] || "$HACK_DIR/cluster-down.sh"
	rm -rf "$tmp"
}
trap cleanup EXIT
(cd "$ROOT_DIR" && go build -o "$tmp/" ./cmd/kubectl-emqx ./cmd/emqx-sim)
export PATH=$tmp:$PATH
"$tmp/emqx-sim" follow --netns "$NETNS" --admin 127.0.0.1:0 --namespace "$ns" >"$tmp/sim.log" 2>&1 &
sim=$!
kubectl create ns "$ns" >/dev/null
sed "s/__NAMESPACE__/$ns/g; s/__REPLICAS__/3/g" "$HACK_DIR/fixtures/helm-emqx.yaml" | kubectl apply -f - >/dev/null
kubectl -n "$ns" wait --for=condition=Ready pod -l app.kubernetes.io/instance=emqx --timeout=60s >/dev/null
until kubectl emqx status -n "$ns" >/dev/null 2>&1; do sleep 0.2; done

measure() { # prints the mean wall time in ms of running "$@" $runs times
	local start end
	start=$(date +%s%N)
	for ((i = 0; i < runs; i++)); do "$@" >/dev/null; done
	end=$(date +%s%N)
	echo $(((end - start) / runs / 1000000))
}
pods=$(measure kubectl get pods -n "$ns")
status=$(measure kubectl emqx status -n "$ns")
printf 'kubectl get pods -n %s:     %4d ms per run (%d runs)\n' "$ns" "$pods" "$runs"
printf 'kubectl emqx status -n %s:  %4d ms per run (%d runs)\n' "$ns" "$status" "$runs"
