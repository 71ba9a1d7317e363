#!/usr/bin/env bash
# Runs the real emqx-operator (2.x, out of cluster) against the local cluster and `emqx-sim follow`,
# through an EMQX resource's life cycle: create, scale the replicants, a blue-green update (the
# operator evacuates the old replicants itself). It reports lost sessions, which must be 0, and
# refused connects. Not part of `make test`: the module proxy does not serve the operator's module
# at a version that builds, so the operator is given, built from its own source.
#
# Usage: hack/operator-e2e.sh OPERATOR_BINARY CRD_DIR
#   OPERATOR_BINARY  emqx-operator's manager (`go build .` in a checkout of tag 2.2.29, or
#                    `go build ./cmd` in one of branch main-2.3)
#   CRD_DIR          that checkout's config/crd/bases
# Environment:
#   WEBHOOK=1        emqx-webhook runs beside it, as users run it (make webhook-up: the shipped
#                    manifests on the real node)
#   EMQX_IMAGE       the EMQX image (default emqx/emqx-enterprise:5.10.0); UPDATE_IMAGE the image of
#                    the blue-green update (default 5.10.1 of the same; "none" skips it)
#   DURABLE=1        durable sessions on (config and environment), 3 cores, and a core scale-down
#                    3→2 with 500 devices offline: emqx-operator 2.3 moves the core's durable-storage
#                    replicas first; the run reports how long the scale-down took and what it left
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
operator=${1:?usage: hack/operator-e2e.sh OPERATOR_BINARY CRD_DIR}
crds=${2:?usage: hack/operator-e2e.sh OPERATOR_BINARY CRD_DIR}
[[ -x $operator ]] || die "$operator is not an executable: build emqx-operator's manager first"
[[ -f $crds/apps.emqx.io_emqxes.yaml ]] || die "$crds has no apps.emqx.io_emqxes.yaml: pass config/crd/bases of the operator's checkout"

KUBECONFIG=$("$HACK_DIR/cluster-up.sh")
export KUBECONFIG
image=${EMQX_IMAGE:-emqx/emqx-enterprise:5.10.0}
update=${UPDATE_IMAGE:-${image%:*}:5.10.1}
cores=2 config='dashboard.listeners.http.bind = 18083' env=''
if [[ ${DURABLE:-} == 1 ]]; then
	cores=3
	config+=$'\n      durable_sessions.enable = true'
	env=$'      env:\n      - {name: EMQX_DURABLE_SESSIONS__ENABLE, value: "true"}'
fi
[[ ${WEBHOOK:-} != 1 ]] || "$HACK_DIR/webhook-up.sh"
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
	[[ $(kubectl get crd emqxes.apps.emqx.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) == True ]] && break
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
  image: $image
  config:
    data: |
      $config
  coreTemplate:
    spec:
      replicas: $cores
$env
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

if [[ ${DURABLE:-} == 1 ]]; then
	curl -fsS -XPOST "http://$admin/sim/v1/disconnect?cluster=op-e2e/emqx" -d '{"clients": 500, "keep_session": true}' >/dev/null
	sleep 2
	log "500 devices offline, their sessions durable: $(stats)"
	start=$SECONDS
	kubectl -n op-e2e patch emqx emqx --type merge -p '{"spec":{"coreTemplate":{"spec":{"replicas":2}}}}' >/dev/null
	# (grep -q under pipefail would end the loop when kubectl gets SIGPIPE: read the list first)
	while pods=$(kubectl -n op-e2e get pods --no-headers 2>/dev/null) && grep -q "core-[^ ]*-2 " <<<"$pods"; do
		if ((SECONDS - start >= 300)); then
			log "core scale-down 3→2 not done after 300 s: $(kubectl -n op-e2e get emqx emqx -o jsonpath='{.status.conditions[0].message}')"
			log "pods: $(kubectl -n op-e2e get pods --no-headers | awk '{printf "%s(%s) ", $1, $2}')"
			log "EMQX evacuations: $(curl -fsS "http://$admin/sim/v1/stats?cluster=op-e2e/emqx" | sed -n 's/.*"nodes":\(.*\)/\1/p' | grep -o '"evacuation":"[a-z_]*"' | sort | uniq -c | tr '\n' ' ')"
			die "core scale-down 3→2 did not finish"
		fi
		sleep 2
	done
	log "core scale-down 3→2 with 500 durable sessions offline: $((SECONDS - start)) s; $(stats)"
	cores=2
fi
if [[ $update != none ]]; then
	kubectl -n op-e2e patch emqx emqx --type merge -p "{\"spec\":{\"image\":\"$update\"}}" >/dev/null
	sleep 5
	wait_ready "blue-green update" 600
	start=$SECONDS
	while (($(kubectl -n op-e2e get pods --no-headers | wc -l) > cores + 3)); do
		((SECONDS - start < 300)) || die "old pods still there 300 s after the update"
		sleep 2
	done
	sleep 5
fi
lost=$(field lost_sessions)
log "after the update: $(stats)"
log "lost sessions: $lost, refused connects: $(field refused_connects)"
[[ $lost == 0 ]] || die "the operator's life cycle lost $lost sessions"
log "create → scale → blue-green update: 0 sessions lost (image $image, durable sessions ${DURABLE:-0}, webhook ${WEBHOOK:-0})"
