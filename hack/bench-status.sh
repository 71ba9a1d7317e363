#!/usr/bin/env bash
# Benchmark: wall time of `kubectl emqx status` against `kubectl get pods` on an EMQX cluster of
# PODS pods (simulated nodes) on the local control plane. Brings the cluster up if needed (and
# leaves it as it found it).
# Usage: hack/bench-status.sh [RUNS] [PODS]   (default 20 pairs, 3 pods)
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
runs=${1:-20}
n=${2:-3}
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
sed "s/__NAMESPACE__/$ns/g; s/__REPLICAS__/$n/g" "$HACK_DIR/fixtures/helm-emqx.yaml" | kubectl apply -f - >/dev/null
until [[ $(kubectl -n "$ns" get pods -l app.kubernetes.io/instance=emqx --no-headers 2>/dev/null | wc -l) -eq $n ]]; do
	sleep 0.5
done
kubectl -n "$ns" wait --for=condition=Ready pod -l app.kubernetes.io/instance=emqx --timeout=180s >/dev/null
# Every node listed Ready (the READY column), within 3 minutes.
deadline=$((SECONDS + 180))
until [[ $(kubectl emqx status -n "$ns" 2>/dev/null | awk 'NR > 1 && $4 == "true"' | wc -l) -ge $n ]]; do
	((SECONDS < deadline)) || die "kubectl emqx status did not list $n Ready nodes in 3 minutes"
	sleep 0.5
done

# Pairs: each run times `kubectl get pods` then `kubectl emqx status`, so both see the same machine
# load; the figures are medians over the runs, the ratio the median of the pairs' ratios.
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
pods=() status=() ratios=()
for ((i = 0; i < runs; i++)); do
	p=$(ms kubectl get pods -n "$ns")
	s=$(ms kubectl emqx status -n "$ns")
	pods+=("$p") status+=("$s") ratios+=("$(awk -v a="$s" -v b="$p" 'BEGIN{printf "%.3f", a/b}')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
printf '%d pods\n' "$n"
printf 'kubectl get pods -n %s:     %s ms (median of %d)\n' "$ns" "$(median "${pods[@]}")" "$runs"
printf 'kubectl emqx status -n %s:  %s ms (median of %d)\n' "$ns" "$(median "${status[@]}")" "$runs"
printf 'ratio (median of the pairs): %s\n' "$(median "${ratios[@]}")"
