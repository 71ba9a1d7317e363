#!/usr/bin/env bash
# make webhook-up: the webhook as users run it, on the local cluster's real node. Builds the image
# (make image), imports it into the node's containerd, installs manifests/ through the overlay
# hack/realnode (image and scheduling only) with kubectl apply -k, and waits until both replicas
# are ready. Brings the cluster up with its real node if needed. TLS=cert-manager installs
# manifests/cert-manager instead (overlay hack/realnode/cert-manager), with cert-manager started
# beside the cluster first (hack/cert-manager-up.sh).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export KUBECONFIG
KUBECONFIG=$(REAL_NODE=1 "$HACK_DIR/cluster-up.sh")
KUBECTL="$CONTROLPLANE_BIN/kubectl"
overlay=$HACK_DIR/realnode
case ${TLS:-self-signed} in
self-signed) ;;
cert-manager)
	"$HACK_DIR/cert-manager-up.sh"
	overlay=$HACK_DIR/realnode/cert-manager
	;;
*) die "TLS=${TLS} is not a TLS mode: use self-signed (the default) or cert-manager" ;;
esac
tar=$NODE_DIR/images/emqx-webhook.tar
make -C "$ROOT_DIR" --no-print-directory image VERSION=local IMAGE_TAR="$tar" >&2
ctr -a "$NODE_DIR/containerd.sock" -n k8s.io images import "$tar" >/dev/null
existed=; $KUBECTL -n emqx-webhook get deployment emqx-webhook >/dev/null 2>&1 && existed=1
$KUBECTL apply -k "$overlay" >&2
# A second run imports a new image under the same tag: the pods start again to run it.
[[ -z $existed ]] || $KUBECTL -n emqx-webhook rollout restart deployment/emqx-webhook >/dev/null
$KUBECTL -n emqx-webhook rollout status deployment/emqx-webhook --timeout=180s >&2 ||
	{ $KUBECTL -n emqx-webhook get pods -o wide >&2; die "the webhook's Deployment did not become ready"; }
log "emqx-webhook runs on node $NODE_NAME; export KUBECONFIG=$KUBECONFIG"
