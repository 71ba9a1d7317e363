#!/usr/bin/env bash
# Runs the real emqx-operator (2.x, out of cluster) against the local cluster and `emqx-sim follow`,
# through an EMQX resource's life cycle: create, scale the replicants, a blue-green update (the
# operator evacuates the old replicants itself). It reports lost sessions, which must be 0, and
# refused connects. Not part of `make test`: the module proxy does not serve the operator's module
# at a version that builds, so the operator is given, built from its own source.
#
# Usage: hack/operator-e2e.sh OPERATOR_BINARY CRD_DIR
#   OPERATOR_BINARY  emqx-operator's manager (`go build .` in a checkout of tag 2.2.29)
#   CRD_DIR          that checkout's config/crd/bases
# With WEBHOOK=1 the emqx-webhook runs beside it (as in e2e: a host process behind a URL).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
operator=${1:?usage: hack/operator-e2e.sh OPERATOR_BINARY CRD_DIR}
crds=${2:?usage: hack/operator-e2e.sh OPERATOR_BINARY CRD_DIR}
[[ -x $operator ]] || die "$operator is not an executable: build emqx-operator's manager first"
[[ -f $crds/apps.emqx.io_emqxes.yaml ]] || die "$crds has no apps.emqx.io_emqxes.yaml: pass config/crd/bases of the operator's checkout"

KUBECONFIG=$("$HACK_DIR/cluster-up.sh")
export KUBECONFIG
BIN=$("$HACK_DIR/controlplane.sh")
kubectl() { "$BIN/kubectl" "$@"; }
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	kubectl delete namespace op-e2e --wait=false >/dev/null 2>&1 || true
	log "logs in $work"
}
trap cleanup EXIT

(cd "$ROOT_DIR" && go build -o "$work/" ./cmd/emqx-sim)
kubectl apply --server-side -f "$crds/apps.emqx.io_emqxes.yaml" -f "$crds/apps.emqx.io_rebalances.yaml" >/dev/null
for _ in {1..30}; do
	[[ $(kubectl get crd emqxes.apps.emqx.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}') == True ]] && break
	sleep 1
done
kubectl create namespace op-e2e >/dev/null

admin=127.0.0.1:18997
"$work/emqx-sim" follow --kubeconfig "$KUBECONFIG" --namespace op-e2e --netns "$NETNS" --admin "$admin" \
	--time-scale 10 --no-operator-gate --data-dir "$work/data" >"$work/emqx-sim.log" 2>&1 &
pids+=($!)
ENABLE_WEBHOOKS=false "$operator" --metrics-bind-address 127.0.0.1:18996 --health-probe-bind-address 127.0.0.1:18995 \
	>"$work/emqx-operator.log" 2>&1 &
pids+=($!)

stats() { curl -fsS "http://$admin/sim/v1/stats?cluster=op-e2e/emqx"; }
field() { stats | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
ready() { kubectl -n op-e2e get emqx emqx -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null; }
wait_ready() {
	local what=$1 limit=$2 start=$SECONDS
	while [[ $(ready) != True ]]; do
		((SECONDS - start < limit)) || { kubectl -n op-e2e get emqx emqx -o yaml | tail -40 >&2; die "EMQX not Ready $limit s after $what"; }
		sleep 2
	done
	log "$what: EMQX Ready after $((SECONDS - start)) s; pods: $(kubectl -n op-e2e get pods --no-headers | awk '{printf "%s(%s) ", $1, $2}')"
}

cat <<EOF_CR | kubectl apply -f - >/dev/null
apiVersion: apps.emqx.io/v2beta1
kind: EMQX
metadata:
  name: emqx
  namespace: op-e2e
spec:
  image: emqx/emqx-enterprise:5.10.0
  config:
    data: |
      dashboard.listeners.http.bind = 18083
  coreTemplate:
    spec:
      replicas: 2
  replicantTemplate:
    spec:
      replicas: 2
  updateStrategy:
    type: Recreate
    initialDelaySeconds: 5
    evacuationStrategy:
      waitTakeover: 2
      connEvictRate: 200
      sessEvictRate: 200
EOF_CR
wait_ready create 180

curl -fsS -XPOST "http://$admin/sim/v1/connect?cluster=op-e2e/emqx" -d '{"clients": 2000}' >/dev/null
sleep 3
log "2000 clients connected: $(stats)"

kubectl -n op-e2e patch emqx emqx --type merge -p '{"spec":{"replicantTemplate":{"spec":{"replicas":3}}}}' >/dev/null
sleep 5
wait_ready "scale to 3 replicants" 180

kubectl -n op-e2e patch emqx emqx --type merge -p '{"spec":{"image":"emqx/emqx-enterprise:5.10.1"}}' >/dev/null
sleep 5
wait_ready "blue-green update" 600
start=$SECONDS
while (($(kubectl -n op-e2e get pods --no-headers | wc -l) > 5)); do
	((SECONDS - start < 300)) || die "old pods still there 300 s after the update"
	sleep 2
done
sleep 5
lost=$(field lost_sessions)
log "after the update: $(stats)"
log "lost sessions: $lost, refused connects: $(field refused_connects)"
[[ $lost == 0 ]] || die "the operator's life cycle lost $lost sessions"
log "create → scale → blue-green update: 0 sessions lost"
