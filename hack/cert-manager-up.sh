#!/usr/bin/env bash
# cert-manager on the local cluster, for manifests/cert-manager: its CRDs (from the cert-manager
# module, deploy/crds) and one process beside the cluster running cert-manager's own controllers and
# CA injector (hack/certmanager, built from the Go module proxy and cached; ~3 min cold). Idempotent;
# hack/cluster-down.sh stops it. Expects the cluster up (hack/cluster-up.sh); prints nothing on stdout.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -f $KUBECONFIG_PATH ]] || die "no local cluster: run make cluster-up first"
KUBECTL="$CONTROLPLANE_BIN/kubectl --kubeconfig $KUBECONFIG_PATH"
mod=$HACK_DIR/certmanager
dir=$CACHE_ROOT/certmanager/$(cat "$mod/go.mod" "$mod/go.sum" "$mod/main.go" | sha256sum | cut -c1-16)
build() { (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/cert-manager-local" .); }
cached_build "$dir" "cert-manager's controllers and CA injector" build
# The CRDs of the version built (server-side: the Issuer CRDs exceed client-side apply's limit).
src=$(cd "$mod" && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
[[ -d $src/deploy/crds ]] || die "cert-manager's CRDs not found under $src/deploy/crds"
crds=()
for k in certificates certificaterequests issuers clusterissuers; do
	$KUBECTL apply --server-side --force-conflicts -f "$src/deploy/crds/cert-manager.io_$k.yaml" >/dev/null
	crds+=("crd/$k.cert-manager.io")
done
$KUBECTL wait --for condition=Established --timeout=60s "${crds[@]}" >/dev/null
pidfile=$STATE_DIR/cert-manager.pid
if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	log "cert-manager is already running (pid $(cat "$pidfile"))"
	exit 0
fi
"$dir/cert-manager-local" --kubeconfig "$KUBECONFIG_PATH" >"$STATE_DIR/cert-manager.log" 2>&1 &
echo $! >"$pidfile"
sleep 2
kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$STATE_DIR/cert-manager.log" >&2; die "cert-manager did not start; its log: $STATE_DIR/cert-manager.log"; }
log "cert-manager runs (pid $(cat "$pidfile"), log $STATE_DIR/cert-manager.log)"
